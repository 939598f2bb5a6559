//! The chat list: new chat, open, rename, delete, older chats page by page. Without chat history it
//! says the chat is not kept.

use leptos::either::Either;
use leptos::prelude::*;

use super::chat::Chat;
use crate::client;
use crate::history::ChatSummary;

#[component]
pub fn Sidebar(history_on: bool, open: RwSignal<bool>) -> impl IntoView {
    let chat = expect_context::<Chat>();
    let close_on_phone = move || open.set(false);
    view! {
        <aside class="sidebar" aria-label="Chats">
            <div class="sidebar-head">
                <button type="button" class="button new-chat" on:click=move |_| {
                    chat.new_chat();
                    close_on_phone();
                }>"+ New chat"</button>
            </div>
            {if history_on {
                Either::Left(view! {
                    <nav class="chat-list">
                        {move || chat.list.with(Vec::is_empty).then(|| view! { <p class="sidebar-empty">"No chats yet."</p> })}
                        <For each=move || chat.list.get() key=|c| (c.id.clone(), c.title.clone()) let:summary>
                            <ChatItem summary on_open=close_on_phone/>
                        </For>
                        {move || chat.has_more.get().then(|| view! {
                            <button type="button" class="button secondary load-more" on:click=move |_| chat.load_more()>
                                "Older chats"
                            </button>
                        })}
                    </nav>
                })
            } else {
                Either::Right(view! {
                    <p class="sidebar-empty">"No chat history available: chats are kept in this page only."</p>
                })
            }}
        </aside>
        <div class="sidebar-backdrop" on:click=move |_| open.set(false)></div>
    }
}

#[component]
fn ChatItem(summary: ChatSummary, on_open: impl Fn() + Copy + Send + Sync + 'static) -> impl IntoView {
    let chat = expect_context::<Chat>();
    let id = StoredValue::new(summary.id.clone());
    let active = Memo::new(move |_| chat.open_id.with(|open| open.as_deref() == Some(id.get_value().as_str())));
    let renaming = RwSignal::new(false);
    let draft = RwSignal::new(summary.title.clone());
    let title = summary.title.clone();
    let save = move || {
        renaming.set(false);
        let title = draft.get_untracked();
        if !title.trim().is_empty() {
            chat.rename(id.get_value(), title);
        }
    };
    view! {
        <div class="chat-item" class:active=move || active.get() data-chat-id=summary.id.clone()>
            {move || if renaming.get() {
                Either::Left(view! {
                    <input class="rename-input" aria-label="Chat title" prop:value=move || draft.get()
                        on:input=move |ev| draft.set(event_target_value(&ev))
                        on:keydown=move |ev| {
                            if ev.key() == "Enter" { save() } else if ev.key() == "Escape" { renaming.set(false) }
                        }/>
                    <button type="button" class="action" aria-label="Save title" on:click=move |_| save()>"✓"</button>
                })
            } else {
                let title = title.clone();
                Either::Right(view! {
                    <button type="button" class="chat-link" title=title.clone() on:click=move |_| {
                        chat.open(id.get_value());
                        on_open();
                    }>{title.clone()}</button>
                    <button type="button" class="action" aria-label="Rename chat" title="Rename"
                        on:click=move |_| renaming.set(true)>"✎"</button>
                    <button type="button" class="action" aria-label="Delete chat" title="Delete" on:click=move |_| {
                        if client::confirm("Delete this chat?") {
                            chat.delete(id.get_value());
                        }
                    }>"✕"</button>
                })
            }}
        </div>
    }
}
