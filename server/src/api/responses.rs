//! `POST /invocations` and `POST /responses` (the same handler, docs/reference.md §1.3).
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
use app::conversation::NOTICE_EVENT;
use app::responses::{Item, ResponsesRequest, Role, is_truthy};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde_json::{Value, json};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::error::ApiError;
use crate::identity::Identity;
use crate::llm::ModelError;
use crate::observability::trace::{MAX_PAYLOAD_BYTES, payload};
use crate::run::{Client, Outcome, RequestRun};
use crate::runner::output::{EventSink, FrameBuffer, new_id};
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::recorder::{AnswerTarget, Recorder, TitleJob};
use crate::tools::ToolContext;

pub async fn create(
    State(state): State<AppState>,
    identity: Identity,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(state, identity, headers, body, Caller::Api).await.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /api/chat`: the browser chat's stream. The same request and events as `/responses`, always
/// streamed, always ending with the trace id (the UI attaches feedback to it).
pub async fn chat(
    State(state): State<AppState>,
    identity: Identity,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(state, identity, headers, body, Caller::ChatUi).await.unwrap_or_else(IntoResponse::into_response)
}

/// The route a request came by.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Caller {
    /// `/invocations` and `/responses`: `stream` and `x-mlflow-return-trace-id` as the client says.
    Api,
    ChatUi,
}

async fn handle(
    state: AppState,
    identity: Identity,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let settings = &state.settings;
    let body = body.map_err(|r| ApiError::from_body(r, settings.limits.max_request_bytes))?;
    let mut value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("Invalid JSON in request body: {e}")))?;
    let stream = value.as_object_mut().and_then(|b| b.remove("stream")).is_some_and(|s| is_truthy(&s))
        || caller == Caller::ChatUi;
    // The chat page says where the exchange goes in its chat; other clients' `chat` keys are theirs.
    let chat_target = match caller {
        Caller::ChatUi => value.as_object_mut().and_then(|b| b.remove("chat")),
        Caller::Api => None,
    };
    let invalid = |reason: String| {
        ApiError::bad_request(format!(
            "Invalid parameters for ResponsesAgent: Invalid data for ResponsesAgentRequest: {reason}"
        ))
    };
    // The root span's inputs: the request as it came (copied only when tracing).
    let traced_request = match state.observability.exporter.is_enabled() {
        false => None,
        true if body.len() <= MAX_PAYLOAD_BYTES => serde_json::from_slice(&body).ok(),
        true => payload(&String::from_utf8_lossy(&body)),
    };
    let request = ResponsesRequest::from_value(value).map_err(|e| invalid(e.to_string()))?;
    if request.input.len() > settings.limits.max_input_items {
        return Err(invalid(format!(
            "input: at most {} items are accepted, got {} (AGENT_MAX_INPUT_ITEMS)",
            settings.limits.max_input_items,
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

    let Identity { user, key: owner } = identity;
    let client = match caller {
        Caller::ChatUi => Client::ChatPage,
        Caller::Api if request.extra.get("background").is_some_and(is_truthy) => Client::Background,
        Caller::Api => Client::Api { stream },
    };
    // What this request would keep running and stored counts against the user's share.
    if client == Client::Background || chat_target.is_some() {
        super::quota::check_background(&state, &owner)?;
        super::quota::check_storage(&state, &owner, body.len()).await?;
    }
    let Recording { recorder, notice, task } = match chat_target {
        Some(target) => start_recording(&state, &owner, &target, &request).await?,
        None => Recording::default(),
    };
    let context = tool_context(&state, &user, &request, headers);
    let run = RequestRun::new(
        &state.observability.exporter,
        state.runner.clone(),
        request,
        context,
        client,
        return_trace_id,
        owner.clone(),
        traced_request,
    );
    // A background response runs as a background task; so does a saved chat's answer: a reload or
    // a closed tab does not stop it, and the page reattaches to it (Stop cancels it).
    if client == Client::Background || recorder.is_some() && state.background.is_some() {
        return super::background::start(&state, owner, run, recorder, task, stream).await;
    }
    match stream {
        true => Ok(stream_run(run, state.settings.server.sse_keepalive(), recorder, notice)),
        false => invoke_run(run).await,
    }
}

/// What the tools of this request know of it.
fn tool_context(state: &AppState, user: &User, request: &ResponsesRequest, headers: HeaderMap) -> ToolContext {
    ToolContext {
        session_id: request.session_id().map(str::to_string),
        user: user
            .email
            .clone()
            .or_else(|| user.preferred_username.clone())
            .or_else(|| user.name.clone())
            .or_else(|| request.user_id().map(str::to_string)),
        headers: Arc::new(headers),
        cancel: CancellationToken::new(),
        workspace: state.workspace.clone(),
        custom_inputs: Arc::new(request.custom_inputs.clone().unwrap_or_default()),
        custom_outputs: Default::default(),
        extensions: Default::default(),
    }
}

/// Where the chat page's exchange is saved: `{"id": chat, "position": n, "question_id", "answer_id"}`.
#[derive(serde::Deserialize)]
struct ChatTarget {
    id: String,
    position: i64,
    #[serde(default)]
    question_id: String,
    answer_id: String,
    /// The answer goes on (the user decided its approvals): no new question, the answer grows.
    #[serde(default)]
    continues: bool,
}

/// A chat answer being saved: the recorder that fills it in; what the page is told when it is not
/// saved; the background task that writes it when its row went in with the exchange.
#[derive(Default)]
struct Recording {
    recorder: Option<Recorder>,
    notice: Option<String>,
    task: Option<String>,
}

/// Writes the question and an empty answer (with the background task that will write it, when
/// tasks run here: one commit), and returns the recorder that fills the answer in. With the
/// database down the chat goes on unsaved, and the page is told (`notice`).
async fn start_recording(
    state: &AppState,
    owner: &str,
    target: &Value,
    request: &ResponsesRequest,
) -> Result<Recording, ApiError> {
    let Some(store) = &state.store else { return Ok(Recording::default()) };
    let target: ChatTarget = serde_json::from_value(target.clone())
        .map_err(|e| ApiError::bad_request(format!("Invalid chat target: {e}")))?;
    if target.continues {
        return continue_recording(store, owner, target, request).await;
    }
    if target.position < 0 || [&target.question_id, &target.answer_id].iter().any(|id| id.is_empty() || id.len() > 128)
    {
        return Err(ApiError::bad_request("Invalid chat target: position must be >= 0 and ids 1 to 128 characters"));
    }
    let question = request.last_user_text();
    // When tasks run here the answer is one, and its row goes in with the exchange.
    let task_id = new_id("resp");
    let task_request = match &state.background {
        Some(_) => serde_json::to_value(request).map_err(|e| ApiError::internal(e.to_string()))?,
        None => Value::Null,
    };
    let task = state.background.as_ref().map(|b| b.new_task(&task_id, owner, &task_request));
    if let Err(error) = store
        .begin_exchange(
            owner,
            &target.id,
            target.position,
            &target.question_id,
            &question,
            &target.answer_id,
            task.as_ref(),
        )
        .await
    {
        return answer_unsaved(error);
    }
    let title = (target.position == 0 && state.settings.history.titles).then(|| TitleJob {
        model: state.runner.model.clone(),
        model_name: state.runner.agent.model.clone(),
        question,
    });
    let recorder =
        Recorder::start(AnswerTarget { store: store.clone(), chat_id: target.id, answer_id: target.answer_id, title });
    Ok(Recording { recorder: Some(recorder), notice: None, task: task.map(|t| t.id.to_string()) })
}

/// A chat target the store refused: the caller's mistake (404, 400) is the request's error; a
/// database that fails means answering unsaved, and the page is told (`notice`).
fn answer_unsaved(error: StoreError) -> Result<Recording, ApiError> {
    match error {
        StoreError::NotFound | StoreError::Invalid(_) => Err(error.into()),
        // An id already taken: the caller's mistake too (said without the database's words).
        StoreError::Database(sqlx::Error::Database(ref db)) if db.is_unique_violation() => Err(error.into()),
        error => {
            tracing::warn!(%error, "chat history unavailable; answering without saving");
            let notice = "Chat history is unavailable, so this chat is not being saved.".to_string();
            Ok(Recording { notice: Some(notice), ..Recording::default() })
        }
    }
}

/// Records an answer that goes on: it starts from what the request carries after the question (the
/// answer so far and the user's decisions), and grows in place.
async fn continue_recording(
    store: &crate::store::ChatStore,
    owner: &str,
    target: ChatTarget,
    request: &ResponsesRequest,
) -> Result<Recording, ApiError> {
    if target.answer_id.is_empty() || target.answer_id.len() > 128 {
        return Err(ApiError::bad_request("Invalid chat target: answer_id must be 1 to 128 characters"));
    }
    let question_at = request.input.iter().rposition(|i| matches!(i, Item::Message(m) if m.role == Role::User));
    let so_far = request.input[question_at.map_or(0, |i| i + 1)..].to_vec();
    // The answer goes on from what the agent wrote, as saved: the request may add the user's
    // decisions, nothing else (else an owner could store tool calls and text in the agent's name,
    // which readers of a public chat would take for the agent's). The saved copy may lag the page
    // by a moment: it is read again a few times before the request is refused.
    let agents_part = |items: &[Item]| -> Vec<Value> {
        items
            .iter()
            .filter(|i| !matches!(i, Item::McpApprovalResponse(_)))
            .map(|i| serde_json::to_value(i).unwrap_or_default())
            .collect()
    };
    let sent = agents_part(&so_far);
    let mut attempts = 0;
    loop {
        let saved = match store.answer_items(owner, &target.id, &target.answer_id).await {
            Ok(saved) => saved,
            Err(error) => return answer_unsaved(error),
        };
        let saved: Vec<Item> = serde_json::from_value(saved).unwrap_or_default();
        if agents_part(&saved) == sent {
            break;
        }
        attempts += 1;
        if attempts >= 10 {
            return Err(ApiError::bad_request(
                "Invalid chat target: the answer to continue is not the saved one; a continued answer may only add \
                 the user's decisions (mcp_approval_response items)",
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let answer = app::conversation::Answer::restored(so_far, app::conversation::AnswerStatus::Streaming, None, None);
    let target = AnswerTarget { store: store.clone(), chat_id: target.id, answer_id: target.answer_id, title: None };
    Ok(Recording { recorder: Some(Recorder::start_with(target, answer)), ..Recording::default() })
}

/// Runs the request and answers with the response.
async fn invoke_run(run: RequestRun) -> Result<Response, ApiError> {
    let mut out = run.output(new_id("resp"), None);
    // If the client goes away, this future is dropped, and the run with it.
    let result = run.run(&mut out).await;
    run.end(&mut out, &Outcome::from(&result));
    result.map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(out.response).into_response())
}

/// Runs the request as the client reads its stream.
fn stream_run(run: RequestRun, keepalive: Duration, recorder: Option<Recorder>, notice: Option<String>) -> Response {
    let frames = FrameBuffer::default();
    if let Some(message) = notice {
        frames.write(&json!({"type": NOTICE_EVENT, "message": message}));
    }
    let cancel = run.context.cancel.clone();
    let driven = {
        let frames = frames.clone();
        async move {
            let mut out = run.output(new_id("resp"), Some(EventSink::Frames(frames.clone())));
            let result = run.run(&mut out).await;
            run.end(&mut out, &Outcome::from(&result));
            frames.write_raw(b"data: [DONE]\n\n");
        }
    };
    let body = SseBody {
        run: Some(Box::pin(driven)),
        frames,
        keepalive,
        timer: Box::pin(tokio::time::sleep(keepalive)),
        recorder,
        _cancel_when_dropped: cancel.drop_guard(),
    };
    super::sse::event_stream(Body::from_stream(body))
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
    /// Saves the chat page's answer as it goes out.
    recorder: Option<Recorder>,
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
            if let Some(recorder) = &mut this.recorder {
                recorder.observe(&written);
            }
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
