//! What a finished trace is made of (spans, their payloads, token usage), as exporters and the
//! local store take it.

use std::time::{SystemTime, UNIX_EPOCH};

use app::responses::Usage;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// What a span is, in MLflow's terms (`mlflow.spanType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SpanType {
    Unknown,
    Agent,
    Chain,
    ChatModel,
    Tool,
    Retriever,
}

impl SpanType {
    pub fn as_str(self) -> &'static str {
        match self {
            SpanType::Unknown => "UNKNOWN",
            SpanType::Agent => "AGENT",
            SpanType::Chain => "CHAIN",
            SpanType::ChatModel => "CHAT_MODEL",
            SpanType::Tool => "TOOL",
            SpanType::Retriever => "RETRIEVER",
        }
    }
}

/// A finished span. Attribute names for the wire are chosen in `genai`, nowhere else.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpanRecord {
    /// 16 lowercase hex digits.
    pub span_id: String,
    pub parent_id: Option<String>,
    pub name: String,
    pub span_type: SpanType,
    pub start_ns: u64,
    pub end_ns: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Payload,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Payload,
    /// The model a CHAT_MODEL span called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<TokenUsage>,
    /// Everything else worth keeping (tool names, call ids…), by `genai`'s names.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub attributes: Map<String, Value>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
}

impl TokenUsage {
    pub fn add(&mut self, other: TokenUsage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.total_tokens += other.total_tokens;
    }
}

impl From<&Usage> for TokenUsage {
    fn from(u: &Usage) -> Self {
        let total = if u.total_tokens > 0 { u.total_tokens } else { u.input_tokens + u.output_tokens };
        Self { input_tokens: u.input_tokens, output_tokens: u.output_tokens, total_tokens: total }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TraceState {
    Ok,
    Error,
}

/// A finished trace, as exporters and the local viewer see it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TraceRecord {
    /// `tr-` and 32 lowercase hex digits (the OTel trace id).
    pub trace_id: String,
    pub name: String,
    pub start_ns: u64,
    pub end_ns: u64,
    pub state: TraceState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub request_preview: String,
    pub response_preview: String,
    /// Summed over the model calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<TokenUsage>,
    /// The LoggedModel this version of the app runs as (version tracking).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    /// Whose trace this is in the local viewer (the forwarded user, else the local user).
    #[serde(default)]
    pub owner: String,
    pub spans: Vec<SpanRecord>,
}

impl TraceRecord {
    /// The OTel trace id (the hex after `tr-`).
    pub fn otel_trace_id(&self) -> &str {
        self.trace_id.strip_prefix("tr-").unwrap_or(&self.trace_id)
    }

    pub fn root(&self) -> Option<&SpanRecord> {
        self.spans.iter().find(|s| s.parent_id.is_none())
    }

    pub fn duration_ms(&self) -> f64 {
        self.end_ns.saturating_sub(self.start_ns) as f64 / 1e6
    }
}

/// Span inputs and outputs: JSON text, written once from the typed values (no `Value` tree in
/// between) and passed through as it is to exporters and the store.
pub type Payload = Option<Box<RawValue>>;

/// The most a span's inputs or outputs keep, in bytes: traces are bounded like requests are.
pub const MAX_PAYLOAD_BYTES: usize = 512 * 1024;

/// `value` as a span payload; beyond [`MAX_PAYLOAD_BYTES`], its beginning and its size.
pub fn payload(value: &impl Serialize) -> Payload {
    let raw = serde_json::value::to_raw_value(value).ok()?;
    let text = raw.get();
    if text.len() <= MAX_PAYLOAD_BYTES {
        return Some(raw);
    }
    let mut cut = MAX_PAYLOAD_BYTES / 2;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    serde_json::value::to_raw_value(&serde_json::json!({
        "truncated": true,
        "bytes": text.len(),
        "start": &text[..cut],
    }))
    .ok()
}

pub fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// Previews are for lists and search: the first and last words, not the whole conversation.
const PREVIEW_CHARS: usize = 1000;

pub(super) fn preview(text: &str) -> String {
    match text.char_indices().nth(PREVIEW_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}
