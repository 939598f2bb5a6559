//! Shared by the server and the browser: the Responses wire types, the SSE frame parser and the UI.

pub mod responses;
pub mod sse;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::{
    StaticSegment,
    components::{Route, Router, Routes},
};

/// The name the site's assets are built under (`/pkg/<name>.js|.wasm|.css`).
pub const OUTPUT_NAME: &str = "agent-app";

/// The HTML document the server renders around the app.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
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
        <Stylesheet id="leptos" href="/pkg/agent-app.css"/>
        <Title text="agent-app"/>
        <Router>
            <main>
                <Routes fallback=|| "Page not found.".into_view()>
                    <Route path=StaticSegment("") view=HomePage/>
                </Routes>
            </main>
        </Router>
    }
}

/// Placeholder home page until the chat UI lands: says what the server offers.
#[component]
fn HomePage() -> impl IntoView {
    let (show_examples, set_show_examples) = signal(false);
    view! {
        <section class="home">
            <h1>"agent-app"</h1>
            <p class="lead">
                "Your agent is running. It answers the OpenAI Responses / MLflow ResponsesAgent API at "
                <code>"POST /invocations"</code>" and "<code>"POST /responses"</code>"."
            </p>
            <button
                class="toggle"
                on:click=move |_| set_show_examples.update(|s| *s = !*s)
            >
                {move || if show_examples.get() { "Hide examples" } else { "Show examples" }}
            </button>
            <Show when=move || show_examples.get()>
                <pre class="examples">
                    "curl -N -X POST http://localhost:8000/invocations \\\n"
                    "  -H 'Content-Type: application/json' \\\n"
                    "  -d '{\"input\": [{\"role\": \"user\", \"content\": \"What time is it?\"}], \"stream\": true}'"
                </pre>
            </Show>
        </section>
    }
}
