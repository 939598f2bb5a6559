//! The browser's side of the chat: the streaming POST, stopping it, the clipboard, the theme, scrolling.
//!
//! Only the hydrated page calls these; the server build gets inert versions so the components compile
//! on both sides.

/// How a stream ended.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEnd {
    /// The body ended (normally after `[DONE]`).
    Closed,
    /// The user stopped it.
    Aborted,
    /// The request failed: HTTP error (with the server's `detail`), network error or bad framing.
    Failed(String),
}

/// Turns an error response's body into the message to show: `{"detail": …}` when the server sent one.
pub fn error_message(status: u16, body: &str) -> String {
    let detail = serde_json::from_str::<serde_json::Value>(body).ok().and_then(|v| {
        let d = v.get("detail").or_else(|| v.get("error"))?;
        Some(d.as_str().map(str::to_string).unwrap_or_else(|| d.to_string()))
    });
    match detail {
        Some(detail) => format!("{detail} (HTTP {status})"),
        None if body.trim().is_empty() => format!("The server answered HTTP {status}."),
        None => format!("{} (HTTP {status})", body.trim().chars().take(500).collect::<String>()),
    }
}

#[cfg(feature = "hydrate")]
mod browser {
    use gloo_net::http::{RequestBuilder, Response};
    use js_sys::{Reflect, Uint8Array};
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::JsFuture;
    use web_sys::{AbortController, Element, HtmlElement, ReadableStreamDefaultReader};

    use super::StreamEnd;
    use crate::responses::StreamFrame;
    use crate::sse::SseParser;

    /// Stops a running stream: aborting the fetch closes the connection, and the server then drops
    /// the agent run (model call and tools) with it.
    #[derive(Clone)]
    pub struct StreamControl {
        controller: Option<AbortController>,
    }

    impl Default for StreamControl {
        fn default() -> Self {
            Self::new()
        }
    }

    impl StreamControl {
        pub fn new() -> Self {
            Self { controller: AbortController::new().ok() }
        }

        pub fn abort(&self) {
            if let Some(c) = &self.controller {
                c.abort();
            }
        }
    }

    /// Sends a request with a JSON body, if any (and `accept`, when given).
    async fn send(
        request: RequestBuilder,
        body: Option<String>,
        accept: Option<&str>,
    ) -> Result<Response, gloo_net::Error> {
        let request = match accept {
            Some(accept) => request.header("accept", accept),
            None => request,
        };
        match body {
            Some(body) => request.header("content-type", "application/json").body(body)?.send().await,
            None => request.send().await,
        }
    }

    fn request(method: &str, url: &str) -> RequestBuilder {
        RequestBuilder::new(url).method(method.parse().unwrap_or(gloo_net::http::Method::GET))
    }

    /// How a stream ends on an error: Stop aborted it, or it failed (with the error's words).
    fn ended_by(error: gloo_net::Error) -> StreamEnd {
        match error {
            gloo_net::Error::JsError(e) if e.name == "AbortError" => StreamEnd::Aborted,
            error => StreamEnd::Failed(error.to_string()),
        }
    }

    /// `text` escaped for a URL path segment or query value.
    pub fn encode_component(text: &str) -> String {
        String::from(js_sys::encode_uri_component(text))
    }

    /// Reads an event stream: `POST`s `body`, or `GET`s without one (a background response). The
    /// body is read as it arrives, every batch of frames handed to `on_frames`.
    pub async fn read_stream(
        url: &str,
        body: Option<String>,
        control: &StreamControl,
        mut on_frames: impl FnMut(Vec<StreamFrame>),
    ) -> StreamEnd {
        let method = if body.is_some() { "POST" } else { "GET" };
        let signal = control.controller.as_ref().map(AbortController::signal);
        let request = request(method, url).abort_signal(signal.as_ref());
        let response = match send(request, body, Some("text/event-stream")).await {
            Ok(r) => r,
            Err(e) => return ended_by(e),
        };
        if !response.ok() {
            let text = response.text().await.unwrap_or_default();
            return StreamEnd::Failed(super::error_message(response.status(), &text));
        }
        let Some(stream) = response.body() else { return StreamEnd::Closed };
        let reader: ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
        let mut parser = SseParser::default();
        loop {
            let chunk = match JsFuture::from(reader.read()).await {
                Ok(c) => c,
                Err(e) => {
                    return match gloo_utils::errors::JsError::try_from(e) {
                        Ok(e) => ended_by(gloo_net::Error::JsError(e)),
                        Err(other) => StreamEnd::Failed(other.to_string()),
                    };
                }
            };
            if Reflect::get(&chunk, &"done".into()).ok().and_then(|d| d.as_bool()).unwrap_or(true) {
                return StreamEnd::Closed;
            }
            let Ok(value) = Reflect::get(&chunk, &"value".into()) else { continue };
            let bytes = value.unchecked_into::<Uint8Array>().to_vec();
            let frames = match parser.push(&bytes) {
                Ok(frames) => frames,
                Err(e) => return StreamEnd::Failed(e.to_string()),
            };
            let parsed: Vec<StreamFrame> =
                frames.iter().filter_map(|f| StreamFrame::parse_for_chat(&f.data).ok()).collect();
            if !parsed.is_empty() {
                on_frames(parsed);
            }
        }
    }

    /// A JSON request (`body` already serialized); the response body on 2xx, else the error to show.
    pub async fn fetch_json(method: &str, url: &str, body: Option<String>) -> Result<String, String> {
        let response = send(request(method, url), body, None).await.map_err(|e| e.to_string())?;
        let text = response.text().await.unwrap_or_default();
        if response.ok() { Ok(text) } else { Err(super::error_message(response.status(), &text)) }
    }

    /// The `chat` query parameter of the page's address.
    pub fn chat_in_url() -> Option<String> {
        let search = web_sys::window()?.location().search().ok()?;
        search.trim_start_matches('?').split('&').find_map(|pair| {
            let value = pair.strip_prefix("chat=")?;
            (!value.is_empty()).then(|| js_sys::decode_uri_component(value).ok()?.as_string()).flatten()
        })
    }

    /// Puts the open chat in the address (so reload and links reopen it), without reloading.
    pub fn set_chat_in_url(chat_id: Option<&str>) {
        let Some(window) = web_sys::window() else { return };
        let url = match chat_id {
            Some(id) => format!("/?chat={}", String::from(js_sys::encode_uri_component(id))),
            None => "/".to_string(),
        };
        if let Ok(history) = window.history() {
            let _ = history.push_state_with_url(&JsValue::NULL, "", Some(&url));
        }
    }

    pub fn confirm(message: &str) -> bool {
        web_sys::window().and_then(|w| w.confirm_with_message(message).ok()).unwrap_or(false)
    }

    pub fn copy_text(text: &str) {
        if let Some(window) = web_sys::window() {
            let _ = window.navigator().clipboard().write_text(text);
        }
    }

    /// A click on a code block's copy button copies its code (the buttons are in rendered markdown,
    /// so one listener on the transcript serves them all).
    pub fn copy_code_click(target: Option<web_sys::EventTarget>) {
        let Some(button) =
            target.and_then(|t| t.dyn_into::<Element>().ok()).and_then(|e| e.closest(".copy-code").ok().flatten())
        else {
            return;
        };
        let code = button
            .closest(".code-block")
            .ok()
            .flatten()
            .and_then(|block| block.query_selector("code").ok().flatten())
            .and_then(|code| code.text_content());
        if let Some(code) = code {
            copy_text(&code);
            button.set_text_content(Some("Copied"));
            let button = button.clone();
            leptos::prelude::set_timeout(
                move || button.set_text_content(Some("Copy")),
                std::time::Duration::from_millis(1500),
            );
        }
    }

    /// A random id for a new chat.
    pub fn new_chat_id() -> String {
        web_sys::window().and_then(|w| w.crypto().ok()).map(|c| c.random_uuid()).unwrap_or_else(|| {
            format!("{:016x}{:016x}", (js_sys::Math::random() * 1e16) as u64, (js_sys::Math::random() * 1e16) as u64)
        })
    }

    const THEME_KEY: &str = "agent-app-theme";

    fn root() -> Option<Element> {
        web_sys::window()?.document()?.document_element()
    }

    /// The theme in force: the one chosen earlier, else the system's.
    pub fn current_theme() -> &'static str {
        let chosen = root().and_then(|r| r.get_attribute("data-theme"));
        match chosen.as_deref() {
            Some("dark") => "dark",
            Some("light") => "light",
            _ => {
                let dark = web_sys::window()
                    .and_then(|w| w.match_media("(prefers-color-scheme: dark)").ok().flatten())
                    .is_some_and(|m| m.matches());
                if dark { "dark" } else { "light" }
            }
        }
    }

    pub fn set_theme(theme: &str) {
        if let Some(root) = root() {
            let _ = root.set_attribute("data-theme", theme);
        }
        if let Some(storage) = web_sys::window().and_then(|w| w.local_storage().ok().flatten()) {
            let _ = storage.set_item(THEME_KEY, theme);
        }
    }

    pub fn is_near_bottom(element: &HtmlElement) -> bool {
        element.scroll_top() + element.client_height() >= element.scroll_height() - 48
    }

    pub fn scroll_to_bottom(element: &HtmlElement) {
        element.set_scroll_top(element.scroll_height());
    }

    pub fn scroll_top(element: &HtmlElement) -> i32 {
        element.scroll_top()
    }
}

#[cfg(not(feature = "hydrate"))]
mod browser {
    use super::StreamEnd;
    use crate::responses::StreamFrame;

    #[derive(Clone, Default)]
    pub struct StreamControl;

    impl StreamControl {
        pub fn new() -> Self {
            Self
        }

        pub fn abort(&self) {}
    }

    pub fn encode_component(text: &str) -> String {
        text.to_string()
    }

    pub async fn read_stream(
        _url: &str,
        _body: Option<String>,
        _control: &StreamControl,
        _on_frames: impl FnMut(Vec<StreamFrame>),
    ) -> StreamEnd {
        StreamEnd::Failed("streaming runs in the browser".into())
    }

    pub async fn fetch_json(_method: &str, _url: &str, _body: Option<String>) -> Result<String, String> {
        Err("requests run in the browser".into())
    }

    pub fn chat_in_url() -> Option<String> {
        None
    }

    pub fn set_chat_in_url(_chat_id: Option<&str>) {}

    pub fn confirm(_message: &str) -> bool {
        false
    }

    pub fn copy_text(_text: &str) {}

    pub fn copy_code_click(_target: Option<leptos::web_sys::EventTarget>) {}

    pub fn new_chat_id() -> String {
        String::new()
    }

    pub fn current_theme() -> &'static str {
        "light"
    }

    pub fn set_theme(_theme: &str) {}

    pub fn is_near_bottom(_element: &leptos::web_sys::HtmlElement) -> bool {
        true
    }

    pub fn scroll_to_bottom(_element: &leptos::web_sys::HtmlElement) {}

    pub fn scroll_top(_element: &leptos::web_sys::HtmlElement) -> i32 {
        0
    }
}

pub use browser::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_become_messages() {
        assert_eq!(error_message(400, r#"{"detail": "Invalid JSON"}"#), "Invalid JSON (HTTP 400)");
        assert_eq!(error_message(503, ""), "The server answered HTTP 503.");
        assert_eq!(error_message(502, "Bad gateway"), "Bad gateway (HTTP 502)");
    }
}
