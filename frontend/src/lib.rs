//! The browser entry point: hydrates the page the server rendered.

use wasm_bindgen::prelude::wasm_bindgen;

#[wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    let document = web_sys::window().and_then(|w| w.document());
    let page_views = document
        .as_ref()
        .and_then(|d| d.query_selector("meta[name=agent-app-views]").ok().flatten())
        .and_then(|meta| meta.get_attribute("content"));
    if page_views.as_deref() != Some(app::VIEW_TYPES) {
        leptos::logging::error!(
            "not hydrating: the server rendered {page_views:?} views and this bundle has {:?} ones; build the server \
             and the bundle with the same `--cfg erase_components` (.cargo/config.toml, or RUSTFLAGS for both)",
            app::VIEW_TYPES
        );
        return;
    }
    leptos::mount::hydrate_body(app::App);
    // Tests (and anything else) can wait for this before interacting: clicks before hydration are lost.
    if let Some(body) = document.and_then(|d| d.body()) {
        let _ = body.set_attribute("data-hydrated", "true");
    }
}
