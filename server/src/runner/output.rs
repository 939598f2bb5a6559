//! The output of one run: the stream events the client sees and the response they add up to.
//!
//! Every output item gets its own id, shared by its `added`, delta and `done` events (the reference
//! gives a tool call's id to a message in the same turn, docs/reference.md §3.4). Sequence numbers increase over
//! the whole stream, output indices over the whole response. When nobody streams, no event is built:
//! only the items are collected.

use app::responses::{
    Content, ContentPart, Extra, FunctionCall, FunctionCallOutput, Item, McpApprovalRequest, MessageItem,
    ReasoningItem, ResponseObject, Role, StreamEvent, StreamFrame, Usage,
};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::Value;

use crate::tools::RetrieverSchema;

pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{:032x}", fastrand::u128(..))
}

/// Where a stream's frames go: one buffer that the HTTP body drains each time it is polled, so all
/// the agent produced since the last write leaves in one piece, with no allocation per event.
#[derive(Clone, Default)]
pub struct FrameBuffer(Arc<Mutex<Vec<u8>>>);

impl FrameBuffer {
    /// Appends `data: <value as JSON>\n\n`.
    pub fn write(&self, value: &impl Serialize) {
        let mut buffer = self.0.lock().expect("frame buffer lock");
        buffer.extend_from_slice(b"data: ");
        serde_json::to_writer(&mut *buffer, value).expect("stream frames serialise");
        buffer.extend_from_slice(b"\n\n");
    }

    /// Appends bytes as they are (`data: [DONE]\n\n`, keep-alive comments).
    pub fn write_raw(&self, bytes: &[u8]) {
        self.0.lock().expect("frame buffer lock").extend_from_slice(bytes);
    }

    /// Everything written since the last call, if anything was (polls that find nothing allocate nothing).
    pub fn take(&self) -> Option<Vec<u8>> {
        let mut buffer = self.0.lock().expect("frame buffer lock");
        if buffer.is_empty() { None } else { Some(std::mem::replace(&mut *buffer, Vec::with_capacity(4096))) }
    }
}

/// One frame a run wrote, typed: what a background task saves (its JSON, as sent) and what the
/// chat recorder folds (the frame itself). Nothing is parsed back from bytes.
#[derive(Debug, Clone)]
pub struct Written {
    /// `None` for frames outside the numbered stream.
    pub sequence: Option<u64>,
    /// The event's `type` (`trace_id` for the trace id frame).
    pub kind: String,
    pub json: String,
    pub frame: StreamFrame,
}

/// The frames of a run whose events are kept (a background task's), taken in batches to be saved.
#[derive(Clone, Default)]
pub struct EventLog(Arc<Mutex<Vec<Written>>>);

impl EventLog {
    fn push(&self, written: Written) {
        self.0.lock().expect("event log lock").push(written);
    }

    /// Everything written since the last call.
    pub fn take(&self) -> Vec<Written> {
        std::mem::take(&mut *self.0.lock().expect("event log lock"))
    }
}

/// Where a run's events go: a client's SSE stream, or a log that is saved.
#[derive(Clone)]
pub enum EventSink {
    Frames(FrameBuffer),
    Log(EventLog),
}

impl EventSink {
    pub fn event(&self, event: StreamEvent) {
        match self {
            EventSink::Frames(frames) => frames.write(&event),
            EventSink::Log(log) => log.push(Written {
                sequence: event.sequence_number(),
                kind: event.kind().to_string(),
                json: serde_json::to_string(&event).expect("stream events serialise"),
                frame: StreamFrame::Event(Box::new(event)),
            }),
        }
    }

    /// The trace id frame (`{"trace_id"}`, as the reference ends a stream). A saved stream numbers
    /// it, so that a reader resuming after it does not get it again.
    fn trace_id(&self, trace_id: &str, sequence: u64) {
        match self {
            EventSink::Frames(frames) => frames.write(&serde_json::json!({"trace_id": trace_id})),
            EventSink::Log(log) => log.push(Written {
                sequence: Some(sequence),
                kind: "trace_id".into(),
                json: serde_json::json!({"trace_id": trace_id, "sequence_number": sequence}).to_string(),
                frame: StreamFrame::TraceId(trace_id.to_string()),
            }),
        }
    }
}

pub struct Output {
    events: Option<EventSink>,
    sequence: u64,
    next_index: u32,
    /// Output index of each item in `response.output`, kept sorted.
    indices: Vec<u32>,
    pub response: ResponseObject,
    /// Whether the client reads `agent_app.notice` events (the chat page does; API clients get
    /// the same facts in `custom_outputs`).
    pub notices: bool,
    /// Picked up from a stopped process: `response.created` was already sent.
    resumed: bool,
    /// Documents retrievers returned in this run, numbered from 1 (`[n]` in the answer cites them).
    sources: Vec<Source>,
    /// With several agents: the one speaking, named on the messages and calls it writes.
    pub agent: Option<String>,
}

/// A document an answer can cite.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub url: String,
    pub title: String,
}

pub struct OpenMessage {
    pub id: String,
    index: u32,
    text: String,
}

pub struct OpenCall {
    pub id: String,
    index: u32,
    pub call_id: String,
    pub name: String,
    pub arguments: String,
}

pub struct OpenReasoning {
    id: String,
    index: u32,
    text: String,
}

impl Output {
    /// `events`: where stream events go, or `None` to only collect the response.
    pub fn new(events: Option<EventSink>, response_id: String, model: String) -> Self {
        let mut response = ResponseObject::new(Vec::new());
        response.id = Some(response_id);
        response.created_at = Some(now_seconds());
        response.model = Some(model);
        response.status = Some("in_progress".into());
        Self {
            events,
            sequence: 0,
            next_index: 0,
            indices: Vec::new(),
            response,
            notices: false,
            resumed: false,
            sources: Vec::new(),
            agent: None,
        }
    }

    /// A run picked up where a stopped process left it: sequence numbers and output indices go on
    /// from there, and the items it finished are already part of the response.
    pub fn resume(events: EventSink, response: ResponseObject, next_sequence: u64, done: Vec<(u32, Item)>) -> Self {
        let mut out = Self::new(Some(events), String::new(), String::new());
        out.response = ResponseObject { output: Vec::new(), status: Some("in_progress".into()), ..response };
        out.sequence = next_sequence;
        out.resumed = true;
        for (index, item) in done {
            out.next_index = out.next_index.max(index + 1);
            out.push_item(index, item);
        }
        out
    }

    /// Items finished so far, in output order.
    pub fn done_items(&self) -> &[Item] {
        &self.response.output
    }

    /// A message about the answer rather than part of it, for the chat page.
    pub fn notice(&mut self, message: &str) {
        if self.notices && self.events.is_some() {
            // Numbered like the events around it: a resumed chat stream replays it in its place.
            let sequence = self.next_sequence();
            let notice = serde_json::json!({"type": app::conversation::NOTICE_EVENT, "message": message, "sequence_number": sequence});
            self.events.as_ref().expect("checked above").event(StreamEvent::Other(notice));
        }
    }

    pub fn is_streaming(&self) -> bool {
        self.events.is_some()
    }

    /// The in-band error event of a run that failed after its stream started.
    pub fn error(&mut self, code: &str, message: &str) {
        self.emit(|sequence| StreamEvent::error(code, message, Some(sequence)));
    }

    /// The trace id frame that ends the stream of a client that asked for it.
    pub fn trace_id(&mut self, trace_id: &str) {
        if self.events.is_some() {
            let sequence = self.next_sequence();
            self.events.as_ref().expect("checked above").trace_id(trace_id, sequence);
        }
    }

    /// The next sequence number.
    fn next_sequence(&mut self) -> u64 {
        let n = self.sequence;
        self.sequence += 1;
        n
    }

    /// Writes an event, built only if someone listens.
    fn emit(&mut self, event: impl FnOnce(u64) -> StreamEvent) {
        if self.events.is_some() {
            let sequence = self.next_sequence();
            self.events.as_ref().expect("checked above").event(event(sequence));
        }
    }

    fn take_index(&mut self) -> u32 {
        let i = self.next_index;
        self.next_index += 1;
        i
    }

    fn push_item(&mut self, index: u32, item: Item) {
        let at = self.indices.partition_point(|&i| i < index);
        self.indices.insert(at, index);
        self.response.output.insert(at, item);
    }

    /// `response.output_item.added` for an item that starts at `index`.
    fn item_added(&mut self, index: u32, item: impl FnOnce() -> Item) {
        self.emit(|s| StreamEvent::OutputItemAdded {
            item: item(),
            output_index: Some(index),
            sequence_number: Some(s),
        })
    }

    /// `response.output_item.done`, and the item joins the response.
    fn item_done(&mut self, index: u32, item: Item) {
        if self.is_streaming() {
            let done = item.clone();
            self.emit(|s| StreamEvent::OutputItemDone {
                item: done,
                output_index: Some(index),
                sequence_number: Some(s),
            });
        }
        self.push_item(index, item);
    }

    pub fn add_usage(&mut self, usage: &Usage) {
        self.response.usage.get_or_insert_with(Usage::default).add(usage);
    }

    pub fn created(&mut self) {
        if !self.is_streaming() {
            return;
        }
        let snapshot = self.response.clone();
        if !self.resumed {
            self.emit(|sequence_number| StreamEvent::Created { response: snapshot.clone(), sequence_number });
        }
        self.emit(|sequence_number| StreamEvent::InProgress { response: snapshot, sequence_number })
    }

    pub fn completed(&mut self) {
        self.response.status = Some("completed".into());
        if !self.is_streaming() {
            return;
        }
        let response = self.response.clone();
        self.emit(|sequence_number| StreamEvent::Completed { response, sequence_number })
    }

    // --- assistant messages -------------------------------------------------------------------

    pub fn message_start(&mut self) -> OpenMessage {
        let open = OpenMessage { id: new_id("msg"), index: self.take_index(), text: String::new() };
        if self.is_streaming() {
            let (item_id, output_index, agent) = (open.id.clone(), open.index, self.agent.clone());
            self.item_added(output_index, || {
                tagged(message_item(&item_id, Vec::new(), "in_progress"), agent.as_deref())
            });
            self.emit(|sequence_number| StreamEvent::ContentPartAdded {
                item_id,
                output_index,
                content_index: 0,
                part: ContentPart::output_text(""),
                sequence_number,
            });
        }
        open
    }

    pub fn message_delta(&mut self, open: &mut OpenMessage, delta: &str) {
        open.text.push_str(delta);
        let (item_id, output_index) = (&open.id, open.index);
        self.emit(|s| StreamEvent::OutputTextDelta {
            item_id: item_id.clone(),
            delta: delta.to_string(),
            output_index: Some(output_index),
            content_index: Some(0),
            sequence_number: Some(s),
        })
    }

    /// Closes a message; `complete` false marks it incomplete (the answer was cut off). Returns its text.
    pub fn message_done(&mut self, open: OpenMessage, complete: bool) -> String {
        let OpenMessage { id, index, text } = open;
        let status = if complete { "completed" } else { "incomplete" };
        let annotations = self.citations(&text);
        let part = ContentPart { annotations: Some(annotations.clone()), ..ContentPart::output_text(text.clone()) };
        let item = tagged(message_item(&id, vec![part.clone()], status), self.agent.as_deref());
        if self.is_streaming() {
            for (n, annotation) in annotations.into_iter().enumerate() {
                let item_id = id.clone();
                self.emit(|s| StreamEvent::AnnotationAdded {
                    item_id,
                    annotation_index: n as u32,
                    annotation,
                    output_index: Some(index),
                    content_index: Some(0),
                    sequence_number: Some(s),
                });
            }
            let (item_id, part_text) = (id.clone(), text.clone());
            self.emit(|sequence_number| StreamEvent::OutputTextDone {
                item_id: item_id.clone(),
                output_index: index,
                content_index: 0,
                text: part_text.clone(),
                sequence_number,
            });
            self.emit(|sequence_number| StreamEvent::ContentPartDone {
                item_id,
                output_index: index,
                content_index: 0,
                part: ContentPart { text: Some(part_text), ..part },
                sequence_number,
            });
        }
        self.item_done(index, item);
        text
    }

    /// Numbers the documents a retriever returned: each gets `cite_as: "[n]"` (the same document the
    /// same number) so the model can cite it, and is remembered for the answer's `url_citation`
    /// annotations. Output that is not JSON documents with a `doc_uri` is left as it is.
    pub fn cite_sources(&mut self, output: String, schema: &RetrieverSchema) -> String {
        let Some(uri_field) = &schema.doc_uri else { return output };
        let Ok(mut parsed) = serde_json::from_str::<Value>(&output) else { return output };
        let rows = match &mut parsed {
            Value::Array(rows) => rows,
            Value::Object(o) => match ["documents", "results", "data", "rows"].iter().find(|k| o.contains_key(**k)) {
                Some(key) => match o.get_mut(*key) {
                    Some(Value::Array(rows)) => rows,
                    _ => return output,
                },
                None => return output,
            },
            _ => return output,
        };
        let mut numbered = false;
        for row in rows.iter_mut() {
            let Value::Object(row) = row else { continue };
            let Some(url) = row.get(uri_field).and_then(Value::as_str).map(str::to_string) else { continue };
            let title = row.get("title").and_then(Value::as_str).map_or_else(|| url.clone(), str::to_string);
            let n = match self.sources.iter().position(|s| s.url == url) {
                Some(at) => at + 1,
                None => {
                    self.sources.push(Source { url, title });
                    self.sources.len()
                }
            };
            row.insert("cite_as".into(), Value::String(format!("[{n}]")));
            numbered = true;
        }
        if numbered { parsed.to_string() } else { output }
    }

    /// `url_citation` annotations for the `[n]` markers in `text` that name a source of this run; if
    /// the text cites none, every source it could draw on (without positions).
    fn citations(&self, text: &str) -> Vec<Value> {
        if self.sources.is_empty() {
            return Vec::new();
        }
        static MARKER: std::sync::LazyLock<regex::Regex> =
            std::sync::LazyLock::new(|| regex::Regex::new(r"\[(\d{1,4})\]").expect("valid regex"));
        let mut annotations: Vec<Value> = MARKER
            .captures_iter(text)
            .filter_map(|c| {
                let whole = c.get(0)?;
                let source = self.sources.get(c[1].parse::<usize>().ok()?.checked_sub(1)?)?;
                let start = text[..whole.start()].chars().count();
                Some(serde_json::json!({
                    "type": "url_citation", "url": source.url, "title": source.title,
                    "start_index": start, "end_index": start + whole.as_str().chars().count(),
                }))
            })
            .collect();
        if annotations.is_empty() {
            annotations = self
                .sources
                .iter()
                .map(|s| serde_json::json!({"type": "url_citation", "url": s.url, "title": s.title}))
                .collect();
        }
        annotations
    }

    // --- reasoning ----------------------------------------------------------------------------

    pub fn reasoning_start(&mut self) -> OpenReasoning {
        let open = OpenReasoning { id: new_id("rs"), index: self.take_index(), text: String::new() };
        self.item_added(open.index, || reasoning_item(&open.id, Vec::new()));
        open
    }

    pub fn reasoning_delta(&mut self, open: &mut OpenReasoning, delta: &str) {
        open.text.push_str(delta);
        let (item_id, output_index) = (&open.id, open.index);
        self.emit(|sequence_number| StreamEvent::ReasoningSummaryTextDelta {
            item_id: item_id.clone(),
            output_index,
            summary_index: 0,
            delta: delta.to_string(),
            sequence_number,
        })
    }

    pub fn reasoning_done(&mut self, open: OpenReasoning) {
        self.item_done(open.index, reasoning_item(&open.id, vec![ContentPart::summary_text(open.text)]))
    }

    // --- tool calls ---------------------------------------------------------------------------

    pub fn call_start(&mut self, call_id: String, name: String) -> OpenCall {
        let open = OpenCall { id: new_id("fc"), index: self.take_index(), call_id, name, arguments: String::new() };
        let agent = self.agent.clone();
        self.item_added(open.index, || tagged(call_item(&open, "in_progress"), agent.as_deref()));
        open
    }

    pub fn call_arguments_delta(&mut self, open: &mut OpenCall, delta: &str) {
        open.arguments.push_str(delta);
        let (item_id, output_index) = (&open.id, open.index);
        self.emit(|sequence_number| StreamEvent::FunctionCallArgumentsDelta {
            item_id: item_id.clone(),
            output_index,
            delta: delta.to_string(),
            sequence_number,
        })
    }

    pub fn call_done(&mut self, open: &OpenCall) {
        let (item_id, arguments, index) = (&open.id, &open.arguments, open.index);
        self.emit(|sequence_number| StreamEvent::FunctionCallArgumentsDone {
            item_id: item_id.clone(),
            output_index: index,
            arguments: arguments.clone(),
            sequence_number,
        });
        self.item_done(index, tagged(call_item(open, "completed"), self.agent.as_deref()))
    }

    /// A call the client must approve first: an `mcp_approval_request` item (its id is the call id).
    pub fn approval_request(&mut self, call_id: &str, name: &str, arguments: &str, server_label: &str) {
        let index = self.take_index();
        let item = Item::McpApprovalRequest(McpApprovalRequest {
            id: call_id.to_string(),
            name: name.to_string(),
            arguments: arguments.to_string(),
            server_label: server_label.to_string(),
            status: None,
            extra: Extra::new(),
        });
        self.item_added(index, || item.clone());
        self.item_done(index, item)
    }

    /// Closes an item a stopped process left open (it was `added` at `index`, never `done`).
    pub fn interrupted(&mut self, index: u32, item: Item) {
        self.next_index = self.next_index.max(index + 1);
        self.item_done(index, item)
    }

    pub fn tool_output(&mut self, call_id: &str, output: String) {
        let index = self.take_index();
        let item = Item::FunctionCallOutput(FunctionCallOutput {
            id: Some(new_id("fco")),
            call_id: call_id.to_string(),
            output: output.into(),
            status: Some("completed".into()),
            extra: Extra::new(),
        });
        self.item_added(index, || item.clone());
        self.item_done(index, item)
    }
}

fn message_item(id: &str, content: Vec<ContentPart>, status: &str) -> Item {
    Item::Message(MessageItem {
        id: Some(id.to_string()),
        role: Role::Assistant,
        content: Content::Parts(content),
        status: Some(status.to_string()),
        extra: Extra::new(),
    })
}

/// Names the agent that wrote an item (only when there are several).
fn tagged(mut item: Item, agent: Option<&str>) -> Item {
    if let Some(agent) = agent {
        let extra = match &mut item {
            Item::Message(m) => &mut m.extra,
            Item::FunctionCall(c) => &mut c.extra,
            _ => return item,
        };
        extra.insert("agent".into(), Value::String(agent.to_string()));
    }
    item
}

fn reasoning_item(id: &str, summary: Vec<ContentPart>) -> Item {
    Item::Reasoning(ReasoningItem { id: Some(id.to_string()), summary, status: None, extra: Extra::new() })
}

fn call_item(open: &OpenCall, status: &str) -> Item {
    Item::FunctionCall(FunctionCall {
        id: Some(open.id.clone()),
        call_id: open.call_id.clone(),
        name: open.name.clone(),
        arguments: open.arguments.clone(),
        status: Some(status.to_string()),
        extra: Extra::new(),
    })
}

fn now_seconds() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}
