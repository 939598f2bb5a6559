//! OAuth tokens: the cache every token source shares (one refresh at a time, before expiry), and
//! OAuth M2M (client credentials) against the workspace's OIDC token endpoint, found by discovery.

use std::future::Future;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Mutex;

use crate::secret::Secret;

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("could not reach the Databricks token endpoint {url}: {message}")]
    Connect { url: String, message: String },
    #[error("the Databricks token endpoint {url} refused the client credentials: HTTP {status}: {body}")]
    Refused { url: String, status: u16, body: String },
    #[error("the Databricks token endpoint {url} answered something that is not a token: {message}")]
    Protocol { url: String, message: String },
    #[error("`databricks auth token` failed: {0}")]
    Cli(String),
}

/// A token and how long it stays usable.
#[derive(Clone)]
pub struct AccessToken {
    pub secret: Secret,
    pub expires_at: Instant,
    /// When to get a new one: `min(10 min, 20% of its lifetime)` before it expires.
    pub refresh_at: Instant,
}

impl AccessToken {
    pub fn new(secret: Secret, lifetime: Duration) -> Self {
        let now = Instant::now();
        let margin = (lifetime / 5).min(Duration::from_secs(600));
        Self { secret, expires_at: now + lifetime, refresh_at: now + lifetime - margin }
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken").field("expires_at", &self.expires_at).finish_non_exhaustive()
    }
}

/// The current token of one source. Concurrent callers wait for a single refresh.
#[derive(Default)]
pub struct TokenCache {
    cached: Mutex<Option<AccessToken>>,
}

impl TokenCache {
    /// The cached token while it is fresh, else the one `fetch` gets (and caches).
    pub async fn get<F, Fut, E>(&self, fetch: F) -> Result<AccessToken, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<AccessToken, E>>,
    {
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref()
            && token.refresh_at > Instant::now()
        {
            return Ok(token.clone());
        }
        let token = fetch().await?;
        *cached = Some(token.clone());
        Ok(token)
    }

    /// A call was refused with `rejected`: forget it, unless a newer token already replaced it (so
    /// many calls refused at once cause one refresh, not many).
    pub async fn reject(&self, rejected: &str) {
        let mut cached = self.cached.lock().await;
        if cached.as_ref().is_some_and(|t| t.secret.expose() == rejected) {
            *cached = None;
        }
    }
}

pub struct ClientCredentials {
    host: String,
    client_id: String,
    client_secret: Secret,
    http: reqwest::Client,
    /// The token endpoint, from OIDC discovery (once).
    token_url: tokio::sync::OnceCell<String>,
    cache: TokenCache,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct Discovery {
    token_endpoint: String,
}

impl ClientCredentials {
    /// The app's service principal, when its client credentials are set (Databricks Apps set them).
    pub fn of_app(args: &crate::config::DatabricksArgs) -> Option<Self> {
        let (host, id, secret) = (args.host.as_ref()?, args.client_id.as_ref()?, args.client_secret.as_ref()?);
        Some(Self::new(host, id, secret.clone()))
    }

    /// `host` is the workspace URL (`https://…cloud.databricks.com`, scheme optional).
    pub fn new(host: &str, client_id: &str, client_secret: Secret) -> Self {
        Self {
            host: super::config::normalise_host(host),
            client_id: client_id.to_string(),
            client_secret,
            http: crate::http_client::new(),
            token_url: tokio::sync::OnceCell::new(),
            cache: TokenCache::default(),
        }
    }

    /// A token valid for a while yet: the cached one, or a new one.
    pub async fn token(&self) -> Result<AccessToken, OAuthError> {
        self.cache.get(|| self.fetch()).await
    }

    pub async fn reject(&self, token: &str) {
        self.cache.reject(token).await
    }

    /// `GET {host}/oidc/.well-known/oauth-authorization-server` names the token endpoint; a
    /// workspace that does not answer it uses the usual `{host}/oidc/v1/token`.
    async fn token_url(&self) -> &str {
        self.token_url
            .get_or_init(|| async {
                let url = format!("{}/oidc/.well-known/oauth-authorization-server", self.host);
                let found = async {
                    let response = self.http.get(&url).timeout(Duration::from_secs(30)).send().await.ok()?;
                    if !response.status().is_success() {
                        return None;
                    }
                    response.json::<Discovery>().await.ok().map(|d| d.token_endpoint)
                };
                found.await.unwrap_or_else(|| {
                    tracing::debug!("no OIDC discovery document at {url}; using /oidc/v1/token");
                    format!("{}/oidc/v1/token", self.host)
                })
            })
            .await
    }

    async fn fetch(&self) -> Result<AccessToken, OAuthError> {
        let url = self.token_url().await.to_string();
        let response = self
            .http
            .post(&url)
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
            return Err(OAuthError::Refused { url, status: status.as_u16(), body });
        }
        let parsed: TokenResponse =
            serde_json::from_str(&body).map_err(|e| OAuthError::Protocol { url, message: e.to_string() })?;
        // Databricks tokens last an hour; without a lifetime, assume that.
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(3600));
        Ok(AccessToken::new(Secret::new(parsed.access_token), lifetime))
    }
}
