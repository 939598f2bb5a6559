//! The embedded model's chat templates render as Hugging Face `transformers` renders them: every
//! case of `fixtures/chat_templates/cases.json` through every template there (Qwen2.5, Qwen3,
//! Llama 3.1/3.2, SmolLM2) gives the prompt Python's jinja2 gave (`rendered.json`, made by
//! scripts/render-chat-templates.py; scripts/test.sh checks it is still what Python renders).

use std::path::PathBuf;

use serde_json::{Map, Value, json};
use server::llm::local::template::ChatTemplate;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/chat_templates")
}

fn read_json(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join(name)).unwrap()).unwrap()
}

fn template(name: &str) -> ChatTemplate {
    ChatTemplate::new(std::fs::read_to_string(fixtures().join(format!("{name}.jinja"))).unwrap()).unwrap()
}

/// What the Python renderer passes besides messages and tools (its CONTEXT, less what the server
/// always passes).
fn extra() -> Map<String, Value> {
    json!({"date_string": "03 Dec 2026"}).as_object().unwrap().clone()
}

#[test]
fn every_template_renders_every_case_as_python_does() {
    let cases = read_json("cases.json");
    let rendered = read_json("rendered.json");
    let rendered = rendered.as_object().unwrap();
    assert_eq!(rendered.len(), 5, "qwen2.5, qwen3, llama3.1, llama3.2, smollm2");
    let mut compared = 0;
    for (name, expected) in rendered {
        let template = template(name);
        for case in cases.as_array().unwrap() {
            let case_name = case["name"].as_str().unwrap();
            let messages = case["messages"].as_array().unwrap();
            let tools = case.get("tools").and_then(Value::as_array).cloned().unwrap_or_default();
            let got = template.render_json(messages, &tools, &extra());
            let want = &expected[case_name];
            match (got, want.get("prompt").and_then(Value::as_str), want.get("error").and_then(Value::as_str)) {
                (Ok(prompt), Some(want), _) => {
                    assert_eq!(prompt, want, "{name} / {case_name}: the prompt differs from Python's")
                }
                (Err(error), _, Some(want)) => {
                    assert!(error.contains(want), "{name} / {case_name}: error {error:?} does not say {want:?}")
                }
                (got, _, _) => panic!("{name} / {case_name}: got {got:?}, Python gave {want}"),
            }
            compared += 1;
        }
    }
    assert!(compared >= 30, "{compared} renders compared");
}

#[test]
fn strftime_now_formats_the_local_time_like_python() {
    let template = ChatTemplate::new(r#"{{ strftime_now("%d %b %Y") }}"#.into()).unwrap();
    let before =
        jiff::Timestamp::now().to_zoned_datetime(jiff::tz::TimeZone::system()).strftime("%d %b %Y").to_string();
    let got = template.render_json(&[], &[], &Map::new()).unwrap();
    let after = jiff::Timestamp::now().to_zoned_datetime(jiff::tz::TimeZone::system()).strftime("%d %b %Y").to_string();
    assert!(got == before || got == after, "{got} (expected {before})");
    assert_eq!(got.len(), "03 Dec 2026".len());
}

#[test]
fn tojson_writes_python_json() {
    let template =
        ChatTemplate::new(r#"{{ v | tojson }}|{{ v | tojson(indent=2) }}|{{ v | tojson(sort_keys=true) }}"#.into())
            .unwrap();
    let extra = json!({"v": {"b": [1, "é<&>'"], "a": {}}}).as_object().unwrap().clone();
    let got = template.render_json(&[], &[], &extra).unwrap();
    assert_eq!(
        got,
        "{\"b\": [1, \"é<&>'\"], \"a\": {}}|{\n  \"b\": [\n    1,\n    \"é<&>'\"\n  ],\n  \"a\": {}\n}|{\"a\": {}, \"b\": [1, \"é<&>'\"]}"
    );
    let bad = ChatTemplate::new(r#"{{ 1 | tojson(colour=1) }}"#.into()).unwrap();
    assert!(bad.render_json(&[], &[], &Map::new()).is_err(), "an unknown argument is an error");
}
