//! Model providers: what the agent loop needs from a chat model, whatever serves it.
//!
//! The loop speaks chat completions (as the reference's Agents SDK does with Databricks): it sends
//! [`ChatMessage`]s and tool specs, and reads a stream of [`ChatDelta`]s. A provider that cannot
//! stream returns the whole answer as a few deltas, so the loop has one code path.

#[cfg(feature = "embedded-model")]
pub mod local;
pub mod openai;

use std::time::Duration;

use app::responses::Usage;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde::Serialize;
use serde_json::Value;

/// One message of a chat-completions conversation, as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum ChatMessage {
    System {
        content: String,
    },
    User {
        content: UserContent,
    },
    Assistant {
        /// `null` when the message is only tool calls (as the reference sends it).
        content: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
    },
    Tool {
        tool_call_id: String,
        content: String,
    },
}

/// User content: text, or parts when there are images.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum UserContent {
    Text(String),
    Parts(Vec<Value>),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolCall {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionSpec {
    pub name: String,
    pub arguments: String,
}

impl ToolCall {
    pub fn function(id: impl Into<String>, name: impl Into<String>, arguments: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            kind: "function",
            function: FunctionSpec { name: name.into(), arguments: arguments.into() },
        }
    }
}

/// A tool as the model is told about it.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
    /// The schema qualifies for OpenAI's strict mode (every property required, no extras).
    pub strict: bool,
}

/// One model call.
#[derive(Debug, Clone, Default)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    pub tools: Vec<ToolSpec>,
    pub tool_choice: Option<Value>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub max_tokens: Option<u64>,
    pub parallel_tool_calls: Option<bool>,
}

/// A piece of the model's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatDelta {
    Text(String),
    /// Reasoning text (`reasoning_content`, or Databricks' reasoning content parts).
    Reasoning(String),
    /// A piece of tool call `index`: the id and name come once, the arguments in pieces.
    ToolCall {
        index: u32,
        id: Option<String>,
        name: Option<String>,
        arguments: String,
    },
    Usage(Usage),
    /// Why the model stopped (`stop`, `tool_calls`, `length`…).
    Finish(String),
}

pub type DeltaStream = BoxStream<'static, Result<ChatDelta, ModelError>>;

/// A chat model, local or remote.
pub trait ChatModel: Send + Sync + 'static {
    /// Where the answers come from, for people: "databricks", "openai-compatible", "local".
    fn backend(&self) -> &'static str;

    /// The model this provider always serves, whatever the request names (the embedded model).
    fn served_model(&self) -> Option<String> {
        None
    }

    /// Whether calls can work at all (checked before a request starts, so a missing configuration
    /// is a plain error rather than a broken stream).
    fn ready(&self) -> Result<(), ModelError> {
        Ok(())
    }

    /// Starts one model call. With `stream` false the provider may make a non-streaming call; the
    /// answer still arrives as deltas.
    fn chat(&self, request: ChatRequest, stream: bool) -> BoxFuture<'_, Result<DeltaStream, ModelError>>;
}

/// Why a model call failed. Messages are meant for the user of the agent.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("no model is configured: {0}")]
    NotConfigured(String),
    #[error("the model endpoint returned HTTP {status}: {message}")]
    Http { status: u16, message: String },
    #[error("could not reach the model endpoint: {0}")]
    Connect(String),
    #[error("the model endpoint did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the model endpoint went silent for {0:?} in the middle of its answer")]
    IdleTimeout(Duration),
    #[error("the model endpoint closed the connection before finishing its answer: {0}")]
    Disconnected(String),
    #[error("the model endpoint sent something that is not a chat-completions chunk: {0}")]
    Protocol(String),
    #[error("the model endpoint reported an error: {0}")]
    Upstream(String),
    #[error("{0}")]
    Busy(String),
    #[error("the local model failed: {0}")]
    Local(String),
}

impl ModelError {
    /// A Databricks-style error code for clients (`databricks_output.error.error_code`).
    pub fn error_code(&self) -> &'static str {
        match self {
            ModelError::NotConfigured(_) => "INVALID_STATE",
            ModelError::Http { status: 429, .. } => "REQUEST_LIMIT_EXCEEDED",
            ModelError::Http { status: 401, .. } => "UNAUTHENTICATED",
            ModelError::Http { status: 403, .. } => "PERMISSION_DENIED",
            ModelError::Http { status: 404, .. } => "ENDPOINT_NOT_FOUND",
            ModelError::Http { status: 400..=499, .. } => "BAD_REQUEST",
            ModelError::Http { status: 503, .. } | ModelError::Connect(_) | ModelError::Busy(_) => {
                "TEMPORARILY_UNAVAILABLE"
            }
            ModelError::Timeout(_) | ModelError::IdleTimeout(_) => "DEADLINE_EXCEEDED",
            _ => "INTERNAL_ERROR",
        }
    }
}

/// A provider for when nothing is configured: every call says how to configure one.
pub struct Unconfigured(pub String);

impl ChatModel for Unconfigured {
    fn backend(&self) -> &'static str {
        "none"
    }

    fn ready(&self) -> Result<(), ModelError> {
        Err(ModelError::NotConfigured(self.0.clone()))
    }

    fn chat(&self, _: ChatRequest, _: bool) -> BoxFuture<'_, Result<DeltaStream, ModelError>> {
        Box::pin(async move { Err(ModelError::NotConfigured(self.0.clone())) })
    }
}

/// Asks for a whole answer and returns its text (titles, judges, simulated users).
pub async fn complete_text(model: &dyn ChatModel, request: ChatRequest) -> Result<String, ModelError> {
    use futures::StreamExt;
    let mut deltas = model.chat(request, false).await?;
    let mut text = String::new();
    while let Some(delta) = deltas.next().await {
        if let ChatDelta::Text(t) = delta? {
            text.push_str(&t);
        }
    }
    Ok(text)
}
