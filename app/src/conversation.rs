//! What the chat shows, built from the agent's stream: plain data, no UI, so it is tested on the host.
//!
//! An [`Answer`] takes the frames of one Responses stream ([`StreamFrame`]) as they arrive and keeps
//! what the user sees (text, tool cards, reasoning, an error) and the finished output items, which go
//! back to the agent as history on the next turn.

use serde_json::{Map, Value, json};

use crate::responses::{Item, StreamEvent, StreamFrame};

/// An event of the chat page's stream (not of the Responses API): something the user should know
/// that is not part of the answer, e.g. that the chat is not being saved.
pub const NOTICE_EVENT: &str = "agent_app.notice";

/// One piece of an answer, in the order it arrived.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// Assistant text (markdown), keyed by the message item's id.
    Text { id: String, text: String },
    /// A tool call and, once it ran, its output.
    Tool(ToolCall),
    /// A reasoning summary.
    Reasoning { id: String, text: String },
    /// A tool call that waits for the user's approval (`mcp_approval_request`), and their decision.
    Approval(Approval),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Approval {
    /// The request's id (`approval_request_id` of the answer).
    pub id: String,
    pub name: String,
    pub arguments: String,
    /// `Some(true)` approved, `Some(false)` denied, `None` not decided yet.
    pub decision: Option<bool>,
}

impl Block {
    /// A key that stays the same while the block grows (for keyed rendering).
    pub fn key(&self) -> String {
        match self {
            Block::Text { id, .. } => format!("text:{id}"),
            Block::Tool(call) => format!("tool:{}", call.call_id),
            Block::Reasoning { id, .. } => format!("reasoning:{id}"),
            Block::Approval(approval) => format!("approval:{}", approval.id),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub call_id: String,
    /// The item id, when the stream has said it (arguments deltas refer to it).
    pub item_id: Option<String>,
    pub name: String,
    pub arguments: String,
    pub output: Option<String>,
}

/// A Databricks connection that needs the user to sign in first (per-user OAuth connections of
/// external MCP servers): its name and the address that signs them in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLogin {
    pub connection: String,
    pub url: String,
}

impl ToolCall {
    /// The tool failed because the user has not signed in to the connection behind it: the error
    /// Databricks gives ("Credential for user identity(…) is not found for the connection '<name>'.
    /// Please login first to the connection by visiting https://…") becomes a sign-in prompt.
    pub fn connection_login(&self) -> Option<ConnectionLogin> {
        connection_login(self.output.as_deref()?)
    }
}

/// See [`ToolCall::connection_login`]. Only an `https://` address is offered.
pub fn connection_login(output: &str) -> Option<ConnectionLogin> {
    let at = output.find("Please login first to the connection")?;
    let (before, after) = output.split_at(at);
    let connection = before
        .rsplit_once("for the connection '")
        .and_then(|(_, rest)| rest.split_once('\''))
        .map(|(name, _)| name.to_string())
        .unwrap_or_default();
    let start = after.find("https://")?;
    let url: String = after[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && !matches!(c, '"' | '\'' | '<' | '>' | '\\'))
        .collect();
    let url = url.trim_end_matches(['.', ',', ')', ';']).to_string();
    (url.len() > "https://".len()).then_some(ConnectionLogin { connection, url })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerStatus {
    /// Waiting for the first frame, or frames still coming.
    Streaming,
    Done,
    /// The user stopped it.
    Stopped,
    /// The agent or the connection reported an error.
    Failed,
}

/// The assistant's side of one turn.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub blocks: Vec<Block>,
    pub status: AnswerStatus,
    pub error: Option<String>,
    pub trace_id: Option<String>,
    /// Finished output items, as the agent sent them: the history for the next turn.
    pub items: Vec<Item>,
    /// A message about the chat rather than the answer (see [`NOTICE_EVENT`]).
    pub notice: Option<String>,
    /// The response's id (`response.created`): a background response can be reattached to or cancelled.
    pub response_id: Option<String>,
    /// The response's `custom_outputs`, once it completed.
    pub custom_outputs: Option<Map<String, Value>>,
    /// Which agent wrote each message (by item id), when the agent hands conversations over.
    pub speakers: Vec<(String, String)>,
    /// The documents the answer cites (its `url_citation` annotations), each once, in order.
    pub sources: Vec<Source>,
}

/// A cited document.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub url: String,
    pub title: String,
}

/// Only web and same-site links become clickable sources (no `javascript:`, no `//other.host`).
fn safe_link(url: &str) -> bool {
    let lower = url.trim_start().to_ascii_lowercase();
    lower.starts_with("https://")
        || lower.starts_with("http://")
        || (lower.starts_with('/') && !lower.starts_with("//"))
}

impl Default for Answer {
    fn default() -> Self {
        Self {
            blocks: Vec::new(),
            status: AnswerStatus::Streaming,
            error: None,
            trace_id: None,
            items: Vec::new(),
            notice: None,
            response_id: None,
            custom_outputs: None,
            speakers: Vec::new(),
            sources: Vec::new(),
        }
    }
}

impl Answer {
    pub fn is_streaming(&self) -> bool {
        self.status == AnswerStatus::Streaming
    }

    /// An answer as it was saved: its output items, how it ended.
    pub fn restored(items: Vec<Item>, status: AnswerStatus, error: Option<String>, trace_id: Option<String>) -> Self {
        let mut answer = Answer::default();
        for item in items {
            answer.item_done(item);
        }
        answer.status = status;
        answer.error = error;
        answer.trace_id = trace_id;
        answer
    }

    /// Takes one frame of the stream.
    pub fn apply(&mut self, frame: StreamFrame) {
        match frame {
            StreamFrame::Event(event) => self.apply_event(*event),
            StreamFrame::TraceId(id) => self.trace_id = Some(id),
            StreamFrame::Error(message) => self.fail(message),
            StreamFrame::Done => {
                if self.is_streaming() {
                    self.status = AnswerStatus::Done;
                }
            }
        }
    }

    /// The stream ended with an error (from the agent, the HTTP status or the connection).
    pub fn fail(&mut self, message: impl Into<String>) {
        self.status = AnswerStatus::Failed;
        self.error = Some(message.into());
    }

    /// The answer goes on (after the user decided its approvals): what it has stays.
    pub fn resume(&mut self) {
        self.status = AnswerStatus::Streaming;
        self.error = None;
    }

    /// The user stopped the stream: what arrived stays.
    pub fn stop(&mut self) {
        if self.is_streaming() {
            self.status = AnswerStatus::Stopped;
        }
    }

    /// The stream closed without `[DONE]` and without an error.
    pub fn finish_unexpectedly(&mut self) {
        if self.is_streaming() {
            self.fail("The connection closed before the answer was complete.");
        }
    }

    fn apply_event(&mut self, event: StreamEvent) {
        match event {
            StreamEvent::OutputTextDelta { item_id, delta, .. } => match self.text_block(&item_id) {
                Some(text) => text.push_str(&delta),
                None => self.blocks.push(Block::Text { id: item_id, text: delta }),
            },
            StreamEvent::FunctionCallArgumentsDelta { item_id, delta, .. } => {
                if let Some(call) = self.tools_mut().find(|c| c.item_id.as_deref() == Some(&item_id)) {
                    call.arguments.push_str(&delta);
                }
            }
            StreamEvent::ReasoningSummaryTextDelta { item_id, delta, .. } => match self.reasoning_block(&item_id) {
                Some(text) => text.push_str(&delta),
                None => self.blocks.push(Block::Reasoning { id: item_id, text: delta }),
            },
            StreamEvent::OutputItemAdded { item: Item::FunctionCall(call), .. } => {
                self.note_speaker(call.id.as_ref(), &call.extra);
                self.upsert_call(&call, false)
            }
            StreamEvent::OutputItemAdded { item: Item::Message(message), .. } => {
                self.note_speaker(message.id.as_ref(), &message.extra)
            }
            StreamEvent::OutputItemDone { item, .. } => self.item_done(item),
            StreamEvent::Created { response, .. } => {
                self.response_id = response.id;
                self.take_trace_id(response.metadata.as_ref());
            }
            StreamEvent::Completed { response, .. } => {
                self.take_trace_id(response.metadata.as_ref());
                self.custom_outputs = response.custom_outputs;
            }
            StreamEvent::Error { message, error, .. } => self.fail(error.unwrap_or(message)),
            StreamEvent::Other(value) if value.get("type").and_then(Value::as_str) == Some(NOTICE_EVENT) => {
                self.notice = value.get("message").and_then(Value::as_str).map(str::to_string);
            }
            _ => {}
        }
    }

    fn item_done(&mut self, item: Item) {
        match &item {
            Item::Message(message) => {
                self.note_speaker(message.id.as_ref(), &message.extra);
                if let crate::responses::Content::Parts(parts) = &message.content {
                    for annotation in parts.iter().flat_map(|p| p.annotations.iter().flatten()) {
                        let field = |k: &str| annotation.get(k).and_then(Value::as_str).map(str::to_string);
                        if let (Some("url_citation"), Some(url)) = (field("type").as_deref(), field("url"))
                            && safe_link(&url)
                            && !self.sources.iter().any(|s| s.url == url)
                        {
                            let title = field("title").filter(|t| !t.trim().is_empty()).unwrap_or_else(|| url.clone());
                            self.sources.push(Source { url, title });
                        }
                    }
                }
                let id = message.id.clone().unwrap_or_else(|| format!("message-{}", self.blocks.len()));
                let full = message.content.text();
                // The done item repeats the streamed text: it replaces it rather than adding to it.
                match self.text_block(&id) {
                    Some(text) => *text = full,
                    None => self.blocks.push(Block::Text { id, text: full }),
                }
            }
            Item::FunctionCall(call) => {
                self.note_speaker(call.id.as_ref(), &call.extra);
                self.upsert_call(call, true)
            }
            Item::FunctionCallOutput(output) => {
                let text = output.output_text();
                if let Some(call) = self.tools_mut().find(|c| c.call_id == output.call_id) {
                    call.output = Some(text);
                } else {
                    // The output of an approved (or denied) call: its card says what was asked.
                    let (name, arguments) = match self.approval_mut(&output.call_id) {
                        Some(approval) => (approval.name.clone(), approval.arguments.clone()),
                        None => Default::default(),
                    };
                    self.blocks.push(Block::Tool(ToolCall {
                        call_id: output.call_id.clone(),
                        item_id: None,
                        name,
                        arguments,
                        output: Some(text),
                    }));
                }
            }
            Item::Reasoning(reasoning) => {
                let id = reasoning.id.clone().unwrap_or_else(|| format!("reasoning-{}", self.blocks.len()));
                let text: String =
                    reasoning.summary.iter().filter_map(|p| p.as_text()).collect::<Vec<_>>().join("\n\n");
                match self.reasoning_block(&id) {
                    Some(existing) => *existing = text,
                    None => self.blocks.push(Block::Reasoning { id, text }),
                }
            }
            Item::McpApprovalRequest(request) => self.blocks.push(Block::Approval(Approval {
                id: request.id.clone(),
                name: request.name.clone(),
                arguments: request.arguments.clone(),
                decision: None,
            })),
            Item::McpApprovalResponse(response) => {
                if let Some(approval) = self.approval_mut(&response.approval_request_id) {
                    approval.decision = Some(response.approve);
                }
            }
            _ => {}
        }
        self.items.push(item);
    }

    /// A background response names its trace in its metadata (its stream has no `trace_id` frame).
    fn take_trace_id(&mut self, metadata: Option<&Map<String, Value>>) {
        if let Some(id) = metadata.and_then(|m| m.get("trace_id")).and_then(Value::as_str) {
            self.trace_id = Some(id.to_string());
        }
    }

    fn note_speaker(&mut self, id: Option<&String>, extra: &Map<String, Value>) {
        if let (Some(id), Some(agent)) = (id, extra.get("agent").and_then(Value::as_str))
            && !self.speakers.iter().any(|(known, _)| known == id)
        {
            self.speakers.push((id.clone(), agent.to_string()));
        }
    }

    /// The agent that wrote item `id`, when another agent than the one the answer started with
    /// (after a hand-off).
    pub fn speaker(&self, id: &str) -> Option<&str> {
        let first = self.speakers.first().map(|(_, agent)| agent.as_str());
        let agent = self.speakers.iter().find(|(known, _)| known == id).map(|(_, agent)| agent.as_str());
        agent.filter(|agent| Some(*agent) != first)
    }

    fn approval_mut(&mut self, request_id: &str) -> Option<&mut Approval> {
        self.blocks.iter_mut().find_map(|b| match b {
            Block::Approval(approval) if approval.id == request_id => Some(approval),
            _ => None,
        })
    }

    /// Approval requests still waiting for the user.
    pub fn pending_approvals(&self) -> usize {
        self.blocks.iter().filter(|b| matches!(b, Block::Approval(Approval { decision: None, .. }))).count()
    }

    /// Records the user's decision on an approval request, as the `mcp_approval_response` item the
    /// next request carries. False if there is no such request waiting.
    pub fn decide(&mut self, request_id: &str, approve: bool, reason: Option<String>) -> bool {
        match self.approval_mut(request_id) {
            Some(approval) if approval.decision.is_none() => approval.decision = Some(approve),
            _ => return false,
        }
        self.items.push(Item::McpApprovalResponse(crate::responses::McpApprovalResponse {
            id: None,
            approval_request_id: request_id.to_string(),
            approve,
            reason: reason.map(|r| r.trim().to_string()).filter(|r| !r.is_empty()),
            status: None,
            extra: Default::default(),
        }));
        true
    }

    fn upsert_call(&mut self, call: &crate::responses::FunctionCall, complete: bool) {
        if let Some(existing) = self.tools_mut().find(|c| c.call_id == call.call_id) {
            existing.name.clone_from(&call.name);
            if complete || !call.arguments.is_empty() {
                existing.arguments.clone_from(&call.arguments);
            }
            if existing.item_id.is_none() {
                existing.item_id.clone_from(&call.id);
            }
        } else {
            self.blocks.push(Block::Tool(ToolCall {
                call_id: call.call_id.clone(),
                item_id: call.id.clone(),
                name: call.name.clone(),
                arguments: call.arguments.clone(),
                output: None,
            }));
        }
    }

    fn text_block(&mut self, item_id: &str) -> Option<&mut String> {
        self.blocks.iter_mut().find_map(|b| match b {
            Block::Text { id, text } if id == item_id => Some(text),
            _ => None,
        })
    }

    fn reasoning_block(&mut self, item_id: &str) -> Option<&mut String> {
        self.blocks.iter_mut().find_map(|b| match b {
            Block::Reasoning { id, text } if id == item_id => Some(text),
            _ => None,
        })
    }

    fn tools_mut(&mut self) -> impl Iterator<Item = &mut ToolCall> {
        self.blocks.iter_mut().filter_map(|b| match b {
            Block::Tool(call) => Some(call),
            _ => None,
        })
    }

    /// The answer's text, as the user would copy it.
    pub fn text(&self) -> String {
        let texts: Vec<&str> = self
            .blocks
            .iter()
            .filter_map(|b| match b {
                Block::Text { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        texts.join("\n\n")
    }

    /// What this answer contributes to the next request's history: the finished items, then any text
    /// that streamed without its done item (a stopped or failed answer), so the model sees what the
    /// user saw.
    pub fn history_items(&self) -> Vec<Item> {
        let mut items = self.items.clone();
        for block in &self.blocks {
            if let Block::Text { id, text } = block
                && !text.is_empty()
                && !self.items.iter().any(|i| i.id() == Some(id.as_str()))
            {
                items.push(Item::assistant_message(id.clone(), text.clone()));
            }
        }
        items
    }
}

/// One exchange: what the user asked and what came back.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    pub user: String,
    pub answer: Answer,
}

/// The request body for `POST /api/chat`: the whole conversation so far, ending with the new message.
pub fn chat_request(chat_id: &str, previous: &[Exchange], message: &str) -> Value {
    let mut input = history(previous);
    input.push(Item::user(message));
    request_body(chat_id, input)
}

/// The request that goes on with an answer the user just decided approvals of: the conversation,
/// the question, and the answer so far with the decisions (`mcp_approval_response` items).
pub fn continue_request(chat_id: &str, previous: &[Exchange], current: &Exchange) -> Value {
    let mut input = history(previous);
    input.push(Item::user(current.user.clone()));
    input.extend(current.answer.history_items());
    request_body(chat_id, input)
}

fn history(previous: &[Exchange]) -> Vec<Item> {
    let mut input: Vec<Item> = Vec::new();
    for exchange in previous {
        input.push(Item::user(exchange.user.clone()));
        input.extend(exchange.answer.history_items());
    }
    input
}

fn request_body(chat_id: &str, input: Vec<Item>) -> Value {
    let mut context = Map::new();
    context.insert("conversation_id".into(), json!(chat_id));
    json!({"input": input, "context": context})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_sign_in_error_becomes_a_login_prompt() {
        let output = "Error: Credential for user identity('ana@example.com') is not found for the connection 'github_u2m'. \
                      Please login first to the connection by visiting https://ws.example.com/explore/connections/github_u2m.";
        let login = connection_login(output).unwrap();
        assert_eq!(login.connection, "github_u2m");
        assert_eq!(login.url, "https://ws.example.com/explore/connections/github_u2m");
        // In a JSON error body the address ends at the quote.
        let json = r#"{"error": "... for the connection 'c'. Please login first to the connection by visiting https://w/x?y=1"}"#;
        assert_eq!(connection_login(json).unwrap().url, "https://w/x?y=1");
        assert!(connection_login("Please login first to the connection by visiting javascript:alert(1)").is_none());
        assert!(connection_login("a normal tool error").is_none());
    }

    fn frame(v: Value) -> StreamFrame {
        StreamFrame::parse(&v.to_string()).unwrap()
    }

    /// The answer the frames make, read by both parsers: the browser's lean one must build the same.
    fn run(frames: Vec<Value>) -> Answer {
        let (mut full, mut lean) = (Answer::default(), Answer::default());
        for f in frames {
            let data = f.to_string();
            full.apply(StreamFrame::parse(&data).unwrap());
            lean.apply(StreamFrame::parse_for_chat(&data).unwrap());
        }
        assert_eq!(lean, full, "the chat's parser reads an answer as the full parser does");
        full
    }

    #[test]
    fn the_response_events_give_the_id_the_trace_the_custom_outputs_and_the_notice() {
        let response = |extra: Value| {
            let mut r = json!({"id": "resp_1", "object": "response", "status": "completed", "output": [],
                               "usage": {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}});
            r.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            r
        };
        let answer = run(vec![
            json!({"type": "response.created", "sequence_number": 0, "response": response(json!({}))}),
            json!({"type": NOTICE_EVENT, "message": "Chat history is off."}),
            json!({"type": "response.completed", "sequence_number": 9, "response": response(json!({
                "metadata": {"trace_id": "tr-1"}, "custom_outputs": {"k": [1, 2]}}))}),
        ]);
        assert_eq!(answer.response_id.as_deref(), Some("resp_1"));
        assert_eq!(answer.trace_id.as_deref(), Some("tr-1"));
        assert_eq!(answer.custom_outputs, json!({"k": [1, 2]}).as_object().cloned());
        assert_eq!(answer.notice.as_deref(), Some("Chat history is off."));
    }

    #[test]
    fn text_streams_and_the_done_item_does_not_repeat_it() {
        let answer = run(vec![
            json!({"type": "response.output_text.delta", "item_id": "m1", "delta": "Hel"}),
            json!({"type": "response.output_text.delta", "item_id": "m1", "delta": "lo"}),
            json!({"type": "response.output_item.done", "item": {"type": "message", "id": "m1", "role": "assistant",
                   "content": [{"type": "output_text", "text": "Hello"}]}}),
        ]);
        assert_eq!(answer.blocks, vec![Block::Text { id: "m1".into(), text: "Hello".into() }]);
        assert!(answer.is_streaming());
        let mut answer = answer;
        answer.apply(StreamFrame::Done);
        assert_eq!(answer.status, AnswerStatus::Done);
        assert_eq!(answer.items.len(), 1);
    }

    #[test]
    fn tool_calls_become_cards_with_their_output() {
        let answer = run(vec![
            json!({"type": "response.output_item.added", "item": {"type": "function_call", "id": "fc1",
                   "call_id": "c1", "name": "get_current_time", "arguments": ""}}),
            json!({"type": "response.function_call_arguments.delta", "item_id": "fc1", "output_index": 0,
                   "delta": "{\"tz\"", "sequence_number": 1}),
            json!({"type": "response.output_item.done", "item": {"type": "function_call", "id": "fc1",
                   "call_id": "c1", "name": "get_current_time", "arguments": "{\"tz\": 1}"}}),
            json!({"type": "response.output_item.done", "item": {"type": "function_call_output", "id": "o1",
                   "call_id": "c1", "output": "12:00"}}),
            json!({"type": "response.output_text.delta", "item_id": "m2", "delta": "It is noon."}),
            json!({"trace_id": "tr-1"}),
        ]);
        assert_eq!(answer.blocks.len(), 2);
        let Block::Tool(call) = &answer.blocks[0] else { panic!() };
        assert_eq!((call.name.as_str(), call.arguments.as_str()), ("get_current_time", "{\"tz\": 1}"));
        assert_eq!(call.output.as_deref(), Some("12:00"));
        assert_eq!(answer.trace_id.as_deref(), Some("tr-1"));
        // The streamed text without a done item still goes into history.
        let history = answer.history_items();
        let kinds: Vec<&str> = history.iter().map(Item::kind).collect();
        assert_eq!(kinds, ["function_call", "function_call_output", "message"]);
    }

    #[test]
    fn arguments_stream_into_the_card() {
        let answer = run(vec![
            json!({"type": "response.output_item.added", "item": {"type": "function_call", "id": "fc1",
                   "call_id": "c1", "name": "lookup", "arguments": ""}}),
            json!({"type": "response.function_call_arguments.delta", "item_id": "fc1", "output_index": 0,
                   "delta": "{\"q\":", "sequence_number": 1}),
            json!({"type": "response.function_call_arguments.delta", "item_id": "fc1", "output_index": 0,
                   "delta": "1}", "sequence_number": 2}),
        ]);
        let Block::Tool(call) = &answer.blocks[0] else { panic!() };
        assert_eq!(call.arguments, "{\"q\":1}");
        assert_eq!(call.output, None);
    }

    #[test]
    fn errors_in_either_shape_fail_the_answer_and_keep_the_text() {
        let answer = run(vec![
            json!({"type": "response.output_text.delta", "item_id": "m1", "delta": "Partial"}),
            json!({"type": "error", "message": "model went away", "error": "model went away", "code": "x"}),
        ]);
        assert_eq!(answer.status, AnswerStatus::Failed);
        assert_eq!(answer.error.as_deref(), Some("model went away"));
        assert_eq!(answer.text(), "Partial");
        let answer = run(vec![json!({"error": "boom"})]);
        assert_eq!(answer.error.as_deref(), Some("boom"));
        // [DONE] after an error keeps the failure.
        let mut answer = answer;
        answer.apply(StreamFrame::Done);
        assert_eq!(answer.status, AnswerStatus::Failed);
    }

    #[test]
    fn reasoning_is_its_own_block() {
        let answer = run(vec![
            json!({"type": "response.reasoning_summary_text.delta", "item_id": "r1", "output_index": 0,
                   "summary_index": 0, "delta": "Thinking", "sequence_number": 0}),
            json!({"type": "response.output_item.done", "item": {"type": "reasoning", "id": "r1",
                   "summary": [{"type": "summary_text", "text": "Thinking hard"}]}}),
        ]);
        assert_eq!(answer.blocks, vec![Block::Reasoning { id: "r1".into(), text: "Thinking hard".into() }]);
    }

    #[test]
    fn stop_keeps_what_arrived_and_unknown_events_are_ignored() {
        let mut answer = run(vec![
            json!({"type": "response.created", "response": {"object": "response", "output": []}, "sequence_number": 0}),
            json!({"type": "response.something_new", "x": 1}),
            json!({"type": "response.output_text.delta", "item_id": "m1", "delta": "Half"}),
        ]);
        answer.stop();
        assert_eq!(answer.status, AnswerStatus::Stopped);
        assert_eq!(answer.text(), "Half");
        answer.finish_unexpectedly();
        assert_eq!(answer.status, AnswerStatus::Stopped);
    }

    #[test]
    fn approvals_wait_for_a_decision_that_goes_into_the_next_request() {
        let mut answer =
            run(vec![json!({"type": "response.output_item.done", "item": {"type": "mcp_approval_request",
            "id": "call_1", "name": "delete_file", "arguments": "{\"path\":\"/tmp/a\"}", "server_label": "Files"}})]);
        answer.apply(StreamFrame::Done);
        assert_eq!(answer.pending_approvals(), 1);
        assert_eq!(answer.blocks[0].key(), "approval:call_1");
        assert!(!answer.decide("call_other", true, None));
        assert!(answer.decide("call_1", false, Some("  not that one ".into())));
        assert!(!answer.decide("call_1", true, None), "decided once");
        assert_eq!(answer.pending_approvals(), 0);
        let current = Exchange { user: "delete /tmp/a".into(), answer: answer.clone() };
        let body = continue_request("chat-1", &[], &current);
        let input = body["input"].as_array().unwrap();
        let kinds: Vec<&str> = input.iter().map(|i| i["type"].as_str().unwrap_or("message")).collect();
        assert_eq!(kinds, ["message", "mcp_approval_request", "mcp_approval_response"]);
        assert_eq!(input[2]["approve"], false);
        assert_eq!(input[2]["reason"], "not that one");
        crate::responses::ResponsesRequest::from_value(body).unwrap();
        // A saved answer shows the decision it had.
        let restored = Answer::restored(answer.items.clone(), AnswerStatus::Done, None, None);
        assert_eq!(restored.pending_approvals(), 0);
        assert!(matches!(&restored.blocks[0], Block::Approval(a) if a.decision == Some(false)));
    }

    #[test]
    fn cited_documents_become_sources_once_and_only_safe_links() {
        let cite = |url: &str, title: &str| json!({"type": "url_citation", "url": url, "title": title});
        let answer = run(vec![json!({"type": "response.output_item.done", "item": {"type": "message", "id": "m1",
            "role": "assistant", "content": [{"type": "output_text", "text": "See [1] and [1] and [2].", "annotations": [
                cite("/documents/cats.md", "Cats"), cite("/documents/cats.md", "Cats"), cite("https://x.example/a", ""),
                cite("javascript:alert(1)", "bad"), cite("//evil.example/x", "bad"),
                {"type": "file_citation", "file_id": "f", "index": 0}]}]}})]);
        assert_eq!(
            answer.sources,
            vec![
                Source { url: "/documents/cats.md".into(), title: "Cats".into() },
                Source { url: "https://x.example/a".into(), title: "https://x.example/a".into() },
            ]
        );
    }

    #[test]
    fn messages_name_the_agent_that_wrote_them() {
        let answer = run(vec![
            json!({"type": "response.output_item.added", "item": {"type": "function_call", "id": "fc1",
                   "call_id": "c1", "name": "transfer_to_billing", "arguments": "", "agent": "Triage"}}),
            json!({"type": "response.output_item.added", "item": {"type": "message", "id": "m1", "role": "assistant",
                   "content": [], "agent": "Billing"}}),
            json!({"type": "response.output_text.delta", "item_id": "m1", "delta": "Refunded."}),
        ]);
        assert_eq!(answer.speaker("m1"), Some("Billing"));
        assert_eq!(answer.speaker("fc1"), None, "the agent the answer started with is not named");
        assert_eq!(answer.speaker("m2"), None);
    }

    #[test]
    fn the_request_carries_the_whole_conversation() {
        let mut first = Answer::default();
        first.apply(frame(json!({"type": "response.output_item.done", "item": {"type": "message", "id": "m1",
            "role": "assistant", "content": [{"type": "output_text", "text": "Hi!"}]}})));
        let previous = vec![Exchange { user: "Hello".into(), answer: first }];
        let body = chat_request("chat-1", &previous, "And now?");
        assert_eq!(body["context"]["conversation_id"], "chat-1");
        let input = body["input"].as_array().unwrap();
        assert_eq!(input.len(), 3);
        assert_eq!(input[0]["content"], "Hello");
        assert_eq!(input[1]["role"], "assistant");
        assert_eq!(input[2]["content"], "And now?");
        // The server accepts what the UI sends.
        crate::responses::ResponsesRequest::from_value(body).unwrap();
    }
}
