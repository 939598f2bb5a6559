//! Per-user caps on what one user can make the server hold: background responses running, bytes
//! stored. (Request bytes in flight are capped where bodies are read: `listener`.) Each refusal is
//! in the API's shape, and names the setting.

use axum::http::StatusCode;

use super::error::ApiError;
use crate::state::AppState;

/// Refuses a new background response when the user already runs their share.
pub fn check_background(state: &AppState, owner: &str) -> Result<(), ApiError> {
    let max = state.settings.limits.max_background_tasks_per_user;
    let Some(tasks) = &state.background else { return Ok(()) };
    if max > 0 && tasks.running_for(owner) >= max {
        return Err(ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            detail: format!(
                "Too many background responses running: at most {max} per user (AGENT_MAX_BACKGROUND_TASKS_PER_USER); \
                 wait for one to finish or cancel it"
            ),
        });
    }
    Ok(())
}

/// Refuses to store more for a user past their quota; else counts `adding` (what this request
/// stores, about) towards it. A database that cannot say is no reason to refuse (the write that
/// follows will tell).
pub async fn check_storage(state: &AppState, owner: &str, adding: usize) -> Result<(), ApiError> {
    let max = state.settings.limits.max_stored_bytes_per_user;
    let Some(store) = &state.store else { return Ok(()) };
    if max == 0 {
        return Ok(());
    }
    let used = match state.storage_usage.used(store, owner).await {
        Ok(used) => used,
        Err(error) => {
            tracing::warn!(%error, "could not add up a user's stored bytes");
            return Ok(());
        }
    };
    if used.max(0) as u64 >= max {
        return Err(ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            detail: format!(
                "Storage quota reached: you keep {used} bytes of chats and responses, at most {max} per user \
                 (AGENT_MAX_STORED_BYTES_PER_USER); delete some chats to go on"
            ),
        });
    }
    state.storage_usage.add(owner, adding);
    Ok(())
}

/// The user deleted something: add up again next time.
pub fn forget(state: &AppState, owner: &str) {
    state.storage_usage.forget(owner);
}
