//! The agent loop: call the model, stream what it says, run the tools it asks for, feed their
//! outputs back, until it answers without tool calls or runs out of turns.
//!
//! Cancellation is by drop: the HTTP layer drops the run when the client goes away, which closes the
//! model connection and drops the running tool futures.

use std::sync::Arc;
use std::time::Instant;

use app::responses::{Item, ResponsesRequest};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::agent::Agent;
use super::history;
use super::output::{OpenCall, OpenMessage, OpenReasoning, Output, new_id};
use super::scope::{AgentHubs, CallerRun, Limits};
use crate::llm::{ChatDelta, ChatMessage, ChatModel, ChatRequest, ModelError, ToolCall, ToolSpec};
use crate::observability::trace::{MAX_PAYLOAD_BYTES, Payload, TokenUsage, payload};
use crate::observability::{Span, SpanType, genai};
use crate::tools::mcp::McpHub;
use crate::tools::{ToolContext, ToolError, ToolSet};

/// Why a run ended without an answer.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("the agent made {0} model calls without reaching a final answer (raise AGENT_MAX_TURNS to allow more)")]
    MaxTurns(usize),
    #[error("the model's answer passed {0} bytes and was stopped (AGENT_MAX_MODEL_OUTPUT_BYTES)")]
    OutputTooLarge(usize),
}

impl RunError {
    pub fn error_code(&self) -> &'static str {
        match self {
            RunError::Model(e) => e.error_code(),
            RunError::MaxTurns(_) => "MAX_TURNS_EXCEEDED",
            RunError::OutputTooLarge(_) => "OUTPUT_TOO_LARGE",
        }
    }
}

/// Runs an agent on a model.
pub struct Runner {
    pub agent: Arc<Agent>,
    pub model: Arc<dyn ChatModel>,
    pub limits: Limits,
    /// The agent's MCP servers (and those of `AGENT_MCP_CONFIG`).
    pub mcp: Arc<McpHub>,
    /// Those of the other agents it reaches (hand-off targets, agents used as tools).
    pub(super) hubs: Arc<AgentHubs>,
}

/// The tools of one request.
struct RequestToolSet {
    set: ToolSet,
    unavailable: Vec<crate::tools::mcp::Unavailable>,
}

/// A tool call the model is writing, by its index in the model's answer.
struct PendingCall {
    index: u32,
    id: Option<String>,
    name: Option<String>,
    /// Arguments that arrived before the name (the item can only start once it has a name), or all
    /// of them for a call that needs approval (it is never streamed as a function call).
    early_arguments: String,
    open: Option<OpenCall>,
    /// Known once the name is: whether the tool must be approved by the client first.
    approval: Option<bool>,
}

/// A tool call to run: the model's, or one the client approved.
#[derive(Debug, Clone)]
pub struct PlannedCall {
    pub call_id: String,
    pub name: String,
    pub arguments: String,
}

impl Runner {
    /// `agent` on `model`; `mcp` holds its MCP servers (the other agents' are connected with the
    /// same workspace credential and timeouts).
    pub fn new(agent: Arc<Agent>, model: Arc<dyn ChatModel>, limits: Limits, mcp: Arc<McpHub>) -> Self {
        let hubs = Arc::new(AgentHubs::new(mcp.workspace().cloned(), mcp.timeouts().clone()));
        Self { agent, model, limits, mcp, hubs }
    }

    /// The MCP servers of `agent` (this runner's agent, or one it reaches).
    fn hub_for(&self, agent: &Agent) -> Arc<McpHub> {
        match agent.name == self.agent.name {
            true => self.mcp.clone(),
            false => self.hubs.get(agent),
        }
    }

    /// The agent that asked for the decisions this request carries, when it is not the first one
    /// (a hand-off target): it answers on, with its tools and rules.
    fn deciding_agent(&self, input: &[Item]) -> Option<Arc<Agent>> {
        if !self.agent.has_handoffs() {
            return None;
        }
        let question =
            input.iter().rposition(|i| matches!(i, Item::Message(m) if m.role == app::responses::Role::User));
        let after_question = &input[question.map_or(0, |at| at + 1)..];
        let decided = after_question.iter().rev().find_map(|i| match i {
            Item::McpApprovalResponse(r) => Some(r.approval_request_id.as_str()),
            _ => None,
        })?;
        let asked_by = after_question.iter().find_map(|i| match i {
            Item::McpApprovalRequest(r) if r.id == decided => Some(r.server_label.as_str()),
            _ => None,
        })?;
        self.agent.find(asked_by).filter(|agent| agent.name != self.agent.name)
    }

    /// One request, start to finish: `response.created` … `response.completed`. Spans go under
    /// `parent`: one AGENT span, a CHAT_MODEL span per model call, a TOOL span per tool call.
    pub async fn run(
        &self,
        request: &ResponsesRequest,
        context: &ToolContext,
        out: &mut Output,
        parent: &Span,
    ) -> Result<(), RunError> {
        out.created();
        let mut active = self.deciding_agent(&request.input).unwrap_or_else(|| self.agent.clone());
        if self.agent.has_handoffs() {
            out.agent = Some(active.name.clone());
        }
        let toolset = self.request_tools(&active, context, out).await;
        let input = self.resolve_approvals(&active, &request.input, &toolset.set, context, out, parent).await;
        let mut messages = history::chat_messages(&instructions(&active, &toolset.unavailable), &input);
        let mut toolset = with_handoffs(toolset.set, &active);
        let mut tools = toolset.specs();
        let mut agent_span =
            parent.child(&active.name, SpanType::Agent, || payload(&MessagesIn { messages: &messages }));
        agent_span.update(|s| genai::agent(s, &active.name, tools.iter().map(|t| t.name.clone()).collect()));
        // The tools as the model sees them, written once for every model call's span.
        let mut traced_tools = if parent.is_recording() { payload(&tool_specs(&tools)) } else { None };
        let mut answer = String::new();
        for turn in 1..=self.limits.max_turns {
            let call = ChatRequest {
                model: if active.model.is_empty() { self.agent.model.clone() } else { active.model.clone() },
                messages: messages.clone(),
                tools: tools.clone(),
                // Forcing a tool on every turn would loop forever: it applies to the first call only.
                tool_choice: if turn == 1 { request.tool_choice.clone() } else { None },
                temperature: request.temperature,
                top_p: request.top_p,
                max_tokens: request.max_output_tokens,
                parallel_tool_calls: request.parallel_tool_calls,
            };
            let (text, calls, approvals) =
                match self.model_turn(call, &active, &toolset, out, &agent_span, traced_tools.as_deref()).await {
                    Ok(turn) => turn,
                    Err(error) => {
                        agent_span.fail(&error.to_string(), || payload(&answer));
                        return Err(error);
                    }
                };
            answer.push_str(&text);
            if !approvals.is_empty() {
                // The client decides: run the calls that need no approval, ask for the others, and end
                // the answer here. The next request carries the decisions (see `resolve_approvals`).
                if !calls.is_empty() {
                    self.run_tools(&toolset, &calls, context, out, &agent_span).await;
                }
                for a in &approvals {
                    out.approval_request(&a.call_id, &a.name, &a.arguments, &active.name);
                }
                agent_span.end(|| payload(&answer));
                finish(out, context);
                return Ok(());
            }
            if calls.is_empty() {
                agent_span.end(|| payload(&answer));
                finish(out, context);
                return Ok(());
            }
            let tool_calls = calls.iter().map(|c| ToolCall::function(&c.call_id, &c.name, &c.arguments)).collect();
            messages.push(ChatMessage::Assistant { content: (!text.is_empty()).then_some(text), tool_calls });
            for (call, output) in calls.iter().zip(self.run_tools(&toolset, &calls, context, out, &agent_span).await) {
                messages.push(ChatMessage::Tool { tool_call_id: call.call_id.clone(), content: output });
            }
            // A hand-off: the other agent answers from here, with its instructions, tools, MCP
            // servers and approval rules.
            if let Some(next) = calls.iter().find_map(|c| active.handoff_target(&c.name)) {
                agent_span.end(|| payload(&answer));
                let next_tools = self.request_tools(&next, context, out).await;
                let system = instructions(&next, &next_tools.unavailable);
                match messages.first_mut() {
                    Some(ChatMessage::System { content }) => *content = system,
                    _ => messages.insert(0, ChatMessage::System { content: system }),
                }
                toolset = with_handoffs(next_tools.set, &next);
                tools = toolset.specs();
                traced_tools = if parent.is_recording() { payload(&tool_specs(&tools)) } else { None };
                agent_span = parent.child(&next.name, SpanType::Agent, || payload(&MessagesIn { messages: &messages }));
                agent_span.update(|s| genai::agent(s, &next.name, tools.iter().map(|t| t.name.clone()).collect()));
                out.agent = Some(next.name.clone());
                active = next;
            }
        }
        let error = RunError::MaxTurns(self.limits.max_turns);
        agent_span.fail(&error.to_string(), || payload(&answer));
        Err(error)
    }

    /// The agent's tools and, when it has MCP servers, theirs for this request. Servers that could
    /// not be reached are reported: to the client (`custom_outputs.mcp_unavailable`, and a notice in
    /// the chat page) and to the model (see [`Runner::instructions`]).
    async fn request_tools(&self, agent: &Agent, context: &ToolContext, out: &mut Output) -> RequestToolSet {
        let hub = self.hub_for(agent);
        if hub.is_empty() {
            return RequestToolSet { set: agent.tools.clone(), unavailable: Vec::new() };
        }
        let mcp = hub.tools_for(context, &agent.tools.names()).await;
        if !mcp.unavailable.is_empty() {
            let list: Vec<String> = mcp.unavailable.iter().map(|u| format!("{} ({})", u.server, u.reason)).collect();
            out.notice(&format!("Some tools are unavailable for this answer: {}.", list.join("; ")));
            out.response
                .custom_outputs
                .get_or_insert_with(Default::default)
                .insert("mcp_unavailable".into(), json!(mcp.unavailable));
        }
        RequestToolSet { set: agent.tools.with(mcp.tools), unavailable: mcp.unavailable }
    }

    /// The client's answers to approval requests (`mcp_approval_response` items whose request is in
    /// the input and not yet answered): approved calls run now, denied ones get the denial as their
    /// output; either way the output is streamed and replaces the answer in the history the model
    /// sees. Only tools that ask for approval can be run this way.
    async fn resolve_approvals(
        &self,
        agent: &Agent,
        input: &[Item],
        tools: &ToolSet,
        context: &ToolContext,
        out: &mut Output,
        parent: &Span,
    ) -> Vec<Item> {
        let mut items = Vec::with_capacity(input.len());
        for (at, item) in input.iter().enumerate() {
            let Item::McpApprovalResponse(response) = item else {
                items.push(item.clone());
                continue;
            };
            let id = response.approval_request_id.as_str();
            // Call ids are only unique within a turn (some servers count from 0 each time): the
            // decision answers the last request with its id before it, and an output after it means
            // it was carried out in an earlier turn.
            let answered = input[at + 1..].iter().any(|i| matches!(i, Item::FunctionCallOutput(o) if o.call_id == id));
            if answered {
                continue; // decided in an earlier turn: its output is in the history
            }
            let request = input[..at].iter().rev().find_map(|i| match i {
                Item::McpApprovalRequest(r) if r.id == id => Some(r),
                _ => None,
            });
            let Some(request) = request else {
                items.push(item.clone());
                continue;
            };
            let output = match (response.approve, tools.get(&request.name)) {
                (true, Some(tool)) if agent.needs_approval(&request.name, tool.as_ref()) => {
                    let call = PlannedCall {
                        call_id: id.to_string(),
                        name: request.name.clone(),
                        arguments: request.arguments.clone(),
                    };
                    self.run_tool(tools, &call, context, parent).await
                }
                (true, _) => format!("Error: `{}` is not a tool that takes approvals; it was not run.", request.name),
                (false, _) => match response.reason.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
                    Some(reason) => format!("The user did not approve this call: {reason}"),
                    None => "The user did not approve this call.".to_string(),
                },
            };
            out.tool_output(id, output.clone());
            items.push(Item::FunctionCallOutput(app::responses::FunctionCallOutput {
                id: None,
                call_id: id.to_string(),
                output: output.into(),
                status: Some("completed".into()),
                extra: Default::default(),
            }));
        }
        items
    }

    /// One model call, streamed into `out`. Returns the text and the finished tool calls.
    async fn model_turn(
        &self,
        call: ChatRequest,
        agent: &Agent,
        toolset: &ToolSet,
        out: &mut Output,
        parent: &Span,
        tools: Option<&RawValue>,
    ) -> Result<(String, Vec<OpenCall>, Vec<PlannedCall>), RunError> {
        let span = parent.child(&format!("chat {}", call.model), SpanType::ChatModel, || {
            payload(&ChatInputs {
                model: &call.model,
                messages: &call.messages,
                tools,
                temperature: call.temperature,
                top_p: call.top_p,
            })
        });
        span.update(|s| genai::chat_model(s, &call.model, self.model.backend(), tools));
        let mut usage: Option<TokenUsage> = None;
        let mut finish = None;
        let result = self.stream_turn(call, agent, toolset, out, &mut usage, &mut finish).await;
        if let Some(usage) = usage {
            span.update(|s| s.usage = Some(usage));
        }
        match &result {
            Ok((text, calls, approvals)) => span.end(|| {
                let mut tool_calls: Vec<ToolCall> =
                    calls.iter().map(|c| ToolCall::function(&c.call_id, &c.name, &c.arguments)).collect();
                tool_calls.extend(approvals.iter().map(|c| ToolCall::function(&c.call_id, &c.name, &c.arguments)));
                chat_outputs(text, &tool_calls, finish.as_deref(), usage)
            }),
            Err(error) => span.fail(&error.to_string(), || None),
        }
        result
    }

    async fn stream_turn(
        &self,
        call: ChatRequest,
        agent: &Agent,
        tools: &ToolSet,
        out: &mut Output,
        usage_seen: &mut Option<TokenUsage>,
        finish_seen: &mut Option<String>,
    ) -> Result<(String, Vec<OpenCall>, Vec<PlannedCall>), RunError> {
        let mut deltas = self.model.chat(call, out.is_streaming()).await?;
        let mut message: Option<OpenMessage> = None;
        let mut reasoning: Option<OpenReasoning> = None;
        let mut pending: Vec<PendingCall> = Vec::new();
        let mut produced = 0usize;
        while let Some(delta) = deltas.next().await {
            produced += match &delta {
                Ok(ChatDelta::Text(t) | ChatDelta::Reasoning(t)) => t.len(),
                Ok(ChatDelta::ToolCall { arguments, .. }) => arguments.len(),
                _ => 0,
            };
            let delta = match delta {
                Ok(_) if produced > self.limits.max_model_output_bytes => {
                    // Dropping the stream hangs up on the model; what was said is kept, as incomplete.
                    if let Some(r) = reasoning.take() {
                        out.reasoning_done(r);
                    }
                    if let Some(m) = message.take() {
                        out.message_done(m, false);
                    }
                    return Err(RunError::OutputTooLarge(self.limits.max_model_output_bytes));
                }
                Ok(delta) => delta,
                Err(error) => {
                    // Keep what was said: close the open items as incomplete, then report.
                    if let Some(r) = reasoning.take() {
                        out.reasoning_done(r);
                    }
                    if let Some(m) = message.take() {
                        out.message_done(m, false);
                    }
                    return Err(error.into());
                }
            };
            match delta {
                ChatDelta::Text(text) => {
                    if let Some(r) = reasoning.take() {
                        out.reasoning_done(r);
                    }
                    let open = match &mut message {
                        Some(open) => open,
                        None => message.insert(out.message_start()),
                    };
                    out.message_delta(open, &text);
                }
                ChatDelta::Reasoning(text) => {
                    let open = match &mut reasoning {
                        Some(open) => open,
                        None => reasoning.insert(out.reasoning_start()),
                    };
                    out.reasoning_delta(open, &text);
                }
                ChatDelta::ToolCall { index, id, name, arguments } => {
                    let at = match pending.iter().position(|p| p.index == index) {
                        Some(at) => at,
                        None => {
                            pending.push(PendingCall {
                                index,
                                id: None,
                                name: None,
                                early_arguments: String::new(),
                                open: None,
                                approval: None,
                            });
                            pending.len() - 1
                        }
                    };
                    let p = &mut pending[at];
                    p.id = p.id.take().or(id);
                    p.name = p.name.take().or(name);
                    if let (Some(name), None) = (&p.name, p.approval) {
                        p.approval = Some(tools.get(name).is_some_and(|t| agent.needs_approval(name, t.as_ref())));
                    }
                    if let Some(open) = p.open.as_mut() {
                        if !arguments.is_empty() {
                            out.call_arguments_delta(open, &arguments);
                        }
                    } else if let (Some(name), Some(false)) = (p.name.clone(), p.approval) {
                        let call_id = p.id.clone().unwrap_or_else(|| new_id("call"));
                        let mut open = out.call_start(call_id, name);
                        let early = std::mem::take(&mut p.early_arguments) + &arguments;
                        if !early.is_empty() {
                            out.call_arguments_delta(&mut open, &early);
                        }
                        p.open = Some(open);
                    } else {
                        p.early_arguments.push_str(&arguments);
                    }
                }
                ChatDelta::Usage(usage) => {
                    usage_seen.get_or_insert_default().add(TokenUsage::from(&usage));
                    out.add_usage(&usage);
                }
                ChatDelta::Finish(reason) => *finish_seen = Some(reason),
            }
        }
        if let Some(r) = reasoning.take() {
            out.reasoning_done(r);
        }
        let text = match message.take() {
            Some(m) => out.message_done(m, true),
            None => String::new(),
        };
        let mut calls = Vec::with_capacity(pending.len());
        let mut approvals = Vec::new();
        for p in pending {
            match (p.open, p.approval, p.name) {
                (Some(open), _, _) => {
                    out.call_done(&open);
                    calls.push(open);
                }
                (None, Some(true), Some(name)) => approvals.push(PlannedCall {
                    call_id: p.id.unwrap_or_else(|| new_id("call")),
                    name,
                    arguments: p.early_arguments,
                }),
                _ => tracing::warn!(index = p.index, "the model sent a tool call without a name; ignored"),
            }
        }
        Ok((text, calls, approvals))
    }

    /// Runs the calls concurrently; each output is streamed as soon as it is ready. Returns the
    /// outputs in call order.
    async fn run_tools(
        &self,
        tools: &ToolSet,
        calls: &[OpenCall],
        context: &ToolContext,
        out: &mut Output,
        parent: &Span,
    ) -> Vec<String> {
        let mut running: FuturesUnordered<_> = calls
            .iter()
            .enumerate()
            .map(|(i, call)| async move {
                let planned = PlannedCall {
                    call_id: call.call_id.clone(),
                    name: call.name.clone(),
                    arguments: call.arguments.clone(),
                };
                (i, self.run_tool(tools, &planned, context, parent).await)
            })
            .collect();
        let mut outputs = vec![String::new(); calls.len()];
        while let Some((i, output)) = running.next().await {
            // Documents from a retriever are numbered for the model to cite (and the answer's sources).
            let output = match tools.get(&calls[i].name).and_then(|t| t.retriever_schema().cloned()) {
                Some(schema) => out.cite_sources(output, &schema),
                None => output,
            };
            out.tool_output(&calls[i].call_id, output.clone());
            outputs[i] = output;
        }
        outputs
    }

    /// One tool call. Whatever goes wrong becomes the output, so the model can react to it.
    async fn run_tool(&self, tools: &ToolSet, call: &PlannedCall, context: &ToolContext, parent: &Span) -> String {
        let started = Instant::now();
        let tool = tools.get(&call.name);
        let retriever = tool.as_ref().and_then(|t| t.retriever_schema().cloned());
        let span_type = if retriever.is_some() { SpanType::Retriever } else { SpanType::Tool };
        let span = parent.child(&call.name, span_type, || {
            // The arguments as the model wrote them: JSON as it is, anything else as a string.
            (call.arguments.len() <= MAX_PAYLOAD_BYTES)
                .then(|| RawValue::from_string(call.arguments.clone()).ok())
                .flatten()
                .or_else(|| payload(&call.arguments))
        });
        span.update(|s| genai::tool_call(s, &call.name, &call.call_id));
        let result = match tool {
            None => Err(ToolError::Unknown(call.name.clone())),
            Some(tool) => match parse_arguments(&call.arguments) {
                Err(reason) => Err(ToolError::InvalidArguments { tool: call.name.clone(), reason }),
                Ok(arguments) => {
                    let mut context = context.clone();
                    context.extensions.insert(CallerRun {
                        model: self.model.clone(),
                        model_name: self.agent.model.clone(),
                        limits: self.limits.clone(),
                        hubs: self.hubs.clone(),
                        span: span.clone(),
                    });
                    let running = tool.call(arguments, context);
                    match tokio::time::timeout(self.limits.tool_timeout, running).await {
                        Ok(result) => result,
                        Err(_) => Err(ToolError::Timeout { tool: call.name.clone(), limit: self.limits.tool_timeout }),
                    }
                }
            },
        };
        let elapsed = started.elapsed();
        match result {
            Ok(output) => {
                tracing::debug!(tool = ?call.name, ?elapsed, "tool call finished");
                let output = cap_output(output, self.limits.max_tool_output_bytes);
                span.end(|| match &retriever {
                    Some(schema) => payload(&genai::retriever_documents(&output, schema)),
                    None => payload(&output),
                });
                output
            }
            Err(error) => {
                tracing::warn!(tool = ?call.name, ?elapsed, ?error, "tool call failed");
                let output = format!("Error: {error}");
                span.fail(&error.to_string(), || payload(&output));
                output
            }
        }
    }
}

/// The system prompt, with a note on tool servers that are down (so the model can say why it cannot
/// do something, rather than pretend).
fn instructions(agent: &Agent, unavailable: &[crate::tools::mcp::Unavailable]) -> String {
    if unavailable.is_empty() {
        return agent.instructions.clone();
    }
    let servers: Vec<&str> = unavailable.iter().map(|u| u.server.as_str()).collect();
    format!(
        "{}\n\nNote: the tools of {} are unavailable right now. If the user asks for something that needs \
         them, say so.",
        agent.instructions,
        servers.join(", ")
    )
}

/// An agent's tools and a `transfer_to_<agent>` tool for each agent it can hand over to.
fn with_handoffs(tools: ToolSet, agent: &Agent) -> ToolSet {
    if agent.handoffs.is_empty() {
        return tools;
    }
    tools.with(agent.handoff_tools())
}

/// Ends the response: what tools put in `custom_outputs` joins it, then `response.completed`.
fn finish(out: &mut Output, context: &ToolContext) {
    let added = std::mem::take(&mut *context.custom_outputs.lock().unwrap_or_else(|p| p.into_inner()));
    if !added.is_empty() {
        out.response.custom_outputs.get_or_insert_with(Default::default).extend(added);
    }
    out.completed();
}

/// An AGENT span's inputs.
#[derive(serde::Serialize)]
struct MessagesIn<'a> {
    messages: &'a [ChatMessage],
}

/// A CHAT_MODEL span's inputs: the call as an OpenAI chat-completions request.
#[derive(serde::Serialize)]
struct ChatInputs<'a> {
    model: &'a str,
    messages: &'a [ChatMessage],
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
}

fn tool_specs(tools: &[ToolSpec]) -> Value {
    tools
        .iter()
        .map(|t| json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}))
        .collect()
}

/// A CHAT_MODEL span's outputs: the answer as an OpenAI chat completion.
fn chat_outputs(text: &str, tool_calls: &[ToolCall], finish: Option<&str>, usage: Option<TokenUsage>) -> Payload {
    let calls = tool_calls;
    let mut message = json!({"role": "assistant", "content": (!text.is_empty()).then_some(text)});
    if !tool_calls.is_empty() {
        message["tool_calls"] = json!(tool_calls);
    }
    let finish = finish.unwrap_or(if calls.is_empty() { "stop" } else { "tool_calls" });
    let mut outputs = json!({"choices": [{"index": 0, "message": message, "finish_reason": finish}]});
    if let Some(u) = usage {
        outputs["usage"] = json!({"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens, "total_tokens": u.total_tokens});
    }
    payload(&outputs)
}

/// The model's argument text as JSON; nothing at all means no arguments.
fn parse_arguments(text: &str) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_str(text).map_err(|e| format!("not valid JSON ({e})"))
}

/// Cuts a tool output to `max` bytes (on a character boundary) and says so.
fn cap_output(mut output: String, max: usize) -> String {
    if output.len() <= max {
        return output;
    }
    let mut cut = max;
    while !output.is_char_boundary(cut) {
        cut -= 1;
    }
    let dropped = output.len() - cut;
    output.truncate(cut);
    output.push_str(&format!("\n[output truncated: {dropped} more bytes]"));
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_are_capped_on_char_boundaries() {
        assert_eq!(cap_output("short".into(), 10), "short");
        let capped = cap_output("ééééé".into(), 3);
        assert!(capped.starts_with('é') && capped.contains("[output truncated: 8 more bytes]"), "{capped}");
    }

    #[test]
    fn arguments() {
        assert_eq!(parse_arguments("  ").unwrap(), serde_json::json!({}));
        assert!(parse_arguments("{oops").unwrap_err().starts_with("not valid JSON"));
    }
}
