//! Reading a task: its response as it stands, and its events from a sequence number on (saved
//! ones first, then new ones as they come), from this process's copy while it runs the task here,
//! else from the database.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use app::responses::{Item, ResponseObject, StreamEvent};
use axum::body::Bytes;
use futures::Stream;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::{BackgroundTasks, ReadLog};
use crate::store::StoreError;
use crate::store::responses::{StoredEvent, StoredResponse, is_terminal};

impl BackgroundTasks {
    pub(super) async fn view(&self, stored: StoredResponse) -> Result<Value, StoreError> {
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
        let reader = Reader { after, local: None };
        futures::stream::unfold(Some(reader), move |reader| {
            let (tasks, id) = (tasks.clone(), id.clone());
            async move {
                let mut reader = reader?;
                let (bytes, more) = tasks.next_events(&id, &mut reader, keepalive).await;
                Some((Ok(bytes), more.then_some(reader)))
            }
        })
    }

    /// The next frames for `reader`, and whether more follow.
    async fn next_events(&self, id: &str, reader: &mut Reader, keepalive: Duration) -> (Bytes, bool) {
        let quiet_since = Instant::now();
        let after = reader.after;
        loop {
            // A reader that found the task running here keeps its copy of the log to the end: the
            // task may finish and leave `running` between two reads, and what is left is here, not
            // worth a trip to the database.
            if reader.local.is_none() {
                reader.local =
                    self.0.running.lock().expect("running lock").get(id).map(|r| (r.log.clone(), r.written.clone()));
            }
            if let Some((log, written)) = &mut reader.local {
                // Seen up to now (a clone starts at the channel's first value): the wait below
                // wakes for what is written after the log is read.
                written.borrow_and_update();
                let (events, ended) = {
                    let log = log.lock().expect("event log lock");
                    let start = log.events.partition_point(|e| e.sequence <= after);
                    (log.events[start..].iter().take(500).cloned().collect::<Vec<_>>(), log.ended)
                };
                if let Some(last) = events.last().map(|e| e.sequence) {
                    reader.after = last;
                    return (frames_of(&events), true);
                }
                if ended {
                    return (Bytes::from_static(b"data: [DONE]\n\n"), false);
                }
                if quiet_since.elapsed() >= keepalive {
                    return (Bytes::from_static(b": keep-alive\n\n"), true);
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
                    return (Bytes::from(text), false);
                }
            };
            if let Some(last) = events.last().map(|e| e.sequence) {
                reader.after = last;
                return (frames_of(&events), true);
            }
            if is_terminal(&status) {
                return (Bytes::from_static(b"data: [DONE]\n\n"), false);
            }
            if quiet_since.elapsed() >= keepalive {
                return (Bytes::from_static(b": keep-alive\n\n"), true);
            }
            tokio::time::sleep(self.0.timings.poll_interval).await;
        }
    }
}

/// Where a reader of a task's stream stands.
struct Reader {
    /// The last sequence number sent.
    after: i64,
    /// The task's log in this process, once found running here.
    local: Option<(Arc<Mutex<ReadLog>>, watch::Receiver<i64>)>,
}

pub(super) fn is_incomplete_call(item: &Item) -> bool {
    matches!(item, Item::FunctionCall(c) if c.status.as_deref() == Some("incomplete"))
}

/// Where a task stood, from its saved events.
pub(super) struct Progress {
    /// The response as `response.created` announced it.
    pub(super) snapshot: Option<ResponseObject>,
    /// Finished items by output index.
    pub(super) done: std::collections::BTreeMap<u32, (u32, Item)>,
    /// Items started and not finished.
    pub(super) open: Vec<(u32, Item)>,
    /// Text streamed so far, by message id.
    pub(super) text: HashMap<String, String>,
}

impl Progress {
    pub(super) fn of(events: &[StoredEvent]) -> Self {
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
pub(super) fn frames_of(events: &[StoredEvent]) -> Bytes {
    let mut text = String::new();
    for event in events {
        text.push_str("data: ");
        text.push_str(&event.event);
        text.push_str("\n\n");
    }
    Bytes::from(text)
}
