//! `GET /documents/<path>`: the documents of `AGENT_DOCS_DIR`, readable where their citations link. Only
//! what the document index reads is served (`tools::docs::document_file`): no hidden files, nothing
//! through a symbolic link, no other file types. An HTML document is served under a sandboxing
//! policy: it is shown, but its scripts never run on the app's origin.

use std::path::PathBuf;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(Clone)]
pub struct Documents {
    pub root: PathBuf,
}

/// A document's own policy: a unique origin without scripts, plugins or forms.
const SANDBOX: &str = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:";

pub async fn get(State(docs): State<Documents>, Path(relative): Path<String>) -> Response {
    let Some(path) = crate::tools::docs::document_file(&docs.root, &relative) else {
        return (StatusCode::NOT_FOUND, "Not found").into_response();
    };
    let Ok(body) = tokio::fs::read(&path).await else {
        return (StatusCode::NOT_FOUND, "Not found").into_response();
    };
    let lower = relative.to_ascii_lowercase();
    let content_type = if lower.ends_with(".html") || lower.ends_with(".htm") {
        "text/html; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(SANDBOX));
    response
}
