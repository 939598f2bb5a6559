//! Who may call, and from where: checks made before any handler runs.
//!
//! - **Identity** (every route): the Databricks Apps proxy sets `X-Forwarded-Email`,
//!   `X-Forwarded-Preferred-Username` and `X-Forwarded-User` itself, replacing what the client sent.
//!   A request whose identity header is duplicated, not UTF-8, holds control characters or is
//!   absurdly long is refused (400), never read as someone else or as the shared local user.
//! - **Cross-site requests** (the API's state-changing routes): a browser page of another origin
//!   (another app under the same parent domain, say) must not make the signed-in user's browser run
//!   the agent or write chats. Those routes take only JSON bodies (a cross-site form or `text/plain`
//!   post cannot send `application/json` without a CORS preflight, which this server never grants),
//!   and refuse requests whose `Sec-Fetch-Site` or `Origin` says another site. API clients send
//!   neither header and are unaffected; `AGENT_ALLOWED_ORIGINS` lists browser origins to accept.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// The identity headers the Apps proxy sets.
pub const IDENTITY_HEADERS: [&str; 3] = ["x-forwarded-email", "x-forwarded-preferred-username", "x-forwarded-user"];

/// Longest identity header value accepted (an email address is at most 320 characters).
const MAX_IDENTITY_BYTES: usize = 320;

/// Refuses a request whose forwarded identity is malformed (see the module documentation).
pub async fn identity(request: Request, next: Next) -> Response {
    match check_identity(request.headers()) {
        Ok(()) => next.run(request).await,
        Err(detail) => ApiError::bad_request(detail).into_response(),
    }
}

fn check_identity(headers: &HeaderMap) -> Result<(), String> {
    for name in IDENTITY_HEADERS {
        let mut values = headers.get_all(name).iter();
        let Some(value) = values.next() else { continue };
        if values.next().is_some() {
            return Err(format!("Invalid identity: more than one {name} header"));
        }
        let text = std::str::from_utf8(value.as_bytes())
            .map_err(|_| format!("Invalid identity: the {name} header is not UTF-8"))?;
        if text.len() > MAX_IDENTITY_BYTES || text.chars().any(char::is_control) {
            return Err(format!("Invalid identity: the {name} header is too long or holds control characters"));
        }
    }
    Ok(())
}

/// Browser origins besides the app's own that may call the state-changing routes.
#[derive(Clone, Debug, Default)]
pub struct AllowedOrigins(pub Vec<String>);

/// Refuses cross-site and non-JSON requests to the routes that change state or run the agent.
pub async fn same_origin(State(allowed): State<AllowedOrigins>, request: Request, next: Next) -> Response {
    if !matches!(*request.method(), Method::POST | Method::PUT | Method::PATCH | Method::DELETE) {
        return next.run(request).await;
    }
    let headers = request.headers();
    if let Err(error) = check_origin(headers, &allowed).and_then(|()| check_json_body(headers)) {
        tracing::warn!(path = %request.uri().path(), status = error.status.as_u16(), "request refused: {}", error.detail);
        // The body is left unread: the connection cannot carry another request, and says so.
        let mut response = error.into_response();
        response.headers_mut().insert(header::CONNECTION, axum::http::HeaderValue::from_static("close"));
        return response;
    }
    next.run(request).await
}

fn check_origin(headers: &HeaderMap, allowed: &AllowedOrigins) -> Result<(), ApiError> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let origin = text("origin");
    let own = own_origin(headers);
    let accepted = |origin: &str| {
        own.as_deref().is_some_and(|own| own.eq_ignore_ascii_case(origin))
            || allowed.0.iter().any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin))
    };
    let refused = || ApiError {
        status: StatusCode::FORBIDDEN,
        detail: "Cross-site request refused: this route only accepts requests from the app's own pages. API \
                 clients that send no Origin header are not affected; AGENT_ALLOWED_ORIGINS lists other browser \
                 origins to accept"
            .into(),
    };
    match text("sec-fetch-site") {
        // The browser says where the request comes from; only the same origin (or the user's own
        // navigation) passes, unless the origin is one the app allows.
        Some("same-origin" | "none") => Ok(()),
        Some(_) => match origin {
            Some(origin) if allowed.0.iter().any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin)) => Ok(()),
            _ => Err(refused()),
        },
        // An older browser: its Origin must be ours. No Origin at all: not a browser's cross-site
        // request (they always send one on POST).
        None => match origin {
            Some(origin) if accepted(origin) => Ok(()),
            Some(_) => Err(refused()),
            None => Ok(()),
        },
    }
}

/// `scheme://host` the client reached: the forwarded host and scheme behind a proxy, else `Host`.
fn own_origin(headers: &HeaderMap) -> Option<String> {
    let text =
        |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(|v| v.split(',').next().unwrap_or(v).trim());
    let host = text("x-forwarded-host").or_else(|| text(header::HOST.as_str()))?;
    let scheme = text("x-forwarded-proto").unwrap_or("http");
    Some(format!("{scheme}://{host}"))
}

fn check_json_body(headers: &HeaderMap) -> Result<(), ApiError> {
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0);
    if !has_body {
        return Ok(());
    }
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .unwrap_or_default();
    let is_json =
        media_type == "application/json" || (media_type.starts_with("application/") && media_type.ends_with("+json"));
    if is_json {
        Ok(())
    } else {
        Err(ApiError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            detail: format!(
                "Unsupported Media Type: send the body as JSON with `Content-Type: application/json` (got {})",
                if media_type.is_empty() { "none".to_string() } else { format!("`{media_type}`") }
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn identity_headers_are_read_strictly() {
        assert!(check_identity(&headers(&[("x-forwarded-email", "ana@example.com")])).is_ok());
        assert!(check_identity(&headers(&[])).is_ok());
        let twice = headers(&[("x-forwarded-email", "a@x.com"), ("x-forwarded-email", "b@x.com")]);
        assert!(check_identity(&twice).unwrap_err().contains("more than one"));
        let mut utf8 = HeaderMap::new();
        utf8.insert("x-forwarded-email", HeaderValue::from_bytes("zoë@example.com".as_bytes()).unwrap());
        assert!(check_identity(&utf8).is_ok(), "UTF-8 addresses are read, not dropped");
        let mut broken = HeaderMap::new();
        broken.insert("x-forwarded-email", HeaderValue::from_bytes(b"a\xff@x.com").unwrap());
        assert!(check_identity(&broken).unwrap_err().contains("not UTF-8"));
    }

    #[test]
    fn cross_site_requests_are_refused_and_api_clients_are_not() {
        let allowed = AllowedOrigins(vec!["https://portal.example.com".into()]);
        let check = |pairs: &[(&str, &str)]| check_origin(&headers(pairs), &allowed).map_err(|e| e.status.as_u16());
        let host = ("host", "app.example.com");
        assert_eq!(check(&[host]), Ok(()), "no browser headers: an API client");
        assert_eq!(check(&[host, ("sec-fetch-site", "same-origin"), ("origin", "http://app.example.com")]), Ok(()));
        assert_eq!(check(&[host, ("sec-fetch-site", "same-site"), ("origin", "http://other.example.com")]), Err(403));
        assert_eq!(check(&[host, ("sec-fetch-site", "cross-site"), ("origin", "https://evil.test")]), Err(403));
        assert_eq!(check(&[host, ("sec-fetch-site", "cross-site"), ("origin", "https://portal.example.com")]), Ok(()));
        assert_eq!(check(&[host, ("origin", "http://app.example.com")]), Ok(()));
        assert_eq!(check(&[host, ("origin", "null")]), Err(403));
        // Behind the proxy the origin is the forwarded one.
        let proxied =
            [("host", "10.0.0.5:8000"), ("x-forwarded-host", "app.example.com"), ("x-forwarded-proto", "https")];
        assert_eq!(check(&[proxied[0], proxied[1], proxied[2], ("origin", "https://app.example.com")]), Ok(()));
    }

    #[test]
    fn only_json_bodies_are_taken() {
        let json = headers(&[("content-length", "2"), ("content-type", "application/json; charset=utf-8")]);
        assert!(check_json_body(&json).is_ok());
        for content_type in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"] {
            let h = headers(&[("content-length", "2"), ("content-type", content_type)]);
            assert_eq!(check_json_body(&h).unwrap_err().status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        }
        assert_eq!(check_json_body(&headers(&[("content-length", "2")])).unwrap_err().status.as_u16(), 415);
        assert!(check_json_body(&headers(&[("content-length", "0")])).is_ok(), "no body: nothing to check");
    }
}
