//! `POST /invocations` and `POST /responses` (the same handler, spec §1.3).
//!
//! Order as the reference: read the body, parse JSON (400), take `stream` out by truthiness, validate
//! (400), then run. Failures before streaming are 500 `{"detail"}`; failures during a stream are an
//! in-band error event and `[DONE]` with status 200.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use app::config::User;
use app::responses::{ResponsesRequest, StreamEvent, is_truthy};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde_json::{Map, Value, json};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::error::ApiError;
use crate::llm::ModelError;
use crate::runner::Runner;
use crate::runner::output::{FrameBuffer, Output, new_id};
use crate::state::AppState;
use crate::tools::ToolContext;

pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(state, headers, body, Caller::Api).await.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /api/chat`: the browser chat's stream. The same request and events as `/responses`, always
/// streamed, always ending with the trace id (the UI attaches feedback to it).
pub async fn chat(State(state): State<AppState>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    handle(state, headers, body, Caller::ChatUi).await.unwrap_or_else(IntoResponse::into_response)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Caller {
    /// `/invocations` and `/responses`: `stream` and `x-mlflow-return-trace-id` as the client says.
    Api,
    ChatUi,
}

async fn handle(
    state: AppState,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let settings = &state.settings;
    let body = body.map_err(|r| ApiError::from_body(r, settings.max_request_bytes))?;
    let mut value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("Invalid JSON in request body: {e}")))?;
    let stream = value.as_object_mut().and_then(|b| b.remove("stream")).is_some_and(|s| is_truthy(&s))
        || caller == Caller::ChatUi;
    let invalid = |reason: String| {
        ApiError::bad_request(format!(
            "Invalid parameters for ResponsesAgent: Invalid data for ResponsesAgentRequest: {reason}"
        ))
    };
    let request = ResponsesRequest::from_value(value).map_err(|e| invalid(e.to_string()))?;
    if request.input.len() > settings.max_input_items {
        return Err(invalid(format!(
            "input: at most {} items are accepted, got {} (AGENT_MAX_INPUT_ITEMS)",
            settings.max_input_items,
            request.input.len()
        )));
    }
    let return_trace_id = caller == Caller::ChatUi
        || headers
            .get("x-mlflow-return-trace-id")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    state.runner.model.ready().map_err(|e| match e {
        ModelError::Busy(message) => ApiError::unavailable(message),
        other => ApiError::internal(other.to_string()),
    })?;

    let context = ToolContext {
        session_id: request.session_id().map(str::to_string),
        user: forwarded_user(&headers).id().map(str::to_string).or_else(|| request.user_id().map(str::to_string)),
        headers: Arc::new(headers),
        cancel: CancellationToken::new(),
    };
    let run = Run {
        runner: state.runner.clone(),
        // Until tracing lands, an id per request in MLflow's format.
        trace_id: return_trace_id.then(|| format!("tr-{:032x}", fastrand::u128(..))),
        custom_outputs: context.session_id.as_ref().map(|s| Map::from_iter([("session_id".to_string(), json!(s))])),
        request,
        context,
    };
    if stream { Ok(run.stream(state.settings.sse_keepalive())) } else { run.invoke().await }
}

/// The signed-in user, as the Databricks Apps proxy forwards it.
fn forwarded_user(headers: &HeaderMap) -> User {
    User::from_headers(|name| headers.get(name).and_then(|v| v.to_str().ok()))
}

struct Run {
    runner: Arc<Runner>,
    request: ResponsesRequest,
    context: ToolContext,
    trace_id: Option<String>,
    custom_outputs: Option<Map<String, Value>>,
}

impl Run {
    fn output(&self, frames: Option<FrameBuffer>) -> Output {
        let mut out = Output::new(frames, new_id("resp"), self.runner.agent.model.clone());
        out.response.custom_outputs = self.custom_outputs.clone();
        out
    }

    async fn invoke(self) -> Result<Response, ApiError> {
        let mut out = self.output(None);
        // If the client goes away, this future is dropped, and the run with it.
        self.runner.run(&self.request, &self.context, &mut out).await.map_err(|e| {
            tracing::warn!(error = %e, "request failed");
            ApiError::internal(e.to_string())
        })?;
        let mut response = out.response;
        if let Some(trace_id) = self.trace_id {
            response.metadata.get_or_insert_with(Map::new).insert("trace_id".into(), json!(trace_id));
        }
        Ok(Json(response).into_response())
    }

    fn stream(self, keepalive: Duration) -> Response {
        let frames = FrameBuffer::default();
        let cancel = self.context.cancel.clone();
        let run = {
            let frames = frames.clone();
            async move {
                let mut out = self.output(Some(frames.clone()));
                match self.runner.run(&self.request, &self.context, &mut out).await {
                    Ok(()) => {
                        if let Some(id) = self.trace_id {
                            frames.write(&json!({"trace_id": id}));
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "stream failed");
                        let sequence = out.next_sequence();
                        frames.write(&StreamEvent::error(error.error_code(), error.to_string(), Some(sequence)));
                    }
                }
                frames.write_raw(b"data: [DONE]\n\n");
            }
        };
        let body = SseBody {
            run: Some(Box::pin(run)),
            frames,
            keepalive,
            timer: Box::pin(tokio::time::sleep(keepalive)),
            _cancel_when_dropped: cancel.drop_guard(),
        };
        let mut response = Response::new(Body::from_stream(body));
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream; charset=utf-8"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        // Tell nginx-style proxies not to buffer the stream.
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        response
    }
}

/// The body of a streamed response. It drives the run itself: each time the connection is ready for
/// more, the run goes as far as it can and everything it wrote leaves in one piece. A client that
/// hangs up drops the body, and with it the run (the model call and the running tools); the drop
/// guard also tells tools that watch `ToolContext::cancel`. While the run is quiet (a long tool
/// call), keep-alive comments hold the connection open through proxies.
struct SseBody {
    run: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    frames: FrameBuffer,
    keepalive: Duration,
    timer: Pin<Box<Sleep>>,
    _cancel_when_dropped: DropGuard,
}

impl Stream for SseBody {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(run) = &mut this.run
            && run.as_mut().poll(cx).is_ready()
        {
            this.run = None;
        }
        if let Some(written) = this.frames.take() {
            this.timer.as_mut().reset(Instant::now() + this.keepalive);
            return Poll::Ready(Some(Ok(Bytes::from(written))));
        }
        if this.run.is_none() {
            return Poll::Ready(None);
        }
        match this.timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.timer.as_mut().reset(Instant::now() + this.keepalive);
                Poll::Ready(Some(Ok(Bytes::from_static(b": keep-alive\n\n"))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
