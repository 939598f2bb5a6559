//! The API describes itself, as the reference's FastAPI server does: `GET /openapi.json` (OpenAPI
//! 3.1; its schemas are generated from the request and response types the server itself uses,
//! `app::responses`) and `GET /docs`, a page to read and try it (Swagger UI, from npm's
//! `swagger-ui-dist`, which `build_site` copies into the site: nothing is fetched from elsewhere).

use std::sync::OnceLock;

use app::responses::{ResponseObject, ResponsesRequest, StreamEvent};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::state::AppState;

/// Where `build_site` puts Swagger UI's files (and `public/api-docs/init.js`, which starts it).
const ASSETS: &str = "/api-docs";

pub async fn openapi(State(state): State<AppState>) -> Response {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let body = DOCUMENT.get_or_init(|| document(&state.runner.agent.name).to_string());
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body.as_str()).into_response()
}

pub async fn docs() -> Html<String> {
    Html(format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>agent-app API</title><link rel="stylesheet" href="{ASSETS}/swagger-ui.css"></head>
<body><div id="swagger-ui"><p style="font-family: sans-serif; margin: 2rem">The API's description is
<a href="/openapi.json">/openapi.json</a>. This page shows it once the site is built (scripts/run.sh, or
<code>build_site</code> in scripts/lib.sh).</p></div>
<script src="{ASSETS}/swagger-ui-bundle.js"></script><script src="{ASSETS}/init.js"></script></body></html>"#
    ))
}

/// The OpenAPI document.
pub fn document(agent_name: &str) -> Value {
    let mut generator =
        SchemaSettings::draft2020_12().with(|s| s.definitions_path = "/components/schemas".into()).into_generator();
    let request = generator.subschema_for::<ResponsesRequest>();
    let response = generator.subschema_for::<ResponseObject>();
    let event = generator.subschema_for::<StreamEvent>();
    let mut schemas = generator.take_definitions(true);
    // `stream` is read before the request is parsed (a Python-truthy value), so it is not a field
    // of the type.
    if let Some(properties) = schemas.get_mut("ResponsesRequest").and_then(|s| s.get_mut("properties")) {
        properties["stream"] = json!({
            "description": "Stream the answer as server-sent events (`text/event-stream`), one \
                            `StreamEvent` per `data:` line. Any truthy value streams, as in MLflow.",
            "default": false
        });
    }
    schemas.insert(
        "Error".into(),
        json!({"type": "object", "required": ["detail"], "properties": {"detail": {"type": "string"}},
               "description": "Every error, as the reference reports it."}),
    );
    let error = |description: &str| json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let answer = json!({
        "requestBody": {"required": true, "content": {"application/json": {"schema": request}}},
        "parameters": [{
            "name": "x-mlflow-return-trace-id", "in": "header", "required": false,
            "description": "`true`: the response's `metadata.trace_id` names its MLflow trace.",
            "schema": {"type": "string", "enum": ["true", "false"]}
        }],
        "responses": {
            "200": {
                "description": "The agent's answer: a response object, or its stream of events.",
                "content": {
                    "application/json": {"schema": response},
                    "text/event-stream": {"schema": event}
                }
            },
            "400": error("The body is not a valid request (the message says which field)."),
            "401": error("No valid credentials (on Databricks Apps, the platform checks them first)."),
            "413": error("The body is larger than AGENT_MAX_REQUEST_BYTES."),
            "429": error("Too many requests for this user (AGENT_RATE_LIMIT_PER_MINUTE); see Retry-After."),
            "503": error("The model or a store is unavailable; try again.")
        }
    });
    let operation = |id: &str, summary: &str| {
        let mut op = answer.clone();
        op["operationId"] = json!(id);
        op["summary"] = json!(summary);
        op["tags"] = json!(["Responses"]);
        op
    };
    let id_parameter = json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string"}});
    let object = |description: &str| json!({"description": description, "content": {"application/json": {"schema": {"type": "object"}}}});
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": format!("{agent_name}: agent-app"),
            "version": env!("CARGO_PKG_VERSION"),
            "description": "An MLflow ResponsesAgent server (the OpenAI Responses API's shape). \
                            `/invocations` and `/responses` are the same endpoint."
        },
        "paths": {
            "/invocations": {"post": operation("invocations", "Ask the agent (MLflow AgentServer's endpoint)")},
            "/responses": {"post": operation("responses", "Ask the agent (OpenAI Responses API path)")},
            "/responses/{id}": {"get": {
                "operationId": "get_response", "tags": ["Background responses"],
                "summary": "A background response (`\"background\": true`): its state, or its events",
                "parameters": [id_parameter.clone(),
                    {"name": "stream", "in": "query", "schema": {"type": "boolean"}},
                    {"name": "starting_after", "in": "query", "schema": {"type": "integer", "minimum": -1},
                     "description": "Resume the stream after this sequence number (with stream=true)."}],
                "responses": {
                    "200": {"description": "The response, or its events from the start (or after `starting_after`).",
                            "content": {"application/json": {"schema": response}, "text/event-stream": {"schema": event}}},
                    "404": error("No such response of this user.")
                }
            }},
            "/responses/{id}/cancel": {"post": {
                "operationId": "cancel_response", "tags": ["Background responses"],
                "summary": "Stop a background response (harmless when it already ended)",
                "parameters": [id_parameter],
                "responses": {"200": {"description": "The response, cancelled.", "content": {"application/json": {"schema": response}}},
                              "404": error("No such response of this user.")}
            }},
            "/health": {"get": {"operationId": "health", "tags": ["Server"], "summary": "Liveness",
                                "responses": {"200": object("`{\"status\": \"healthy\"}`")}}},
            "/agent/info": {"get": {"operationId": "agent_info", "tags": ["Server"],
                                    "summary": "The agent, its model and the tracing destination",
                                    "responses": {"200": object("What the server runs.")}}},
        },
        "components": {"schemas": Value::Object(schemas.into_iter().collect::<Map<String, Value>>())}
    })
}
