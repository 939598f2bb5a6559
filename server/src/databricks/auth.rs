//! The one place calls to the workspace get their credentials (the model, MCP servers, tracing,
//! MLflow, discover-tools): unified auth in the SDKs' order (personal access token, the app's service
//! principal, the Databricks CLI's login), and the signed-in user's own token (on-behalf-of).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::cli::CliTokenSource;
use super::config::{AuthType, ConfigError, EnvConfig, WorkspaceConfig};
use super::oauth::{ClientCredentials, OAuthError};
use crate::config::DatabricksArgs;
use crate::secret::Secret;

/// A workspace and how to sign calls to it. Cheap to clone: clones share one token cache.
#[derive(Clone)]
pub struct WorkspaceAuth {
    /// `https://…`, no trailing slash.
    pub host: String,
    credential: Credential,
}

#[derive(Clone)]
enum Credential {
    Token(Secret),
    ServicePrincipal(Arc<ClientCredentials>),
    Cli(Arc<CliTokenSource>),
    /// A user's token from `x-forwarded-access-token`: fixed, short-lived, never refreshed.
    User(Secret),
}

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("no Databricks credential: {0}")]
    Auth(String),
    #[error("{method} {url} failed: {message}")]
    Connect { method: String, url: String, message: String },
    #[error("{method} {url}: HTTP {status}: {message}")]
    Http { method: String, url: String, status: u16, message: String },
}

impl WorkspaceError {
    pub fn status(&self) -> Option<u16> {
        match self {
            WorkspaceError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl WorkspaceAuth {
    /// From the flags and environment, then `~/.databrickscfg`. `Ok(None)`: no workspace is
    /// configured, or it has no credential this server can use.
    pub fn from_args(args: &DatabricksArgs) -> Result<Option<Self>, ConfigError> {
        let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
        let config = WorkspaceConfig::resolve(&EnvConfig::from(args), home.as_deref())?;
        Ok(Self::from_config(&config, &args.cli_path))
    }

    /// Picks the credential: the one `auth_type` names, else a token, else client credentials, else
    /// the Databricks CLI when it is installed.
    pub fn from_config(config: &WorkspaceConfig, cli_program: &str) -> Option<Self> {
        let host = config.host.clone()?;
        let pat = || config.token.clone().map(Credential::Token);
        let m2m = || match (&config.client_id, &config.client_secret) {
            (Some(id), Some(secret)) => {
                Some(Credential::ServicePrincipal(Arc::new(ClientCredentials::new(&host, id, secret.clone()))))
            }
            _ => None,
        };
        let cli = || {
            find_program(cli_program)
                .map(|_| Credential::Cli(Arc::new(CliTokenSource::new(cli_program, &host, config.profile.as_deref()))))
        };
        let credential = match config.auth_type {
            Some(AuthType::Pat) => pat(),
            Some(AuthType::OAuthM2m) => m2m(),
            Some(AuthType::DatabricksCli) => cli(),
            None => pat().or_else(m2m).or_else(cli),
        }?;
        Some(Self { host, credential })
    }

    /// A fixed token (tests, tools given a token).
    pub fn with_token(host: &str, token: Secret) -> Self {
        Self { host: super::config::normalise_host(host), credential: Credential::Token(token) }
    }

    /// The same workspace, as the user whose token the Apps proxy forwarded (on-behalf-of). Build
    /// it per request; never keep it.
    pub fn for_user(&self, user_token: Secret) -> Self {
        Self { host: self.host.clone(), credential: Credential::User(user_token) }
    }

    /// `pat`, `oauth-m2m`, `databricks-cli` or `user` (on-behalf-of), for logs and `/agent/info`.
    pub fn auth_type(&self) -> &'static str {
        match &self.credential {
            Credential::Token(_) => AuthType::Pat.name(),
            Credential::ServicePrincipal(_) => AuthType::OAuthM2m.name(),
            Credential::Cli(_) => AuthType::DatabricksCli.name(),
            Credential::User(_) => "user",
        }
    }

    /// The bare token (what `rmcp` and others that add `Bearer ` themselves take).
    pub async fn token(&self) -> Result<Secret, OAuthError> {
        match &self.credential {
            Credential::Token(token) | Credential::User(token) => Ok(token.clone()),
            Credential::ServicePrincipal(sp) => sp.token().await.map(|t| t.secret),
            Credential::Cli(cli) => cli.token().await.map(|t| t.secret),
        }
    }

    /// The `Authorization` header value.
    pub async fn bearer(&self) -> Result<String, String> {
        self.token().await.map(|t| format!("Bearer {}", t.expose())).map_err(|e| e.to_string())
    }

    /// A call signed with `bearer` was refused (HTTP 401). Returns whether one retry with a new
    /// token makes sense (a renewable credential); the refused token is dropped from the cache.
    pub async fn rejected(&self, bearer: &str) -> bool {
        let token = bearer.strip_prefix("Bearer ").unwrap_or(bearer);
        match &self.credential {
            Credential::Token(_) | Credential::User(_) => false,
            Credential::ServicePrincipal(sp) => {
                sp.reject(token).await;
                true
            }
            Credential::Cli(cli) => {
                cli.reject(token).await;
                true
            }
        }
    }

    /// A JSON call to the workspace's REST API (`path` from `/api/…`), retried once with a new
    /// token after a 401. Errors carry the status and the workspace's message, never the token.
    pub async fn call_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<Value, WorkspaceError> {
        let url = format!("{}{}", self.host, path);
        let failed =
            |message: String| WorkspaceError::Connect { method: method.to_string(), url: url.clone(), message };
        let http = shared_client();
        let mut retried = false;
        loop {
            let bearer = self.bearer().await.map_err(WorkspaceError::Auth)?;
            let mut request = http.request(method.clone(), &url).header(reqwest::header::AUTHORIZATION, &bearer);
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.timeout(timeout).send().await.map_err(|e| failed(e.to_string()))?;
            let status = response.status();
            if status == reqwest::StatusCode::UNAUTHORIZED && !retried && self.rejected(&bearer).await {
                retried = true;
                continue;
            }
            let text = response.text().await.map_err(|e| failed(e.to_string()))?;
            if !status.is_success() {
                let message = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
                    .unwrap_or_else(|| text.chars().take(300).collect());
                return Err(WorkspaceError::Http { method: method.to_string(), url, status: status.as_u16(), message });
            }
            if text.trim().is_empty() {
                return Ok(Value::Object(Default::default()));
            }
            return serde_json::from_str(&text).map_err(|e| failed(format!("the answer is not JSON: {e}")));
        }
    }
}

/// One pooled client for workspace REST calls.
fn shared_client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(crate::http_client::new)
}

/// A program by path, or found on `PATH`.
fn find_program(program: &str) -> Option<std::path::PathBuf> {
    let path = std::path::Path::new(program);
    if path.components().count() > 1 {
        return path.is_file().then(|| path.to_path_buf());
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join(program)).find(|p| p.is_file())
}
