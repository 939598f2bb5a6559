//! Multi-agent over HTTP: hand-offs (the other agent takes over, items name who speaks), another
//! agent as a tool (its own loop on the same model), and an agent served by another app as a tool.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common::*;
use fake_model::Reply;
use serde_json::{Value, json};
use server::Agent;
use server::tools::agents::RemoteAgent;
use server::tools::{NoArgs, tool};

fn items(body: &Value) -> Vec<Value> {
    body["output"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_handoff_gives_the_conversation_to_the_other_agent() {
    let refunds = Arc::new(AtomicUsize::new(0));
    let counter = refunds.clone();
    let billing = Agent::new("Billing")
        .instructions("You handle billing.")
        .handoff_description("questions about invoices and refunds")
        .tool(tool("refund", "Refunds the last invoice.", move |_: NoArgs| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                Ok::<_, String>("refunded")
            }
        }));
    let triage = Agent::new("Triage").instructions("Route the user.").model("m").handoff(billing);
    let server = start_with(|_| {}, triage).await;
    server
        .fake
        .push(Reply::tool_call("transfer_to_billing", "{}"))
        .push(Reply::tool_call("refund", "{}"))
        .push(Reply::text("Your refund is on its way."));
    let stream = server.stream("/responses", user_stream("I want my money back"), &[]).await;
    assert_eq!(stream.status, 200);
    assert_eq!(refunds.load(Ordering::SeqCst), 1);

    let requests = server.fake.requests();
    let first_tools = tool_names(&requests[0]);
    assert!(first_tools.contains(&"transfer_to_billing".to_string()), "{first_tools:?}");
    assert!(!first_tools.contains(&"refund".to_string()));
    let transfer = requests[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["function"]["name"] == "transfer_to_billing")
        .unwrap();
    assert!(transfer["function"]["description"].as_str().unwrap().contains("invoices and refunds"));
    // After the hand-off: Billing's instructions and tools, the conversation so far.
    assert_eq!(requests[1]["messages"][0], json!({"role": "system", "content": "You handle billing."}));
    assert_eq!(tool_names(&requests[1]), ["refund"]);
    assert_eq!(requests[1]["messages"][1]["content"], "I want my money back");

    // Every message and call says which agent wrote it, from the first event on.
    let done = stream.done_items();
    let speakers: Vec<(String, String)> = done
        .iter()
        .filter(|i| i["type"] == "function_call" || i["type"] == "message")
        .map(|i| (i["type"].as_str().unwrap().to_string(), i["agent"].as_str().unwrap_or("?").to_string()))
        .collect();
    assert_eq!(
        speakers,
        [
            ("function_call".into(), "Triage".into()),
            ("function_call".into(), "Billing".into()),
            ("message".into(), "Billing".into())
        ]
    );
    let added = stream
        .json()
        .into_iter()
        .find(|e| e["type"] == "response.output_item.added" && e["item"]["type"] == "message")
        .unwrap();
    assert_eq!(added["item"]["agent"], "Billing");
    assert_eq!(stream.text(), "Your refund is on its way.");
}

#[tokio::test]
async fn single_agents_do_not_name_themselves() {
    let server = start().await;
    server.fake.push(Reply::text("hi"));
    let (_, body) = server.post("/responses", user("hello")).await;
    assert!(body["output"][0].get("agent").is_none(), "{body}");
}

#[tokio::test]
async fn another_agent_runs_as_a_tool() {
    let researcher = Agent::new("Researcher").instructions("Research carefully.");
    let root =
        Agent::new("Writer").instructions("Write.").model("m").tool(researcher.as_tool("researcher", "Finds facts."));
    let server = start_with(|_| {}, root).await;
    server
        .fake
        .push(Reply::tool_call("researcher", r#"{"input": "What is the answer?"}"#))
        .push(Reply::text("The answer is 42."))
        .push(Reply::text("Research says: 42."));
    let (status, body) = server.post("/responses", user("write it up")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(tool_outputs(&body), ["The answer is 42."]);
    assert_eq!(items(&body).last().unwrap()["content"][0]["text"], "Research says: 42.");
    // The researcher ran its own loop: its instructions, the task as its question, on the same model.
    let nested = &server.fake.requests()[1];
    assert_eq!(nested["messages"][0]["content"], "Research carefully.");
    assert_eq!(nested["messages"][1]["content"], "What is the answer?");
    assert_eq!(nested["model"], "m");
}

#[tokio::test]
async fn an_agent_served_elsewhere_is_called_as_a_tool() {
    let remote = start().await;
    remote.fake.push(Reply::text("Hello from the remote agent."));
    let root = Agent::new("Root")
        .instructions("Delegate.")
        .model("m")
        .tool(RemoteAgent::url("ask_remote", "Asks the remote agent.", &remote.url).into_tool())
        .tool(RemoteAgent::url("ask_dead", "Asks an agent that is down.", "http://127.0.0.1:9").into_tool());
    let server = start_with(|_| {}, root).await;
    server
        .fake
        .push(Reply::tool_call("ask_remote", r#"{"input": "Say hello"}"#))
        .push(Reply::tool_call("ask_dead", r#"{"input": "Anyone?"}"#))
        .push(Reply::text("Done."));
    let (status, body) = server.post("/responses", user("delegate")).await;
    assert_eq!(status, 200, "{body}");
    let outputs = tool_outputs(&body);
    assert_eq!(outputs[0], "Hello from the remote agent.");
    assert!(outputs[1].starts_with("Error: tool `ask_dead` failed"), "{}", outputs[1]);
    assert_eq!(remote.fake.requests()[0]["messages"].as_array().unwrap().last().unwrap()["content"], "Say hello");
    assert_eq!(items(&body).last().unwrap()["content"][0]["text"], "Done.");
}

/// A stand-in workspace: the apps API names the app's URL (another agent-app), and a serving
/// endpoint answers like Model Serving; both check the workspace credential.
#[tokio::test]
async fn databricks_apps_and_serving_endpoints_are_called_with_the_workspace_credential() {
    use axum::extract::State;
    use axum::http::HeaderMap;
    use axum::routing::{get, post};

    let app = start().await;
    app.fake.push(Reply::text("Hello from the app."));
    let seen: Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let workspace = axum::Router::new()
        .route(
            "/api/2.0/apps/{name}",
            get(|State((url, seen)): State<(String, Arc<std::sync::Mutex<Vec<String>>>)>, headers: HeaderMap| async move {
                seen.lock().unwrap().push(headers["authorization"].to_str().unwrap().to_string());
                axum::Json(json!({"name": "support-agent", "url": url}))
            }),
        )
        .route(
            "/serving-endpoints/{name}/invocations",
            post(|State((_, seen)): State<(String, Arc<std::sync::Mutex<Vec<String>>>)>, headers: HeaderMap| async move {
                seen.lock().unwrap().push(headers["authorization"].to_str().unwrap().to_string());
                axum::Json(json!({"output": [{"type": "message", "role": "assistant",
                    "content": [{"type": "output_text", "text": "Hello from the endpoint."}]}]}))
            }),
        )
        .with_state((app.url.clone(), seen.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, workspace).await.unwrap() });

    let root = Agent::new("Root")
        .instructions("Delegate.")
        .model("m")
        .tool(RemoteAgent::app("ask_app", "Asks the support app.", "apps/support-agent").into_tool())
        .tool(RemoteAgent::serving_endpoint("ask_endpoint", "Asks the endpoint.", "agents_support").into_tool());
    let fake = fake_model::FakeModel::start().await;
    let mut settings = test_settings(&fake);
    settings.databricks.host = Some(host.clone());
    settings.databricks.token = Some(server::config::Secret::new("dapi-app-token"));
    settings.model.openai_base_url = None;
    let mut state = server::AppState::new(settings, root).unwrap();
    // The model stays the scripted one; the workspace is the stand-in.
    crate::common::answer_with(&mut state, &fake);
    let server = serve_state(fake, state).await;
    server
        .fake
        .push(Reply::tool_call("ask_app", r#"{"input": "hi app"}"#))
        .push(Reply::tool_call("ask_endpoint", r#"{"input": "hi endpoint"}"#))
        .push(Reply::text("Both answered."));
    let (status, body) = server.post("/responses", user("ask both")).await;
    assert_eq!(status, 200, "{body}");
    let outputs = tool_outputs(&body);
    assert_eq!(outputs, ["Hello from the app.", "Hello from the endpoint."]);
    assert_eq!(*seen.lock().unwrap(), ["Bearer dapi-app-token", "Bearer dapi-app-token"]);
}

/// The Billing agent of the hand-off tests: its refund waits for the user's approval.
fn billing_with_approval(refunds: Arc<AtomicUsize>) -> Agent {
    Agent::new("Billing")
        .instructions("You handle billing.")
        .tool(tool("refund", "Refunds the last invoice.", move |_: NoArgs| {
            let refunds = refunds.clone();
            async move {
                refunds.fetch_add(1, Ordering::SeqCst);
                Ok::<_, String>("refunded")
            }
        }))
        .require_approval(["refund"])
}

#[tokio::test]
async fn approvals_set_on_the_handoff_target_apply() {
    let refunds = Arc::new(AtomicUsize::new(0));
    let triage = Agent::new("Triage").instructions("Route the user.").handoff(billing_with_approval(refunds.clone()));
    let server = start_with(|_| {}, triage).await;
    server.fake.push(Reply::tool_call("transfer_to_billing", "{}")).push(Reply::tool_call("refund", "{}"));
    let question = json!({"role": "user", "content": "I want my money back"});
    let (status, first) = server.post("/invocations", json!({"input": [question]})).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(refunds.load(Ordering::SeqCst), 0, "Billing's refund waits for the user");
    let asked = items(&first).into_iter().find(|i| i["type"] == "mcp_approval_request").expect("an approval request");
    assert_eq!((asked["name"].as_str(), asked["server_label"].as_str()), (Some("refund"), Some("Billing")));

    // The user approves: Billing (not Triage) goes on, runs the refund, and answers.
    server.fake.push(Reply::text("Refunded."));
    let approval = json!({"type": "mcp_approval_response", "approval_request_id": asked["id"], "approve": true});
    let mut input = vec![question];
    input.extend(items(&first));
    input.push(approval);
    let (status, second) = server.post("/invocations", json!({"input": input})).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(refunds.load(Ordering::SeqCst), 1);
    assert_eq!(tool_outputs(&second), ["refunded"]);
    let last = server.fake.requests().pop().unwrap();
    assert_eq!(last["messages"][0], json!({"role": "system", "content": "You handle billing."}));
    assert_eq!(tool_names(&last), ["refund"]);
    let message = items(&second).into_iter().find(|i| i["type"] == "message").unwrap();
    assert_eq!(message["agent"], "Billing");
}

#[tokio::test]
async fn mcp_servers_set_on_the_handoff_target_and_on_an_agent_tool_apply() {
    let Some(python) = crate::mcp::python() else { return };
    let files = || server::tools::mcp::McpServer::stdio("files", &python, [crate::mcp::SCRIPT, "stdio"]);
    // A hand-off target with an MCP server: its tools are there once it has the conversation.
    let triage = Agent::new("Triage").handoff(Agent::new("Maths").instructions("You add.").mcp_server(files()));
    let server = start_with(|_| {}, triage).await;
    server
        .fake
        .push(Reply::tool_call("transfer_to_maths", "{}"))
        .push(Reply::tool_call("add", r#"{"a": 20, "b": 22}"#))
        .push(Reply::text("42."));
    let (status, body) = server.post("/invocations", json!({"input": [{"role": "user", "content": "20 + 22?"}]})).await;
    assert_eq!(status, 200, "{body}");
    let requests = server.fake.requests();
    assert!(!tool_names(&requests[0]).contains(&"add".to_string()), "Triage has no MCP server");
    assert!(tool_names(&requests[1]).contains(&"add".to_string()), "{:?}", tool_names(&requests[1]));
    assert_eq!(tool_outputs(&body)[1], "42");

    // An agent used as a tool runs with its own MCP server.
    let maths = Agent::new("Maths").instructions("You add.").mcp_server(files());
    let outer = Agent::new("Outer").tool(maths.as_tool("maths", "Adds numbers."));
    let server = start_with(|_| {}, outer).await;
    server
        .fake
        .push(Reply::tool_call("maths", r#"{"input": "20 + 22"}"#))
        .push(Reply::tool_call("add", r#"{"a": 20, "b": 22}"#))
        .push(Reply::text("It is 42."))
        .push(Reply::text("The answer is 42."));
    let (status, body) = server.post("/invocations", json!({"input": [{"role": "user", "content": "20 + 22?"}]})).await;
    assert_eq!(status, 200, "{body}");
    let requests = server.fake.requests();
    assert_eq!(tool_names(&requests[0]), ["maths"]);
    assert!(tool_names(&requests[1]).contains(&"add".to_string()), "{:?}", tool_names(&requests[1]));
    assert_eq!(tool_outputs(&body), ["It is 42."]);
}
