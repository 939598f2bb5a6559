//! The message box: Enter sends, Shift+Enter starts a new line, Stop replaces Send while answering.

use leptos::either::Either;
use leptos::prelude::*;

use super::chat::Chat;

#[component]
pub fn Composer(model: String) -> impl IntoView {
    let chat = expect_context::<Chat>();
    let draft = RwSignal::new(String::new());
    let send = move || {
        let text = draft.get_untracked();
        let inputs_ok = untrack(|| chat.custom_inputs_value()).is_ok();
        if !text.trim().is_empty() && inputs_ok && !chat.busy() && !chat.read_only.get_untracked() {
            draft.set(String::new());
            chat.send(text);
        }
    };
    let busy = Memo::new(move |_| chat.busy());
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
                    disabled=move || chat.read_only.get()
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
                {move || if busy.get() {
                    Either::Left(view! {
                        <button type="button" class="stop" aria-label="Stop" on:click=move |_| chat.stop()>"■"</button>
                    })
                } else {
                    Either::Right(view! {
                        <button type="submit" class="send" aria-label="Send"
                            disabled=move || draft.with(|d| d.trim().is_empty()) || chat.custom_inputs_value().is_err()>"↑"</button>
                    })
                }}
            </form>
            {move || chat.custom_open.get().then(|| view! {
                <div class="custom-panel">
                    <textarea class="custom-inputs" aria-label="Custom inputs (JSON)" rows="3" spellcheck="false"
                        placeholder="{\"plan\": \"gold\"}  (custom_inputs sent with every message)"
                        prop:value=move || chat.custom_inputs.get()
                        on:input=move |ev| chat.custom_inputs.set(event_target_value(&ev))></textarea>
                    {move || chat.custom_inputs_value().err().map(|e| view! { <div class="custom-error" role="alert">{e}</div> })}
                </div>
            })}
            <div class="hint">
                <button type="button" class="custom-toggle" aria-pressed=move || chat.custom_open.get().to_string()
                    title="Send custom_inputs, see custom_outputs" on:click=move |_| chat.custom_open.update(|o| *o = !*o)>
                    "{ } Custom inputs"
                </button>
                " "
                {format!("Answers come from {model} and can be wrong. Enter to send, Shift+Enter for a new line.")}
            </div>
        </div>
    }
}
