//! The chat page: header, transcript, composer; and the chat's state and actions.

mod composer;
mod message;

use leptos::html::Div;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::client::{self, StreamControl, StreamEnd};
use crate::config::ChatConfig;
use crate::conversation::{Answer, Exchange, chat_request};
use composer::Composer;
use message::ExchangeView;

/// Where the page sends a conversation to be answered (a Responses SSE stream).
pub const CHAT_URL: &str = "/api/chat";

/// One exchange on screen; its parts are signals so a streaming answer redraws only itself.
#[derive(Clone, Copy)]
pub struct ExchangeHandle {
    pub id: u64,
    pub user: RwSignal<String>,
    pub answer: RwSignal<Answer>,
}

/// The chat's state and what the user can do with it. Copy: every component gets its own.
#[derive(Clone, Copy)]
pub struct Chat {
    pub exchanges: RwSignal<Vec<ExchangeHandle>>,
    chat_id: StoredValue<String>,
    next_id: StoredValue<u64>,
    control: StoredValue<Option<StreamControl>, LocalStorage>,
    /// Bumped whenever the transcript grows, for auto-scroll.
    pub updates: RwSignal<u64>,
    /// The user scrolled up: new text must not pull them back down.
    pub follow: StoredValue<bool>,
    /// The page's owner: an exchange's signals must outlive the component whose button created them
    /// (the empty state's suggestions vanish as soon as the chat starts).
    owner: StoredValue<Option<Owner>>,
}

impl Chat {
    fn new() -> Self {
        Chat {
            exchanges: RwSignal::new(Vec::new()),
            chat_id: StoredValue::new(String::new()),
            next_id: StoredValue::new(0),
            control: StoredValue::new_local(None),
            updates: RwSignal::new(0),
            follow: StoredValue::new(true),
            owner: StoredValue::new(Owner::current()),
        }
    }

    /// An answer is streaming.
    pub fn busy(&self) -> bool {
        self.exchanges.with(|list| list.iter().any(|e| e.answer.with(Answer::is_streaming)))
    }

    pub fn send(&self, text: String) {
        let text = text.trim().to_string();
        if text.is_empty() || self.busy() {
            return;
        }
        let id = self.next_id.get_value();
        self.next_id.set_value(id + 1);
        let new_handle =
            move || ExchangeHandle { id, user: RwSignal::new(text), answer: RwSignal::new(Answer::default()) };
        let handle = match self.owner.get_value() {
            Some(owner) => owner.with(new_handle),
            None => new_handle(),
        };
        self.exchanges.update(|list| list.push(handle));
        self.follow.set_value(true);
        self.run(handle);
    }

    /// Runs the agent on `handle`'s question, with every exchange before it as history.
    fn run(&self, handle: ExchangeHandle) {
        if self.chat_id.with_value(String::is_empty) {
            self.chat_id.set_value(client::new_chat_id());
        }
        let previous: Vec<Exchange> = self.exchanges.with_untracked(|list| {
            list.iter()
                .take_while(|e| e.id != handle.id)
                .map(|e| Exchange { user: e.user.get_untracked(), answer: e.answer.get_untracked() })
                .collect()
        });
        let body = chat_request(&self.chat_id.get_value(), &previous, &handle.user.get_untracked()).to_string();
        handle.answer.set(Answer::default());
        self.updates.update(|n| *n += 1);
        let chat = *self;
        spawn_local(async move {
            let control = StreamControl::new();
            chat.control.set_value(Some(control.clone()));
            let end = client::post_stream(CHAT_URL, body, &control, |frames| {
                handle.answer.update(|answer| {
                    for frame in frames {
                        answer.apply(frame);
                    }
                });
                chat.updates.update(|n| *n += 1);
            })
            .await;
            handle.answer.update(|answer| match end {
                StreamEnd::Closed => answer.finish_unexpectedly(),
                StreamEnd::Aborted => answer.stop(),
                StreamEnd::Failed(message) => {
                    if answer.is_streaming() {
                        answer.fail(message)
                    }
                }
            });
            chat.control.set_value(None);
            chat.updates.update(|n| *n += 1);
        });
    }

    /// Stops the streaming answer; what arrived stays.
    pub fn stop(&self) {
        self.control.with_value(|c| {
            if let Some(c) = c {
                c.abort();
            }
        });
        self.exchanges.with_untracked(|list| {
            for e in list {
                e.answer.update(Answer::stop);
            }
        });
    }

    /// Answers the last question again.
    pub fn regenerate(&self) {
        if self.busy() {
            return;
        }
        if let Some(last) = self.exchanges.with_untracked(|list| list.last().copied()) {
            self.run(last);
        }
    }

    /// Replaces an earlier question and runs the conversation again from there (later exchanges go).
    pub fn edit(&self, id: u64, text: String) {
        let text = text.trim().to_string();
        if text.is_empty() || self.busy() {
            return;
        }
        let Some(handle) = self.exchanges.with_untracked(|list| list.iter().find(|e| e.id == id).copied()) else {
            return;
        };
        self.exchanges.update(|list| list.retain(|e| e.id <= id));
        handle.user.set(text);
        self.run(handle);
    }

    pub fn is_last(&self, id: u64) -> bool {
        self.exchanges.with(|list| list.last().is_some_and(|e| e.id == id))
    }
}

#[component]
pub fn ChatPage() -> impl IntoView {
    let chat = Chat::new();
    provide_context(chat);
    let config = ChatConfig::for_page();
    let transcript = NodeRef::<Div>::new();

    // Follow the answer as it grows, unless the user scrolled away from the bottom.
    Effect::new(move |_| {
        chat.updates.track();
        if chat.follow.get_value()
            && let Some(el) = transcript.get()
        {
            client::scroll_to_bottom(&el);
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
        <div class="chat">
            <Header config=config.clone()/>
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
    }
    .into_any()
}

#[component]
fn Header(config: ChatConfig) -> impl IntoView {
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
            <div class="brand">
                <span class="logo" aria-hidden="true">"✦"</span>
                <span class="brand-name">"agent-app"</span>
            </div>
            <span class="badge model-badge" title="The model that answers">{model}</span>
            {(!config.chat_history).then(|| view! {
                <span class="badge ephemeral" title="Chats are not saved: they are gone after a reload">"Ephemeral"</span>
            })}
            <div class="spacer"></div>
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
    .into_any()
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
    .into_any()
}
