//! Background responses over HTTP (docs/reference.md §6.4): `POST /responses` with `"background": true` starts
//! one; `GET /responses/{id}` polls it, `GET /responses/{id}?stream=true&starting_after=N` replays
//! or resumes its events, `POST /responses/{id}/cancel` cancels it. Each user sees only their own.

use std::collections::HashMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::sse::event_stream;
use crate::background::BackgroundTasks;
use crate::identity::Identity;
use crate::run::RequestRun;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::recorder::Recorder;

fn tasks(state: &AppState) -> Result<&BackgroundTasks, ApiError> {
    state.background.as_ref().ok_or_else(|| {
        ApiError::bad_request(
            "Background responses need a database to keep the task in, and there is none: chat history is off \
             (AGENT_CHAT_HISTORY=false) or its database could not be opened",
        )
    })
}

fn store_error(id: &str, error: StoreError) -> ApiError {
    match error {
        StoreError::NotFound => ApiError::not_found(format!("Response with id '{id}' not found.")),
        other => {
            tracing::warn!(error = %other, "background response request failed");
            ApiError::unavailable(
                "Background responses are unavailable right now; try again later (the server log says why)",
            )
        }
    }
}

/// Starts the task; answers with the response in progress, or with its stream when `stream` is set
/// (the task goes on if the client hangs up, and the stream can be resumed).
pub async fn start(
    state: &AppState,
    owner: String,
    run: RequestRun,
    recorder: Option<Recorder>,
    recorded: Option<String>,
    stream: bool,
) -> Result<Response, ApiError> {
    let tasks = tasks(state)?;
    let response = tasks
        .start(owner, run, recorder, recorded)
        .await
        .map_err(|e| ApiError::unavailable(format!("Could not start the background response: {e}")))?;
    if !stream {
        return Ok(Json(response).into_response());
    }
    let id = response.id.clone().unwrap_or_default();
    Ok(event_stream(Body::from_stream(tasks.events(id, -1, state.settings.server.sse_keepalive()))))
}

/// `GET /responses/{id}`, `?stream=true` to read its events, `&starting_after=N` to resume.
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    Identity { key: owner, .. }: Identity,
) -> Result<Response, ApiError> {
    let tasks = tasks(&state)?;
    // A query string's "false" is false (not Python's truthy non-empty string).
    let stream =
        query.get("stream").is_some_and(|s| ["true", "1", "yes"].contains(&s.trim().to_ascii_lowercase().as_str()));
    let starting_after = match query.get("starting_after") {
        None => None,
        Some(_) if !stream => {
            return Err(ApiError::bad_request("starting_after can only be used with stream=true"));
        }
        Some(text) => Some(text.trim().parse::<i64>().ok().filter(|n| *n >= -1).ok_or_else(|| {
            ApiError::bad_request(format!("starting_after must be a sequence number (an integer >= 0), got '{text}'"))
        })?),
    };
    let response = tasks.get(&owner, &id).await.map_err(|e| store_error(&id, e))?;
    if !stream {
        return Ok(Json(response).into_response());
    }
    let events = tasks.events(id, starting_after.unwrap_or(-1), state.settings.server.sse_keepalive());
    Ok(event_stream(Body::from_stream(events)))
}

/// `POST /responses/{id}/cancel`: stops the task (wherever it runs) and answers with it, cancelled.
/// A task that already ended is left as it is (cancelling twice is harmless).
pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Identity { key: owner, .. }: Identity,
) -> Result<Response, ApiError> {
    let tasks = tasks(&state)?;
    let response = tasks.cancel(&owner, &id).await.map_err(|e| store_error(&id, e))?;
    Ok(Json(response).into_response())
}
