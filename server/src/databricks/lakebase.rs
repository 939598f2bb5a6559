//! Lakebase (Databricks' managed PostgreSQL): the chat history's database password when a database
//! resource gives `PG*` without one, and the instance look-ups quickstart makes.
//!
//! The password is a short-lived OAuth token. With `LAKEBASE_INSTANCE_NAME` it is a database
//! credential for that instance from the Lakebase credential API (`POST /api/2.0/database/credentials`,
//! signed with whatever workspace credential is configured: the app's service principal on Apps, a
//! profile locally); without it, the app's service principal's own OAuth token (what the Apps
//! documentation shows). Either way it is renewed before it expires.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use super::auth::{WorkspaceAuth, WorkspaceError};
use super::oauth::{AccessToken, ClientCredentials};
use crate::secret::Secret;

/// Where the database password comes from.
#[derive(Clone)]
pub enum DatabasePassword {
    /// A credential for this instance from the Lakebase credential API.
    InstanceCredential { workspace: WorkspaceAuth, instance: String },
    /// The app's service principal's OAuth token.
    ServicePrincipal(Arc<ClientCredentials>),
}

/// A credential's lifetime when the API does not say (the documented one hour).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

impl DatabasePassword {
    /// A password valid for a while yet, and when to fetch the next one.
    pub async fn fetch(&self) -> Result<AccessToken, String> {
        match self {
            DatabasePassword::ServicePrincipal(sp) => sp.token().await.map_err(|e| e.to_string()),
            DatabasePassword::InstanceCredential { workspace, instance } => {
                generate_credential(workspace, instance).await.map_err(|e| e.to_string())
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            DatabasePassword::ServicePrincipal(_) => "the app's service principal's OAuth token".into(),
            DatabasePassword::InstanceCredential { instance, .. } => {
                format!("a Lakebase credential for instance {instance}")
            }
        }
    }
}

/// `POST /api/2.0/database/credentials`: `{"instance_names": [..], "request_id": ..}` →
/// `{"token": .., "expiration_time": "<RFC 3339>"}`.
pub async fn generate_credential(workspace: &WorkspaceAuth, instance: &str) -> Result<AccessToken, WorkspaceError> {
    let body = json!({"instance_names": [instance], "request_id": uuid::Uuid::new_v4().to_string()});
    let answer = workspace
        .call_json(Method::POST, "/api/2.0/database/credentials", Some(&body), Duration::from_secs(30))
        .await?;
    let token = answer["token"].as_str().filter(|t| !t.is_empty()).ok_or_else(|| WorkspaceError::Http {
        method: "POST".into(),
        url: format!("{}/api/2.0/database/credentials", workspace.host),
        status: 200,
        message: "the answer has no token".into(),
    })?;
    let lifetime = answer["expiration_time"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .and_then(|at| (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().ok())
        .unwrap_or(DEFAULT_LIFETIME);
    Ok(AccessToken::new(Secret::new(token), lifetime))
}

/// A database instance as `GET /api/2.0/database/instances/{name}` describes it.
#[derive(Debug, Clone)]
pub struct Instance {
    pub name: String,
    /// Where to connect (`read_write_dns`).
    pub host: Option<String>,
    pub state: String,
}

/// The instance, creating it (`POST /api/2.0/database/instances`, capacity `CU_1`) when there is
/// none of that name. Returns it and whether it was created.
pub async fn find_or_create_instance(
    workspace: &WorkspaceAuth,
    name: &str,
) -> Result<(Instance, bool), WorkspaceError> {
    let timeout = Duration::from_secs(60);
    let path = format!("/api/2.0/database/instances/{}", app::percent_encode(name));
    let (found, created) = match workspace.call_json(Method::GET, &path, None, timeout).await {
        Ok(found) => (found, false),
        Err(e) if e.status() == Some(404) => {
            let body = json!({"name": name, "capacity": "CU_1"});
            (workspace.call_json(Method::POST, "/api/2.0/database/instances", Some(&body), timeout).await?, true)
        }
        Err(e) => return Err(e),
    };
    let instance = Instance {
        name: found["name"].as_str().unwrap_or(name).to_string(),
        host: found["read_write_dns"].as_str().map(str::to_string),
        state: found["state"].as_str().unwrap_or("UNKNOWN").to_string(),
    };
    Ok((instance, created))
}
