//! `GET /health` and `GET /agent/info`.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::state::AppState;

/// The MLflow release whose AgentServer API this server implements (reported by `/agent/info`).
pub const MLFLOW_API_VERSION: &str = "3.17.2";

pub async fn health() -> Json<Value> {
    Json(json!({"status": "healthy"}))
}

/// The reference's fields, plus what answers (the model and its back end) and where traces go.
pub async fn info(State(state): State<AppState>) -> Json<Value> {
    let exporter = &state.observability.exporter;
    let tracing = match (exporter.destination(), exporter.stats()) {
        (Some(destination), Some(stats)) => {
            let count = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
            json!({
                "destination": destination,
                "exported": count(&stats.exported),
                "dropped": count(&stats.dropped),
                "failed": count(&stats.failed),
                "model_id": exporter.model_id(),
            })
        }
        _ => Value::Null,
    };
    Json(json!({
        "name": state.settings.server.app_name.as_deref().unwrap_or("mlflow_agent_server"),
        "use_case": "agent",
        // The MLflow AgentServer release whose API this server implements.
        "mlflow_version": MLFLOW_API_VERSION,
        "agent_api": "responses",
        "server": "agent-app",
        "version": env!("CARGO_PKG_VERSION"),
        "agent": state.runner.agent.name,
        "model": state.runner.agent.model,
        "backend": state.runner.model.backend(),
        "tools": state.runner.agent.tools.names(),
        "mcp_servers": state.runner.mcp.servers().map(|s| json!({"name": s.name, "location": s.location()})).collect::<Vec<_>>(),
        "workspace": state.workspace.as_ref().map(|w| json!({"host": w.host, "auth_type": w.auth_type()})),
        "tracing": tracing,
    }))
}
