//! The browser bundle (`agent-app.{js,wasm,css}`), served under a path that carries a hash of its
//! content (`/pkg/<hash>/…`): browsers keep it for a year without asking again, and a new build is a
//! new path. `build_site` (scripts/lib.sh) writes brotli and gzip copies beside each file; the one
//! the request's `Accept-Encoding` prefers is sent.

use std::path::{Path, PathBuf};

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use sha2::{Digest, Sha256};
use tower_http::services::ServeDir;

/// The files of the bundle, in the site's `pkg/` folder.
pub const FILES: [&str; 3] = ["agent-app.js", "agent-app.wasm", "agent-app.css"];

/// How long browsers may keep a hashed file: it never changes under its path.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

pub struct Bundle {
    dir: PathBuf,
    /// `pkg/<hash>`: where pages link the bundle (Leptos's `site_pkg_dir`).
    pub pkg_path: String,
}

impl Bundle {
    /// The bundle in `<site_root>/pkg`, hashed now (a missing file hashes as empty: a page without a
    /// built site still renders, and the log says how to build it).
    pub fn open(site_root: &Path) -> Self {
        let dir = site_root.join("pkg");
        let mut hash = Sha256::new();
        let mut missing = Vec::new();
        for file in FILES {
            hash.update(file.as_bytes());
            match std::fs::read(dir.join(file)) {
                Ok(bytes) => hash.update(bytes),
                Err(_) => missing.push(file),
            }
        }
        if !missing.is_empty() {
            tracing::warn!(
                folder = %dir.display(),
                ?missing,
                "the chat UI's browser bundle is not built: pages render but stay inert. Build it with \
                 `scripts/run.sh` (which builds and starts everything), `cargo leptos watch`, or \
                 `bash -c 'source scripts/lib.sh && build_site'`; LEPTOS_SITE_ROOT says where it is"
            );
        }
        let hex: String = hash.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect();
        Self { dir, pkg_path: format!("pkg/{hex}") }
    }

    /// `/pkg/<hash>/…`: the files, precompressed when the client takes it, cached for good.
    pub fn router(&self) -> Router {
        let files = ServeDir::new(&self.dir).precompressed_br().precompressed_gzip();
        Router::new()
            .nest_service(&format!("/{}", self.pkg_path), files)
            .layer(axum::middleware::map_response(cache_for_good))
    }
}

/// Only what was found is cached: a 404 may be a file that is still being deployed.
async fn cache_for_good(mut response: Response) -> Response {
    if response.status().is_success() {
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    }
    response
}
