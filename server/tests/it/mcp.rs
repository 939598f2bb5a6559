//! MCP tools end to end, against real MCP servers from the official Python SDK (PyPI `mcp`,
//! `tests/mcp/test_server.py`): one over Streamable HTTP (bearer tokens checked), one over stdio, and
//! one that is down. `TEST_MCP_PYTHON` names a Python with `mcp` installed (scripts/test.sh makes
//! one); without it these tests are skipped, unless `AGENT_REQUIRE_MCP=1`.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{TestServer, serve_state, test_settings, tool_names, tool_outputs, user};
use fake_model::{FakeModel, Reply};
use serde_json::{Value, json};
use server::AppState;
use server::config::Secret;
use server::databricks::auth::WorkspaceAuth;
use server::runner::Runner;
use server::tools::mcp::{McpHub, McpServer, McpTimeouts};

pub(crate) const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp/test_server.py");

pub(crate) fn python() -> Option<String> {
    match std::env::var("TEST_MCP_PYTHON") {
        Ok(python) => Some(python),
        Err(_) => {
            assert!(std::env::var("AGENT_REQUIRE_MCP").as_deref() != Ok("1"), "TEST_MCP_PYTHON is required");
            eprintln!("TEST_MCP_PYTHON not set: skipped");
            None
        }
    }
}

/// The HTTP test server, killed on drop.
struct HttpServer {
    child: Child,
    url: String,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_http_server(python: &str) -> HttpServer {
    let port = free_port();
    let child = Command::new(python)
        .args([SCRIPT, "http", &port.to_string(), "dapi-app=app,user-token-alice=alice"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the MCP test server starts");
    let server = HttpServer { child, url: format!("http://127.0.0.1:{port}/mcp") };
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the MCP test server did not listen on {port}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The app with these MCP servers; `workspace` stands for the Databricks workspace (its host is the
/// MCP server's, so "app" credentials are its token).
async fn app_with(fake: FakeModel, servers: Vec<McpServer>, workspace: Option<WorkspaceAuth>) -> TestServer {
    let mut state = AppState::new(test_settings(&fake), server::agent::agent()).unwrap();
    let timeouts = McpTimeouts {
        connect: Duration::from_secs(10),
        read: Duration::from_secs(2),
        tools_ttl: Duration::from_secs(60),
    };
    state.runner = Arc::new(Runner::new(
        state.runner.agent.clone(),
        state.runner.model.clone(),
        state.runner.limits.clone(),
        Arc::new(McpHub::new(servers, workspace.clone(), timeouts)),
    ));
    state.workspace = workspace;
    serve_state(fake, state).await
}

#[tokio::test]
async fn remote_and_local_mcp_tools_are_called_through_invocations() {
    let Some(python) = python() else { return };
    let http = start_http_server(&python).await;
    let host = http.url.trim_end_matches("/mcp").to_string();
    let workspace = WorkspaceAuth::with_token(&host, Secret::new("dapi-app"));
    let servers = vec![
        // On the workspace's host: signed with the app's credential.
        McpServer::http("calc", &http.url),
        McpServer::stdio("local", &python, [SCRIPT, "stdio"]),
    ];
    let app = app_with(FakeModel::start().await, servers, Some(workspace)).await;
    app.fake
        .push(Reply::tool_call("add", r#"{"a": 2, "b": 40}"#))
        .push(Reply::tool_call("whoami", "{}"))
        .push(Reply::tool_call("local__add", r#"{"a": 1, "b": 1}"#))
        .push(Reply::tool_call("local__whoami", "{}"))
        .push(Reply::tool_call("fail", "{}"))
        .push(Reply::text("Done."));
    let (status, body) = app.post("/invocations", user("use the tools")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["output"].as_array().unwrap().last().unwrap()["content"][0]["text"], "Done.");
    let outputs = tool_outputs(&body);
    assert_eq!(outputs[0], "42");
    assert_eq!(outputs[1], "app", "the HTTP server saw the app's token");
    assert_eq!(outputs[2], "2");
    assert_eq!(outputs[3], "stdio");
    assert!(
        outputs[4].starts_with("Error: tool `fail` failed") && outputs[4].contains("always fails"),
        "{}",
        outputs[4]
    );
    assert!(body.get("custom_outputs").and_then(|c| c.get("mcp_unavailable")).is_none(), "{body}");

    // The model saw every tool once, clashing names prefixed with their server, schemas included.
    let request = &app.fake.requests()[0];
    let names = tool_names(request);
    for name in ["get_current_time", "add", "whoami", "calc__get_current_time", "local__add", "local__whoami"] {
        assert!(names.contains(&name.to_string()), "{name} in {names:?}");
    }
    let add = request["tools"].as_array().unwrap().iter().find(|t| t["function"]["name"] == "add").unwrap();
    assert_eq!(add["function"]["description"], "Add two integers.");
    assert_eq!(add["function"]["parameters"]["properties"]["a"]["type"], "integer");
}

#[tokio::test]
async fn a_server_acting_for_the_user_gets_the_users_token_and_nothing_without_it() {
    let Some(python) = python() else { return };
    let http = start_http_server(&python).await;
    let host = http.url.trim_end_matches("/mcp").to_string();
    let workspace = WorkspaceAuth::with_token(&host, Secret::new("dapi-app"));
    let servers = vec![McpServer::http("mine", &http.url).on_behalf_of_user()];
    let app = app_with(FakeModel::start().await, servers, Some(workspace)).await;

    app.fake.push(Reply::tool_call("whoami", "{}")).push(Reply::text("You are alice."));
    let response = app
        .client
        .post(format!("{}/invocations", app.url))
        .header("x-forwarded-access-token", "user-token-alice")
        .header("x-forwarded-email", "alice@example.com")
        .json(&user("who am I?"))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(tool_outputs(&body), vec!["alice"], "{body}");

    // Without the user's token the server is left out (never called as the app), and the client is told.
    app.fake.push(Reply::text("I cannot check that right now."));
    let (status, body) = app.post("/invocations", user("who am I?")).await;
    assert_eq!(status, 200);
    let missing = &body["custom_outputs"]["mcp_unavailable"][0];
    assert_eq!(missing["server"], "mine");
    assert!(missing["reason"].as_str().unwrap().contains("x-forwarded-access-token"), "{missing}");
    let last = app.fake.requests().last().cloned().unwrap();
    assert!(tool_names(&last).iter().all(|n| n != "whoami"));
}

#[tokio::test]
async fn a_dead_server_is_left_out_and_the_turn_goes_on() {
    let Some(python) = python() else { return };
    let http = start_http_server(&python).await;
    let dead = format!("http://127.0.0.1:{}/mcp", free_port());
    let servers = vec![
        McpServer::http("calc", &http.url).auth(server::tools::mcp::McpAuth::None),
        McpServer::http("dead", &dead),
    ];
    // The HTTP server wants a token; as "none" it refuses: two unavailable servers, two reasons.
    let app = app_with(FakeModel::start().await, servers, None).await;
    app.fake.push(Reply::tool_call("get_current_time", "{}")).push(Reply::text("It is noon."));
    let (status, body) = app.post("/invocations", user("time?")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(tool_outputs(&body).len(), 1, "the agent's own tool still works");
    let missing: Vec<&str> = body["custom_outputs"]["mcp_unavailable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["server"].as_str().unwrap())
        .collect();
    assert_eq!(missing, vec!["calc", "dead"]);
    // The model was told, so it can say why.
    let system = app.fake.requests()[0]["messages"][0]["content"].as_str().unwrap().to_string();
    assert!(system.contains("the tools of calc, dead are unavailable"), "{system}");

    // The chat page shows it as a notice.
    app.fake.push(Reply::text("Hello."));
    let stream = app.stream("/api/chat", user("hi"), &[]).await;
    let notice = stream.json().into_iter().find(|e| e["type"] == "agent_app.notice").expect("a notice");
    assert!(notice["message"].as_str().unwrap().contains("dead"), "{notice}");
    // API streams carry no notices (the facts are in custom_outputs).
    app.fake.push(Reply::text("Hello."));
    let stream = app.stream("/invocations", crate::common::user_stream("hi"), &[]).await;
    assert!(stream.json().iter().all(|e| e["type"] != "agent_app.notice"));
}

#[tokio::test]
async fn slow_mcp_tools_time_out_and_a_restarted_stdio_server_is_used_again() {
    let Some(python) = python() else { return };
    // A marker argument so that only this test's process is killed below.
    let servers = vec![McpServer::stdio("local", &python, [SCRIPT, "stdio", "restart-test"])];
    let app = app_with(FakeModel::start().await, servers, None).await;
    app.fake.push(Reply::tool_call("slow", r#"{"seconds": 30}"#)).push(Reply::text("Too slow."));
    let started = std::time::Instant::now();
    let (status, body) = app.post("/invocations", user("wait")).await;
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_secs(15));
    let output = &tool_outputs(&body)[0];
    assert!(output.contains("did not finish within 2s"), "{output}");

    // Kill the stdio server's process: the next request starts a new one.
    let killed = Command::new("pkill").args(["-f", "stdio restart-test"]).status().unwrap();
    assert!(killed.success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.fake.push(Reply::tool_call("add", r#"{"a": 20, "b": 22}"#)).push(Reply::text("42."));
    let (status, body) = app.post("/invocations", user("add")).await;
    assert_eq!(status, 200);
    assert_eq!(tool_outputs(&body), vec!["42"], "{body}");
}

#[tokio::test]
async fn servers_come_from_the_config_file_too() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mcp.json");
    std::fs::write(
        &config,
        json!({"mcpServers": {"files": {"command": python, "args": [SCRIPT, "stdio"]}}}).to_string(),
    )
    .unwrap();
    let fake = FakeModel::start().await;
    let mut settings = test_settings(&fake);
    settings.mcp.config = Some(config);
    let state = AppState::new(settings, server::agent::agent()).unwrap();
    let app = serve_state(fake, state).await;
    app.fake.push(Reply::tool_call("add", r#"{"a": 3, "b": 4}"#)).push(Reply::text("7."));
    let (status, body) = app.post("/invocations", user("add")).await;
    assert_eq!(status, 200);
    assert_eq!(tool_outputs(&body), vec!["7"]);
    let info: Value = app.client.get(format!("{}/agent/info", app.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(info["mcp_servers"][0]["name"], "files", "{info}");

    // A broken file stops the start with the reason.
    std::fs::write(dir.path().join("bad.json"), r#"{"mcpServers": {"x": {}}}"#).unwrap();
    let mut settings = test_settings(&app.fake);
    settings.mcp.config = Some(dir.path().join("bad.json"));
    let error = AppState::new(settings, server::agent::agent()).err().unwrap();
    assert!(error.contains("bad.json") && error.contains("exactly one of"), "{error}");
}

/// MCP tools can be made to wait for the user's approval by name pattern (`AGENT_REQUIRE_APPROVAL`
/// or `Agent::require_approval`): the approved call then goes to the MCP server.
#[tokio::test]
async fn mcp_tools_matching_an_approval_pattern_wait_for_the_user() {
    let Some(python) = python() else { return };
    let fake = FakeModel::start().await;
    let mut settings = test_settings(&fake);
    settings.agent.require_approval = vec!["local__*".into()];
    let mut state = AppState::new(settings, server::agent::agent()).unwrap();
    let timeouts = McpTimeouts {
        connect: Duration::from_secs(10),
        read: Duration::from_secs(5),
        tools_ttl: Duration::from_secs(60),
    };
    state.runner = Arc::new(Runner::new(
        state.runner.agent.clone(),
        state.runner.model.clone(),
        state.runner.limits.clone(),
        Arc::new(McpHub::new(vec![McpServer::stdio("local", &python, [SCRIPT, "stdio"])], None, timeouts)),
    ));
    let app = serve_state(fake, state).await;
    // `local__*` covers the server's tools whatever name the model sees (`add`: no clash here).
    app.fake.push(Reply::tool_call("add", r#"{"a": 20, "b": 22}"#));
    let question = serde_json::json!({"role": "user", "content": "add"});
    let (status, first) = app.post("/invocations", serde_json::json!({"input": [question]})).await;
    assert_eq!(status, 200, "{first}");
    assert!(tool_outputs(&first).is_empty(), "not run before approval: {first}");
    let request =
        first["output"].as_array().unwrap().iter().find(|i| i["type"] == "mcp_approval_request").unwrap().clone();
    assert_eq!(request["name"], "add");

    app.fake.push(Reply::text("It is 42."));
    let approval =
        serde_json::json!({"type": "mcp_approval_response", "approval_request_id": request["id"], "approve": true});
    let (status, body) = app.post("/invocations", serde_json::json!({"input": [question, request, approval]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(tool_outputs(&body), ["42"], "the MCP server ran the approved call");
    // Tools that match no pattern run as before.
    app.fake.push(Reply::tool_call("get_current_time", "{}")).push(Reply::text("ok"));
    let (_, body) = app.post("/invocations", user("time?")).await;
    assert_eq!(tool_outputs(&body).len(), 1, "{body}");
}
