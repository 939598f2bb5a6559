//! Shared by the server and the browser: the Responses wire types, the SSE frame parser, the chat's
//! state and markdown rendering, and the Leptos UI.

pub mod client;
pub mod config;
pub mod conversation;
pub mod history;
pub mod markdown;
pub mod responses;
pub mod sse;
pub mod ui;
pub mod url;

pub use url::percent_encode;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Title, provide_meta_context};

/// The name the site's assets are built under (`/pkg/<name>.js|.wasm|.css`).
pub const OUTPUT_NAME: &str = "agent-app";

/// Applies the theme the user chose before the page paints (no flash of the wrong theme).
pub const THEME_SCRIPT: &str = "try{var t=localStorage.getItem('agent-app-theme');\
if(t==='dark'||t==='light')document.documentElement.setAttribute('data-theme',t)}catch(e){}";

/// The HTML document the server renders around the app.
/// How the views were compiled: `--cfg erase_components` (.cargo/config.toml) changes the markup
/// hydration expects, so the server and the bundle must agree; the page says which it was rendered
/// with, and the bundle refuses to hydrate a page of the other kind (it stays readable, unhydrated).
pub const VIEW_TYPES: &str = if cfg!(erase_components) { "erased" } else { "typed" };

pub fn shell(options: LeptosOptions) -> impl IntoView {
    // Under the bundle's hashed folder (the server sets `site_pkg_dir` to `pkg/<hash>`).
    let stylesheet = format!("/{}/{}.css", options.site_pkg_dir, options.output_name);
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover"/>
                <meta name="color-scheme" content="light dark"/>
                <meta name="agent-app-views" content=VIEW_TYPES/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <link rel="stylesheet" href=stylesheet/>
                <script inner_html=THEME_SCRIPT></script>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Title text="agent-app"/>
        <ui::ChatPage/>
    }
}
