//! The ResponsesAgent wire format: MLflow's `ResponsesAgentRequest`, `ResponsesAgentResponse` and
//! `ResponsesAgentStreamEvent` (docs/reference.md §2), shared by the server, the browser and the test clients.
//!
//! Lenient where MLflow is lenient: unknown fields are kept in `extra` and written back out, unknown
//! stream events pass through. Strict where MLflow validates: roles, item types and required item
//! fields, with messages that say which field of which item is wrong.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Fields we do not model, kept so that nothing a client sends or receives is dropped.
pub type Extra = Map<String, Value>;

/// Why a request body is not a valid `ResponsesAgentRequest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// Where the problem is, pydantic style: `input`, `input.2.role`, `temperature`.
    pub loc: String,
    pub msg: String,
}

impl std::fmt::Display for ValidationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.loc, self.msg)
    }
}

impl std::error::Error for ValidationError {}

fn invalid(loc: impl Into<String>, msg: impl Into<String>) -> ValidationError {
    ValidationError { loc: loc.into(), msg: msg.into() }
}

// ---------------------------------------------------------------------------------------------
// Request
// ---------------------------------------------------------------------------------------------

/// `context` of a request: who is talking, in which conversation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(schemars::JsonSchema))]
pub struct ChatContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A `ResponsesAgentRequest`. `stream` is not a field: the server takes it out first (docs/reference.md §1.3).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "ssr", derive(schemars::JsonSchema))]
pub struct ResponsesRequest {
    pub input: Vec<Item>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_inputs: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<ChatContext>,
    /// `apps/<name>`, `chat-model`…: accepted and ignored, as the reference does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl ResponsesRequest {
    /// A request with one user message.
    pub fn user(text: impl Into<String>) -> Self {
        Self { input: vec![Item::user(text)], ..Self::default() }
    }

    /// Validates a parsed JSON body (without `stream`) the way MLflow does.
    pub fn from_value(value: Value) -> Result<Self, ValidationError> {
        let Value::Object(mut body) = value else {
            return Err(invalid("body", "Input should be a valid dictionary"));
        };
        let input = match body.remove("input") {
            None | Some(Value::Null) => return Err(invalid("input", "Field required")),
            Some(Value::Array(items)) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| Item::from_value(v).map_err(|e| e.under(&format!("input.{i}"))))
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err(invalid("input", "Input should be a valid list")),
        };
        let custom_inputs = match body.remove("custom_inputs") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m),
            Some(_) => return Err(invalid("custom_inputs", "Input should be a valid dictionary")),
        };
        let tool_choice = take::<Value>(&mut body, "tool_choice")?;
        if let Some(choice) = &tool_choice {
            let ok = choice.is_string() || choice.get("type").and_then(Value::as_str).is_some();
            if !ok {
                return Err(invalid(
                    "tool_choice",
                    "Input should be 'none', 'auto', 'required' or {\"type\": \"function\", \"name\": ...}",
                ));
            }
        }
        Ok(Self {
            input,
            custom_inputs,
            context: take(&mut body, "context")?,
            model: take(&mut body, "model")?,
            tool_choice,
            temperature: take(&mut body, "temperature")?,
            top_p: take(&mut body, "top_p")?,
            max_output_tokens: take(&mut body, "max_output_tokens")?,
            parallel_tool_calls: take(&mut body, "parallel_tool_calls")?,
            metadata: take(&mut body, "metadata")?,
            extra: body,
        })
    }

    /// What the user asked last (the question a chat saves, a trace's request preview).
    pub fn last_user_text(&self) -> String {
        let text = self.input.iter().rev().find_map(|item| match item {
            Item::Message(m) if m.role == Role::User => Some(m.content.text()),
            _ => None,
        });
        text.unwrap_or_default()
    }

    /// The session this request belongs to: `context.conversation_id`, else `custom_inputs.session_id`.
    pub fn session_id(&self) -> Option<&str> {
        self.context
            .as_ref()
            .and_then(|c| c.conversation_id.as_deref())
            .or_else(|| self.custom_inputs.as_ref()?.get("session_id")?.as_str())
    }

    /// The user the client says this is (`context.user_id`).
    pub fn user_id(&self) -> Option<&str> {
        self.context.as_ref()?.user_id.as_deref()
    }
}

/// Takes an optional typed field out of the body; `null` counts as absent.
fn take<T: DeserializeOwned>(body: &mut Map<String, Value>, key: &str) -> Result<Option<T>, ValidationError> {
    match body.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v).map(Some).map_err(|e| invalid(key, clean_serde_message(&e))),
    }
}

/// serde_json appends " at line 1 column 7" to errors from values, which means nothing here.
fn clean_serde_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.find(" at line ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

impl<'de> Deserialize<'de> for ResponsesRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut v = Value::deserialize(d)?;
        if let Some(body) = v.as_object_mut() {
            body.remove("stream");
        }
        Self::from_value(v).map_err(serde::de::Error::custom)
    }
}

/// Python truthiness of the `stream` field, as the reference reads it (`"yes"` streams too).
pub fn is_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

// ---------------------------------------------------------------------------------------------
// Items (input and output share one shape)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
    System,
    Developer,
}

impl Role {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "user" => Self::User,
            "assistant" => Self::Assistant,
            "system" => Self::System,
            "developer" => Self::Developer,
            _ => return None,
        })
    }
}

/// A content part: `input_text`, `output_text`, `refusal`, `input_image`, `summary_text`…
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(schemars::JsonSchema))]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Vec<Value>>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl ContentPart {
    pub fn output_text(text: impl Into<String>) -> Self {
        Self { kind: "output_text".into(), text: Some(text.into()), annotations: Some(Vec::new()), extra: Extra::new() }
    }

    pub fn input_text(text: impl Into<String>) -> Self {
        Self { kind: "input_text".into(), text: Some(text.into()), annotations: None, extra: Extra::new() }
    }

    pub fn summary_text(text: impl Into<String>) -> Self {
        Self { kind: "summary_text".into(), text: Some(text.into()), annotations: None, extra: Extra::new() }
    }

    /// The readable text of this part, if it has any (text parts and refusals).
    pub fn as_text(&self) -> Option<&str> {
        self.text.as_deref().or_else(|| self.extra.get("refusal")?.as_str())
    }
}

/// Message content: a plain string or a list of parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

impl Content {
    /// All text of the message, parts joined without separator (as the model produced them).
    pub fn text(&self) -> String {
        match self {
            Content::Text(t) => t.clone(),
            Content::Parts(parts) => parts.iter().filter_map(ContentPart::as_text).collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(schemars::JsonSchema))]
pub struct MessageItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub role: Role,
    pub content: Content,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(schemars::JsonSchema))]
pub struct FunctionCall {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub call_id: String,
    pub name: String,
    /// The arguments as a JSON text, as the model wrote them.
    pub arguments: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(schemars::JsonSchema))]
pub struct FunctionCallOutput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub call_id: String,
    /// A string, or a list of content objects.
    pub output: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl FunctionCallOutput {
    /// The output as text: strings as they are, anything else as JSON.
    pub fn output_text(&self) -> String {
        match &self.output {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(schemars::JsonSchema))]
pub struct ReasoningItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub summary: Vec<ContentPart>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(schemars::JsonSchema))]
pub struct McpApprovalRequest {
    pub id: String,
    pub name: String,
    pub arguments: String,
    pub server_label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(schemars::JsonSchema))]
pub struct McpApprovalResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub approval_request_id: String,
    pub approve: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// One input or output item, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ssr", derive(schemars::JsonSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Item {
    Message(MessageItem),
    FunctionCall(FunctionCall),
    FunctionCallOutput(FunctionCallOutput),
    Reasoning(ReasoningItem),
    McpApprovalRequest(McpApprovalRequest),
    McpApprovalResponse(McpApprovalResponse),
    /// `file_search_call`, `computer_call`, `web_search_call`: passed through unvalidated, like MLflow.
    #[serde(untagged)]
    Other(Map<String, Value>),
}

/// Item types MLflow accepts without validating them.
const PASS_THROUGH_TYPES: &[&str] = &["file_search_call", "computer_call", "web_search_call"];

impl ValidationError {
    fn under(self, prefix: &str) -> Self {
        let loc = if self.loc.is_empty() { prefix.to_string() } else { format!("{prefix}.{}", self.loc) };
        Self { loc, msg: self.msg }
    }
}

impl Item {
    pub fn user(text: impl Into<String>) -> Self {
        Item::Message(MessageItem {
            id: None,
            role: Role::User,
            content: Content::Text(text.into()),
            status: None,
            extra: Extra::new(),
        })
    }

    /// A finished assistant message with one `output_text` part.
    pub fn assistant_message(id: impl Into<String>, text: impl Into<String>) -> Self {
        Item::Message(MessageItem {
            id: Some(id.into()),
            role: Role::Assistant,
            content: Content::Parts(vec![ContentPart::output_text(text)]),
            status: Some("completed".into()),
            extra: Extra::new(),
        })
    }

    /// The `type` this item is written with.
    pub fn kind(&self) -> &str {
        match self {
            Item::Message(_) => "message",
            Item::FunctionCall(_) => "function_call",
            Item::FunctionCallOutput(_) => "function_call_output",
            Item::Reasoning(_) => "reasoning",
            Item::McpApprovalRequest(_) => "mcp_approval_request",
            Item::McpApprovalResponse(_) => "mcp_approval_response",
            Item::Other(m) => m.get("type").and_then(Value::as_str).unwrap_or(""),
        }
    }

    pub fn id(&self) -> Option<&str> {
        match self {
            Item::Message(m) => m.id.as_deref(),
            Item::FunctionCall(c) => c.id.as_deref(),
            Item::FunctionCallOutput(o) => o.id.as_deref(),
            Item::Reasoning(r) => r.id.as_deref(),
            Item::McpApprovalRequest(r) => Some(&r.id),
            Item::McpApprovalResponse(r) => r.id.as_deref(),
            Item::Other(m) => m.get("id").and_then(Value::as_str),
        }
    }

    /// Validates one item the way MLflow does; `loc` in the error is relative to the item.
    pub fn from_value(value: Value) -> Result<Self, ValidationError> {
        let Value::Object(mut map) = value else {
            return Err(invalid("", "Input should be a valid dictionary"));
        };
        let kind = match map.get("type") {
            None | Some(Value::Null) => "message".to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(invalid("type", "Input should be a valid string")),
        };
        if kind != "message" && !PASS_THROUGH_TYPES.contains(&kind.as_str()) {
            map.remove("type");
        }
        match kind.as_str() {
            "message" => {
                map.remove("type");
                let role = match map.get("role") {
                    None | Some(Value::Null) => return Err(invalid("role", "Field required")),
                    Some(Value::String(r)) => Role::parse(r).ok_or_else(|| {
                        invalid(
                            "role",
                            format!("Invalid role: {r}. Must be 'user', 'assistant', 'system', or 'developer'."),
                        )
                    })?,
                    Some(_) => return Err(invalid("role", "Input should be a valid string")),
                };
                match map.get("content") {
                    None | Some(Value::Null) => return Err(invalid("content", "Field required")),
                    Some(Value::String(_)) => {}
                    Some(Value::Array(parts)) => {
                        for (i, part) in parts.iter().enumerate() {
                            match part.get("type") {
                                Some(Value::String(_)) => {}
                                _ if !part.is_object() => {
                                    return Err(invalid(format!("content.{i}"), "Input should be a valid dictionary"));
                                }
                                _ => return Err(invalid(format!("content.{i}.type"), "Field required")),
                            }
                        }
                    }
                    Some(_) => return Err(invalid("content", "Input should be a valid string or list")),
                }
                let item: MessageItem = from_map(map)?;
                debug_assert_eq!(item.role, role);
                Ok(Item::Message(item))
            }
            "function_call" => {
                // Clients often send the arguments as an object; take it, as its JSON text.
                if let Some(args) = map.get_mut("arguments")
                    && args.is_object()
                {
                    *args = Value::String(args.to_string());
                }
                Ok(Item::FunctionCall(from_map(map)?))
            }
            "function_call_output" => {
                match map.get("output") {
                    None | Some(Value::Null) => return Err(invalid("output", "Field required")),
                    Some(Value::String(_) | Value::Array(_)) => {}
                    Some(_) => return Err(invalid("output", "Input should be a valid string or list")),
                }
                Ok(Item::FunctionCallOutput(from_map(map)?))
            }
            "reasoning" => Ok(Item::Reasoning(from_map(map)?)),
            "mcp_approval_request" => Ok(Item::McpApprovalRequest(from_map(map)?)),
            "mcp_approval_response" => Ok(Item::McpApprovalResponse(from_map(map)?)),
            t if PASS_THROUGH_TYPES.contains(&t) => Ok(Item::Other(map)),
            t => Err(invalid("type", format!("Invalid type: {t} for OutputItem"))),
        }
    }
}

/// Deserialises an item's fields, naming a missing or mistyped field in the error.
fn from_map<T: DeserializeOwned>(map: Map<String, Value>) -> Result<T, ValidationError> {
    serde_json::from_value(Value::Object(map)).map_err(|e| {
        let msg = clean_serde_message(&e);
        // "missing field `call_id`" → loc "call_id", pydantic's wording.
        match msg.strip_prefix("missing field `").and_then(|r| r.strip_suffix('`')) {
            Some(field) => invalid(field, "Field required"),
            None => invalid("", msg),
        }
    })
}

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Item::from_value(Value::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------------
// Response
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(schemars::JsonSchema))]
pub struct InputTokensDetails {
    #[serde(default)]
    pub cached_tokens: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(schemars::JsonSchema))]
pub struct OutputTokensDetails {
    #[serde(default)]
    pub reasoning_tokens: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(schemars::JsonSchema))]
pub struct Usage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub input_tokens_details: InputTokensDetails,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub output_tokens_details: OutputTokensDetails,
    #[serde(default)]
    pub total_tokens: u64,
}

impl Usage {
    pub fn add(&mut self, other: &Usage) {
        self.input_tokens += other.input_tokens;
        self.input_tokens_details.cached_tokens += other.input_tokens_details.cached_tokens;
        self.output_tokens += other.output_tokens;
        self.output_tokens_details.reasoning_tokens += other.output_tokens_details.reasoning_tokens;
        self.total_tokens += other.total_tokens;
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(schemars::JsonSchema))]
pub struct ResponseError {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub message: String,
}

/// A `ResponsesAgentResponse`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(schemars::JsonSchema))]
pub struct ResponseObject {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default = "response_object")]
    pub object: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub output: Vec<Item>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ResponseError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_outputs: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    #[serde(flatten)]
    pub extra: Extra,
}

fn response_object() -> String {
    "response".into()
}

impl ResponseObject {
    pub fn new(output: Vec<Item>) -> Self {
        Self {
            id: None,
            object: response_object(),
            created_at: None,
            status: None,
            model: None,
            output,
            usage: None,
            error: None,
            custom_outputs: None,
            metadata: None,
            extra: Extra::new(),
        }
    }

    /// The text of all assistant messages, as the OpenAI SDK's `output_text` gives it.
    pub fn output_text(&self) -> String {
        self.output
            .iter()
            .filter_map(|item| match item {
                Item::Message(m) if m.role == Role::Assistant => Some(m.content.text()),
                _ => None,
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Stream events
// ---------------------------------------------------------------------------------------------

/// One `data:` event of a Responses stream. Events we do not model pass through as `Other`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(schemars::JsonSchema))]
#[serde(tag = "type")]
pub enum StreamEvent {
    #[serde(rename = "response.created")]
    Created { response: ResponseObject, sequence_number: u64 },
    #[serde(rename = "response.in_progress")]
    InProgress { response: ResponseObject, sequence_number: u64 },
    #[serde(rename = "response.output_item.added")]
    OutputItemAdded {
        item: Item,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output_index: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sequence_number: Option<u64>,
    },
    #[serde(rename = "response.output_item.done")]
    OutputItemDone {
        item: Item,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output_index: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sequence_number: Option<u64>,
    },
    #[serde(rename = "response.content_part.added")]
    ContentPartAdded { item_id: String, output_index: u32, content_index: u32, part: ContentPart, sequence_number: u64 },
    #[serde(rename = "response.content_part.done")]
    ContentPartDone { item_id: String, output_index: u32, content_index: u32, part: ContentPart, sequence_number: u64 },
    #[serde(rename = "response.output_text.delta")]
    OutputTextDelta {
        item_id: String,
        delta: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output_index: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content_index: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sequence_number: Option<u64>,
    },
    #[serde(rename = "response.output_text.done")]
    OutputTextDone { item_id: String, output_index: u32, content_index: u32, text: String, sequence_number: u64 },
    #[serde(rename = "response.output_text.annotation.added")]
    AnnotationAdded {
        item_id: String,
        annotation_index: u32,
        annotation: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output_index: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content_index: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sequence_number: Option<u64>,
    },
    #[serde(rename = "response.function_call_arguments.delta")]
    FunctionCallArgumentsDelta { item_id: String, output_index: u32, delta: String, sequence_number: u64 },
    #[serde(rename = "response.function_call_arguments.done")]
    FunctionCallArgumentsDone { item_id: String, output_index: u32, arguments: String, sequence_number: u64 },
    #[serde(rename = "response.reasoning_summary_text.delta")]
    ReasoningSummaryTextDelta {
        item_id: String,
        output_index: u32,
        summary_index: u32,
        delta: String,
        sequence_number: u64,
    },
    #[serde(rename = "response.completed")]
    Completed { response: ResponseObject, sequence_number: u64 },
    /// An error during the stream. Carries every shape clients read: `message`/`code` (OpenAI),
    /// `error` as a string (MLflow AgentServer) and `databricks_output.error` (Model Serving).
    #[serde(rename = "error")]
    Error {
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
        #[serde(default)]
        param: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        databricks_output: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sequence_number: Option<u64>,
    },
    #[serde(untagged)]
    Other(Value),
}

impl StreamEvent {
    /// The in-band error event for a failure after the stream started.
    pub fn error(code: &str, message: impl Into<String>, sequence_number: Option<u64>) -> Self {
        let message = message.into();
        StreamEvent::Error {
            databricks_output: Some(serde_json::json!({
                "error": {"error_code": code, "message": message}
            })),
            error: Some(message.clone()),
            message,
            code: Some(code.to_string()),
            param: None,
            sequence_number,
        }
    }

    /// The event's `type`.
    pub fn kind(&self) -> &str {
        match self {
            StreamEvent::Created { .. } => "response.created",
            StreamEvent::InProgress { .. } => "response.in_progress",
            StreamEvent::OutputItemAdded { .. } => "response.output_item.added",
            StreamEvent::OutputItemDone { .. } => "response.output_item.done",
            StreamEvent::ContentPartAdded { .. } => "response.content_part.added",
            StreamEvent::ContentPartDone { .. } => "response.content_part.done",
            StreamEvent::OutputTextDelta { .. } => "response.output_text.delta",
            StreamEvent::OutputTextDone { .. } => "response.output_text.done",
            StreamEvent::AnnotationAdded { .. } => "response.output_text.annotation.added",
            StreamEvent::FunctionCallArgumentsDelta { .. } => "response.function_call_arguments.delta",
            StreamEvent::FunctionCallArgumentsDone { .. } => "response.function_call_arguments.done",
            StreamEvent::ReasoningSummaryTextDelta { .. } => "response.reasoning_summary_text.delta",
            StreamEvent::Completed { .. } => "response.completed",
            StreamEvent::Error { .. } => "error",
            StreamEvent::Other(v) => v.get("type").and_then(Value::as_str).unwrap_or(""),
        }
    }

    pub fn sequence_number(&self) -> Option<u64> {
        match self {
            StreamEvent::Created { sequence_number, .. }
            | StreamEvent::InProgress { sequence_number, .. }
            | StreamEvent::ContentPartAdded { sequence_number, .. }
            | StreamEvent::ContentPartDone { sequence_number, .. }
            | StreamEvent::OutputTextDone { sequence_number, .. }
            | StreamEvent::FunctionCallArgumentsDelta { sequence_number, .. }
            | StreamEvent::FunctionCallArgumentsDone { sequence_number, .. }
            | StreamEvent::ReasoningSummaryTextDelta { sequence_number, .. }
            | StreamEvent::Completed { sequence_number, .. } => Some(*sequence_number),
            StreamEvent::OutputItemAdded { sequence_number, .. }
            | StreamEvent::OutputItemDone { sequence_number, .. }
            | StreamEvent::OutputTextDelta { sequence_number, .. }
            | StreamEvent::AnnotationAdded { sequence_number, .. }
            | StreamEvent::Error { sequence_number, .. } => *sequence_number,
            StreamEvent::Other(v) => v.get("sequence_number").and_then(Value::as_u64),
        }
    }
}

/// One frame of a Responses SSE body, as a client reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamFrame {
    Event(Box<StreamEvent>),
    /// `{"trace_id": "tr-…"}`, sent last when `x-mlflow-return-trace-id: true`.
    TraceId(String),
    /// A bare `{"error": "…"}` (the reference's in-band error).
    Error(String),
    /// `[DONE]`.
    Done,
}

impl StreamFrame {
    /// Parses the `data` of one SSE frame.
    pub fn parse(data: &str) -> Result<Self, serde_json::Error> {
        match Self::parse_bare(data)? {
            Ok(frame) => Ok(frame),
            Err(value) => serde_json::from_value(value).map(|event| StreamFrame::Event(Box::new(event))),
        }
    }

    /// Parses a frame for the chat's [`Answer`](crate::conversation::Answer): the events it reads get
    /// the fields it reads (a response object keeps its id, metadata and custom outputs only), any other
    /// event stays an `Other` value. The browser parses with this: deserialising every event in full
    /// (response objects, usage, content parts) cost its bundle ~110 KB of wasm.
    pub fn parse_for_chat(data: &str) -> Result<Self, serde_json::Error> {
        let mut map = match Self::parse_bare(data)? {
            Ok(frame) => return Ok(frame),
            Err(Value::Object(map)) => map,
            Err(other) => return Ok(StreamFrame::Event(Box::new(StreamEvent::Other(other)))),
        };
        let text = |key: &str| map.get(key).and_then(Value::as_str).map(str::to_string);
        let number = |key: &str| map.get(key).and_then(Value::as_u64);
        let (item_id, delta) = (text("item_id").unwrap_or_default(), text("delta").unwrap_or_default());
        let (sequence_number, output_index) = (number("sequence_number"), number("output_index").map(|n| n as u32));
        let response = || {
            let part = |key: &str| map.get("response").and_then(|r| r.get(key));
            ResponseObject {
                id: part("id").and_then(Value::as_str).map(str::to_string),
                metadata: part("metadata").and_then(Value::as_object).cloned(),
                custom_outputs: part("custom_outputs").and_then(Value::as_object).cloned(),
                ..ResponseObject::new(Vec::new())
            }
        };
        let event = match map.get("type").and_then(Value::as_str).unwrap_or_default() {
            "response.output_text.delta" => StreamEvent::OutputTextDelta {
                item_id,
                delta,
                output_index,
                content_index: number("content_index").map(|n| n as u32),
                sequence_number,
            },
            "response.function_call_arguments.delta" => StreamEvent::FunctionCallArgumentsDelta {
                item_id,
                delta,
                output_index: output_index.unwrap_or_default(),
                sequence_number: sequence_number.unwrap_or_default(),
            },
            "response.reasoning_summary_text.delta" => StreamEvent::ReasoningSummaryTextDelta {
                item_id,
                delta,
                output_index: output_index.unwrap_or_default(),
                summary_index: number("summary_index").unwrap_or_default() as u32,
                sequence_number: sequence_number.unwrap_or_default(),
            },
            "response.created" => {
                StreamEvent::Created { response: response(), sequence_number: sequence_number.unwrap_or_default() }
            }
            "response.completed" => {
                StreamEvent::Completed { response: response(), sequence_number: sequence_number.unwrap_or_default() }
            }
            "error" => StreamEvent::Error {
                message: text("message").unwrap_or_default(),
                code: text("code"),
                param: None,
                error: text("error"),
                databricks_output: None,
                sequence_number,
            },
            kind @ ("response.output_item.added" | "response.output_item.done") => {
                let added = kind == "response.output_item.added";
                let item = serde_json::from_value(map.remove("item").unwrap_or_default())?;
                match added {
                    true => StreamEvent::OutputItemAdded { item, output_index, sequence_number },
                    false => StreamEvent::OutputItemDone { item, output_index, sequence_number },
                }
            }
            _ => StreamEvent::Other(Value::Object(map)),
        };
        Ok(StreamFrame::Event(Box::new(event)))
    }

    /// `[DONE]`, a trace id or a bare error frame; otherwise the parsed value, for an event.
    fn parse_bare(data: &str) -> Result<Result<Self, Value>, serde_json::Error> {
        if data.trim() == "[DONE]" {
            return Ok(Ok(StreamFrame::Done));
        }
        let value: Value = serde_json::from_str(data)?;
        if value.get("type").is_none() {
            if let Some(id) = value.get("trace_id").and_then(Value::as_str) {
                return Ok(Ok(StreamFrame::TraceId(id.to_string())));
            }
            if let Some(err) = value.get("error") {
                let msg = err.as_str().map(str::to_string).unwrap_or_else(|| err.to_string());
                return Ok(Ok(StreamFrame::Error(msg)));
            }
        }
        Ok(Err(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_events_kind_is_its_serialised_type() {
        let events = [
            StreamEvent::error("c", "m", Some(1)),
            StreamEvent::OutputTextDelta {
                item_id: "i".into(),
                delta: "d".into(),
                output_index: None,
                content_index: None,
                sequence_number: Some(2),
            },
            StreamEvent::Completed { response: ResponseObject::new(Vec::new()), sequence_number: 3 },
            StreamEvent::Other(json!({"type": "agent_app.notice", "message": "m"})),
        ];
        for event in events {
            assert_eq!(serde_json::to_value(&event).unwrap()["type"], event.kind());
        }
    }

    fn parse(v: Value) -> Result<ResponsesRequest, String> {
        ResponsesRequest::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn minimal_request() {
        let r = parse(json!({"input": [{"role": "user", "content": "hi"}]})).unwrap();
        assert_eq!(r.input, vec![Item::user("hi")]);
        assert_eq!(r.session_id(), None);
    }

    #[test]
    fn input_errors_name_the_field() {
        assert_eq!(parse(json!({})).unwrap_err(), "input: Field required");
        assert_eq!(parse(json!({"input": "hi"})).unwrap_err(), "input: Input should be a valid list");
        assert_eq!(
            parse(json!({"input": [{"role": "bogus", "content": "x"}]})).unwrap_err(),
            "input.0.role: Invalid role: bogus. Must be 'user', 'assistant', 'system', or 'developer'."
        );
        assert_eq!(
            parse(json!({"input": [{"role": "user", "content": "x"}, {"type": "foo"}]})).unwrap_err(),
            "input.1.type: Invalid type: foo for OutputItem"
        );
        assert_eq!(
            parse(json!({"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]})).unwrap_err(),
            "input.0.call_id: Field required"
        );
        assert_eq!(parse(json!({"input": [{"content": "x"}]})).unwrap_err(), "input.0.role: Field required");
        assert_eq!(parse(json!({"input": ["hi"]})).unwrap_err(), "input.0: Input should be a valid dictionary");
        assert_eq!(
            parse(json!({"input": [{"role": "user", "content": [{"text": "x"}]}]})).unwrap_err(),
            "input.0.content.0.type: Field required"
        );
        assert!(
            parse(json!({"input": [], "temperature": "hot"})).unwrap_err().starts_with("temperature: invalid type")
        );
        assert_eq!(
            parse(json!({"input": [], "custom_inputs": [1]})).unwrap_err(),
            "custom_inputs: Input should be a valid dictionary"
        );
    }

    #[test]
    fn every_item_kind_round_trips_and_unknown_fields_are_kept() {
        let items = json!([
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "input_text", "text": "What time is it?"}]},
            {"role": "assistant", "content": [{"type": "output_text", "text": "It is 12:00.", "annotations": []}], "id": "m1"},
            {"type": "message", "role": "assistant", "content": "plain", "status": null},
            {"type": "function_call", "call_id": "c1", "name": "get_current_time", "arguments": "{}", "id": "f1", "provider_data": {"x": 1}},
            {"type": "function_call_output", "call_id": "c1", "output": "2026-01-01T12:00:00"},
            {"type": "reasoning", "id": "r1", "summary": [{"type": "summary_text", "text": "thinking"}]},
            {"type": "mcp_approval_request", "id": "a1", "name": "t", "arguments": "{}", "server_label": "s"},
            {"type": "mcp_approval_response", "approval_request_id": "a1", "approve": true, "reason": null},
            {"type": "web_search_call", "id": "w1", "whatever": [1, 2]}
        ]);
        let r =
            parse(json!({"input": items, "model": "apps/x", "databricks_options": {"return_trace": true}})).unwrap();
        assert_eq!(r.input.len(), 10);
        assert_eq!(r.model.as_deref(), Some("apps/x"));
        assert_eq!(r.extra.get("databricks_options"), Some(&json!({"return_trace": true})));
        let Item::FunctionCall(call) = &r.input[4] else { panic!() };
        assert_eq!(call.extra.get("provider_data"), Some(&json!({"x": 1})));
        let out = serde_json::to_value(&r.input[4]).unwrap();
        assert_eq!(out["type"], "function_call");
        assert_eq!(out["provider_data"], json!({"x": 1}));
        assert_eq!(
            serde_json::to_value(&r.input[9]).unwrap(),
            json!({"type": "web_search_call", "id": "w1", "whatever": [1, 2]})
        );
        // A full round trip through JSON gives the same items.
        let again: Vec<Item> = serde_json::from_value(serde_json::to_value(&r.input).unwrap()).unwrap();
        assert_eq!(again, r.input);
    }

    #[test]
    fn object_arguments_become_json_text() {
        let item =
            Item::from_value(json!({"type": "function_call", "call_id": "c", "name": "f", "arguments": {"a": 1}}))
                .unwrap();
        let Item::FunctionCall(call) = item else { panic!() };
        assert_eq!(call.arguments, r#"{"a":1}"#);
    }

    #[test]
    fn session_id_prefers_conversation_id() {
        let r =
            parse(json!({"input": [], "context": {"conversation_id": "conv"}, "custom_inputs": {"session_id": "s"}}))
                .unwrap();
        assert_eq!(r.session_id(), Some("conv"));
        let r = parse(json!({"input": [], "custom_inputs": {"session_id": "s"}})).unwrap();
        assert_eq!(r.session_id(), Some("s"));
    }

    #[test]
    fn truthiness_matches_python() {
        for v in [json!(true), json!(1), json!("yes"), json!([0]), json!({"a": 1})] {
            assert!(is_truthy(&v), "{v}");
        }
        for v in [json!(false), json!(0), json!(""), json!([]), json!({}), json!(null), json!(0.0)] {
            assert!(!is_truthy(&v), "{v}");
        }
    }

    #[test]
    fn stream_frames() {
        let f = StreamFrame::parse(r#"{"type":"response.output_text.delta","item_id":"m","delta":"hi"}"#).unwrap();
        assert_eq!(
            f,
            StreamFrame::Event(Box::new(StreamEvent::OutputTextDelta {
                item_id: "m".into(),
                delta: "hi".into(),
                output_index: None,
                content_index: None,
                sequence_number: None
            }))
        );
        assert_eq!(StreamFrame::parse("[DONE]").unwrap(), StreamFrame::Done);
        assert_eq!(StreamFrame::parse(r#"{"trace_id":"tr-1"}"#).unwrap(), StreamFrame::TraceId("tr-1".into()));
        assert_eq!(StreamFrame::parse(r#"{"error":"boom"}"#).unwrap(), StreamFrame::Error("boom".into()));
        let other = StreamFrame::parse(r#"{"type":"response.custom","x":1}"#).unwrap();
        assert!(matches!(other, StreamFrame::Event(e) if matches!(*e, StreamEvent::Other(_))));
    }

    #[test]
    fn error_event_carries_every_client_shape() {
        let v = serde_json::to_value(StreamEvent::error("TEMPORARILY_UNAVAILABLE", "model busy", Some(7))).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"], "model busy");
        assert_eq!(v["message"], "model busy");
        assert_eq!(v["code"], "TEMPORARILY_UNAVAILABLE");
        assert_eq!(v["param"], Value::Null);
        assert_eq!(v["databricks_output"]["error"]["error_code"], "TEMPORARILY_UNAVAILABLE");
        assert_eq!(v["databricks_output"]["error"]["message"], "model busy");
        assert_eq!(v["sequence_number"], 7);
    }
}
