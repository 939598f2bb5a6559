//! How this server signs its own calls to the workspace (MLflow, tracing): a personal access token
//! (`DATABRICKS_TOKEN`) or the app's service principal (`DATABRICKS_CLIENT_ID`/`_SECRET`).

use std::sync::Arc;

use super::oauth::ClientCredentials;
use crate::config::{Secret, Settings};

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
}

impl WorkspaceAuth {
    /// From the settings: a token wins over the service principal. `None` without a host or either.
    pub fn from_settings(settings: &Settings) -> Option<Self> {
        let host = settings.databricks_host.as_deref()?;
        let host = host.trim_end_matches('/');
        let host = if host.contains("://") { host.to_string() } else { format!("https://{host}") };
        let credential =
            match (&settings.databricks_token, &settings.databricks_client_id, &settings.databricks_client_secret) {
                (Some(token), _, _) => Credential::Token(token.clone()),
                (None, Some(id), Some(secret)) => {
                    Credential::ServicePrincipal(Arc::new(ClientCredentials::new(&host, id, secret.clone())))
                }
                _ => return None,
            };
        Some(Self { host, credential })
    }

    /// The `Authorization` header value.
    pub async fn bearer(&self) -> Result<String, String> {
        match &self.credential {
            Credential::Token(token) => Ok(format!("Bearer {}", token.expose())),
            Credential::ServicePrincipal(sp) => {
                sp.token().await.map(|t| format!("Bearer {}", t.secret.expose())).map_err(|e| e.to_string())
            }
        }
    }
}
