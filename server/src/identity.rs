//! Who is calling: the user the Databricks Apps proxy names in its `X-Forwarded-*` headers (it
//! replaces what the client sent), or the one local user when no proxy is in front. Everything a
//! user keeps (chats, background responses, traces, quotas) is kept under [`Identity::key`].
//!
//! Malformed identity headers never get this far: `api::guard::identity` refuses them first.

use std::convert::Infallible;

use app::config::User;
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;

/// Who owns chats when no proxy names the user (local development).
pub const LOCAL_USER: &str = "local-user";

/// The caller, as an extractor: `async fn handler(identity: Identity, …)`.
#[derive(Debug, Clone)]
pub struct Identity {
    /// What the proxy says of them (for the page and the tools).
    pub user: User,
    /// The key their data is kept under.
    pub key: String,
}

impl Identity {
    pub fn of(headers: &HeaderMap) -> Self {
        let user = forwarded_user(headers);
        let key = user_key(&user);
        Self { user, key }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Identity {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Self::of(&parts.headers))
    }
}

/// The key a user's data is stored under: their forwarded identity, or the one local user.
pub fn user_key(user: &User) -> String {
    user.id().unwrap_or_else(|| LOCAL_USER.to_string())
}

/// The signed-in user, as the Databricks Apps proxy forwards it.
pub fn forwarded_user(headers: &HeaderMap) -> User {
    User::from_headers(|name| headers.get(name).and_then(|v| std::str::from_utf8(v.as_bytes()).ok()))
}
