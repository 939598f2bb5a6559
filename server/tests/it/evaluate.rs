//! `agent-evaluate` run as a user runs it: the agent in process on the scripted fake model, a second
//! fake model as the judge (deterministic verdicts and rationales), a third as the simulated user;
//! thresholds; an MLflow evaluation run against a real MLflow server; and a smoke run with the
//! embedded model as both agent and judge.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fake_model::{FakeModel, Reply};
use serde_json::{Value, json};

fn verdict(result: &str, rationale: &str) -> Reply {
    Reply::text(&json!({"rationale": rationale, "result": result}).to_string())
}

struct Run {
    dir: tempfile::TempDir,
}

impl Run {
    fn new(dataset: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dataset.jsonl"), dataset).unwrap();
        Run { dir }
    }

    fn command(&self, agent: Option<&FakeModel>) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_agent-evaluate"));
        cmd.env_clear()
            .env("HOME", self.dir.path())
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AGENT_DATA_DIR", self.dir.path().join("data"))
            .current_dir(self.dir.path())
            .arg("--dataset")
            .arg(self.dir.path().join("dataset.jsonl"))
            .arg("--output-dir")
            .arg(self.dir.path().join("out"));
        if let Some(agent) = agent {
            cmd.env("OPENAI_BASE_URL", agent.base_url());
        }
        cmd
    }

    fn results(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.dir.path().join("out/results.json")).unwrap()).unwrap()
    }

    fn report(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("out/report.html")).unwrap()
    }
}

async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap()
}

fn score<'a>(results: &'a Value, case: usize, scorer: &str) -> &'a Value {
    results["cases"][case]["scores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["scorer"] == scorer)
        .unwrap_or_else(|| panic!("no {scorer} score in case {case}: {results}"))
}

const DATASET: &str = r#"{"name": "time", "input": "What time is it?", "expectations": {"expected_tool_calls": [{"name": "get_current_time"}], "contains": ["noon"]}}
{"name": "greeting", "input": "Say hello <b>now</b>", "expectations": {"contains": ["bonjour"], "guidelines": ["Answer in French"]}}
"#;

fn script(agent: &FakeModel, judge: &FakeModel) {
    agent.push(Reply::tool_call("get_current_time", "{}")).push(Reply::text("It is noon.")).push(Reply::text("Hello!"));
    // In scorer order, case by case: Completeness, Safety, then Guidelines (second case only).
    judge
        .push(verdict("yes", "Answers the time."))
        .push(verdict("yes", "Harmless."))
        .push(verdict("yes", "Greets as asked."))
        .push(Reply::text("```json\n{\"rationale\": \"Scripted unsafe <script>.\", \"result\": \"No\"}\n```"))
        .push(verdict("no", "Not French."));
}

#[tokio::test]
async fn scripted_judges_score_a_dataset_and_thresholds_gate() {
    let (agent, judge) = (FakeModel::start().await, FakeModel::start().await);
    let run_dir = Run::new(DATASET);
    let args = ["--concurrency", "1", "--scorers", "Completeness,Safety,Guidelines,ExpectedToolCalls,Contains,Latency"];
    script(&agent, &judge);
    let output = run({
        let mut cmd = run_dir.command(Some(&agent));
        cmd.args(args).env("AGENT_JUDGE_BASE_URL", judge.base_url()).env("AGENT_JUDGE_MODEL", "judge-1");
        cmd
    })
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let results = run_dir.results();
    assert_eq!(results["judge"], "judge-1");
    assert_eq!(results["cases"][0]["turns"][0]["tool_calls"][0]["name"], "get_current_time");
    assert!(results["cases"][0]["turns"][0]["trace_id"].as_str().unwrap().starts_with("tr-"));
    for scorer in ["Completeness", "Safety", "ExpectedToolCalls", "Contains"] {
        assert_eq!(score(&results, 0, scorer)["pass"], true, "{scorer}: {results}");
    }
    assert_eq!(score(&results, 0, "Completeness")["rationale"], "Answers the time.");
    assert_eq!(score(&results, 0, "Completeness")["source"], "LLM_JUDGE:judge-1");
    assert!(score(&results, 0, "Latency")["value"].as_f64().unwrap() > 0.0);
    let safety = score(&results, 1, "Safety");
    assert_eq!((safety["value"].as_str(), safety["pass"].as_bool()), (Some("no"), Some(false)));
    assert_eq!(safety["rationale"], "Scripted unsafe <script>.");
    assert_eq!(score(&results, 1, "Guidelines")["rationale"], "Not French.");
    assert_eq!(score(&results, 1, "Contains")["pass"], false);
    assert!(results["cases"][1]["scores"].as_array().unwrap().iter().all(|s| s["scorer"] != "ExpectedToolCalls"));
    // The judge saw what it judges.
    let guidelines_call = judge.requests().last().cloned().unwrap();
    let prompt = guidelines_call["messages"][1]["content"].as_str().unwrap();
    assert!(prompt.contains("Answer in French") && prompt.contains("Hello!"), "{prompt}");
    // Table, summary, report.
    assert!(stdout.contains("Safety") && stdout.contains("50% pass (1/2)"), "{stdout}");
    let report = run_dir.report();
    assert!(report.contains("Scripted unsafe &lt;script&gt;.") && !report.contains("<script>"), "escaped");
    assert!(report.contains("Say hello &lt;b&gt;now&lt;/b&gt;"));

    // The same with a threshold Safety does not meet: exit code 1, and why.
    script(&agent, &judge);
    let output = run({
        let mut cmd = run_dir.command(Some(&agent));
        cmd.args(args)
            .args(["--threshold", "Safety=1.0", "--threshold", "0.4"])
            .env("AGENT_JUDGE_BASE_URL", judge.base_url());
        cmd
    })
    .await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Safety: pass rate 50% is below the minimum 100%"), "{stderr}");
    assert!(!stderr.contains("Completeness:"), "Completeness passed every case: {stderr}");

    // Bad input is explained: an unknown scorer, a broken dataset.
    let output = run({
        let mut cmd = run_dir.command(Some(&agent));
        cmd.args(["--scorers", "Sentiment"]);
        cmd
    })
    .await;
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown scorer `Sentiment`"));
    std::fs::write(run_dir.dir.path().join("dataset.jsonl"), "{\"input\": \"a\"}\n{broken").unwrap();
    let output = run(run_dir.command(Some(&agent))).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("dataset: line 2"));
}

#[tokio::test]
async fn a_simulated_user_drives_a_conversation_judged_as_a_whole_and_per_turn() {
    let (agent, judge, user) = (FakeModel::start().await, FakeModel::start().await, FakeModel::start().await);
    let run_dir = Run::new(
        r#"{"name": "fib", "goal": "Find primes that are Fibonacci numbers", "persona": "A novice", "guidelines": ["Prefer short messages."], "max_turns": 4}"#,
    );
    user.push(Reply::text("What is the Fibonacci sequence?"))
        .push(Reply::text("Which of those are prime?"))
        .push(Reply::text("[GOAL ACHIEVED]"));
    agent.push(Reply::text("1, 1, 2, 3, 5, 8, 13…")).push(Reply::text("2, 3, 5 and 13."));
    // Judges run in the built-in order: Completeness (each turn; unreadable verdicts here), the
    // conversation judges, then Fluency (each turn).
    judge
        .push(Reply::text("Hard to say."))
        .push(Reply::text("Hard to say."))
        .push(verdict("yes", "Both requests answered."))
        .push(verdict("resolved", "Briefly impatient, then satisfied."))
        .push(verdict("yes", "Fluent."))
        .push(verdict("no", "Terse fragment."));
    let output = run({
        let mut cmd = run_dir.command(Some(&agent));
        cmd.args(["--scorers", "ConversationCompleteness,UserFrustration,Fluency,Completeness"])
            .args(["--concurrency", "1"])
            .env("AGENT_JUDGE_BASE_URL", judge.base_url())
            .args(["--user-base-url", &user.base_url()]);
        cmd
    })
    .await;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let results = run_dir.results();
    let turns = results["cases"][0]["turns"].as_array().unwrap();
    assert_eq!(turns.len(), 2, "the user ended the conversation: {results}");
    assert_eq!(turns[1]["user"], "Which of those are prime?");
    // The second turn carried the first as history, in the same session.
    let second = &agent.requests()[1]["messages"];
    let texts: Vec<&str> = second.as_array().unwrap().iter().filter_map(|m| m["content"].as_str()).collect();
    assert!(texts.contains(&"What is the Fibonacci sequence?") && texts.contains(&"1, 1, 2, 3, 5, 8, 13…"), "{second}");
    // The simulated user was told who to be.
    let system = user.requests()[0]["messages"][0]["content"].as_str().unwrap().to_string();
    assert!(system.contains("A novice") && system.contains("Prefer short messages."), "{system}");
    assert_eq!(score(&results, 0, "ConversationCompleteness")["pass"], true);
    let frustration = score(&results, 0, "UserFrustration");
    assert_eq!((frustration["value"].as_str(), frustration["pass"].as_bool()), (Some("resolved"), Some(true)));
    let fluency = score(&results, 0, "Fluency");
    assert_eq!(fluency["pass"], false);
    assert_eq!(fluency["rationale"], "turn 2: Terse fragment.");
    assert_eq!(fluency["per_turn"].as_array().unwrap().len(), 2);
    let completeness = score(&results, 0, "Completeness");
    assert_eq!(completeness["error"], true, "an unreadable verdict is undecided, not a pass: {completeness}");
}

fn mlflow() -> Option<String> {
    match std::env::var("TEST_MLFLOW_URI") {
        Ok(uri) => Some(uri),
        Err(_) => {
            assert!(std::env::var("AGENT_REQUIRE_MLFLOW").as_deref() != Ok("1"), "TEST_MLFLOW_URI is required");
            eprintln!("TEST_MLFLOW_URI not set: skipped");
            None
        }
    }
}

#[tokio::test]
async fn an_mlflow_evaluation_run_with_metrics_and_assessments() {
    let Some(mlflow) = mlflow() else { return };
    let http = server::http_client::new();
    let name = format!("eval-{}", uuid::Uuid::new_v4());
    let created: Value = http
        .post(format!("{mlflow}/api/2.0/mlflow/experiments/create"))
        .json(&json!({"name": name}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let experiment = created["experiment_id"].as_str().unwrap().to_string();
    let (agent, judge) = (FakeModel::start().await, FakeModel::start().await);
    agent.push(Reply::text("Paris is the capital of France."));
    judge.push(verdict("yes", "Nothing harmful."));
    let run_dir =
        Run::new(r#"{"name": "capital", "input": "Capital of France?", "expectations": {"contains": ["Paris"]}}"#);
    let output = run({
        let mut cmd = run_dir.command(Some(&agent));
        cmd.args(["--scorers", "Safety,Contains,Latency"])
            .env("AGENT_JUDGE_BASE_URL", judge.base_url())
            .env("MLFLOW_TRACKING_URI", &mlflow)
            .env("MLFLOW_EXPERIMENT_ID", &experiment);
        cmd
    })
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("could not link") && !stderr.contains("not logged"), "{stderr}");
    let results = run_dir.results();
    let run_id = results["mlflow_run_id"].as_str().unwrap_or_else(|| panic!("no run: {stderr}")).to_string();
    let trace_id = results["cases"][0]["turns"][0]["trace_id"].as_str().unwrap().to_string();

    let run: Value = http
        .get(format!("{mlflow}/api/2.0/mlflow/runs/get?run_id={run_id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(run["run"]["info"]["status"], "FINISHED");
    assert_eq!(run["run"]["info"]["experiment_id"], experiment);
    let metrics = run["run"]["data"]["metrics"].as_array().unwrap();
    let metric = |key: &str| metrics.iter().find(|m| m["key"] == key).map(|m| m["value"].as_f64().unwrap());
    assert_eq!(metric("Safety/pass_rate"), Some(1.0), "{run}");
    assert_eq!(metric("Contains/pass_rate"), Some(1.0));
    assert!(metric("Latency/mean").unwrap() > 0.0);

    // The trace carries the verdicts, each with its source and rationale.
    let trace: Value =
        http.get(format!("{mlflow}/api/3.0/mlflow/traces/{trace_id}")).send().await.unwrap().json().await.unwrap();
    let assessments = trace["trace"]["trace_info"]["assessments"].as_array().unwrap_or_else(|| panic!("{trace}"));
    let safety = assessments.iter().find(|a| a["assessment_name"] == "Safety").unwrap_or_else(|| panic!("{trace}"));
    assert_eq!(safety["feedback"]["value"], "yes");
    assert_eq!(safety["rationale"], "Nothing harmful.");
    assert_eq!(safety["source"]["source_type"], "LLM_JUDGE");
    let contains = assessments.iter().find(|a| a["assessment_name"] == "Contains").unwrap();
    assert_eq!(contains["source"]["source_type"], "CODE");
}

fn local_model() -> Option<PathBuf> {
    use server::llm::local::{DEFAULT_MODEL, default_cache, resolve_model_path};
    let path = resolve_model_path(DEFAULT_MODEL, &default_cache());
    if path.is_file() {
        return Some(path);
    }
    assert!(
        std::env::var_os("AGENT_REQUIRE_LOCAL_MODEL").is_none(),
        "the embedded model is required: {}",
        path.display()
    );
    eprintln!("embedded model not fetched: skipped");
    None
}

/// Slow but real: the embedded model answers and judges.
#[tokio::test]
async fn the_embedded_model_evaluates_offline() {
    let Some(model) = local_model() else { return };
    let run_dir = Run::new(
        r#"{"name": "arithmetic", "input": "What is 2 + 2? Answer with the number.", "expectations": {"contains": ["4"]}}"#,
    );
    let output = run({
        let mut cmd = run_dir.command(None);
        cmd.args(["--scorers", "Safety,Contains,Latency", "--judge-max-tokens", "80"])
            .env("HOME", std::env::var("HOME").unwrap_or_default())
            .env("AGENT_LOCAL_MODEL", &model)
            .env("AGENT_LOCAL_MAX_TOKENS", "96");
        cmd
    })
    .await;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let results = run_dir.results();
    let turn = &results["cases"][0]["turns"][0];
    assert!(turn["error"].is_null(), "{results}");
    assert!(!turn["answer"].as_str().unwrap().trim().is_empty(), "{results}");
    // The small model's verdict may or may not be readable; either way it is reported as such.
    let safety = score(&results, 0, "Safety");
    assert!(safety["value"] == "yes" || safety["value"] == "no" || safety["error"] == true, "{safety}");
    assert!(Path::new(&run_dir.dir.path().join("out/report.html")).is_file());
}

/// Any agent at a URL (here this server on its own port), with a bearer token.
#[tokio::test]
async fn an_agent_at_a_url_is_evaluated_over_its_api() {
    use axum::http::HeaderMap;
    let (agent, judge) = (FakeModel::start().await, FakeModel::start().await);
    let mut settings = crate::common::test_settings(&agent);
    settings.tracing.enabled = false;
    let state = server::AppState::new(settings, server::agent::agent()).unwrap();
    // In front of it, a check that the token arrives (as a deployed app's proxy would).
    let seen: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let app = server::app(state).layer(axum::middleware::from_fn({
        let seen = seen.clone();
        move |headers: HeaderMap, request: axum::extract::Request, next: axum::middleware::Next| {
            let seen = seen.clone();
            async move {
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                seen.lock().unwrap().push(auth);
                next.run(request).await
            }
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    agent.push(Reply::text("Paris."));
    judge.push(verdict("yes", "Relevant."));
    let run_dir = Run::new(r#"{"input": "Capital of France?", "expectations": {"contains": ["paris"]}}"#);
    let output = run({
        let mut cmd = run_dir.command(None);
        cmd.args(["--url", &format!("{url}/invocations"), "--scorers", "RelevanceToQuery,Contains"])
            .env("AGENT_EVAL_TOKEN", "eval-token")
            .env("AGENT_JUDGE_BASE_URL", judge.base_url())
            .env("AGENT_JUDGE_MODEL", "judge");
        cmd
    })
    .await;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let results = run_dir.results();
    assert_eq!(results["target"], url);
    assert_eq!(score(&results, 0, "RelevanceToQuery")["pass"], true);
    assert_eq!(score(&results, 0, "Contains")["pass"], true);
    assert_eq!(*seen.lock().unwrap(), ["Bearer eval-token"]);
}
