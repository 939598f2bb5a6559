//! The Leptos dev loop: `cargo leptos watch` runs the server with LEPTOS_WATCH and the reload port
//! (`reload-port` in [[workspace.metadata.leptos]], or LEPTOS_RELOAD_EXTERNAL_PORT behind a proxy).
//! Pages then carry Leptos' reload script, and their Content-Security-Policy lets it open its socket,
//! on that port only; outside the dev loop there is neither.

use std::sync::LazyLock;

/// [[workspace.metadata.leptos]] reload-port, for a watch run that does not pass it on.
const DEFAULT_PORT: u16 = 8001;

/// (the port the server announces, the port the browser connects to), in a watch run.
static PORTS: LazyLock<Option<(u16, u16)>> = LazyLock::new(|| {
    std::env::var_os("LEPTOS_WATCH")?;
    let port = |name: &str| std::env::var(name).ok().and_then(|v| v.trim().parse::<u16>().ok());
    let reload = port("LEPTOS_RELOAD_PORT").unwrap_or(DEFAULT_PORT);
    Some((reload, port("LEPTOS_RELOAD_EXTERNAL_PORT").unwrap_or(reload)))
});

/// The reload port Leptos is told about, in a watch run.
pub fn reload_port() -> Option<u16> {
    PORTS.map(|(reload, _)| reload)
}

/// The port the page's reload socket connects to, in a watch run.
pub fn socket_port() -> Option<u16> {
    PORTS.map(|(_, external)| external)
}
