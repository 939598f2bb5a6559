//! Finds the tool calls in what a local model wrote. Small models are not consistent: Qwen2.5 writes
//! `<tool_call>{…}</tool_call>` blocks, a bare JSON object, or a ```json fence, all seen when it
//! was tried. All three are accepted.

use serde_json::Value;

/// One call: the tool's name and its arguments as JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCall {
    pub name: String,
    pub arguments: String,
}

pub const OPEN_TAG: &str = "<tool_call>";
const CLOSE_TAG: &str = "</tool_call>";

/// Whether text the model has started could still turn out to be a tool call, so it must be held
/// back rather than streamed as an answer.
pub fn may_be_call(start: &str) -> bool {
    let s = start.trim_start();
    s.is_empty()
        || s.starts_with('{')
        || s.starts_with("```")
        || "```".starts_with(s)
        || OPEN_TAG.starts_with(s)
        || s.starts_with(OPEN_TAG)
}

/// The calls in a whole answer, and the text around them. An answer that is only a JSON object with a
/// `name` and `arguments`, or a fence holding one, is a call; otherwise only tagged blocks are.
pub fn parse(answer: &str) -> (Vec<ParsedCall>, String) {
    let mut calls = Vec::new();
    let mut text = String::new();
    let mut rest = answer;
    while let Some(start) = rest.find(OPEN_TAG) {
        text.push_str(&rest[..start]);
        let after = &rest[start + OPEN_TAG.len()..];
        let (body, next) = match after.find(CLOSE_TAG) {
            Some(end) => (&after[..end], &after[end + CLOSE_TAG.len()..]),
            None => (after, ""),
        };
        match call_from_json(strip_fence(body.trim())) {
            Some(call) => calls.push(call),
            None => text.push_str(&rest[start..rest.len() - next.len()]),
        }
        rest = next;
    }
    text.push_str(rest);
    if calls.is_empty() {
        let whole = strip_fence(text.trim());
        if let Some(call) = call_from_json(whole) {
            return (vec![call], String::new());
        }
        // Several bare objects in a row; a last one cut off (by a token limit) is let go.
        let mut many = Vec::new();
        for value in serde_json::Deserializer::from_str(whole).into_iter::<Value>() {
            match value.ok().and_then(|v| call_from_json(&v.to_string())) {
                Some(call) => many.push(call),
                None => break,
            }
        }
        if !many.is_empty() {
            return (many, String::new());
        }
    }
    (calls, text.trim().to_string())
}

/// The inside of a ```json … ``` fence, or the text itself.
fn strip_fence(s: &str) -> &str {
    let Some(inner) = s.strip_prefix("```") else { return s };
    let inner = inner.trim_start_matches(|c: char| c.is_ascii_alphanumeric());
    inner.strip_suffix("```").unwrap_or(inner).trim()
}

fn call_from_json(s: &str) -> Option<ParsedCall> {
    let value: Value = serde_json::from_str(s).ok()?;
    let name = value.get("name")?.as_str()?.to_string();
    let arguments = match value.get("arguments").or_else(|| value.get("parameters")) {
        None | Some(Value::Null) => "{}".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    Some(ParsedCall { name, arguments })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, arguments: &str) -> ParsedCall {
        ParsedCall { name: name.into(), arguments: arguments.into() }
    }

    #[test]
    fn the_three_shapes_qwen_writes() {
        let expected = vec![call("get_current_time", r#"{"timezone":"Asia/Tokyo"}"#)];
        let tagged = "<tool_call>\n{\"name\": \"get_current_time\", \"arguments\": {\"timezone\": \"Asia/Tokyo\"}}\n</tool_call>";
        assert_eq!(parse(tagged), (expected.clone(), String::new()));
        let bare = r#"{"name": "get_current_time", "arguments": {"timezone": "Asia/Tokyo"}}"#;
        assert_eq!(parse(bare), (expected.clone(), String::new()));
        let fenced = "```json\n{\n  \"name\": \"get_current_time\",\n  \"arguments\": {\n    \"timezone\": \"Asia/Tokyo\"\n  }\n}\n```";
        assert_eq!(parse(fenced), (expected, String::new()));
    }

    #[test]
    fn text_around_and_several_calls() {
        let answer = "Let me check.\n<tool_call>\n{\"name\": \"a\", \"arguments\": {}}\n</tool_call>\n<tool_call>\n{\"name\": \"b\", \"arguments\": \"{\\\"x\\\": 1}\"}\n</tool_call>";
        let (calls, text) = parse(answer);
        assert_eq!(calls, vec![call("a", "{}"), call("b", r#"{"x": 1}"#)]);
        assert_eq!(text, "Let me check.");
        let lines = "{\"name\": \"a\", \"arguments\": {}}\n{\"name\": \"b\", \"arguments\": {}}";
        assert_eq!(parse(lines).0.len(), 2);
        let cut_off = "{\"name\": \"a\", \"arguments\": {}}\n{\"na";
        assert_eq!(parse(cut_off), (vec![call("a", "{}")], String::new()));
    }

    #[test]
    fn plain_answers_are_text() {
        assert_eq!(parse("The capital of France is Paris."), (vec![], "The capital of France is Paris.".into()));
        assert_eq!(parse(r#"{"city": "Paris"}"#), (vec![], r#"{"city": "Paris"}"#.into()));
        let broken = "<tool_call>{not json</tool_call> sorry";
        assert_eq!(parse(broken), (vec![], broken.into()));
    }

    #[test]
    fn what_to_hold_back() {
        for s in ["", "  ", "{", "<tool", "<tool_call>", "`", "```json"] {
            assert!(may_be_call(s), "{s:?}");
        }
        for s in ["Hello", "The", "<b>"] {
            assert!(!may_be_call(s), "{s:?}");
        }
    }
}
