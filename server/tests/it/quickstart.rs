//! `quickstart` run non-interactively, as CI and scripts run it: offline (the embedded default), and
//! against a stand-in workspace (profile validated, experiment created then reused, bundle renamed).

use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// A copy of the checkout's files quickstart touches.
fn checkout() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for file in [".env.example", "databricks.yml"] {
        std::fs::copy(format!("{ROOT}/{file}"), dir.path().join(file)).unwrap();
    }
    dir
}

fn quickstart(dir: &std::path::Path, home: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_quickstart"))
        .env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn offline_sets_up_the_embedded_default() {
    let dir = checkout();
    let output = quickstart(dir.path(), dir.path(), &["--offline", "--yes"]);
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{out}{}", String::from_utf8_lossy(&output.stderr));
    assert!(out.contains("cargo (builds the app)"), "prerequisites are listed: {out}");
    assert!(out.contains("offline: the embedded model answers"), "{out}");
    let env = std::fs::read_to_string(dir.path().join(".env")).unwrap();
    assert_eq!(env, std::fs::read_to_string(dir.path().join(".env.example")).unwrap());
    // No workspace at all (no flag, no profile file): also the embedded default, not an error.
    std::fs::remove_file(dir.path().join(".env")).unwrap();
    let output = quickstart(dir.path(), dir.path(), &["--yes"]);
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("no Databricks workspace configured"));
}

#[derive(Clone, Default)]
struct Workspace {
    experiments: Arc<Mutex<Vec<(String, String)>>>,
    /// Lakebase database instances by name.
    instances: Arc<Mutex<Vec<String>>>,
}

/// `GET /api/2.0/database/instances/{name}` (the Database Instances API).
async fn get_instance(State(w): State<Workspace>, axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    if w.instances.lock().unwrap().contains(&name) {
        axum::Json(instance(&name)).into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": format!("Database instance '{name}' does not exist.")})),
        )
            .into_response()
    }
}

/// `POST /api/2.0/database/instances`.
async fn create_instance(State(w): State<Workspace>, axum::Json(body): axum::Json<Value>) -> Response {
    assert_eq!(body["capacity"], "CU_1", "{body}");
    let name = body["name"].as_str().unwrap().to_string();
    w.instances.lock().unwrap().push(name.clone());
    axum::Json(instance(&name)).into_response()
}

fn instance(name: &str) -> Value {
    json!({"name": name, "capacity": "CU_1", "state": "AVAILABLE",
           "read_write_dns": format!("instance-{name}.database.example.com"), "pg_version": "PG_VERSION_16"})
}

async fn me(headers: HeaderMap) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer dapi-quick") {
        return (StatusCode::UNAUTHORIZED, r#"{"message": "invalid token"}"#).into_response();
    }
    axum::Json(json!({"userName": "alice@example.com"})).into_response()
}

async fn get_by_name(
    State(w): State<Workspace>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let name = &q["experiment_name"];
    match w.experiments.lock().unwrap().iter().find(|(n, _)| n == name) {
        Some((_, id)) => axum::Json(json!({"experiment": {"experiment_id": id, "name": name}})).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such experiment"})),
        )
            .into_response(),
    }
}

async fn create(State(w): State<Workspace>, axum::Json(body): axum::Json<Value>) -> Response {
    let mut experiments = w.experiments.lock().unwrap();
    let id = format!("{}", 100 + experiments.len());
    experiments.push((body["name"].as_str().unwrap().to_string(), id.clone()));
    axum::Json(json!({"experiment_id": id})).into_response()
}

#[tokio::test]
async fn a_profile_gets_an_experiment_and_the_bundle_a_name() {
    let workspace = Workspace::default();
    let app = Router::new()
        .route("/api/2.0/preview/scim/v2/Me", get(me))
        .route("/api/2.0/mlflow/experiments/get-by-name", get(get_by_name))
        .route("/api/2.0/mlflow/experiments/create", post(create))
        .route("/api/2.0/database/instances", post(create_instance))
        .route("/api/2.0/database/instances/{name}", get(get_instance))
        .with_state(workspace.clone());
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
    let host = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = checkout();
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join(".databrickscfg"), format!("[dev]\nhost = {host}\ntoken = dapi-quick\n")).unwrap();
    let (d, h) = (dir.path().to_path_buf(), home.path().to_path_buf());
    let run = move |args: Vec<&'static str>| {
        let (d, h) = (d.clone(), h.clone());
        tokio::task::spawn_blocking(move || quickstart(&d, &h, &args))
    };
    let output =
        run(vec!["--profile", "dev", "--app-name", "my-agent", "--lakebase", "agent-chats", "--yes"]).await.unwrap();
    let out = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(output.status.success(), "{out}{}", String::from_utf8_lossy(&output.stderr));
    assert!(out.contains("as alice@example.com (pat)"), "{out}");
    assert!(out.contains("created MLflow experiment /Users/alice@example.com/agents-on-apps (id 100)"), "{out}");
    let env = std::fs::read_to_string(dir.path().join(".env")).unwrap();
    assert!(out.contains("created Lakebase instance agent-chats (AVAILABLE)"), "{out}");
    for line in [
        "DATABRICKS_CONFIG_PROFILE=dev",
        "MLFLOW_TRACKING_URI=databricks",
        "MLFLOW_EXPERIMENT_ID=100",
        "LAKEBASE_INSTANCE_NAME=agent-chats",
        "PGHOST=instance-agent-chats.database.example.com",
        "PGDATABASE=databricks_postgres",
        "PGUSER=alice@example.com",
    ] {
        assert!(env.lines().any(|l| l == line), "{line} in .env:\n{env}");
    }
    assert!(!env.contains("dapi-quick"), "the token stays in the profile");
    // The bundle deploys against the same experiment and database (its variables' defaults).
    let bundle = std::fs::read_to_string(dir.path().join("databricks.yml")).unwrap();
    assert!(bundle.contains("      name: my-agent\n") && bundle.contains("bundle:\n  name: agent_app"), "{bundle}");
    let default_of = |variable: &str| {
        let block = bundle.split(&format!("\n  {variable}:\n")).nth(1).unwrap_or_default();
        block
            .lines()
            .take_while(|l| l.starts_with("    "))
            .find_map(|l| l.strip_prefix("    default: ").map(str::to_string))
    };
    assert_eq!(default_of("experiment_id").as_deref(), Some("\"100\""), "{bundle}");
    assert_eq!(default_of("lakebase_instance").as_deref(), Some("\"agent-chats\""));
    assert_eq!(default_of("lakebase_database").as_deref(), Some("\"databricks_postgres\""));

    // Again: the experiment is reused, .env updated in place (one line per key).
    let output = run(vec!["--profile", "dev", "--lakebase", "agent-chats", "--yes"]).await.unwrap();
    let out = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(out.contains("reusing MLflow experiment") && out.contains("(id 100)"), "{out}");
    assert!(out.contains("reusing Lakebase instance agent-chats"), "{out}");
    assert_eq!(workspace.experiments.lock().unwrap().len(), 1);
    assert_eq!(workspace.instances.lock().unwrap().len(), 1);
    let bundle = std::fs::read_to_string(dir.path().join("databricks.yml")).unwrap();
    assert_eq!(bundle.matches("default: \"100\"").count(), 1, "{bundle}");
    let env = std::fs::read_to_string(dir.path().join(".env")).unwrap();
    assert_eq!(env.lines().filter(|l| l.starts_with("MLFLOW_EXPERIMENT_ID=")).count(), 1);

    // A profile that does not exist, or a credential the workspace refuses: a clear failure.
    let output = run(vec!["--profile", "prod", "--yes"]).await.unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("profile `prod` is not in"));
    std::fs::write(home.path().join(".databrickscfg"), format!("[dev]\nhost = {host}\ntoken = expired\n")).unwrap();
    let output = run(vec!["--profile", "dev", "--yes"]).await.unwrap();
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("did not accept the credential") && err.contains("HTTP 401"), "{err}");
}
