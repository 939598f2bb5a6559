//! `discover-tools` against a stand-in workspace serving the Unity Catalog, Vector Search, Genie,
//! Apps and connections APIs (paginated, one section forbidden), run as a user runs it.

use std::net::SocketAddr;
use std::process::Command;

use axum::Router;
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

type Params = Query<std::collections::HashMap<String, String>>;

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer dapi-discover")
}

fn answer(headers: &HeaderMap, body: Value) -> Response {
    if !authorized(headers) {
        return (StatusCode::UNAUTHORIZED, "no").into_response();
    }
    axum::Json(body).into_response()
}

async fn workspace() -> String {
    let app = Router::new()
        .route(
            "/api/2.1/unity-catalog/catalogs",
            get(|h: HeaderMap| async move {
                answer(&h, json!({"catalogs": [{"name": "main"}, {"name": "system"}, {"name": "__databricks_internal"}]}))
            }),
        )
        .route(
            "/api/2.1/unity-catalog/schemas",
            get(|h: HeaderMap, Query(q): Params| async move {
                assert_eq!(q["catalog_name"], "main");
                answer(&h, json!({"schemas": [{"name": "tools"}, {"name": "information_schema"}]}))
            }),
        )
        .route(
            "/api/2.1/unity-catalog/functions",
            get(|h: HeaderMap, Query(q): Params| async move {
                // Two pages.
                match q.get("page_token").map(String::as_str) {
                    None => answer(&h, json!({"functions": [{"name": "lookup", "full_name": "main.tools.lookup", "comment": "Find a customer."}], "next_page_token": "p2"})),
                    Some("p2") => answer(&h, json!({"functions": [{"name": "refund", "full_name": "main.tools.refund"}]})),
                    Some(other) => panic!("unexpected page {other}"),
                }
            }),
        )
        .route(
            "/api/2.1/unity-catalog/tables",
            get(|h: HeaderMap| async move {
                answer(&h, json!({"tables": [{"name": "orders", "full_name": "main.tools.orders", "columns": [{"name": "id", "type_name": "LONG"}, {"name": "total", "type_name": "DOUBLE"}]}]}))
            }),
        )
        .route(
            "/api/2.0/vector-search/endpoints",
            get(|h: HeaderMap| async move { answer(&h, json!({"endpoints": [{"name": "vs1"}]})) }),
        )
        .route(
            "/api/2.0/vector-search/indexes",
            get(|h: HeaderMap, Query(q): Params| async move {
                assert_eq!(q["endpoint_name"], "vs1");
                answer(&h, json!({"vector_indexes": [{"name": "main.docs.manual_index"}]}))
            }),
        )
        .route(
            "/api/2.0/genie/spaces",
            get(|| async { (StatusCode::FORBIDDEN, r#"{"error_code": "PERMISSION_DENIED", "message": "no Genie for you"}"#) }),
        )
        .route(
            "/api/2.0/apps",
            get(|h: HeaderMap| async move {
                answer(&h, json!({"apps": [
                    {"name": "mcp-weather", "url": "https://mcp-weather-123.aws.databricksapps.com", "description": "Weather tools"},
                    {"name": "dashboard", "url": "https://dashboard-123.aws.databricksapps.com"}
                ]}))
            }),
        )
        .route(
            "/api/2.1/unity-catalog/connections",
            get(|h: HeaderMap| async move {
                answer(&h, json!({"connections": [
                    {"name": "github", "options": {"is_mcp_connection": "true"}, "comment": "GitHub MCP"},
                    {"name": "postgres", "options": {}}
                ]}))
            }),
        );
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn discover_tools(host: &str, args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_discover-tools"))
        .env_clear()
        .env("HOME", dir.path())
        .env("DATABRICKS_HOST", host)
        .env("DATABRICKS_TOKEN", "dapi-discover")
        .current_dir(dir.path())
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test]
async fn lists_what_the_workspace_offers_with_mcp_urls() {
    let host = workspace().await;
    let h = host.clone();
    let output = tokio::task::spawn_blocking(move || discover_tools(&h, &["--format", "json"])).await.unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let found: Value = serde_json::from_slice(&output.stdout).unwrap();
    let names = |key: &str| -> Vec<String> {
        found[key].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(
        names("uc_functions"),
        ["main.tools.lookup", "main.tools.refund"],
        "both pages, system catalogs skipped"
    );
    assert_eq!(found["uc_functions"][0]["mcp_url"], format!("{host}/api/2.0/mcp/functions/main/tools/lookup"));
    assert_eq!(
        found["uc_functions"][0]["agent_rs"],
        r#".mcp_server(McpServer::uc_function("main", "tools", "lookup"))"#
    );
    assert_eq!(found["tables"][0]["details"], "id long, total double");
    assert_eq!(
        found["vector_search_indexes"][0]["mcp_url"],
        format!("{host}/api/2.0/mcp/vector-search/main/docs/manual_index")
    );
    assert_eq!(names("mcp_apps"), ["mcp-weather"]);
    assert_eq!(found["mcp_apps"][0]["mcp_url"], "https://mcp-weather-123.aws.databricksapps.com/mcp");
    assert_eq!(names("mcp_connections"), ["github"]);
    assert_eq!(found["mcp_connections"][0]["mcp_url"], format!("{host}/api/2.0/mcp/external/github"));
    // The forbidden section is reported, the rest still listed.
    assert_eq!(found["genie_spaces"], json!([]));
    assert_eq!(found["errors"][0]["section"], "genie_spaces");
    assert!(found["errors"][0]["error"].as_str().unwrap().contains("no Genie for you"));
    let summary = String::from_utf8_lossy(&output.stderr);
    assert!(summary.contains("found 2 UC functions, 1 tables, 1 vector search indexes"), "{summary}");

    // The text report, written to a file; --catalog/--schema narrow the search.
    let h = host.clone();
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("tools.md");
    let r = report.to_str().unwrap().to_string();
    let output = tokio::task::spawn_blocking(move || {
        discover_tools(&h, &["--catalog", "main", "--schema", "tools", "--output", &r])
    })
    .await
    .unwrap();
    assert!(output.status.success());
    let text = std::fs::read_to_string(report).unwrap();
    assert!(
        text.contains("## Unity Catalog functions (2)") && text.contains("- main.tools.lookup: Find a customer."),
        "{text}"
    );
    assert!(text.contains("agent.rs: .mcp_server(McpServer::external(\"github\"))"), "{text}");
    assert!(text.contains("note: genie_spaces could not be listed"), "{text}");
}

#[tokio::test]
async fn bad_credentials_and_no_workspace_are_explained() {
    let host = workspace().await;
    let output = tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        Command::new(env!("CARGO_BIN_EXE_discover-tools"))
            .env_clear()
            .env("HOME", dir.path())
            .env("DATABRICKS_HOST", &host)
            .env("DATABRICKS_TOKEN", "wrong")
            .current_dir(dir.path())
            .args(["--format", "json"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let found: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(found["errors"][0]["error"].as_str().unwrap().contains("HTTP 401"), "{found}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("wrong"), "the token is not echoed");

    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_discover-tools"))
        .env_clear()
        .env("HOME", dir.path())
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("profile `DEFAULT`") || message.contains("no Databricks workspace"), "{message}");
}
