//! The embedded model: a GGUF file run inside the server process, for when no cloud model is
//! configured. Requests queue (bounded, first come first served) for one inference thread; tokens
//! stream back as they are decoded; a client that goes away stops its generation.

pub mod engine;
pub mod grammar;
pub mod template;
pub mod tool_calls;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Instant;

use app::responses::Usage;
use futures::StreamExt;
use futures::future::BoxFuture;
use tokio::sync::mpsc;

use super::{ChatDelta, ChatMessage, ChatModel, ChatRequest, DeltaStream, ModelError};
use engine::{Engine, GenerateOptions, Generation, LlamaEngine};
use grammar::CallGrammar;
use template::ChatTemplate;
use tool_calls::{OPEN_TAG, may_be_call};

/// The models the set-up step can fetch (scripts/lib.sh `ensure_model`), by name.
pub const KNOWN_MODELS: &[&str] = &["qwen2.5-coder-0.5b", "smollm2-135m"];
pub const DEFAULT_MODEL: &str = "qwen2.5-coder-0.5b";

/// Where a model is: a known name in the cache folder, or a path to any GGUF file.
pub fn resolve_model_path(model: &str, cache: &Path) -> PathBuf {
    if KNOWN_MODELS.contains(&model) { cache.join(format!("{model}.gguf")) } else { PathBuf::from(model) }
}

/// The default cache folder: `$XDG_CACHE_HOME/agent-app/models`, else `~/.cache/agent-app/models`.
pub fn default_cache() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"))
        .join("agent-app/models")
}

#[derive(Debug, Clone)]
pub struct LocalSettings {
    pub threads: usize,
    pub context_tokens: u32,
    /// Requests that may wait for the inference thread; more get a 503.
    pub queue: usize,
    pub max_tokens: usize,
}

struct Job {
    prompt: String,
    max_tokens: usize,
    forbid_call: bool,
    call_grammar: Option<CallGrammar>,
    pieces: mpsc::Sender<Result<Piece, String>>,
    /// Set when what was generated so far is enough (a complete tool call).
    stop: Arc<AtomicBool>,
}

enum Piece {
    Text(String),
    Done(Generation),
}

pub struct LocalModel {
    name: String,
    template: ChatTemplate,
    jobs: SyncSender<Job>,
    waiting: Arc<AtomicUsize>,
    settings: LocalSettings,
}

impl LocalModel {
    /// Loads the model and starts its inference thread.
    pub fn load(path: &Path, settings: LocalSettings) -> Result<Self, String> {
        let started = Instant::now();
        let engine = LlamaEngine::load(path, settings.threads, settings.context_tokens)?;
        let template = ChatTemplate::new(engine.chat_template()?)?;
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "local".into());
        tracing::info!(
            model = %path.display(),
            load_ms = started.elapsed().as_millis() as u64,
            threads = settings.threads,
            rss_mb = resident_mb(),
            "embedded model loaded"
        );
        let (jobs, queue) = sync_channel(settings.queue);
        let waiting = Arc::new(AtomicUsize::new(0));
        let counter = waiting.clone();
        std::thread::Builder::new()
            .name("local-model".into())
            .spawn(move || run_jobs(engine, queue, counter))
            .map_err(|e| format!("cannot start the inference thread: {e}"))?;
        Ok(Self { name, template, jobs, waiting, settings })
    }
}

/// The inference thread: one generation at a time, in arrival order.
fn run_jobs(mut engine: LlamaEngine, jobs: Receiver<Job>, waiting: Arc<AtomicUsize>) {
    for job in jobs {
        waiting.fetch_sub(1, Ordering::SeqCst);
        if job.pieces.is_closed() {
            continue; // the client left while waiting
        }
        let options = GenerateOptions {
            max_tokens: job.max_tokens,
            stop_at_end: true,
            forbid_call: job.forbid_call,
            call_grammar: job.call_grammar.as_ref(),
        };
        let result = engine.generate(&job.prompt, options, &mut |text| {
            job.pieces.blocking_send(Ok(Piece::Text(text.to_string()))).is_ok() && !job.stop.load(Ordering::SeqCst)
        });
        let _ = job.pieces.blocking_send(result.map(Piece::Done));
    }
}

impl ChatModel for LocalModel {
    fn backend(&self) -> &'static str {
        "local"
    }

    fn served_model(&self) -> Option<String> {
        Some(self.name.clone())
    }

    fn ready(&self) -> Result<(), ModelError> {
        if self.waiting.load(Ordering::SeqCst) >= self.settings.queue {
            return Err(busy(self.settings.queue));
        }
        Ok(())
    }

    fn chat(&self, request: ChatRequest, _stream: bool) -> BoxFuture<'_, Result<DeltaStream, ModelError>> {
        Box::pin(async move {
            // Small models given a tool result tend to call the tool again and again, imitating the
            // history. So: one round of tool calls, then the answer (no tools, and no call at its start).
            let after_tools = matches!(request.messages.last(), Some(ChatMessage::Tool { .. }));
            let no_tools = after_tools || request.tool_choice.as_ref().is_some_and(|c| c == "none");
            let tools = if no_tools { &[][..] } else { &request.tools[..] };
            let prompt = self.template.render(&request.messages, tools).map_err(ModelError::Local)?;
            let call_grammar = grammar::for_tools(tools);
            let max_tokens = request.max_tokens.map_or(self.settings.max_tokens, |m| m as usize);
            let (pieces, received) = mpsc::channel(256);
            let stop = Arc::new(AtomicBool::new(false));
            self.waiting.fetch_add(1, Ordering::SeqCst);
            if let Err(e) = self.jobs.try_send(Job {
                prompt,
                max_tokens,
                forbid_call: after_tools,
                call_grammar,
                pieces,
                stop: stop.clone(),
            }) {
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                return Err(match e {
                    TrySendError::Full(_) => busy(self.settings.queue),
                    TrySendError::Disconnected(_) => ModelError::Local("the inference thread stopped".into()),
                });
            }
            Ok(deltas(received, stop))
        })
    }
}

fn busy(queue: usize) -> ModelError {
    ModelError::Busy(format!("the local model is busy: {queue} requests are already waiting; try again shortly"))
}

/// Turns generated text into deltas: text streams as it comes, unless it may be a tool call, which
/// is held back until it can be parsed. Dropping the stream drops the receiver, which stops the
/// generation at its next token.
fn deltas(pieces: mpsc::Receiver<Result<Piece, String>>, stop: Arc<AtomicBool>) -> DeltaStream {
    struct State {
        pieces: mpsc::Receiver<Result<Piece, String>>,
        stop: Arc<AtomicBool>,
        splitter: Splitter,
        queue: VecDeque<Result<ChatDelta, ModelError>>,
        done: bool,
    }
    let state = State { pieces, stop, splitter: Splitter::default(), queue: VecDeque::new(), done: false };
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(item) = st.queue.pop_front() {
                return Some((item, st));
            }
            if st.done {
                return None;
            }
            match st.pieces.recv().await {
                Some(Ok(Piece::Text(text))) => {
                    st.queue.extend(st.splitter.push(&text).into_iter().map(Ok));
                    // A small model that has written its call tends to write it again and again.
                    if st.splitter.has_complete_call() {
                        st.stop.store(true, Ordering::SeqCst);
                    }
                }
                Some(Ok(Piece::Done(generation))) => {
                    let (finish, deltas) = st.splitter.finish();
                    st.queue.extend(deltas.into_iter().map(Ok));
                    st.queue.push_back(Ok(ChatDelta::Usage(Usage {
                        input_tokens: generation.prompt_tokens as u64,
                        output_tokens: generation.completion_tokens as u64,
                        total_tokens: (generation.prompt_tokens + generation.completion_tokens) as u64,
                        ..Usage::default()
                    })));
                    st.queue.push_back(Ok(ChatDelta::Finish(finish.into())));
                    st.done = true;
                }
                Some(Err(message)) => {
                    st.queue.push_back(Err(ModelError::Local(message)));
                    st.done = true;
                }
                None => {
                    st.queue.push_back(Err(ModelError::Local("the inference thread stopped".into())));
                    st.done = true;
                }
            }
        }
    })
    .boxed()
}

/// Decides, as text arrives, what is answer text and what is a tool call.
#[derive(Default)]
struct Splitter {
    held: String,
    mode: Mode,
}

#[derive(Default, PartialEq)]
enum Mode {
    #[default]
    Undecided,
    Text,
    Call,
}

impl Splitter {
    fn push(&mut self, text: &str) -> Vec<ChatDelta> {
        self.held.push_str(text);
        match self.mode {
            Mode::Call => Vec::new(),
            Mode::Undecided if may_be_call(&self.held) => Vec::new(),
            Mode::Undecided | Mode::Text => {
                self.mode = Mode::Text;
                self.release_text()
            }
        }
    }

    /// In text, a `<tool_call>` may still start: pass on all but what could be its beginning.
    fn release_text(&mut self) -> Vec<ChatDelta> {
        if let Some(at) = self.held.find(OPEN_TAG) {
            let before: String = self.held.drain(..at).collect();
            self.mode = Mode::Call;
            return text_delta(before);
        }
        let keep = (1..OPEN_TAG.len()).rev().find(|&n| self.held.ends_with(&OPEN_TAG[..n])).unwrap_or(0);
        let release = self.held.len() - keep;
        let out: String = self.held.drain(..release).collect();
        text_delta(out)
    }

    /// Whether a whole tool call has been written (generation can stop there).
    fn has_complete_call(&self) -> bool {
        self.mode != Mode::Text && !tool_calls::parse(&self.held).0.is_empty()
    }

    /// The end of the answer: whatever was held, as text or calls. Returns the finish reason.
    fn finish(&mut self) -> (&'static str, Vec<ChatDelta>) {
        let held = std::mem::take(&mut self.held);
        if self.mode == Mode::Text {
            return ("stop", text_delta(held));
        }
        let (calls, text) = tool_calls::parse(&held);
        if calls.is_empty() {
            return ("stop", text_delta(held.trim().to_string()));
        }
        let mut out = text_delta(text);
        for (index, call) in calls.into_iter().enumerate() {
            out.push(ChatDelta::ToolCall {
                index: index as u32,
                id: None,
                name: Some(call.name),
                arguments: call.arguments,
            });
        }
        ("tool_calls", out)
    }
}

fn text_delta(text: String) -> Vec<ChatDelta> {
    if text.is_empty() { Vec::new() } else { vec![ChatDelta::Text(text)] }
}

/// This process's resident memory, in MB (Linux).
pub fn resident_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .map_or(0, |kb: u64| kb / 1024)
}
