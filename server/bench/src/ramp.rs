//! `agent-bench --url …`: a load test of any running agent (this server, a deployed app, the
//! reference), as the reference's load-testing skill does it: a step ramp of concurrent users, each
//! sending the next request when the last one ends; per step the throughput, time to first token
//! (streamed) and to the whole answer at p50/p95/p99, and failures; then a chart of the ramp.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::args::Args;
use crate::measure::{Percentiles, one_request, percentiles};

struct Step {
    users: usize,
    qps: f64,
    first: Percentiles,
    total: Percentiles,
    ok: usize,
    failed: usize,
    first_error: Option<String>,
}

/// `…/invocations` or `…/responses` as given; a bare origin gets `/invocations`.
fn endpoint(url: &str) -> String {
    let url = url.trim_end_matches('/');
    if url.ends_with("/invocations") || url.ends_with("/responses") {
        url.to_string()
    } else {
        format!("{url}/invocations")
    }
}

pub async fn run(url: &str, args: &Args) -> anyhow::Result<()> {
    let url = endpoint(url);
    let stream = !args.no_stream;
    let body = json!({"input": [{"role": "user", "content": args.question}], "stream": stream});
    let client = server::http_client::new();
    let step_time = Duration::from_secs_f64(args.step_seconds.max(0.5));
    println!(
        "load test: {url}, {} requests, users {:?}, {:.1} s per step",
        if stream { "streamed" } else { "non-streamed" },
        args.users,
        step_time.as_secs_f64()
    );
    let mut steps = Vec::new();
    for &users in &args.users {
        let started = Instant::now();
        let workers: Vec<_> = (0..users.max(1))
            .map(|_| {
                let (client, url, body, token) = (client.clone(), url.clone(), body.clone(), args.token.clone());
                tokio::spawn(async move {
                    let mut samples = Vec::new();
                    let mut errors: Vec<String> = Vec::new();
                    while started.elapsed() < step_time {
                        match one_request(&client, &url, stream, token.as_deref(), &body, None).await {
                            Ok(sample) => samples.push(sample),
                            Err(e) => {
                                errors.push(format!("{e:#}"));
                                // A failing target is not hammered: a pause before the next try.
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        }
                    }
                    (samples, errors)
                })
            })
            .collect();
        let mut samples = Vec::new();
        let mut errors = Vec::new();
        for worker in workers {
            let (s, e) = worker.await?;
            samples.extend(s);
            errors.extend(e);
        }
        let elapsed = started.elapsed().as_secs_f64();
        let step = Step {
            users,
            qps: samples.len() as f64 / elapsed,
            first: percentiles(samples.iter().map(|s| s.0).collect()),
            total: percentiles(samples.iter().map(|s| s.1).collect()),
            ok: samples.len(),
            failed: errors.len(),
            first_error: errors.into_iter().next(),
        };
        println!(
            "  users {:>4}  {:>8.1} req/s  first token p50/p95/p99 {:>8.1} {:>8.1} {:>8.1} ms  total p50/p95/p99 {:>8.1} {:>8.1} {:>8.1} ms  ok {} failed {}",
            step.users,
            step.qps,
            step.first.p50,
            step.first.p95,
            step.first.p99,
            step.total.p50,
            step.total.p95,
            step.total.p99,
            step.ok,
            step.failed
        );
        if let Some(error) = &step.first_error {
            println!("    first failure: {error}");
        }
        steps.push(step);
    }
    chart(&steps);
    let failed: usize = steps.iter().map(|s| s.failed).sum();
    let ok: usize = steps.iter().map(|s| s.ok).sum();
    println!("{ok} requests answered, {failed} failed");
    anyhow::ensure!(ok > 0, "no request succeeded");
    Ok(())
}

/// The ramp as bars: throughput, and time to first token at p95, per step.
fn chart(steps: &[Step]) {
    const WIDTH: f64 = 40.0;
    let max_qps = steps.iter().map(|s| s.qps).fold(0.0, f64::max).max(f64::MIN_POSITIVE);
    let max_first = steps.iter().map(|s| s.first.p95).fold(0.0, f64::max).max(f64::MIN_POSITIVE);
    let bar = |value: f64, max: f64| "█".repeat(((value / max) * WIDTH).round() as usize);
    println!();
    println!("  users │ req/s                                              │ first token p95");
    for s in steps {
        println!(
            "  {:>5} │ {:<40} {:>8.1} │ {:<40} {:>8.1} ms",
            s.users,
            bar(s.qps, max_qps),
            s.qps,
            bar(s.first.p95, max_first),
            s.first.p95
        );
    }
    println!();
}

#[cfg(test)]
mod tests {
    use super::endpoint;

    #[test]
    fn endpoints() {
        assert_eq!(endpoint("https://app.example/"), "https://app.example/invocations");
        assert_eq!(endpoint("http://x/responses"), "http://x/responses");
        assert_eq!(endpoint("http://x/invocations"), "http://x/invocations");
    }
}
