//! agent-app's server: the ResponsesAgent HTTP API, the agent loop, model providers, tools and the
//! server side of the web UI.
//!
//! - [`agent`]: the user's agent definition (instructions, model, tools).
//! - [`api`]: HTTP handlers. [`web`]: the Leptos pages.
//! - [`runner`]: the agent loop and its stream output. [`background`]: background responses. [`llm`]: model providers. [`tools`]: tools.
//! - [`observability`]: traces (MLflow, local). [`store`]: chat history. [`config`]: settings. [`state`]: what handlers share.

pub mod agent;
pub mod api;
pub mod background;
pub mod config;
pub mod databricks;
pub mod evaluate;
pub mod examples;
pub mod http_client;
pub mod identity;
pub mod listener;
pub mod llm;
pub mod observability;
pub mod prelude;
pub mod quickstart;
pub mod run;
pub mod runner;
pub mod secret;
pub mod state;
pub mod store;
pub mod tools;
pub mod web;

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use tower_http::CompressionLevel;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

pub use config::Settings;
pub use runner::Agent;
pub use state::AppState;

pub use api::meta::MLFLOW_API_VERSION;

/// The whole application: API, pages and static files, with logging and request ids.
pub fn app(state: AppState) -> Router {
    if let Some(background) = &state.background {
        background.spawn_recovery(state.engine());
    }
    let web = web::router(&state);
    let request_id = HeaderName::from_static("x-request-id");
    api::router(state)
        .merge(web)
        .layer(axum::middleware::from_fn(api::guard::identity))
        .layer(axum::middleware::from_fn(web::security::headers))
        // JSON and pages, when the client takes it (outside the security headers, which read the
        // pages); never event streams (each event must leave at once), nor what is already
        // compressed (the bundle's precompressed files).
        .layer(
            CompressionLayer::new().quality(CompressionLevel::Precise(4)).compress_when(
                SizeAbove::new(1024)
                    .and(NotForContentType::GRPC)
                    .and(NotForContentType::IMAGES)
                    .and(NotForContentType::SSE),
            ),
        )
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &axum::http::Request<_>| {
                    // The path only: query strings can carry secrets.
                    let id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
                    tracing::info_span!("request", %id, method = %request.method(), path = %request.uri().path())
                })
                .on_request(())
                .on_response(
                    DefaultOnResponse::new().level(tracing::Level::INFO).latency_unit(tower_http::LatencyUnit::Millis),
                ),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        // Outermost: whatever logs headers below never sees credentials.
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::COOKIE,
            header::PROXY_AUTHORIZATION,
            HeaderName::from_static("x-forwarded-access-token"),
        ]))
}

/// Serves until `shutdown` resolves, then lets running requests finish (up to `grace`), with the
/// default connection limits (see [`listener`]; the `server` binary takes them from the settings).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    listener::serve(listener, app, listener::ConnectionLimits::default(), shutdown, grace).await
}
