//! The embedded model, for real: the Qwen2.5-Coder-0.5B GGUF that `scripts/fetch-model.sh` fetches.
//! Without the file these tests say so and pass, unless AGENT_REQUIRE_LOCAL_MODEL is set (as
//! `scripts/test.sh` and CI do), where a missing model fails them.

use std::path::PathBuf;
use std::time::Duration;

use crate::common::{user, user_stream};
use serde_json::json;
use server::llm::local::engine::{Engine, GenerateOptions, LlamaEngine};
use server::llm::local::template::ChatTemplate;
use server::llm::local::{DEFAULT_MODEL, default_cache, resolve_model_path};
use server::llm::{ChatMessage, ToolCall, UserContent};

fn model() -> Option<PathBuf> {
    let path = resolve_model_path(DEFAULT_MODEL, &default_cache());
    if path.is_file() {
        return Some(path);
    }
    assert!(
        std::env::var_os("AGENT_REQUIRE_LOCAL_MODEL").is_none(),
        "the embedded model is not at {}: run scripts/fetch-model.sh",
        path.display()
    );
    eprintln!("skipped: no embedded model at {} (scripts/fetch-model.sh fetches it)", path.display());
    None
}

#[test]
fn tokenizer_and_chat_template_of_the_real_model() {
    let Some(path) = model() else { return };
    let mut engine = LlamaEngine::load(&path, 2, 4096).unwrap();
    // Qwen2.5's ids: <|im_start|> user \n hi <|im_end|> \n
    assert_eq!(engine.tokenize("<|im_start|>user\nhi<|im_end|>\n"), [151644, 872, 198, 6023, 151645, 198]);
    let template = ChatTemplate::new(engine.chat_template().unwrap()).unwrap();
    let plain = template
        .render(
            &[
                ChatMessage::System { content: "Be brief.".into() },
                ChatMessage::User { content: UserContent::Text("hi".into()) },
            ],
            &[],
        )
        .unwrap();
    assert_eq!(
        plain,
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    );
    let tools = server::agent::agent().tools.specs();
    let with_tools = template
        .render(
            &[
                ChatMessage::System { content: "Be brief.".into() },
                ChatMessage::User { content: UserContent::Text("time?".into()) },
                ChatMessage::Assistant {
                    content: None,
                    tool_calls: vec![ToolCall::function("c1", "get_current_time", "{}")],
                },
                ChatMessage::Tool { tool_call_id: "c1".into(), content: "12:00".into() },
            ],
            &tools,
        )
        .unwrap();
    assert!(with_tools.starts_with("<|im_start|>system\nBe brief.\n\n# Tools\n"), "{with_tools}");
    assert!(
        with_tools.contains(r#"{"type": "function", "function": {"name": "get_current_time", "description""#),
        "{with_tools}"
    );
    assert!(
        with_tools.contains(
            "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_current_time\", \"arguments\": {}}\n</tool_call><|im_end|>\n\
             <|im_start|>user\n<tool_response>\n12:00\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
        ),
        "{with_tools}"
    );
    // Greedy decoding is deterministic, and pieces arrive one by one.
    let mut pieces = Vec::new();
    let options = GenerateOptions { max_tokens: 16, stop_at_end: true, forbid_call: false, call_grammar: None };
    let generation = engine
        .generate(
            "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
            options,
            &mut |t| {
                pieces.push(t.to_string());
                true
            },
        )
        .unwrap();
    assert!(pieces.concat().contains("Paris"), "{pieces:?}");
    assert!(pieces.len() > 3 && generation.completion_tokens == pieces.len(), "{pieces:?} {generation:?}");
}

/// The call grammar binds the real model. The prompt offers `get_current_time(timezone)`, and asked
/// for Tokyo's time the model calls it with "Asia/Tokyo"; under the grammar of another tool,
/// `clock(zone)` whose zone can only be "Europe/Paris", the same prompt gives a valid call of that
/// tool instead: every token of a call follows the grammar.
#[test]
fn a_tool_call_follows_the_grammar_of_the_tools_schema() {
    let Some(path) = model() else { return };
    let mut engine = LlamaEngine::load(&path, 2, 4096).unwrap();
    let template = ChatTemplate::new(engine.chat_template().unwrap()).unwrap();
    let tool = |name: &str, parameters| server::llm::ToolSpec {
        name: name.into(),
        description: "Get the current time in a time zone.".into(),
        parameters,
        strict: false,
    };
    let offered = [tool(
        "get_current_time",
        json!({"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]}),
    )];
    let question = ChatMessage::User { content: UserContent::Text("What time is it in Tokyo right now?".into()) };
    let prompt = template.render(&[question], &offered).unwrap();
    let call = |engine: &mut LlamaEngine, grammar| {
        let mut text = String::new();
        let options = GenerateOptions { max_tokens: 64, stop_at_end: true, forbid_call: false, call_grammar: grammar };
        engine
            .generate(&prompt, options, &mut |t| {
                text.push_str(t);
                true
            })
            .unwrap();
        let (calls, _) = server::llm::local::tool_calls::parse(&text);
        assert_eq!(calls.len(), 1, "{text}");
        let arguments: serde_json::Value = serde_json::from_str(&calls[0].arguments).unwrap();
        (calls[0].name.clone(), arguments)
    };
    let offered_grammar = server::llm::local::grammar::for_tools(&offered).unwrap();
    assert_eq!(
        call(&mut engine, Some(&offered_grammar)),
        ("get_current_time".to_string(), json!({"timezone": "Asia/Tokyo"}))
    );
    let other = [tool(
        "clock",
        json!({"type": "object", "properties": {"zone": {"enum": ["Europe/Paris"]}}, "required": ["zone"]}),
    )];
    let other_grammar = server::llm::local::grammar::for_tools(&other).unwrap();
    assert_eq!(call(&mut engine, Some(&other_grammar)), ("clock".to_string(), json!({"zone": "Europe/Paris"})));
}

async fn local_server(tweak: impl FnOnce(&mut server::Settings)) -> crate::common::TestServer {
    crate::common::start_with(
        |s| {
            s.model.openai_base_url = None;
            tweak(s);
        },
        server::agent::agent(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_time_is_it_in_tokyo_on_the_embedded_model() {
    if model().is_none() {
        return;
    }
    let server = local_server(|_| {}).await;
    let info: serde_json::Value =
        server.client.get(format!("{}/agent/info", server.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(info["backend"], "local");
    assert_eq!(info["model"], "qwen2.5-coder-0.5b");

    let s = server.stream("/invocations", user_stream("What time is it in Tokyo right now?"), &[]).await;
    assert_eq!(s.data.last().unwrap(), "[DONE]", "{:?}", s.data);
    let done = s.done_items();
    let kinds: Vec<&str> = done.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(&kinds[..2], ["function_call", "function_call_output"], "{done:#?}");
    assert_eq!(done[0]["name"], "get_current_time");
    let arguments: serde_json::Value = serde_json::from_str(done[0]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"timezone": "Asia/Tokyo"}), "{done:#?}");
    let output = done[1]["output"].as_str().unwrap();
    let tokyo_time = chrono::DateTime::parse_from_rfc3339(output.split(' ').next().unwrap()).unwrap();
    assert_eq!(tokyo_time.offset().local_minus_utc(), 9 * 3600, "{output}");
    let answer = done.last().unwrap();
    assert_eq!(answer["type"], "message", "{done:#?}");
    let text = answer["content"][0]["text"].as_str().unwrap();
    // The answer names Tokyo's time: its hour and minute, as the tool gave them (12- or 24-hour).
    let (hour, minute) = (tokyo_time.format("%H").to_string(), tokyo_time.format("%M").to_string());
    let hour12 = tokyo_time.format("%-I").to_string();
    assert!(
        [format!("{hour}:{minute}"), format!("{hour12}:{minute}")].iter().any(|t| text.contains(t.as_str())),
        "the answer does not give Tokyo's time ({hour}:{minute}): {text}"
    );
    // The answer was streamed in pieces, and they add up to it.
    let deltas: Vec<_> = s
        .json()
        .into_iter()
        .filter(|e| e["type"] == "response.output_text.delta" && e["item_id"] == answer["id"])
        .collect();
    assert!(deltas.len() > 2, "{deltas:?}");
    assert_eq!(deltas.iter().map(|d| d["delta"].as_str().unwrap()).collect::<String>(), text);
    let events = s.json();
    let usage = &events.last().unwrap()["response"]["usage"];
    assert!(usage["input_tokens"].as_u64().unwrap() > 100 && usage["output_tokens"].as_u64().unwrap() > 5, "{usage}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_a_503_and_a_gone_client_frees_the_model() {
    if model().is_none() {
        return;
    }
    let server = local_server(|s| s.local.queue = 1).await;
    let long = json!({"input": [{"role": "user", "content": "Count from 1 to 500, one number per line."}],
                      "stream": true, "tool_choice": "none"});
    // A generates; B waits in the queue; C finds the queue full.
    let url = format!("{}/invocations", server.url);
    let mut a = server.client.post(&url).json(&long).send().await.unwrap();
    let mut seen = String::new();
    while !seen.contains("output_text.delta") {
        seen.push_str(&String::from_utf8_lossy(&a.chunk().await.unwrap().unwrap()));
    }
    let b = tokio::spawn({
        let (client, url) = (server.client.clone(), url.clone());
        let short =
            json!({"input": [{"role": "user", "content": "Say hello."}], "stream": true, "max_output_tokens": 20});
        async move {
            let mut response = client.post(&url).json(&short).send().await.unwrap();
            let mut body = String::new();
            while let Some(chunk) = response.chunk().await.unwrap() {
                body.push_str(&String::from_utf8_lossy(&chunk));
            }
            body
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = server.post("/invocations", user("hi")).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("busy"), "{body}");
    // Hanging up on A stops its generation and frees the model for B, which is then served.
    drop(a);
    let b_body = tokio::time::timeout(Duration::from_secs(90), b).await.expect("B was served").unwrap();
    assert!(b_body.contains("response.completed") && b_body.ends_with("data: [DONE]\n\n"), "{b_body}");
}
