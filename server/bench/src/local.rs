//! `agent-bench --local`: the embedded model's decoding speed through `/invocations`, beside what
//! llama.cpp itself does on the same GGUF, prompt and thread count (issue: ≥ 0.9×).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::measure::{Server, rss_mb};
use app::responses::{StreamEvent, StreamFrame};
use app::sse::SseParser;
use serde_json::json;
use server::llm::local::engine::{Engine, GenerateOptions, LlamaEngine};
use server::llm::local::template::ChatTemplate;
use server::llm::local::{DEFAULT_MODEL, default_cache, resolve_model_path};
use server::llm::{ChatMessage, UserContent};

const QUESTION: &str = "Count from 1 to 400, separated by commas.";

pub async fn compare(binary: &Path, threads: usize, tokens: usize, runs: usize) -> anyhow::Result<()> {
    let model = resolve_model_path(DEFAULT_MODEL, &default_cache());
    anyhow::ensure!(model.is_file(), "no embedded model at {} (scripts/fetch-model.sh)", model.display());
    let instructions = server::agent::agent().instructions;
    println!("embedded model {} | {threads} threads | {tokens} tokens | {runs} runs each", model.display());

    // llama.cpp itself: the same engine code, no server, no HTTP.
    let mut direct = Vec::new();
    {
        let mut engine = LlamaEngine::load(&model, threads, 4096).map_err(anyhow::Error::msg)?;
        let template =
            ChatTemplate::new(engine.chat_template().map_err(anyhow::Error::msg)?).map_err(anyhow::Error::msg)?;
        let prompt = template
            .render(
                &[
                    ChatMessage::System { content: instructions.clone() },
                    ChatMessage::User { content: UserContent::Text(QUESTION.into()) },
                ],
                &[],
            )
            .map_err(anyhow::Error::msg)?;
        let options = GenerateOptions { max_tokens: tokens, stop_at_end: true, forbid_call: false, call_grammar: None };
        for _ in 0..runs {
            let g = engine.generate(&prompt, options, &mut |_| true).map_err(anyhow::Error::msg)?;
            direct.push((
                g.prompt_tokens as f64 / g.prompt_seconds,
                (g.completion_tokens - 1) as f64 / g.decode_seconds,
                g.completion_tokens,
            ));
        }
    }

    // Through the server: streamed /invocations, tokens counted by the server, timed by the client
    // from the first text delta to the last (decode), and to the first delta (prompt + first token).
    let mut server = Server::start(binary, &[("AGENT_LOCAL_THREADS", threads.to_string())], false)?;
    let client = server::http_client::new();
    let url = format!("{}/invocations", server.url);
    server.wait_healthy(&client, Duration::from_secs(60)).await?;
    let body = json!({"input": [{"role": "user", "content": QUESTION}], "stream": true,
                      "max_output_tokens": tokens, "tool_choice": "none"});
    let mut served = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let mut response = client.post(&url).json(&body).send().await?;
        let mut parser = SseParser::default();
        let (mut first, mut last, mut output_tokens) = (None, None, 0u64);
        while let Some(chunk) = response.chunk().await? {
            for frame in parser.push(&chunk)? {
                match StreamFrame::parse(&frame.data)? {
                    StreamFrame::Event(event) => match *event {
                        StreamEvent::OutputTextDelta { .. } => {
                            first.get_or_insert(started.elapsed());
                            last = Some(started.elapsed());
                        }
                        StreamEvent::Completed { response, .. } => {
                            output_tokens = response.usage.map_or(0, |u| u.output_tokens);
                        }
                        _ => {}
                    },
                    StreamFrame::Error(e) => anyhow::bail!("stream error: {e}"),
                    _ => {}
                }
            }
        }
        let (first, last) = (first.context("no text")?, last.context("no text")?);
        served.push((
            (output_tokens - 1) as f64 / (last - first).as_secs_f64(),
            first.as_secs_f64() * 1000.0,
            output_tokens,
        ));
    }
    let peak_rss_mb = rss_mb(server.pid(), "VmHWM");
    server.stop();

    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let direct_decode = median(direct.iter().map(|d| d.1).collect());
    let served_decode = median(served.iter().map(|s| s.0).collect());
    println!();
    println!("| | prompt tok/s | generation tok/s | first token ms | tokens |");
    println!("|---|---|---|---|---|");
    println!(
        "| llama.cpp directly | {:.0} | {direct_decode:.1} | - | {} |",
        median(direct.iter().map(|d| d.0).collect()),
        direct[0].2
    );
    println!(
        "| through /invocations (streamed) | - | {served_decode:.1} | {:.0} | {} |",
        median(served.iter().map(|s| s.1).collect()),
        served[0].2
    );
    println!();
    println!(
        "ratio, generation through /invocations / llama.cpp: {:.2} (target ≥ 0.90)",
        served_decode / direct_decode
    );
    println!("server peak RSS (VmHWM) over the runs: {peak_rss_mb:.0} MB");
    Ok(())
}
