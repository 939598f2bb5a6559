//! Per-user caps on what one user can make the server hold: background responses running, bytes
//! stored. (Request bytes in flight are capped where bodies are read: `listener`.) Each refusal is
//! in the API's shape, and names the setting.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::StatusCode;

use super::error::ApiError;
use crate::state::AppState;

/// How long a user's stored total is reused before it is added up again (adding up reads all their
/// rows): a user can pass the quota by at most what they store in that time.
const USAGE_TTL: Duration = Duration::from_secs(30);

/// Each user's stored bytes, as last added up.
#[derive(Default)]
pub struct StorageUsage(Mutex<HashMap<String, (Instant, i64)>>);

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
    let cached = state.storage_usage.0.lock().expect("usage lock").get(owner).copied();
    let used = match cached {
        Some((at, used)) if at.elapsed() < USAGE_TTL => used,
        _ => match store.stored_bytes(owner).await {
            Ok(used) => used,
            Err(error) => {
                tracing::warn!(%error, "could not add up a user's stored bytes");
                return Ok(());
            }
        },
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
    let at = cached.map_or_else(Instant::now, |(at, _)| if at.elapsed() < USAGE_TTL { at } else { Instant::now() });
    state.storage_usage.0.lock().expect("usage lock").insert(owner.to_string(), (at, used + adding as i64));
    Ok(())
}

/// The user deleted something: add up again next time.
pub fn forget(state: &AppState, owner: &str) {
    state.storage_usage.0.lock().expect("usage lock").remove(owner);
}
