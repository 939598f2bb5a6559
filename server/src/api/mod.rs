//! The HTTP API (docs/reference.md §1): `POST /invocations`, `POST /responses`, `GET /health`, `GET /agent/info`,
//! and their description (`GET /openapi.json`, `GET /docs`);
//! and the chat UI's stream, `POST /api/chat`, and its history routes (`/api/history`, `/api/chat/{id}`,
//! `/api/feedback`); background responses (`GET /responses/{id}`, `POST /responses/{id}/cancel`); the local traces (`/api/traces`, `/api/traces/{id}`).

pub mod background;
pub mod error;
pub mod guard;
pub mod history;
pub mod meta;
pub mod openapi;
pub mod quota;
pub mod rate_limit;
pub mod responses;
pub mod sse;
pub mod traces;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    // The routes that run the agent, rate-limited per user when a limit is set.
    let mut agent = Router::new()
        .route("/invocations", post(responses::create))
        .route("/responses", post(responses::create))
        .route("/api/chat", post(responses::chat));
    if let Some(limit) = rate_limit::UserRateLimit::new(
        state.settings.limits.rate_limit_per_minute,
        state.settings.limits.rate_limit_burst,
    ) {
        agent = agent.layer(axum::middleware::from_fn_with_state(limit, rate_limit::limit));
    }
    Router::new()
        .merge(agent)
        .route("/responses/{id}", get(background::get))
        .route("/responses/{id}/cancel", post(background::cancel))
        .route("/api/chat/{id}", get(history::get).patch(history::update).delete(history::delete))
        .route("/api/history", get(history::list))
        .route("/api/feedback", post(history::feedback))
        .route("/api/traces", get(traces::list))
        .route("/api/traces/{id}", get(traces::get))
        .route("/health", get(meta::health))
        .route("/agent/info", get(meta::info))
        .route("/openapi.json", get(openapi::openapi))
        .route("/docs", get(openapi::docs))
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.settings.limits.max_request_bytes))
        .layer(axum::middleware::from_fn_with_state(
            guard::AllowedOrigins(state.settings.server.allowed_origins.clone()),
            guard::same_origin,
        ))
        .with_state(state)
}
