//! Errors as the reference reports them: a status and `{"detail": "<message>"}`.

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: String,
}

impl ApiError {
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, detail: detail.into() }
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Self { status: StatusCode::INTERNAL_SERVER_ERROR, detail: detail.into() }
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self { status: StatusCode::NOT_FOUND, detail: detail.into() }
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self { status: StatusCode::SERVICE_UNAVAILABLE, detail: detail.into() }
    }

    /// A body that could not be read: too large (413), or broken off.
    pub fn from_body(rejection: BytesRejection, limit: usize) -> Self {
        let status = rejection.status();
        let detail = if status == StatusCode::PAYLOAD_TOO_LARGE {
            format!("Request body too large: at most {limit} bytes are accepted (AGENT_MAX_REQUEST_BYTES)")
        } else {
            format!("Could not read the request body: {}", rejection.body_text())
        };
        Self { status, detail }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match error {
            StoreError::NotFound => ApiError::not_found("Chat not found"),
            StoreError::Invalid(message) => ApiError::bad_request(message),
            // The database's own words stay in the log: they can name tables, constraints and
            // whether someone else's id exists.
            StoreError::Database(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                ApiError::bad_request("An id in this request is already in use: use new ids")
            }
            other => {
                tracing::warn!(error = %other, "chat history request failed");
                ApiError::unavailable(
                    "Chat history is unavailable right now; try again later (the server log says why)",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(serde_json::json!({"detail": self.detail}))).into_response()
    }
}

/// 405 in the reference's shape (axum adds the `allow` header).
pub async fn method_not_allowed() -> ApiError {
    ApiError { status: StatusCode::METHOD_NOT_ALLOWED, detail: "Method Not Allowed".into() }
}
