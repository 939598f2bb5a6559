//! Test harness: the real server on a loopback port, in front of the scripted fake model.

use std::net::SocketAddr;

use app::responses::{StreamEvent, StreamFrame};
use app::sse::SseParser;
use fake_model::FakeModel;
use serde_json::Value;
use server::{Agent, AppState, Settings};

pub struct TestServer {
    pub url: String,
    pub fake: FakeModel,
    pub client: reqwest::Client,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Settings for tests: the fake model, quick retries and short timeouts.
pub fn test_settings(fake: &FakeModel) -> Settings {
    let mut settings = Settings::default();
    settings.model.openai_base_url = Some(fake.base_url());
    settings.model.retry_base_ms = 10;
    settings.model.timeout_seconds = 5.0;
    settings.model.idle_timeout_seconds = 5.0;
    // Tests that keep chats turn this on with their own database.
    settings.history.enabled = false;
    // Local traces in a folder of the test's own.
    settings.server.data_dir = std::env::temp_dir().join(format!("agent-app-test-{}", uuid::Uuid::new_v4()));
    settings
}

pub async fn start() -> TestServer {
    start_with(|_| {}, server::agent::agent()).await
}

pub async fn start_with(tweak: impl FnOnce(&mut Settings), agent: Agent) -> TestServer {
    let fake = FakeModel::start().await;
    let mut settings = test_settings(&fake);
    tweak(&mut settings);
    serve(fake, settings, agent).await
}

pub async fn serve(fake: FakeModel, settings: Settings, agent: Agent) -> TestServer {
    let state = AppState::new(settings, agent).expect("valid agent").with_chat_history().await.with_tracing().await;
    serve_state(fake, state).await
}

/// The default test server, its connections under these limits.
pub async fn start_with_limits(limits: server::listener::ConnectionLimits) -> TestServer {
    let fake = FakeModel::start().await;
    let settings = test_settings(&fake);
    let state = AppState::new(settings, server::agent::agent()).expect("valid agent");
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = server::app(state);
    let task = tokio::spawn(async move {
        server::listener::serve(listener, app, limits, std::future::pending(), std::time::Duration::ZERO)
            .await
            .unwrap();
    });
    TestServer { url, fake, client: server::http_client::new(), task }
}

/// Serves a state the test built (or changed) itself.
pub async fn serve_state(fake: FakeModel, state: AppState) -> TestServer {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = server::app(state);
    let task = tokio::spawn(async move {
        server::serve(listener, app, std::future::pending(), std::time::Duration::ZERO).await.unwrap();
    });
    TestServer { url, fake, client: server::http_client::new(), task }
}

impl TestServer {
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let resp = self.client.post(format!("{}{path}", self.url)).json(&body).send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn post_raw(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let resp = self
            .client
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// The chat page's configuration (`POST /api/config`, a server function) as `headers` would get it.
    pub async fn config(&self, headers: &[(&str, &str)]) -> Value {
        let mut req = self
            .client
            .post(format!("{}/api/config", self.url))
            .header("content-type", "application/x-www-form-urlencoded");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap().json().await.unwrap()
    }

    /// Streams a request to the end; returns the status and every `data:` payload in order.
    pub async fn stream(&self, path: &str, body: Value, headers: &[(&str, &str)]) -> Stream {
        let mut req = self.client.post(format!("{}{path}", self.url)).json(&body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        read_stream(req.send().await.unwrap()).await
    }

    /// `GET` of a stream (a background response's events), read to the end.
    pub async fn get_stream(&self, path: &str, headers: &[(&str, &str)]) -> Stream {
        let mut req = self.client.get(format!("{}{path}", self.url));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        read_stream(req.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut req = self.client.get(format!("{}{path}", self.url));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

/// Reads a streamed response to its end.
pub async fn read_stream(mut resp: reqwest::Response) -> Stream {
    let status = resp.status().as_u16();
    let content_type = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
    let mut parser = SseParser::default();
    let mut data = Vec::new();
    let mut raw = Vec::new();
    while let Some(chunk) = resp.chunk().await.unwrap() {
        raw.extend_from_slice(&chunk);
        data.extend(parser.push(&chunk).unwrap().into_iter().map(|f| f.data));
    }
    Stream { status, content_type, data, raw: String::from_utf8(raw).unwrap() }
}

pub struct Stream {
    pub status: u16,
    pub content_type: Option<String>,
    /// Every `data:` payload, `[DONE]` included.
    pub data: Vec<String>,
    pub raw: String,
}

impl Stream {
    pub fn json(&self) -> Vec<Value> {
        self.data.iter().filter(|d| *d != "[DONE]").map(|d| serde_json::from_str(d).unwrap()).collect()
    }

    pub fn frames(&self) -> Vec<StreamFrame> {
        self.data.iter().map(|d| StreamFrame::parse(d).unwrap()).collect()
    }

    pub fn events(&self) -> Vec<StreamEvent> {
        self.frames()
            .into_iter()
            .filter_map(|f| match f {
                StreamFrame::Event(e) => Some(*e),
                _ => None,
            })
            .collect()
    }

    /// The `type` of every JSON payload (`trace_id` / `error` for the untyped ones).
    pub fn types(&self) -> Vec<String> {
        self.json()
            .iter()
            .map(|v| match v.get("type").and_then(Value::as_str) {
                Some(t) => t.to_string(),
                None if v.get("trace_id").is_some() => "trace_id".into(),
                None => "?".into(),
            })
            .collect()
    }

    pub fn text(&self) -> String {
        self.json()
            .iter()
            .filter(|v| v["type"] == "response.output_text.delta")
            .map(|v| v["delta"].as_str().unwrap().to_string())
            .collect()
    }

    pub fn done_items(&self) -> Vec<Value> {
        self.json()
            .into_iter()
            .filter(|v| v["type"] == "response.output_item.done")
            .map(|v| v["item"].clone())
            .collect()
    }
}

/// The databases to run against: a SQLite file in `dir` always, and the PostgreSQL server of
/// `TEST_DATABASE_URL` (scripts/test.sh starts one; `AGENT_REQUIRE_POSTGRES=1` makes its absence a
/// failure rather than a skip). Tests sharing the PostgreSQL database use fresh ids.
pub fn database_urls(dir: &tempfile::TempDir) -> Vec<String> {
    let mut urls = vec![format!("sqlite://{}?mode=rwc", dir.path().join("chats.db").display())];
    match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => urls.push(url),
        _ if std::env::var("AGENT_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") => {
            panic!("AGENT_REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not set")
        }
        _ => eprintln!("TEST_DATABASE_URL not set: PostgreSQL skipped"),
    }
    urls
}

pub fn user(text: &str) -> Value {
    serde_json::json!({"input": [{"role": "user", "content": text}]})
}

pub fn user_stream(text: &str) -> Value {
    serde_json::json!({"input": [{"role": "user", "content": text}], "stream": true})
}

/// The outputs of a response's tool calls, in order.
pub fn tool_outputs(body: &Value) -> Vec<String> {
    body["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == "function_call_output")
        .map(|i| i["output"].as_str().unwrap().to_string())
        .collect()
}

/// The names of the tools a model request offered.
pub fn tool_names(request: &Value) -> Vec<String> {
    request["tools"]
        .as_array()
        .map_or_else(Vec::new, |t| t.iter().map(|t| t["function"]["name"].as_str().unwrap().to_string()).collect())
}

/// Makes `state` answer with the fake model, whatever model its settings chose (a Databricks
/// workspace set for tracing or tools, say).
pub fn answer_with(state: &mut AppState, fake: &FakeModel) {
    let runner = &state.runner;
    let model = server::state::model_from_settings(&test_settings(fake));
    state.runner = std::sync::Arc::new(server::runner::Runner::new(
        runner.agent.clone(),
        model,
        runner.limits.clone(),
        runner.mcp.clone(),
    ));
}
