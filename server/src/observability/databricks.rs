//! Databricks experiments that keep traces in the experiment itself (the default for the template's
//! experiment resource), written as the MLflow client writes them (docs/reference.md §4.3): the trace's info with
//! `StartTraceV3` (`POST /api/3.0/mlflow/traces`), then its spans as `traces.json` to the upload URL
//! the workspace hands out (`GET /api/2.0/mlflow/traces/{id}/credentials-for-data-upload`).

use std::time::Duration;

use base64::Engine;
use futures::future::BoxFuture;
use serde_json::{Map, Value, json};

use super::auth::TrackingAuth;
use super::export::{ExportError, TraceSink};
use super::genai::{self, Attr};
use super::otlp::{check_status, refused_token};
use super::record::{TraceRecord, TraceState};
use crate::databricks::auth::WorkspaceAuth;

const CALL_TIMEOUT: Duration = Duration::from_secs(30);

pub struct ExperimentSink {
    http: reqwest::Client,
    auth: WorkspaceAuth,
    experiment_id: String,
}

impl ExperimentSink {
    pub fn new(auth: WorkspaceAuth, experiment_id: &str) -> Self {
        Self { http: crate::http_client::new(), auth, experiment_id: experiment_id.to_string() }
    }

    async fn export_one(&self, trace: &TraceRecord) -> Result<(), ExportError> {
        let bearer = self.auth.bearer().await.map_err(ExportError::Transient)?;
        let url = format!("{}/api/3.0/mlflow/traces", self.auth.host);
        let response = self
            .http
            .post(&url)
            .timeout(CALL_TIMEOUT)
            .header(reqwest::header::AUTHORIZATION, &bearer)
            .json(&start_trace_body(trace, &self.experiment_id))
            .send()
            .await
            .map_err(|e| ExportError::Transient(format!("{url}: {e}")))?;
        refused_token(&TrackingAuth::Workspace(self.auth.clone()), &bearer, &url, &response).await?;
        check_status(&url, response).await?;

        let url = format!("{}/api/2.0/mlflow/traces/{}/credentials-for-data-upload", self.auth.host, trace.trace_id);
        let response = self
            .http
            .get(&url)
            .timeout(CALL_TIMEOUT)
            .header(reqwest::header::AUTHORIZATION, &bearer)
            .send()
            .await
            .map_err(|e| ExportError::Transient(format!("{url}: {e}")))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_default();
        if !status.is_success() {
            let message = format!("{url} answered HTTP {}: {body}", status.as_u16());
            return Err(if status.is_server_error() || status.as_u16() == 429 {
                ExportError::Transient(message)
            } else {
                ExportError::Rejected(message)
            });
        }
        let credential = &body["credential_info"];
        let signed_uri = credential["signed_uri"]
            .as_str()
            .ok_or_else(|| ExportError::Rejected(format!("{url}: no signed_uri in {body}")))?;
        let kind = credential["type"].as_str().unwrap_or("");
        let data = spans_json(trace).to_string();
        match kind {
            // ADLS Gen2 takes a file in three calls: create, append, flush.
            "AZURE_ADLS_GEN2_SAS_URI" => {
                let with = |query: &str| {
                    let separator = if signed_uri.contains('?') { '&' } else { '?' };
                    format!("{signed_uri}{separator}{query}")
                };
                self.put(reqwest::Method::PUT, &with("resource=file"), credential, None).await?;
                self.put(reqwest::Method::PATCH, &with("action=append&position=0"), credential, Some(data.clone()))
                    .await?;
                self.put(
                    reqwest::Method::PATCH,
                    &with(&format!("action=flush&position={}", data.len())),
                    credential,
                    None,
                )
                .await
            }
            _ => self.put(reqwest::Method::PUT, signed_uri, credential, Some(data)).await,
        }
    }

    /// One upload call with the credential's headers (and Azure's blob type for SAS URIs).
    async fn put(
        &self,
        method: reqwest::Method,
        url: &str,
        credential: &Value,
        body: Option<String>,
    ) -> Result<(), ExportError> {
        let mut request = self.http.request(method, url).timeout(CALL_TIMEOUT);
        for header in credential["headers"].as_array().into_iter().flatten() {
            if let (Some(name), Some(value)) = (header["name"].as_str(), header["value"].as_str()) {
                request = request.header(name, value);
            }
        }
        if credential["type"] == "AZURE_SAS_URI" {
            request = request.header("x-ms-blob-type", "BlockBlob");
        }
        let request = match body {
            Some(body) => request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body),
            None => request.header(reqwest::header::CONTENT_LENGTH, "0"),
        };
        // The signed URL is a credential: errors name the host only.
        let host = reqwest::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default();
        let response = request
            .send()
            .await
            .map_err(|e| ExportError::Transient(format!("upload to {host}: {}", e.without_url())))?;
        check_status(&format!("upload to {host}"), response).await
    }
}

impl TraceSink for ExperimentSink {
    fn describe(&self) -> String {
        format!("Databricks experiment {} at {}", self.experiment_id, self.auth.host)
    }

    fn export<'a>(&'a self, batch: &'a [TraceRecord]) -> BoxFuture<'a, Result<(), ExportError>> {
        Box::pin(async move {
            for trace in batch {
                self.export_one(trace).await?;
            }
            Ok(())
        })
    }
}

fn rfc3339(ns: u64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns as i64).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The `StartTraceV3` body: the trace's info, its metadata and tags.
pub fn start_trace_body(trace: &TraceRecord, experiment_id: &str) -> Value {
    let mut metadata = Map::new();
    metadata.insert("mlflow.trace_schema.version".into(), json!("3"));
    if let Some(session) = &trace.session {
        metadata.insert("mlflow.trace.session".into(), json!(session));
    }
    if let Some(user) = &trace.user {
        metadata.insert("mlflow.trace.user".into(), json!(user));
    }
    if let Some(model_id) = &trace.model_id {
        metadata.insert("mlflow.modelId".into(), json!(model_id));
    }
    if let Some(u) = &trace.usage {
        metadata.insert(
            "mlflow.trace.tokenUsage".into(),
            json!(json!({"input_tokens": u.input_tokens, "output_tokens": u.output_tokens, "total_tokens": u.total_tokens}).to_string()),
        );
    }
    let state = if trace.state == TraceState::Ok { "OK" } else { "ERROR" };
    json!({"trace": {"trace_info": {
        "trace_id": trace.trace_id,
        "trace_location": {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": experiment_id}},
        "request_time": rfc3339(trace.start_ns),
        "execution_duration": format!("{:.3}s", trace.end_ns.saturating_sub(trace.start_ns) as f64 / 1e9),
        "state": state,
        "trace_metadata": metadata,
        "tags": {"mlflow.traceName": trace.name},
        "request_preview": trace.request_preview,
        "response_preview": trace.response_preview,
    }}})
}

/// Attributes whose value is JSON already (MLflow stores every attribute JSON-encoded: these are
/// stored as they are, plain strings are quoted).
const JSON_ATTRIBUTES: &[&str] =
    &["mlflow.spanInputs", "mlflow.spanOutputs", "mlflow.chat.tokenUsage", "mlflow.chat.tools"];

/// `traces.json`: the spans as MLflow's `Span.to_dict()` writes them.
pub fn spans_json(trace: &TraceRecord) -> Value {
    let b64 = |hex: &str| {
        let bytes: Vec<u8> =
            (0..hex.len() / 2).filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()).collect();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    };
    let trace_id = b64(trace.otel_trace_id());
    let spans: Vec<Value> = trace
        .spans
        .iter()
        .map(|span| {
            let mut attributes = Map::new();
            attributes.insert("mlflow.traceRequestId".into(), json!(json!(trace.trace_id).to_string()));
            for (key, value) in genai::otel_attributes(span, trace) {
                if key.starts_with("mlflow.traceTag.") {
                    continue; // tags went with the trace info
                }
                let stored = match value {
                    Attr::Str(s) if JSON_ATTRIBUTES.contains(&key.as_str()) => s,
                    Attr::Str(s) => json!(s).to_string(),
                    Attr::Int(i) => i.to_string(),
                };
                attributes.insert(key, Value::String(stored));
            }
            let (code, message) = match &span.error {
                Some(message) => ("STATUS_CODE_ERROR", message.as_str()),
                None => ("STATUS_CODE_OK", ""),
            };
            json!({
                "trace_id": trace_id,
                "span_id": b64(&span.span_id),
                "parent_span_id": span.parent_id.as_deref().map(b64),
                "name": span.name,
                "start_time_unix_nano": span.start_ns,
                "end_time_unix_nano": span.end_ns.max(span.start_ns),
                "events": [],
                "status": {"code": code, "message": message},
                "attributes": attributes,
                "links": [],
            })
        })
        .collect();
    json!({"spans": spans})
}
