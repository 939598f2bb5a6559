//! The one way this server builds HTTP clients (model endpoints, and later MCP, auth, tracing).

use std::sync::Once;
use std::time::Duration;

/// Makes rustls use ring (no C toolchain beyond cc needed); safe to call many times.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A pooled client with a connect timeout. Per-call timeouts are set by the caller.
pub fn new() -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .expect("the HTTP client builds (TLS provider installed)")
}
