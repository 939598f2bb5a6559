//! The HTTP API (spec §1): `POST /invocations`, `POST /responses`, `GET /health`, `GET /agent/info`;
//! and the chat UI's stream, `POST /api/chat`.

pub mod error;
pub mod meta;
pub mod responses;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/invocations", post(responses::create))
        .route("/responses", post(responses::create))
        .route("/api/chat", post(responses::chat))
        .route("/health", get(meta::health))
        .route("/agent/info", get(meta::info))
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.settings.max_request_bytes))
        .with_state(state)
}
