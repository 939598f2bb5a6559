//! `agent-bench`: measures the agent server the way the reference was measured
//! (`docs/reference.md`, "The reference's performance"), and prints the figures beside
//! the reference's.
//!
//! The server binary runs in its own process (pinned to CPU 0 with `--pin`), in front of the
//! scripted fake model, which answers every request with one `get_current_time` call and then 64
//! tokens. A closed-loop SSE-aware client (this process, CPU 1) sends
//! `{"input":[{"role":"user","content":"hi"}]}` at each concurrency, streaming and not. Server CPU
//! per request comes from /proc, peak RSS from sampling VmRSS.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

mod args;
mod local;
mod measure;
mod ramp;

use anyhow::{Context, bail};
use clap::Parser;

use args::Args;
use fake_model::{Defaults, FakeModel};
use measure::{Percentiles, Server, chat_request, cpu_seconds, one_request, percentiles, request, rss_mb};
use serde_json::json;

/// The reference's figures, tracing off and on (1 core, LLM 0 ms; docs/reference.md).
/// (C, req/s off, CPU ms/req off, CPU ms/req on)
const REFERENCE_STREAM: &[(usize, f64, f64, f64)] =
    &[(1, 42.0, 22.6, 77.3), (16, 47.9, 20.7, 82.4), (64, 47.1, 21.1, 84.7), (256, 36.3, 27.4, 89.0)];
const REFERENCE_NOSTREAM: &[(usize, f64, f64, f64)] =
    &[(1, 140.8, 6.3, 56.5), (16, 138.5, 7.2, 64.2), (64, 103.2, 9.6, 66.2), (256, 79.7, 12.4, 65.0)];
const REFERENCE_IDLE_RSS_MB: f64 = 355.0;
const REFERENCE_COLD_START_MS: f64 = 4500.0;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.quick {
        args.concurrency = vec![1, 16, 64];
        args.duration = 1.0;
        args.cold_starts = 1;
    }
    if let Some(url) = &args.url {
        return ramp::run(url, &args).await;
    }
    let binary = args.server.clone().unwrap_or_else(default_binary);
    anyhow::ensure!(binary.exists(), "no server binary at {} (cargo build --release -p server)", binary.display());
    if args.local {
        return local::compare(&binary, args.threads, args.tokens, args.runs).await;
    }
    if args.pin {
        pin_self(1);
    }
    let fake = FakeModel::start_on(
        ([127, 0, 0, 1], 0).into(),
        Defaults { tokens: 64, token_delay: Duration::from_millis(args.token_delay_ms) },
    )
    .await?;
    // Traces (on by default) and anything else the server keeps go to a folder of this run's own.
    let data_dir = std::env::temp_dir().join(format!("agent-bench-{}", std::process::id()));
    // The chat route's saved chats all belong to one (local) user: no per-user caps here.
    let model_env = vec![
        ("OPENAI_BASE_URL", fake.base_url()),
        ("AGENT_DATA_DIR", data_dir.to_string_lossy().into_owned()),
        ("AGENT_MAX_BACKGROUND_TASKS_PER_USER", "0".into()),
        ("AGENT_MAX_STORED_BYTES_PER_USER", "0".into()),
        // Each chat request starts a new chat: its title call would be a second model call.
        ("AGENT_CHAT_TITLES", "false".into()),
    ];
    let client = server::http_client::new();
    println!(
        "agent-bench: {} ({} cores here)",
        binary.display(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    if let Some(seconds) = args.soak_seconds {
        let result = soak(&binary, &model_env, &client, &args, seconds).await;
        let _ = std::fs::remove_dir_all(&data_dir);
        return result;
    }
    if args.tracing_only {
        let errors = tracing_cost(&binary, &model_env, &client, &args, if args.quick { 16 } else { 64 }).await?;
        let _ = std::fs::remove_dir_all(&data_dir);
        anyhow::ensure!(errors == 0, "{errors} requests failed");
        return Ok(());
    }
    let mut cold = Vec::new();
    for _ in 0..args.cold_starts.max(1) {
        let started = Instant::now();
        let mut server = Server::start(&binary, &model_env, args.pin)?;
        server.first_answer(&client).await?;
        cold.push(started.elapsed().as_secs_f64() * 1000.0);
        server.stop();
    }
    let mut server = Server::start(&binary, &model_env, args.pin)?;
    server.first_answer(&client).await?;
    let idle_rss = rss_mb(server.pid(), "VmRSS");

    let mut rows = Vec::new();
    let mut errors = 0;
    for route in [Route::Invocations { stream: true }, Route::Invocations { stream: false }, Route::Chat] {
        for &c in &args.concurrency {
            load(&client, &server, route, c.min(16), Duration::from_millis(300)).await; // warm-up
            let row = load(&client, &server, route, c, Duration::from_secs_f64(args.duration)).await;
            errors += row.errors;
            println!("  {}", row.line());
            rows.push(row);
        }
    }
    server.stop();
    report(&rows, &cold, idle_rss);
    let level = if args.quick { 16 } else { 64 };
    let tracing = tracing_cost(&binary, &model_env, &client, &args, level).await?;
    let _ = std::fs::remove_dir_all(&data_dir);
    errors += tracing;
    if errors > 0 {
        bail!("{errors} requests failed");
    }
    Ok(())
}

fn default_binary() -> PathBuf {
    let release = PathBuf::from("target/release/server");
    if release.exists() { release } else { PathBuf::from("target/debug/server") }
}

/// Which route a load level sends to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    /// `/invocations`, streamed or not.
    Invocations { stream: bool },
    /// `/api/chat` as the chat page sends it: a new saved chat each time (its answer runs as a
    /// background task, its events and the answer saved in the chat history).
    Chat,
}

impl Route {
    fn name(self) -> &'static str {
        match self {
            Route::Invocations { stream: true } => "stream",
            Route::Invocations { stream: false } => "nostream",
            Route::Chat => "chat",
        }
    }
}

struct Row {
    route: Route,
    concurrency: usize,
    requests: usize,
    errors: usize,
    rps: f64,
    first_event: Percentiles,
    total: Percentiles,
    cpu_ms_per_request: f64,
    peak_rss_mb: f64,
}

impl Row {
    fn line(&self) -> String {
        format!(
            "{:8} C={:<3} {:>8.0} req/s  first event p50 {:>7.2} ms p99 {:>7.2} ms  total p50 {:>7.2} ms p99 {:>7.2} ms  CPU {:.3} ms/req  peak RSS {:.1} MB  errors {}",
            self.route.name(),
            self.concurrency,
            self.rps,
            self.first_event.p50,
            self.first_event.p99,
            self.total.p50,
            self.total.p99,
            self.cpu_ms_per_request,
            self.peak_rss_mb,
            self.errors
        )
    }
}

/// One closed-loop level: `concurrency` clients, each sending the next request when the last ends.
async fn load(client: &reqwest::Client, server: &Server, route: Route, concurrency: usize, duration: Duration) -> Row {
    let pid = server.pid();
    let stop = Arc::new(AtomicBool::new(false));
    let peak = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut peak: f64 = 0.0;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(rss_mb(pid, "VmRSS"));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            peak
        }
    });
    let cpu_before = cpu_seconds(pid);
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let client = client.clone();
            let (url, stream) = match route {
                Route::Invocations { stream } => (format!("{}/invocations", server.url), stream),
                Route::Chat => (format!("{}/api/chat", server.url), true),
            };
            tokio::spawn(async move {
                let mut samples = Vec::new();
                let mut errors = 0;
                while started.elapsed() < duration {
                    let body = match route {
                        Route::Invocations { stream } => request(stream),
                        Route::Chat => chat_request(),
                    };
                    match one_request(&client, &url, stream, None, &body, Some(3)).await {
                        Ok(sample) => samples.push(sample),
                        Err(e) => {
                            errors += 1;
                            if errors == 1 {
                                eprintln!("request failed: {e:#}");
                            }
                        }
                    }
                }
                (samples, errors)
            })
        })
        .collect();
    let mut samples = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (s, e) = w.await.expect("worker");
        samples.extend(s);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Let the server finish what it was doing before reading its CPU time.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let cpu = cpu_seconds(pid) - cpu_before;
    stop.store(true, Ordering::Relaxed);
    let peak_rss_mb = peak.await.unwrap_or(0.0);
    let requests = samples.len();
    Row {
        route,
        concurrency,
        requests,
        errors,
        rps: requests as f64 / elapsed,
        first_event: percentiles(samples.iter().map(|s| s.0).collect()),
        total: percentiles(samples.iter().map(|s| s.1).collect()),
        cpu_ms_per_request: if requests > 0 { cpu * 1000.0 / requests as f64 } else { f64::NAN },
        peak_rss_mb,
    }
}

fn pin_self(cpu: usize) {
    let _ = Command::new("taskset")
        .args(["-cp", &cpu.to_string(), &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status();
}

fn report(rows: &[Row], cold: &[f64], idle_rss: f64) {
    let cold = percentiles(cold.to_vec());
    println!();
    println!(
        "| mode | C | req/s | ref req/s (tracing off) | ratio | CPU ms/req | ref CPU ms/req off / on | first event p50 / p99 ms | total p50 / p99 ms | peak RSS MB | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows.iter().filter(|r| r.route != Route::Chat) {
        let reference =
            if r.route == (Route::Invocations { stream: true }) { REFERENCE_STREAM } else { REFERENCE_NOSTREAM };
        let (ref_rps, ref_off, ref_on) = reference
            .iter()
            .find(|(c, ..)| *c == r.concurrency)
            .map_or(("-".to_string(), "-".to_string(), "-".to_string()), |(_, rps, off, on)| {
                (format!("{rps:.0}"), format!("{off:.1}"), format!("{on:.1}"))
            });
        let ratio = ref_rps.parse::<f64>().map(|x| format!("{:.0}x", r.rps / x)).unwrap_or("-".into());
        println!(
            "| {} | {} | {:.0} | {} | {} | {:.3} | {} / {} | {:.2} / {:.2} | {:.2} / {:.2} | {:.1} | {} |",
            r.route.name(),
            r.concurrency,
            r.rps,
            ref_rps,
            ratio,
            r.cpu_ms_per_request,
            ref_off,
            ref_on,
            r.first_event.p50,
            r.first_event.p99,
            r.total.p50,
            r.total.p99,
            r.peak_rss_mb,
            r.errors
        );
    }
    println!();
    println!("the chat page's path (a saved chat: /api/chat, history on) beside /invocations streamed:");
    println!(
        "| C | chat req/s | chat CPU ms/req | /invocations CPU ms/req | CPU ratio (goal ≤ 2.5x) | chat total p50 / p99 ms |"
    );
    println!("|---|---|---|---|---|---|");
    for chat in rows.iter().filter(|r| r.route == Route::Chat) {
        let api =
            rows.iter().find(|r| r.route == (Route::Invocations { stream: true }) && r.concurrency == chat.concurrency);
        let api_cpu = api.map_or(f64::NAN, |r| r.cpu_ms_per_request);
        println!(
            "| {} | {:.0} | {:.3} | {:.3} | {:.1}x | {:.2} / {:.2} |",
            chat.concurrency,
            chat.rps,
            chat.cpu_ms_per_request,
            api_cpu,
            chat.cpu_ms_per_request / api_cpu,
            chat.total.p50,
            chat.total.p99
        );
    }
    println!();
    println!(
        "idle RSS after the first request: {idle_rss:.1} MB (reference {REFERENCE_IDLE_RSS_MB:.0} MB: {:.0}x less)",
        REFERENCE_IDLE_RSS_MB / idle_rss.max(0.1)
    );
    println!(
        "cold start, spawn to first answer: p50 {:.1} ms (reference {REFERENCE_COLD_START_MS:.0} ms: {:.0}x faster)",
        cold.p50,
        REFERENCE_COLD_START_MS / cold.p50.max(0.01)
    );
    println!("{} requests in all (tracing on, to the local store)", rows.iter().map(|r| r.requests).sum::<usize>());
}

/// CPU per streamed request with tracing off, on (the local store, the default) and, with
/// `--mlflow-uri`, on to an MLflow server: servers started in turn, each mode measured twice
/// (off, on, off, on…) and the lower figure kept, so a noisy moment does not decide. Returns the
/// failed requests.
async fn tracing_cost(
    binary: &Path,
    base_env: &[(&str, String)],
    client: &reqwest::Client,
    args: &Args,
    concurrency: usize,
) -> anyhow::Result<usize> {
    let mut modes: Vec<(&str, Vec<(&str, String)>)> =
        vec![("off", vec![("AGENT_TRACING", "false".into())]), ("on, local store", vec![])];
    if let Some(uri) = &args.mlflow_uri {
        let name = format!("agent-bench-{}", std::process::id());
        let created: serde_json::Value = client
            .post(format!("{uri}/api/2.0/mlflow/experiments/create"))
            .json(&json!({"name": name}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let id = created["experiment_id"].as_str().context("no experiment id")?.to_string();
        modes.push(("on, MLflow (OTLP)", vec![("MLFLOW_TRACKING_URI", uri.clone()), ("MLFLOW_EXPERIMENT_ID", id)]));
    }
    let duration = Duration::from_secs_f64(args.duration.max(1.0));
    let mut best = vec![f64::INFINITY; modes.len()];
    // Traces the exporter had to drop (its queue full): they cost nothing, so they would flatter.
    let mut dropped = vec![0u64; modes.len()];
    let mut errors = 0;
    for _round in 0..2 {
        for (i, (_, env)) in modes.iter().enumerate() {
            let mut all_env = base_env.to_vec();
            all_env.extend(env.iter().cloned());
            let mut server = Server::start(binary, &all_env, args.pin)?;
            server.first_answer(client).await?;
            load(client, &server, Route::Invocations { stream: true }, concurrency.min(16), Duration::from_millis(300))
                .await;
            let row = load(client, &server, Route::Invocations { stream: true }, concurrency, duration).await;
            errors += row.errors;
            best[i] = best[i].min(row.cpu_ms_per_request);
            let info: serde_json::Value =
                client.get(format!("{}/agent/info", server.url)).send().await?.json().await.unwrap_or_default();
            dropped[i] = dropped[i].max(info["tracing"]["dropped"].as_u64().unwrap_or(0));
            server.stop();
        }
    }
    let (ref_off, ref_on) =
        REFERENCE_STREAM.iter().find(|(c, ..)| *c == concurrency).map_or((f64::NAN, f64::NAN), |r| (r.2, r.3));
    println!();
    println!("tracing cost, streamed requests at C={concurrency} (server CPU per request, best of two runs):");
    for (i, (label, _)) in modes.iter().enumerate() {
        let extra =
            if i == 0 { String::new() } else { format!(" ({:+.1}% over off)", (best[i] / best[0] - 1.0) * 100.0) };
        let drops =
            if dropped[i] > 0 { format!(", {} traces dropped (queue full)", dropped[i]) } else { String::new() };
        println!("  tracing {label:18} {:.3} ms/req{extra}{drops}", best[i]);
    }
    println!(
        "  reference at C={concurrency}: off {ref_off:.1} ms/req, on {ref_on:.1} ms/req ({:+.0}%)",
        (ref_on / ref_off - 1.0) * 100.0
    );
    Ok(errors)
}

/// Many concurrent streams for a while: every request must succeed, and memory must level off.
async fn soak(
    binary: &Path,
    model_env: &[(&str, String)],
    client: &reqwest::Client,
    args: &Args,
    seconds: f64,
) -> anyhow::Result<()> {
    let mut server = Server::start(binary, model_env, args.pin)?;
    server.first_answer(client).await?;
    let pid = server.pid();
    let idle = rss_mb(pid, "VmRSS");
    let streams = args.soak_streams.max(1);
    let windows = (seconds / 10.0).ceil().max(1.0) as usize;
    let window = Duration::from_secs_f64(seconds / windows as f64);
    println!(
        "soak: {streams} concurrent streams for {seconds:.0} s ({windows} windows; fake model {} ms between tokens); idle RSS {idle:.1} MB",
        args.token_delay_ms
    );
    let (mut requests, mut errors, mut peak) = (0, 0, idle);
    let mut after = Vec::new();
    for i in 1..=windows {
        let row = load(client, &server, Route::Invocations { stream: true }, streams, window).await;
        let rss = rss_mb(pid, "VmRSS");
        after.push(rss);
        requests += row.requests;
        errors += row.errors;
        peak = peak.max(row.peak_rss_mb);
        println!(
            "  window {i}: {:>7.0} req/s  total p50 {:>7.1} ms p99 {:>7.1} ms  errors {}  peak RSS {:.1} MB  RSS after {:.1} MB",
            row.rps, row.total.p50, row.total.p99, row.errors, row.peak_rss_mb, rss
        );
    }
    server.stop();
    let per_stream_kb = (peak - idle).max(0.0) * 1024.0 / streams as f64;
    let growth = after.last().copied().unwrap_or(idle) - after.first().copied().unwrap_or(idle);
    println!(
        "soak result: {requests} streamed requests, {errors} errors; peak RSS {peak:.1} MB = {per_stream_kb:.1} KB per open stream \
         above idle; RSS after the first window {:.1} MB, after the last {:.1} MB (growth {growth:+.1} MB)",
        after.first().copied().unwrap_or(idle),
        after.last().copied().unwrap_or(idle)
    );
    anyhow::ensure!(errors == 0, "{errors} of {requests} streamed requests failed");
    Ok(())
}
