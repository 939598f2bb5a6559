//! An OpenAI-compatible chat-completions client: Databricks Model Serving (`<host>/serving-endpoints`)
//! or any server with `/chat/completions` (OpenAI, vLLM, llama.cpp, Ollama…).
//!
//! It smooths over what such servers do differently (docs/reference.md §5.4, and what
//! other servers were seen to do): `strict` only for
//! GPT models, Claude's empty assistant content, `finish_reason: ""`, usage-only chunks, content as
//! a list of parts, reasoning fields, arguments sent as objects. It retries 429/5xx/connection
//! errors with backoff, but only before the answer started, so nothing is ever said twice.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use app::responses::{InputTokensDetails, OutputTokensDetails, Usage};
use app::sse::SseParser;
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use super::{ChatDelta, ChatMessage, ChatModel, ChatRequest, DeltaStream, ModelError, ToolSpec};
use crate::databricks::auth::WorkspaceAuth;
use crate::secret::Secret;

/// Timeouts and retries of model calls.
#[derive(Debug, Clone)]
pub struct CallPolicy {
    /// Until the response headers arrive.
    pub timeout: Duration,
    /// Between two pieces of a streamed answer.
    pub idle_timeout: Duration,
    pub max_retries: u32,
    pub retry_base: Duration,
}

impl Default for CallPolicy {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(120),
            max_retries: 3,
            retry_base: Duration::from_millis(500),
        }
    }
}

/// The longest wait between retries, whatever Retry-After says.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);
/// Error bodies are read up to this size, for the message.
const MAX_ERROR_BODY: usize = 16 * 1024;
/// A non-streamed answer larger than this is refused.
const MAX_COMPLETION_BODY: usize = 32 * 1024 * 1024;

/// How model calls are signed.
pub enum ModelAuth {
    None,
    /// `OPENAI_API_KEY`.
    Key(Secret),
    /// The workspace's credential: a token, or the app's service principal (OAuth, renewed).
    Workspace(WorkspaceAuth),
}

pub struct OpenAiCompatible {
    client: reqwest::Client,
    url: String,
    auth: ModelAuth,
    backend: &'static str,
    policy: CallPolicy,
    /// Cleared when an endpoint rejects `stream_options`; usage is then simply not reported.
    stream_options: AtomicBool,
}

impl OpenAiCompatible {
    /// Databricks Model Serving: `POST {host}/serving-endpoints/chat/completions`.
    pub fn databricks(auth: WorkspaceAuth, policy: CallPolicy) -> Self {
        let url = format!("{}/serving-endpoints/chat/completions", auth.host);
        Self::new(url, ModelAuth::Workspace(auth), "databricks", policy)
    }

    /// Any OpenAI-compatible server: `POST {base_url}/chat/completions`.
    pub fn openai(base_url: &str, api_key: Option<Secret>, policy: CallPolicy) -> Self {
        let url = format!("{}/chat/completions", base_url.trim_end_matches('/'));
        Self::new(url, api_key.map_or(ModelAuth::None, ModelAuth::Key), "openai-compatible", policy)
    }

    fn new(url: String, auth: ModelAuth, backend: &'static str, policy: CallPolicy) -> Self {
        Self { client: crate::http_client::new(), url, auth, backend, policy, stream_options: AtomicBool::new(true) }
    }

    /// Sends the call, retrying what is safe to retry. Returns the successful response.
    async fn send(&self, request: &ChatRequest, stream: bool) -> Result<reqwest::Response, ModelError> {
        let mut attempt = 0;
        // A workspace token refused once (revoked, or expired early) is replaced, and the call sent again.
        let mut refused_token = false;
        loop {
            let with_stream_options = stream && self.stream_options.load(Ordering::Relaxed);
            let body = serde_json::to_vec(&WireRequest::new(request, stream, with_stream_options))
                .map_err(|e| ModelError::Protocol(e.to_string()))?;
            let mut call = self.client.post(&self.url).header(CONTENT_TYPE, "application/json").body(body);
            let mut workspace_bearer = None;
            match &self.auth {
                ModelAuth::None => {}
                ModelAuth::Key(key) => call = call.header(AUTHORIZATION, format!("Bearer {}", key.expose())),
                ModelAuth::Workspace(auth) => {
                    let bearer =
                        auth.bearer().await.map_err(|e| ModelError::Connect(format!("no Databricks token: {e}")))?;
                    call = call.header(AUTHORIZATION, &bearer);
                    workspace_bearer = Some(bearer);
                }
            }
            let (error, retry_after) = match tokio::time::timeout(self.policy.timeout, call.send()).await {
                Err(_) => return Err(ModelError::Timeout(self.policy.timeout)),
                Ok(Ok(response)) if response.status().is_success() => return Ok(response),
                Ok(Ok(response)) => {
                    let status = response.status().as_u16();
                    if status == 401
                        && !refused_token
                        && let (ModelAuth::Workspace(auth), Some(bearer)) = (&self.auth, &workspace_bearer)
                        && auth.rejected(bearer).await
                    {
                        tracing::warn!("the model endpoint refused the workspace token; retrying with a new one");
                        refused_token = true;
                        continue;
                    }
                    let retry_after =
                        response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(retry_delay);
                    let message = error_message(&read_bounded(response, MAX_ERROR_BODY, self.policy.timeout).await);
                    if status == 400 && with_stream_options && message.contains("stream_options") {
                        tracing::warn!("the model endpoint rejects stream_options; token usage will not be reported");
                        self.stream_options.store(false, Ordering::Relaxed);
                        continue;
                    }
                    (ModelError::Http { status, message }, retry_after)
                }
                Ok(Err(e)) => (ModelError::Connect(error_chain(&e)), None),
            };
            let retryable = matches!(error, ModelError::Connect(_))
                || matches!(error, ModelError::Http { status, .. } if status == 429 || status >= 500);
            if !retryable || attempt >= self.policy.max_retries {
                return Err(error);
            }
            let backoff = self.policy.retry_base.saturating_mul(1 << attempt.min(16));
            let jitter = backoff.mul_f64(fastrand::f64() * 0.25);
            let delay = retry_after.unwrap_or(backoff + jitter).min(MAX_RETRY_DELAY);
            tracing::warn!(attempt = attempt + 1, ?delay, %error, "model call failed; retrying");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }
}

/// A `Retry-After` value as a wait: delay-seconds or an HTTP date (RFC 9110 §10.2.3); a date
/// already past means at once.
fn retry_delay(value: &str) -> Option<Duration> {
    let value = value.trim();
    match value.parse::<u64>() {
        Ok(seconds) => Some(Duration::from_secs(seconds)),
        Err(_) => {
            let at = httpdate::parse_http_date(value).ok()?;
            Some(at.duration_since(std::time::SystemTime::now()).unwrap_or_default())
        }
    }
}

impl ChatModel for OpenAiCompatible {
    fn backend(&self) -> &'static str {
        self.backend
    }

    fn chat(&self, request: ChatRequest, stream: bool) -> BoxFuture<'_, Result<DeltaStream, ModelError>> {
        Box::pin(async move {
            let response = self.send(&request, stream).await?;
            if stream {
                Ok(delta_stream(response, self.policy.idle_timeout))
            } else {
                let body = read_bounded(response, MAX_COMPLETION_BODY, self.policy.timeout).await;
                let deltas = parse_completion(&body)?;
                Ok(futures::stream::iter(deltas.into_iter().map(Ok)).boxed())
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Request body
// ---------------------------------------------------------------------------------------------

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: std::borrow::Cow<'a, [ChatMessage]>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
}

#[derive(Serialize)]
struct WireTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunction<'a>,
}

#[derive(Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: Option<bool>,
}

impl<'a> WireRequest<'a> {
    fn new(r: &'a ChatRequest, stream: bool, stream_options: bool) -> Self {
        let model = r.model.to_ascii_lowercase();
        let is_gpt = model.contains("gpt");
        // Reasoning-era OpenAI models refuse `max_tokens`.
        let completion_tokens_field =
            model.contains("gpt-5") || model.contains("o1") || model.contains("o3") || model.contains("o4");
        let messages = if model.contains("claude") {
            std::borrow::Cow::Owned(claude_messages(&r.messages))
        } else {
            std::borrow::Cow::Borrowed(r.messages.as_slice())
        };
        Self {
            model: &r.model,
            messages,
            tools: r.tools.iter().map(|t| wire_tool(t, is_gpt)).collect(),
            tool_choice: r.tool_choice.as_ref().map(chat_tool_choice),
            stream,
            stream_options: (stream && stream_options).then(|| serde_json::json!({"include_usage": true})),
            temperature: r.temperature,
            top_p: r.top_p,
            max_tokens: r.max_tokens.filter(|_| !completion_tokens_field),
            max_completion_tokens: r.max_tokens.filter(|_| completion_tokens_field),
            parallel_tool_calls: r.parallel_tool_calls.filter(|_| !r.tools.is_empty()),
        }
    }
}

fn wire_tool(t: &ToolSpec, is_gpt: bool) -> WireTool<'_> {
    // Non-GPT endpoints reject or mishandle `strict` (databricks-openai strips it too).
    WireTool {
        kind: "function",
        function: WireFunction {
            name: &t.name,
            description: &t.description,
            parameters: &t.parameters,
            strict: (is_gpt && t.strict).then_some(true),
        },
    }
}

/// Claude on Databricks rejects an empty assistant message that carries tool calls.
fn claude_messages(messages: &[ChatMessage]) -> Vec<ChatMessage> {
    messages
        .iter()
        .map(|m| match m {
            ChatMessage::Assistant { content, tool_calls }
                if !tool_calls.is_empty() && content.as_deref().is_none_or(str::is_empty) =>
            {
                ChatMessage::Assistant { content: Some(" ".into()), tool_calls: tool_calls.clone() }
            }
            other => other.clone(),
        })
        .collect()
}

/// Responses-style `{"type":"function","name":…}` → chat-completions `{"type":"function","function":{"name":…}}`.
fn chat_tool_choice(choice: &Value) -> Value {
    match (choice.get("type").and_then(Value::as_str), choice.get("name")) {
        (Some("function"), Some(name)) if choice.get("function").is_none() => {
            serde_json::json!({"type": "function", "function": {"name": name}})
        }
        _ => choice.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

/// Reads at most `limit` bytes of a body (the rest is dropped), within `timeout`.
async fn read_bounded(response: reqwest::Response, limit: usize, timeout: Duration) -> Vec<u8> {
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    let read = async {
        while let Ok(Some(chunk)) = chunks.try_next().await {
            let room = limit.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= limit {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(timeout, read).await;
    body
}

/// The human part of an error body: OpenAI's `error.message`, Databricks' `message`, FastAPI's
/// `detail`, else the text itself (cut short).
fn error_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        let found = v
            .pointer("/error/message")
            .or_else(|| v.get("message"))
            .or_else(|| v.get("detail"))
            .or_else(|| v.get("error"));
        if let Some(found) = found {
            return found.as_str().map(str::to_string).unwrap_or_else(|| found.to_string());
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() { "(no message)".into() } else { truncate(text, 500) }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// An error with its causes: reqwest's top-level text alone ("error sending request") says little.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

struct StreamState {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    parser: SseParser,
    queue: VecDeque<ChatDelta>,
    error: Option<ModelError>,
    finished: bool,
    saw_finish_reason: bool,
    idle: Duration,
}

fn delta_stream(response: reqwest::Response, idle: Duration) -> DeltaStream {
    let state = StreamState {
        body: response.bytes_stream().boxed(),
        parser: SseParser::default(),
        queue: VecDeque::new(),
        error: None,
        finished: false,
        saw_finish_reason: false,
        idle,
    };
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(delta) = st.queue.pop_front() {
                return Some((Ok(delta), st));
            }
            if let Some(error) = st.error.take() {
                st.finished = true;
                return Some((Err(error), st));
            }
            if st.finished {
                return None;
            }
            match tokio::time::timeout(st.idle, st.body.next()).await {
                Err(_) => st.error = Some(ModelError::IdleTimeout(st.idle)),
                Ok(None) if st.saw_finish_reason => st.finished = true,
                Ok(None) => st.error = Some(ModelError::Disconnected("the stream ended without [DONE]".into())),
                Ok(Some(Err(e))) => st.error = Some(ModelError::Disconnected(error_chain(&e))),
                Ok(Some(Ok(bytes))) => match st.parser.push(&bytes) {
                    Err(e) => st.error = Some(ModelError::Protocol(e.to_string())),
                    Ok(frames) => {
                        for frame in frames {
                            if frame.data.trim() == "[DONE]" {
                                st.finished = true;
                                break;
                            }
                            let before = st.queue.len();
                            match parse_chunk(&frame.data, &mut st.queue) {
                                Ok(()) => {
                                    st.saw_finish_reason |=
                                        st.queue.iter().skip(before).any(|d| matches!(d, ChatDelta::Finish(_)));
                                }
                                Err(e) => {
                                    st.error = Some(e);
                                    break;
                                }
                            }
                        }
                    }
                },
            }
        }
    })
    .boxed()
}

// Chunks are read into borrowed, typed structs: every streamed token is one chunk, and building a
// `serde_json::Value` tree for each was the largest cost of a streamed request.

#[derive(Deserialize)]
struct WireChunk<'a> {
    #[serde(default, borrow)]
    choices: Vec<WireChoice<'a>>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default, borrow)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct WireChoice<'a> {
    #[serde(default, borrow)]
    delta: Option<WireMessage<'a>>,
    #[serde(default, borrow)]
    message: Option<WireMessage<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct WireMessage<'a> {
    /// A string, a list of parts, or null.
    #[serde(default, borrow)]
    content: Option<&'a RawValue>,
    #[serde(default, borrow)]
    reasoning_content: Option<&'a RawValue>,
    #[serde(default, borrow)]
    reasoning: Option<&'a RawValue>,
    #[serde(default, borrow)]
    tool_calls: Option<Vec<WireToolCall<'a>>>,
}

#[derive(Deserialize)]
struct WireToolCall<'a> {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    function: Option<WireFunctionDelta<'a>>,
}

#[derive(Deserialize)]
struct WireFunctionDelta<'a> {
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    /// Usually a JSON text; some servers send the object itself.
    #[serde(default, borrow)]
    arguments: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    total_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<WireTokenDetails>,
    #[serde(default)]
    completion_tokens_details: Option<WireTokenDetails>,
}

#[derive(Deserialize, Default)]
struct WireTokenDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

/// Reads one streamed chunk into deltas.
fn parse_chunk(data: &str, out: &mut VecDeque<ChatDelta>) -> Result<(), ModelError> {
    let chunk: WireChunk<'_> = serde_json::from_str(data).map_err(|_| ModelError::Protocol(truncate(data, 200)))?;
    if let Some(error) = chunk.error {
        return Err(ModelError::Upstream(error_message(error.get().as_bytes())));
    }
    if let Some(choice) = chunk.choices.first() {
        if let Some(delta) = &choice.delta {
            read_message(delta, out);
        }
        push_finish(choice, out);
    }
    if let Some(usage) = chunk.usage {
        out.push_back(ChatDelta::Usage(usage.into()));
    }
    Ok(())
}

/// A non-streamed completion, as deltas.
fn parse_completion(body: &[u8]) -> Result<Vec<ChatDelta>, ModelError> {
    let protocol_error = || ModelError::Protocol(truncate(&String::from_utf8_lossy(body), 200));
    let text = std::str::from_utf8(body).map_err(|_| protocol_error())?;
    let completion: WireChunk<'_> = serde_json::from_str(text).map_err(|_| protocol_error())?;
    if let Some(error) = completion.error {
        return Err(ModelError::Upstream(error_message(error.get().as_bytes())));
    }
    let choice =
        completion.choices.first().ok_or_else(|| ModelError::Protocol("the completion has no choices".into()))?;
    let mut out = VecDeque::new();
    if let Some(message) = &choice.message {
        read_message(message, &mut out);
    }
    push_finish(choice, &mut out);
    if let Some(usage) = completion.usage {
        out.push_back(ChatDelta::Usage(usage.into()));
    }
    Ok(out.into())
}

/// A JSON string's text; anything else (null, objects, numbers) gives `None`.
fn raw_string(raw: &RawValue) -> Option<String> {
    if raw.get().starts_with('"') { serde_json::from_str::<String>(raw.get()).ok() } else { None }
}

/// Text, reasoning and tool calls of a `delta` or a whole `message`.
fn read_message(message: &WireMessage<'_>, out: &mut VecDeque<ChatDelta>) {
    if let Some(content) = message.content {
        if let Some(text) = raw_string(content) {
            if !text.is_empty() {
                out.push_back(ChatDelta::Text(text));
            }
        } else if content.get().starts_with('[') {
            // Databricks (Claude, GPT-OSS) sends content as parts, reasoning included.
            let parts: Vec<Value> = serde_json::from_str(content.get()).unwrap_or_default();
            for part in &parts {
                if part.get("type").and_then(Value::as_str) == Some("reasoning") {
                    let summary = part.get("summary").and_then(Value::as_array).into_iter().flatten();
                    for s in summary {
                        if let Some(t) = s.get("text").and_then(Value::as_str) {
                            out.push_back(ChatDelta::Reasoning(t.to_string()));
                        }
                    }
                } else if let Some(t) = part.get("text").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                    out.push_back(ChatDelta::Text(t.to_string()));
                }
            }
        }
    }
    for reasoning in [message.reasoning_content, message.reasoning].into_iter().flatten() {
        if let Some(text) = raw_string(reasoning).filter(|t| !t.is_empty()) {
            out.push_back(ChatDelta::Reasoning(text));
        }
    }
    for (position, call) in message.tool_calls.iter().flatten().enumerate() {
        let function = call.function.as_ref();
        let arguments = match function.and_then(|f| f.arguments) {
            None => String::new(),
            Some(raw) if raw.get() == "null" => String::new(),
            Some(raw) => raw_string(raw).unwrap_or_else(|| raw.get().to_string()),
        };
        out.push_back(ChatDelta::ToolCall {
            index: call.index.unwrap_or(position as u32),
            id: call.id.as_deref().filter(|s| !s.is_empty()).map(str::to_string),
            name: function.and_then(|f| f.name.as_deref()).filter(|s| !s.is_empty()).map(str::to_string),
            arguments,
        });
    }
}

fn push_finish(choice: &WireChoice<'_>, out: &mut VecDeque<ChatDelta>) {
    // Some servers send `finish_reason: ""` on every chunk: that is not a finish.
    if let Some(reason) = choice.finish_reason.as_deref().filter(|r| !r.is_empty()) {
        out.push_back(ChatDelta::Finish(reason.to_string()));
    }
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Self {
        let input = u.prompt_tokens.unwrap_or(0);
        let output = u.completion_tokens.unwrap_or(0);
        Usage {
            input_tokens: input,
            input_tokens_details: InputTokensDetails {
                cached_tokens: u.prompt_tokens_details.and_then(|d| d.cached_tokens).unwrap_or(0),
            },
            output_tokens: output,
            output_tokens_details: OutputTokensDetails {
                reasoning_tokens: u.completion_tokens_details.and_then(|d| d.reasoning_tokens).unwrap_or(0),
            },
            total_tokens: u.total_tokens.unwrap_or(input + output),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::ToolCall;
    use serde_json::json;

    fn deltas(data: &str) -> Vec<ChatDelta> {
        let mut q = VecDeque::new();
        parse_chunk(data, &mut q).unwrap();
        q.into()
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_as_an_http_date() {
        assert_eq!(retry_delay(" 7 "), Some(Duration::from_secs(7)));
        let in_a_minute = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(60));
        let wait = retry_delay(&in_a_minute).unwrap();
        assert!(wait > Duration::from_secs(55) && wait <= Duration::from_secs(60), "{wait:?}");
        assert_eq!(retry_delay("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO), "a past date: at once");
        assert_eq!(retry_delay("soon"), None);
    }

    #[test]
    fn chunk_quirks() {
        assert_eq!(
            deltas(r#"{"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":""}]}"#),
            vec![ChatDelta::Text("hi".into())]
        );
        assert_eq!(
            deltas(r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#),
            vec![ChatDelta::Usage(Usage { input_tokens: 3, output_tokens: 4, total_tokens: 7, ..Usage::default() })]
        );
        assert_eq!(deltas(r#"{"choices":[{"delta":{}}],"usage":{}}"#), vec![ChatDelta::Usage(Usage::default())]);
        assert_eq!(
            deltas(
                r#"{"choices":[{"delta":{"content":[{"type":"reasoning","summary":[{"type":"summary_text","text":"hmm"}]},{"type":"text","text":"ok"}]}}]}"#
            ),
            vec![ChatDelta::Reasoning("hmm".into()), ChatDelta::Text("ok".into())]
        );
        assert_eq!(
            deltas(
                r#"{"choices":[{"delta":{"tool_calls":[{"id":"c","function":{"name":"f","arguments":{"a":1}}}]}}]}"#
            ),
            vec![ChatDelta::ToolCall {
                index: 0,
                id: Some("c".into()),
                name: Some("f".into()),
                arguments: r#"{"a":1}"#.into()
            }]
        );
        let mut q = VecDeque::new();
        assert!(matches!(parse_chunk("{not json", &mut q), Err(ModelError::Protocol(_))));
        assert!(
            matches!(parse_chunk(r#"{"error":{"message":"overloaded"}}"#, &mut q), Err(ModelError::Upstream(m)) if m == "overloaded")
        );
    }

    #[test]
    fn request_body_follows_the_model() {
        let tool =
            ToolSpec { name: "t".into(), description: "d".into(), parameters: json!({"type": "object"}), strict: true };
        let mut r = ChatRequest {
            model: "databricks-claude-sonnet-4".into(),
            messages: vec![ChatMessage::Assistant {
                content: None,
                tool_calls: vec![ToolCall::function("c", "t", "{}")],
            }],
            tools: vec![tool],
            tool_choice: Some(json!({"type": "function", "name": "t"})),
            max_tokens: Some(5),
            ..ChatRequest::default()
        };
        let body = serde_json::to_value(WireRequest::new(&r, true, true)).unwrap();
        assert_eq!(body["messages"][0]["content"], " ");
        assert!(body["tools"][0]["function"].get("strict").is_none());
        assert_eq!(body["tool_choice"], json!({"type": "function", "function": {"name": "t"}}));
        assert_eq!(body["stream_options"], json!({"include_usage": true}));
        assert_eq!(body["max_tokens"], 5);
        r.model = "databricks-gpt-5-2".into();
        let body = serde_json::to_value(WireRequest::new(&r, false, true)).unwrap();
        assert_eq!(body["messages"][0]["content"], Value::Null);
        assert_eq!(body["tools"][0]["function"]["strict"], true);
        assert!(body.get("stream").is_none() && body.get("stream_options").is_none());
        assert_eq!(body["max_completion_tokens"], 5);
    }

    #[test]
    fn error_messages_are_extracted() {
        assert_eq!(error_message(br#"{"error":{"message":"rate limited"}}"#), "rate limited");
        assert_eq!(error_message(br#"{"error_code":"BAD_REQUEST","message":"bad"}"#), "bad");
        assert_eq!(error_message(b"plain text"), "plain text");
        assert_eq!(error_message(b""), "(no message)");
    }
}
