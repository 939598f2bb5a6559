//! Renders a conversation into the model's prompt with the model's own chat template (the GGUF's
//! `tokenizer.chat_template`, a Jinja template), tools included, the way Hugging Face
//! `transformers` renders it (`apply_chat_template`): trimmed and left-stripped blocks, Python's
//! string and dict methods, `tojson` as Python's `json.dumps`, `raise_exception`, `strftime_now`.
//! Fixtures rendered by Python's jinja2 (scripts/render-chat-templates.py) keep the two in step.

use minijinja::value::{Kwargs, Serde};
use minijinja::{Environment, Error as TemplateError, ErrorKind, Value as TemplateValue, context};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::llm::{ChatMessage, ToolSpec, UserContent};

pub struct ChatTemplate {
    env: Environment<'static>,
}

impl ChatTemplate {
    pub fn new(source: String) -> Result<Self, String> {
        let mut env = Environment::new();
        // transformers' settings: a block tag takes its line's leading blanks and trailing newline.
        let syntax = minijinja::syntax::SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).build();
        env.set_syntax(syntax.expect("the default delimiters are valid"));
        // `content.startswith(..)`, `.split(..)`, `.strip(..)`, `dict.items()`, … as in Python.
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        // Hugging Face templates call this to reject bad conversations.
        env.add_function("raise_exception", |message: String| -> Result<(), TemplateError> {
            Err(TemplateError::new(ErrorKind::InvalidOperation, message))
        });
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", python_tojson);
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
        self.render_json(&messages, &tools, &Map::new())
    }

    /// The prompt for messages and tools already in Hugging Face's JSON shape; `extra` adds
    /// template variables (a Llama 3 `date_string`, say).
    pub fn render_json(
        &self,
        messages: &[Value],
        tools: &[Value],
        extra: &Map<String, Value>,
    ) -> Result<String, String> {
        let template = self.env.get_template("chat").expect("added in new");
        // transformers passes `tools=None` when there are none; templates test `if tools`.
        let tools = if tools.is_empty() { None } else { Some(tools) };
        let context = context! {
            messages => TemplateValue::from(Serde(messages)),
            tools => TemplateValue::from(Serde(&tools)),
            add_generation_prompt => true,
            // llama.cpp adds the model's BOS token as it tokenizes; the prompt must not repeat it.
            bos_token => "",
            eos_token => "",
            ..TemplateValue::from(Serde(extra))
        };
        template.render(context).map_err(|e| match e.kind() {
            ErrorKind::InvalidOperation if e.detail().is_some() => {
                format!("the model's chat template refused the conversation: {}", e.detail().unwrap_or_default())
            }
            _ => format!("the model's chat template failed: {e}"),
        })
    }
}

/// `strftime_now(format)`: the local time now, formatted like Python's `datetime.now().strftime`.
fn strftime_now(format: String) -> Result<String, TemplateError> {
    jiff::fmt::strtime::format(
        format.as_bytes(),
        &jiff::Timestamp::now().to_zoned_datetime(jiff::tz::TimeZone::system()),
    )
    .map_err(|e| TemplateError::new(ErrorKind::InvalidOperation, format!("strftime_now({format:?}): {e}")))
}

/// `tojson` as transformers defines it: Python's `json.dumps` with `ensure_ascii=False`, so
/// `", "` and `": "` between items (or `indent=N` lines), non-ASCII kept, nothing HTML-escaped.
/// The model was trained on exactly these bytes.
fn python_tojson(value: &TemplateValue, kwargs: Kwargs) -> Result<TemplateValue, TemplateError> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    kwargs.assert_all_used()?;
    let fail = |e: serde_json::Error| TemplateError::new(ErrorKind::InvalidOperation, format!("tojson: {e}"));
    let mut json = serde_json::to_value(value).map_err(fail)?;
    if sort_keys == Some(true) {
        json.sort_all_objects();
    }
    let mut out = Vec::new();
    match indent {
        Some(n) => {
            let pad = vec![b' '; n];
            json.serialize(&mut serde_json::Serializer::with_formatter(
                &mut out,
                serde_json::ser::PrettyFormatter::with_indent(&pad),
            ))
        }
        None => json.serialize(&mut serde_json::Serializer::with_formatter(&mut out, PythonFormatter)),
    }
    .map_err(fail)?;
    Ok(TemplateValue::from_safe_string(String::from_utf8(out).expect("serde_json writes UTF-8")))
}

/// Python's default `json.dumps` separators: `", "` and `": "`.
struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + std::io::Write>(&mut self, writer: &mut W, first: bool) -> std::io::Result<()> {
        if first { Ok(()) } else { writer.write_all(b", ") }
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(&mut self, writer: &mut W, first: bool) -> std::io::Result<()> {
        if first { Ok(()) } else { writer.write_all(b", ") }
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, writer: &mut W) -> std::io::Result<()> {
        writer.write_all(b": ")
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
