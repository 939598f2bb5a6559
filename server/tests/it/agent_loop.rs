//! The agent loop through the API: tool errors go back to the model, tools run concurrently with
//! timeouts, turns are bounded, and a client that hangs up cancels the model call and the tools.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::{start_with, user, user_stream};
use fake_model::Reply;
use serde_json::{Value, json};
use server::Agent;
use server::tools::{NoArgs, tool, tool_with_context};

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Sleep {
    /// Milliseconds to sleep.
    ms: u64,
}

fn test_agent() -> Agent {
    Agent::new("Test")
        .instructions("Be helpful.")
        .model("test-model")
        .tool(tool("sleep", "Sleeps.", |a: Sleep| async move {
            tokio::time::sleep(Duration::from_millis(a.ms)).await;
            Ok::<_, String>(format!("slept {}", a.ms))
        }))
        .tool(tool("fail", "Always fails.", |_: NoArgs| async { Err::<String, _>("the database is on fire") }))
        .tool(tool("huge", "Returns a lot.", |_: NoArgs| async { Ok::<_, String>("x".repeat(10_000)) }))
}

/// The tool messages the model got in its `n`th call.
fn tool_messages(requests: &[Value], n: usize) -> Vec<Value> {
    requests[n]["messages"].as_array().unwrap().iter().filter(|m| m["role"] == "tool").cloned().collect()
}

#[tokio::test]
async fn tool_errors_go_back_to_the_model() {
    let server = start_with(|s| s.limits.max_tool_output_bytes = 100, test_agent()).await;
    server.fake.push(Reply::ToolCalls {
        text: None,
        calls: vec![
            ("fail".into(), "{}".into()),
            ("no_such_tool".into(), "{}".into()),
            ("sleep".into(), "{not json".into()),
            ("sleep".into(), r#"{"seconds": 1}"#.into()),
            ("huge".into(), "".into()),
        ],
    });
    server.fake.push(Reply::text("Sorry."));
    let (status, body) = server.post("/invocations", user("go")).await;
    assert_eq!(status, 200, "{body}");
    let outputs: Vec<String> = body["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == "function_call_output")
        .map(|i| i["output"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(outputs.len(), 5);
    let sent = tool_messages(&server.fake.requests(), 1);
    let by_call = |i: usize| {
        sent.iter().find(|m| m["tool_call_id"] == format!("call_fake_{i}")).unwrap()["content"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(by_call(0), "Error: tool `fail` failed: the database is on fire");
    assert_eq!(by_call(1), "Error: tool `no_such_tool` does not exist");
    assert!(by_call(2).starts_with("Error: invalid arguments for tool `sleep`: not valid JSON"), "{}", by_call(2));
    assert!(by_call(3).starts_with("Error: invalid arguments for tool `sleep`: missing field `ms`"), "{}", by_call(3));
    assert!(by_call(4).starts_with(&"x".repeat(100)) && by_call(4).ends_with("[output truncated: 9900 more bytes]"));
    assert_eq!(body["output"].as_array().unwrap().last().unwrap()["content"][0]["text"], "Sorry.");
}

#[tokio::test]
async fn tools_run_concurrently_and_time_out() {
    let server = start_with(|s| s.agent.tool_timeout_seconds = 1.0, test_agent()).await;
    server.fake.push(Reply::ToolCalls {
        text: None,
        calls: vec![
            ("sleep".into(), r#"{"ms": 400}"#.into()),
            ("sleep".into(), r#"{"ms": 400}"#.into()),
            ("sleep".into(), r#"{"ms": 400}"#.into()),
            ("sleep".into(), r#"{"ms": 60000}"#.into()),
        ],
    });
    server.fake.push(Reply::text("done"));
    let started = Instant::now();
    let s = server.stream("/invocations", user_stream("go"), &[]).await;
    let elapsed = started.elapsed();
    // Three 400 ms sleeps together, and the stuck one cut at 1 s: well under their 1.2 s + 60 s sum.
    assert!(elapsed < Duration::from_millis(2500), "{elapsed:?}");
    let outputs: Vec<Value> = s.done_items().into_iter().filter(|i| i["type"] == "function_call_output").collect();
    assert_eq!(outputs.len(), 4);
    // Outputs stream as they finish: the three quick ones before the timeout.
    assert!(outputs[..3].iter().all(|o| o["output"] == "slept 400"), "{outputs:?}");
    assert_eq!(outputs[3]["output"], "Error: tool `sleep` did not finish within 1s");
    // The model gets the outputs in call order.
    let sent = tool_messages(&server.fake.requests(), 1);
    let ids: Vec<&str> = sent.iter().map(|m| m["tool_call_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["call_fake_0", "call_fake_1", "call_fake_2", "call_fake_3"]);
}

#[tokio::test]
async fn turns_are_bounded() {
    let server = start_with(|s| s.agent.max_turns = 2, test_agent()).await;
    for _ in 0..2 {
        server.fake.push(Reply::tool_call("sleep", r#"{"ms": 1}"#));
    }
    let s = server.stream("/invocations", user_stream("loop"), &[]).await;
    let error = s.json().last().unwrap().clone();
    assert_eq!(error["code"], "MAX_TURNS_EXCEEDED");
    assert!(error["error"].as_str().unwrap().contains("made 2 model calls"), "{error}");
    assert_eq!(server.fake.requests().len(), 2);
    // What ran before the limit is in the stream.
    assert_eq!(s.done_items().iter().filter(|i| i["type"] == "function_call_output").count(), 2);
    for _ in 0..2 {
        server.fake.push(Reply::tool_call("sleep", r#"{"ms": 1}"#));
    }
    let (status, body) = server.post("/invocations", user("loop")).await;
    assert_eq!(status, 500);
    assert!(body["detail"].as_str().unwrap().contains("AGENT_MAX_TURNS"));
}

#[tokio::test]
async fn tool_choice_applies_to_the_first_call_only() {
    let server = start_with(|_| {}, test_agent()).await;
    server.fake.push(Reply::tool_call("sleep", r#"{"ms": 1}"#));
    server.fake.push(Reply::text("ok"));
    let mut body = user("go");
    body["tool_choice"] = json!({"type": "function", "name": "sleep"});
    body["temperature"] = json!(0.2);
    body["max_output_tokens"] = json!(50);
    let (status, _) = server.post("/invocations", body).await;
    assert_eq!(status, 200);
    let requests = server.fake.requests();
    assert_eq!(requests[0]["tool_choice"], json!({"type": "function", "function": {"name": "sleep"}}));
    assert!(requests[1].get("tool_choice").is_none());
    assert_eq!(requests[1]["temperature"], 0.2);
    assert_eq!(requests[0]["max_tokens"], 50);
}

/// Sets its flag when dropped: shows that a tool future was cancelled.
struct DropFlag(Arc<AtomicBool>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn client_disconnect_cancels_the_model_call() {
    let server = start_with(|_| {}, test_agent()).await;
    let words = (0..200).map(|i| format!("w{i} ")).collect::<String>();
    server.fake.push(Reply::text_with_delay(&words, Duration::from_millis(25)));
    let mut resp =
        server.client.post(format!("{}/invocations", server.url)).json(&user_stream("talk")).send().await.unwrap();
    let mut seen = String::new();
    while !seen.contains("output_text.delta") {
        seen.push_str(&String::from_utf8_lossy(&resp.chunk().await.unwrap().unwrap()));
    }
    assert_eq!(server.fake.open_streams(), 1);
    drop(resp);
    // The agent stops reading and closes the model connection long before the 5 s answer ends.
    wait_for("the model stream to be closed", || server.fake.open_streams() == 0).await;
}

#[tokio::test]
async fn client_disconnect_cancels_running_tools() {
    let cancelled = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicUsize::new(0));
    let (c, s) = (cancelled.clone(), started.clone());
    let agent = Agent::new("Test").model("m").tool(tool_with_context("wait", "Waits.", move |_: NoArgs, ctx| {
        let flag = DropFlag(c.clone());
        let started = s.clone();
        async move {
            let _flag = flag;
            started.fetch_add(1, Ordering::SeqCst);
            ctx.cancel.cancelled().await;
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, String>("never")
        }
    }));
    let server = start_with(|_| {}, agent).await;
    server.fake.push(Reply::tool_call("wait", "{}"));
    let resp = server.client.post(format!("{}/invocations", server.url)).json(&user_stream("go")).send().await.unwrap();
    wait_for("the tool to start", || started.load(Ordering::SeqCst) == 1).await;
    assert!(!cancelled.load(Ordering::SeqCst));
    drop(resp);
    wait_for("the tool to be cancelled", || cancelled.load(Ordering::SeqCst)).await;
    assert_eq!(server.fake.requests().len(), 1, "no further model call after the client left");
}

#[tokio::test]
async fn keep_alives_while_a_tool_runs() {
    let server = start_with(|s| s.server.sse_keepalive_seconds = 0.1, test_agent()).await;
    server.fake.push(Reply::tool_call("sleep", r#"{"ms": 450}"#));
    server.fake.push(Reply::text("ok"));
    let s = server.stream("/invocations", user_stream("go"), &[]).await;
    assert!(s.raw.matches(": keep-alive\n\n").count() >= 2, "{}", s.raw);
    assert_eq!(s.text(), "ok");
}

/// `custom_inputs` reach the tools, and what tools put in `custom_outputs` comes back with the
/// response (JSON and stream), next to the session id.
#[tokio::test]
async fn custom_inputs_reach_tools_and_custom_outputs_come_back() {
    let lookup = server::tools::tool_with_context(
        "account_plan",
        "The user's plan.",
        |_: server::tools::NoArgs, context: server::tools::ToolContext| async move {
            let plan = context.custom_inputs.get("plan").and_then(|p| p.as_str()).unwrap_or("none").to_string();
            context.set_custom_output("plan_seen", serde_json::json!(plan));
            Ok::<_, String>(format!("plan: {plan}"))
        },
    );
    let agent = server::Agent::new("A").instructions("x").model("m").tool(lookup);
    let server = crate::common::start_with(|_| {}, agent).await;
    server.fake.push(fake_model::Reply::tool_call("account_plan", "{}")).push(fake_model::Reply::text("Gold."));
    let body = serde_json::json!({"input": [{"role": "user", "content": "plan?"}],
        "custom_inputs": {"plan": "gold", "session_id": "s-9"}});
    let (status, response) = server.post("/responses", body.clone()).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["custom_outputs"], serde_json::json!({"session_id": "s-9", "plan_seen": "gold"}));
    let outputs: Vec<&serde_json::Value> =
        response["output"].as_array().unwrap().iter().filter(|i| i["type"] == "function_call_output").collect();
    assert_eq!(outputs[0]["output"], "plan: gold");

    server.fake.push(fake_model::Reply::tool_call("account_plan", "{}")).push(fake_model::Reply::text("Gold."));
    let mut streamed = body;
    streamed["stream"] = serde_json::json!(true);
    let stream = server.stream("/responses", streamed, &[]).await;
    let completed = stream.json().into_iter().find(|e| e["type"] == "response.completed").unwrap();
    assert_eq!(completed["response"]["custom_outputs"]["plan_seen"], "gold");
}

/// `agent.rs`'s example of a tool of your own (`AGENT_EXAMPLE=weather`): a named async function of
/// typed arguments, called by the model with JSON, its `Err` going back to the model.
#[tokio::test]
async fn the_example_tool_of_agent_rs_is_called_with_typed_arguments() {
    let agent = server::examples::by_name("weather").unwrap();
    let server = start_with(|_| {}, agent).await;
    server
        .fake
        .push(Reply::tool_call("get_weather", r#"{"city": "Paris"}"#))
        .push(Reply::tool_call("get_weather", r#"{"city": " "}"#))
        .push(Reply::text("Sunny."));
    let (status, body) = server.post("/invocations", user("Weather in Paris?")).await;
    assert_eq!(status, 200, "{body}");
    let outputs: Vec<&str> = body["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == "function_call_output")
        .map(|i| i["output"].as_str().unwrap())
        .collect();
    assert_eq!(outputs, ["It is sunny in Paris.", "Error: tool `get_weather` failed: say which city"]);
    let schema = &server.fake.requests()[0]["tools"];
    let weather = schema.as_array().unwrap().iter().find(|t| t["function"]["name"] == "get_weather").unwrap();
    assert_eq!(
        weather["function"]["parameters"]["properties"]["city"]["description"],
        "City name, e.g. \"Amsterdam\"."
    );
}

/// `agent.rs`'s example of everything else builds into a valid agent.
#[test]
fn the_connected_example_of_agent_rs_is_a_valid_agent() {
    let agent = server::agent::connected_agent();
    agent.tools.validate().unwrap();
    assert_eq!(agent.mcp_servers.len(), 4);
    assert_eq!(agent.handoffs[0].name, "Billing");
    assert!(agent.tools.names().contains(&"research"));
    assert_eq!(agent.approval_required, ["files__*"]);
}
