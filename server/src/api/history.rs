//! The chat page's history routes (the reference's paths, docs/reference.md §7.2): list, read, rename, delete
//! chats, and thumbs up/down. Every call is the forwarded user's; another user's chat is not found.

use app::history::{ChatPage, ChatUpdate, Feedback, StoredChat};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::error::ApiError;
use crate::identity::Identity;
use crate::state::AppState;
use crate::store::ChatStore;

fn store(state: &AppState) -> Result<&ChatStore, ApiError> {
    state.store.as_ref().ok_or_else(|| ApiError::not_found("Chat history is off (AGENT_CHAT_HISTORY=false)"))
}

/// A JSON body, or a 400 in the API's `{"detail"}` shape saying what is wrong with it.
fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("Invalid JSON in request body: {e}")))
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    #[serde(default = "default_limit")]
    limit: i64,
    ending_before: Option<i64>,
}

fn default_limit() -> i64 {
    20
}

/// `GET /api/history?limit=20&ending_before=<updated_at>`
pub async fn list(
    State(state): State<AppState>,
    Identity { key: owner, .. }: Identity,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<ChatPage>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(format!("Invalid query: {}", e.body_text())))?;
    let limit = query.limit.clamp(1, 100);
    // One more than asked tells whether there is a next page.
    let mut chats = store(&state)?.list_chats(&owner, limit + 1, query.ending_before).await?;
    let has_more = chats.len() as i64 > limit;
    chats.truncate(limit as usize);
    Ok(Json(ChatPage { chats, has_more }))
}

/// `GET /api/chat/{id}`
pub async fn get(
    State(state): State<AppState>,
    Identity { key: owner, .. }: Identity,
    Path(id): Path<String>,
) -> Result<Json<StoredChat>, ApiError> {
    Ok(Json(store(&state)?.get_chat(&owner, &id).await?))
}

/// `PATCH /api/chat/{id}` `{"title"?, "visibility"?}`
pub async fn update(
    State(state): State<AppState>,
    Identity { key: owner, .. }: Identity,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let update: ChatUpdate = json_body(&body)?;
    store(&state)?.update_chat(&owner, &id, update.title.as_deref(), update.visibility).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/chat/{id}`
pub async fn delete(
    State(state): State<AppState>,
    Identity { key: owner, .. }: Identity,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    store(&state)?.delete_chat(&owner, &id).await?;
    super::quota::forget(&state, &owner);
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/feedback` `{"chatId", "messageId", "feedbackType": "thumbs_up" | "thumbs_down"}`. The
/// vote is stored, then handed to the feedback sink with the answer's trace id (an MLflow assessment
/// once tracing is configured; `mlflowAssessmentId` is null otherwise). A sink failure does not undo
/// the stored vote.
pub async fn feedback(
    State(state): State<AppState>,
    Identity { key: owner, .. }: Identity,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let feedback: Feedback = json_body(&body)?;
    let up = match feedback.feedback_type.as_str() {
        "thumbs_up" => true,
        "thumbs_down" => false,
        other => {
            return Err(ApiError::bad_request(format!("feedbackType must be thumbs_up or thumbs_down, not {other:?}")));
        }
    };
    let user = owner;
    let store = store(&state)?;
    let target = store.vote(&user, &feedback.chat_id, &feedback.message_id, up).await?;
    let assessment = match &target.trace_id {
        Some(trace_id) => match state.feedback.record(trace_id, &user, up, target.assessment_id.as_deref()).await {
            Ok(Some(id)) => {
                if target.assessment_id.as_deref() != Some(id.as_str())
                    && let Err(error) = store.set_vote_assessment(&feedback.chat_id, &feedback.message_id, &id).await
                {
                    tracing::warn!(%error, "the vote's assessment id was not saved");
                }
                Some(id)
            }
            Ok(None) => None,
            Err(error) => {
                tracing::warn!(%error, "feedback stored, but not recorded on its trace");
                None
            }
        },
        None => None,
    };
    Ok(Json(json!({"success": true, "mlflowAssessmentId": assessment})))
}
