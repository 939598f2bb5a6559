//! Renders a conversation into the model's prompt with the model's own chat template (the GGUF's
//! `tokenizer.chat_template`, a Jinja template), tools included.

use minijinja::value::Serde;
use minijinja::{Environment, Value as TemplateValue, context};
use serde_json::{Value, json};

use crate::llm::{ChatMessage, ToolSpec, UserContent};

pub struct ChatTemplate {
    env: Environment<'static>,
}

impl ChatTemplate {
    pub fn new(source: String) -> Result<Self, String> {
        let mut env = Environment::new();
        // Hugging Face templates call this to reject bad conversations.
        env.add_function("raise_exception", |message: String| -> Result<(), minijinja::Error> {
            Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, message))
        });
        env.add_template_owned("chat", source).map_err(|e| format!("the model's chat template does not parse: {e}"))?;
        Ok(Self { env })
    }

    /// The prompt for `messages`, ending where the assistant's answer starts.
    pub fn render(&self, messages: &[ChatMessage], tools: &[ToolSpec]) -> Result<String, String> {
        let messages: Vec<Value> = messages.iter().map(template_message).collect();
        let tools: Vec<Value> = tools
            .iter()
            .map(|t| {
                json!({"type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.parameters}})
            })
            .collect();
        let template = self.env.get_template("chat").expect("added in new");
        let tools = if tools.is_empty() { None } else { Some(tools) };
        let context = context! {
            messages => TemplateValue::from(Serde(&messages)),
            tools => TemplateValue::from(Serde(&tools)),
            add_generation_prompt => true,
            bos_token => "",
            eos_token => "",
        };
        template.render(context).map_err(|e| format!("the model's chat template failed: {e}"))
    }
}

/// A message as Hugging Face templates expect it: string content, tool-call arguments as objects.
fn template_message(message: &ChatMessage) -> Value {
    match message {
        ChatMessage::System { content } => json!({"role": "system", "content": content}),
        ChatMessage::User { content } => {
            let text = match content {
                UserContent::Text(t) => t.clone(),
                // A text-only model sees the text parts; images cannot be shown to it.
                UserContent::Parts(parts) => {
                    parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n")
                }
            };
            json!({"role": "user", "content": text})
        }
        ChatMessage::Assistant { content, tool_calls } => {
            let calls: Vec<Value> = tool_calls
                .iter()
                .map(|c| {
                    let arguments: Value =
                        serde_json::from_str(&c.function.arguments).unwrap_or_else(|_| json!(c.function.arguments));
                    json!({"id": c.id, "type": "function", "function": {"name": c.function.name, "arguments": arguments}})
                })
                .collect();
            let mut m = json!({"role": "assistant", "content": content.clone().unwrap_or_default()});
            if !calls.is_empty() {
                m["tool_calls"] = Value::Array(calls);
            }
            m
        }
        ChatMessage::Tool { tool_call_id, content } => {
            json!({"role": "tool", "tool_call_id": tool_call_id, "content": content})
        }
    }
}
