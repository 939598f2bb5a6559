//! The API describes itself: `/openapi.json` is an OpenAPI 3.1 document whose schemas are those of
//! the types the server speaks, checked by Python's `jsonschema` against real requests, responses
//! and stream events of this server; `/docs` is the page that shows it (Swagger UI's files come
//! from npm, served from the site).

use std::collections::BTreeSet;
use std::process::Command;

use fake_model::Reply;
use serde_json::{Value, json};

use crate::common::*;

/// Every `$ref` in `value`.
fn refs(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                out.insert(target.clone());
            }
            map.values().for_each(|v| refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_api_description_matches_what_the_server_sends() {
    let server = start().await;
    let (status, document) = server.get("/openapi.json", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(document["openapi"], "3.1.0");
    for (path, method) in [
        ("/invocations", "post"),
        ("/responses", "post"),
        ("/responses/{id}", "get"),
        ("/responses/{id}/cancel", "post"),
        ("/health", "get"),
        ("/agent/info", "get"),
    ] {
        assert!(document["paths"][path][method].is_object(), "{method} {path} is described");
    }
    let schemas = document["components"]["schemas"].as_object().unwrap();
    for name in ["ResponsesRequest", "ResponseObject", "StreamEvent", "Item", "Error"] {
        assert!(schemas.contains_key(name), "{name} is a component");
    }
    let mut targets = BTreeSet::new();
    refs(&document, &mut targets);
    for target in &targets {
        let name = target.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("{target} points elsewhere"));
        assert!(schemas.contains_key(name), "{target} resolves");
    }
    let request = &document["paths"]["/invocations"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(request["$ref"], "#/components/schemas/ResponsesRequest");
    assert!(schemas["ResponsesRequest"]["properties"]["stream"].is_object(), "`stream` is described");

    // Real traffic of this server, to check against the document.
    let asked = json!({"input": [
        {"role": "system", "content": "Be brief."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "time?"}]},
    ], "context": {"conversation_id": "c1", "user_id": "u1"}, "custom_inputs": {"k": 1}, "temperature": 0.2});
    server.fake.push(Reply::tool_call("get_current_time", "{}"));
    server.fake.push(Reply::text("It is noon."));
    let (status, response) = server.post("/invocations", asked.clone()).await;
    assert_eq!(status, 200, "{response}");
    server.fake.push(Reply::tool_call("get_current_time", "{}"));
    server.fake.push(Reply::text("It is noon."));
    let mut streamed = asked.clone();
    streamed["stream"] = json!(true);
    let events = server.stream("/responses", streamed.clone(), &[]).await.json();
    assert!(events.len() > 8, "{events:?}");
    let (status, error) = server.post("/invocations", json!({"input": "not a list"})).await;
    assert_eq!(status, 400);
    let samples = json!({
        "ResponsesRequest": [asked, streamed, user("hi")],
        "ResponseObject": [response],
        "StreamEvent": events,
        "Error": [error],
    });

    // Python's jsonschema is the judge (the MCP test venv has it).
    let Some(python) = crate::mcp::python() else { return };
    let out = validate(&python, &document, &samples);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}{}", String::from_utf8_lossy(&out.stderr));
    assert!(report.contains(" 0 failures"), "{report}");

    // A sample that breaks the schema is caught (the judge can fail).
    let broken = json!({"ResponsesRequest": [{"input": "not a list"}]});
    let out = validate(&python, &document, &broken);
    assert!(!out.status.success(), "an invalid request passed: {}", String::from_utf8_lossy(&out.stdout));
}

/// Runs tests/openapi/validate.py on `document` and `samples`.
fn validate(python: &str, document: &Value, samples: &Value) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("openapi.json"), document.to_string()).unwrap();
    std::fs::write(dir.path().join("samples.json"), samples.to_string()).unwrap();
    Command::new(python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openapi/validate.py"))
        .arg(dir.path().join("openapi.json"))
        .arg(dir.path().join("samples.json"))
        .output()
        .unwrap()
}

#[tokio::test]
async fn the_docs_page_loads_swagger_ui_from_the_site() {
    let server = start().await;
    let page = server.client.get(format!("{}/docs", server.url)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    let html = page.text().await.unwrap();
    for asset in ["/api-docs/swagger-ui-bundle.js", "/api-docs/init.js", "/api-docs/swagger-ui.css", "/openapi.json"] {
        assert!(html.contains(asset), "{asset} in {html}");
    }
    // Swagger UI runs under the app's policy: scripts from this origin only, no eval.
    assert!(csp.contains("script-src 'self'") && !csp.contains(" 'unsafe-eval'"), "{csp}");
}
