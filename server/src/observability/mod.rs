//! Every request becomes an MLflow trace (docs/reference.md §4): the agent loop records spans into a [`Trace`],
//! and an [`Exporter`] sends finished traces in the background to where the settings say:
//!
//! - `MLFLOW_TRACKING_URI=http(s)://…` and `MLFLOW_EXPERIMENT_ID`: an MLflow server, over OTLP;
//! - `MLFLOW_TRACKING_URI=databricks` and `MLFLOW_EXPERIMENT_ID`: the experiment, as the MLflow
//!   client writes it (trace info, then the spans as an artifact); with
//!   `MLFLOW_TRACING_DESTINATION=<catalog>.<schema>`, the workspace's OTLP endpoint, into the
//!   experiment's Unity Catalog tables;
//! - nothing: the local trace store, shown at `/traces`.
//!
//! `AGENT_TRACING=false` records nothing at all.

pub mod auth;
pub mod databricks;
pub mod export;
pub mod genai;
pub mod local;
pub mod mlflow;
pub mod otlp;
pub mod record;
pub mod trace;

use std::sync::Arc;

pub use export::Exporter;
pub use trace::{Span, SpanType, Trace, TraceStart};

use crate::config::TracingSettings;
use crate::databricks::auth::WorkspaceAuth;
use crate::store::feedback::{FeedbackSink, NoFeedbackSink};
use export::TraceSink as _;
use local::LocalTraceStore;
use mlflow::MlflowClient;

/// Tracing as configured: the exporter requests use, the local store (when traces stay here) and
/// the MLflow client (when they go to MLflow), which also takes user feedback.
#[derive(Clone)]
pub struct Observability {
    pub exporter: Exporter,
    pub local: Option<LocalTraceStore>,
    pub mlflow: Option<MlflowClient>,
    pub experiment_id: Option<String>,
}

impl Observability {
    pub fn off() -> Self {
        Self { exporter: Exporter::disabled(), local: None, mlflow: None, experiment_id: None }
    }

    /// Where votes go: MLflow assessments when traces go to MLflow.
    pub fn feedback_sink(&self) -> Arc<dyn FeedbackSink> {
        match &self.mlflow {
            Some(client) => Arc::new(client.clone()),
            None => Arc::new(NoFeedbackSink),
        }
    }

    /// Sets tracing up as the settings say; `app_name` names the service (and the app's versions),
    /// local traces go under `data_dir`. Never fails: a destination that cannot work is logged and
    /// traces stay local.
    pub async fn start(
        settings: &TracingSettings,
        app_name: Option<&str>,
        data_dir: &std::path::Path,
        workspace: Option<WorkspaceAuth>,
    ) -> Self {
        if !settings.enabled {
            return Self::off();
        }
        let service = app_name.unwrap_or("agent-app").to_string();
        let mut experiment_id = settings.mlflow_experiment_id.clone().filter(|s| !s.trim().is_empty());
        let uri = settings.mlflow_tracking_uri.as_deref().map(str::trim).filter(|s| !s.is_empty());
        if let Some(endpoint) = settings.otel_traces_endpoint.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            // As MLflow does: with a collector set, spans go there and not to the tracking server.
            let headers =
                settings.otel_traces_headers.as_ref().map(|h| auth::otlp_headers(h.expose())).unwrap_or_default();
            let sink = otlp::OtlpSink::collector(endpoint, headers, &service);
            tracing::info!(destination = %sink.describe(), "tracing to an OpenTelemetry collector");
            return Self {
                exporter: Exporter::start(Arc::new(sink), settings.trace_queue),
                local: None,
                mlflow: None,
                experiment_id: None,
            };
        }
        let client = match uri {
            None => None,
            Some(uri) if uri.starts_with("http://") || uri.starts_with("https://") => {
                let auth = auth::TrackingAuth::mlflow_server(
                    settings.mlflow_tracking_token.as_ref(),
                    settings.mlflow_tracking_username.as_deref(),
                    settings.mlflow_tracking_password.as_ref(),
                );
                Some(MlflowClient::server(uri, auth))
            }
            Some(uri) if uri == "databricks" || uri.starts_with("databricks://") => match &workspace {
                Some(auth) => Some(MlflowClient::databricks(auth.clone())),
                None => {
                    tracing::error!(
                        "MLFLOW_TRACKING_URI=databricks needs DATABRICKS_HOST and DATABRICKS_TOKEN, a profile (the \
                         Databricks config file) or the app's DATABRICKS_CLIENT_ID/_SECRET; traces stay local"
                    );
                    None
                }
            },
            Some(other) => {
                tracing::error!(
                    uri = other,
                    "MLFLOW_TRACKING_URI must be http(s)://…, databricks or databricks://<profile>; traces stay local"
                );
                None
            }
        };
        if let (Some(client), None, Some(name)) = (
            &client,
            &experiment_id,
            settings.mlflow_experiment_name.as_deref().map(str::trim).filter(|n| !n.is_empty()),
        ) {
            match client.find_or_create_experiment(name).await {
                Ok(id) => experiment_id = Some(id),
                Err(error) => {
                    tracing::error!(%error, experiment = name, "MLFLOW_EXPERIMENT_NAME could not be resolved")
                }
            }
        }
        let remote: Option<(Arc<dyn export::TraceSink>, MlflowClient)> = match (client, uri) {
            (None, _) | (_, None) => None,
            (Some(client), Some(uri)) if uri.starts_with("http") => match &experiment_id {
                Some(id) => {
                    let auth = client.auth().cloned();
                    Some((Arc::new(otlp::OtlpSink::mlflow(uri, id, auth, &service)), client))
                }
                None => {
                    tracing::error!(
                        "MLFLOW_TRACKING_URI is set but neither MLFLOW_EXPERIMENT_ID nor MLFLOW_EXPERIMENT_NAME is; traces stay local"
                    );
                    None
                }
            },
            (Some(client), Some(_)) => {
                let auth = workspace.expect("a Databricks client has a workspace");
                match settings.mlflow_tracing_destination.as_deref() {
                    Some(destination) if destination.split('.').count() == 2 => Some((
                        Arc::new(otlp::OtlpSink::databricks_uc(auth, destination, experiment_id.as_deref(), &service)),
                        client,
                    )),
                    None => match &experiment_id {
                        Some(id) => Some((Arc::new(databricks::ExperimentSink::new(auth, id)), client)),
                        None => {
                            tracing::error!(
                                "MLFLOW_TRACKING_URI=databricks needs MLFLOW_EXPERIMENT_ID or MLFLOW_EXPERIMENT_NAME; \
                                 traces stay local"
                            );
                            None
                        }
                    },
                    Some(destination) => {
                        tracing::error!(
                            destination,
                            "MLFLOW_TRACING_DESTINATION must be <catalog>.<schema>; traces stay local"
                        );
                        None
                    }
                }
            }
        };
        if let Some((sink, client)) = remote {
            tracing::info!(destination = %sink.describe(), "tracing to MLflow");
            let exporter = Exporter::start(sink, settings.trace_queue);
            if let Some(id) = &experiment_id {
                track_version(&exporter, &client, id, app_name).await;
            }
            return Self { exporter, local: None, mlflow: Some(client), experiment_id };
        }
        let path = data_dir.join("traces.db");
        match LocalTraceStore::open(&path, settings.local_traces).await {
            Ok(store) => {
                tracing::info!(path = %path.display(), "traces kept locally (see /traces)");
                let exporter = Exporter::start(Arc::new(store.clone()), settings.trace_queue);
                Self { exporter, local: Some(store), mlflow: None, experiment_id: None }
            }
            Err(error) => {
                tracing::error!(%error, path = %path.display(), "the local trace store could not be opened; tracing is off");
                Self::off()
            }
        }
    }
}

/// Finds or creates the LoggedModel `<app>-<version>` and puts its id on every trace from now on
/// (docs/reference.md §4.2). Failure is logged, not fatal.
async fn track_version(exporter: &Exporter, client: &MlflowClient, experiment_id: &str, app_name: Option<&str>) {
    let name = format!("{}-{}", app_name.unwrap_or("local"), mlflow::app_version());
    match client.find_or_create_logged_model(experiment_id, &name).await {
        Ok(id) => {
            tracing::info!(model = %name, model_id = %id, "active LoggedModel");
            exporter.set_model_id(id);
        }
        Err(error) => tracing::warn!(%error, model = %name, "version tracking is off: no LoggedModel"),
    }
}
