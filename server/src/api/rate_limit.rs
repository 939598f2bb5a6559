//! A per-user rate limit on the routes that run the agent (`AGENT_RATE_LIMIT_PER_MINUTE`), keyed by
//! the user the Apps proxy forwards, not by address: behind the proxy every request comes from the
//! same one. Requests over the limit get 429 in the API's error shape, with `Retry-After`.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use super::error::ApiError;
use crate::identity::{forwarded_user, user_key};

#[derive(Clone)]
pub struct UserRateLimit {
    limiter: Arc<DefaultKeyedRateLimiter<String>>,
    per_minute: u32,
    checks: Arc<AtomicU64>,
}

impl UserRateLimit {
    /// `None` when `per_minute` is 0 (no limit). `burst` requests may come at once (default: a
    /// minute's worth).
    pub fn new(per_minute: u32, burst: Option<u32>) -> Option<Self> {
        let rate = NonZeroU32::new(per_minute)?;
        let burst = burst.and_then(NonZeroU32::new).unwrap_or(rate);
        let quota = Quota::per_minute(rate).allow_burst(burst);
        Some(Self { limiter: Arc::new(DefaultKeyedRateLimiter::keyed(quota)), per_minute, checks: Arc::default() })
    }
}

pub async fn limit(State(limit): State<UserRateLimit>, request: Request, next: Next) -> Response {
    let user = user_key(&forwarded_user(request.headers()));
    // Forget idle users now and then, so the table stays as small as the active user count.
    if limit.checks.fetch_add(1, Ordering::Relaxed) % 1024 == 1023 {
        limit.limiter.retain_recent();
    }
    match limit.limiter.check_key(&user) {
        Ok(()) => next.run(request).await,
        Err(not_until) => {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            tracing::warn!(%user, "rate limit reached");
            let mut response = ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                detail: format!(
                    "Rate limit exceeded: at most {} requests a minute per user (AGENT_RATE_LIMIT_PER_MINUTE); retry in {seconds} s",
                    limit.per_minute
                ),
            }
            .into_response();
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            // The request body was not read: the connection cannot carry another request, and the
            // client must be told so rather than find it closed.
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}
