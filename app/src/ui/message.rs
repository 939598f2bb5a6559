//! One exchange on screen: the user's message (editable), and the answer as it streams: markdown text,
//! tool-call cards, reasoning, an inline error, and the actions under it.

use leptos::either::Either;
use leptos::prelude::*;

use super::chat::{Chat, ExchangeHandle};
use crate::client;
use crate::conversation::{Answer, AnswerStatus, Approval, Block, ToolCall};
use crate::markdown;

#[component]
pub fn ExchangeView(exchange: ExchangeHandle) -> impl IntoView {
    view! {
        <div class="exchange">
            <UserMessage exchange/>
            <AnswerView exchange/>
        </div>
    }
}

#[component]
fn UserMessage(exchange: ExchangeHandle) -> impl IntoView {
    let chat = expect_context::<Chat>();
    let editing = RwSignal::new(false);
    let draft = RwSignal::new(String::new());
    let start_edit = move |_| {
        draft.set(exchange.user.get_untracked());
        editing.set(true);
    };
    let save = move || {
        editing.set(false);
        chat.edit(exchange.id, draft.get_untracked());
    };
    view! {
        <div class="message user-message">
            {move || if !editing.get() {
                Either::Left(view! {
                    <div class="bubble">{move || exchange.user.get()}</div>
                    <div class="actions user-actions">
                        <button type="button" class="action edit" aria-label="Edit message" title="Edit"
                            disabled=move || chat.busy() on:click=start_edit>"✎"</button>
                    </div>
                })
            } else {
                Either::Right(view! {
                <div class="edit-box">
                    <textarea class="edit-input" aria-label="Edit your message" prop:value=move || draft.get()
                        on:input=move |ev| draft.set(event_target_value(&ev))
                        on:keydown=move |ev| {
                            if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
                                ev.prevent_default();
                                save();
                            } else if ev.key() == "Escape" {
                                editing.set(false);
                            }
                        }></textarea>
                    <div class="edit-buttons">
                        <button type="button" class="button secondary" on:click=move |_| editing.set(false)>"Cancel"</button>
                        <button type="button" class="button primary" on:click=move |_| save()>"Save & send"</button>
                    </div>
                </div>
                })
            }}
        </div>
    }
}

#[component]
fn AnswerView(exchange: ExchangeHandle) -> impl IntoView {
    let chat = expect_context::<Chat>();
    let answer = exchange.answer;
    let status = Memo::new(move |_| answer.with(|a| a.status));
    let keys = Memo::new(move |_| answer.with(|a| a.blocks.iter().map(Block::key).collect::<Vec<_>>()));
    let error = Memo::new(move |_| answer.with(|a| a.error.clone()));
    let status_name = move || match status.get() {
        AnswerStatus::Streaming => "streaming",
        AnswerStatus::Done => "done",
        AnswerStatus::Stopped => "stopped",
        AnswerStatus::Failed => "failed",
    };
    let waiting = Memo::new(move |_| status.get() == AnswerStatus::Streaming && keys.with(Vec::is_empty));
    let finished = Memo::new(move |_| status.get() != AnswerStatus::Streaming);
    let is_last = Memo::new(move |_| chat.is_last(exchange.id));
    let copied = RwSignal::new(false);
    let copy = move |_| {
        client::copy_text(&answer.with_untracked(Answer::text));
        copied.set(true);
        set_timeout(move || copied.set(false), std::time::Duration::from_millis(1500));
    };
    view! {
        <div class="message assistant-message" data-status=status_name>
            <div class="avatar assistant-avatar" aria-hidden="true">"✦"</div>
            <div class="answer">
                <For each=move || keys.get() key=|k| k.clone() let:key>
                    <BlockView exchange key/>
                </For>
                {move || {
                    let sources = answer.with(|a| a.sources.clone());
                    (!sources.is_empty()).then(|| view! {
                        <div class="sources">
                            <div class="sources-title">"Sources"</div>
                            <ol class="source-list">
                                {sources.into_iter().map(|s| view! {
                                    <li><a class="source" href=s.url target="_blank" rel="noopener noreferrer">{s.title}</a></li>
                                }).collect_view()}
                            </ol>
                        </div>
                    })
                }}
                {move || chat.custom_open.get().then(|| answer.with(|a| a.custom_outputs.clone())).flatten().map(|outputs| view! {
                    <details class="custom-outputs" open>
                        <summary>"Custom outputs"</summary>
                        <pre class="custom-outputs-json">{serde_json::to_string_pretty(&serde_json::Value::Object(outputs)).unwrap_or_default()}</pre>
                    </details>
                })}
                {move || waiting.get().then(|| view! {
                    <div class="thinking" aria-label="Waiting for the answer"><span></span><span></span><span></span></div>
                })}
                {move || error.get().map(|message| view! {
                    <div class="error-box" role="alert">
                        <div class="error-title">"Error"</div>
                        <pre class="error-text">{pretty_json(&message)}</pre>
                    </div>
                })}
                {move || (status.get() == AnswerStatus::Stopped).then(|| view! { <div class="stopped-note">"Stopped"</div> })}
                {move || finished.get().then(|| view! {
                    <div class="actions">
                        <button type="button" class="action copy-message" title="Copy" aria-label="Copy message"
                            on:click=copy>{move || if copied.get() { "Copied" } else { "Copy" }}</button>
                        {chat.history_on.then(|| view! {
                            <button type="button" class="action thumb" aria-label="Good answer" title="Good answer"
                                aria-pressed=move || (exchange.vote.get() == Some(true)).to_string()
                                on:click=move |_| chat.vote(exchange, true)><Thumb up=true/></button>
                            <button type="button" class="action thumb" aria-label="Bad answer" title="Bad answer"
                                aria-pressed=move || (exchange.vote.get() == Some(false)).to_string()
                                on:click=move |_| chat.vote(exchange, false)><Thumb up=false/></button>
                        })}
                        {move || answer.with(|a| a.trace_id.clone()).map(|id| view! {
                            <a class="action trace-link" href=format!("/traces/{id}") title="How this answer was made: its trace">"Trace"</a>
                        })}
                        {move || is_last.get().then(|| view! {
                            <button type="button" class="action regenerate" title="Regenerate" aria-label="Regenerate"
                                on:click=move |_| chat.regenerate()>"↻ Regenerate"</button>
                        })}
                    </div>
                })}
            </div>
        </div>
    }
}

/// One block, redrawn only when its own content changes.
#[component]
fn BlockView(exchange: ExchangeHandle, key: String) -> impl IntoView {
    let answer = exchange.answer;
    let kind = key.split(':').next().unwrap_or("").to_string();
    let id = key.strip_prefix("text:").unwrap_or_default().to_string();
    let block = Memo::new(move |_| answer.with(|a| a.blocks.iter().find(|b| b.key() == key).cloned()));
    let streaming = Memo::new(move |_| answer.with(Answer::is_streaming));
    match kind.as_str() {
        "tool" => view! { <ToolCard block streaming/> }.into_any(),
        "approval" => view! { <ApprovalCard exchange block/> }.into_any(),
        "reasoning" => {
            let text = move || match block.get() {
                Some(Block::Reasoning { text, .. }) => text,
                _ => String::new(),
            };
            view! { <Reasoning text=Signal::derive(text)/> }.into_any()
        }
        _ => {
            let text = Memo::new(move |_| match block.get() {
                Some(Block::Text { text, .. }) => text,
                _ => String::new(),
            });
            let speaker = move || answer.with(|a| a.speaker(&id).map(str::to_string));
            let thinking = move || text.with(|t| markdown::split_think(t).0.map(str::to_string));
            let html = move || text.with(|t| markdown::render(markdown::split_think(t).1));
            view! {
                {move || speaker().map(|agent| view! { <div class="agent-name">{agent}</div> })}
                {move || thinking().map(|t| view! { <Reasoning text=Signal::derive(move || t.clone())/> })}
                <div class="markdown" inner_html=html></div>
            }
            .into_any()
        }
    }
}

#[component]
fn Reasoning(#[prop(into)] text: Signal<String>) -> impl IntoView {
    view! {
        <details class="reasoning">
            <summary>"Reasoning"</summary>
            <div class="reasoning-text">{move || text.get()}</div>
        </details>
    }
}

#[component]
fn ToolCard(block: Memo<Option<Block>>, streaming: Memo<bool>) -> impl IntoView {
    let call = Memo::new(move |_| match block.get() {
        Some(Block::Tool(call)) => Some(call),
        _ => None,
    });
    let has_output = Memo::new(move |_| call.with(|c| c.as_ref().is_some_and(|c| c.output.is_some())));
    let field = move |f: fn(&ToolCall) -> String| move || call.with(|c| c.as_ref().map(f).unwrap_or_default());
    let state = move || match call.with(|c| c.as_ref().map(|c| c.output.is_some())) {
        Some(true) => "done",
        _ if streaming.get() => "running",
        _ => "interrupted",
    };
    let state_label = move || match state() {
        "done" => "Done",
        "running" => "Running…",
        _ => "No result",
    };
    view! {
        <details class="tool-card" data-state=state>
            <summary>
                <span class="tool-icon" aria-hidden="true">"⚙"</span>
                <span class="tool-label">"Tool"</span>
                <span class="tool-name">{field(|c| c.name.clone())}</span>
                <span class="tool-status">{state_label}</span>
            </summary>
            <div class="tool-section">
                <div class="tool-section-title">"Arguments"</div>
                <pre class="tool-arguments">{field(|c| pretty_json(&c.arguments))}</pre>
            </div>
            {move || has_output.get().then(|| view! {
                <div class="tool-section">
                    <div class="tool-section-title">"Output"</div>
                    <pre class="tool-output">{field(|c| pretty_json(c.output.as_deref().unwrap_or("")))}</pre>
                </div>
            })}
        </details>
        {move || call.with(|c| c.as_ref().and_then(ToolCall::connection_login)).map(|login| view! {
            <div class="notice connection-login" role="alert">
                <span>"This tool needs you to sign in to the connection "<strong>{login.connection}</strong>" first."</span>
                <a class="button primary" href=login.url target="_blank" rel="noopener noreferrer">"Sign in"</a>
            </div>
        })}
    }
}

/// A tool call waiting for the user's say-so: what it would do, and Approve / Deny (with an optional
/// reason the model is told). Once decided, the decision stays on the card.
#[component]
fn ApprovalCard(exchange: ExchangeHandle, block: Memo<Option<Block>>) -> impl IntoView {
    let chat = expect_context::<Chat>();
    let approval = Memo::new(move |_| match block.get() {
        Some(Block::Approval(approval)) => Some(approval),
        _ => None,
    });
    let reason = RwSignal::new(String::new());
    let decision = move || approval.with(|a| a.as_ref().and_then(|a| a.decision));
    let field = move |f: fn(&Approval) -> String| move || approval.with(|a| a.as_ref().map(f).unwrap_or_default());
    let decide = move |approve: bool| {
        if let Some(approval) = approval.get_untracked() {
            let reason = (!approve).then(|| reason.get_untracked());
            chat.decide(exchange, approval.id, approve, reason);
        }
    };
    let blocked = move || chat.busy() || chat.read_only.get();
    view! {
        <div class="approval-card" data-decision=move || match decision() {
            Some(true) => "approved",
            Some(false) => "denied",
            None => "pending",
        }>
            <div class="approval-title">
                <span class="tool-icon" aria-hidden="true">"⚠"</span>
                "Approve this tool call? "
                <span class="tool-name">{field(|a| a.name.clone())}</span>
            </div>
            <pre class="tool-arguments">{field(|a| pretty_json(&a.arguments))}</pre>
            {move || match decision() {
                None => Either::Left(view! {
                    <div class="approval-actions">
                        <input class="approval-reason" type="text" aria-label="Reason for denying (optional)"
                            placeholder="Reason (optional, if you deny)" prop:value=move || reason.get()
                            on:input=move |ev| reason.set(event_target_value(&ev))/>
                        <button type="button" class="button secondary deny" disabled=blocked
                            on:click=move |_| decide(false)>"Deny"</button>
                        <button type="button" class="button primary approve" disabled=blocked
                            on:click=move |_| decide(true)>"Approve"</button>
                    </div>
                }),
                Some(approved) => Either::Right(view! {
                    <div class="approval-decision">{if approved { "Approved" } else { "Denied" }}</div>
                }),
            }}
        </div>
    }
}

/// JSON pretty-printed (arguments, outputs and error bodies are often JSON); anything else as it is.
fn pretty_json(text: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value @ (serde_json::Value::Object(_) | serde_json::Value::Array(_))) => {
            serde_json::to_string_pretty(&value).unwrap_or_else(|_| text.to_string())
        }
        _ => text.to_string(),
    }
}

/// A thumb icon (inline SVG: emoji fonts are not everywhere).
#[component]
fn Thumb(up: bool) -> impl IntoView {
    let transform = if up { "" } else { "rotate(180 12 12)" };
    view! {
        <svg class="icon" viewBox="0 0 24 24" width="15" height="15" aria-hidden="true" fill="none"
            stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">
            <g transform=transform>
                <path d="M7 10v12"/>
                <path d="M15 5.9 14 10h5.8a2 2 0 0 1 1.9 2.6l-2.3 8A2 2 0 0 1 17.5 22H4a2 2 0 0 1-2-2v-8a2 2 0 0 1 2-2h2.8a2 2 0 0 0 1.8-1.1L12 2a3.1 3.1 0 0 1 3 3.9Z"/>
            </g>
        </svg>
    }
}
