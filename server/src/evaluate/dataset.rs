//! Evaluation cases, one JSON object a line:
//!
//! - single turn: `{"name"?, "input": "text" | [Responses input items], "expectations"?: {…}}` with
//!   expectations `expected_facts`, `expected_tool_calls` (`[{"name", "arguments"?}]`), `guidelines`,
//!   `contains`, `regex`, `max_latency_ms`, `max_tokens`;
//! - simulated conversation: `{"name"?, "goal", "persona"?, "guidelines"?, "max_turns"?}`: a model
//!   plays the user (see `simulator.rs`).
//!
//! The default dataset is the reference's two simulated conversations (`eval/dataset.jsonl`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Serialize)]
pub struct Case {
    pub name: String,
    #[serde(flatten)]
    pub kind: CaseKind,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CaseKind {
    SingleTurn { input: Vec<Value>, expectations: Expectations },
    Simulated { goal: String, persona: Option<String>, guidelines: Vec<String>, max_turns: Option<usize> },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expected_facts: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expected_tool_calls: Vec<ExpectedCall>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guidelines: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contains: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_latency_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedCall {
    pub name: String,
    /// Keys that must be in the call's arguments with these values (others may be there too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<serde_json::Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    name: Option<String>,
    input: Option<Value>,
    #[serde(default)]
    expectations: Option<Expectations>,
    goal: Option<String>,
    persona: Option<String>,
    #[serde(default)]
    guidelines: Vec<String>,
    max_turns: Option<usize>,
}

/// The reference's two simulated conversations.
pub const DEFAULT_DATASET: &str = include_str!("../../../eval/dataset.jsonl");

/// Parses a dataset; errors name the line.
pub fn parse(text: &str) -> Result<Vec<Case>, String> {
    let mut cases = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        let at = n + 1;
        let parsed: Line = serde_json::from_str(line).map_err(|e| format!("line {at}: {e}"))?;
        let name = parsed.name.clone().unwrap_or_else(|| format!("case-{}", cases.len() + 1));
        let kind = match (parsed.input, parsed.goal) {
            (Some(_), Some(_)) => {
                return Err(format!("line {at}: give `input` (one turn) or `goal` (a conversation), not both"));
            }
            (None, None) => return Err(format!("line {at}: a case needs `input` or `goal`")),
            (Some(input), None) => {
                if parsed.persona.is_some() || parsed.max_turns.is_some() || !parsed.guidelines.is_empty() {
                    return Err(format!(
                        "line {at}: `persona`, `guidelines` and `max_turns` are for simulated cases; put a single turn's guidelines in `expectations`"
                    ));
                }
                let input = match input {
                    Value::String(text) => vec![serde_json::json!({"role": "user", "content": text})],
                    Value::Array(items) if !items.is_empty() => items,
                    _ => return Err(format!("line {at}: `input` is a string or a non-empty list of input items")),
                };
                CaseKind::SingleTurn { input, expectations: parsed.expectations.unwrap_or_default() }
            }
            (None, Some(goal)) => {
                if parsed.expectations.is_some() {
                    return Err(format!("line {at}: `expectations` are for single-turn cases"));
                }
                CaseKind::Simulated {
                    goal,
                    persona: parsed.persona,
                    guidelines: parsed.guidelines,
                    max_turns: parsed.max_turns,
                }
            }
        };
        cases.push(Case { name, kind });
    }
    if cases.is_empty() {
        return Err("the dataset has no cases".into());
    }
    Ok(cases)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_dataset_is_the_references_two_conversations() {
        let cases = parse(DEFAULT_DATASET).unwrap();
        assert_eq!(cases.len(), 2);
        assert!(matches!(&cases[1].kind, CaseKind::Simulated { goal, guidelines, .. }
            if goal.contains("Fibonacci") && guidelines.len() == 2));
    }

    #[test]
    fn lines_are_checked() {
        let cases = parse(
            r#"{"input": "hi", "expectations": {"contains": ["hello"]}}
            {"name": "t", "input": [{"role": "user", "content": "x"}]}"#,
        )
        .unwrap();
        assert_eq!(cases[0].name, "case-1");
        assert!(
            matches!(&cases[0].kind, CaseKind::SingleTurn { input, expectations } if input[0]["content"] == "hi" && expectations.contains == ["hello"])
        );
        assert!(parse(r#"{"input": "a", "goal": "b"}"#).unwrap_err().contains("not both"));
        assert!(parse("\n{\"input\": \"a\"}\n{oops").unwrap_err().starts_with("line 3:"));
        assert!(
            parse(r#"{"input": "a", "expectations": {"expected_fact": []}}"#).unwrap_err().contains("unknown field")
        );
        assert!(parse("").is_err());
    }
}

/// Empty expectations, for simulated cases.
pub fn no_expectations() -> &'static Expectations {
    static NONE: std::sync::OnceLock<Expectations> = std::sync::OnceLock::new();
    NONE.get_or_init(Expectations::default)
}
