//! The chat page: header, transcript, composer (the chat's state and actions: `chat.rs`).

mod chat;
mod composer;
mod message;
mod sidebar;

use leptos::html::Div;
use leptos::prelude::*;

use crate::client;
use crate::config::ChatConfig;
use crate::history::Visibility;
pub use chat::{CHAT_URL, Chat, ExchangeHandle};
use composer::Composer;
use message::ExchangeView;
use sidebar::Sidebar;

#[component]
pub fn ChatPage() -> impl IntoView {
    let config = ChatConfig::for_page();
    let chat = Chat::new(config.chat_history);
    provide_context(chat);
    // In the browser: reopen the chat the address names, and fill the sidebar.
    Effect::new(move |_| {
        untrack(|| {
            if let Some(id) = client::chat_in_url() {
                chat.open(id);
            }
            chat.refresh_list();
        })
    });
    let sidebar_open = RwSignal::new(false);
    let transcript = NodeRef::<Div>::new();

    // Follow the answer as it grows, unless the user scrolled away from the bottom. The scroll
    // event may not have arrived yet when text does: a position above where we last put it is the
    // user scrolling up too.
    let followed_to = StoredValue::new(0);
    Effect::new(move |_| {
        chat.updates.track();
        let Some(el) = transcript.get() else { return };
        if chat.follow.get_value() && client::scroll_top(&el) + 48 < followed_to.get_value() {
            chat.follow.set_value(false);
        }
        if chat.follow.get_value() {
            client::scroll_to_bottom(&el);
            followed_to.set_value(client::scroll_top(&el));
        }
    });
    let on_scroll = move |_| {
        if let Some(el) = transcript.get_untracked() {
            chat.follow.set_value(client::is_near_bottom(&el));
        }
    };
    let empty = Memo::new(move |_| chat.exchanges.with(Vec::is_empty));
    let empty_config = config.clone();

    view! {
        <div class="layout" class:sidebar-open=move || sidebar_open.get()>
        <Sidebar history_on=config.chat_history open=sidebar_open/>
        <div class="chat">
            <Header config=config.clone() sidebar_open/>
            <ScopesBanner status=config.user_authorization.clone()/>
            {move || chat.notice.get().map(|notice| view! {
                <div class="notice" role="status">
                    <span>{notice}</span>
                    <button type="button" class="action" aria-label="Dismiss" on:click=move |_| chat.notice.set(None)>"✕"</button>
                </div>
            })}
            <div class="transcript" node_ref=transcript on:scroll=on_scroll
                on:click=move |ev| client::copy_code_click(ev.target())>
                <div class="transcript-inner">
                    {move || empty.get().then(|| view! { <EmptyState config=empty_config.clone()/> })}
                    <For each=move || chat.exchanges.get() key=|e| e.id let:exchange>
                        <ExchangeView exchange/>
                    </For>
                </div>
            </div>
            <Composer model=config.model.clone()/>
        </div>
        </div>
    }
}

/// On-behalf-of: names the scopes the signed-in user's token lacks for the tools that act as them,
/// and where to add them.
#[component]
fn ScopesBanner(status: crate::config::UserAuthorization) -> impl IntoView {
    let missing = status.missing_scopes.join(", ");
    let (open, set_open) = signal(!status.missing_scopes.is_empty());
    let why = if status.no_token {
        "Some tools act as you, but this app receives no user token: user authorization is off for it."
    } else {
        "Some tools act as you, and your sign-in does not grant what they need."
    };
    view! {
        {move || open.get().then(|| view! {
            <div class="notice scopes" role="alert">
                <span>
                    {why}" Missing scopes: "<strong class="missing-scopes">{missing.clone()}</strong>". Add them to the app's "
                    <code>"user_api_scopes"</code>" (databricks.yml) or under User authorization in the app's settings, "
                    "redeploy, then reload this page to sign in again."
                </span>
                <button type="button" class="action" aria-label="Dismiss" on:click=move |_| set_open.set(false)>"✕"</button>
            </div>
        })}
    }
}

#[component]
fn Header(config: ChatConfig, sidebar_open: RwSignal<bool>) -> impl IntoView {
    let chat = expect_context::<Chat>();
    let (theme, set_theme) = signal("light");
    Effect::new(move |_| set_theme.set(client::current_theme()));
    let toggle_theme = move |_| {
        let next = if theme.get_untracked() == "dark" { "light" } else { "dark" };
        client::set_theme(next);
        set_theme.set(next);
    };
    let model = format!("{} · {}", config.backend, config.model);
    let name = config.user.display_name().to_string();
    let initial = name.chars().next().unwrap_or('?').to_uppercase().to_string();
    view! {
        <header class="topbar">
            <button class="icon-button menu-toggle" type="button" aria-label="Chats"
                on:click=move |_| sidebar_open.update(|o| *o = !*o)>"☰"</button>
            <div class="brand">
                <span class="logo" aria-hidden="true">"✦"</span>
                <span class="brand-name">"agent-app"</span>
            </div>
            <span class="badge model-badge" title="The model that answers">{model}</span>
            {(!config.chat_history).then(|| view! {
                <span class="badge ephemeral" title="Chats are not saved: they are gone after a reload">"Ephemeral"</span>
            })}
            <div class="spacer"></div>
            {config.chat_history.then(|| view! {
                {move || (chat.open_id.with(Option::is_some) && !chat.exchanges.with(Vec::is_empty) && !chat.read_only.get()).then(|| view! {
                    <button type="button" class="button secondary visibility" on:click=move |_| chat.toggle_visibility()
                        title="Public chats can be read, not changed, by other users who have the link">
                        {move || match chat.visibility.get() { Visibility::Private => "Private", Visibility::Public => "Public" }}
                    </button>
                })}
            })}
            <a class="button secondary traces-link" href="/traces" title="Every request, traced">"Traces"</a>
            <button class="icon-button theme-toggle" type="button" on:click=toggle_theme
                aria-label=move || if theme.get() == "dark" { "Switch to light theme" } else { "Switch to dark theme" }>
                {move || if theme.get() == "dark" { "☀" } else { "☾" }}
            </button>
            <div class="user" title=config.user.email.clone().unwrap_or_default()>
                <span class="avatar user-avatar" aria-hidden="true">{initial}</span>
                <span class="user-name">{name}</span>
            </div>
        </header>
    }
}

#[component]
fn EmptyState(config: ChatConfig) -> impl IntoView {
    let chat = expect_context::<Chat>();
    view! {
        <div class="empty">
            <div class="empty-logo" aria-hidden="true">"✦"</div>
            <h1 class="greeting">{config.greeting}</h1>
            <div class="suggestions">
                {config.suggestions.into_iter().map(|s| {
                    let text = s.clone();
                    view! {
                        <button type="button" class="suggestion" on:click=move |_| chat.send(text.clone())>{s}</button>
                    }
                }).collect_view()}
            </div>
        </div>
    }
}
