//! Tracing against a real MLflow server (`mlflow server`, SQLite backend; `scripts/test.sh` starts
//! one and sets TEST_MLFLOW_URI): traces found through MLflow's own REST API with the right spans,
//! errors traced as ERROR, votes as assessments, and requests unharmed when MLflow is down. The
//! local store (the embedded default) is tested through its API here too.

use std::time::Duration;

use crate::common::*;
use fake_model::Reply;
use serde_json::{Value, json};
use server::AppState;

/// The MLflow server to test against; `None` skips (unless AGENT_REQUIRE_MLFLOW=1, as in CI).
fn mlflow_uri() -> Option<String> {
    match std::env::var("TEST_MLFLOW_URI") {
        Ok(uri) if !uri.is_empty() => Some(uri),
        _ if std::env::var("AGENT_REQUIRE_MLFLOW").is_ok_and(|v| v == "1") => {
            panic!("AGENT_REQUIRE_MLFLOW=1 but TEST_MLFLOW_URI is not set")
        }
        _ => {
            eprintln!("skipped: TEST_MLFLOW_URI is not set");
            None
        }
    }
}

async fn mlflow(client: &reqwest::Client, uri: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let mut req = client.request(method.parse().unwrap(), format!("{uri}{path}"));
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(status.is_success(), "{method} {path}: {status} {text}");
    serde_json::from_str(&text).unwrap()
}

async fn new_experiment(client: &reqwest::Client, uri: &str) -> String {
    let name = format!("agent-app-test-{}", uuid::Uuid::new_v4());
    let created = mlflow(client, uri, "POST", "/api/2.0/mlflow/experiments/create", Some(json!({"name": name}))).await;
    created["experiment_id"].as_str().unwrap().to_string()
}

/// A server tracing to `uri`/`experiment`; the state is kept to flush its exporter.
async fn traced_server(
    uri: &str,
    experiment: &str,
    tweak: impl FnOnce(&mut server::Settings),
) -> (TestServer, AppState) {
    let fake = fake_model::FakeModel::start().await;
    let mut settings = test_settings(&fake);
    settings.tracing.mlflow_tracking_uri = Some(uri.to_string());
    settings.tracing.mlflow_experiment_id = Some(experiment.to_string());
    settings.server.app_name = Some("tracing-test".into());
    tweak(&mut settings);
    let state = AppState::new(settings, server::agent::agent()).unwrap().with_chat_history().await.with_tracing().await;
    (serve_state(fake, state.clone()).await, state)
}

async fn get_trace(client: &reqwest::Client, uri: &str, trace_id: &str) -> Value {
    mlflow(client, uri, "GET", &format!("/api/3.0/mlflow/traces/get?trace_id={trace_id}"), None).await["trace"].clone()
}

fn span_attr(span: &Value, key: &str) -> Option<Value> {
    let attrs = span["attributes"].as_array()?;
    let value = &attrs.iter().find(|a| a["key"] == key)?["value"];
    Some(value.get("string_value").or_else(|| value.get("int_value")).cloned().unwrap_or_else(|| value.clone()))
}

#[tokio::test]
async fn a_tool_calling_request_is_a_trace_in_mlflow() {
    let Some(uri) = mlflow_uri() else { return };
    let client = server::http_client::new();
    let experiment = new_experiment(&client, &uri).await;
    let (server, state) = traced_server(&uri, &experiment, |_| {}).await;
    server.fake.push(Reply::tool_call("get_current_time", "{}")).push(Reply::text("It is noon."));
    let mut body = user_stream("what time is it?");
    body["context"] = json!({"conversation_id": "s-9", "user_id": "ana@example.com"});
    let s = server.stream("/responses", body, &[("x-mlflow-return-trace-id", "true")]).await;
    assert_eq!(s.text(), "It is noon.");
    let trace_id = s.json().iter().find_map(|v| v["trace_id"].as_str().map(str::to_string)).expect("a trace id");
    assert!(state.observability.exporter.flush(Duration::from_secs(30)).await);

    // Found by MLflow's search, in the experiment.
    let traces = traces_in(&client, &uri, &experiment).await;
    assert_eq!(traces.len(), 1, "{traces:?}");
    let info = &traces[0];
    assert_eq!(info["trace_id"], trace_id);
    assert_eq!(info["state"], "OK");
    assert_eq!(info["request_preview"], "what time is it?");
    assert_eq!(info["response_preview"], "It is noon.");
    assert_eq!(info["trace_metadata"]["mlflow.trace.session"], "s-9");
    assert_eq!(info["trace_metadata"]["mlflow.trace.user"], "ana@example.com");
    let usage: Value =
        serde_json::from_str(info["trace_metadata"]["mlflow.trace.tokenUsage"].as_str().unwrap()).unwrap();
    assert!(usage["input_tokens"].as_u64().unwrap() > 0 && usage["output_tokens"].as_u64().unwrap() > 0, "{usage}");
    // Version tracking: the LoggedModel of this app version is on the trace.
    let model_id = info["tags"]["mlflow.modelId"].as_str().expect("a model id tag");
    let model = mlflow(&client, &uri, "GET", &format!("/api/2.0/mlflow/logged-models/{model_id}"), None).await;
    assert!(model["model"]["info"]["name"].as_str().unwrap().starts_with("tracing-test-"), "{model}");

    // The span tree: root, agent, model call, tool, model call.
    let trace = get_trace(&client, &uri, &trace_id).await;
    let spans = trace["spans"].as_array().unwrap();
    let types: Vec<String> =
        spans.iter().map(|s| span_attr(s, "mlflow.spanType").unwrap().as_str().unwrap().to_string()).collect();
    assert_eq!(types, ["UNKNOWN", "AGENT", "CHAT_MODEL", "TOOL", "CHAT_MODEL"], "{trace}");
    assert_eq!(spans[0]["name"], "stream_handler");
    let tool = &spans[3];
    assert_eq!(tool["name"], "get_current_time");
    assert_eq!(tool["parent_span_id"], spans[1]["span_id"]);
    assert!(span_attr(tool, "mlflow.spanOutputs").unwrap().as_str().unwrap().starts_with("20"), "{tool}");
    let model_call = &spans[2];
    assert_eq!(span_attr(model_call, "gen_ai.request.model").unwrap(), "databricks-gpt-5-2");
    assert!(span_attr(model_call, "mlflow.chat.tokenUsage").is_some(), "{model_call}");
    let inputs = span_attr(model_call, "mlflow.spanInputs").unwrap().to_string();
    assert!(inputs.contains("what time is it?") && inputs.contains("get_current_time"), "{inputs}");
    let answer = span_attr(&spans[4], "mlflow.spanOutputs").unwrap().to_string();
    assert!(answer.contains("It is noon."), "{answer}");
}

/// The traces of `experiment`, by MLflow's search.
async fn traces_in(client: &reqwest::Client, uri: &str, experiment: &str) -> Vec<Value> {
    let body =
        json!({"locations": [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": experiment}}]});
    let found = mlflow(client, uri, "POST", "/api/3.0/mlflow/traces/search", Some(body)).await;
    found["traces"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn mlflow_and_opentelemetry_variables_are_honoured() {
    let Some(uri) = mlflow_uri() else { return };
    let client = server::http_client::new();

    // MLFLOW_EXPERIMENT_NAME: the experiment is created, as mlflow.set_experiment does.
    let name = format!("agent-app-named-{}", uuid::Uuid::new_v4());
    let (server, state) = traced_server(&uri, "", |s| {
        s.tracing.mlflow_experiment_id = None;
        s.tracing.mlflow_experiment_name = Some(name.clone());
        s.tracing.mlflow_tracking_token = Some(server::secret::Secret::new("mlflow-token"));
    })
    .await;
    server.fake.push(Reply::text("Named."));
    assert_eq!(server.stream("/invocations", user_stream("hi"), &[]).await.text(), "Named.");
    assert!(state.observability.exporter.flush(Duration::from_secs(30)).await);
    let found = mlflow(
        &client,
        &uri,
        "POST",
        "/api/2.0/mlflow/experiments/search",
        Some(json!({"filter": format!("name = '{name}'"), "max_results": 10})),
    )
    .await;
    let experiment = found["experiments"][0]["experiment_id"].as_str().expect("the experiment was created").to_string();
    assert_eq!(state.observability.experiment_id.as_deref(), Some(experiment.as_str()));
    assert_eq!(traces_in(&client, &uri, &experiment).await.len(), 1);

    // OTEL_EXPORTER_OTLP_TRACES_ENDPOINT/_HEADERS: spans go to that collector (here MLflow's own
    // OTLP endpoint, which takes the experiment from a header), not to the tracking server.
    let experiment = new_experiment(&client, &uri).await;
    let (server, state) = traced_server(&uri, "", |s| {
        s.tracing.mlflow_experiment_id = None;
        s.tracing.otel_traces_endpoint = Some(format!("{uri}/v1/traces"));
        s.tracing.otel_traces_headers =
            Some(server::secret::Secret::new(format!("x-mlflow-experiment-id={experiment}")));
    })
    .await;
    server.fake.push(Reply::text("Collected."));
    assert_eq!(server.stream("/invocations", user_stream("hi"), &[]).await.text(), "Collected.");
    assert!(state.observability.exporter.flush(Duration::from_secs(30)).await);
    let traces = traces_in(&client, &uri, &experiment).await;
    assert_eq!(traces.len(), 1, "{traces:?}");
    assert_eq!(traces[0]["response_preview"], "Collected.");
}

#[tokio::test]
async fn a_failing_request_is_traced_as_an_error() {
    let Some(uri) = mlflow_uri() else { return };
    let client = server::http_client::new();
    let experiment = new_experiment(&client, &uri).await;
    let (server, state) = traced_server(&uri, &experiment, |s| s.model.max_retries = 0).await;
    server.fake.push(Reply::status(400, r#"{"error":{"message":"bad things"}}"#));
    let resp = server
        .client
        .post(format!("{}/invocations", server.url))
        .header("x-mlflow-return-trace-id", "true")
        .json(&user("hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 500);
    assert!(state.observability.exporter.flush(Duration::from_secs(30)).await);
    let traces = traces_in(&client, &uri, &experiment).await;
    let info = &traces[0];
    assert_eq!(info["state"], "ERROR", "{traces:?}");
    let trace = get_trace(&client, &uri, info["trace_id"].as_str().unwrap()).await;
    let model_call =
        trace["spans"].as_array().unwrap().iter().find(|s| s["name"] == "chat databricks-gpt-5-2").unwrap();
    assert_eq!(model_call["status"]["code"], "STATUS_CODE_ERROR", "{model_call}");
    assert!(model_call["status"]["message"].as_str().unwrap().contains("bad things"), "{model_call}");
}

#[tokio::test]
async fn votes_become_assessments_and_a_revote_updates_them() {
    let Some(uri) = mlflow_uri() else { return };
    let client = server::http_client::new();
    let experiment = new_experiment(&client, &uri).await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("chats.db").display());
    let (server, state) = traced_server(&uri, &experiment, |s| {
        s.history.enabled = true;
        s.history.titles = false;
        s.history.database_url = Some(server::config::Secret::new(db));
    })
    .await;
    server.fake.push(Reply::text("Hi there."));
    let chat = uuid::Uuid::new_v4().to_string();
    let mut body = app::conversation::chat_request(&chat, &[], "Hello");
    body["chat"] = json!({"id": chat, "position": 0, "question_id": "q-1", "answer_id": "a-1"});
    let ana = [("x-forwarded-email", "ana@example.com")];
    let s = server.stream("/api/chat", body, &ana).await;
    let trace_id = s.json().iter().find_map(|v| v["trace_id"].as_str().map(str::to_string)).expect("a trace id");
    assert!(state.observability.exporter.flush(Duration::from_secs(30)).await);

    let vote = |kind: &str| json!({"chatId": chat, "messageId": "a-1", "feedbackType": kind});
    let mut first = None;
    for (kind, value) in [("thumbs_up", true), ("thumbs_down", false)] {
        // The answer is saved by a background task: retry until it is there.
        let mut answer = Value::Null;
        for _ in 0..50 {
            let resp = server
                .client
                .post(format!("{}/api/feedback", server.url))
                .header("x-forwarded-email", "ana@example.com")
                .json(&vote(kind))
                .send()
                .await
                .unwrap();
            answer = resp.json().await.unwrap();
            if !answer["mlflowAssessmentId"].is_null() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let id = answer["mlflowAssessmentId"].as_str().expect("an assessment").to_string();
        // A re-vote updates the same assessment.
        assert_eq!(first.get_or_insert(id.clone()), &id);
        let trace = get_trace(&client, &uri, &trace_id).await;
        let assessments = trace["trace_info"]["assessments"].as_array().expect("assessments");
        assert_eq!(assessments.len(), 1, "{assessments:?}");
        let a = &assessments[0];
        assert_eq!(a["assessment_name"], "user_feedback");
        assert_eq!(a["source"]["source_type"], "HUMAN");
        assert_eq!(a["source"]["source_id"], "ana@example.com");
        assert_eq!(a["feedback"]["value"], value);
    }
}

#[tokio::test]
async fn requests_succeed_while_mlflow_is_down() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (server, state) = traced_server(&format!("http://127.0.0.1:{port}"), "1", |_| {}).await;
    for _ in 0..3 {
        server.fake.push(Reply::text("Still here."));
        let (status, body) = server.post("/invocations", user("hi")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["output"][0]["content"][0]["text"], "Still here.");
    }
    let s = server.stream("/responses", user_stream("and streaming?"), &[]).await;
    assert_eq!(s.status, 200);
    assert!(state.observability.exporter.flush(Duration::from_secs(30)).await);
    let stats = state.observability.exporter.stats().unwrap();
    assert!(stats.failed.load(std::sync::atomic::Ordering::Relaxed) >= 1, "{stats:?}");
    assert_eq!(stats.exported.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[tokio::test]
async fn the_local_store_keeps_each_users_traces() {
    let server = start().await;
    server.fake.push(Reply::tool_call("get_current_time", "{}")).push(Reply::text("Noon."));
    let ana = [("x-forwarded-email", "ana@example.com")];
    let s = server.stream("/api/chat", app::conversation::chat_request("c", &[], "time?"), &ana).await;
    let trace_id = s.json().iter().find_map(|v| v["trace_id"].as_str().map(str::to_string)).unwrap();

    let get = |path: String, user: &'static str| {
        let req = server.client.get(format!("{}{path}", server.url)).header("x-forwarded-email", user);
        async move {
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // Exported in the background: poll.
    let mut list = Value::Null;
    for _ in 0..50 {
        list = get("/api/traces".into(), "ana@example.com").await.1;
        if list["traces"].as_array().is_some_and(|t| !t.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(list["traces"][0]["trace_id"], trace_id, "{list}");
    assert_eq!(list["traces"][0]["request_preview"], "time?");
    assert_eq!(list["traces"][0]["state"], "OK");
    let (status, trace) = get(format!("/api/traces/{trace_id}"), "ana@example.com").await;
    assert_eq!(status, 200);
    let types: Vec<&str> =
        trace["spans"].as_array().unwrap().iter().map(|s| s["span_type"].as_str().unwrap()).collect();
    assert_eq!(types, ["UNKNOWN", "AGENT", "CHAT_MODEL", "TOOL", "CHAT_MODEL"]);
    // Bob sees none of it.
    assert_eq!(get("/api/traces".into(), "bob@example.com").await.1["traces"], json!([]));
    assert_eq!(get(format!("/api/traces/{trace_id}"), "bob@example.com").await.0, 404);
}

/// Arguments of the test's retriever.
#[derive(serde::Deserialize, schemars::JsonSchema)]
struct SearchArgs {
    /// What to look for.
    query: String,
}

#[tokio::test]
async fn retrieval_tools_are_retriever_spans_with_documents() {
    use server::tools::{RetrieverSchema, retriever, tool};
    let search = tool("search_docs", "Search the docs.", |args: SearchArgs| async move {
        Ok::<_, String>(json!([{"chunk": 7, "body": format!("About {}", args.query), "link": "https://docs/7"}]))
    });
    let agent = server::agent::agent()
        .tool(retriever(search, RetrieverSchema::new("body").primary_key("chunk").doc_uri("link")));
    let server = start_with(|_| {}, agent).await;
    server.fake.push(Reply::tool_call("search_docs", r#"{"query": "tracing"}"#)).push(Reply::text("Found it."));
    let s = server.stream("/api/chat", app::conversation::chat_request("c", &[], "find it"), &[]).await;
    let trace_id = s.json().iter().find_map(|v| v["trace_id"].as_str().map(str::to_string)).unwrap();
    let mut trace = Value::Null;
    for _ in 0..50 {
        let resp = server.client.get(format!("{}/api/traces/{trace_id}", server.url)).send().await.unwrap();
        if resp.status() == 200 {
            trace = resp.json().await.unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let span = trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "search_docs")
        .expect("the tool's span")
        .clone();
    assert_eq!(span["span_type"], "RETRIEVER");
    assert_eq!(span["inputs"], json!({"query": "tracing"}));
    assert_eq!(
        span["outputs"],
        json!([{"page_content": "About tracing", "metadata": {"chunk_id": "7", "doc_uri": "https://docs/7"}, "id": "7"}])
    );
}

#[tokio::test]
async fn databricks_unity_catalog_export_is_signed_otlp_to_the_tables_endpoint() {
    use axum::body::Bytes;
    use axum::http::HeaderMap;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;
    // A stand-in for the workspace's OTLP endpoint: it records what arrives.
    let seen: std::sync::Arc<std::sync::Mutex<Vec<(String, HeaderMap, Bytes)>>> = Default::default();
    let app = axum::Router::new().route(
        "/api/2.0/otel/v1/traces",
        axum::routing::post({
            let seen = seen.clone();
            move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| async move {
                seen.lock().unwrap().push((uri.path().to_string(), headers, body));
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let fake = fake_model::FakeModel::start().await;
    let mut settings = test_settings(&fake);
    settings.tracing.mlflow_tracking_uri = Some("databricks".into());
    settings.tracing.mlflow_tracing_destination = Some("main.agent_traces".into());
    settings.tracing.mlflow_experiment_id = Some("42".into());
    settings.databricks.host = Some(host);
    settings.databricks.token = Some(server::config::Secret::new("dapi-test"));
    // The model stays the fake (OPENAI_BASE_URL is ignored once DATABRICKS_HOST is set): point the
    // model at it explicitly through a state built by hand.
    let mut state = AppState::new(settings, server::agent::agent()).unwrap().with_tracing().await;
    crate::common::answer_with(&mut state, &fake);
    let exporter = state.observability.exporter.clone();
    let server = serve_state(fake, state).await;
    server.fake.push(Reply::text("Hello."));
    let (status, _) = server.post("/invocations", user("hi")).await;
    assert_eq!(status, 200);
    assert!(exporter.flush(Duration::from_secs(10)).await);

    let seen = seen.lock().unwrap();
    let (path, headers, body) = seen.last().expect("an export");
    assert_eq!(path, "/api/2.0/otel/v1/traces");
    assert_eq!(headers["content-type"], "application/x-protobuf");
    assert_eq!(headers["authorization"], "Bearer dapi-test");
    assert_eq!(headers["x-databricks-uc-table-name"], "main.agent_traces.mlflow_experiment_trace_otel_spans");
    let request = ExportTraceServiceRequest::decode(body.as_ref()).unwrap();
    let spans = &request.resource_spans[0].scope_spans[0].spans;
    assert_eq!(spans.len(), 3, "root, agent, model call");
    assert!(spans.iter().any(|s| s.name == "invoke_handler" && s.parent_span_id.is_empty()));
}

#[tokio::test]
async fn databricks_experiment_export_writes_trace_info_then_spans_as_the_mlflow_client_does() {
    use axum::body::Bytes;
    use axum::extract::Path;
    use axum::http::HeaderMap;
    type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, HeaderMap, Bytes)>>>;
    let seen: Seen = Default::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = format!("http://{}", listener.local_addr().unwrap());
    // A stand-in workspace: StartTraceV3, upload credentials (a presigned URL with a header), the upload.
    let record = |seen: Seen, what: &'static str| {
        move |headers: HeaderMap, body: Bytes| async move {
            seen.lock().unwrap().push((what.to_string(), headers, body));
            "{}"
        }
    };
    let app = axum::Router::new()
        .route("/api/3.0/mlflow/traces", axum::routing::post(record(seen.clone(), "start")))
        .route(
            "/api/2.0/mlflow/traces/{id}/credentials-for-data-upload",
            axum::routing::get({
                let host = host.clone();
                move |Path(id): Path<String>| async move {
                    axum::Json(json!({"credential_info": {
                        "signed_uri": format!("{host}/upload/{id}?signature=secret"),
                        "type": "AWS_PRESIGNED_URL",
                        "headers": [{"name": "x-amz-server-side-encryption", "value": "AES256"}],
                    }}))
                }
            }),
        )
        .route("/upload/{id}", axum::routing::put(record(seen.clone(), "upload")));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let fake = fake_model::FakeModel::start().await;
    let mut settings = test_settings(&fake);
    settings.tracing.mlflow_tracking_uri = Some("databricks".into());
    settings.tracing.mlflow_experiment_id = Some("42".into());
    settings.databricks.host = Some(host);
    settings.databricks.token = Some(server::config::Secret::new("dapi-test"));
    let mut state = AppState::new(settings, server::agent::agent()).unwrap().with_tracing().await;
    crate::common::answer_with(&mut state, &fake);
    let exporter = state.observability.exporter.clone();
    let server = serve_state(fake, state).await;
    server.fake.push(Reply::tool_call("get_current_time", "{}")).push(Reply::text("Noon."));
    let mut body = user("time?");
    body["context"] = json!({"conversation_id": "s-1"});
    let resp = server
        .client
        .post(format!("{}/invocations", server.url))
        .header("x-mlflow-return-trace-id", "true")
        .json(&body)
        .send()
        .await
        .unwrap();
    let trace_id = resp.json::<Value>().await.unwrap()["metadata"]["trace_id"].as_str().unwrap().to_string();
    assert!(exporter.flush(Duration::from_secs(10)).await);

    let seen = seen.lock().unwrap().clone();
    let kinds: Vec<&str> = seen.iter().map(|(k, ..)| k.as_str()).collect();
    assert_eq!(kinds, ["start", "upload"]);
    let (_, headers, start) = &seen[0];
    assert_eq!(headers["authorization"], "Bearer dapi-test");
    let start: Value = serde_json::from_slice(start).unwrap();
    let info = &start["trace"]["trace_info"];
    assert_eq!(info["trace_id"], trace_id);
    assert_eq!(info["trace_location"]["mlflow_experiment"]["experiment_id"], "42");
    assert_eq!(info["state"], "OK");
    assert_eq!(info["trace_metadata"]["mlflow.trace.session"], "s-1");
    let (_, headers, upload) = &seen[1];
    assert_eq!(headers["x-amz-server-side-encryption"], "AES256");
    assert!(headers.get("authorization").is_none(), "the workspace token does not go to the storage URL");
    let spans: Value = serde_json::from_slice(upload).unwrap();
    assert_eq!(spans["spans"].as_array().unwrap().len(), 5);
    assert_eq!(spans["spans"][0]["attributes"]["mlflow.spanType"], "\"UNKNOWN\"");

    // A real MLflow server takes the same trace info, and reads the same spans back from the
    // trace's artifact location (where Databricks' signed URL would have put them).
    let Some(uri) = mlflow_uri() else { return };
    let client = server::http_client::new();
    let experiment = new_experiment(&client, &uri).await;
    let mut start = start;
    start["trace"]["trace_info"]["trace_location"]["mlflow_experiment"]["experiment_id"] = json!(experiment);
    let created = mlflow(&client, &uri, "POST", "/api/3.0/mlflow/traces", Some(start)).await;
    let location = created["trace"]["trace_info"]["tags"]["mlflow.artifactLocation"].as_str().unwrap_or("").to_string();
    let dir = std::path::PathBuf::from(location.trim_start_matches("file://"));
    if dir.is_absolute() {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("traces.json"), upload).unwrap();
        // MLflow's own Python client reads such traces (the server keeps only their info).
        let python = std::env::var("TEST_MLFLOW_PYTHON").unwrap_or_else(|_| "python3".into());
        let script = "import json, sys, mlflow\n\
            mlflow.set_tracking_uri(sys.argv[1])\n\
            t = mlflow.get_trace(sys.argv[2])\n\
            print(json.dumps({'session': t.info.trace_metadata.get('mlflow.trace.session'), \
            'spans': [[s.name, s.span_type, s.inputs] for s in t.data.spans]}))";
        let out = std::process::Command::new(&python).args(["-c", script, &uri, &trace_id]).output();
        match out {
            Ok(out) if out.status.success() => {
                let read: Value = serde_json::from_slice(&out.stdout).unwrap();
                assert_eq!(read["session"], "s-1", "{read}");
                let names: Vec<&str> =
                    read["spans"].as_array().unwrap().iter().map(|s| s[0].as_str().unwrap()).collect();
                assert_eq!(
                    names,
                    [
                        "invoke_handler",
                        "Agent",
                        "chat databricks-gpt-5-2",
                        "get_current_time",
                        "chat databricks-gpt-5-2"
                    ]
                );
                assert_eq!(read["spans"][3][1], "TOOL");
                assert_eq!(read["spans"][0][2]["context"]["conversation_id"], "s-1", "inputs parsed as JSON: {read}");
            }
            Ok(out) if std::env::var("TEST_MLFLOW_PYTHON").is_ok() => {
                panic!("MLflow's client could not read the trace: {}", String::from_utf8_lossy(&out.stderr))
            }
            _ => eprintln!("no Python with mlflow (TEST_MLFLOW_PYTHON): the read-back is skipped"),
        }
    } else {
        eprintln!("MLflow's artifact location {location:?} is not a local folder: the read-back is skipped");
    }
}
