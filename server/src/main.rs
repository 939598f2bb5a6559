//! `server`: runs agent-app (API + chat UI) on the agent defined in `agent.rs`.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use server::Settings;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let settings = Settings::load();
    init_logging();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = settings.server.workers {
        runtime.worker_threads(workers.max(1));
    }
    runtime.enable_all().build()?.block_on(run(settings))
}

/// Human-readable logs (coloured on a terminal), or JSON lines with `LOG_FORMAT=json`. `RUST_LOG`
/// filters, default `info`.
fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,llama-cpp-2=warn"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    if std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        logs.json().init();
    } else {
        logs.with_ansi(std::io::stdout().is_terminal()).init();
    }
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    let addr = SocketAddr::new(settings.server.host, settings.server.port);
    let agent = match &settings.agent.example {
        Some(name) => server::examples::by_name(name).map_err(anyhow::Error::msg)?,
        None => server::agent::agent(),
    };
    let state = server::AppState::new(settings, agent)
        .map_err(anyhow::Error::msg)?
        .with_chat_history()
        .await
        .with_tracing()
        .await;
    let exporter = state.observability.exporter.clone();
    let limits = connection_limits(&state.settings);
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(
        "agent-app listening on http://{} (model {} via {})",
        listener.local_addr()?,
        state.runner.agent.model,
        state.runner.model.backend()
    );
    tracing::info!(
        max_connections = limits.max_connections,
        header_timeout = ?limits.header_timeout,
        body_timeout = ?limits.body_timeout,
        "connection limits"
    );
    server::listener::serve(listener, server::app(state), limits, shutdown_signal(), Duration::from_secs(30)).await?;
    // Traces of the last requests go out before the process does.
    if !exporter.flush(Duration::from_secs(10)).await {
        tracing::warn!("some traces were not exported before shutdown");
    }
    tracing::info!("stopped");
    Ok(())
}

/// The listener's limits, from the settings (the wiring turns settings into each part's own config).
fn connection_limits(settings: &Settings) -> server::listener::ConnectionLimits {
    let secs = |s: f64| Duration::try_from_secs_f64(s).unwrap_or(Duration::ZERO).max(Duration::from_millis(100));
    server::listener::ConnectionLimits {
        header_timeout: secs(settings.server.header_timeout_seconds),
        body_timeout: secs(settings.server.body_timeout_seconds),
        max_body_bytes: settings.limits.max_request_bytes,
        max_inflight_bytes_per_user: settings.limits.max_inflight_bytes_per_user,
        max_connections: settings.server.max_connections.unwrap_or_else(server::listener::default_max_connections),
    }
}

/// Ctrl-C or SIGTERM (what Databricks Apps sends on stop and redeploy).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: no new connections; letting open requests finish");
}
