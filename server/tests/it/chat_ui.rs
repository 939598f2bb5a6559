//! The chat UI's server side: its stream route, its config server function and the rendered page.

use crate::common::*;
use app::conversation::{Answer, AnswerStatus, Block, Exchange, chat_request};
use fake_model::Reply;
use serde_json::{Value, json};

#[tokio::test]
async fn the_chat_stream_is_the_responses_stream_always_streamed_with_a_trace_id() {
    let server = start().await;
    server.fake.push(Reply::tool_call("get_current_time", "{}"));
    server.fake.push(Reply::text("It is noon."));
    // What the page sends: no `stream` flag, a conversation id.
    let body = chat_request("chat-1", &[], "What time is it?");
    let s = server.stream("/api/chat", body, &[]).await;
    assert_eq!(s.status, 200);
    assert!(s.content_type.as_deref().unwrap().starts_with("text/event-stream"));
    assert_eq!(s.data.last().unwrap(), "[DONE]");

    // The page's own reducer makes the same answer of it that the user sees.
    let mut answer = Answer::default();
    for frame in s.frames() {
        answer.apply(frame);
    }
    assert_eq!(answer.status, AnswerStatus::Done);
    assert!(answer.trace_id.as_deref().is_some_and(|t| t.starts_with("tr-")));
    let Block::Tool(call) = &answer.blocks[0] else { panic!("{:?}", answer.blocks) };
    assert_eq!(call.name, "get_current_time");
    assert!(call.output.is_some());
    assert_eq!(answer.text(), "It is noon.");

    // The next turn carries this one as history, and the server accepts it.
    server.fake.push(Reply::text("Later."));
    let previous = [Exchange { user: "What time is it?".into(), answer }];
    let s = server.stream("/api/chat", chat_request("chat-1", &previous, "And later?"), &[]).await;
    assert_eq!(s.text(), "Later.");
    let sent = server.fake.requests().last().unwrap().clone();
    let roles: Vec<&str> = sent["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool", "assistant", "user"]);
}

#[tokio::test]
async fn the_chat_stream_refuses_bad_input_like_the_api() {
    let server = start().await;
    let (status, _, body) = server.post_raw("/api/chat", "{not json").await;
    assert_eq!(status, 400);
    assert!(body["detail"].as_str().unwrap().starts_with("Invalid JSON in request body"), "{body}");
    let (status, body) = server.post("/api/chat", json!({"input": [{"role": "nobody", "content": "x"}]})).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn the_config_names_the_forwarded_user_the_model_and_the_greeting() {
    let server = start_with(|s| s.server.chat_greeting = "Hello from the test".into(), server::agent::agent()).await;
    let config =
        server.config(&[("x-forwarded-email", "ana@example.com"), ("x-forwarded-preferred-username", "ana")]).await;
    assert_eq!(config["greeting"], "Hello from the test");
    assert_eq!(config["user"]["email"], "ana@example.com");
    assert_eq!(config["user"]["preferred_username"], "ana");
    assert_eq!(config["backend"], "openai-compatible");
    assert_eq!(config["chat_history"], false);
    assert_eq!(config["suggestions"].as_array().unwrap().len(), 2);

    // Without forwarded headers: nobody in particular (the page says "local user").
    let config = server.config(&[]).await;
    assert_eq!(config["user"]["email"], Value::Null);
}

#[tokio::test]
async fn the_page_is_rendered_on_the_server() {
    let server = start_with(|s| s.server.chat_greeting = "Greetings, tester".into(), server::agent::agent()).await;
    let resp = server
        .client
        .get(format!("{}/", server.url))
        .header("x-forwarded-email", "ana@example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    assert!(html.contains("<title>agent-app</title>"), "{html}");
    assert!(html.contains("Greetings, tester"), "{html}");
    assert!(html.contains("ana@example.com"), "{html}");
    assert!(html.contains(&format!("{}/agent-app.js", crate::api::bundle_path(&html))));
    assert!(html.contains("aria-label=\"Message\""));
}

/// With chat history on, the chat's answer is a background response, and its stream still ends
/// with the trace id (the page attaches votes to it).
#[tokio::test]
async fn a_saved_chats_stream_ends_with_its_trace_id() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("chats.db").display());
    let server = crate::common::start_with(
        move |s| {
            s.history.enabled = true;
            s.history.titles = false;
            s.history.database_url = Some(server::config::Secret::new(db));
        },
        server::agent::agent(),
    )
    .await;
    server.fake.push(fake_model::Reply::text("Hi."));
    let mut body = chat_request("chat-1", &[], "Hello");
    body["chat"] = json!({"id": "chat-1", "position": 0, "question_id": "q-1", "answer_id": "a-1"});
    let s = server.stream("/api/chat", body, &[]).await;
    assert_eq!(s.data.last().unwrap(), "[DONE]");
    let last = &s.json()[s.json().len() - 1];
    let trace_id = last["trace_id"].as_str().expect("the last frame names the trace");
    assert!(trace_id.starts_with("tr-"));
    let created = s.json().into_iter().find(|e| e["type"] == "response.created").unwrap();
    assert_eq!(created["response"]["metadata"]["trace_id"], trace_id);
    assert_eq!(created["response"]["background"], true);
}

/// On-behalf-of: the configuration names the scopes the user's token lacks for the tools that act as
/// the user (a Genie space's MCP server here, plus the agent's own `user_scopes`).
#[tokio::test]
async fn the_config_names_the_scopes_the_users_token_lacks() {
    use base64::Engine;
    let jwt = |claims: &str| format!("h.{}.s", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims));
    let dir = tempfile::tempdir().unwrap();
    let mcp = dir.path().join("mcp.json");
    std::fs::write(
        &mcp,
        r#"{"mcpServers": {"sales": {"databricks": "genie/01f0", "auth": "user"},
        "wiki": {"url": "https://wiki.example.com/mcp", "auth": "user", "scopes": ["wiki.read"]},
        "code": {"databricks": "functions/system/ai"}}}"#,
    )
    .unwrap();
    let agent = server::agent::agent().user_scopes(["sql"]);
    let server = start_with(
        |s| {
            s.mcp.config = Some(mcp.clone());
            s.on_databricks_apps = true;
        },
        agent,
    )
    .await;
    let config = server.config(&[("x-forwarded-access-token", &jwt(r#"{"scope": "sql offline_access"}"#))]).await;
    let status = &config["user_authorization"];
    // The app's own MCP server (code) needs nothing from the user.
    assert_eq!(status["required_scopes"], json!(["genie", "sql", "wiki.read"]), "{config}");
    assert_eq!(status["missing_scopes"], json!(["genie", "wiki.read"]));
    let config = server.config(&[("x-forwarded-access-token", &jwt(r#"{"scp": ["genie", "sql", "wiki"]}"#))]).await;
    assert_eq!(config["user_authorization"]["missing_scopes"], json!([]), "`wiki` grants `wiki.read`");
    // Behind the Apps proxy without a user token (user authorization off): all of them, said so.
    let config = server.config(&[("x-forwarded-email", "ana@example.com")]).await;
    assert_eq!(config["user_authorization"]["no_token"], true);
    assert_eq!(config["user_authorization"]["missing_scopes"].as_array().unwrap().len(), 3);
    // The rendered page carries the banner.
    let page = server
        .client
        .get(format!("{}/", server.url))
        .header("x-forwarded-access-token", jwt(r#"{"scope": "sql"}"#))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#"<strong class="missing-scopes">genie, wiki.read"#), "{page}");
}
