//! A scripted OpenAI-compatible chat-completions server, for tests and benchmarks.
//!
//! Tests queue [`Reply`]s: each request to `/chat/completions` takes the next one (text, tool calls,
//! HTTP errors, mid-stream disconnects, garbage, hangs). With an empty queue it answers like the
//! reference's load-test mock: a `get_current_time` call when the last message is from the user and
//! tools are offered, else `tokens` words of text, `token_delay` apart. Every request body is kept
//! for assertions, and the number of response streams still open is counted, so a test can see that
//! a cancelled agent really hung up.
//!
//! Tests in other processes (the browser tests) script it over HTTP: `POST /control/replies` queues
//! replies given as JSON ([`ReplySpec`]), `GET /control/stats` reports open streams, requests seen and
//! replies pending, `GET /control/last-request` returns the last chat request's body, and
//! `POST /control/reset` empties the queue.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

/// What the fake model does with one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Text in these chunks, `delay` before each.
    Text { chunks: Vec<String>, delay: Duration },
    /// Tool calls `(name, arguments JSON)`, optionally after some text.
    ToolCalls { text: Option<String>, calls: Vec<(String, String)> },
    /// An HTTP error with this status and body (e.g. 429, 500); `retry_after` in seconds.
    Status { status: u16, body: String, retry_after: Option<u64> },
    /// Stream these text chunks, then drop the connection without finishing.
    Disconnect { chunks: Vec<String> },
    /// Stream these text chunks, then a `data:` line that is not JSON.
    Garbage { chunks: Vec<String>, garbage: String },
    /// Stream these text chunks, then go silent forever (with no chunks: never answer at all).
    Hang { chunks: Vec<String> },
    /// Raw `data:` payloads, sent as they are, then `[DONE]` (for provider quirks).
    Raw { payloads: Vec<String> },
}

impl Reply {
    /// Text split into word chunks (spaces kept), sent with no delay.
    pub fn text(text: &str) -> Self {
        Reply::Text { chunks: split_words(text), delay: Duration::ZERO }
    }

    /// The same with a delay before every chunk.
    pub fn text_with_delay(text: &str, delay: Duration) -> Self {
        Reply::Text { chunks: split_words(text), delay }
    }

    pub fn tool_call(name: &str, arguments: &str) -> Self {
        Reply::ToolCalls { text: None, calls: vec![(name.to_string(), arguments.to_string())] }
    }

    pub fn status(status: u16, body: &str) -> Self {
        Reply::Status { status, body: body.to_string(), retry_after: None }
    }
}

/// A [`Reply`] as JSON, for scripting the server over HTTP:
/// `{"kind": "text", "text": "Hello there", "delay_ms": 40}`,
/// `{"kind": "tool_calls", "calls": [{"name": "get_current_time", "arguments": "{}"}]}`,
/// `{"kind": "status", "status": 500, "body": "boom"}`, `{"kind": "disconnect", "text": "partial"}`,
/// `{"kind": "hang", "text": "partial"}`, `{"kind": "garbage", "text": "partial", "garbage": "{oops"}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ReplySpec {
    Text {
        text: String,
        #[serde(default)]
        delay_ms: u64,
    },
    ToolCalls {
        #[serde(default)]
        text: Option<String>,
        calls: Vec<CallSpec>,
    },
    Status {
        status: u16,
        #[serde(default)]
        body: String,
        #[serde(default)]
        retry_after: Option<u64>,
    },
    Disconnect {
        #[serde(default)]
        text: String,
    },
    Hang {
        #[serde(default)]
        text: String,
    },
    Garbage {
        #[serde(default)]
        text: String,
        garbage: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallSpec {
    pub name: String,
    #[serde(default = "empty_object")]
    pub arguments: String,
}

fn empty_object() -> String {
    "{}".to_string()
}

impl From<ReplySpec> for Reply {
    fn from(spec: ReplySpec) -> Self {
        match spec {
            ReplySpec::Text { text, delay_ms } => Reply::text_with_delay(&text, Duration::from_millis(delay_ms)),
            ReplySpec::ToolCalls { text, calls } => {
                Reply::ToolCalls { text, calls: calls.into_iter().map(|c| (c.name, c.arguments)).collect() }
            }
            ReplySpec::Status { status, body, retry_after } => Reply::Status { status, body, retry_after },
            ReplySpec::Disconnect { text } => Reply::Disconnect { chunks: split_words(&text) },
            ReplySpec::Hang { text } => Reply::Hang { chunks: split_words(&text) },
            ReplySpec::Garbage { text, garbage } => Reply::Garbage { chunks: split_words(&text), garbage },
        }
    }
}

/// Splits text into chunks of one word each, keeping the spaces: "a b" → ["a", " b"].
pub fn split_words(text: &str) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut current = String::new();
    for ch in text.chars() {
        if ch == ' ' && !current.trim().is_empty() {
            chunks.push(std::mem::take(&mut current));
        }
        current.push(ch);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// Behaviour when no reply is queued.
#[derive(Debug, Clone)]
pub struct Defaults {
    pub tokens: usize,
    pub token_delay: Duration,
}

impl Default for Defaults {
    fn default() -> Self {
        Self { tokens: 64, token_delay: Duration::ZERO }
    }
}

#[derive(Default)]
struct Shared {
    script: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Value>>,
    headers: Mutex<Vec<axum::http::HeaderMap>>,
    open_streams: AtomicUsize,
    defaults: Mutex<Defaults>,
}

/// A running fake model server on a loopback port.
pub struct FakeModel {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeModel {
    /// Starts on 127.0.0.1 with a free port.
    pub async fn start() -> Self {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), Defaults::default()).await.expect("bind fake model")
    }

    pub async fn start_on(addr: SocketAddr, defaults: Defaults) -> std::io::Result<Self> {
        let shared = Arc::new(Shared::default());
        *shared.defaults.lock().unwrap() = defaults;
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(serve(listener, router(shared.clone())));
        Ok(Self { addr, shared, task })
    }

    /// The base URL to give a client (`OPENAI_BASE_URL`): `http://127.0.0.1:<port>/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The Databricks-style host: `<host>/serving-endpoints/chat/completions` works too.
    pub fn host_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn push(&self, reply: Reply) -> &Self {
        self.shared.script.lock().unwrap().push_back(reply);
        self
    }

    pub fn set_defaults(&self, defaults: Defaults) {
        *self.shared.defaults.lock().unwrap() = defaults;
    }

    /// Request bodies received so far, oldest first.
    pub fn requests(&self) -> Vec<Value> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Request headers received so far, oldest first.
    pub fn request_headers(&self) -> Vec<axum::http::HeaderMap> {
        self.shared.headers.lock().unwrap().clone()
    }

    /// Response streams the server is still writing (a client that hung up closes its stream).
    pub fn open_streams(&self) -> usize {
        self.shared.open_streams.load(Ordering::SeqCst)
    }

    /// Replies still queued.
    pub fn pending(&self) -> usize {
        self.shared.script.lock().unwrap().len()
    }
}

impl Drop for FakeModel {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: tokio::net::TcpListener, app: Router) {
    // Many small writes: without TCP_NODELAY each waits for the last one's ACK.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let _ = axum::serve(listener, app).await;
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/chat/completions", post(chat))
        .route("/serving-endpoints/chat/completions", post(chat))
        .route("/control/replies", post(queue_replies))
        .route("/control/stats", get(stats))
        .route("/control/reset", post(reset))
        .route("/control/last-request", get(last_request))
        .with_state(shared)
}

/// Queues one reply spec or a list of them.
async fn queue_replies(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Many(Vec<ReplySpec>),
        One(ReplySpec),
    }
    let specs = match serde_json::from_slice::<OneOrMany>(&body) {
        Ok(OneOrMany::Many(specs)) => specs,
        Ok(OneOrMany::One(spec)) => vec![spec],
        Err(e) => return (StatusCode::BAD_REQUEST, format!("bad reply spec: {e}")).into_response(),
    };
    let mut script = shared.script.lock().unwrap();
    script.extend(specs.into_iter().map(Reply::from));
    axum::Json(json!({"pending": script.len()})).into_response()
}

async fn stats(State(shared): State<Arc<Shared>>) -> axum::Json<Value> {
    axum::Json(json!({
        "open_streams": shared.open_streams.load(Ordering::SeqCst),
        "requests": shared.requests.lock().unwrap().len(),
        "pending": shared.script.lock().unwrap().len(),
    }))
}

/// The body of the last chat request (`null` before the first).
async fn last_request(State(shared): State<Arc<Shared>>) -> axum::Json<Value> {
    axum::Json(shared.requests.lock().unwrap().last().cloned().unwrap_or(Value::Null))
}

async fn reset(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.script.lock().unwrap().clear();
    StatusCode::NO_CONTENT
}

async fn chat(State(shared): State<Arc<Shared>>, headers: axum::http::HeaderMap, body: Bytes) -> Response {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("bad json: {e}")).into_response(),
    };
    shared.requests.lock().unwrap().push(request.clone());
    shared.headers.lock().unwrap().push(headers);
    let reply = shared.script.lock().unwrap().pop_front();
    let reply = reply.unwrap_or_else(|| default_reply(&request, &shared.defaults.lock().unwrap()));
    let stream = request.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let model = request.get("model").and_then(Value::as_str).unwrap_or("fake-model").to_string();
    let usage = request.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false);
    match reply {
        Reply::Status { status, body, retry_after } => {
            let mut resp =
                (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), body).into_response();
            if let Some(secs) = retry_after {
                resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            resp
        }
        Reply::Hang { chunks } if chunks.is_empty() => {
            std::future::pending::<()>().await;
            unreachable!()
        }
        reply if stream => stream_reply(shared, reply, model, usage),
        reply => complete_reply(reply, model).await,
    }
}

fn default_reply(request: &Value, defaults: &Defaults) -> Reply {
    let messages = request.get("messages").and_then(Value::as_array);
    let last_role = messages.and_then(|m| m.last()).and_then(|m| m.get("role")).and_then(Value::as_str);
    let tool = request
        .get("tools")
        .and_then(Value::as_array)
        .and_then(|tools| tools.first())
        .and_then(|t| t.pointer("/function/name"))
        .and_then(Value::as_str);
    match (last_role, tool) {
        (Some("user"), Some(name)) => Reply::tool_call(name, "{}"),
        _ => Reply::Text {
            chunks: (0..defaults.tokens).map(|i| if i == 0 { "token0".into() } else { format!(" token{i}") }).collect(),
            delay: defaults.token_delay,
        },
    }
}

fn chunk(model: &str, delta: Value, finish: Option<&str>) -> String {
    json!({
        "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_795_000_000, "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
    })
    .to_string()
}

fn usage_json(prompt: u64, completion: u64) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

/// One piece of a streamed body.
enum Piece {
    Data(String),
    Sleep(Duration),
    /// End the body with an error: the connection is cut mid-response.
    Cut,
    /// Stop sending forever.
    Stall,
}

fn stream_reply(shared: Arc<Shared>, reply: Reply, model: String, usage: bool) -> Response {
    let mut pieces = Vec::new();
    let text_pieces = |pieces: &mut Vec<Piece>, chunks: &[String], delay: Duration| {
        for (i, c) in chunks.iter().enumerate() {
            if !delay.is_zero() {
                pieces.push(Piece::Sleep(delay));
            }
            let delta = if i == 0 { json!({"role": "assistant", "content": c}) } else { json!({"content": c}) };
            pieces.push(Piece::Data(chunk(&model, delta, None)));
        }
    };
    let finish = |pieces: &mut Vec<Piece>, reason: &str, completion: u64| {
        pieces.push(Piece::Data(chunk(&model, json!({}), Some(reason))));
        if usage {
            pieces.push(Piece::Data(
                json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": model,
                       "choices": [], "usage": usage_json(12, completion)})
                .to_string(),
            ));
        }
        pieces.push(Piece::Data("[DONE]".into()));
    };
    match reply {
        Reply::Text { chunks, delay } => {
            text_pieces(&mut pieces, &chunks, delay);
            finish(&mut pieces, "stop", chunks.len() as u64);
        }
        Reply::ToolCalls { text, calls } => {
            if let Some(text) = text {
                text_pieces(&mut pieces, &split_words(&text), Duration::ZERO);
            }
            for (i, (name, args)) in calls.iter().enumerate() {
                let id = format!("call_fake_{i}");
                pieces.push(Piece::Data(chunk(
                    &model,
                    json!({"tool_calls": [{"index": i, "id": id, "type": "function",
                                           "function": {"name": name, "arguments": ""}}]}),
                    None,
                )));
                // Arguments in two halves, as real endpoints split them.
                let mid = args.char_indices().nth(args.chars().count() / 2).map_or(args.len(), |(i, _)| i);
                for part in [&args[..mid], &args[mid..]] {
                    if !part.is_empty() {
                        pieces.push(Piece::Data(chunk(
                            &model,
                            json!({"tool_calls": [{"index": i, "function": {"arguments": part}}]}),
                            None,
                        )));
                    }
                }
            }
            finish(&mut pieces, "tool_calls", 5);
        }
        Reply::Disconnect { chunks } => {
            text_pieces(&mut pieces, &chunks, Duration::ZERO);
            // Let what was said reach the client first, as when a real endpoint dies mid-answer.
            pieces.push(Piece::Sleep(Duration::from_millis(20)));
            pieces.push(Piece::Cut);
        }
        Reply::Garbage { chunks, garbage } => {
            text_pieces(&mut pieces, &chunks, Duration::ZERO);
            pieces.push(Piece::Data(garbage));
            pieces.push(Piece::Data("[DONE]".into()));
        }
        Reply::Hang { chunks } => {
            text_pieces(&mut pieces, &chunks, Duration::ZERO);
            pieces.push(Piece::Stall);
        }
        Reply::Raw { payloads } => {
            pieces.extend(payloads.into_iter().map(Piece::Data));
            pieces.push(Piece::Data("[DONE]".into()));
        }
        Reply::Status { .. } => unreachable!("answered before streaming"),
    }
    shared.open_streams.fetch_add(1, Ordering::SeqCst);
    let guard = OpenStream(shared);
    let body = futures::stream::iter(pieces).then(move |piece| {
        let _keep = &guard;
        async move {
            match piece {
                Piece::Data(d) => Ok(Bytes::from(format!("data: {d}\n\n"))),
                Piece::Sleep(d) => {
                    tokio::time::sleep(d).await;
                    Ok(Bytes::new())
                }
                Piece::Cut => Err(std::io::Error::other("fake model cut the connection")),
                Piece::Stall => {
                    std::future::pending::<()>().await;
                    unreachable!()
                }
            }
        }
    });
    Response::builder().header(header::CONTENT_TYPE, "text/event-stream").body(Body::from_stream(body)).unwrap()
}

/// Decrements the open-stream count when the response body is dropped (finished or hung up on).
struct OpenStream(Arc<Shared>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.open_streams.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn complete_reply(reply: Reply, model: String) -> Response {
    let (message, finish, completion) = match reply {
        Reply::Text { chunks, delay } => {
            tokio::time::sleep(delay * chunks.len() as u32).await;
            (json!({"role": "assistant", "content": chunks.concat()}), "stop", chunks.len() as u64)
        }
        Reply::ToolCalls { text, calls } => {
            let tool_calls: Vec<Value> = calls
                .iter()
                .enumerate()
                .map(|(i, (name, args))| {
                    json!({"id": format!("call_fake_{i}"), "type": "function",
                           "function": {"name": name, "arguments": args}})
                })
                .collect();
            (json!({"role": "assistant", "content": text, "tool_calls": tool_calls}), "tool_calls", 5)
        }
        Reply::Raw { payloads } => {
            // Non-streaming raw: the first payload is the whole body.
            let body = payloads.into_iter().next().unwrap_or_default();
            return ([(header::CONTENT_TYPE, "application/json")], body).into_response();
        }
        Reply::Disconnect { .. } => {
            let body = futures::stream::iter([Ok(Bytes::from_static(b"{\"id\":")), Err(std::io::Error::other("cut"))])
                .then(|piece| async move {
                    if piece.is_err() {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    piece
                });
            return Response::builder()
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CONTENT_LENGTH, "100")
                .body(Body::from_stream(body))
                .unwrap();
        }
        Reply::Garbage { garbage, .. } => {
            return ([(header::CONTENT_TYPE, "application/json")], garbage).into_response();
        }
        Reply::Hang { .. } => {
            std::future::pending::<()>().await;
            unreachable!()
        }
        Reply::Status { .. } => unreachable!("answered before"),
    };
    axum::Json(json!({
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 1_795_000_000, "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage_json(12, completion),
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: Value) -> Result<Reply, serde_json::Error> {
        serde_json::from_value::<ReplySpec>(v).map(Reply::from)
    }

    #[test]
    fn reply_specs_become_replies() {
        match spec(json!({"kind": "text", "text": "a b", "delay_ms": 5})).unwrap() {
            Reply::Text { chunks, delay } => {
                assert_eq!(chunks, ["a", " b"]);
                assert_eq!(delay, Duration::from_millis(5));
            }
            other => panic!("{other:?}"),
        }
        match spec(json!({"kind": "tool_calls", "calls": [{"name": "t"}]})).unwrap() {
            Reply::ToolCalls { text: None, calls } => assert_eq!(calls, [("t".to_string(), "{}".to_string())]),
            other => panic!("{other:?}"),
        }
        assert!(matches!(spec(json!({"kind": "hang"})).unwrap(), Reply::Hang { chunks } if chunks.is_empty()));
        assert!(matches!(spec(json!({"kind": "status", "status": 503})).unwrap(), Reply::Status { status: 503, .. }));
    }

    #[test]
    fn bad_specs_are_refused() {
        assert!(spec(json!({"kind": "texts", "text": "x"})).is_err());
        assert!(spec(json!({"kind": "text", "txt": "x"})).is_err());
    }
}
