//! Security headers on every response, and on HTML pages a Content-Security-Policy that allows the
//! page's own inline scripts by their hashes (the theme script, Leptos' hydration bootstrap) and
//! nothing else inline: a script that markdown or a tool output smuggled into the page would not run.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use sha2::{Digest, Sha256};

/// Pages are small; anything larger is passed through without a hashed policy.
const MAX_PAGE_BYTES: usize = 4 * 1024 * 1024;

pub async fn headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("SAMEORIGIN"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("strict-origin-when-cross-origin"));
    let is_html =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/html"));
    // A response with a policy of its own (a served document's sandbox) keeps it: hashing its inline
    // scripts would let them run on the app's origin.
    if !is_html || headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let page = match axum::body::to_bytes(body, MAX_PAGE_BYTES).await {
        Ok(page) => page,
        Err(error) => {
            tracing::warn!(%error, "page not readable for its security policy");
            return Response::from_parts(parts, Body::empty());
        }
    };
    let policy = content_security_policy(&String::from_utf8_lossy(&page), super::live_reload::socket_port());
    if let Ok(value) = HeaderValue::from_str(&policy) {
        parts.headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    Response::from_parts(parts, Body::from(page))
}

/// The policy for a page: scripts from this origin (and WebAssembly), inline ones only by hash;
/// connections to this origin, and in the dev loop to the reload socket's port.
pub fn content_security_policy(html: &str, reload_socket_port: Option<u16>) -> String {
    let hashes: Vec<String> = inline_scripts(html)
        .into_iter()
        .map(|script| {
            let digest = Sha256::digest(script.as_bytes());
            format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(digest))
        })
        .collect();
    format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval' {}; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; connect-src 'self'{}; font-src 'self' data:; object-src 'none'; \
         base-uri 'self'; form-action 'self'; frame-ancestors 'self'",
        hashes.join(" "),
        reload_socket_port.map(|port| format!(" ws://*:{port} wss://*:{port}")).unwrap_or_default()
    )
}

/// The text of each `<script>` without a `src`.
fn inline_scripts(html: &str) -> Vec<&str> {
    let mut scripts = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<script") {
        let after = &rest[start..];
        let Some(open_end) = after.find('>') else { break };
        let tag = &after[..open_end];
        let body = &after[open_end + 1..];
        let Some(close) = body.find("</script>") else { break };
        if !tag.contains(" src=") {
            scripts.push(&body[..close]);
        }
        rest = &body[close + "</script>".len()..];
    }
    scripts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_scripts_are_hashed_and_external_ones_are_not() {
        let html = r#"<script>a()</script><script src="/pkg/x.js"></script><script type="module">b()</script>"#;
        assert_eq!(inline_scripts(html), ["a()", "b()"]);
        let policy = content_security_policy(html, None);
        // echo -n 'a()' | openssl dgst -sha256 -binary | base64
        assert!(policy.contains("'sha256-"), "{policy}");
        assert_eq!(policy.matches("'sha256-").count(), 2);
        assert!(policy.contains("object-src 'none'"));
        // Images from elsewhere would leak what is in their address (markdown renders them as links).
        assert!(policy.contains("img-src 'self' data:;"), "{policy}");
        assert!(policy.contains("connect-src 'self';"), "no reload socket outside the dev loop: {policy}");
        let watching = content_security_policy(html, Some(8001));
        assert!(watching.contains("connect-src 'self' ws://*:8001 wss://*:8001;"), "{watching}");
    }
}
