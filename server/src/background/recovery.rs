//! Taking over tasks whose process stopped, and deleting old ones. A task picked up goes on from
//! what was saved: its finished items stay, an open message is closed as incomplete, and a tool call
//! that never returned gets [`INTERRUPTED_CALL`] (it is not run twice: it may have had effects).

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use app::responses::{Content, ContentPart, Item, ResponseObject, ResponsesRequest};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::replay::{Progress, frames_of, is_incomplete_call};
use super::run::Task;
use super::{BackgroundTasks, Engine, INTERRUPTED_CALL, now_ms};
use crate::identity::LOCAL_USER;
use crate::observability::trace::payload;
use crate::run::{Client, RequestRun};
use crate::runner::output::{EventLog, EventSink, Output};
use crate::store::StoreError;
use crate::store::recorder::{AnswerTarget, Recorder};
use crate::tools::ToolContext;

impl BackgroundTasks {
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
                return self.0.store.finish_response(id, &self.0.worker, "failed", &response, &[]).await;
            }
        };
        let progress = Progress::of(&events);
        let mut snapshot = progress.snapshot.clone().unwrap_or_else(|| ResponseObject::new(Vec::new()));
        snapshot.id = Some(id.to_string());
        snapshot.model.get_or_insert_with(|| engine.runner.agent.model.clone());
        snapshot.extra.insert("background".into(), json!(true));
        let log = EventLog::default();
        let next_sequence = events.last().map_or(0, |e| e.sequence as u64 + 1);
        let done = progress.done.into_values().collect();
        let mut out = Output::resume(EventSink::Log(log.clone()), snapshot, next_sequence, done);
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
        // Whether an API client asked for the trace id is not kept: only the chat page gets it.
        let client = if recorder.is_some() { Client::ChatPage } else { Client::Background };
        let sink = self.register(id, &row.user_id, &context);
        let inputs = payload(&request);
        let runner = engine.runner.clone();
        let run = RequestRun::new(&engine.exporter, runner, request, context, client, false, row.user_id, inputs);
        run.adopt(&mut out, false);
        tokio::spawn(self.clone().drive(Task { id: id.to_string(), run, out, log, recorder, sink }));
        Ok(())
    }
}
