//! The message box: Enter sends, Shift+Enter starts a new line, Stop replaces Send while answering.

use leptos::prelude::*;

use super::{Chat, ConfigResource};

#[component]
pub fn Composer(config: ConfigResource) -> impl IntoView {
    let chat = expect_context::<Chat>();
    let draft = RwSignal::new(String::new());
    let send = move || {
        let text = draft.get_untracked();
        if !text.trim().is_empty() && !chat.busy() {
            draft.set(String::new());
            chat.send(text);
        }
    };
    let model = move || config.get().and_then(Result::ok).map(|c| c.model).unwrap_or_default();
    view! {
        <div class="composer-wrap">
            <form class="composer" on:submit=move |ev| {
                ev.prevent_default();
                send();
            }>
                <textarea
                    class="composer-input"
                    placeholder="Send a message…"
                    aria-label="Message"
                    rows="1"
                    prop:value=move || draft.get()
                    on:input=move |ev| draft.set(event_target_value(&ev))
                    on:keydown=move |ev| {
                        if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
                            ev.prevent_default();
                            send();
                        }
                    }
                ></textarea>
                <Show
                    when=move || chat.busy()
                    fallback=move || view! {
                        <button type="submit" class="send" aria-label="Send"
                            disabled=move || draft.with(|d| d.trim().is_empty())>"↑"</button>
                    }
                >
                    <button type="button" class="stop" aria-label="Stop" on:click=move |_| chat.stop()>"■"</button>
                </Show>
            </form>
            <div class="hint">
                <Suspense fallback=|| ()>{move || {
                    let m = model();
                    (!m.is_empty()).then(|| format!("Answers come from {m} and can be wrong. "))
                }}</Suspense>
                "Enter to send, Shift+Enter for a new line."
            </div>
        </div>
    }
    .into_any()
}
