//! Saves a chat answer while it streams.
//!
//! The recorder folds the frames the browser gets with the browser's own reducer ([`Answer`]), so
//! what is saved is what the user saw. Snapshots go through a watch channel to one
//! writer task: writes never hold up the stream, bursts collapse into the latest state, and when the
//! stream ends (or the client hangs up and the body is dropped) the writer saves the final state:
//! complete, failed, or incomplete with whatever had arrived.

use std::sync::Arc;
use std::time::{Duration, Instant};

use app::conversation::{Answer, AnswerStatus};
use app::responses::StreamFrame;
use app::sse::SseParser;
use tokio::sync::{oneshot, watch};

use super::{AnswerRecord, ChatStore, MessageStatus, fallback_title};
use crate::llm::{ChatMessage, ChatModel, ChatRequest, UserContent};

/// Where an answer goes: its chat, its row, and what the title task needs.
pub struct AnswerTarget {
    pub store: ChatStore,
    pub chat_id: String,
    pub answer_id: String,
    /// The first exchange of a chat gets a generated title once it completes.
    pub title: Option<TitleJob>,
}

pub struct TitleJob {
    pub model: Arc<dyn ChatModel>,
    pub model_name: String,
    pub question: String,
}

pub struct Recorder {
    parser: SseParser,
    answer: Answer,
    items_seen: usize,
    last_sent: Instant,
    /// The answer changed since the last snapshot.
    unsent: bool,
    snapshots: watch::Sender<Answer>,
    /// Told when the writer has written the last state.
    final_saved: Option<oneshot::Receiver<()>>,
}

/// How long `finish` waits for the last write (a stuck database does not hold the stream's end
/// longer than this).
const FINISH_WAIT: Duration = Duration::from_secs(3);

/// How often a growing answer's text is saved between finished items: the most text a killed
/// process can lose (README, "Durability").
pub const SAVE_EVERY: Duration = Duration::from_millis(250);

/// How long the writer waits after a change before saving, so that what follows at once is saved
/// with it: a finished item is saved this long after it finished, at most (plus the write).
pub const COALESCE: Duration = Duration::from_millis(50);

impl Recorder {
    pub fn start(target: AnswerTarget) -> Self {
        Self::start_with(target, Answer::default())
    }

    /// Records an answer that goes on from `answer` (the user decided its approvals).
    pub fn start_with(target: AnswerTarget, answer: Answer) -> Self {
        let (snapshots, mut updates) = watch::channel(answer.clone());
        let (final_saved, final_saved_rx) = oneshot::channel();
        tokio::spawn(async move {
            // What is saved: the same state is not written twice (the end arrives as the last
            // snapshot, again when the recorder is dropped, and as the channel closes).
            let mut saved: Option<Answer> = None;
            let mut final_saved = Some(final_saved);
            loop {
                let mut open = updates.changed().await.is_ok();
                // A burst (an item added, its first tokens, its end) becomes one write; the end
                // (the recorder gone) is written at once.
                let window = tokio::time::sleep(COALESCE);
                tokio::pin!(window);
                while open {
                    tokio::select! {
                        _ = &mut window => break,
                        changed = updates.changed() => open = changed.is_ok(),
                    }
                }
                let answer = updates.borrow_and_update().clone();
                if saved.as_ref() != Some(&answer) {
                    match target.store.save_answer(&target.chat_id, &record(&target.answer_id, &answer)).await {
                        Ok(()) => saved = Some(answer.clone()),
                        Err(error) => tracing::warn!(%error, chat = %target.chat_id, "could not save the answer"),
                    }
                }
                if !open {
                    if let Some(final_saved) = final_saved.take() {
                        let _ = final_saved.send(());
                    }
                    if answer.status == AnswerStatus::Done
                        && let Some(job) = target.title
                    {
                        generate_title(&target.store, &target.chat_id, job, &answer.text()).await;
                    }
                    break;
                }
            }
        });
        Self {
            parser: SseParser::default(),
            items_seen: answer.items.len(),
            unsent: false,
            answer,
            last_sent: Instant::now(),
            snapshots,
            final_saved: Some(final_saved_rx),
        }
    }

    /// Ends the recording and waits (a few seconds at most) until its last state is written: a
    /// client told the answer is done then reads it saved.
    pub async fn finish(mut self) {
        let final_saved = self.final_saved.take();
        drop(self);
        if let Some(final_saved) = final_saved {
            let _ = tokio::time::timeout(FINISH_WAIT, final_saved).await;
        }
    }

    /// Takes bytes as they leave for the client.
    pub fn observe(&mut self, bytes: &[u8]) {
        let Ok(frames) = self.parser.push(bytes) else { return };
        self.apply(frames.into_iter().filter_map(|frame| StreamFrame::parse(&frame.data).ok()));
    }

    /// Takes the frames a run wrote, as they were written.
    pub fn apply(&mut self, frames: impl IntoIterator<Item = StreamFrame>) {
        for frame in frames {
            self.answer.apply(frame);
        }
        self.unsent = true;
        let finished = !self.answer.is_streaming();
        // The response id at once: a page reloaded early must find it to follow the answer.
        let new_response = self.answer.response_id.is_some() && self.snapshots.borrow().response_id.is_none();
        if finished
            || new_response
            || self.answer.items.len() != self.items_seen
            || self.last_sent.elapsed() >= SAVE_EVERY
        {
            self.send();
        }
    }

    /// Saves what changed if the last save is old enough (called while the run is quiet, so text
    /// that arrived just before a long pause is not left unsaved).
    pub fn tick(&mut self) {
        if self.unsent && self.last_sent.elapsed() >= SAVE_EVERY {
            self.send();
        }
    }

    fn send(&mut self) {
        self.items_seen = self.answer.items.len();
        self.last_sent = Instant::now();
        self.unsent = false;
        self.snapshots.send_replace(self.answer.clone());
    }
}

impl Drop for Recorder {
    /// The stream ended or was dropped: the writer saves this last state and stops.
    fn drop(&mut self) {
        self.snapshots.send_replace(self.answer.clone());
    }
}

fn record(answer_id: &str, answer: &Answer) -> AnswerRecord {
    let status = match answer.status {
        AnswerStatus::Done => MessageStatus::Complete,
        AnswerStatus::Failed => MessageStatus::Failed,
        AnswerStatus::Streaming | AnswerStatus::Stopped => MessageStatus::Incomplete,
    };
    AnswerRecord {
        id: answer_id.to_string(),
        text: answer.text(),
        items: serde_json::to_value(answer.history_items()).unwrap_or_default(),
        status,
        error: answer.error.clone(),
        trace_id: answer.trace_id.clone(),
        response_id: answer.response_id.clone(),
    }
}

const TITLE_PROMPT: &str = "Write a short title (at most six words) for a chat that starts with the exchange below. \
                            Answer with the title only: no quotes, no punctuation at the end.";

/// Asks the model for a title; the first-message title stays if that fails or says nothing.
async fn generate_title(store: &ChatStore, chat_id: &str, job: TitleJob, answer: &str) {
    let excerpt = |s: &str, n: usize| s.chars().take(n).collect::<String>();
    let request = ChatRequest {
        model: job.model_name,
        messages: vec![
            ChatMessage::System { content: TITLE_PROMPT.into() },
            ChatMessage::User {
                content: UserContent::Text(format!(
                    "User: {}\n\nAssistant: {}",
                    excerpt(&job.question, 1000),
                    excerpt(answer, 1000)
                )),
            },
        ],
        max_tokens: Some(24),
        ..ChatRequest::default()
    };
    let title = async {
        let text = crate::llm::complete_text(job.model.as_ref(), request).await.ok()?;
        let line = text.lines().map(str::trim).find(|l| !l.is_empty())?.to_string();
        Some(line.trim_matches(['"', '\'', '*', '#', ' ', '.']).to_string())
    };
    match tokio::time::timeout(Duration::from_secs(60), title).await {
        Ok(Some(title)) if !title.is_empty() => {
            if let Err(error) = store.set_generated_title(chat_id, &fallback_title(&job.question), &title).await {
                tracing::warn!(%error, "could not save the chat title");
            }
        }
        _ => tracing::debug!(chat = %chat_id, "no generated title; the first message stays the title"),
    }
}
