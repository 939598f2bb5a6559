//! Evaluation cases, one JSON object a line:
//!
//! - single turn: `{"name"?, "input": "text" | [Responses input items], "expectations"?: {…}}` with
//!   expectations `expected_facts`, `expected_tool_calls` (`[{"name", "arguments"?}]`), `guidelines`,
//!   `contains`, `regex`, `max_latency_ms`, `max_tokens`;
//! - simulated conversation: `{"name"?, "goal", "persona"?, "guidelines"?, "max_turns"?}`: a model
//!   plays the user (see `simulator.rs`);
//! - an MLflow evaluation record, as `mlflow.genai.evaluate` takes them: `{"inputs": {…},
//!   "expectations"?: {…}}`, where `inputs` holds `input` (a ResponsesAgent request's), `messages`,
//!   or one text (`question`, `query`, `request`, `prompt`, or the only field), and expectations may
//!   give MLflow's `expected_response` (judged as an expected fact). A file may also be one JSON
//!   list of such records (MLflow's `data=[…]`).
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
    /// MLflow's: the answer expected, judged as one more expected fact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_response: Option<String>,
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
    /// An MLflow evaluation record's inputs (the other record fields are read past).
    inputs: Option<Value>,
    #[serde(default, rename = "outputs")]
    _outputs: Option<Value>,
    #[serde(default, rename = "tags")]
    _tags: Option<Value>,
    #[serde(default, rename = "source")]
    _source: Option<Value>,
    #[serde(default, rename = "dataset_record_id")]
    _record_id: Option<Value>,
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
    // One JSON list of records (MLflow's `data=[…]`), or one case a line.
    let lines: Vec<(String, Result<Line, serde_json::Error>)> = if text.trim_start().starts_with('[') {
        let records: Vec<Value> = serde_json::from_str(text).map_err(|e| format!("the dataset list: {e}"))?;
        records.into_iter().enumerate().map(|(i, r)| (format!("record {}", i + 1), serde_json::from_value(r))).collect()
    } else {
        text.lines()
            .enumerate()
            .map(|(n, line)| (n + 1, line.trim()))
            .filter(|(_, line)| !line.is_empty() && !line.starts_with("//"))
            .map(|(n, line)| (format!("line {n}"), serde_json::from_str(line)))
            .collect()
    };
    let mut cases = Vec::new();
    for (at, parsed) in lines {
        let mut parsed = parsed.map_err(|e| format!("{at}: {e}"))?;
        if let Some(inputs) = parsed.inputs.take() {
            if parsed.input.is_some() {
                return Err(format!("{at}: give `input` or MLflow's `inputs`, not both"));
            }
            parsed.input = Some(record_input(inputs).map_err(|e| format!("{at}: {e}"))?);
        }
        if let Some(expectations) = &mut parsed.expectations
            && let Some(response) = expectations.expected_response.take()
        {
            expectations.expected_facts.push(response);
        }
        let name = parsed.name.clone().unwrap_or_else(|| format!("case-{}", cases.len() + 1));
        let kind = match (parsed.input, parsed.goal) {
            (Some(_), Some(_)) => {
                return Err(format!("{at}: give `input` (one turn) or `goal` (a conversation), not both"));
            }
            (None, None) => return Err(format!("{at}: a case needs `input` or `goal`")),
            (Some(input), None) => {
                if parsed.persona.is_some() || parsed.max_turns.is_some() || !parsed.guidelines.is_empty() {
                    return Err(format!(
                        "{at}: `persona`, `guidelines` and `max_turns` are for simulated cases; put a single turn's guidelines in `expectations`"
                    ));
                }
                let input = match input {
                    Value::String(text) => vec![serde_json::json!({"role": "user", "content": text})],
                    Value::Array(items) if !items.is_empty() => items,
                    _ => return Err(format!("{at}: `input` is a string or a non-empty list of input items")),
                };
                CaseKind::SingleTurn { input, expectations: parsed.expectations.unwrap_or_default() }
            }
            (None, Some(goal)) => {
                if parsed.expectations.is_some() {
                    return Err(format!("{at}: `expectations` are for single-turn cases"));
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

/// The request in an MLflow record's `inputs`: `input` (a ResponsesAgent request's), `messages`, or
/// its one text.
fn record_input(inputs: Value) -> Result<Value, String> {
    let map = match inputs {
        Value::String(_) => return Ok(inputs),
        Value::Object(map) => map,
        _ => return Err("`inputs` is an object".into()),
    };
    if let Some(input) = map.get("input").or_else(|| map.get("messages")) {
        return Ok(input.clone());
    }
    let named = ["question", "query", "request", "prompt"].iter().find_map(|k| map.get(*k)).filter(|v| v.is_string());
    let only = (map.len() == 1).then(|| map.values().next()).flatten().filter(|v| v.is_string());
    named.or(only).cloned().ok_or_else(|| {
        "`inputs` needs `input`, `messages`, or one text (`question`, `query`, `request` or `prompt`)".to_string()
    })
}

/// Empty expectations, for simulated cases.
pub fn no_expectations() -> &'static Expectations {
    static NONE: std::sync::OnceLock<Expectations> = std::sync::OnceLock::new();
    NONE.get_or_init(Expectations::default)
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

    #[test]
    fn mlflow_evaluation_records_carry_over() {
        let input = |case: &Case| match &case.kind {
            CaseKind::SingleTurn { input, .. } => input.clone(),
            CaseKind::Simulated { .. } => panic!("a single turn"),
        };
        let cases = parse(
            r#"{"inputs": {"question": "What is MLflow?"}, "expectations": {"expected_response": "A platform.", "expected_facts": ["open source"]}, "tags": {"k": "v"}}
            {"inputs": {"input": [{"role": "user", "content": "hi"}]}, "outputs": "ignored"}
            {"inputs": {"text": "only field"}}"#,
        )
        .unwrap();
        assert_eq!(input(&cases[0]), vec![serde_json::json!({"role": "user", "content": "What is MLflow?"})]);
        let CaseKind::SingleTurn { expectations, .. } = &cases[0].kind else { unreachable!() };
        assert_eq!(
            expectations.expected_facts,
            ["open source", "A platform."],
            "expected_response is judged as a fact"
        );
        assert_eq!(input(&cases[1])[0]["content"], "hi");
        assert_eq!(input(&cases[2])[0]["content"], "only field");
        // MLflow's data=[…]: one JSON list of records.
        let listed =
            parse(r#"[{"inputs": {"query": "a"}}, {"inputs": {"query": "b"}, "expectations": {"guidelines": ["g"]}}]"#)
                .unwrap();
        assert_eq!((input(&listed[0])[0]["content"].clone(), listed.len()), (serde_json::json!("a"), 2));
        assert!(parse(r#"[{"inputs": {"a": 1, "b": 2}}]"#).unwrap_err().starts_with("record 1: `inputs` needs"));
        assert!(parse(r#"{"inputs": "x", "input": "y"}"#).unwrap_err().contains("not both"));
    }
}
