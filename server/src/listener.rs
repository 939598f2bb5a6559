//! The connection loop. Slow or idle clients cannot hold the server: a request's head must arrive
//! within the header timeout (which also closes keep-alive connections left idle that long), its
//! body within the body timeout, and at most `max_connections` are open at once (kept below the
//! open-file limit, so accepting never fails for want of descriptors and `/health` keeps answering:
//! a connection over the cap is closed at once, and held ones are released by the timeouts).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// How long clients may take, and how many may be connected.
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    /// A request's head (and the next one on a kept-alive connection) must arrive within this.
    pub header_timeout: Duration,
    /// A request's body must arrive whole within this.
    pub body_timeout: Duration,
    /// Largest request body read (`AGENT_MAX_REQUEST_BYTES`).
    pub max_body_bytes: usize,
    /// Request bytes one user may have in flight at once (bodies being read or handled); more is
    /// refused with 429 before it is read. 0: no cap.
    pub max_inflight_bytes_per_user: usize,
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(60),
            max_body_bytes: 10 * 1024 * 1024,
            max_inflight_bytes_per_user: 32 * 1024 * 1024,
            max_connections: 4096,
        }
    }
}

/// Raises this process's open-file limit to its hard maximum (as Go's runtime does) and returns
/// the connection cap that fits under it: three quarters of it (the rest is for the database,
/// model and MCP connections, files), at most 10,000.
pub fn default_max_connections() -> usize {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    let soft = unsafe {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 768;
        }
        let wanted = limit.rlim_max.min(65_536);
        if wanted > limit.rlim_cur {
            let raised = libc::rlimit { rlim_cur: wanted, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = wanted;
            }
        }
        limit.rlim_cur
    };
    ((soft as usize).saturating_mul(3) / 4).clamp(16, 10_000)
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets open requests finish (up to
/// `grace`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let bodies = Bodies {
        timeout: limits.body_timeout,
        max_bytes: limits.max_body_bytes,
        per_user: limits.max_inflight_bytes_per_user,
        inflight: Default::default(),
    };
    let app = app.layer(axum::middleware::from_fn_with_state(bodies, read_body_in_time));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    // Connections that have not said anything yet are simply dropped at shutdown (their watcher
    // would otherwise hold it up until their first bytes or the header timeout).
    let stopping = tokio_util::sync::CancellationToken::new();
    let mut refused: u64 = 0;
    tokio::pin!(shutdown);
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors, or a connection reset before it was accepted: wait a
                    // moment rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refused += 1;
            if refused.is_power_of_two() {
                tracing::warn!(
                    refused,
                    max = limits.max_connections,
                    "connection cap reached (AGENT_MAX_CONNECTIONS); closing new connections"
                );
            }
            drop(tcp);
            continue;
        };
        // Stream frames are small writes: without TCP_NODELAY, Nagle's algorithm and delayed ACKs
        // hold each one back for up to 40 ms.
        let _ = tcp.set_nodelay(true);
        let service =
            TowerToHyperService::new(app.clone().map_request(|r: Request<hyper::body::Incoming>| r.map(Body::new)));
        let header_timeout = limits.header_timeout;
        let watcher = graceful.watcher();
        let stopping = stopping.clone();
        tokio::spawn(async move {
            // The first bytes (which tell HTTP/1 from HTTP/2) must come in time too: telling them
            // apart waits without a timer of its own.
            let mut first = [0u8; 1];
            let first_bytes = tokio::select! {
                peeked = tokio::time::timeout(header_timeout, tcp.peek(&mut first)) => matches!(peeked, Ok(Ok(1..))),
                () = stopping.cancelled() => false,
            };
            if !first_bytes {
                drop(slot);
                return;
            }
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http1().timer(TokioTimer::new()).header_read_timeout(header_timeout);
            builder.http2().timer(TokioTimer::new()).keep_alive_interval(Some(header_timeout));
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
            let _ = watcher.watch(connection.into_owned()).await;
            drop(slot);
        });
    }
    drop(listener);
    stopping.cancel();
    tracing::debug!("no new connections; waiting for open ones");
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(?grace, "requests still open after the grace period; stopping anyway");
    }
    Ok(())
}

/// How request bodies are read, and what each user has in flight.
#[derive(Clone)]
struct Bodies {
    timeout: Duration,
    max_bytes: usize,
    per_user: usize,
    inflight: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
}

/// A user's bytes in flight, given back when the request is answered.
struct Reservation {
    inflight: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
    user: String,
    bytes: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut inflight = self.inflight.lock().expect("inflight lock");
        if let Some(total) = inflight.get_mut(&self.user) {
            *total = total.saturating_sub(self.bytes);
            if *total == 0 {
                inflight.remove(&self.user);
            }
        }
    }
}

impl Bodies {
    /// Counts `bytes` against the user, unless that takes them past their cap.
    fn reserve(&self, user: String, bytes: usize) -> Option<Reservation> {
        let mut inflight = self.inflight.lock().expect("inflight lock");
        let total = inflight.entry(user.clone()).or_default();
        if self.per_user > 0 && *total > 0 && *total + bytes > self.per_user {
            return None;
        }
        *total += bytes;
        Some(Reservation { inflight: self.inflight.clone(), user, bytes })
    }
}

/// Reads a request's body whole within `timeout` (a client sending a byte now and then cannot hold
/// a handler, or a connection, for longer): 408 in the API's shape otherwise, and 413 past
/// `max_bytes` (never more is held in memory). A user with too many bytes in flight already gets
/// 429 before the body is read.
async fn read_body_in_time(
    axum::extract::State(bodies): axum::extract::State<Bodies>,
    request: Request,
    next: Next,
) -> Response {
    let (timeout, max_bytes) = (bodies.timeout, bodies.max_bytes);
    let has_body = request.headers().contains_key(axum::http::header::TRANSFER_ENCODING)
        || request
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0");
    if !has_body {
        return next.run(request).await;
    }
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(max_bytes)
        .min(max_bytes);
    let user = crate::identity::Identity::of(request.headers()).key;
    let Some(_reservation) = bodies.reserve(user, declared) else {
        let mut response = crate::api::error::ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            detail: format!(
                "Too much at once: at most {} request bytes in flight per user (AGENT_MAX_INFLIGHT_BYTES_PER_USER); \
                 retry when your other requests are answered",
                bodies.per_user
            ),
        }
        .into_response();
        response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
        response.headers_mut().insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
        return response;
    };
    let (parts, body) = request.into_parts();
    let collected = tokio::time::timeout(timeout, axum::body::to_bytes(body, max_bytes)).await;
    let refuse = |status: StatusCode, detail: String| {
        let mut response = crate::api::error::ApiError { status, detail }.into_response();
        // The rest of the body is not read: the connection is done.
        response.headers_mut().insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
        response
    };
    match collected {
        Ok(Ok(bytes)) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Ok(Err(error)) => {
            let too_large = std::iter::successors(Some(&error as &dyn std::error::Error), |e| e.source())
                .any(|e| e.is::<http_body_util::LengthLimitError>());
            if too_large {
                refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("Request body too large: at most {max_bytes} bytes are accepted (AGENT_MAX_REQUEST_BYTES)"),
                )
            } else {
                refuse(StatusCode::BAD_REQUEST, format!("Could not read the request body: {error}"))
            }
        }
        Err(_) => {
            tracing::warn!(path = %parts.uri.path(), ?timeout, "request body not received in time");
            refuse(
                StatusCode::REQUEST_TIMEOUT,
                format!("Request body not received within {} s (AGENT_BODY_TIMEOUT_SECONDS)", timeout.as_secs()),
            )
        }
    }
}
