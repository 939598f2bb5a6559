//! The one place that knows attribute names: a span as MLflow and OpenTelemetry GenAI readers
//! expect it. Both families go on every span (`mlflow.*` for MLflow servers, `gen_ai.*` for
//! Databricks' managed MLflow and other OTel back ends).

use serde_json::{Value, json};

use super::record::{SpanRecord, SpanType, TraceRecord};

/// An attribute value on the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    Str(String),
    Int(i64),
}

// Keys the agent loop sets on `SpanRecord::attributes` (through the functions below).
const TOOL_NAME: &str = "gen_ai.tool.name";
const TOOL_CALL_ID: &str = "gen_ai.tool.call.id";
const AGENT_NAME: &str = "gen_ai.agent.name";
const PROVIDER: &str = "gen_ai.provider.name";
const CHAT_TOOLS: &str = "mlflow.chat.tools";
const MESSAGE_FORMAT: &str = "mlflow.message.format";

/// Marks an AGENT span as the named agent's run.
pub fn agent(span: &mut SpanRecord, name: &str, tools: Vec<String>) {
    span.attributes.insert(AGENT_NAME.into(), json!(name));
    span.attributes.insert("tools".into(), json!(tools));
}

/// Marks a CHAT_MODEL span: which model, served by what, with which tools offered.
pub fn chat_model(span: &mut SpanRecord, model: &str, provider: &str, tools: Option<&serde_json::value::RawValue>) {
    span.model = Some(model.to_string());
    span.attributes.insert(PROVIDER.into(), json!(provider));
    span.attributes.insert(MESSAGE_FORMAT.into(), json!("openai"));
    if let Some(tools) = tools.filter(|t| t.get() != "[]") {
        // Kept as JSON text: it goes on the wire as a string attribute anyway.
        span.attributes.insert(CHAT_TOOLS.into(), Value::String(tools.get().to_string()));
    }
}

/// Marks a TOOL or RETRIEVER span with the call it serves.
pub fn tool_call(span: &mut SpanRecord, name: &str, call_id: &str) {
    span.attributes.insert(TOOL_NAME.into(), json!(name));
    span.attributes.insert(TOOL_CALL_ID.into(), json!(call_id));
}

fn json_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn str_attr(out: &mut Vec<(String, Attr)>, key: &str, value: impl Into<String>) {
    out.push((key.to_string(), Attr::Str(value.into())));
}

/// The span's attributes as they go on the wire (OTLP).
pub fn otel_attributes(span: &SpanRecord, trace: &TraceRecord) -> Vec<(String, Attr)> {
    let mut out = Vec::with_capacity(16);
    str_attr(&mut out, "mlflow.spanType", span.span_type.as_str());
    let inputs = span.inputs.as_ref().map(|raw| raw.get().to_string());
    let outputs = span.outputs.as_ref().map(|raw| raw.get().to_string());
    if let Some(inputs) = &inputs {
        str_attr(&mut out, "mlflow.spanInputs", inputs.clone());
    }
    if let Some(outputs) = &outputs {
        str_attr(&mut out, "mlflow.spanOutputs", outputs.clone());
    }
    match span.span_type {
        SpanType::Agent => str_attr(&mut out, "gen_ai.operation.name", "invoke_agent"),
        SpanType::ChatModel => {
            str_attr(&mut out, "gen_ai.operation.name", "chat");
            if let Some(inputs) = &inputs {
                str_attr(&mut out, "gen_ai.input.messages", inputs.clone());
            }
            if let Some(outputs) = &outputs {
                str_attr(&mut out, "gen_ai.output.messages", outputs.clone());
            }
        }
        SpanType::Tool | SpanType::Retriever => {
            str_attr(&mut out, "gen_ai.operation.name", "execute_tool");
            if let Some(inputs) = &inputs {
                str_attr(&mut out, "gen_ai.tool.call.arguments", inputs.clone());
            }
            if let Some(outputs) = &outputs {
                str_attr(&mut out, "gen_ai.tool.call.result", outputs.clone());
            }
        }
        SpanType::Unknown | SpanType::Chain => {}
    }
    if let Some(model) = &span.model {
        str_attr(&mut out, "gen_ai.request.model", model.clone());
        str_attr(&mut out, "mlflow.llm.model", model.clone());
    }
    if let Some(usage) = &span.usage {
        out.push(("gen_ai.usage.input_tokens".into(), Attr::Int(usage.input_tokens as i64)));
        out.push(("gen_ai.usage.output_tokens".into(), Attr::Int(usage.output_tokens as i64)));
        str_attr(
            &mut out,
            "mlflow.chat.tokenUsage",
            json!({"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
                   "total_tokens": usage.total_tokens})
            .to_string(),
        );
    }
    for (key, value) in &span.attributes {
        str_attr(&mut out, key, json_text(value));
    }
    if span.parent_id.is_none() {
        // The trace's own facts ride on the root span: MLflow reads the session and the user from
        // any span, and trace tags from `mlflow.traceTag.*` on the root.
        if let Some(session) = &trace.session {
            str_attr(&mut out, "session.id", session.clone());
            str_attr(&mut out, "gen_ai.conversation.id", session.clone());
        }
        if let Some(user) = &trace.user {
            str_attr(&mut out, "user.id", user.clone());
        }
        if let Some(model_id) = &trace.model_id {
            str_attr(&mut out, "mlflow.traceTag.mlflow.modelId", model_id.clone());
        }
        str_attr(&mut out, "mlflow.traceTag.mlflow.traceName", trace.name.clone());
    }
    out
}

/// What a retriever tool returned, as MLflow's RETRIEVER spans show it: a list of documents with
/// `page_content` and `metadata` (`doc_uri`, `chunk_id`), mapped by the tool's [`RetrieverSchema`].
pub fn retriever_documents(output: &str, schema: &RetrieverSchema) -> Value {
    let Ok(parsed) = serde_json::from_str::<Value>(output) else { return json!(output) };
    let rows = match &parsed {
        Value::Array(rows) => rows.clone(),
        Value::Object(o) => match ["documents", "results", "data", "rows"].iter().find_map(|k| o.get(*k)) {
            Some(Value::Array(rows)) => rows.clone(),
            _ => vec![parsed.clone()],
        },
        _ => return parsed,
    };
    let documents: Vec<Value> = rows
        .iter()
        .map(|row| {
            let field = |name: &Option<String>| name.as_deref().and_then(|n| row.get(n)).cloned();
            let text =
                field(&Some(schema.text_column.clone())).map(|v| json_text(&v)).unwrap_or_else(|| row.to_string());
            let mut metadata = serde_json::Map::new();
            if let Some(id) = field(&schema.primary_key) {
                metadata.insert("chunk_id".into(), Value::String(json_text(&id)));
            }
            if let Some(uri) = field(&schema.doc_uri) {
                metadata.insert("doc_uri".into(), uri);
            }
            for other in &schema.other_columns {
                if let Some(v) = row.get(other) {
                    metadata.insert(other.clone(), v.clone());
                }
            }
            json!({"page_content": text, "metadata": metadata, "id": metadata.get("chunk_id")})
        })
        .collect();
    Value::Array(documents)
}

/// How a retriever tool's result rows map onto MLflow's document fields (the equivalent of
/// `mlflow.models.set_retriever_schema`).
#[derive(Debug, Clone, PartialEq)]
pub struct RetrieverSchema {
    pub primary_key: Option<String>,
    pub text_column: String,
    pub doc_uri: Option<String>,
    pub other_columns: Vec<String>,
}

impl RetrieverSchema {
    pub fn new(text_column: &str) -> Self {
        Self { primary_key: None, text_column: text_column.to_string(), doc_uri: None, other_columns: Vec::new() }
    }

    pub fn primary_key(mut self, column: &str) -> Self {
        self.primary_key = Some(column.to_string());
        self
    }

    pub fn doc_uri(mut self, column: &str) -> Self {
        self.doc_uri = Some(column.to_string());
        self
    }

    pub fn other_columns(mut self, columns: &[&str]) -> Self {
        self.other_columns = columns.iter().map(|c| c.to_string()).collect();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retriever_rows_become_documents() {
        let schema = RetrieverSchema::new("text").primary_key("id").doc_uri("url");
        let docs = retriever_documents(r#"[{"id": 7, "text": "hello", "url": "https://x/1"}]"#, &schema);
        assert_eq!(
            docs,
            json!([{"page_content": "hello", "metadata": {"chunk_id": "7", "doc_uri": "https://x/1"}, "id": "7"}])
        );
        let docs = retriever_documents(r#"{"results": [{"text": "a"}]}"#, &schema);
        assert_eq!(docs[0]["page_content"], "a");
        assert_eq!(retriever_documents("plain words", &schema), json!("plain words"));
    }
}
