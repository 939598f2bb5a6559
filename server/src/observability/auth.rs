//! How calls to a tracing backend authenticate: the Databricks workspace's credential, or the
//! `Authorization` MLflow and OpenTelemetry users already configure for their servers.

use base64::Engine as _;

use crate::databricks::auth::WorkspaceAuth;
use crate::secret::Secret;

#[derive(Clone)]
pub enum TrackingAuth {
    /// The workspace's token, renewed when refused.
    Workspace(WorkspaceAuth),
    /// A fixed `Authorization` value.
    Header(Secret),
}

impl TrackingAuth {
    /// An MLflow server's credential as MLflow's clients take it: `MLFLOW_TRACKING_TOKEN` (bearer),
    /// else `MLFLOW_TRACKING_USERNAME` and `_PASSWORD` (basic).
    pub fn mlflow_server(token: Option<&Secret>, username: Option<&str>, password: Option<&Secret>) -> Option<Self> {
        if let Some(token) = token.filter(|t| !t.expose().trim().is_empty()) {
            return Some(Self::Header(Secret::new(format!("Bearer {}", token.expose().trim()))));
        }
        let username = username.filter(|u| !u.is_empty())?;
        let pair = format!("{username}:{}", password.map(Secret::expose).unwrap_or_default());
        Some(Self::Header(Secret::new(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)))))
    }

    /// The `Authorization` value for the next call.
    pub async fn header(&self) -> Result<String, String> {
        match self {
            Self::Workspace(auth) => auth.bearer().await,
            Self::Header(value) => Ok(value.expose().to_string()),
        }
    }

    /// The backend refused `value` (401): true when a new one is worth a retry (a workspace token).
    pub async fn rejected(&self, value: &str) -> bool {
        match self {
            Self::Workspace(auth) => auth.rejected(value).await,
            Self::Header(_) => false,
        }
    }
}

/// `OTEL_EXPORTER_OTLP_TRACES_HEADERS`: `key=value` pairs separated by commas, values
/// percent-encoded (the OpenTelemetry spec); malformed pairs are skipped.
pub fn otlp_headers(spec: &str) -> Vec<(String, String)> {
    spec.split(',')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            let key = key.trim();
            let value = percent_encoding::percent_decode_str(value.trim()).decode_utf8_lossy().into_owned();
            (!key.is_empty()).then(|| (key.to_string(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn mlflow_credentials_become_bearer_or_basic() {
        let token = Secret::new("t0k");
        let auth = TrackingAuth::mlflow_server(Some(&token), Some("ana"), None).unwrap();
        assert_eq!(auth.header().await.unwrap(), "Bearer t0k", "the token wins");
        let password = Secret::new("pw");
        let auth = TrackingAuth::mlflow_server(None, Some("ana"), Some(&password)).unwrap();
        assert_eq!(auth.header().await.unwrap(), "Basic YW5hOnB3");
        assert!(TrackingAuth::mlflow_server(None, None, Some(&password)).is_none());
        assert!(!auth.rejected("Basic YW5hOnB3").await, "a fixed credential is not renewed");
    }

    #[test]
    fn otlp_headers_are_pairs_with_percent_encoded_values() {
        assert_eq!(
            otlp_headers("api-key=a%20b%2Cc, x-mlflow-experiment-id=7,broken,=v"),
            vec![("api-key".to_string(), "a b,c".to_string()), ("x-mlflow-experiment-id".to_string(), "7".to_string())]
        );
    }
}
