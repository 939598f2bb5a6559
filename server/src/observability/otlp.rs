//! OTLP/HTTP (protobuf) export: to an MLflow server's `/v1/traces` (the experiment in the
//! `x-mlflow-experiment-id` header), or to Databricks' `/api/2.0/otel/v1/traces` for experiments
//! whose traces live in a Unity Catalog table.

use std::time::Duration;

use futures::future::BoxFuture;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span, status};
use prost::Message;

use super::auth::TrackingAuth;
use super::export::{ExportError, TraceSink};
use super::genai::{self, Attr};
use super::trace::TraceRecord;
use crate::databricks::auth::WorkspaceAuth;

/// One export call's time limit.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(15);

pub struct OtlpSink {
    http: reqwest::Client,
    url: String,
    headers: Vec<(String, String)>,
    auth: Option<TrackingAuth>,
    service_name: String,
}

impl OtlpSink {
    /// An MLflow server (3.6 or later, SQL backend): `<tracking_uri>/v1/traces`.
    pub fn mlflow(tracking_uri: &str, experiment_id: &str, auth: Option<TrackingAuth>, service_name: &str) -> Self {
        Self {
            http: crate::http_client::new(),
            url: format!("{}/v1/traces", tracking_uri.trim_end_matches('/')),
            headers: vec![("x-mlflow-experiment-id".into(), experiment_id.to_string())],
            auth,
            service_name: service_name.to_string(),
        }
    }

    /// Any OpenTelemetry collector (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, the full URL) with its
    /// headers (`OTEL_EXPORTER_OTLP_TRACES_HEADERS`).
    pub fn collector(endpoint: &str, headers: Vec<(String, String)>, service_name: &str) -> Self {
        Self {
            http: crate::http_client::new(),
            url: endpoint.to_string(),
            headers,
            auth: None,
            service_name: service_name.to_string(),
        }
    }

    /// Databricks, for an experiment whose traces are stored in Unity Catalog: spans go to
    /// `<catalog>.<schema>.mlflow_experiment_trace_otel_spans` (MLflow's default table name).
    pub fn databricks_uc(
        auth: WorkspaceAuth,
        catalog_schema: &str,
        experiment_id: Option<&str>,
        service_name: &str,
    ) -> Self {
        let mut headers =
            vec![("x-databricks-uc-table-name".into(), format!("{catalog_schema}.mlflow_experiment_trace_otel_spans"))];
        if let Some(id) = experiment_id {
            headers.push(("x-mlflow-experiment-id".into(), id.to_string()));
        }
        Self {
            http: crate::http_client::new(),
            url: format!("{}/api/2.0/otel/v1/traces", auth.host),
            headers,
            auth: Some(TrackingAuth::Workspace(auth)),
            service_name: service_name.to_string(),
        }
    }
}

impl TraceSink for OtlpSink {
    fn describe(&self) -> String {
        format!("OTLP {}", self.url)
    }

    fn export<'a>(&'a self, batch: &'a [TraceRecord]) -> BoxFuture<'a, Result<(), ExportError>> {
        Box::pin(async move {
            let body = encode(batch, &self.service_name);
            let mut request = self
                .http
                .post(&self.url)
                .timeout(EXPORT_TIMEOUT)
                .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
                .body(body);
            for (name, value) in &self.headers {
                request = request.header(name.as_str(), value);
            }
            let mut bearer = None;
            if let Some(auth) = &self.auth {
                let value = auth.header().await.map_err(ExportError::Transient)?;
                request = request.header(reqwest::header::AUTHORIZATION, &value);
                bearer = Some(value);
            }
            let response = request.send().await.map_err(|e| ExportError::Transient(format!("{}: {e}", self.url)))?;
            if let (Some(auth), Some(bearer)) = (&self.auth, &bearer) {
                refused_token(auth, bearer, &self.url, &response).await?;
            }
            check_status(&self.url, response).await
        })
    }
}

/// A 401 to a renewable workspace token: the token is dropped and the export is worth retrying
/// (with a new one).
pub async fn refused_token(
    auth: &TrackingAuth,
    bearer: &str,
    url: &str,
    response: &reqwest::Response,
) -> Result<(), ExportError> {
    if response.status() == reqwest::StatusCode::UNAUTHORIZED && auth.rejected(bearer).await {
        return Err(ExportError::Transient(format!("{url} refused the workspace token; retrying with a new one")));
    }
    Ok(())
}

/// 2xx is success; 429 and 5xx are worth retrying; anything else is a rejection, with its reason.
pub async fn check_status(url: &str, response: reqwest::Response) -> Result<(), ExportError> {
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    let body: String = body.chars().take(500).collect();
    let message = format!("{url} answered HTTP {}: {body}", status.as_u16());
    if status.as_u16() == 429 || status.is_server_error() {
        Err(ExportError::Transient(message))
    } else {
        Err(ExportError::Rejected(message))
    }
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2).filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()).collect()
}

fn key_value(key: &str, value: Attr) -> KeyValue {
    let value = match value {
        Attr::Str(s) => any_value::Value::StringValue(s),
        Attr::Int(i) => any_value::Value::IntValue(i),
    };
    KeyValue { key: key.to_string(), value: Some(AnyValue { value: Some(value) }), ..Default::default() }
}

/// The batch as one `ExportTraceServiceRequest`, protobuf-encoded.
pub fn encode(batch: &[TraceRecord], service_name: &str) -> Vec<u8> {
    let spans = batch
        .iter()
        .flat_map(|trace| {
            let trace_id = hex_bytes(trace.otel_trace_id());
            trace.spans.iter().map(move |s| Span {
                trace_id: trace_id.clone(),
                span_id: hex_bytes(&s.span_id),
                parent_span_id: s.parent_id.as_deref().map(hex_bytes).unwrap_or_default(),
                name: s.name.clone(),
                kind: if s.parent_id.is_none() { span::SpanKind::Server } else { span::SpanKind::Internal } as i32,
                start_time_unix_nano: s.start_ns,
                end_time_unix_nano: s.end_ns.max(s.start_ns),
                attributes: genai::otel_attributes(s, trace).into_iter().map(|(k, v)| key_value(&k, v)).collect(),
                status: Some(match &s.error {
                    Some(message) => Status { message: message.clone(), code: status::StatusCode::Error as i32 },
                    None => Status { message: String::new(), code: status::StatusCode::Ok as i32 },
                }),
                ..Default::default()
            })
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![key_value("service.name", Attr::Str(service_name.to_string()))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "agent-app".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observability::trace::{SpanRecord, SpanType, TraceState};
    use serde_json::{Map, json};

    #[test]
    fn encodes_ids_parents_and_errors() {
        let span = |id: &str, parent: Option<&str>, error: Option<&str>| SpanRecord {
            span_id: id.into(),
            parent_id: parent.map(str::to_string),
            name: "s".into(),
            span_type: SpanType::Tool,
            start_ns: 5,
            end_ns: 9,
            error: error.map(str::to_string),
            inputs: crate::observability::trace::payload(&json!({"a": 1})),
            outputs: crate::observability::trace::payload(&"r"),
            model: None,
            usage: None,
            attributes: Map::new(),
        };
        let record = TraceRecord {
            trace_id: format!("tr-{}", "ab".repeat(16)),
            name: "t".into(),
            start_ns: 5,
            end_ns: 9,
            state: TraceState::Error,
            error: Some("boom".into()),
            session: Some("s-1".into()),
            user: None,
            request_preview: String::new(),
            response_preview: String::new(),
            usage: None,
            model_id: None,
            owner: String::new(),
            spans: vec![
                span("0000000000000001", None, Some("boom")),
                span("0000000000000002", Some("0000000000000001"), None),
            ],
        };
        let decoded = ExportTraceServiceRequest::decode(encode(&[record], "svc").as_slice()).unwrap();
        let spans = &decoded.resource_spans[0].scope_spans[0].spans;
        assert_eq!(spans[0].trace_id, vec![0xab; 16]);
        assert_eq!(spans[1].parent_span_id, vec![0, 0, 0, 0, 0, 0, 0, 1]);
        assert!(spans[0].parent_span_id.is_empty());
        assert_eq!(spans[0].status.as_ref().unwrap().code, status::StatusCode::Error as i32);
        let attr = |s: &Span, key: &str| {
            s.attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.clone()).and_then(|v| v.value)
        };
        assert_eq!(attr(&spans[0], "session.id"), Some(any_value::Value::StringValue("s-1".into())));
        assert_eq!(attr(&spans[1], "session.id"), None);
        assert_eq!(attr(&spans[1], "mlflow.spanType"), Some(any_value::Value::StringValue("TOOL".into())));
        assert_eq!(
            attr(&spans[1], "gen_ai.tool.call.arguments"),
            Some(any_value::Value::StringValue(r#"{"a":1}"#.into()))
        );
    }
}
