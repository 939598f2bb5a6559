//! Turns a Responses `input` (any mix of messages, tool calls, tool outputs, reasoning, approvals)
//! into the chat-completions messages a model accepts.
//!
//! The reference fails on assistant history (docs/reference.md §10.1); here every item kind maps, and the result
//! is always a conversation model APIs accept: tool calls join the assistant message they follow,
//! a call without an output gets one, and an output without a call is dropped.

use app::responses::{Content, ContentPart, Item, Role};
use serde_json::{Value, json};

use crate::llm::{ChatMessage, ToolCall, UserContent};

/// What the model is told when history holds a tool call whose output never arrived.
const MISSING_OUTPUT: &str = "Error: this tool call was interrupted and has no result.";

pub fn chat_messages(instructions: &str, input: &[Item]) -> Vec<ChatMessage> {
    let mut messages = Vec::with_capacity(input.len() + 1);
    if !instructions.is_empty() {
        messages.push(ChatMessage::System { content: instructions.to_string() });
    }
    for item in input {
        match item {
            Item::Message(m) => match m.role {
                Role::System | Role::Developer => messages.push(ChatMessage::System { content: m.content.text() }),
                Role::User => messages.push(ChatMessage::User { content: user_content(&m.content) }),
                Role::Assistant => {
                    let text = m.content.text();
                    if !text.is_empty() {
                        messages.push(ChatMessage::Assistant { content: Some(text), tool_calls: Vec::new() });
                    }
                }
            },
            Item::FunctionCall(c) => {
                push_call(&mut messages, ToolCall::function(&c.call_id, &c.name, non_empty_args(&c.arguments)))
            }
            Item::FunctionCallOutput(o) => {
                messages.push(ChatMessage::Tool { tool_call_id: o.call_id.clone(), content: o.output_text() })
            }
            // An approval request is a tool call the client had to confirm; its answer is the output.
            Item::McpApprovalRequest(r) => {
                push_call(&mut messages, ToolCall::function(&r.id, &r.name, non_empty_args(&r.arguments)))
            }
            Item::McpApprovalResponse(r) => messages.push(ChatMessage::Tool {
                tool_call_id: r.approval_request_id.clone(),
                content: if r.approve { "True".into() } else { "False".into() },
            }),
            // Reasoning summaries are for people; chat completions has no place for them.
            Item::Reasoning(_) | Item::Other(_) => {}
        }
    }
    pair_calls_with_outputs(messages)
}

fn non_empty_args(args: &str) -> &str {
    if args.trim().is_empty() { "{}" } else { args }
}

/// Adds a tool call to the assistant message just before it, or starts one.
fn push_call(messages: &mut Vec<ChatMessage>, call: ToolCall) {
    if let Some(ChatMessage::Assistant { tool_calls, .. }) = messages.last_mut() {
        tool_calls.push(call);
    } else {
        messages.push(ChatMessage::Assistant { content: None, tool_calls: vec![call] });
    }
}

/// Every assistant tool call must be answered by a tool message right after it, and every tool
/// message must answer one: model APIs reject the conversation otherwise.
fn pair_calls_with_outputs(messages: Vec<ChatMessage>) -> Vec<ChatMessage> {
    let mut out = Vec::with_capacity(messages.len());
    let mut open: Vec<String> = Vec::new();
    for message in messages {
        match &message {
            ChatMessage::Tool { tool_call_id, .. } => {
                if let Some(pos) = open.iter().position(|id| id == tool_call_id) {
                    open.remove(pos);
                    out.push(message);
                } else {
                    tracing::debug!(tool_call_id, "dropping a tool output that answers no call");
                }
                continue;
            }
            _ => close_open_calls(&mut out, &mut open),
        }
        if let ChatMessage::Assistant { tool_calls, .. } = &message {
            open.extend(tool_calls.iter().map(|c| c.id.clone()));
        }
        out.push(message);
    }
    close_open_calls(&mut out, &mut open);
    out
}

fn close_open_calls(out: &mut Vec<ChatMessage>, open: &mut Vec<String>) {
    for id in open.drain(..) {
        out.push(ChatMessage::Tool { tool_call_id: id, content: MISSING_OUTPUT.into() });
    }
}

/// User content as text, or as parts when it carries images.
fn user_content(content: &Content) -> UserContent {
    match content {
        Content::Parts(parts) if parts.iter().any(|p| p.kind == "input_image") => {
            UserContent::Parts(parts.iter().filter_map(chat_part).collect())
        }
        other => UserContent::Text(other.text()),
    }
}

fn chat_part(part: &ContentPart) -> Option<Value> {
    match part.kind.as_str() {
        "input_image" => {
            let url = part.extra.get("image_url").and_then(Value::as_str)?;
            Some(json!({"type": "image_url", "image_url": {"url": url}}))
        }
        _ => part.as_text().map(|t| json!({"type": "text", "text": t})),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn items(v: Value) -> Vec<Item> {
        serde_json::from_value(v).unwrap()
    }

    fn roles(m: &[ChatMessage]) -> Vec<Value> {
        m.iter().map(|m| serde_json::to_value(m).unwrap()).collect()
    }

    #[test]
    fn the_chat_uis_history_maps_to_valid_chat_messages() {
        // Exactly what the reference chat UI sends (docs/reference.md §2.1), which the reference itself rejects.
        let input = items(json!([
            {"role": "user", "content": [{"type": "input_text", "text": "What time is it?"}]},
            {"role": "assistant", "content": [{"type": "output_text", "text": "Let me check."}], "id": "m1"},
            {"type": "function_call", "call_id": "call_1", "name": "get_current_time", "arguments": "{}", "id": "f1"},
            {"type": "function_call_output", "call_id": "call_1", "output": "2026-01-01T12:00:00"},
            {"type": "reasoning", "id": "r1", "summary": [{"type": "summary_text", "text": "easy"}]},
            {"role": "assistant", "content": "It is 12:00."},
            {"role": "user", "content": [{"type": "input_text", "text": "thanks"}]}
        ]));
        let got = roles(&chat_messages("You are a helpful assistant.", &input));
        assert_eq!(
            got,
            vec![
                json!({"role": "system", "content": "You are a helpful assistant."}),
                json!({"role": "user", "content": "What time is it?"}),
                json!({"role": "assistant", "content": "Let me check.", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_current_time", "arguments": "{}"}}]}),
                json!({"role": "tool", "tool_call_id": "call_1", "content": "2026-01-01T12:00:00"}),
                json!({"role": "assistant", "content": "It is 12:00."}),
                json!({"role": "user", "content": "thanks"}),
            ]
        );
    }

    #[test]
    fn calls_without_outputs_are_answered_and_orphan_outputs_dropped() {
        let input = items(json!([
            {"role": "user", "content": "hi"},
            {"type": "function_call", "call_id": "a", "name": "f", "arguments": ""},
            {"type": "function_call", "call_id": "b", "name": "g", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "b", "output": [{"type": "text", "text": "x"}]},
            {"type": "function_call_output", "call_id": "zzz", "output": "orphan"},
            {"role": "user", "content": "and?"}
        ]));
        let got = roles(&chat_messages("", &input));
        assert_eq!(got.len(), 5, "{got:#?}");
        assert_eq!(got[1]["tool_calls"][0]["function"]["arguments"], "{}");
        assert_eq!(
            got[2],
            json!({"role": "tool", "tool_call_id": "b", "content": "[{\"type\":\"text\",\"text\":\"x\"}]"})
        );
        assert_eq!(got[3], json!({"role": "tool", "tool_call_id": "a", "content": MISSING_OUTPUT}));
        assert_eq!(got[4]["role"], "user");
    }

    #[test]
    fn developer_messages_and_images_and_approvals() {
        let input = items(json!([
            {"role": "developer", "content": "be terse"},
            {"role": "user", "content": [{"type": "input_text", "text": "what is this?"}, {"type": "input_image", "image_url": "data:image/png;base64,AAA"}]},
            {"type": "mcp_approval_request", "id": "ap1", "name": "delete", "arguments": "{}", "server_label": "s"},
            {"type": "mcp_approval_response", "approval_request_id": "ap1", "approve": false}
        ]));
        let got = roles(&chat_messages("", &input));
        assert_eq!(got[0], json!({"role": "system", "content": "be terse"}));
        assert_eq!(
            got[1]["content"][1],
            json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}})
        );
        assert_eq!(got[2]["tool_calls"][0]["id"], "ap1");
        assert_eq!(got[3], json!({"role": "tool", "tool_call_id": "ap1", "content": "False"}));
    }
}
