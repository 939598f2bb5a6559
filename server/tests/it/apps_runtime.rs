//! The deployed folder as Databricks Apps run it, following the platform rather than our own
//! assumptions: the exact upload set (`dist/agent-app`, built by scripts/build-deploy.sh and named by
//! `AGENT_DEPLOY_DIR`), copied read-only, started with `sh start.sh` under an empty environment plus
//! only what Apps set (shared/reference README: `DATABRICKS_APP_NAME`, `_PORT`, `DATABRICKS_HOST`,
//! `DATABRICKS_WORKSPACE_ID`, `DATABRICKS_CLIENT_ID`/`_SECRET`; a database resource's `PG*` without a
//! password) and the values app.yaml / databricks.yml give, with no writable `HOME`.
//!
//! Behind it: a stand-in workspace that follows the documented APIs (OIDC M2M token, Model Serving
//! chat completions, MLflow trace export and assessments, the Lakebase credential API), and a real
//! PostgreSQL where the app's role signs in with the password the credential API minted (scram, not
//! trust). Requests come in as the Apps proxy sends them (`X-Forwarded-Email`, `-Preferred-Username`,
//! `-Access-Token`).
//!
//! Run by scripts/test-deploy.sh after the build; skipped (and said so) without `AGENT_DEPLOY_DIR`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use app::conversation::chat_request;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use fake_model::{FakeModel, Reply};
use serde_json::{Value, json};

const CLIENT_SECRET: &str = "dose-app-secret";
const SP_TOKEN: &str = "sp-oauth-token";
const EXPERIMENT_ID: &str = "4242";
const INSTANCE: &str = "agent-app-chats";
const ENDPOINT: &str = "databricks-gpt-5-2";

fn deploy_dir() -> Option<PathBuf> {
    match std::env::var("AGENT_DEPLOY_DIR") {
        Ok(dir) => Some(PathBuf::from(dir)),
        Err(_) => {
            assert!(std::env::var("AGENT_REQUIRE_DEPLOY").as_deref() != Ok("1"), "AGENT_DEPLOY_DIR is required");
            eprintln!("AGENT_DEPLOY_DIR not set (scripts/test-deploy.sh sets it): skipped");
            None
        }
    }
}

/// What the stand-in workspace saw: `METHOD /path` and the bearer, in order.
#[derive(Clone, Default)]
struct Workspace {
    host: String,
    /// The app's service principal (its id is also its database role).
    client_id: String,
    model: String,
    db_password: String,
    seen: Arc<Mutex<Vec<(String, String, Value)>>>,
}

impl Workspace {
    fn record(&self, what: String, headers: &HeaderMap, body: &[u8]) {
        let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let body = serde_json::from_slice(body).unwrap_or(Value::Null);
        self.seen.lock().unwrap().push((what, bearer, body));
    }

    fn calls(&self, what: &str) -> Vec<(String, Value)> {
        let seen = self.seen.lock().unwrap();
        seen.iter().filter(|(w, ..)| w.starts_with(what)).map(|(_, b, v)| (b.clone(), v.clone())).collect()
    }

    fn all(&self) -> Vec<String> {
        self.seen.lock().unwrap().iter().map(|(w, ..)| w.clone()).collect()
    }
}

fn signed_by_app(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {SP_TOKEN}"))
}

async fn oidc_discovery(State(w): State<Workspace>) -> Response {
    axum::Json(json!({"issuer": format!("{}/oidc", w.host), "token_endpoint": format!("{}/oidc/v1/token", w.host)}))
        .into_response()
}

/// OAuth M2M: client credentials in basic auth, `grant_type=client_credentials&scope=all-apis`.
async fn oidc_token(State(w): State<Workspace>, headers: HeaderMap, body: String) -> Response {
    w.record("POST /oidc/v1/token".into(), &headers, b"");
    use base64::Engine;
    let credentials = format!("{}:{CLIENT_SECRET}", w.client_id);
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(credentials));
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(basic.as_str())
        || !body.contains("grant_type=client_credentials")
    {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_client"}))).into_response();
    }
    axum::Json(json!({"access_token": SP_TOKEN, "token_type": "Bearer", "expires_in": 3600, "scope": "all-apis"}))
        .into_response()
}

/// The Lakebase credential API: a database token for the instances named, for the caller.
async fn database_credential(State(w): State<Workspace>, headers: HeaderMap, body: Bytes) -> Response {
    w.record("POST /api/2.0/database/credentials".into(), &headers, &body);
    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
    if !signed_by_app(&headers) {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error_code": "UNAUTHENTICATED"}))).into_response();
    }
    if body["instance_names"] != json!([INSTANCE]) || body["request_id"].as_str().is_none_or(str::is_empty) {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"error_code": "INVALID_PARAMETER_VALUE"}))).into_response();
    }
    let expires = chrono::Utc::now() + chrono::Duration::hours(1);
    axum::Json(json!({"token": w.db_password, "expiration_time": expires.to_rfc3339()})).into_response()
}

/// Model Serving's OpenAI-compatible chat completions, answered by the scripted model.
async fn serving(State(w): State<Workspace>, headers: HeaderMap, body: Bytes) -> Response {
    w.record("POST /serving-endpoints/chat/completions".into(), &headers, &body);
    if !signed_by_app(&headers) {
        return (StatusCode::UNAUTHORIZED, "not the app's token").into_response();
    }
    let answer = server::http_client::new()
        .post(format!("{}/serving-endpoints/chat/completions", w.model))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let content_type = answer.headers().get("content-type").cloned();
    let mut response = answer.bytes().await.unwrap().into_response();
    if let Some(content_type) = content_type {
        response.headers_mut().insert("content-type", content_type);
    }
    response
}

/// Trace export (StartTraceV3, upload credentials, the upload) and assessments, as MLflow's
/// Databricks backend takes them; everything else under /api is recorded and answered `{}`.
async fn mlflow(State(w): State<Workspace>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let what = format!("{method} {}", uri.path());
    w.record(what.clone(), &headers, &body);
    if uri.path().starts_with("/api/") && !signed_by_app(&headers) {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error_code": "UNAUTHENTICATED"}))).into_response();
    }
    if let Some(id) =
        uri.path().strip_prefix("/api/2.0/mlflow/traces/").and_then(|r| r.strip_suffix("/credentials-for-data-upload"))
    {
        return axum::Json(
            json!({"credential_info": {"signed_uri": format!("{}/upload/{id}", w.host), "type": "AWS_PRESIGNED_URL"}}),
        )
        .into_response();
    }
    if uri.path().ends_with("/assessments") {
        let trace_id = uri.path().split('/').nth(5).unwrap_or_default();
        return axum::Json(json!({"assessment": {"assessment_id": "a-1", "trace_id": trace_id}})).into_response();
    }
    axum::Json(json!({})).into_response()
}

async fn upload(State(w): State<Workspace>, UrlPath(id): UrlPath<String>, headers: HeaderMap, body: Bytes) -> Response {
    w.record(format!("PUT /upload/{id}"), &headers, &body);
    StatusCode::OK.into_response()
}

async fn start_workspace(model: &FakeModel, db_password: &str) -> Workspace {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let workspace = Workspace {
        host: format!("http://{}", listener.local_addr().unwrap()),
        client_id: format!("app-sp-{}", uuid::Uuid::new_v4().simple()),
        model: model.host_url(),
        db_password: db_password.to_string(),
        seen: Default::default(),
    };
    let app = Router::new()
        .route("/oidc/.well-known/oauth-authorization-server", get(oidc_discovery))
        .route("/oidc/v1/token", post(oidc_token))
        .route("/api/2.0/database/credentials", post(database_credential))
        .route("/serving-endpoints/chat/completions", post(serving))
        .route("/upload/{id}", put(upload))
        .fallback(mlflow)
        .with_state(workspace.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    workspace
}

/// The real PostgreSQL of the tests, with a login role for the app's service principal whose
/// password is the Lakebase credential, in a database of its own (`CAN_CONNECT_AND_CREATE`). The
/// cluster asks members of `scram_users` for their password (scripts/lib.sh `start_postgres`).
async fn database_for_the_app(admin_url: &str, role: &str, password: &str) -> (String, u16, String) {
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(admin_url).await.expect("the test PostgreSQL");
    let run = |sql: String| sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&admin);
    let database = format!("apps_{}", uuid::Uuid::new_v4().simple());
    let _ = run("CREATE ROLE scram_users NOLOGIN".into()).await;
    run(format!("CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}' IN ROLE scram_users")).await.unwrap();
    run(format!("CREATE DATABASE {database} OWNER \"{role}\"")).await.unwrap();
    let rest = admin_url.split_once('@').unwrap().1;
    let host_port = rest.split('/').next().unwrap();
    let (host, port) = host_port.rsplit_once(':').unwrap();
    // The wrong password is refused: the cluster checks it, so the app really used the credential.
    let wrong = format!("postgres://{role}:not-the-token@{host}:{port}/{database}?sslmode=disable");
    assert!(sqlx::AnyPool::connect(&wrong).await.is_err(), "the cluster must check the app role's password");
    (host.to_string(), port.parse().unwrap(), database)
}

struct App {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl App {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, as the platform stops an app, then wait for it to go.
    fn stop(mut self) -> String {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the app did not stop on SIGTERM:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(50));
        }
        self.logs()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `sh start.sh` in the read-only app folder with exactly `env` (nothing inherited).
async fn start_app(folder: &Path, env: &[(&str, String)], log: PathBuf) -> App {
    let port = free_port();
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new("sh")
        .arg("start.sh")
        .current_dir(folder)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("DATABRICKS_APP_PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let mut app = App { child, port, log };
    let client = server::http_client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(resp) = client.get(app.url("/health")).send().await
            && resp.status().is_success()
        {
            return app;
        }
        if let Some(status) = app.child.try_wait().unwrap() {
            panic!("the app exited ({status}) before it answered:\n{}", app.logs());
        }
        assert!(Instant::now() < deadline, "the app did not answer /health in 60 s:\n{}", app.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The identity headers the Apps proxy adds to every request.
fn proxied(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    request
        .header("x-forwarded-email", "ana@example.com")
        .header("x-forwarded-preferred-username", "ana")
        .header("x-forwarded-user", "12345@6789")
        .header("x-forwarded-access-token", "eyJhbGciOiJub25lIn0.eyJzY29wZSI6Im9mZmxpbmVfYWNjZXNzIn0.x")
}

/// The folder as uploaded, copied somewhere the app cannot write.
fn read_only_copy(from: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("cp").arg("-r").arg(format!("{}/.", from.display())).arg(dir.path()).status().unwrap();
    assert!(status.success());
    assert!(Command::new("chmod").args(["-R", "a-w"]).arg(dir.path()).status().unwrap().success());
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployed_folder_keeps_chats_across_a_restart_and_exports_traces_and_votes() {
    let Some(deploy) = deploy_dir() else { return };
    let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
        assert!(std::env::var("AGENT_REQUIRE_POSTGRES").as_deref() != Ok("1"), "TEST_DATABASE_URL is required");
        eprintln!("TEST_DATABASE_URL not set: skipped");
        return;
    };
    // The bundle and app.yaml set these; the test gives what they say (checked here).
    let bundle = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../databricks.yml")).unwrap();
    let app_yaml = std::fs::read_to_string(deploy.join("app.yaml")).unwrap();
    for name in
        ["MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID", "AGENT_MODEL", "LAKEBASE_INSTANCE_NAME"]
    {
        assert!(bundle.contains(&format!("- name: {name}")), "databricks.yml sets {name}");
    }
    assert!(app_yaml.contains("valueFrom: \"experiment\""), "{app_yaml}");

    let model = FakeModel::start().await;
    let db_password = format!("lakebase-credential-{}", uuid::Uuid::new_v4().simple());
    let workspace = start_workspace(&model, &db_password).await;
    let (pg_host, pg_port, pg_database) = database_for_the_app(&admin_url, &workspace.client_id, &db_password).await;
    let folder = read_only_copy(&deploy);
    let logs = tempfile::tempdir().unwrap();
    let env = vec![
        ("PATH", "/usr/bin:/bin".to_string()),
        // No writable home: Apps give none the app could rely on.
        ("HOME", "/nonexistent".to_string()),
        ("DATABRICKS_APP_NAME", "agent-app".to_string()),
        ("DATABRICKS_HOST", workspace.host.clone()),
        ("DATABRICKS_WORKSPACE_ID", "1234567890123456".to_string()),
        ("DATABRICKS_CLIENT_ID", workspace.client_id.clone()),
        ("DATABRICKS_CLIENT_SECRET", CLIENT_SECRET.to_string()),
        // The database resource: no password. (Lakebase says PGSSLMODE=require; the test cluster
        // has no TLS.)
        ("PGHOST", pg_host.clone()),
        ("PGPORT", pg_port.to_string()),
        ("PGDATABASE", pg_database.clone()),
        ("PGUSER", workspace.client_id.clone()),
        ("PGSSLMODE", "disable".to_string()),
        // app.yaml / databricks.yml.
        ("MLFLOW_TRACKING_URI", "databricks".to_string()),
        ("MLFLOW_REGISTRY_URI", "databricks-uc".to_string()),
        ("MLFLOW_EXPERIMENT_ID", EXPERIMENT_ID.to_string()),
        ("AGENT_MODEL", ENDPOINT.to_string()),
        ("LAKEBASE_INSTANCE_NAME", INSTANCE.to_string()),
    ];
    let app = start_app(folder.path(), &env, logs.path().join("first.log")).await;
    let client = server::http_client::new();

    // The page keeps chats (no "Ephemeral"), for the forwarded user.
    let page = proxied(client.get(app.url("/"))).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains(">Ephemeral<"), "a bound database keeps the chats");
    assert!(page.contains("ana"), "the forwarded user is shown");

    // A chat, as the page sends it: answered by Model Serving, saved in Lakebase.
    model.push(Reply::tool_call("get_current_time", "{}")).push(Reply::text("It is noon in the workspace."));
    let chat = format!("chat-{}", uuid::Uuid::new_v4());
    let mut body = chat_request(&chat, &[], "What time is it?");
    body["chat"] = json!({"id": chat, "position": 0, "question_id": "q-1", "answer_id": "a-1"});
    let stream =
        crate::common::read_stream(proxied(client.post(app.url("/api/chat")).json(&body)).send().await.unwrap()).await;
    assert_eq!(stream.status, 200, "{}", stream.raw);
    assert!(stream.raw.contains("It is noon in the workspace."), "{}", stream.raw);
    let stored = wait_for_answer(&client, &app, &chat).await;
    let answer_id = stored["messages"][1]["id"].as_str().unwrap().to_string();

    // A vote: saved, and an assessment on the answer's trace in the experiment.
    let vote = json!({"chatId": chat, "messageId": answer_id, "feedbackType": "thumbs_up"});
    let resp = proxied(client.post(app.url("/api/feedback")).json(&vote)).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());

    // The trace reached the experiment the app was bound to, signed as the app.
    let trace_id = stored["messages"][1]["traceId"].as_str().or(stored["messages"][1]["trace_id"].as_str());
    let trace_id = trace_id.expect("the answer has its trace id").to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    while workspace.calls(&format!("PUT /upload/{trace_id}")).is_empty() {
        assert!(Instant::now() < deadline, "the trace was not exported: {:?}\n{}", workspace.all(), app.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let starts = workspace.calls("POST /api/3.0/mlflow/traces");
    let start = starts
        .iter()
        .find(|(_, body)| body["trace"]["trace_info"]["trace_id"] == trace_id.as_str())
        .expect("StartTraceV3 for the answer's trace");
    assert_eq!(start.0, format!("Bearer {SP_TOKEN}"));
    assert_eq!(start.1["trace"]["trace_info"]["trace_location"]["mlflow_experiment"]["experiment_id"], EXPERIMENT_ID);
    let assessments = workspace.calls(&format!("POST /api/3.0/mlflow/traces/{trace_id}/assessments"));
    assert_eq!(assessments.len(), 1, "{:?}", workspace.all());
    assert_eq!(assessments[0].1["assessment"]["assessment_name"], "user_feedback", "{:?}", assessments[0].1);

    // The database password came from the credential API, asked as the app, for the instance.
    let credentials = workspace.calls("POST /api/2.0/database/credentials");
    assert!(!credentials.is_empty() && credentials.iter().all(|(b, _)| b == &format!("Bearer {SP_TOKEN}")));
    assert!(
        workspace
            .calls("POST /serving-endpoints/chat/completions")
            .iter()
            .all(|(b, _)| b == &format!("Bearer {SP_TOKEN}"))
    );

    // The platform restarts the app (a redeploy, a crash): the chat and the vote are still there.
    let logs_first = app.stop();
    for secret in [CLIENT_SECRET, SP_TOKEN, db_password.as_str()] {
        assert!(!logs_first.contains(secret), "a credential reached the log:\n{logs_first}");
    }
    let app = start_app(folder.path(), &env, logs.path().join("second.log")).await;
    let resp = proxied(client.get(app.url(&format!("/api/chat/{chat}")))).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let again: Value = resp.json().await.unwrap();
    assert_eq!(again["messages"][1]["text"], "It is noon in the workspace.", "{again}");
    assert_eq!(again["messages"][1]["vote"], true, "{again}");
    let history: Value = proxied(client.get(app.url("/api/history"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(history["chats"][0]["id"], chat.as_str(), "{history}");
    // Another user sees none of it.
    let bobs: Value = client
        .get(app.url("/api/history"))
        .header("x-forwarded-email", "bob@example.com")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bobs["chats"], json!([]));
    app.stop();

    // No database bound: the page says so ("Ephemeral") instead of offering a history it would lose.
    // With a Genie space acting as the user (AGENT_MCP_CONFIG), the page names the scope the user's
    // token lacks.
    let mcp = logs.path().join("mcp.json");
    std::fs::write(&mcp, r#"{"mcpServers": {"sales": {"databricks": "genie/01f0", "auth": "user"}}}"#).unwrap();
    let mut no_db: Vec<(&str, String)> = env.iter().filter(|(k, _)| !k.starts_with("PG")).cloned().collect();
    no_db.push(("AGENT_MCP_CONFIG", mcp.display().to_string()));
    let app = start_app(folder.path(), &no_db, logs.path().join("no-db.log")).await;
    let page = proxied(client.get(app.url("/"))).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(">Ephemeral<"), "without a database the page says Ephemeral");
    assert!(app.logs().contains("no database is bound"), "{}", app.logs());
    assert!(page.contains(r#"<strong class="missing-scopes">genie<"#), "the banner names the scope");
    assert!(page.contains("user_api_scopes"), "and says where to add it");
    // A token that grants it: no banner.
    let granted = "eyJhbGciOiJub25lIn0.eyJzY29wZSI6ImdlbmllIHNxbCJ9.x";
    let page = client
        .get(app.url("/"))
        .header("x-forwarded-email", "ana@example.com")
        .header("x-forwarded-access-token", granted)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("missing-scopes"), "a token with the scope gets no banner");
    app.stop();

    // DATABRICKS_HOST as a bare hostname, as some platforms give it: read as https://.
    let bare: Vec<(&str, String)> =
        no_db
            .iter()
            .map(|(k, v)| {
                if *k == "DATABRICKS_HOST" {
                    (*k, v.trim_start_matches("http://").to_string())
                } else {
                    (*k, v.clone())
                }
            })
            .collect();
    let app = start_app(folder.path(), &bare, logs.path().join("bare-host.log")).await;
    let info: Value = client.get(app.url("/agent/info")).send().await.unwrap().json().await.unwrap();
    let host = workspace.host.trim_start_matches("http://");
    assert_eq!(info["workspace"]["host"], format!("https://{host}"), "{info}");
    assert_eq!(info["name"], "agent-app");
    app.stop();
}

/// Polls the saved chat until its answer is complete.
async fn wait_for_answer(client: &reqwest::Client, app: &App, chat: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let resp = proxied(client.get(app.url(&format!("/api/chat/{chat}")))).send().await.unwrap();
        if resp.status() == 200 {
            let body: Value = resp.json().await.unwrap();
            if body["messages"][1]["status"] == "complete" {
                return body;
            }
            assert!(Instant::now() < deadline, "the answer was not saved complete: {body}");
        }
        assert!(Instant::now() < deadline, "the chat was not saved:\n{}", app.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
