//! `fake-model`: run the scripted OpenAI-compatible server on its own, e.g. for manual tests or the
//! benchmark. With no script it answers like the reference's load-test mock (one tool call, then text).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use fake_model::{Defaults, FakeModel};

#[derive(Parser)]
#[command(about = "A scripted OpenAI-compatible chat-completions server for tests and benchmarks")]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 18090)]
    port: u16,
    /// Words in each text answer.
    #[arg(long, default_value_t = 64)]
    tokens: usize,
    /// Delay before each streamed word, in milliseconds.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let defaults = Defaults { tokens: args.tokens, token_delay: Duration::from_millis(args.delay_ms) };
    let fake = FakeModel::start_on(SocketAddr::from(([127, 0, 0, 1], args.port)), defaults).await?;
    println!("fake model listening: OPENAI_BASE_URL={}", fake.base_url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
