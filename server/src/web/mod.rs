//! The browser UI: server-rendered Leptos pages, their server functions (`/api/<name>`), and the built
//! site's static files (`/pkg/...`); the trace viewer (`/traces`, server-rendered only); the documents
//! of `AGENT_DOCS_DIR` (`/documents/...`).

mod assets;
mod documents;
mod live_reload;
pub mod security;
mod traces;

use app::config::UiSettings;
use app::{App, OUTPUT_NAME, shell};
use axum::Router;
use axum::http::{HeaderValue, header};
use axum::routing::get;
use leptos::prelude::{LeptosOptions, provide_context};
use leptos_axum::{LeptosRoutes, generate_route_list};
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::state::AppState;

pub fn router(state: &AppState) -> Router {
    let settings = &state.settings;
    let site_root = settings.server.resolve_site_root();
    let bundle = assets::Bundle::open(&site_root);
    let options = LeptosOptions::builder()
        .output_name(OUTPUT_NAME)
        .site_root(site_root.to_string_lossy().into_owned())
        .site_pkg_dir(bundle.pkg_path.clone())
        .reload_port(live_reload::reload_port().map_or(0, u32::from))
        .reload_external_port(live_reload::socket_port().map(u32::from))
        .build();
    let ui = UiSettings {
        greeting: settings.server.chat_greeting.clone(),
        backend: state.runner.model.backend().to_string(),
        model: state.runner.agent.model.clone(),
        chat_history: state.store.is_some(),
        user_scopes: state.runner.agent.required_user_scopes(&state.runner.mcp.servers().cloned().collect::<Vec<_>>()),
        expects_user_token: settings.on_databricks_apps,
    };
    let routes = generate_route_list(App);
    let trace_pages = Router::new()
        .route("/traces", get(traces::list))
        .route("/traces/style.css", get(traces::style))
        .route("/traces/{id}", get(traces::show))
        .with_state(state.clone());
    let mut router = Router::new();
    // The documents `search_documents` cites, readable where their citations link.
    if let (Some(dir), None) = (&settings.agent.docs_dir, &settings.agent.docs_base_url) {
        let documents =
            Router::new().route("/{*path}", get(documents::get)).with_state(documents::Documents { root: dir.clone() });
        router = router.nest_service("/documents", documents);
    }
    router
        .leptos_routes_with_context(&options, routes, move || provide_context(ui.clone()), {
            let options = options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler(shell))
        .with_state(options)
        .merge(trace_pages)
        // Swagger UI's files for the API docs page (/docs), compressed at build time like the bundle.
        .nest_service("/api-docs", ServeDir::new(site_root.join("api-docs")).precompressed_br().precompressed_gzip())
        // Pages and the site's other files are asked for again each time (they are small); the
        // bundle, under its hashed path, never.
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .merge(bundle.router())
}
