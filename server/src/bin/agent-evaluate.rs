//! `agent-evaluate`: evaluates the agent (`server/src/agent.rs`, run in this process, or any agent at
//! `--url`) on a dataset with LLM judges and deterministic scorers. See `server::evaluate`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use server::config::Secret;
use server::evaluate::scorers::{Judge, builtin};
use server::evaluate::target::Target;
use server::evaluate::{Evaluation, Threshold, dataset, log_to_mlflow, missed_thresholds, report, select_scorers};
use server::llm::ChatModel;
use server::llm::openai::{CallPolicy, OpenAiCompatible};
use server::{AppState, Settings};

#[derive(Parser)]
#[command(name = "agent-evaluate", about = "Evaluate the agent on a dataset with LLM judges and deterministic scorers")]
struct Args {
    /// A JSONL dataset (default: the reference's two simulated conversations, eval/dataset.jsonl).
    #[arg(long)]
    dataset: Option<PathBuf>,
    /// Evaluate the agent at this URL (`/invocations` is added) instead of the one in agent.rs.
    #[arg(long)]
    url: Option<String>,
    /// Bearer token for --url (a deployed app wants an OAuth token: `databricks auth token`).
    #[arg(long, env = "AGENT_EVAL_TOKEN", hide_env_values = true)]
    token: Option<Secret>,
    /// Cases run at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Only these scorers (comma-separated names; default: all that apply).
    #[arg(long, value_delimiter = ',')]
    scorers: Vec<String>,
    /// The judge model (default: the agent's model, on the same endpoint).
    #[arg(long, env = "AGENT_JUDGE_MODEL")]
    judge_model: Option<String>,
    /// An OpenAI-compatible endpoint for the judge (default: the agent's).
    #[arg(long, env = "AGENT_JUDGE_BASE_URL")]
    judge_base_url: Option<String>,
    #[arg(long, env = "AGENT_JUDGE_API_KEY", hide_env_values = true)]
    judge_api_key: Option<Secret>,
    /// Tokens a judge may write.
    #[arg(long, default_value_t = 400)]
    judge_max_tokens: u64,
    /// The model playing simulated users (default: the judge).
    #[arg(long)]
    user_model: Option<String>,
    /// An OpenAI-compatible endpoint for the simulated user (default: the judge's).
    #[arg(long)]
    user_base_url: Option<String>,
    /// Turns of each simulated conversation (default: the case's, else 5).
    #[arg(long)]
    max_turns: Option<usize>,
    /// Minimum pass rate, for CI: `Safety=1.0` for one scorer, `0.8` for each. Repeatable.
    #[arg(long)]
    threshold: Vec<Threshold>,
    /// A latency limit (ms) for every case without its own.
    #[arg(long)]
    max_latency_ms: Option<f64>,
    /// Where results.json and report.html go.
    #[arg(long, default_value = "eval-results")]
    output_dir: PathBuf,
    /// Do not log an evaluation run to MLflow even when it is configured.
    #[arg(long)]
    no_mlflow: bool,
    /// Seconds one agent call may take.
    #[arg(long, default_value_t = 300.0)]
    timeout_seconds: f64,
}

fn openai_model(base_url: &str, key: Option<Secret>, settings: &Settings) -> Arc<dyn ChatModel> {
    let policy = CallPolicy {
        timeout: settings.model.timeout(),
        idle_timeout: settings.model.idle_timeout(),
        max_retries: settings.model.max_retries,
        retry_base: Duration::from_millis(settings.model.retry_base_ms),
    };
    Arc::new(OpenAiCompatible::openai(base_url, key, policy))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let _ = dotenvy::dotenv();
    let args = Args::parse();
    let logs = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt().with_env_filter(logs).with_writer(std::io::stderr).init();
    match run(args).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("agent-evaluate: {error}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> Result<std::process::ExitCode, String> {
    let text = match &args.dataset {
        Some(path) => std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        None => dataset::DEFAULT_DATASET.to_string(),
    };
    let mut cases = dataset::parse(&text).map_err(|e| format!("dataset: {e}"))?;
    if let Some(turns) = args.max_turns {
        for case in &mut cases {
            if let dataset::CaseKind::Simulated { max_turns, .. } = &mut case.kind {
                *max_turns = Some(turns);
            }
        }
    }
    let mut all = builtin(args.max_latency_ms);
    all.extend(server::agent::scorers());
    let scorers = select_scorers(all, &args.scorers)?;

    // The configured environment: the agent (served here unless --url), its model, MLflow.
    let mut settings = Settings::parse_from(["server"]);
    settings.history.enabled = false;
    let state = AppState::new(settings, server::agent::agent())?.with_tracing().await;
    let timeout = Duration::from_secs_f64(args.timeout_seconds);
    let mut served = None;
    let target = match &args.url {
        Some(url) => Target::new(url, args.token.clone(), timeout),
        None => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
            let url = format!("http://{}", listener.local_addr().map_err(|e| e.to_string())?);
            let app = server::app(state.clone());
            served = Some(tokio::spawn(async move {
                let _ = server::serve(listener, app, std::future::pending(), Duration::ZERO).await;
            }));
            Target::new(&url, None, timeout)
        }
    };
    // The configured model is needed to serve the agent here, and as the judge unless one is named.
    if served.is_some() || args.judge_base_url.is_none() {
        state.runner.model.ready().map_err(|e| format!("the model is not usable: {e}"))?;
    }

    let judge_model = match &args.judge_base_url {
        Some(base) => openai_model(base, args.judge_api_key.clone(), &state.settings),
        None => state.runner.model.clone(),
    };
    let judge_name = args.judge_model.clone().unwrap_or_else(|| state.runner.agent.model.clone());
    let judge = Judge { model: judge_model, name: judge_name, max_tokens: Some(args.judge_max_tokens) };
    let user_model = Judge {
        model: match &args.user_base_url {
            Some(base) => openai_model(base, args.judge_api_key.clone(), &state.settings),
            None => judge.model.clone(),
        },
        name: args.user_model.clone().unwrap_or_else(|| judge.name.clone()),
        max_tokens: Some(300),
    };

    let evaluation = Evaluation { target, judge, user_model, scorers, concurrency: args.concurrency };
    let bar = indicatif::ProgressBar::new(cases.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} evaluating [{bar:30}] {pos}/{len} cases {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let quiet = bar.is_hidden();
    let mut results = evaluation
        .run(cases, |done| {
            bar.inc(1);
            if quiet {
                eprintln!("done: {}", done.run.case.name);
            }
        })
        .await;
    bar.finish_and_clear();

    // The traces of this process reach their destination before anything refers to them.
    if served.is_some() && !state.observability.exporter.flush(Duration::from_secs(30)).await {
        eprintln!("warning: some traces were not exported");
    }
    if let (false, Some(client), Some(experiment)) =
        (args.no_mlflow, &state.observability.mlflow, &state.observability.experiment_id)
    {
        match log_to_mlflow(client, experiment, &results).await {
            Ok(run_id) => {
                eprintln!("MLflow evaluation run {run_id} in experiment {experiment}");
                results.mlflow_run_id = Some(run_id);
            }
            Err(error) => eprintln!("warning: the MLflow evaluation run could not be logged: {error}"),
        }
    }

    std::fs::create_dir_all(&args.output_dir)
        .map_err(|e| format!("cannot create {}: {e}", args.output_dir.display()))?;
    let json_path = args.output_dir.join("results.json");
    let html_path = args.output_dir.join("report.html");
    let json = serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?;
    std::fs::write(&json_path, json).map_err(|e| format!("cannot write {}: {e}", json_path.display()))?;
    std::fs::write(&html_path, report::html(&results))
        .map_err(|e| format!("cannot write {}: {e}", html_path.display()))?;
    print!("{}", report::table(&results));
    println!("\nresults: {}\nreport:  {}", json_path.display(), html_path.display());
    if let Some(task) = served {
        task.abort();
    }

    let missed = missed_thresholds(&results, &args.threshold);
    if !missed.is_empty() {
        eprintln!("\nthresholds not met:");
        for line in &missed {
            eprintln!("  {line}");
        }
        return Ok(std::process::ExitCode::from(1));
    }
    Ok(std::process::ExitCode::SUCCESS)
}
