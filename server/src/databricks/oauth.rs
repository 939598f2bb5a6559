//! OAuth M2M (client credentials) against the workspace's OIDC token endpoint, with the token cached
//! and refreshed once at a time, before it expires.

use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Mutex;

use crate::config::Secret;

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("could not reach the Databricks token endpoint {url}: {message}")]
    Connect { url: String, message: String },
    #[error("the Databricks token endpoint {url} refused the client credentials: HTTP {status}: {body}")]
    Refused { url: String, status: u16, body: String },
    #[error("the Databricks token endpoint {url} answered something that is not a token: {message}")]
    Protocol { url: String, message: String },
}

/// A token and how long it stays usable.
#[derive(Clone)]
pub struct AccessToken {
    pub secret: Secret,
    pub expires_at: Instant,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken").field("expires_at", &self.expires_at).finish_non_exhaustive()
    }
}

pub struct ClientCredentials {
    token_url: String,
    client_id: String,
    client_secret: Secret,
    http: reqwest::Client,
    cached: Mutex<Option<AccessToken>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl ClientCredentials {
    /// `host` is the workspace URL (`https://…cloud.databricks.com`, scheme optional).
    pub fn new(host: &str, client_id: &str, client_secret: Secret) -> Self {
        let host = host.trim_end_matches('/');
        let host = if host.contains("://") { host.to_string() } else { format!("https://{host}") };
        Self {
            token_url: format!("{host}/oidc/v1/token"),
            client_id: client_id.to_string(),
            client_secret,
            http: crate::http_client::new(),
            cached: Mutex::new(None),
        }
    }

    /// A token valid for a while yet: the cached one, or a new one. Concurrent callers wait for a
    /// single refresh.
    pub async fn token(&self) -> Result<AccessToken, OAuthError> {
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref()
            && token.expires_at > Instant::now() + refresh_margin()
        {
            return Ok(token.clone());
        }
        let token = self.fetch().await?;
        *cached = Some(token.clone());
        Ok(token)
    }

    async fn fetch(&self) -> Result<AccessToken, OAuthError> {
        let url = &self.token_url;
        let response = self
            .http
            .post(url)
            .basic_auth(&self.client_id, Some(self.client_secret.expose()))
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials&scope=all-apis")
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| OAuthError::Connect { url: url.clone(), message: e.to_string() })?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if !status.is_success() {
            let body: String = body.chars().take(300).collect();
            return Err(OAuthError::Refused { url: url.clone(), status: status.as_u16(), body });
        }
        let parsed: TokenResponse = serde_json::from_str(&body)
            .map_err(|e| OAuthError::Protocol { url: url.clone(), message: e.to_string() })?;
        // Databricks tokens last an hour; without a lifetime, assume that.
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(3600));
        Ok(AccessToken { secret: Secret::new(parsed.access_token), expires_at: Instant::now() + lifetime })
    }
}

/// Tokens are renewed this long before they expire.
pub fn refresh_margin() -> Duration {
    Duration::from_secs(300)
}
