//! The server under test and what is measured of it: its process (CPU time, memory), one request's
//! timings, and percentiles.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use app::sse::SseParser;
use serde_json::json;

pub struct Server {
    pub child: Child,
    pub url: String,
}

impl Server {
    /// Starts the server on a free loopback port; `model_env` chooses its model (nothing else from
    /// this process's environment picks one).
    pub fn start(binary: &Path, model_env: &[(&str, String)], pin: bool) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut cmd = if pin {
            let mut c = Command::new("taskset");
            c.args(["-c", "0"]).arg(binary);
            c
        } else {
            Command::new(binary)
        };
        cmd.args(["--port", &port.to_string()])
            .env("AGENT_HOST", "127.0.0.1")
            .env("RUST_LOG", "warn")
            .env_remove("OPENAI_BASE_URL")
            .env_remove("DATABRICKS_HOST")
            .envs(model_env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = cmd.spawn().with_context(|| format!("starting {}", binary.display()))?;
        Ok(Self { child, url: format!("http://127.0.0.1:{port}") })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls `/health` until the server answers.
    pub async fn wait_healthy(&mut self, client: &reqwest::Client, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        while client.get(format!("{}/health", self.url)).send().await.is_err() {
            if let Some(status) = self.child.try_wait()? {
                bail!("the server exited: {status}");
            }
            anyhow::ensure!(Instant::now() < deadline, "the server did not start within {limit:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Polls until the first `/invocations` succeeds (what "cold start" means in the reference).
    pub async fn first_answer(&mut self, client: &reqwest::Client) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let sent = client.post(format!("{}/invocations", self.url)).json(&request(false)).send().await;
            if let Ok(resp) = sent
                && resp.status().is_success()
            {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("the server exited: {status}");
            }
            anyhow::ensure!(Instant::now() < deadline, "the server did not answer within 30 s");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The chat page's request for a new saved chat (unique ids each time), as `app` builds it.
pub fn chat_request() -> serde_json::Value {
    let id = |prefix: &str| format!("{prefix}-{:032x}", fastrand::u128(..));
    let chat = id("chat");
    let mut body = app::conversation::chat_request(&chat, &[], "What time is it?");
    body["chat"] = json!({"id": chat, "position": 0, "question_id": id("q"), "answer_id": id("a")});
    body
}

pub fn request(stream: bool) -> serde_json::Value {
    json!({"input": [{"role": "user", "content": "hi"}], "stream": stream})
}

#[derive(Default, Clone, Copy)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

pub fn percentiles(mut ms: Vec<f64>) -> Percentiles {
    if ms.is_empty() {
        return Percentiles::default();
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    Percentiles { p50: at(0.5), p95: at(0.95), p99: at(0.99) }
}

/// One request: (ms to the first event, ms to the end). A stream must end in `[DONE]` without an
/// error event; a JSON answer must be 200 with three output items.
pub async fn one_request(
    client: &reqwest::Client,
    url: &str,
    stream: bool,
    token: Option<&str>,
    body: &serde_json::Value,
    expected_items: Option<usize>,
) -> anyhow::Result<(f64, f64)> {
    let started = Instant::now();
    let mut call = client.post(url).json(body);
    if let Some(token) = token {
        call = call.bearer_auth(token);
    }
    let mut resp = call.send().await?;
    anyhow::ensure!(resp.status().is_success(), "HTTP {}", resp.status());
    if !stream {
        let body: serde_json::Value = resp.json().await?;
        // The scripted model's answer has three items (a tool call, its output, the message); any
        // agent's has at least one.
        let items = body["output"].as_array().map_or(0, Vec::len);
        anyhow::ensure!(expected_items.map_or(items > 0, |n| items == n), "unexpected answer: {body}");
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        return Ok((ms, ms));
    }
    let mut parser = SseParser::default();
    let mut first = None;
    let mut done = false;
    while let Some(chunk) = resp.chunk().await? {
        for frame in parser.push(&chunk)? {
            first.get_or_insert_with(|| started.elapsed().as_secs_f64() * 1000.0);
            anyhow::ensure!(!frame.data.starts_with(r#"{"type":"error""#), "error event: {}", frame.data);
            done |= frame.data == "[DONE]";
        }
    }
    anyhow::ensure!(done, "the stream ended without [DONE]");
    Ok((first.unwrap_or_default(), started.elapsed().as_secs_f64() * 1000.0))
}

pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // Fields after the command name (which may contain spaces): utime is the 12th, stime the 13th.
    let after = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / clock_ticks_per_second()
}

pub fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

pub fn rss_mb(pid: u32, field: &str) -> f64 {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return 0.0 };
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}
