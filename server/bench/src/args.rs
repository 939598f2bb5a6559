//! What `agent-bench` is told.

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser)]
#[command(about = "Benchmark the agent server against the scripted fake model")]
pub struct Args {
    /// The server binary (default: target/release/server, else target/debug/server).
    #[arg(long)]
    pub server: Option<PathBuf>,
    /// Concurrency levels.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64,256")]
    pub concurrency: Vec<usize>,
    /// Seconds per level.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Cold starts to measure.
    #[arg(long, default_value_t = 5)]
    pub cold_starts: usize,
    /// Pin the server to CPU 0 and this process to CPU 1 (as the reference was measured).
    #[arg(long)]
    pub pin: bool,
    /// A short run that only checks that everything works (C = 1, 16, 64; 1 s each).
    #[arg(long)]
    pub quick: bool,
    /// Milliseconds between the fake model's tokens.
    #[arg(long, default_value_t = 0)]
    pub token_delay_ms: u64,
    /// Measure the embedded model instead: tokens/s through /invocations beside llama.cpp's own.
    #[arg(long)]
    pub local: bool,
    /// Threads for the embedded model (both sides of the comparison).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Tokens to generate per run, and runs per side.
    #[arg(long, default_value_t = 128)]
    pub tokens: usize,
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Also measure tracing to this MLflow server (OTLP; an experiment is created).
    #[arg(long)]
    pub mlflow_uri: Option<String>,
    /// Only the tracing on/off comparison.
    #[arg(long)]
    pub tracing_only: bool,
    /// Load-test a running agent instead (any URL: a local server, a deployed app's
    /// `https://…/invocations`): a step ramp over `--users`, `--step-seconds` each.
    #[arg(long)]
    pub url: Option<String>,
    /// Bearer token for `--url` (e.g. `databricks auth token`).
    #[arg(long, env = "AGENT_BENCH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Concurrent users at each step of the ramp.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16")]
    pub users: Vec<usize>,
    /// Seconds per step of the ramp.
    #[arg(long, default_value_t = 10.0)]
    pub step_seconds: f64,
    /// Ramp with non-streaming requests (default: streaming, time to first token measured).
    #[arg(long)]
    pub no_stream: bool,
    /// The question each request asks.
    #[arg(long, default_value = "hi")]
    pub question: String,
    /// Soak: hold `--soak-streams` concurrent streams for this many seconds, in 10 s windows, and
    /// report errors, throughput and memory (peak RSS per stream, growth between windows).
    #[arg(long)]
    pub soak_seconds: Option<f64>,
    /// Concurrent streams of the soak.
    #[arg(long, default_value_t = 1000)]
    pub soak_streams: usize,
}
