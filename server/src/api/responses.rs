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

use app::responses::{ResponsesRequest, StreamEvent, is_truthy};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::error::ApiError;
use crate::runner::output::{Output, new_id, sse_frame};
use crate::runner::{RunError, Runner};
use crate::state::AppState;
use crate::tools::ToolContext;

/// Stream frames buffered between the agent and a slow client before the agent waits.
const STREAM_BUFFER: usize = 64;
/// Frames already queued are written together, up to this size.
const MAX_COALESCED_BYTES: usize = 64 * 1024;

pub async fn create(State(state): State<AppState>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    match handle(state, headers, body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn handle(state: AppState, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    let settings = &state.settings;
    let body = body.map_err(|r| ApiError::from_body(r, settings.max_request_bytes))?;
    let mut value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("Invalid JSON in request body: {e}")))?;
    let stream = value.as_object_mut().and_then(|b| b.remove("stream")).is_some_and(|s| is_truthy(&s));
    let invalid = |reason: String| {
        ApiError::bad_request(format!("Invalid parameters for ResponsesAgent: Invalid data for ResponsesAgentRequest: {reason}"))
    };
    let request = ResponsesRequest::from_value(value).map_err(|e| invalid(e.to_string()))?;
    if request.input.len() > settings.max_input_items {
        return Err(invalid(format!(
            "input: at most {} items are accepted, got {} (AGENT_MAX_INPUT_ITEMS)",
            settings.max_input_items,
            request.input.len()
        )));
    }
    let return_trace_id = headers
        .get("x-mlflow-return-trace-id")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    state.runner.model.ready().map_err(|e| ApiError::internal(e.to_string()))?;

    let context = ToolContext {
        session_id: request.session_id().map(str::to_string),
        user: forwarded_user(&headers).or_else(|| request.user_id().map(str::to_string)),
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
    if stream {
        Ok(run.stream(state.settings.sse_keepalive()))
    } else {
        run.invoke().await
    }
}

/// The signed-in user, as the Databricks Apps proxy forwards it.
fn forwarded_user(headers: &HeaderMap) -> Option<String> {
    ["x-forwarded-email", "x-forwarded-preferred-username", "x-forwarded-user"]
        .iter()
        .find_map(|h| headers.get(*h)?.to_str().ok().filter(|v| !v.is_empty()).map(str::to_string))
}

struct Run {
    runner: Arc<Runner>,
    request: ResponsesRequest,
    context: ToolContext,
    trace_id: Option<String>,
    custom_outputs: Option<Map<String, Value>>,
}

impl Run {
    fn output(&self, events: Option<mpsc::Sender<Bytes>>) -> Output {
        let mut out = Output::new(events, new_id("resp"), self.runner.agent.model.clone());
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
        let (events, frames) = mpsc::channel(STREAM_BUFFER);
        let cancel = self.context.cancel.clone();
        tokio::spawn(async move {
            let mut out = self.output(Some(events.clone()));
            let result = tokio::select! {
                result = self.runner.run(&self.request, &self.context, &mut out) => result,
                _ = self.context.cancel.cancelled() => Err(RunError::Disconnected),
            };
            let last = match result {
                Ok(()) => self.trace_id.map(|id| json!({"trace_id": id}).to_string()),
                Err(RunError::Disconnected) => {
                    tracing::info!("client disconnected; the run was cancelled");
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, "stream failed");
                    let sequence = out.next_sequence();
                    let event = StreamEvent::error(error.error_code(), error.to_string(), Some(sequence));
                    Some(serde_json::to_string(&event).expect("error events serialise"))
                }
            };
            if let Some(last) = last {
                let _ = events.send(sse_frame(last.as_bytes())).await;
            }
            let _ = events.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
        });
        let body = SseBody {
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

/// The body of a streamed response: the agent's frames, keep-alive comments while it is quiet, and
/// cancellation of the run when the client hangs up (the body is dropped).
struct SseBody {
    frames: mpsc::Receiver<Bytes>,
    keepalive: Duration,
    timer: Pin<Box<Sleep>>,
    _cancel_when_dropped: DropGuard,
}

impl Stream for SseBody {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match this.frames.poll_recv(cx) {
            Poll::Ready(Some(first)) => {
                // Write what is already queued in one go: fewer syscalls under load.
                let mut batch: Option<Vec<u8>> = None;
                while batch.as_ref().map_or(first.len(), Vec::len) < MAX_COALESCED_BYTES {
                    match this.frames.try_recv() {
                        Ok(more) => batch.get_or_insert_with(|| first.to_vec()).extend_from_slice(&more),
                        Err(_) => break,
                    }
                }
                this.timer.as_mut().reset(Instant::now() + this.keepalive);
                Poll::Ready(Some(Ok(batch.map(Bytes::from).unwrap_or(first))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.timer.as_mut().reset(Instant::now() + this.keepalive);
                    Poll::Ready(Some(Ok(Bytes::from_static(b": keep-alive\n\n"))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}
