//! The chat's state and actions: its exchanges, the stream that answers, the chat list, saving.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::client::{self, StreamControl, StreamEnd};
use crate::conversation::{Answer, AnswerStatus, Exchange, chat_request, continue_request};
use crate::history::{ChatPage as ChatListPage, ChatSummary, MessageStatus, StoredChat, Visibility};

/// Where the page sends a conversation to be answered (a Responses SSE stream).
pub const CHAT_URL: &str = "/api/chat";

/// One exchange on screen; its parts are signals so a streaming answer redraws only itself.
#[derive(Clone, Copy)]
pub struct ExchangeHandle {
    pub id: u64,
    pub user: RwSignal<String>,
    pub answer: RwSignal<Answer>,
    /// The answer's row in the chat history (votes refer to it).
    pub answer_id: StoredValue<String>,
    /// This user's thumbs up (true) or down (false).
    pub vote: RwSignal<Option<bool>>,
}

/// The chat's state and what the user can do with it. Copy: every component gets its own.
#[derive(Clone, Copy)]
pub struct Chat {
    pub exchanges: RwSignal<Vec<ExchangeHandle>>,
    pub(super) next_id: StoredValue<u64>,
    pub(super) control: StoredValue<Option<StreamControl>, LocalStorage>,
    /// Bumped whenever the transcript grows, for auto-scroll.
    pub updates: RwSignal<u64>,
    /// The user scrolled up: new text must not pull them back down.
    pub follow: StoredValue<bool>,
    /// The page's owner: an exchange's signals must outlive the component whose button created them
    /// (the empty state's suggestions vanish as soon as the chat starts).
    pub(super) owner: StoredValue<Option<Owner>>,
    /// Chats are saved on the server.
    pub history_on: bool,
    /// The open chat's id, once it has one.
    pub open_id: RwSignal<Option<String>>,
    /// The sidebar's chats, newest first, and whether older ones remain.
    pub list: RwSignal<Vec<ChatSummary>>,
    pub has_more: RwSignal<bool>,
    /// A problem with the chat history to show (it could not be loaded, the chat is not saved…).
    pub notice: RwSignal<Option<String>>,
    /// The chat last asked for: a slow load that something else overtook is dropped.
    pub(super) wanted: StoredValue<Option<String>>,
    /// Who may read the open chat.
    pub visibility: RwSignal<Visibility>,
    /// The open chat is someone else's public chat: it can be read, not continued.
    pub read_only: RwSignal<bool>,
    /// The developer panel is open: requests carry `custom_inputs`, answers show `custom_outputs`.
    pub custom_open: RwSignal<bool>,
    /// The panel's `custom_inputs`, as typed (a JSON object, or nothing).
    pub custom_inputs: RwSignal<String>,
}

impl Chat {
    pub(super) fn new(history_on: bool) -> Self {
        Chat {
            history_on,
            open_id: RwSignal::new(None),
            list: RwSignal::new(Vec::new()),
            has_more: RwSignal::new(false),
            notice: RwSignal::new(None),
            wanted: StoredValue::new(None),
            visibility: RwSignal::new(Visibility::Private),
            read_only: RwSignal::new(false),
            custom_open: RwSignal::new(false),
            custom_inputs: RwSignal::new(String::new()),
            exchanges: RwSignal::new(Vec::new()),
            next_id: StoredValue::new(0),
            control: StoredValue::new_local(None),
            updates: RwSignal::new(0),
            follow: StoredValue::new(true),
            owner: StoredValue::new(Owner::current()),
        }
    }

    /// An answer is streaming (tracked: views that show it follow it).
    pub fn busy(&self) -> bool {
        self.exchanges.with(|list| list.iter().any(|e| e.answer.with(Answer::is_streaming)))
    }

    pub(super) fn busy_untracked(&self) -> bool {
        self.exchanges.with_untracked(|list| list.iter().any(|e| e.answer.with_untracked(Answer::is_streaming)))
    }

    /// The `custom_inputs` to send: `Ok(None)` when the panel is closed or empty, an error when what
    /// is typed is not a JSON object (tracked: the panel shows it and Send waits for a fix).
    pub fn custom_inputs_value(&self) -> Result<Option<serde_json::Value>, String> {
        if !self.custom_open.get() {
            return Ok(None);
        }
        self.custom_inputs.with(|text| {
            if text.trim().is_empty() {
                return Ok(None);
            }
            match serde_json::from_str::<serde_json::Value>(text) {
                Ok(value @ serde_json::Value::Object(_)) => Ok(Some(value)),
                Ok(_) => Err("Custom inputs must be a JSON object, e.g. {\"plan\": \"gold\"}".into()),
                Err(e) => Err(format!("Custom inputs are not valid JSON: {e}")),
            }
        })
    }

    /// Adds the panel's `custom_inputs` to a request body.
    pub(super) fn add_custom_inputs(&self, body: &mut serde_json::Value) {
        if let Ok(Some(inputs)) = untrack(|| self.custom_inputs_value()) {
            body["custom_inputs"] = inputs;
        }
    }

    pub fn send(&self, text: String) {
        let text = text.trim().to_string();
        if text.is_empty() || self.busy_untracked() {
            return;
        }
        let handle = self.new_exchange(text, Answer::default(), String::new(), None);
        self.exchanges.update(|list| list.push(handle));
        self.follow.set_value(true);
        self.run(handle);
    }

    pub(super) fn new_exchange(
        &self,
        user: String,
        answer: Answer,
        answer_id: String,
        vote: Option<bool>,
    ) -> ExchangeHandle {
        let id = self.next_id.get_value();
        self.next_id.set_value(id + 1);
        let make = move || ExchangeHandle {
            id,
            user: RwSignal::new(user),
            answer: RwSignal::new(answer),
            answer_id: StoredValue::new(answer_id),
            vote: RwSignal::new(vote),
        };
        match self.owner.get_value() {
            Some(owner) => owner.with(make),
            None => make(),
        }
    }

    /// Runs the agent on `handle`'s question, with every exchange before it as history.
    pub(super) fn run(&self, handle: ExchangeHandle) {
        if self.open_id.get_untracked().is_none() {
            let id = client::new_chat_id();
            if self.history_on {
                client::set_chat_in_url(Some(&id));
            }
            self.open_id.set(Some(id));
        }
        let chat_id = self.open_id.get_untracked().unwrap_or_default();
        let previous: Vec<Exchange> = self.exchanges.with_untracked(|list| {
            list.iter()
                .take_while(|e| e.id != handle.id)
                .map(|e| Exchange { user: e.user.get_untracked(), answer: e.answer.get_untracked() })
                .collect()
        });
        let position = previous.len();
        let mut body = chat_request(&chat_id, &previous, &handle.user.get_untracked());
        if self.history_on {
            let answer_id = client::new_chat_id();
            handle.answer_id.set_value(answer_id.clone());
            body["chat"] = serde_json::json!({
                "id": chat_id, "position": position, "question_id": client::new_chat_id(), "answer_id": answer_id,
            });
        }
        handle.vote.set(None);
        handle.answer.set(Answer::default());
        self.add_custom_inputs(&mut body);
        self.stream_into(handle, CHAT_URL.to_string(), Some(body.to_string()), position, None);
    }

    /// The user approved or denied a tool call of `handle`'s answer: the answer goes on, in place.
    pub fn decide(&self, handle: ExchangeHandle, request_id: String, approve: bool, reason: Option<String>) {
        if self.busy_untracked()
            || !handle.answer.try_update(|a| a.decide(&request_id, approve, reason)).unwrap_or(false)
        {
            return;
        }
        let (previous, current) = self.exchanges.with_untracked(|list| {
            let mut previous = Vec::new();
            for e in list {
                let exchange = Exchange { user: e.user.get_untracked(), answer: e.answer.get_untracked() };
                if e.id == handle.id {
                    return (previous, Some(exchange));
                }
                previous.push(exchange);
            }
            (previous, None)
        });
        let Some(current) = current else { return };
        // Other requests of the same answer wait for their own decision: go on once all are decided.
        if current.answer.pending_approvals() > 0 {
            return;
        }
        let chat_id = self.open_id.get_untracked().unwrap_or_default();
        let position = previous.len();
        let mut body = continue_request(&chat_id, &previous, &current);
        if self.history_on {
            body["chat"] = serde_json::json!({
                "id": chat_id, "position": position, "answer_id": handle.answer_id.get_value(), "continues": true,
            });
        }
        handle.answer.update(Answer::resume);
        self.add_custom_inputs(&mut body);
        self.stream_into(handle, CHAT_URL.to_string(), Some(body.to_string()), position, None);
    }

    /// Follows an answer that is still being written (the page was reloaded mid-answer): its
    /// response's events from the start, live to the end. If it cannot be read, the saved answer stays.
    pub(super) fn reattach(&self, handle: ExchangeHandle, response_id: &str, position: usize) {
        let saved = handle.answer.get_untracked();
        handle.answer.set(Answer::default());
        let url = format!("/responses/{}?stream=true", client::encode_component(response_id));
        self.stream_into(handle, url, None, position, Some(saved));
    }

    /// Streams the agent's answer into `handle`'s answer: from `POST url` with `body`, or from
    /// `GET url` (a response being written; if it cannot be read, `saved` is shown again).
    pub(super) fn stream_into(
        &self,
        handle: ExchangeHandle,
        url: String,
        body: Option<String>,
        position: usize,
        saved: Option<Answer>,
    ) {
        self.updates.update(|n| *n += 1);
        let chat = *self;
        spawn_local(async move {
            let control = StreamControl::new();
            chat.control.set_value(Some(control.clone()));
            let end = client::read_stream(&url, body, &control, |frames| {
                handle.answer.update(|answer| {
                    for frame in frames {
                        answer.apply(frame);
                    }
                });
                chat.updates.update(|n| *n += 1);
            })
            .await;
            handle.answer.update(|answer| match end {
                StreamEnd::Failed(_) if answer.blocks.is_empty() && saved.is_some() => {
                    *answer = saved.unwrap_or_default();
                }
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
            if let Some(notice) = handle.answer.with_untracked(|a| a.notice.clone()) {
                chat.notice.set(Some(notice));
            }
            if chat.history_on {
                chat.refresh_list();
                if position == 0 {
                    // The generated title lands a moment after the first answer.
                    set_timeout(move || chat.refresh_list(), std::time::Duration::from_millis(3000));
                }
            }
        });
    }

    /// Reloads the first page of the chat list.
    pub fn refresh_list(&self) {
        self.load_list(None);
    }

    /// Appends the next page of older chats.
    pub fn load_more(&self) {
        let before = self.list.with_untracked(|l| l.last().map(|c| c.updated_at));
        self.load_list(before);
    }

    pub(super) fn load_list(&self, before: Option<i64>) {
        if !self.history_on {
            return;
        }
        let chat = *self;
        spawn_local(async move {
            let url = match before {
                Some(b) => format!("/api/history?limit=20&ending_before={b}"),
                None => "/api/history?limit=20".to_string(),
            };
            match client::fetch_json("GET", &url, None).await.and_then(|t| parse::<ChatListPage>(&t)) {
                Ok(page) => {
                    chat.list.update(|list| {
                        if before.is_none() {
                            list.clear();
                        }
                        list.extend(page.chats);
                    });
                    chat.has_more.set(page.has_more);
                }
                Err(e) => chat.notice.set(Some(format!("The chat list could not be loaded: {e}"))),
            }
        });
    }

    /// Opens a saved chat: every message, tool card and vote as they were.
    pub fn open(&self, id: String) {
        if self.busy_untracked() {
            self.leave();
        }
        self.wanted.set_value(Some(id.clone()));
        let chat = *self;
        spawn_local(async move {
            let url = format!("/api/chat/{}", crate::url::percent_encode(&id));
            let loaded = client::fetch_json("GET", &url, None).await.and_then(|t| parse::<StoredChat>(&t));
            if chat.wanted.get_value().as_deref() != Some(id.as_str()) {
                return;
            }
            match loaded {
                Ok(stored) => {
                    chat.show(stored);
                    client::set_chat_in_url(Some(&id));
                }
                Err(e) => chat.notice.set(Some(format!("That chat could not be opened: {e}"))),
            }
        });
    }

    pub(super) fn show(&self, stored: StoredChat) {
        let mut exchanges = Vec::new();
        let mut running: Option<String> = None;
        let mut messages = stored.messages.into_iter().peekable();
        while let Some(message) = messages.next() {
            if message.role != "user" {
                continue;
            }
            let (answer, answer_id, vote) = match messages.next_if(|m| m.role == "assistant") {
                Some(reply) => {
                    let status = match reply.status {
                        MessageStatus::Complete => AnswerStatus::Done,
                        MessageStatus::Failed => AnswerStatus::Failed,
                        MessageStatus::Incomplete => AnswerStatus::Stopped,
                    };
                    let items = serde_json::from_value(reply.items).unwrap_or_default();
                    running = (reply.status == MessageStatus::Incomplete).then_some(reply.response_id).flatten();
                    (Answer::restored(items, status, reply.error, reply.trace_id), reply.id, reply.vote)
                }
                None => (Answer::restored(Vec::new(), AnswerStatus::Stopped, None, None), String::new(), None),
            };
            exchanges.push(self.new_exchange(message.text, answer, answer_id, vote));
        }
        let last = exchanges.last().copied();
        let position = exchanges.len().saturating_sub(1);
        self.exchanges.set(exchanges);
        self.visibility.set(stored.chat.visibility);
        self.read_only.set(!stored.owned);
        if !stored.owned {
            self.notice.set(Some("This chat is someone else's: you can read it, not continue it.".into()));
        }
        self.open_id.set(Some(stored.chat.id));
        self.follow.set_value(true);
        self.updates.update(|n| *n += 1);
        // The last answer may still be being written (the page was reloaded mid-answer): follow it.
        if let (Some(handle), Some(response_id), true) = (last, running, stored.owned) {
            self.reattach(handle, &response_id, position);
        }
    }

    /// Starts an empty chat.
    pub fn new_chat(&self) {
        if self.busy_untracked() {
            self.leave();
        }
        self.wanted.set_value(None);
        self.visibility.set(Visibility::Private);
        self.read_only.set(false);
        self.exchanges.set(Vec::new());
        self.open_id.set(None);
        self.notice.set(None);
        client::set_chat_in_url(None);
    }

    pub fn rename(&self, id: String, title: String) {
        let chat = *self;
        spawn_local(async move {
            let body = serde_json::json!({ "title": title }).to_string();
            let url = format!("/api/chat/{}", crate::url::percent_encode(&id));
            match client::fetch_json("PATCH", &url, Some(body)).await {
                Ok(_) => chat.refresh_list(),
                Err(e) => chat.notice.set(Some(format!("The chat could not be renamed: {e}"))),
            }
        });
    }

    /// Makes the open chat readable by others with its link, or private again.
    pub fn toggle_visibility(&self) {
        let Some(id) = self.open_id.get_untracked() else { return };
        let next = match self.visibility.get_untracked() {
            Visibility::Private => Visibility::Public,
            Visibility::Public => Visibility::Private,
        };
        let chat = *self;
        spawn_local(async move {
            let body = serde_json::json!({ "visibility": next }).to_string();
            let url = format!("/api/chat/{}", crate::url::percent_encode(&id));
            match client::fetch_json("PATCH", &url, Some(body)).await {
                Ok(_) => chat.visibility.set(next),
                Err(e) => chat.notice.set(Some(format!("The chat's visibility could not be changed: {e}"))),
            }
        });
    }

    pub fn delete(&self, id: String) {
        let chat = *self;
        spawn_local(async move {
            let url = format!("/api/chat/{}", crate::url::percent_encode(&id));
            match client::fetch_json("DELETE", &url, None).await {
                Ok(_) => {
                    if chat.open_id.get_untracked().as_deref() == Some(id.as_str()) {
                        chat.new_chat();
                    }
                    chat.list.update(|l| l.retain(|c| c.id != id));
                }
                Err(e) => chat.notice.set(Some(format!("The chat could not be deleted: {e}"))),
            }
        });
    }

    /// Thumbs up or down on an answer; pressing the same thumb again keeps it.
    pub fn vote(&self, handle: ExchangeHandle, up: bool) {
        let Some(chat_id) = self.open_id.get_untracked() else { return };
        let previous = handle.vote.get_untracked();
        handle.vote.set(Some(up));
        let chat = *self;
        spawn_local(async move {
            let body = serde_json::json!({
                "chatId": chat_id,
                "messageId": handle.answer_id.get_value(),
                "feedbackType": if up { "thumbs_up" } else { "thumbs_down" },
            });
            if let Err(e) = client::fetch_json("POST", "/api/feedback", Some(body.to_string())).await {
                handle.vote.set(previous);
                chat.notice.set(Some(format!("Your feedback could not be saved: {e}")));
            }
        });
    }

    /// Stops the streaming answer; what arrived stays.
    pub fn stop(&self) {
        // A saved chat's answer runs on the server until it is cancelled (a closed page does not stop it).
        if self.history_on {
            let running = self.exchanges.with_untracked(|list| {
                list.iter().find_map(|e| {
                    e.answer.with_untracked(|a| a.is_streaming().then(|| a.response_id.clone()).flatten())
                })
            });
            if let Some(id) = running {
                let url = format!("/responses/{}/cancel", client::encode_component(&id));
                spawn_local(async move {
                    let _ = client::fetch_json("POST", &url, Some("{}".into())).await;
                });
            }
        }
        self.detach();
    }

    /// Leaves the chat while it answers: with saved chats the answer goes on on the server (and is
    /// there when the chat is opened again); without, it is stopped.
    pub(super) fn leave(&self) {
        if self.history_on { self.detach() } else { self.stop() }
    }

    /// Stops following the streaming answer (on the server it goes on, and is saved).
    pub(super) fn detach(&self) {
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
        if self.busy_untracked() {
            return;
        }
        if let Some(last) = self.exchanges.with_untracked(|list| list.last().copied()) {
            self.run(last);
        }
    }

    /// Replaces an earlier question and runs the conversation again from there (later exchanges go).
    pub fn edit(&self, id: u64, text: String) {
        let text = text.trim().to_string();
        if text.is_empty() || self.busy_untracked() {
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

pub(super) fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| format!("unexpected answer from the server: {e}"))
}
