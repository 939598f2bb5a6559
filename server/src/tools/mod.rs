//! Tools the agent can call: a small trait, and typed Rust functions turned into tools with their JSON
//! schema derived from the argument type.

pub mod agents;
pub mod builtin;
pub mod docs;
pub mod mcp;

use std::fmt::Display;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::llm::ToolSpec;
pub use crate::observability::genai::RetrieverSchema;

/// What a tool knows about the request it serves.
#[derive(Clone, Default)]
pub struct ToolContext {
    /// `context.conversation_id`, else `custom_inputs.session_id`.
    pub session_id: Option<String>,
    /// The signed-in user (`X-Forwarded-Email`, else `context.user_id`).
    pub user: Option<String>,
    /// The request's headers, e.g. `x-forwarded-access-token` to act on behalf of the user.
    /// They hold credentials: never log them.
    pub headers: Arc<HeaderMap>,
    /// Cancelled when the client goes away; long tools should stop then.
    pub cancel: CancellationToken,
    /// The workspace as the app (its token, service principal or CLI login), when one is
    /// configured. [`ToolContext::user_workspace`] gives it as the signed-in user.
    pub workspace: Option<crate::databricks::auth::WorkspaceAuth>,
    /// The request's `custom_inputs` (empty when it has none).
    pub custom_inputs: Arc<serde_json::Map<String, Value>>,
    /// What tools add to the response's `custom_outputs` ([`ToolContext::set_custom_output`]).
    pub custom_outputs: Arc<std::sync::Mutex<serde_json::Map<String, Value>>>,
    /// What the caller hands a tool by type, as HTTP requests carry extensions (the runner gives
    /// an agent used as a tool what it runs with).
    pub extensions: axum::http::Extensions,
}

impl ToolContext {
    /// Adds `key` to the response's `custom_outputs` (API clients read it; the chat page shows it).
    pub fn set_custom_output(&self, key: impl Into<String>, value: Value) {
        self.custom_outputs.lock().unwrap_or_else(|p| p.into_inner()).insert(key.into(), value);
    }
}

/// Why a tool call produced no output. The text goes back to the model as the call's output.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("invalid arguments for tool `{tool}`: {reason}")]
    InvalidArguments { tool: String, reason: String },
    #[error("tool `{0}` does not exist")]
    Unknown(String),
    #[error("tool `{tool}` failed: {reason}")]
    Failed { tool: String, reason: String },
    #[error("tool `{tool}` did not finish within {limit:?}")]
    Timeout { tool: String, limit: Duration },
}

/// A tool. Most tools are made with [`tool`] or [`tool_with_context`]; implement this for more control.
pub trait Tool: Send + Sync + 'static {
    fn spec(&self) -> &ToolSpec;
    /// Runs the tool with the arguments the model gave (a JSON object).
    fn call<'a>(&'a self, arguments: Value, context: ToolContext) -> BoxFuture<'a, Result<String, ToolError>>;
    /// For a retrieval tool: how its result rows map onto documents (its spans are then RETRIEVER
    /// spans). See [`retriever`].
    fn retriever_schema(&self) -> Option<&RetrieverSchema> {
        None
    }
    /// Whether the client must approve each call first (see [`with_approval`]).
    fn requires_approval(&self) -> bool {
        false
    }
    /// For an MCP tool: `server__tool`, whatever name the model sees (approval patterns match it).
    fn qualified_name(&self) -> Option<String> {
        None
    }
}

/// Makes a tool ask first: when the model calls it, the answer ends with an `mcp_approval_request`
/// item instead of running it; the client answers with an `mcp_approval_response` (approve, or deny
/// with a reason) in its next request, and the turn goes on from there: the call runs, or the model
/// is told it was denied.
pub fn with_approval(tool: Arc<dyn Tool>) -> Arc<dyn Tool> {
    Arc::new(ApprovalTool { tool })
}

struct ApprovalTool {
    tool: Arc<dyn Tool>,
}

impl Tool for ApprovalTool {
    fn spec(&self) -> &ToolSpec {
        self.tool.spec()
    }
    fn call<'a>(&'a self, arguments: Value, context: ToolContext) -> BoxFuture<'a, Result<String, ToolError>> {
        self.tool.call(arguments, context)
    }
    fn retriever_schema(&self) -> Option<&RetrieverSchema> {
        self.tool.retriever_schema()
    }
    fn requires_approval(&self) -> bool {
        true
    }
}

/// Marks a tool as a retriever: its calls are traced as RETRIEVER spans whose outputs are the
/// documents, mapped by `schema` (the equivalent of `mlflow.models.set_retriever_schema`). The tool
/// returns its rows as JSON (a list, or an object with a `documents`/`results` list).
pub fn retriever(tool: Arc<dyn Tool>, schema: RetrieverSchema) -> Arc<dyn Tool> {
    Arc::new(RetrieverTool { tool, schema })
}

struct RetrieverTool {
    tool: Arc<dyn Tool>,
    schema: RetrieverSchema,
}

impl Tool for RetrieverTool {
    fn spec(&self) -> &ToolSpec {
        self.tool.spec()
    }
    fn call<'a>(&'a self, arguments: Value, context: ToolContext) -> BoxFuture<'a, Result<String, ToolError>> {
        self.tool.call(arguments, context)
    }
    fn retriever_schema(&self) -> Option<&RetrieverSchema> {
        Some(&self.schema)
    }
    fn requires_approval(&self) -> bool {
        self.tool.requires_approval()
    }
}

/// Arguments of a tool that takes none. Extra arguments a model invents are ignored.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize, JsonSchema)]
pub struct NoArgs {}

/// A tool from an async function of typed arguments. The description and the doc comments of the
/// argument fields are what the model reads.
pub fn tool<A, F, Fut, T, E>(name: &str, description: &str, f: F) -> Arc<dyn Tool>
where
    A: DeserializeOwned + JsonSchema + Send + 'static,
    F: Fn(A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Serialize,
    E: Display,
{
    tool_with_context(name, description, move |args: A, _: ToolContext| f(args))
}

/// Like [`tool`], for functions that need the request (user, session, headers, cancellation).
pub fn tool_with_context<A, F, Fut, T, E>(name: &str, description: &str, f: F) -> Arc<dyn Tool>
where
    A: DeserializeOwned + JsonSchema + Send + 'static,
    F: Fn(A, ToolContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Serialize,
    E: Display,
{
    let (parameters, strict) = schema_for::<A>();
    Arc::new(FunctionTool {
        spec: ToolSpec { name: name.to_string(), description: description.to_string(), parameters, strict },
        f,
        _args: PhantomData,
    })
}

struct FunctionTool<A, F> {
    spec: ToolSpec,
    f: F,
    _args: PhantomData<fn() -> A>,
}

impl<A, F, Fut, T, E> Tool for FunctionTool<A, F>
where
    A: DeserializeOwned + JsonSchema + Send + 'static,
    F: Fn(A, ToolContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Serialize,
    E: Display,
{
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call<'a>(&'a self, arguments: Value, context: ToolContext) -> BoxFuture<'a, Result<String, ToolError>> {
        let name = &self.spec.name;
        let args = match serde_json::from_value::<A>(arguments) {
            Ok(args) => args,
            Err(e) => {
                let error = ToolError::InvalidArguments { tool: name.clone(), reason: e.to_string() };
                return Box::pin(async move { Err(error) });
            }
        };
        let running = (self.f)(args, context);
        Box::pin(async move {
            let output = running.await.map_err(|e| ToolError::Failed { tool: name.clone(), reason: e.to_string() })?;
            match serde_json::to_value(&output) {
                Ok(Value::String(text)) => Ok(text),
                Ok(other) => Ok(other.to_string()),
                Err(e) => {
                    Err(ToolError::Failed { tool: name.clone(), reason: format!("output is not serialisable: {e}") })
                }
            }
        })
    }
}

/// The JSON schema of a tool's arguments, as chat-completions wants it: an inline object schema,
/// and whether it qualifies for strict mode (every property required).
pub fn schema_for<A: JsonSchema>() -> (Value, bool) {
    let mut settings = schemars::generate::SchemaSettings::draft2020_12().for_deserialize();
    settings.meta_schema = None;
    settings.inline_subschemas = true;
    let mut schema = settings.into_generator().into_root_schema_for::<A>().to_value();
    let object = schema.as_object_mut().expect("an argument type's schema is an object");
    // The tool has its own description; the argument type's doc comment would repeat or confuse it.
    object.remove("title");
    object.remove("description");
    object.remove("$defs");
    object.entry("type").or_insert_with(|| "object".into());
    object.entry("properties").or_insert_with(|| Value::Object(Default::default()));
    object.entry("required").or_insert_with(|| Value::Array(Vec::new()));
    object.entry("additionalProperties").or_insert(Value::Bool(false));
    let properties = object["properties"].as_object().map(|p| p.len()).unwrap_or(0);
    let required = object["required"].as_array().map(Vec::len).unwrap_or(0);
    (schema, properties == required)
}

/// The tools of an agent, in the order the model is told about them.
#[derive(Clone, Default)]
pub struct ToolSet {
    tools: Vec<Arc<dyn Tool>>,
}

impl ToolSet {
    pub fn add(&mut self, tool: Arc<dyn Tool>) {
        self.tools.push(tool);
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.iter().find(|t| t.spec().name == name)
    }

    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools.iter().map(|t| t.spec().clone()).collect()
    }

    pub fn names(&self) -> Vec<&str> {
        self.tools.iter().map(|t| t.spec().name.as_str()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// These tools and `more` (one request's MCP tools).
    pub fn with(&self, more: Vec<Arc<dyn Tool>>) -> ToolSet {
        let mut tools = self.tools.clone();
        tools.extend(more);
        ToolSet { tools }
    }

    /// Names must be what model APIs accept (`^[a-zA-Z0-9_-]{1,64}$`) and unique.
    pub fn validate(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for name in self.names() {
            let valid = !name.is_empty()
                && name.len() <= 64
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid {
                return Err(format!(
                    "tool name `{name}` is not accepted by model APIs: use 1 to 64 of a-z, A-Z, 0-9, _ and -"
                ));
            }
            if !seen.insert(name) {
                return Err(format!("two tools are named `{name}`"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Arguments of a test tool.
    #[derive(serde::Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Weather {
        /// The city.
        city: String,
        /// Units, metric by default.
        units: Option<String>,
    }

    #[test]
    fn schemas_are_inline_objects() {
        let (schema, strict) = schema_for::<NoArgs>();
        assert_eq!(schema, json!({"type": "object", "properties": {}, "required": [], "additionalProperties": false}));
        assert!(strict);
        let (schema, strict) = schema_for::<Weather>();
        assert_eq!(schema["properties"]["city"]["description"], "The city.");
        assert_eq!(schema["required"], json!(["city"]));
        assert!(!strict);
    }

    #[tokio::test]
    async fn function_tools_parse_arguments_and_report_errors() {
        let t = tool("weather", "Weather for a city.", |w: Weather| async move {
            if w.city == "Atlantis" { Err("no such city") } else { Ok(format!("sunny in {}", w.city)) }
        });
        let ctx = ToolContext::default;
        assert_eq!(t.call(json!({"city": "Paris"}), ctx()).await.unwrap(), "sunny in Paris");
        let err = t.call(json!({"town": "Paris"}), ctx()).await.unwrap_err().to_string();
        assert!(err.starts_with("invalid arguments for tool `weather`: missing field `city`"), "{err}");
        let err = t.call(json!({"city": "Atlantis"}), ctx()).await.unwrap_err().to_string();
        assert_eq!(err, "tool `weather` failed: no such city");
        // Structured output is sent to the model as JSON text.
        let t = tool("info", "Info.", |_: NoArgs| async { Ok::<_, String>(json!({"a": 1})) });
        assert_eq!(t.call(json!({"ignored": true}), ctx()).await.unwrap(), r#"{"a":1}"#);
    }

    #[test]
    fn tool_names_are_checked() {
        let mut set = ToolSet::default();
        set.add(tool("ok_name", "", |_: NoArgs| async { Ok::<_, String>("") }));
        assert!(set.validate().is_ok());
        set.add(tool("ok_name", "", |_: NoArgs| async { Ok::<_, String>("") }));
        assert!(set.validate().unwrap_err().contains("two tools"));
        let mut set = ToolSet::default();
        set.add(tool("bad name!", "", |_: NoArgs| async { Ok::<_, String>("") }));
        assert!(set.validate().is_err());
    }
}
