//! The local trace store over HTTP, for the `/traces` page and scripts: `GET /api/traces` (the
//! user's traces, newest first) and `GET /api/traces/{id}` (one trace, whole). Each user sees only
//! their own. When traces go to MLflow instead, these say where.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use crate::identity::Identity;
use crate::observability::local::LocalTraceStore;
use crate::observability::trace::TraceRecord;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct TraceQuery {
    #[serde(default = "default_limit")]
    pub limit: usize,
    /// Start time (ms since the epoch) of the last trace already shown.
    pub before: Option<i64>,
}

fn default_limit() -> usize {
    50
}

/// Where traces are, when they are not here.
pub fn elsewhere(state: &AppState) -> String {
    let o = &state.observability;
    match (o.exporter.destination(), &o.mlflow) {
        (_, Some(client)) => format!(
            "Traces go to MLflow at {} (experiment {}).",
            client.base(),
            o.experiment_id.as_deref().unwrap_or("?")
        ),
        _ => "Tracing is off (AGENT_TRACING=false).".into(),
    }
}

pub fn local_store(state: &AppState) -> Result<&LocalTraceStore, ApiError> {
    state.observability.local.as_ref().ok_or_else(|| ApiError::not_found(elsewhere(state)))
}

fn store_error(error: sqlx::Error) -> ApiError {
    tracing::warn!(%error, "local trace store failed");
    ApiError::unavailable(format!("The local trace store is unavailable: {error}"))
}

pub async fn list(
    State(state): State<AppState>,
    Identity { key: owner, .. }: Identity,
    query: Result<Query<TraceQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(format!("Invalid query: {}", e.body_text())))?;
    let limit = query.limit.clamp(1, 200);
    let before = query.before.map(|ms| ms.saturating_mul(1_000_000));
    let mut traces = local_store(&state)?.list(&owner, limit + 1, before).await.map_err(store_error)?;
    let has_more = traces.len() > limit;
    traces.truncate(limit);
    Ok(Json(json!({"traces": traces, "has_more": has_more})))
}

pub async fn get(
    State(state): State<AppState>,
    Identity { key: owner, .. }: Identity,
    Path(trace_id): Path<String>,
) -> Result<Json<TraceRecord>, ApiError> {
    match local_store(&state)?.get(&owner, &trace_id).await.map_err(store_error)? {
        Some(trace) => Ok(Json(trace)),
        None => Err(ApiError::not_found("Trace not found")),
    }
}
