//! The inference engine behind a small trait: a prompt in, pieces of text out, as they are decoded.
//!
//! llama.cpp (through `llama-cpp-2`) is the engine: on these GGUF files it decodes about twice as fast
//! as candle and processes prompts four to ten times as fast (measured on a 2-core x86 machine with
//! SmolLM2-135M and Qwen2.5-Coder-0.5B when the engine was chosen).

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Instant;

use super::grammar::CallGrammar;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::logit_bias::LlamaLogitBias;

/// What one generation did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Generation {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub prompt_seconds: f64,
    pub decode_seconds: f64,
}

/// How to generate.
#[derive(Debug, Clone, Copy)]
pub struct GenerateOptions<'a> {
    pub max_tokens: usize,
    /// Stop at the end-of-turn token (off only for benchmarks that need a fixed length).
    pub stop_at_end: bool,
    /// The answer may not begin with a tool call (`{`, `[`, a fence or `<tool_call>`).
    pub forbid_call: bool,
    /// Once a tool call begins, it must follow this grammar (the tools' names and argument schemas).
    pub call_grammar: Option<&'a CallGrammar>,
}

/// An inference engine: prompt text in, text out piece by piece.
pub trait Engine: Send {
    /// The model's own chat template (`tokenizer.chat_template`).
    fn chat_template(&self) -> Result<String, String>;
    /// The prompt's token ids (for tests and limits).
    fn tokenize(&self, prompt: &str) -> Vec<i32>;
    /// Generates after `prompt`; `on_text` gets each decoded piece and returns false to stop early.
    fn generate(
        &mut self,
        prompt: &str,
        options: GenerateOptions<'_>,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generation, String>;
}

/// llama.cpp allows one backend per process.
fn backend() -> &'static LlamaBackend {
    static BACKEND: OnceLock<LlamaBackend> = OnceLock::new();
    BACKEND.get_or_init(|| {
        llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
        LlamaBackend::init().expect("llama.cpp backend initialises once")
    })
}

pub struct LlamaEngine {
    model: LlamaModel,
    threads: i32,
    context_tokens: u32,
    /// Tokens that can begin a tool call, kept out of an answer's start when calls are forbidden.
    call_starts: Vec<LlamaLogitBias>,
}

impl LlamaEngine {
    /// Loads a GGUF file (memory-mapped). `context_tokens` bounds prompt + answer.
    pub fn load(path: &Path, threads: usize, context_tokens: u32) -> Result<Self, String> {
        let model = LlamaModel::load_from_file(backend(), path, &LlamaModelParams::default())
            .map_err(|e| format!("cannot load the model {}: {e}", path.display()))?;
        let context_tokens = context_tokens.min(model.n_ctx_train()).max(256);
        let vocab = model.vocab();
        let call_starts = vocab
            .tokens()
            .filter(|&token| {
                let piece = String::from_utf8_lossy(&vocab.token_to_piece(token, true, None)).into_owned();
                let piece = piece.trim_start();
                ["{", "[", "`", "<tool_call>"].iter().any(|start| piece.starts_with(start))
            })
            .map(|token| LlamaLogitBias::new(token, f32::NEG_INFINITY))
            .collect();
        Ok(Self { model, threads: threads.max(1) as i32, context_tokens, call_starts })
    }
}

impl LlamaEngine {
    /// Greedy decoding under the call grammar (lazy: it applies once a call begins); none if llama.cpp
    /// refuses the grammar, which is logged (the parser still reads what the model writes).
    fn call_sampler(&self, grammar: &CallGrammar) -> Option<LlamaSampler> {
        match LlamaSampler::grammar_lazy_patterns(&self.model, &grammar.gbnf, "root", &grammar.triggers, &[]) {
            Ok(constrained) => Some(LlamaSampler::chain_simple([constrained, LlamaSampler::greedy()])),
            Err(error) => {
                tracing::warn!(%error, "llama.cpp refused the tool-call grammar; calls are not constrained");
                None
            }
        }
    }
}

impl Engine for LlamaEngine {
    fn chat_template(&self) -> Result<String, String> {
        self.model
            .meta_val_str("tokenizer.chat_template")
            .map_err(|e| format!("the model has no chat template (tokenizer.chat_template): {e}"))
    }

    fn tokenize(&self, prompt: &str) -> Vec<i32> {
        self.model.vocab().tokenize(prompt.as_bytes(), false, true).into_iter().map(|t| t.0).collect()
    }

    fn generate(
        &mut self,
        prompt: &str,
        options: GenerateOptions<'_>,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generation, String> {
        let vocab = self.model.vocab();
        // The template writes the special tokens itself: parse them, add none.
        let tokens = vocab.tokenize(prompt.as_bytes(), false, true);
        let limit = self.context_tokens as usize;
        if tokens.len() + 1 >= limit {
            return Err(format!(
                "the conversation is too long for the local model: {} tokens, at most {} (AGENT_LOCAL_CONTEXT_TOKENS)",
                tokens.len(),
                limit - 1
            ));
        }
        let max_tokens = options.max_tokens.min(limit - tokens.len());
        let batch_size = 512;
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(self.context_tokens))
            .with_n_batch(batch_size as u32)
            .with_n_threads(self.threads)
            .with_n_threads_batch(self.threads);
        let mut ctx = self.model.new_context(backend(), params).map_err(|e| format!("llama.cpp context: {e}"))?;
        let started = Instant::now();
        let mut batch = LlamaBatch::new(batch_size, 1);
        for (chunk_index, chunk) in tokens.chunks(batch_size).enumerate() {
            batch.clear();
            for (i, token) in chunk.iter().enumerate() {
                let position = chunk_index * batch_size + i;
                let last = position + 1 == tokens.len();
                batch.add(*token, position as i32, &[0], last).map_err(|e| format!("llama.cpp batch: {e}"))?;
            }
            ctx.decode(&mut batch).map_err(|e| format!("llama.cpp decode: {e}"))?;
        }
        let prompt_seconds = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let mut sampler = options.call_grammar.and_then(|g| self.call_sampler(g)).unwrap_or_else(LlamaSampler::greedy);
        let mut no_call = LlamaSampler::chain_simple([
            LlamaSampler::logit_bias(vocab.n_tokens(), &self.call_starts),
            LlamaSampler::greedy(),
        ]);
        let mut started_answer = !options.forbid_call;
        let mut position = tokens.len();
        let mut undecoded: Vec<u8> = Vec::new();
        let mut completion_tokens = 0;
        while completion_tokens < max_tokens {
            // Until the answer has begun (past any leading white space), calls may be kept out of it.
            // Sampling accepts the token into the sampler that chose it; the main one (whose lazy
            // grammar watches the text for a call beginning) must see it too.
            let token = if started_answer {
                sampler.sample(&ctx, batch.n_tokens() - 1)
            } else {
                let token = no_call.sample(&ctx, batch.n_tokens() - 1);
                sampler.accept(token);
                token
            };
            if options.stop_at_end && vocab.is_eog(token) {
                break;
            }
            completion_tokens += 1;
            // Special tokens are kept as text: `<tool_call>` is one, in Qwen's vocabulary.
            let piece = vocab.token_to_piece(token, true, None);
            started_answer |= piece.iter().any(|b| !b.is_ascii_whitespace());
            undecoded.extend(piece);
            // A character can span tokens: pass on only whole characters.
            let whole = match std::str::from_utf8(&undecoded) {
                Ok(text) => text.len(),
                Err(e) => e.valid_up_to(),
            };
            if whole > 0 {
                let text: Vec<u8> = undecoded.drain(..whole).collect();
                if !on_text(std::str::from_utf8(&text).expect("checked")) {
                    break;
                }
            }
            if completion_tokens == max_tokens {
                break;
            }
            batch.clear();
            batch.add(token, position as i32, &[0], true).map_err(|e| format!("llama.cpp batch: {e}"))?;
            position += 1;
            ctx.decode(&mut batch).map_err(|e| format!("llama.cpp decode: {e}"))?;
        }
        Ok(Generation {
            prompt_tokens: tokens.len(),
            completion_tokens,
            prompt_seconds,
            decode_seconds: started.elapsed().as_secs_f64(),
        })
    }
}
