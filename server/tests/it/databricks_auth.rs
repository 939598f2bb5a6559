//! Databricks unified auth, path by path, against a stand-in workspace in this process (OIDC
//! discovery, a token endpoint, a serving endpoint that forwards to the fake model and refuses
//! revoked tokens), a temporary `.databrickscfg`, and a fake `databricks` CLI.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use fake_model::{FakeModel, Reply};
use serde_json::{Value, json};
use server::config::{Secret, Settings};

#[derive(Clone)]
struct Workspace {
    url: String,
    model_url: String,
    /// Token lifetime handed out, in seconds.
    lifetime: u64,
    token_calls: Arc<AtomicUsize>,
    discovery_calls: Arc<AtomicUsize>,
    /// `Authorization` of each model call.
    seen: Arc<Mutex<Vec<String>>>,
    revoked: Arc<Mutex<HashSet<String>>>,
}

impl Workspace {
    async fn start(fake: &FakeModel, lifetime: u64) -> Self {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
        let workspace = Workspace {
            url: format!("http://{}", listener.local_addr().unwrap()),
            model_url: format!("{}/serving-endpoints/chat/completions", fake.host_url()),
            lifetime,
            token_calls: Default::default(),
            discovery_calls: Default::default(),
            seen: Default::default(),
            revoked: Default::default(),
        };
        let app = Router::new()
            .route("/oidc/.well-known/oauth-authorization-server", get(discovery))
            // Not the usual /oidc/v1/token: only discovery leads here.
            .route("/oidc/v2/custom-token", post(token))
            .route("/serving-endpoints/chat/completions", post(chat))
            .with_state(workspace.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        workspace
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    fn revoke(&self, token: &str) {
        self.revoked.lock().unwrap().insert(format!("Bearer {token}"));
    }
}

async fn discovery(State(w): State<Workspace>) -> Response {
    w.discovery_calls.fetch_add(1, Ordering::SeqCst);
    axum::Json(
        json!({"issuer": format!("{}/oidc", w.url), "token_endpoint": format!("{}/oidc/v2/custom-token", w.url)}),
    )
    .into_response()
}

async fn token(State(w): State<Workspace>, headers: HeaderMap, body: String) -> Response {
    // "app-id:s3cret"
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Basic YXBwLWlkOnMzY3JldA==") {
        return (StatusCode::UNAUTHORIZED, "invalid_client").into_response();
    }
    assert_eq!(body, "grant_type=client_credentials&scope=all-apis");
    let n = w.token_calls.fetch_add(1, Ordering::SeqCst) + 1;
    // Slow enough that concurrent callers overlap.
    tokio::time::sleep(Duration::from_millis(50)).await;
    axum::Json(json!({"access_token": format!("tok-{n}"), "token_type": "Bearer", "expires_in": w.lifetime}))
        .into_response()
}

async fn chat(State(w): State<Workspace>, headers: HeaderMap, body: String) -> Response {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    w.seen.lock().unwrap().push(auth.clone());
    if auth.is_empty() || w.revoked.lock().unwrap().contains(&auth) {
        return (StatusCode::UNAUTHORIZED, r#"{"error_code": "UNAUTHENTICATED", "message": "bad token"}"#)
            .into_response();
    }
    let forwarded = server::http_client::new()
        .post(&w.model_url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    forwarded.text().await.unwrap().into_response()
}

fn settings(fake: &FakeModel) -> Settings {
    let mut settings = crate::common::test_settings(fake);
    settings.model.openai_base_url = None;
    settings
}

async fn ask(server: &crate::common::TestServer) -> (u16, Value) {
    server.fake.push(Reply::text("Signed."));
    server.post("/invocations", crate::common::user("hi")).await
}

#[tokio::test]
async fn service_principal_tokens_are_discovered_cached_shared_and_replaced_after_a_401() {
    let fake = FakeModel::start().await;
    let workspace = Workspace::start(&fake, 3600).await;
    let mut settings = settings(&fake);
    settings.databricks.host = Some(workspace.url.clone());
    settings.databricks.client_id = Some("app-id".into());
    settings.databricks.client_secret = Some(Secret::new("s3cret"));
    let server = crate::common::serve(fake, settings, server::agent::agent()).await;

    // Eight at once: one token request.
    for _ in 0..8 {
        server.fake.push(Reply::text("Signed."));
    }
    let answers =
        futures::future::join_all((0..8).map(|_| server.post("/invocations", crate::common::user("hi")))).await;
    assert!(answers.iter().all(|(status, _)| *status == 200), "{answers:?}");
    assert_eq!(workspace.token_calls.load(Ordering::SeqCst), 1);
    assert_eq!(workspace.discovery_calls.load(Ordering::SeqCst), 1);
    assert!(workspace.seen().iter().all(|a| a == "Bearer tok-1"));

    // The workspace stops accepting tok-1: one refused call, a new token, the answer.
    workspace.revoke("tok-1");
    let (status, body) = ask(&server).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(workspace.seen()[8..], ["Bearer tok-1", "Bearer tok-2"]);
    assert_eq!(workspace.token_calls.load(Ordering::SeqCst), 2);
    let info: Value =
        server.client.get(format!("{}/agent/info", server.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(info["workspace"]["auth_type"], "oauth-m2m");

    // A refused fresh token is not retried forever: one retry, then the error.
    workspace.revoke("tok-2");
    workspace.revoke("tok-3");
    let (status, body) = ask(&server).await;
    assert_eq!(status, 500);
    assert!(body["detail"].as_str().unwrap().contains("401"), "{body}");
    assert_eq!(workspace.token_calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn tokens_are_renewed_before_they_expire() {
    let fake = FakeModel::start().await;
    let workspace = Workspace::start(&fake, 1).await;
    let mut settings = settings(&fake);
    settings.databricks.host = Some(workspace.url.clone());
    settings.databricks.client_id = Some("app-id".into());
    settings.databricks.client_secret = Some(Secret::new("s3cret"));
    let server = crate::common::serve(fake, settings, server::agent::agent()).await;
    assert_eq!(ask(&server).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(ask(&server).await.0, 200);
    assert_eq!(workspace.seen(), ["Bearer tok-1", "Bearer tok-2"]);
}

#[tokio::test]
async fn a_profile_of_the_config_file_is_read_alone() {
    let fake = FakeModel::start().await;
    let workspace = Workspace::start(&fake, 3600).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("databrickscfg");
    std::fs::write(
        &file,
        format!(
            "[DEFAULT]\nhost = https://elsewhere.example.com\ntoken = dapi-default\n\n[dev]\nhost = {}\ntoken = dapi\"dev\\1\n",
            workspace.url
        ),
    )
    .unwrap();
    let mut settings = settings(&fake);
    settings.databricks.config_file = Some(file.clone());
    settings.databricks.profile = Some("dev".into());
    let server = crate::common::serve(fake, settings, server::agent::agent()).await;
    assert_eq!(ask(&server).await.0, 200);
    assert_eq!(workspace.seen(), ["Bearer dapi\"dev\\1"], "the token verbatim, from [dev] only");

    // A profile that is not there stops the start, naming what is.
    let mut settings = self::settings(&server.fake);
    settings.databricks.config_file = Some(file);
    settings.databricks.profile = Some("prod".into());
    let error = server::AppState::new(settings, server::agent::agent()).err().unwrap();
    assert!(error.contains("profile `prod`") && error.contains("DEFAULT, dev"), "{error}");
}

/// A fake `databricks` CLI: logs its arguments to `calls.log` next to it and prints token number n.
fn fake_cli(dir: &Path, expiry: &str, fail: bool) -> PathBuf {
    let path = dir.join("databricks");
    let script = if fail {
        "#!/bin/sh\necho \"$@\" >> \"$(dirname \"$0\")/calls.log\"\necho 'Error: not logged in' >&2\nexit 1\n"
            .to_string()
    } else {
        format!(
            "#!/bin/sh\necho \"$@\" >> \"$(dirname \"$0\")/calls.log\"\nn=$(wc -l < \"$(dirname \"$0\")/calls.log\" | tr -d ' ')\n\
             printf '{{\"access_token\": \"cli-token-%s\", \"token_type\": \"Bearer\", \"expiry\": \"{expiry}\"}}\\n' \"$n\"\n"
        )
    };
    std::fs::write(&path, script).unwrap();
    std::process::Command::new("chmod").args(["+x", path.to_str().unwrap()]).status().unwrap();
    path
}

fn cli_calls(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("calls.log")).unwrap_or_default().lines().map(str::to_string).collect()
}

#[tokio::test]
async fn the_databricks_cli_is_the_fallback_and_its_expiry_is_respected() {
    let fake = FakeModel::start().await;
    let workspace = Workspace::start(&fake, 3600).await;
    let dir = tempfile::tempdir().unwrap();
    let in_an_hour = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let cli = fake_cli(dir.path(), &in_an_hour, false);
    let mut settings = settings(&fake);
    settings.databricks.host = Some(workspace.url.clone());
    settings.databricks.cli_path = cli.to_str().unwrap().to_string();
    let server = crate::common::serve(fake, settings, server::agent::agent()).await;
    assert_eq!(ask(&server).await.0, 200);
    assert_eq!(ask(&server).await.0, 200);
    assert_eq!(workspace.seen(), ["Bearer cli-token-1", "Bearer cli-token-1"], "cached until it expires");
    assert_eq!(cli_calls(dir.path()), [format!("auth token --host {}", workspace.url)]);

    // With a profile, the CLI is asked for that profile; an expired token is fetched again each time.
    let fake = FakeModel::start().await;
    let workspace = Workspace::start(&fake, 3600).await;
    let dir = tempfile::tempdir().unwrap();
    let cli = fake_cli(dir.path(), "2020-01-01T00:00:00Z", false);
    let file = dir.path().join("cfg");
    std::fs::write(&file, format!("[dev]\nhost = {}\nauth_type = databricks-cli\n", workspace.url)).unwrap();
    let mut settings = self::settings(&fake);
    settings.databricks.config_file = Some(file);
    settings.databricks.profile = Some("dev".into());
    settings.databricks.cli_path = cli.to_str().unwrap().to_string();
    let server = crate::common::serve(fake, settings, server::agent::agent()).await;
    assert_eq!(ask(&server).await.0, 200);
    assert_eq!(ask(&server).await.0, 200);
    assert_eq!(cli_calls(dir.path()), ["auth token --profile dev", "auth token --profile dev"]);
    assert_eq!(workspace.seen(), ["Bearer cli-token-1", "Bearer cli-token-2"]);
}

#[tokio::test]
async fn a_failing_cli_is_reported_with_what_to_do() {
    let fake = FakeModel::start().await;
    let workspace = Workspace::start(&fake, 3600).await;
    let dir = tempfile::tempdir().unwrap();
    let cli = fake_cli(dir.path(), "", true);
    let mut settings = settings(&fake);
    settings.databricks.host = Some(workspace.url.clone());
    settings.databricks.cli_path = cli.to_str().unwrap().to_string();
    let server = crate::common::serve(fake, settings, server::agent::agent()).await;
    let (status, body) = server.post("/invocations", crate::common::user("hi")).await;
    assert_eq!(status, 500);
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("not logged in") && detail.contains("databricks auth login"), "{detail}");

    // No host, no token, no CLI: a clear message, not a crash.
    let mut settings = self::settings(&server.fake);
    settings.databricks.host = Some(workspace.url.clone());
    settings.databricks.cli_path = "/nonexistent/databricks".into();
    let server = crate::common::serve(FakeModel::start().await, settings, server::agent::agent()).await;
    let (status, body) = server.post("/invocations", crate::common::user("hi")).await;
    assert_eq!(status, 500);
    assert!(body["detail"].as_str().unwrap().contains("no credential"), "{body}");
}

/// The binary as run on a laptop: only `DATABRICKS_HOST`, the CLI found on `PATH`. Its logs at debug
/// level hold no token: not the CLI's, not a user's forwarded one.
#[tokio::test]
async fn the_binary_finds_the_cli_on_path_and_logs_no_token() {
    let fake = FakeModel::start().await;
    let workspace = Workspace::start(&fake, 3600).await;
    let dir = tempfile::tempdir().unwrap();
    let in_an_hour = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    fake_cli(dir.path(), &in_an_hour, false);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let path = format!("{}:{}", dir.path().display(), std::env::var("PATH").unwrap_or_default());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_server"))
        .env_clear()
        .env("PATH", path)
        .env("HOME", dir.path())
        .env("RUST_LOG", "debug")
        .env("AGENT_HOST", "127.0.0.1")
        .env("AGENT_DATA_DIR", dir.path().join("data"))
        .env("DATABRICKS_HOST", &workspace.url)
        .args(["--port", &port.to_string()])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let client = server::http_client::new();
    let base = format!("http://127.0.0.1:{port}");
    let mut healthy = false;
    for _ in 0..200 {
        if client.get(format!("{base}/health")).send().await.is_ok_and(|r| r.status().is_success()) {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(healthy, "the server did not start");
    fake.push(Reply::text("From the CLI's login."));
    let response = client
        .post(format!("{base}/invocations"))
        .header("x-forwarded-access-token", "user-secret-token-123")
        .header("authorization", "Bearer inbound-secret-456")
        .json(&crate::common::user("hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(workspace.seen(), ["Bearer cli-token-1"]);

    std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let output = tokio::task::spawn_blocking(move || {
        let _ = child.wait();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let logs = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(logs.contains("databricks-cli"), "the log names the credential kind: {logs}");
    for secret in ["cli-token-1", "user-secret-token-123", "inbound-secret-456"] {
        assert!(!logs.contains(secret), "{secret} in the logs:\n{logs}");
    }
}
