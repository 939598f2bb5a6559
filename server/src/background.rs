//! Background responses (`"background": true`, docs/reference.md §6.4): the run goes on without the client,
//! every stream event is saved as it is written, and clients poll (`GET /responses/{id}`), replay or
//! resume the stream from a sequence number, or cancel.
//!
//! Each task is run by one process, which shows it is alive with a heartbeat. A task whose process
//! stopped (a restart, a crash, a scale-down) is taken over once its lease runs out: by another
//! process sharing the database, or by this one after it restarts. The new run goes on from the
//! items that were finished; a message cut off mid-way is closed as incomplete, and a tool call
//! that never returned is reported to the model as interrupted (it is not run twice: it may have
//! had effects).

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use app::responses::{Content, ContentPart, Item, ResponseObject, ResponsesRequest, StreamEvent};
use axum::body::Bytes;
use futures::Stream;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::databricks::auth::WorkspaceAuth;
use crate::identity::LOCAL_USER;
use crate::observability::export::Exporter;
use crate::observability::trace::payload;
use crate::observability::{Trace, TraceStart};
use crate::runner::output::{FrameBuffer, Output};
use crate::runner::{RunError, Runner};
use crate::store::recorder::{AnswerTarget, Recorder};
use crate::store::responses::{StoredEvent, StoredResponse, is_terminal};
use crate::store::{ChatStore, StoreError};
use crate::tools::ToolContext;

/// What a tool call interrupted by a stopped process gets as its output.
pub const INTERRUPTED_CALL: &str =
    "The server stopped while this tool was running, so its result is unknown (it was not run again).";

#[derive(Debug, Clone, Copy)]
pub struct Timings {
    /// `TASK_TIMEOUT_SECONDS`.
    pub task_timeout: Duration,
    /// `POLL_INTERVAL_SECONDS`: readers of a task run by another process check this often.
    pub poll_interval: Duration,
    /// `AGENT_BACKGROUND_LEASE_SECONDS`.
    pub lease: Duration,
    /// `AGENT_BACKGROUND_RETENTION_HOURS`.
    pub retention: Duration,
}

impl From<&crate::config::BackgroundSettings> for Timings {
    fn from(settings: &crate::config::BackgroundSettings) -> Self {
        Self {
            task_timeout: settings.task_timeout(),
            poll_interval: settings.poll_interval(),
            lease: settings.lease(),
            retention: settings.retention(),
        }
    }
}

/// What running a task takes besides its request: the agent, where its trace goes, the workspace
/// its tools call.
#[derive(Clone)]
pub struct Engine {
    pub runner: Arc<Runner>,
    pub exporter: Exporter,
    pub workspace: Option<WorkspaceAuth>,
}

/// The background tasks of this process, and the way to every task in the database.
#[derive(Clone)]
pub struct BackgroundTasks(Arc<Inner>);

struct Inner {
    store: ChatStore,
    timings: Timings,
    /// This process, as the `worker` of the tasks it runs.
    worker: String,
    running: Mutex<HashMap<String, Running>>,
    recovering: AtomicBool,
}

/// A task this process runs.
struct Running {
    /// Whose task it is (per-user caps count these).
    owner: String,
    cancel: CancellationToken,
    /// The sequence number of the last event written (readers wake up when it moves).
    written: watch::Receiver<i64>,
    /// Its events so far: readers in this process read them here (they go on if the database
    /// stumbles); readers elsewhere read the saved copies.
    log: Arc<Mutex<EventLog>>,
}

#[derive(Default)]
struct EventLog {
    events: Vec<StoredEvent>,
    ended: bool,
}

/// How a task is run, besides its request.
#[derive(Default)]
pub struct TaskOptions {
    /// The chat page's answer, saved as it grows (the chat page's runs are background tasks, so a
    /// reload or a closed tab does not stop them).
    pub recorder: Option<Recorder>,
    /// Write `agent_app.notice` events (the chat page reads them).
    pub notices: bool,
    /// Name the trace in the response's `metadata.trace_id`.
    pub return_trace_id: bool,
}

/// A task to run.
struct Run {
    id: String,
    owner: String,
    request: ResponsesRequest,
    context: ToolContext,
    out: Output,
    frames: FrameBuffer,
    options: TaskOptions,
    sink: Sink,
}

/// Where a running task's events go for readers in this process.
struct Sink {
    log: Arc<Mutex<EventLog>>,
    written: watch::Sender<i64>,
}

impl Sink {
    fn push(&self, events: &[StoredEvent]) {
        if let Some(last) = events.last().map(|e| e.sequence) {
            self.log.lock().expect("event log lock").events.extend_from_slice(events);
            self.written.send_replace(last);
        }
    }

    fn end(&self) {
        self.log.lock().expect("event log lock").ended = true;
        self.written.send_modify(|_| {});
    }
}

/// How a run ended.
enum End {
    Finished(Result<(), RunError>),
    Cancelled,
    TimedOut,
    /// Another process took the task over (this one was presumed dead): it writes nothing more.
    Lost,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl BackgroundTasks {
    pub fn new(store: ChatStore, timings: Timings) -> Self {
        Self(Arc::new(Inner {
            store,
            timings,
            worker: format!("{}-{:016x}", std::process::id(), fastrand::u64(..)),
            running: Mutex::new(HashMap::new()),
            recovering: AtomicBool::new(false),
        }))
    }

    /// Starts a task for `owner` and returns the response as it stands (in progress, no output).
    pub async fn start(
        &self,
        engine: &Engine,
        owner: String,
        request: ResponsesRequest,
        context: ToolContext,
        options: TaskOptions,
    ) -> Result<ResponseObject, StoreError> {
        let id = crate::runner::output::new_id("resp");
        let saved = serde_json::to_value(&request).map_err(|e| StoreError::Invalid(e.to_string()))?;
        self.0.store.create_response(&id, &owner, &saved, &self.0.worker).await?;
        let frames = FrameBuffer::default();
        let mut out = Output::new(Some(frames.clone()), id.clone(), engine.runner.agent.model.clone());
        out.response.extra.insert("background".into(), json!(true));
        out.notices = options.notices;
        if let Some(session) = &context.session_id {
            out.response
                .custom_outputs
                .get_or_insert_with(Default::default)
                .insert("session_id".into(), json!(session));
        }
        let snapshot = out.response.clone();
        let sink = self.register(&id, &owner, &context);
        let run = Run { id, owner, request, context, out, frames, options, sink };
        tokio::spawn(self.clone().drive(engine.clone(), run));
        Ok(snapshot)
    }

    /// Runs a task to its end, saving its events as they come, then its final response.
    async fn drive(self, engine: Engine, run: Run) {
        let Run { id, owner, request, context, mut out, frames, options, sink } = run;
        let mut recorder = options.recorder;
        let cancel = context.cancel.clone();
        let trace = Trace::start(&engine.exporter, || TraceStart {
            name: "stream_handler".into(),
            session: context.session_id.clone(),
            user: context.user.clone(),
            owner: owner.clone(),
            request_preview: request.last_user_text(),
            inputs: payload(&request),
        });
        if let (true, Some(trace_id)) = (options.return_trace_id, trace.id()) {
            out.response.metadata.get_or_insert_with(Default::default).insert("trace_id".into(), json!(trace_id));
        }
        let mut pending = Vec::new();
        let timings = self.0.timings;
        let end = {
            let root = trace.root();
            let run = engine.runner.run(&request, &context, &mut out, &root);
            tokio::pin!(run);
            let mut flush = tokio::time::interval(Duration::from_millis(50));
            let mut heartbeat = tokio::time::interval(timings.lease / 3);
            let deadline = tokio::time::sleep(timings.task_timeout);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    result = &mut run => break End::Finished(result),
                    _ = flush.tick() => self.save(&id, &frames, &mut pending, &sink, &mut recorder).await,
                    _ = heartbeat.tick() => match self.0.store.heartbeat(&id, &self.0.worker).await {
                        Ok((_, worker)) if worker != self.0.worker => break End::Lost,
                        Ok((status, _)) if status == "cancelled" => break End::Cancelled,
                        Ok(_) => {}
                        Err(error) => tracing::warn!(%error, response = %id, "background task heartbeat failed"),
                    },
                    _ = cancel.cancelled() => break End::Cancelled,
                    _ = &mut deadline => break End::TimedOut,
                }
            }
        };
        cancel.cancel(); // tools that watch it stop
        let (status, error) = match end {
            End::Lost => {
                tracing::warn!(response = %id, "background task taken over by another process; stopping here");
                sink.end();
                self.0.running.lock().expect("running lock").remove(&id);
                trace.finish(|| None, "", Some("taken over by another process".into()));
                return;
            }
            End::Finished(Ok(())) => ("completed", None),
            End::Finished(Err(error)) => ("failed", Some((error.error_code().to_string(), error.to_string()))),
            End::Cancelled => ("cancelled", None),
            End::TimedOut => (
                "failed",
                Some((
                    "task_timeout".to_string(),
                    format!("The task ran longer than {} s (TASK_TIMEOUT_SECONDS).", timings.task_timeout.as_secs()),
                )),
            ),
        };
        if let Some((code, message)) = &error {
            let sequence = out.next_sequence();
            frames.write(&StreamEvent::error(code, message.clone(), Some(sequence)));
            out.response.error =
                Some(app::responses::ResponseError { code: Some(code.clone()), message: message.clone() });
        }
        out.response.status = Some(status.into());
        // As a streamed request with x-mlflow-return-trace-id ends (the chat page's always does).
        if let (true, "completed", Some(trace_id)) = (options.return_trace_id, status, trace.id()) {
            let sequence = out.next_sequence();
            frames.write(&json!({"trace_id": trace_id, "sequence_number": sequence}));
        }
        if status != "cancelled" && recorder.is_some() {
            // The chat page's answer ends as its stream would: saved complete (or failed).
            self.save(&id, &frames, &mut pending, &sink, &mut recorder).await;
            if let Some(recorder) = &mut recorder {
                recorder.observe(b"data: [DONE]\n\n");
            }
        }
        trace.finish(|| payload(&out.response), &out.response.output_text(), error.as_ref().map(|(_, m)| m.clone()));
        let response = serde_json::to_value(&out.response).unwrap_or(Value::Null);
        // The end must be saved, or the task would look orphaned and run again: retry for a while.
        for attempt in 0..20u32 {
            self.save(&id, &frames, &mut pending, &sink, &mut recorder).await;
            let finished = match pending.is_empty() {
                true => self.0.store.finish_response(&id, &self.0.worker, status, &response).await,
                false => Err(StoreError::Invalid("events not saved yet".into())),
            };
            match finished {
                Ok(()) => break,
                Err(error) => {
                    tracing::warn!(%error, response = %id, attempt, "could not save the end of a background task");
                    tokio::time::sleep(Duration::from_millis(250) * (attempt + 1)).await;
                }
            }
        }
        sink.end();
        drop(recorder);
        self.0.running.lock().expect("running lock").remove(&id);
    }

    /// Makes a task this process runs known to its readers here (before it starts, so that no
    /// reader looks for it in the database in the meantime).
    /// The tasks of `owner` this process is running.
    pub fn running_for(&self, owner: &str) -> usize {
        self.0.running.lock().expect("running lock").values().filter(|r| r.owner == owner).count()
    }

    fn register(&self, id: &str, owner: &str, context: &ToolContext) -> Sink {
        let (written_tx, written_rx) = watch::channel(-1_i64);
        let log = Arc::new(Mutex::new(EventLog::default()));
        let running =
            Running { owner: owner.to_string(), cancel: context.cancel.clone(), written: written_rx, log: log.clone() };
        self.0.running.lock().expect("running lock").insert(id.to_string(), running);
        Sink { log, written: written_tx }
    }

    /// Hands what the run wrote since the last call to this process's readers and the recorder,
    /// and saves it (kept for the next call if the database fails).
    async fn save(
        &self,
        id: &str,
        frames: &FrameBuffer,
        pending: &mut Vec<StoredEvent>,
        sink: &Sink,
        recorder: &mut Option<Recorder>,
    ) {
        if let Some(recorder) = recorder.as_mut() {
            match frames.take() {
                Some(bytes) => {
                    recorder.observe(&bytes);
                    frames.write_raw(&bytes);
                }
                None => recorder.tick(),
            }
        }
        if let Some(bytes) = frames.take() {
            let events = events_of(&bytes);
            sink.push(&events);
            pending.extend(events);
        }
        if pending.is_empty() {
            return;
        }
        match self.0.store.append_events(id, pending).await {
            Ok(()) => pending.clear(),
            Err(error) => tracing::warn!(%error, response = %id, "could not save background events; will retry"),
        }
    }

    /// Cancels the user's task (wherever it runs: its process sees the status at its next heartbeat).
    pub async fn cancel(&self, owner: &str, id: &str) -> Result<Value, StoreError> {
        let stored = self.0.store.cancel_response(owner, id).await?;
        if let Some(running) = self.0.running.lock().expect("running lock").get(id) {
            running.cancel.cancel();
        }
        self.view(stored).await
    }

    /// The user's task as a response object: the final one once it ended, else the items done so far.
    pub async fn get(&self, owner: &str, id: &str) -> Result<Value, StoreError> {
        let stored = self.0.store.get_response(owner, id).await?;
        self.view(stored).await
    }

    async fn view(&self, stored: StoredResponse) -> Result<Value, StoreError> {
        if let Some(mut response) = stored.response {
            response["status"] = json!(stored.status);
            return Ok(response);
        }
        let events = self.0.store.all_response_events(&stored.id).await?;
        let position = Progress::of(&events);
        let mut response = position.snapshot.unwrap_or_else(|| ResponseObject::new(Vec::new()));
        response.id = Some(stored.id.clone());
        response.created_at.get_or_insert(stored.created_at as f64 / 1000.0);
        response.status = Some(stored.status.clone());
        response.output = position.done.into_values().map(|(_, item)| item).collect();
        response.extra.insert("background".into(), json!(true));
        Ok(serde_json::to_value(response).unwrap_or(Value::Null))
    }

    /// The task's stream from after sequence number `after`: saved events first, then new ones as
    /// they are saved, then `[DONE]` once the task ended. Keep-alive comments while it is quiet.
    pub fn events(
        &self,
        id: String,
        after: i64,
        keepalive: Duration,
    ) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + use<> {
        let tasks = self.clone();
        futures::stream::unfold(Some(after), move |after| {
            let (tasks, id) = (tasks.clone(), id.clone());
            async move {
                let (bytes, next) = tasks.next_events(&id, after?, keepalive).await;
                Some((Ok(bytes), next))
            }
        })
    }

    async fn next_events(&self, id: &str, after: i64, keepalive: Duration) -> (Bytes, Option<i64>) {
        let quiet_since = Instant::now();
        loop {
            let local =
                self.0.running.lock().expect("running lock").get(id).map(|r| (r.log.clone(), r.written.clone()));
            if let Some((log, mut written)) = local {
                // Seen up to now (a clone starts at the channel's first value): the wait below
                // wakes for what is written after the log is read.
                written.borrow_and_update();
                let (events, ended) = {
                    let log = log.lock().expect("event log lock");
                    let start = log.events.partition_point(|e| e.sequence <= after);
                    (log.events[start..].iter().take(500).cloned().collect::<Vec<_>>(), log.ended)
                };
                if let Some(last) = events.last().map(|e| e.sequence) {
                    return (frames_of(&events), Some(last));
                }
                if ended {
                    return (Bytes::from_static(b"data: [DONE]\n\n"), None);
                }
                if quiet_since.elapsed() >= keepalive {
                    return (Bytes::from_static(b": keep-alive\n\n"), Some(after));
                }
                let _ = tokio::time::timeout(keepalive, written.changed()).await;
                continue;
            }
            // The status first: if the task had ended, all its events were saved before it.
            let read = async {
                let status = self.0.store.response_status(id).await?;
                Ok::<_, StoreError>((status, self.0.store.response_events(id, after, 500).await?))
            };
            let (status, events) = match read.await {
                Ok(read) => read,
                Err(error) => {
                    let event = StreamEvent::error("database_error", format!("Could not read the task: {error}"), None);
                    let text =
                        format!("data: {}\n\ndata: [DONE]\n\n", serde_json::to_string(&event).unwrap_or_default());
                    return (Bytes::from(text), None);
                }
            };
            if let Some(last) = events.last().map(|e| e.sequence) {
                return (frames_of(&events), Some(last));
            }
            if is_terminal(&status) {
                return (Bytes::from_static(b"data: [DONE]\n\n"), None);
            }
            if quiet_since.elapsed() >= keepalive {
                return (Bytes::from_static(b": keep-alive\n\n"), Some(after));
            }
            tokio::time::sleep(self.0.timings.poll_interval).await;
        }
    }

    /// Takes over tasks whose process stopped, now and every half lease, for as long as the app
    /// runs; and deletes tasks past their retention, hourly. Started once.
    pub fn spawn_recovery(&self, engine: Engine) {
        if self.0.recovering.swap(true, Ordering::SeqCst) {
            return;
        }
        let tasks = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(tasks.0.timings.lease / 2);
            let mut last_prune: Option<Instant> = None;
            loop {
                tick.tick().await;
                if last_prune.is_none_or(|at| at.elapsed() > Duration::from_secs(3600)) {
                    last_prune = Some(Instant::now());
                    let before = now_ms() - tasks.0.timings.retention.as_millis() as i64;
                    if let Err(error) = tasks.0.store.prune_responses(before).await {
                        tracing::warn!(%error, "could not delete old background responses");
                    }
                }
                if let Err(error) = tasks.take_over_orphans(&engine).await {
                    tracing::warn!(%error, "could not look for orphaned background responses");
                }
            }
        });
    }

    async fn take_over_orphans(&self, engine: &Engine) -> Result<(), StoreError> {
        let stale_before = now_ms() - self.0.timings.lease.as_millis() as i64;
        for id in self.0.store.orphaned_responses(stale_before).await? {
            if self.0.store.claim_response(&id, &self.0.worker, stale_before).await? {
                tracing::info!(response = %id, "taking over a background task whose process stopped");
                if let Err(error) = self.resume(engine, &id).await {
                    tracing::warn!(%error, response = %id, "could not resume a background task");
                }
            }
        }
        Ok(())
    }

    /// Picks a claimed task up where it was left: its finished items stay, an open message is
    /// closed as incomplete, a call without output gets [`INTERRUPTED_CALL`], and the run goes on.
    async fn resume(&self, engine: &Engine, id: &str) -> Result<(), StoreError> {
        let row = self.0.store.get_response_any_owner(id).await?;
        let events = self.0.store.all_response_events(id).await?;
        let request = match ResponsesRequest::from_value(row.request.clone()) {
            Ok(request) => request,
            Err(error) => {
                let response = json!({"id": id, "object": "response", "status": "failed",
                    "error": {"code": "invalid_request", "message": error.to_string()}, "output": []});
                return self.0.store.finish_response(id, &self.0.worker, "failed", &response).await;
            }
        };
        let progress = Progress::of(&events);
        let mut snapshot = progress.snapshot.clone().unwrap_or_else(|| ResponseObject::new(Vec::new()));
        snapshot.id = Some(id.to_string());
        snapshot.model.get_or_insert_with(|| engine.runner.agent.model.clone());
        snapshot.extra.insert("background".into(), json!(true));
        let frames = FrameBuffer::default();
        let next_sequence = events.last().map_or(0, |e| e.sequence as u64 + 1);
        let mut out = Output::resume(frames.clone(), snapshot, next_sequence, progress.done.into_values().collect());
        for (index, item) in progress.open {
            let closed = match item {
                Item::Message(mut message) => {
                    let text = message.id.as_ref().and_then(|id| progress.text.get(id)).cloned().unwrap_or_default();
                    message.content = Content::Parts(vec![ContentPart::output_text(text)]);
                    message.status = Some("incomplete".into());
                    Item::Message(message)
                }
                Item::FunctionCall(mut call) => {
                    call.status = Some("incomplete".into());
                    Item::FunctionCall(call)
                }
                other => other,
            };
            out.interrupted(index, closed);
        }
        let answered: HashSet<String> = out
            .done_items()
            .iter()
            .filter_map(|i| match i {
                Item::FunctionCallOutput(o) => Some(o.call_id.clone()),
                _ => None,
            })
            .collect();
        let unanswered: Vec<String> = out
            .done_items()
            .iter()
            .filter_map(|i| match i {
                Item::FunctionCall(c)
                    if c.status.as_deref() != Some("incomplete") && !answered.contains(&c.call_id) =>
                {
                    Some(c.call_id.clone())
                }
                _ => None,
            })
            .collect();
        for call_id in unanswered {
            out.tool_output(&call_id, INTERRUPTED_CALL.to_string());
        }
        // The model goes on from the request and what was done (calls cut off mid-way left out).
        let mut request = request;
        request.input.extend(out.done_items().iter().filter(|i| !is_incomplete_call(i)).cloned());
        let context = ToolContext {
            session_id: request.session_id().map(str::to_string),
            user: (row.user_id != LOCAL_USER)
                .then(|| row.user_id.clone())
                .or_else(|| request.user_id().map(str::to_string)),
            headers: Default::default(),
            cancel: CancellationToken::new(),
            workspace: engine.workspace.clone(),
            custom_inputs: std::sync::Arc::new(request.custom_inputs.clone().unwrap_or_default()),
            custom_outputs: Default::default(),
            extensions: Default::default(),
        };
        // A chat page's answer: its row is written on from what was saved (the page shows it whole).
        let recorder = match self.0.store.answer_of_response(id).await {
            Ok(Some((chat_id, answer_id))) => {
                let target = AnswerTarget { store: self.0.store.clone(), chat_id, answer_id, title: None };
                let mut recorder = Recorder::start(target);
                recorder.observe(&frames_of(&events));
                Some(recorder)
            }
            Ok(None) => None,
            Err(error) => {
                tracing::warn!(%error, response = %id, "could not find the chat answer of a resumed task");
                None
            }
        };
        let notices = recorder.is_some();
        out.notices = notices;
        // Whether an API client asked for the trace id is not kept: only the chat page gets it.
        let options = TaskOptions { recorder, notices, return_trace_id: notices };
        let sink = self.register(id, &row.user_id, &context);
        let run = Run { id: id.to_string(), owner: row.user_id, request, context, out, frames, options, sink };
        tokio::spawn(self.clone().drive(engine.clone(), run));
        Ok(())
    }
}

fn is_incomplete_call(item: &Item) -> bool {
    matches!(item, Item::FunctionCall(c) if c.status.as_deref() == Some("incomplete"))
}

/// Where a task stood, from its saved events.
struct Progress {
    /// The response as `response.created` announced it.
    snapshot: Option<ResponseObject>,
    /// Finished items by output index.
    done: std::collections::BTreeMap<u32, (u32, Item)>,
    /// Items started and not finished.
    open: Vec<(u32, Item)>,
    /// Text streamed so far, by message id.
    text: HashMap<String, String>,
}

impl Progress {
    fn of(events: &[StoredEvent]) -> Self {
        let mut progress =
            Progress { snapshot: None, done: Default::default(), open: Vec::new(), text: HashMap::new() };
        let mut added = std::collections::BTreeMap::new();
        for stored in events {
            let Ok(event) = serde_json::from_str::<StreamEvent>(&stored.event) else { continue };
            match event {
                StreamEvent::Created { response, .. } => progress.snapshot = Some(response),
                StreamEvent::OutputItemAdded { item, output_index: Some(index), .. } => {
                    added.insert(index, item);
                }
                StreamEvent::OutputItemDone { item, output_index: Some(index), .. } => {
                    progress.done.insert(index, (index, item));
                }
                StreamEvent::OutputTextDelta { item_id, delta, .. } => {
                    progress.text.entry(item_id).or_default().push_str(&delta)
                }
                _ => {}
            }
        }
        progress.open = added.into_iter().filter(|(index, _)| !progress.done.contains_key(index)).collect();
        progress
    }
}

/// Events as SSE frames.
fn frames_of(events: &[StoredEvent]) -> Bytes {
    let mut text = String::new();
    for event in events {
        text.push_str("data: ");
        text.push_str(&event.event);
        text.push_str("\n\n");
    }
    Bytes::from(text)
}

/// The stream events in a run's frames (`data: {…}\n\n`), with their sequence numbers. Frames
/// without one (notices, the trace id of the chat page) are not part of a response's stream.
fn events_of(bytes: &[u8]) -> Vec<StoredEvent> {
    let text = String::from_utf8_lossy(bytes);
    text.split("\n\n")
        .filter_map(|frame| frame.strip_prefix("data: "))
        .filter_map(|data| {
            let value: Value = serde_json::from_str(data).ok()?;
            Some(StoredEvent {
                sequence: value.get("sequence_number")?.as_i64()?,
                // The trace id frame has no type (`{"trace_id"}`, as the reference ends a stream).
                kind: match value.get("type") {
                    Some(kind) => kind.as_str()?.to_string(),
                    None => value.get("trace_id").map(|_| "trace_id".to_string())?,
                },
                event: data.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_read_from_frames() {
        let frames = b"data: {\"type\":\"a\",\"sequence_number\":0}\n\ndata: {\"type\":\"agent_app.notice\"}\n\n\
                       data: {\"type\":\"b\",\"sequence_number\":1,\"text\":\"x\\n\\ny\"}\n\n";
        let events = events_of(frames);
        assert_eq!(events.iter().map(|e| (e.sequence, e.kind.as_str())).collect::<Vec<_>>(), [(0, "a"), (1, "b")]);
        assert_eq!(events[1].event, r#"{"type":"b","sequence_number":1,"text":"x\n\ny"}"#);
    }
}
