//! Running a task: its events saved as they come, a heartbeat, a deadline, cancellation, and the
//! end saved whatever happens (else the task would look orphaned and run again).

use std::time::Duration;

use app::responses::{ResponseObject, StreamFrame};
use serde_json::Value;

use super::{BackgroundTasks, Sink};
use crate::run::{Outcome, RequestRun};
use crate::runner::RunError;
use crate::runner::output::{EventLog, EventSink, Output, new_id};
use crate::store::StoreError;
use crate::store::recorder::{Recorder, SAVE_EVERY};
use crate::store::responses::{NewTask, StoredEvent};

/// A task to run.
pub(super) struct Task {
    pub(super) id: String,
    pub(super) run: RequestRun,
    pub(super) out: Output,
    /// What the run writes, typed, until it is saved.
    pub(super) log: EventLog,
    /// The chat page's answer, saved as it grows (the chat page's runs are background tasks, so a
    /// reload or a closed tab does not stop them).
    pub(super) recorder: Option<Recorder>,
    pub(super) sink: Sink,
}

/// How a run ended.
enum End {
    Finished(Result<(), RunError>),
    Cancelled,
    TimedOut,
    /// Another process took the task over (this one was presumed dead): it writes nothing more.
    Lost,
}

impl BackgroundTasks {
    /// Starts `run` as a task of `owner`, and returns the response as it stands (in progress, no
    /// output). `recorded`: the task's id when its row is already written (with a chat's exchange,
    /// `NewTask`); else it is written here.
    pub async fn start(
        &self,
        owner: String,
        run: RequestRun,
        recorder: Option<Recorder>,
        recorded: Option<String>,
    ) -> Result<ResponseObject, StoreError> {
        let id = match recorded {
            Some(id) => id,
            None => {
                let id = new_id("resp");
                let request = serde_json::to_value(&run.request).map_err(|e| StoreError::Invalid(e.to_string()))?;
                self.0.store.create_response(&self.new_task(&id, &owner, &request)).await?;
                id
            }
        };
        let log = EventLog::default();
        let out = run.output(id.clone(), Some(EventSink::Log(log.clone())));
        let snapshot = out.response.clone();
        let sink = self.register(&id, &owner, &run.context);
        tokio::spawn(self.clone().drive(Task { id, run, out, log, recorder, sink }));
        Ok(snapshot)
    }

    /// The row of a task this process is to run.
    pub fn new_task<'a>(&'a self, id: &'a str, owner: &'a str, request: &'a Value) -> NewTask<'a> {
        NewTask { id, user: owner, request, worker: &self.0.worker }
    }

    /// Runs a task to its end, saving its events as they come, then its final response.
    pub(super) async fn drive(self, task: Task) {
        let Task { id, run, mut out, log, mut recorder, sink } = task;
        let cancel = run.context.cancel.clone();
        let mut pending = Vec::new();
        let timings = self.0.timings;
        let end = {
            let running = run.run(&mut out);
            tokio::pin!(running);
            // Readers in this process get what the run wrote every 50 ms; the database, when an
            // item finished, else every SAVE_EVERY (the most text a killed process loses), and at
            // the end with the end itself.
            let mut flush = tokio::time::interval(Duration::from_millis(50));
            let mut saved_at = tokio::time::Instant::now();
            // The task was just created alive: the first sign of life is due a third of a lease on.
            let beat = timings.lease / 3;
            let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + beat, beat);
            let deadline = tokio::time::sleep(timings.task_timeout);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    result = &mut running => break End::Finished(result),
                    _ = flush.tick() => {
                        self.relay(&log, &mut pending, &sink, &mut recorder);
                        let item_done = pending.iter().any(|e| e.kind == "response.output_item.done");
                        if !pending.is_empty() && (item_done || saved_at.elapsed() >= SAVE_EVERY) {
                            saved_at = tokio::time::Instant::now();
                            self.save(&id, &mut pending).await;
                        }
                    }
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
        let outcome = match end {
            End::Lost => {
                tracing::warn!(response = %id, "background task taken over by another process; stopping here");
                sink.end();
                self.0.running.lock().expect("running lock").remove(&id);
                run.abandon("taken over by another process");
                return;
            }
            End::Finished(result) => Outcome::from(&result),
            End::Cancelled => Outcome::Cancelled,
            End::TimedOut => Outcome::Failed {
                code: "task_timeout".into(),
                message: format!(
                    "The task ran longer than {} s (TASK_TIMEOUT_SECONDS).",
                    timings.task_timeout.as_secs()
                ),
            },
        };
        run.end(&mut out, &outcome);
        if !matches!(outcome, Outcome::Cancelled) && recorder.is_some() {
            // The chat page's answer ends as its stream would: saved complete (or failed).
            self.relay(&log, &mut pending, &sink, &mut recorder);
            if let Some(recorder) = &mut recorder {
                recorder.apply([StreamFrame::Done]);
            }
        }
        let status = out.response.status.clone().unwrap_or_default();
        let response = serde_json::to_value(&out.response).unwrap_or(Value::Null);
        // The end must be saved, or the task would look orphaned and run again: retry for a while.
        for attempt in 0..20u32 {
            self.relay(&log, &mut pending, &sink, &mut recorder);
            match self.0.store.finish_response(&id, &self.0.worker, &status, &response, &pending).await {
                Ok(()) => {
                    pending.clear();
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, response = %id, attempt, "could not save the end of a background task");
                    tokio::time::sleep(Duration::from_millis(250) * (attempt + 1)).await;
                }
            }
        }
        // The answer's last state is saved before readers are told the task ended.
        if let Some(recorder) = recorder {
            recorder.finish().await;
        }
        sink.end();
        self.0.running.lock().expect("running lock").remove(&id);
    }

    /// Hands what the run wrote since the last call to this process's readers and the recorder,
    /// and keeps its numbered events for the database (`pending`).
    fn relay(&self, log: &EventLog, pending: &mut Vec<StoredEvent>, sink: &Sink, recorder: &mut Option<Recorder>) {
        let written = log.take();
        let mut events = Vec::with_capacity(written.len());
        let mut frames = Vec::with_capacity(if recorder.is_some() { written.len() } else { 0 });
        for written in written {
            // Frames outside the numbered stream are not part of a response's events.
            if let Some(sequence) = written.sequence {
                events.push(StoredEvent { sequence: sequence as i64, kind: written.kind, event: written.json });
            }
            if recorder.is_some() {
                frames.push(written.frame);
            }
        }
        if let Some(recorder) = recorder.as_mut() {
            match frames.is_empty() {
                true => recorder.tick(),
                false => recorder.apply(frames),
            }
        }
        sink.push(&events);
        pending.extend(events);
    }

    /// Saves the pending events (kept for the next call if the database fails).
    async fn save(&self, id: &str, pending: &mut Vec<StoredEvent>) {
        match self.0.store.append_events(id, pending).await {
            Ok(()) => pending.clear(),
            Err(error) => tracing::warn!(%error, response = %id, "could not save background events; will retry"),
        }
    }
}
