//! The HTTP surface (docs/reference.md §1–§3) over real HTTP: routes, request validation, the non-streaming
//! response, the SSE transcript event by event, trace ids, sessions, multi-turn history.

use std::collections::HashSet;

use crate::common::{start, start_with, user, user_stream};
use fake_model::Reply;
use serde_json::{Value, json};

fn is_trace_id(v: &Value) -> bool {
    v.as_str().is_some_and(|s| s.len() == 35 && s.starts_with("tr-") && s[3..].chars().all(|c| c.is_ascii_hexdigit()))
}

#[tokio::test]
async fn health_and_agent_info() {
    let server = start_with(|s| s.server.app_name = Some("agent-demo".into()), server::agent::agent()).await;
    let health: Value = server.client.get(format!("{}/health", server.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(health, json!({"status": "healthy"}));
    let info: Value =
        server.client.get(format!("{}/agent/info", server.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(info["name"], "agent-demo");
    assert_eq!(info["use_case"], "agent");
    assert_eq!(info["agent_api"], "responses");
    assert!(info["mlflow_version"].is_string());
    assert_eq!(info["model"], "databricks-gpt-5-2");
    assert_eq!(info["tools"], json!(["get_current_time"]));
    // Default name when the app has none.
    let server = start().await;
    let info: Value =
        server.client.get(format!("{}/agent/info", server.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(info["name"], "mlflow_agent_server");
}

#[tokio::test]
async fn non_streaming_tool_call_round_trip() {
    let server = start().await;
    let (status, body) = server.post("/invocations", user("what time is it?")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "response");
    assert_eq!(body["status"], "completed");
    let output = body["output"].as_array().unwrap();
    let kinds: Vec<&str> = output.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["function_call", "function_call_output", "message"]);
    let (call, result, message) = (&output[0], &output[1], &output[2]);
    assert_eq!(call["name"], "get_current_time");
    assert_eq!(call["arguments"], "{}");
    assert_eq!(result["call_id"], call["call_id"]);
    let stamp = result["output"].as_str().unwrap().split(' ').next().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(stamp).is_ok(), "{result}");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["content"][0]["type"], "output_text");
    assert!(message["content"][0]["text"].as_str().unwrap().starts_with("token0 token1"));
    let ids: HashSet<&str> = output.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3, "every item has its own id");
    assert!(body["usage"]["total_tokens"].as_u64().unwrap() > 0);
    assert!(body.get("metadata").is_none(), "no trace id unless asked");

    // What the model was sent: the reference's system prompt and tool schema, then the tool round.
    let requests = server.fake.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0]["model"], "databricks-gpt-5-2");
    assert_eq!(requests[0]["messages"][0], json!({"role": "system", "content": "You are a helpful assistant."}));
    assert_eq!(requests[0]["messages"][1], json!({"role": "user", "content": "what time is it?"}));
    // The tool's schema: an optional IANA time zone (optional, so not `strict`).
    let tool = &requests[0]["tools"][0];
    assert_eq!((&tool["type"], &tool["function"]["name"]), (&json!("function"), &json!("get_current_time")));
    assert!(tool["function"]["description"].as_str().unwrap().contains("IANA time zone"), "{tool}");
    let parameters = &tool["function"]["parameters"];
    assert_eq!(parameters["properties"]["timezone"]["type"], json!(["string", "null"]), "{tool}");
    assert_eq!((&parameters["required"], &parameters["additionalProperties"]), (&json!([]), &json!(false)));
    assert!(tool["function"].get("strict").is_none(), "{tool}");
    assert!(requests[0].get("stream").is_none(), "non-streaming requests call the model without streaming");
    let second = requests[1]["messages"].as_array().unwrap();
    assert_eq!(second[2]["role"], "assistant");
    assert_eq!(second[2]["content"], Value::Null);
    assert_eq!(second[2]["tool_calls"][0]["function"]["name"], "get_current_time");
    assert_eq!(second[3]["role"], "tool");
    assert_eq!(second[3]["tool_call_id"], second[2]["tool_calls"][0]["id"]);
}

#[tokio::test]
async fn streaming_transcript_event_by_event() {
    let server = start().await;
    server.fake.push(Reply::tool_call("get_current_time", "{}"));
    server.fake.push(Reply::text("It is noon."));
    let s = server.stream("/responses", user_stream("what time is it?"), &[]).await;
    assert_eq!(s.status, 200);
    assert_eq!(s.content_type.as_deref(), Some("text/event-stream; charset=utf-8"));
    let expected = [
        "response.created",
        "response.in_progress",
        "response.output_item.added",             // function_call
        "response.function_call_arguments.delta", // "{"
        "response.function_call_arguments.delta", // "}"
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.output_item.added", // function_call_output
        "response.output_item.done",
        "response.output_item.added", // message
        "response.content_part.added",
        "response.output_text.delta", // "It"
        "response.output_text.delta", // " is"
        "response.output_text.delta", // " noon."
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ];
    assert_eq!(s.types(), expected);
    assert_eq!(s.data.last().unwrap(), "[DONE]");
    let events = s.json();
    // Sequence numbers: 0, 1, 2… over the whole stream.
    let seqs: Vec<u64> = events.iter().map(|e| e["sequence_number"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
    // Deltas and their done share the item id; items differ.
    let done = s.done_items();
    let kinds: Vec<&str> = done.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["function_call", "function_call_output", "message"]);
    let message_id = done[2]["id"].as_str().unwrap();
    for delta in events.iter().filter(|e| e["type"] == "response.output_text.delta") {
        assert_eq!(delta["item_id"], message_id);
        assert_eq!(delta["output_index"], 2);
    }
    for delta in events.iter().filter(|e| e["type"] == "response.function_call_arguments.delta") {
        assert_eq!(delta["item_id"], done[0]["id"]);
    }
    assert_eq!(s.text(), "It is noon.");
    assert_eq!(done[2]["content"][0]["text"], "It is noon.");
    assert_eq!(done[1]["call_id"], done[0]["call_id"]);
    let ids: HashSet<&str> = done.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3);
    // The completed response holds every item, in output order, and the usage.
    let completed = &events.last().unwrap()["response"];
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["output"].as_array().unwrap(), &done);
    assert!(completed["usage"]["output_tokens"].as_u64().unwrap() > 0);
    // The model was streamed to, with usage requested.
    assert_eq!(server.fake.requests()[0]["stream"], true);
    assert_eq!(server.fake.requests()[0]["stream_options"], json!({"include_usage": true}));
    // Every event is a valid ResponsesAgent stream event for our own client types.
    assert_eq!(s.events().len(), events.len());
}

#[tokio::test]
async fn text_and_tool_call_in_one_turn_get_their_own_ids() {
    // The reference gives the message the tool call's id here (docs/reference.md §3.4).
    let server = start().await;
    server.fake.push(Reply::ToolCalls {
        text: Some("Let me check.".into()),
        calls: vec![("get_current_time".into(), "{}".into())],
    });
    server.fake.push(Reply::text("Noon."));
    let s = server.stream("/invocations", user_stream("time?"), &[]).await;
    let done = s.done_items();
    let kinds: Vec<&str> = done.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["message", "function_call", "function_call_output", "message"]);
    let ids: HashSet<&str> = done.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 4);
    let first_deltas: Vec<Value> = s
        .json()
        .into_iter()
        .filter(|e| e["type"] == "response.output_text.delta" && e["item_id"] == done[0]["id"])
        .collect();
    assert_eq!(first_deltas.iter().map(|d| d["delta"].as_str().unwrap()).collect::<String>(), "Let me check.");
    // The model then saw the text and the call in one assistant message.
    let second = &server.fake.requests()[1]["messages"];
    assert_eq!(second[2]["content"], "Let me check.");
    assert_eq!(second[2]["tool_calls"][0]["function"]["name"], "get_current_time");
}

#[tokio::test]
async fn trace_ids_when_asked() {
    let server = start().await;
    let url = format!("{}/invocations", server.url);
    for (header, expected) in [("true", true), ("TRUE", true), ("false", false)] {
        let body: Value = server
            .client
            .post(&url)
            .header("x-mlflow-return-trace-id", header)
            .json(&user("hi"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body.pointer("/metadata/trace_id").is_some_and(is_trace_id), expected, "{header}: {body}");
    }
    let s = server.stream("/invocations", user_stream("hi"), &[("x-mlflow-return-trace-id", "true")]).await;
    let json = s.json();
    let last = json.last().unwrap();
    assert!(is_trace_id(&last["trace_id"]), "{last}");
    assert_eq!(s.types()[s.types().len() - 2], "response.completed");
    assert_eq!(s.data.last().unwrap(), "[DONE]");
    let s = server.stream("/invocations", user_stream("hi"), &[]).await;
    assert!(!s.raw.contains("trace_id"));
}

#[tokio::test]
async fn both_routes_behave_alike_and_model_is_ignored() {
    let server = start().await;
    for path in ["/invocations", "/responses"] {
        server.fake.push(Reply::text("same"));
        let mut body = user("hi");
        body["model"] = json!("apps/my-agent");
        body["databricks_options"] = json!({"return_trace": true});
        let (status, body) = server.post(path, body).await;
        assert_eq!(status, 200);
        assert_eq!(body["output"][0]["content"][0]["text"], "same");
    }
    for request in server.fake.requests() {
        assert_eq!(request["model"], "databricks-gpt-5-2", "`model` in the request does not pick the model");
    }
}

#[tokio::test]
async fn session_id_is_echoed() {
    let server = start().await;
    let mut body = user("hi");
    body["context"] = json!({"conversation_id": "conv-1", "user_id": "jane@example.com"});
    body["custom_inputs"] = json!({"session_id": "other"});
    let (_, out) = server.post("/invocations", body).await;
    assert_eq!(out["custom_outputs"], json!({"session_id": "conv-1"}));
    let mut body = user("hi");
    body["custom_inputs"] = json!({"session_id": "s-9"});
    let (_, out) = server.post("/invocations", body).await;
    assert_eq!(out["custom_outputs"], json!({"session_id": "s-9"}));
    let (_, out) = server.post("/invocations", user("hi")).await;
    assert!(out.get("custom_outputs").is_none());
    let mut body = user_stream("hi");
    body["custom_inputs"] = json!({"session_id": "s-10"});
    let s = server.stream("/invocations", body, &[]).await;
    assert_eq!(s.json().last().unwrap()["response"]["custom_outputs"], json!({"session_id": "s-10"}));
}

#[tokio::test]
async fn multi_turn_history_as_the_chat_ui_sends_it() {
    // The exact shape the reference's chat UI sends, which the reference rejects with a 500 (docs/reference.md §10.1).
    let server = start().await;
    server.fake.push(Reply::text("You're welcome."));
    let body = json!({
        "model": "chat-model",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "What time is it?"}]},
            {"role": "assistant", "content": [{"type": "output_text", "text": "It is 12:00."}], "id": "m1"},
            {"type": "function_call", "call_id": "call_1", "name": "get_current_time", "arguments": "{}", "id": "f1"},
            {"type": "function_call_output", "call_id": "call_1", "output": "2026-01-01T12:00:00"},
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "…"}], "id": "r1"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": [{"type": "input_text", "text": "thanks"}]}
        ],
        "stream": true,
        "databricks_options": {"return_trace": true},
        "context": {"conversation_id": "c1", "user_id": "jane@example.com"}
    });
    let s = server.stream("/invocations", body, &[]).await;
    assert_eq!(s.text(), "You're welcome.");
    let sent = &server.fake.requests()[0]["messages"];
    let roles: Vec<&str> = sent.as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool", "assistant", "user"]);
    assert_eq!(sent[2]["content"], "It is 12:00.");
    assert_eq!(sent[2]["tool_calls"][0]["id"], "call_1");
    assert_eq!(sent[5]["content"], "thanks");
}

#[tokio::test]
async fn bad_input_gets_a_clear_400() {
    let server = start().await;
    let prefix = "Invalid parameters for ResponsesAgent: Invalid data for ResponsesAgentRequest: ";
    let cases = [
        (json!({}), "input: Field required"),
        (json!({"input": "hi"}), "input: Input should be a valid list"),
        (
            json!({"input": [{"role": "bogus", "content": "hi"}]}),
            "input.0.role: Invalid role: bogus. Must be 'user', 'assistant', 'system', or 'developer'.",
        ),
        (json!({"input": [{"type": "foo_call"}]}), "input.0.type: Invalid type: foo_call for OutputItem"),
        (
            json!({"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}),
            "input.0.call_id: Field required",
        ),
        (json!([1, 2]), "body: Input should be a valid dictionary"),
    ];
    for (body, message) in cases {
        for stream in [false, true] {
            let mut body = body.clone();
            if stream && let Some(o) = body.as_object_mut() {
                o.insert("stream".into(), json!(true));
            }
            let (status, out) = server.post("/invocations", body).await;
            assert_eq!(status, 400, "{out}");
            assert_eq!(out, json!({"detail": format!("{prefix}{message}")}));
        }
    }
    let (status, _, out) = server.post_raw("/invocations", "{not json").await;
    assert_eq!(status, 400);
    assert!(out["detail"].as_str().unwrap().starts_with("Invalid JSON in request body: "), "{out}");
    let (status, _, out) = server.post_raw("/responses", "").await;
    assert_eq!(status, 400);
    assert!(out["detail"].as_str().unwrap().starts_with("Invalid JSON in request body: "), "{out}");
    assert_eq!(server.fake.requests().len(), 0, "nothing reached the model");
}

#[tokio::test]
async fn oversized_and_overlong_requests_are_refused() {
    let server = start_with(
        |s| {
            s.limits.max_request_bytes = 4096;
            s.limits.max_input_items = 3;
        },
        server::agent::agent(),
    )
    .await;
    let big = json!({"input": [{"role": "user", "content": "x".repeat(10_000)}]}).to_string();
    let (status, _, out) = server.post_raw("/invocations", big).await;
    assert_eq!(status, 413);
    assert_eq!(out["detail"], "Request body too large: at most 4096 bytes are accepted (AGENT_MAX_REQUEST_BYTES)");
    let items: Vec<Value> = (0..4).map(|_| json!({"role": "user", "content": "hi"})).collect();
    let (status, out) = server.post("/invocations", json!({"input": items})).await;
    assert_eq!(status, 400);
    assert!(
        out["detail"].as_str().unwrap().ends_with("input: at most 3 items are accepted, got 4 (AGENT_MAX_INPUT_ITEMS)")
    );
    // The server is fine afterwards.
    let (status, _) = server.post("/invocations", user("hi")).await;
    assert_eq!(status, 200);
}

/// The limit follows the forwarded user: one user over it gets 429 (API shape, Retry-After) while
/// another user, through the same proxy address, is unaffected; other routes are not limited.
#[tokio::test]
async fn each_user_has_their_own_rate_limit() {
    let server = start_with(
        |s| {
            s.limits.rate_limit_per_minute = 2;
            s.limits.rate_limit_burst = Some(2);
        },
        server::agent::agent(),
    )
    .await;
    let ask = |who: &'static str| {
        let server = &server;
        async move {
            server.fake.push(Reply::text("ok"));
            let response = server
                .client
                .post(format!("{}/invocations", server.url))
                .header("x-forwarded-email", who)
                .json(&user("hi"))
                .send()
                .await
                .unwrap();
            let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
            (response.status().as_u16(), retry_after, response.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(ask("alice@example.com").await.0, 200);
    assert_eq!(ask("alice@example.com").await.0, 200);
    let (status, retry_after, body) = ask("alice@example.com").await;
    assert_eq!(status, 429);
    let seconds: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=30).contains(&seconds), "{seconds}");
    assert!(body["detail"].as_str().unwrap().starts_with("Rate limit exceeded: at most 2 requests a minute per user"));
    assert_eq!(ask("bob@example.com").await.0, 200, "another user is not limited by alice's requests");
    let info = server.client.get(format!("{}/agent/info", server.url)).header("x-forwarded-email", "alice@example.com");
    assert_eq!(info.send().await.unwrap().status(), 200, "only the agent routes are limited");
    // Leftover scripted replies would confuse nothing else; the refused request took none.
    assert_eq!(server.fake.pending(), 1);
}

#[tokio::test]
async fn wrong_method_is_405() {
    let server = start().await;
    for path in ["/invocations", "/responses"] {
        let resp = server.client.get(format!("{}{path}", server.url)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 405);
        assert_eq!(resp.headers().get("allow").unwrap(), "POST");
        assert_eq!(resp.json::<Value>().await.unwrap(), json!({"detail": "Method Not Allowed"}));
    }
    let resp = server.client.post(format!("{}/health", server.url)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 405);
}

#[tokio::test]
async fn stream_flag_is_read_by_truthiness() {
    let server = start().await;
    for (flag, streams) in
        [(json!("yes"), true), (json!(1), true), (json!(0), false), (json!(null), false), (json!(""), false)]
    {
        let mut body = user("hi");
        body["stream"] = flag.clone();
        let resp = server.client.post(format!("{}/invocations", server.url)).json(&body).send().await.unwrap();
        let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert_eq!(ct.starts_with("text/event-stream"), streams, "stream={flag}");
        let _ = resp.bytes().await;
    }
}

#[tokio::test]
async fn no_model_configured_is_a_500_before_streaming() {
    let server = start_with(
        |s| {
            s.model.openai_base_url = None;
            s.local.model = "/nonexistent/model.gguf".into();
        },
        server::agent::agent(),
    )
    .await;
    for body in [user("hi"), user_stream("hi")] {
        let (status, out) = server.post("/invocations", body).await;
        assert_eq!(status, 500);
        let detail = out["detail"].as_str().unwrap();
        assert!(detail.contains("OPENAI_BASE_URL") && detail.contains("scripts/fetch-model.sh"), "{out}");
    }
}

#[tokio::test]
async fn databricks_endpoint_gets_the_token_and_the_serving_endpoints_path() {
    let fake = fake_model::FakeModel::start().await;
    let mut settings = crate::common::test_settings(&fake);
    settings.model.openai_base_url = None;
    settings.databricks.host = Some(fake.host_url());
    settings.databricks.token = Some(server::config::Secret::new("dapi-test-token"));
    settings.model.name = Some("databricks-claude-sonnet-4".into());
    let server = crate::common::serve(fake, settings, server::agent::agent()).await;
    let (status, body) = server.post("/invocations", user("hi")).await;
    assert_eq!(status, 200, "{body}");
    let headers = server.fake.request_headers();
    assert_eq!(headers[0]["authorization"], "Bearer dapi-test-token");
    let requests = server.fake.requests();
    assert_eq!(requests[0]["model"], "databricks-claude-sonnet-4");
    // Not a GPT model: no `strict`. Claude: the tool-call-only assistant message gets " ".
    assert!(requests[0]["tools"][0]["function"].get("strict").is_none());
    assert_eq!(requests[1]["messages"][2]["content"], " ");
}

#[tokio::test]
async fn provider_quirks_flow_through() {
    let server = start().await;
    let chunk = |delta: Value, finish: &str| {
        json!({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}).to_string()
    };
    server.fake.push(Reply::Raw {
        payloads: vec![
            chunk(
                json!({"content": [{"type": "reasoning", "summary": [{"type": "summary_text", "text": "Thinking…"}]}]}),
                "",
            ),
            chunk(json!({"content": [{"type": "text", "text": "Hi "}]}), ""),
            chunk(json!({"content": "there"}), ""),
            chunk(json!({}), "stop"),
            json!({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2}}).to_string(),
        ],
    });
    let s = server.stream("/invocations", user_stream("hi"), &[]).await;
    let done = s.done_items();
    assert_eq!(done[0]["type"], "reasoning");
    assert_eq!(done[0]["summary"][0]["text"], "Thinking…");
    assert_eq!(done[1]["content"][0]["text"], "Hi there");
    let events = s.json();
    let usage = &events.last().unwrap()["response"]["usage"];
    assert_eq!(usage["input_tokens"], 7);
    assert_eq!(usage["total_tokens"], 9);
}

#[tokio::test]
async fn the_page_is_server_rendered_with_hydration_scripts() {
    let server = start().await;
    let resp = server.client.get(format!("{}/", server.url)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let html = resp.text().await.unwrap();
    assert!(html.contains("<title>agent-app</title>"), "{html}");
    let pkg = bundle_path(&html);
    assert!(html.contains(&format!("{pkg}/agent-app.js")), "{html}");
    assert!(
        html.contains(&format!("{pkg}/agent-app.wasm")),
        "the wasm file name must match what the build writes: {html}"
    );
    assert!(html.contains(&format!("{pkg}/agent-app.css")), "{html}");
    let resp = server.client.get(format!("{}/no-such-page", server.url)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 404);
}

/// The page's bundle folder: `/pkg/<16 hex digits>`.
pub(crate) fn bundle_path(html: &str) -> String {
    let at = html.find("/pkg/").expect("the page links the bundle");
    let hash: String = html[at + 5..].chars().take_while(char::is_ascii_hexdigit).collect();
    assert_eq!(hash.len(), 16, "a content hash in the bundle's path: {}", &html[at..at + 40]);
    format!("/pkg/{hash}")
}

/// The bundle as browsers get it: under a path that changes with its content, kept for a year, the
/// precompressed copy the browser takes (brotli before gzip), the file itself for others; pages and
/// JSON compressed when asked and revalidated; event streams never compressed.
#[tokio::test]
async fn the_bundle_is_served_hashed_precompressed_and_cached() {
    let site = tempfile::tempdir().unwrap();
    let pkg = site.path().join("pkg");
    std::fs::create_dir(&pkg).unwrap();
    for (name, body) in [("agent-app.js", "js"), ("agent-app.wasm", "wasm"), ("agent-app.css", "css")] {
        std::fs::write(pkg.join(name), format!("{body} raw")).unwrap();
        std::fs::write(pkg.join(format!("{name}.br")), format!("{body} br")).unwrap();
        std::fs::write(pkg.join(format!("{name}.gz")), format!("{body} gz")).unwrap();
    }
    let site_root = site.path().to_path_buf();
    let server = start_with(move |s| s.server.site_root = Some(site_root), server::agent::agent()).await;
    let get = |path: String, encoding: Option<&'static str>| {
        let mut request = server.client.get(format!("{}{path}", server.url));
        if let Some(encoding) = encoding {
            request = request.header("accept-encoding", encoding);
        }
        async move {
            let resp = request.send().await.unwrap();
            let header = |name: &str| resp.headers().get(name).map(|v| v.to_str().unwrap().to_string());
            let (status, encoding, cache) =
                (resp.status().as_u16(), header("content-encoding"), header("cache-control"));
            (status, encoding, cache, resp.bytes().await.unwrap())
        }
    };
    let (status, _, cache, page) = get("/".into(), None).await;
    assert_eq!((status, cache.as_deref()), (200, Some("no-cache")), "pages are revalidated");
    let pkg_path = bundle_path(&String::from_utf8_lossy(&page));
    // The bundle hydrates only a page rendered with views of its kind (.cargo/config.toml builds both erased).
    let kind = format!(r#"<meta name="agent-app-views" content="{}""#, app::VIEW_TYPES);
    assert!(String::from_utf8_lossy(&page).contains(&kind), "the page names its views' kind");
    assert_eq!(app::VIEW_TYPES, "erased", "the server is built as .cargo/config.toml says");

    let (status, encoding, cache, body) = get(format!("{pkg_path}/agent-app.wasm"), Some("gzip, deflate, br")).await;
    assert_eq!((status, encoding.as_deref(), &body[..]), (200, Some("br"), &b"wasm br"[..]));
    assert_eq!(cache.as_deref(), Some("public, max-age=31536000, immutable"));
    let (_, encoding, _, body) = get(format!("{pkg_path}/agent-app.js"), Some("gzip")).await;
    assert_eq!((encoding.as_deref(), &body[..]), (Some("gzip"), &b"js gz"[..]));
    let (_, encoding, _, body) = get(format!("{pkg_path}/agent-app.css"), None).await;
    assert_eq!((encoding, &body[..]), (None, &b"css raw"[..]));
    let (status, _, cache, _) = get(format!("{pkg_path}/missing.js"), None).await;
    assert_eq!((status, cache), (404, None), "what is missing is not cached");

    // Another build is another path.
    std::fs::write(pkg.join("agent-app.wasm"), "wasm rebuilt").unwrap();
    let rebuilt =
        start_with(move |s| s.server.site_root = Some(site.path().to_path_buf()), server::agent::agent()).await;
    let page = rebuilt.client.get(format!("{}/", rebuilt.url)).send().await.unwrap().text().await.unwrap();
    assert_ne!(bundle_path(&page), pkg_path);

    // A page compressed for a browser that takes it, its security policy still naming its inline
    // scripts' hashes; an event stream never compressed.
    let resp =
        server.client.get(format!("{}/", server.url)).header("accept-encoding", "br, gzip").send().await.unwrap();
    assert_eq!(resp.headers()["content-encoding"], "br");
    let policy = resp.headers()["content-security-policy"].to_str().unwrap();
    assert!(policy.matches("'sha256-").count() >= 2, "{policy}");
    server.fake.push(Reply::text(&"long answer ".repeat(200)));
    let resp = server
        .client
        .post(format!("{}/invocations", server.url))
        .header("accept-encoding", "gzip, br")
        .json(&user_stream("hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream; charset=utf-8");
    assert!(resp.headers().get("content-encoding").is_none(), "streams are not compressed");
}

/// Pages carry a policy that lets exactly their own inline scripts run (by hash) and WebAssembly,
/// plus the usual headers; the browser tests run the app under it.
#[tokio::test]
async fn pages_have_a_content_security_policy_for_their_own_scripts() {
    use base64::Engine;
    use sha2::Digest;
    let server = start().await;
    for path in ["/", "/traces"] {
        let resp = server.client.get(format!("{}{path}", server.url)).send().await.unwrap();
        let headers = resp.headers().clone();
        let html = resp.text().await.unwrap();
        let policy = headers["content-security-policy"].to_str().unwrap().to_string();
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["x-frame-options"], "SAMEORIGIN");
        assert!(policy.contains("script-src 'self' 'wasm-unsafe-eval' 'sha256-"), "{policy}");
        assert!(!policy.contains("'unsafe-inline' ;") && !policy.contains("script-src 'unsafe-inline'"), "{policy}");
        // Every inline script of the page is allowed by its hash, and nothing more.
        let mut hashes = 0;
        for chunk in html.split("<script").skip(1) {
            let (tag, body) = chunk.split_once('>').unwrap();
            if tag.contains(" src=") {
                continue;
            }
            let script = body.split("</script>").next().unwrap();
            let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(script.as_bytes()));
            assert!(policy.contains(&format!("'sha256-{hash}'")), "{path}: {script} not allowed by {policy}");
            hashes += 1;
        }
        assert_eq!(policy.matches("'sha256-").count(), hashes, "{policy}");
    }
    // API answers are not pages: no policy, still no sniffing.
    let resp = server.client.get(format!("{}/health", server.url)).send().await.unwrap();
    assert!(resp.headers().get("content-security-policy").is_none());
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
}

/// The static file service stays in the site folder, however the path is spelled. The requests go
/// out byte for byte over TCP: an HTTP client would normalise the dot segments away.
#[tokio::test]
async fn static_files_cannot_escape_the_site_folder() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = start().await;
    let address = server.url.trim_start_matches("http://").to_string();
    for path in [
        "/pkg/../../Cargo.toml",
        "/pkg/%2e%2e/%2e%2e/Cargo.toml",
        "/pkg/..%2f..%2fCargo.toml",
        "/%2e%2e/%2e%2e/Cargo.toml",
        "/pkg/%2e%2e%5c%2e%2e%5cCargo.toml",
        "/pkg/..%00/Cargo.toml",
        "/pkg/../../../../../../etc/passwd",
        "/pkg//etc/passwd",
    ] {
        let mut tcp = tokio::net::TcpStream::connect(&address).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        tcp.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer);
        let status: u16 = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        assert!(!answer.contains("[workspace]") && !answer.contains("root:x:0:0"), "{path} leaked a file ({status})");
        assert!(
            matches!(status, 400 | 404) || (status == 200 && answer.contains("<title>agent-app</title>")),
            "{path}: {status}"
        );
    }
}

/// Cross-site request forgery: the state-changing routes take JSON only, and refuse a browser's
/// request from another site; API clients (no Origin) and the app's own pages are unaffected.
#[tokio::test]
async fn cross_site_and_non_json_requests_are_refused_before_they_run() {
    let server = start().await;
    let body = json!({"input": [{"role": "user", "content": "hi"}], "background": true}).to_string();
    let send = |path: &str, content_type: Option<&str>, extra: &[(&str, &str)]| {
        let mut req = server.client.post(format!("{}{path}", server.url)).body(body.clone());
        if let Some(content_type) = content_type {
            req = req.header("content-type", content_type);
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    for path in ["/api/chat", "/invocations", "/responses", "/api/feedback"] {
        for content_type in [
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=b"),
            None,
        ] {
            let (status, out) = send(path, content_type, &[]).await;
            assert_eq!(status, 415, "{path} {content_type:?}: {out}");
            assert!(out["detail"].as_str().unwrap().contains("Content-Type: application/json"), "{out}");
        }
    }
    let cross_site = [("sec-fetch-site", "cross-site"), ("origin", "https://evil.example")];
    let same_site = [("sec-fetch-site", "same-site"), ("origin", "https://other-app.example.com")];
    for headers in [&cross_site[..], &same_site[..], &[("origin", "https://evil.example")][..]] {
        let (status, out) = send("/responses", Some("application/json"), headers).await;
        assert_eq!(status, 403, "{headers:?}: {out}");
        assert!(out["detail"].as_str().unwrap().starts_with("Cross-site request refused"), "{out}");
    }
    assert_eq!(server.fake.requests().len(), 0, "nothing ran");
    // The app's own page, and an API client: served.
    server.fake.push(Reply::text("ok")).push(Reply::text("ok"));
    let host = server.url.trim_start_matches("http://").to_string();
    let origin = server.url.clone();
    let own = [("sec-fetch-site", "same-origin"), ("origin", origin.as_str()), ("host", host.as_str())];
    let mut request = json!({"input": [{"role": "user", "content": "hi"}]});
    for headers in [&own[..], &[][..]] {
        let mut req = server.client.post(format!("{}/invocations", server.url)).json(&request);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        assert_eq!(req.send().await.unwrap().status(), 200, "{headers:?}");
    }
    request["stream"] = json!(false);
}

/// Origins the deployment allows (a portal embedding the app) pass.
#[tokio::test]
async fn allowed_origins_may_call() {
    let server =
        start_with(|s| s.server.allowed_origins = vec!["https://portal.example.com".into()], server::agent::agent())
            .await;
    server.fake.push(Reply::text("ok"));
    let resp = server
        .client
        .post(format!("{}/invocations", server.url))
        .header("sec-fetch-site", "cross-site")
        .header("origin", "https://portal.example.com")
        .json(&user("hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// The forwarded identity is read strictly: one key per user whatever the case, a username never
/// taken for someone's email, a malformed or duplicated header refused, never the shared local user.
#[tokio::test]
async fn identity_headers_are_strict_and_normalised() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("chats.db").display());
    let server = start_with(
        |s| {
            s.history.enabled = true;
            s.history.titles = false;
            s.history.database_url = Some(server::config::Secret::new(url));
            s.limits.rate_limit_per_minute = 1;
            s.limits.rate_limit_burst = Some(1);
        },
        server::agent::agent(),
    )
    .await;
    let history = |headers: Vec<(&'static str, Vec<u8>)>| {
        let mut req = server.client.get(format!("{}/api/history", server.url));
        for (k, v) in headers {
            req = req.header(k, reqwest::header::HeaderValue::from_bytes(&v).unwrap());
        }
        async move {
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // Zoë saves a chat (UTF-8 address).
    server.fake.push(Reply::text("Hallo"));
    let mut body = app::conversation::chat_request("zoe-chat", &[], "hi");
    body["chat"] = json!({"id": "zoe-chat", "position": 0, "question_id": "zq", "answer_id": "za"});
    let zoe = "Zoë@Example.com".as_bytes().to_vec();
    let resp = server
        .client
        .post(format!("{}/api/chat", server.url))
        .header("x-forwarded-email", reqwest::header::HeaderValue::from_bytes(&zoe).unwrap())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let _ = resp.text().await;
    for _ in 0..50 {
        if history(vec![("x-forwarded-email", zoe.clone())]).await.1["chats"].as_array().is_some_and(|c| !c.is_empty())
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (status, mine) = history(vec![("x-forwarded-email", "zoë@example.COM".as_bytes().to_vec())]).await;
    assert_eq!((status, mine["chats"][0]["id"].as_str()), (200, Some("zoe-chat")), "one user whatever the case");
    // Not the shared local user's, nor a username's that spells her address.
    assert_eq!(history(vec![]).await.1["chats"], json!([]));
    let posing = history(vec![("x-forwarded-preferred-username", zoe.clone())]).await;
    assert_eq!(posing.1["chats"], json!([]), "{posing:?}");
    // Malformed or duplicated: refused, not downgraded.
    let (status, out) = history(vec![("x-forwarded-email", b"z\xffe@example.com".to_vec())]).await;
    assert_eq!(status, 400, "{out}");
    let (status, out) =
        history(vec![("x-forwarded-email", b"a@x.com".to_vec()), ("x-forwarded-email", zoe.clone())]).await;
    assert_eq!(status, 400, "{out}");
    assert!(out["detail"].as_str().unwrap().contains("more than one"), "{out}");
    // One rate-limit bucket per user: a different case is the same user (the chat used the one
    // request a minute).
    let resp = server
        .client
        .post(format!("{}/invocations", server.url))
        .header("x-forwarded-email", reqwest::header::HeaderValue::from_bytes("ZOË@EXAMPLE.COM".as_bytes()).unwrap())
        .json(&user("again"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
}

/// A request refused before its body was read says `Connection: close`, and the client's next
/// request (on a new connection) works: it is not sent down a connection the server is closing.
#[tokio::test]
async fn a_refusal_with_an_unread_body_closes_the_connection_cleanly() {
    let server = start_with(
        |s| {
            s.limits.rate_limit_per_minute = 1;
            s.limits.rate_limit_burst = Some(1);
        },
        server::agent::agent(),
    )
    .await;
    let big = json!({"input": [{"role": "user", "content": "x".repeat(2_000_000)}]});
    server.fake.push(Reply::text("ok")).push(Reply::text("ok"));
    let post = |who: &'static str, body: &Value| {
        server.client.post(format!("{}/invocations", server.url)).header("x-forwarded-email", who).json(body).send()
    };
    assert_eq!(post("ana@example.com", &user("hi")).await.unwrap().status(), 200);
    let refused = post("ana@example.com", &big).await.unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers().get("connection").map(|v| v.to_str().unwrap()), Some("close"));
    let _ = refused.text().await;
    let next = post("bob@example.com", &user("hi")).await.expect("the next request goes through");
    assert_eq!(next.status(), 200);
}

/// Slow and silent clients: a head not sent in time, a body trickling in, an idle kept-alive
/// connection are all closed, and past the connection cap new connections are closed at once;
/// `/health` keeps answering throughout.
#[tokio::test]
async fn slow_clients_cannot_hold_the_server() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let limits = server::listener::ConnectionLimits {
        header_timeout: std::time::Duration::from_millis(800),
        body_timeout: std::time::Duration::from_millis(800),
        max_body_bytes: 1024 * 1024,
        max_connections: 24,
        ..server::listener::ConnectionLimits::default()
    };
    let server = crate::common::start_with_limits(limits).await;
    let addr = server.url.trim_start_matches("http://").to_string();
    // Silent connections (more than the cap), and slow heads: a header line every 300 ms.
    let mut silent = Vec::new();
    for _ in 0..30 {
        silent.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let slow_head = tokio::spawn({
        let addr = addr.clone();
        async move {
            let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let started = std::time::Instant::now();
            tcp.write_all(b"GET /health HTTP/1.1\r\n").await.unwrap();
            for i in 0..20 {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                if tcp.write_all(format!("X-Slow-{i}: 1\r\n").as_bytes()).await.is_err() {
                    break;
                }
            }
            let mut rest = Vec::new();
            let _ = tcp.read_to_end(&mut rest).await;
            started.elapsed()
        }
    });
    // /health answers while they hold their connections (once the silent ones beyond the cap are
    // closed and the rest time out).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let client = reqwest::Client::builder().timeout(std::time::Duration::from_millis(500)).build().unwrap();
        if let Ok(resp) = client.get(format!("{}/health", server.url)).send().await
            && resp.status() == 200
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "/health did not answer while slow clients held connections");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Every silent connection is closed by the server within the header timeout (plus slack).
    for mut tcp in silent {
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(std::time::Duration::from_secs(3), tcp.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "a silent connection stayed open: {read:?}");
    }
    let held = slow_head.await.unwrap();
    assert!(held < std::time::Duration::from_secs(3), "a slow head held its connection for {held:?}");
    // A body trickling in is cut off with 408.
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tcp.write_all(
        b"POST /invocations HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    let started = std::time::Instant::now();
    for _ in 0..20 {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        if tcp.write_all(b" ").await.is_err() {
            break;
        }
        let mut buf = [0u8; 512];
        if let Ok(Ok(n)) = tokio::time::timeout(std::time::Duration::from_millis(10), tcp.read(&mut buf)).await {
            answer.extend_from_slice(&buf[..n]);
            if n == 0 || answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?} after {:?}", started.elapsed());
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
}

/// Per-user caps: background responses running, request bytes in flight, bytes stored; each
/// refusal in the API's shape, and other users unaffected.
#[tokio::test]
async fn each_user_has_caps_on_running_tasks_bytes_in_flight_and_storage() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("chats.db").display());
    let server = start_with(
        |s| {
            s.history.enabled = true;
            s.history.titles = false;
            s.history.database_url = Some(server::config::Secret::new(url));
            s.limits.max_background_tasks_per_user = 2;
            s.limits.max_stored_bytes_per_user = 50_000;
        },
        server::agent::agent(),
    )
    .await;
    let post = |who: &'static str, body: Value| {
        server.client.post(format!("{}/responses", server.url)).header("x-forwarded-email", who).json(&body).send()
    };
    // Two hour-long tasks run; a third is refused; another user's starts.
    for _ in 0..3 {
        server.fake.push(Reply::Hang { chunks: vec!["thinking".into()] });
    }
    let background = json!({"input": [{"role": "user", "content": "think"}], "background": true});
    let mut ids = Vec::new();
    for _ in 0..2 {
        let resp = post("ana@example.com", background.clone()).await.unwrap();
        assert_eq!(resp.status(), 200);
        ids.push(resp.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string());
    }
    let refused = post("ana@example.com", background.clone()).await.unwrap();
    assert_eq!(refused.status(), 429);
    let detail = refused.json::<Value>().await.unwrap()["detail"].as_str().unwrap().to_string();
    assert!(detail.contains("AGENT_MAX_BACKGROUND_TASKS_PER_USER"), "{detail}");
    assert_eq!(post("bob@example.com", background.clone()).await.unwrap().status(), 200);
    // Storage: a big stored task takes Ana past her quota; new ones are refused until she deletes.
    for id in &ids {
        let cancel = server
            .client
            .post(format!("{}/responses/{id}/cancel", server.url))
            .header("x-forwarded-email", "ana@example.com");
        assert_eq!(cancel.send().await.unwrap().status(), 200);
    }
    server.fake.push(Reply::text("ok"));
    let big = json!({"input": [{"role": "user", "content": "x".repeat(60_000)}], "background": true});
    // Cancelled tasks stop a moment later: until then they still count.
    let mut resp = post("ana@example.com", big.clone()).await.unwrap();
    for _ in 0..100 {
        if resp.status() != 429 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        resp = post("ana@example.com", big.clone()).await.unwrap();
    }
    assert_eq!(resp.status(), 200);
    // (Once her running tasks have ended: until then the running cap answers first.)
    let mut refused = post("ana@example.com", background.clone()).await.unwrap();
    for _ in 0..100 {
        if refused.status() != 429 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        refused = post("ana@example.com", background.clone()).await.unwrap();
    }
    assert_eq!(refused.status(), 413);
    let detail = refused.json::<Value>().await.unwrap()["detail"].as_str().unwrap().to_string();
    assert!(
        detail.starts_with("Storage quota reached") && detail.contains("AGENT_MAX_STORED_BYTES_PER_USER"),
        "{detail}"
    );
}

/// Bytes in flight: a user holding a large request open cannot send another large one at once.
#[tokio::test]
async fn a_user_cannot_hold_unbounded_request_memory() {
    let limits = server::listener::ConnectionLimits {
        max_inflight_bytes_per_user: 1_000_000,
        ..server::listener::ConnectionLimits::default()
    };
    let server = crate::common::start_with_limits(limits).await;
    server.fake.push(Reply::Hang { chunks: vec!["slow".into()] });
    let big = json!({"input": [{"role": "user", "content": "x".repeat(700_000)}]});
    let first = {
        let req = server
            .client
            .post(format!("{}/invocations", server.url))
            .header("x-forwarded-email", "ana@example.com")
            .json(&big);
        tokio::spawn(async move { req.send().await.map(|r| r.status().as_u16()) })
    };
    // Wait until the model has the first request (its body is being handled).
    for _ in 0..100 {
        if !server.fake.requests().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let second = server
        .client
        .post(format!("{}/invocations", server.url))
        .header("x-forwarded-email", "ana@example.com")
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 429);
    assert!(
        second.json::<Value>().await.unwrap()["detail"].as_str().unwrap().contains("AGENT_MAX_INFLIGHT_BYTES_PER_USER")
    );
    server.fake.push(Reply::text("ok"));
    let other = server
        .client
        .post(format!("{}/invocations", server.url))
        .header("x-forwarded-email", "bob@example.com")
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200, "another user is unaffected");
    first.abort();
}
