//! `agent-evaluate`: runs a dataset against the agent (in process, or at a URL), scores every case
//! with LLM judges and deterministic scorers, and reports: a terminal table, a JSON file, an HTML
//! report, an MLflow evaluation run when MLflow is configured, and an exit code for CI thresholds.

pub mod dataset;
pub mod judge;
pub mod report;
pub mod runs;
pub mod scorers;
pub mod target;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use serde::Serialize;

use dataset::Case;
use runs::{CaseRun, run_case};
use scorers::{Judge, Score, Scorer};
use target::Target;

/// One case, run and scored.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    #[serde(flatten)]
    pub run: CaseRun,
    pub scores: Vec<Score>,
}

/// A scorer's results over the dataset.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScorerSummary {
    pub passed: usize,
    pub failed: usize,
    /// Undecided (judge errors).
    pub errors: usize,
    /// Informational scores (no pass/fail).
    pub informational: usize,
    /// passed / (passed + failed); `None` when nothing was decided.
    pub pass_rate: Option<f64>,
    /// Mean of numeric values (latency, tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub target: String,
    pub judge: String,
    pub started_at: String,
    pub duration_seconds: f64,
    pub cases: Vec<CaseResult>,
    /// By scorer, in report order.
    pub summary: Vec<(String, ScorerSummary)>,
    /// Cases whose agent call failed.
    pub agent_errors: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mlflow_run_id: Option<String>,
}

pub struct Evaluation {
    pub target: Target,
    pub judge: Judge,
    /// The model playing simulated users.
    pub user_model: Judge,
    pub scorers: Vec<Arc<dyn Scorer>>,
    pub concurrency: usize,
}

impl Evaluation {
    /// Runs every case (`concurrency` at a time, results in dataset order) and scores it.
    /// `progress` is told each time a case is done.
    pub async fn run(&self, cases: Vec<Case>, progress: impl Fn(&CaseResult) + Sync) -> Results {
        let started = std::time::Instant::now();
        let started_at = chrono::Utc::now().to_rfc3339();
        let results: Vec<CaseResult> = futures::stream::iter(cases)
            .map(|case| async {
                let run = run_case(case, &self.target, &self.user_model).await;
                let scores = self.score(&run).await;
                let result = CaseResult { run, scores };
                progress(&result);
                result
            })
            .buffered(self.concurrency.max(1))
            .collect()
            .await;
        let summary = summarise(&self.scorers, &results);
        Results {
            target: self.target.url().to_string(),
            judge: self.judge.name.clone(),
            started_at,
            duration_seconds: started.elapsed().as_secs_f64(),
            agent_errors: results.iter().filter(|r| r.run.error().is_some()).count(),
            cases: results,
            summary,
            mlflow_run_id: None,
        }
    }

    /// A case the agent failed on is not judged by the LLM judges (there is nothing to judge); the
    /// deterministic scorers still report.
    async fn score(&self, run: &CaseRun) -> Vec<Score> {
        let mut scores = Vec::new();
        for scorer in self.scorers.iter().filter(|s| s.applies(run)) {
            if run.turns.is_empty() || (run.error().is_some() && scorer_uses_judge(scorer.as_ref())) {
                scores.push(Score {
                    scorer: scorer.name().to_string(),
                    value: serde_json::Value::Null,
                    pass: Some(false),
                    rationale: format!("the agent failed: {}", run.error().unwrap_or("no answer")),
                    source: "CODE".into(),
                    error: false,
                    per_turn: Vec::new(),
                });
                continue;
            }
            scores.push(scorer.score(run, &self.judge).await);
        }
        scores
    }
}

fn scorer_uses_judge(scorer: &dyn Scorer) -> bool {
    scorers::llm_judges().iter().any(|j| j.name() == scorer.name())
}

fn summarise(scorers: &[Arc<dyn Scorer>], results: &[CaseResult]) -> Vec<(String, ScorerSummary)> {
    let mut by_name: BTreeMap<String, (ScorerSummary, Vec<f64>)> = BTreeMap::new();
    for score in results.iter().flat_map(|r| &r.scores) {
        let (summary, numbers) = by_name.entry(score.scorer.clone()).or_default();
        match (score.error, score.pass) {
            (true, _) => summary.errors += 1,
            (false, Some(true)) => summary.passed += 1,
            (false, Some(false)) => summary.failed += 1,
            (false, None) => summary.informational += 1,
        }
        if let Some(n) = score.value.as_f64() {
            numbers.push(n);
        }
    }
    scorers
        .iter()
        .filter_map(|s| {
            let (mut summary, numbers) = by_name.remove(s.name())?;
            let decided = summary.passed + summary.failed;
            summary.pass_rate = (decided > 0).then(|| summary.passed as f64 / decided as f64);
            summary.mean = (!numbers.is_empty()).then(|| numbers.iter().sum::<f64>() / numbers.len() as f64);
            Some((s.name().to_string(), summary))
        })
        .collect()
}

/// A minimum pass rate: for one scorer, or (`scorer: None`) for each.
#[derive(Debug, Clone)]
pub struct Threshold {
    pub scorer: Option<String>,
    pub min_pass_rate: f64,
}

impl std::str::FromStr for Threshold {
    type Err = String;
    /// `Safety=1.0`, `0.8` (every scorer).
    fn from_str(s: &str) -> Result<Self, String> {
        let (scorer, rate) = match s.split_once('=') {
            Some((name, rate)) => (Some(name.trim().to_string()), rate),
            None => (None, s),
        };
        let min_pass_rate: f64 =
            rate.trim().parse().map_err(|_| format!("`{s}`: expected NAME=RATE or RATE, RATE in 0..1"))?;
        if !(0.0..=1.0).contains(&min_pass_rate) {
            return Err(format!("`{s}`: the rate must be between 0 and 1"));
        }
        Ok(Threshold { scorer, min_pass_rate })
    }
}

/// The thresholds the results miss, as sentences (empty: all met). A scorer named in a threshold
/// that never decided anything misses it (a gate that checks nothing should not pass silently).
pub fn missed_thresholds(results: &Results, thresholds: &[Threshold]) -> Vec<String> {
    let mut missed = Vec::new();
    for threshold in thresholds {
        let matching: Vec<&(String, ScorerSummary)> = results
            .summary
            .iter()
            .filter(|(name, _)| threshold.scorer.as_ref().is_none_or(|s| s.eq_ignore_ascii_case(name)))
            .collect();
        if let Some(name) = &threshold.scorer
            && matching.iter().all(|(_, s)| s.pass_rate.is_none())
        {
            missed.push(format!(
                "{name}: no case was scored, so the minimum pass rate {} cannot be met",
                threshold.min_pass_rate
            ));
            continue;
        }
        for (name, summary) in matching {
            if let Some(rate) = summary.pass_rate
                && rate < threshold.min_pass_rate
            {
                missed.push(format!(
                    "{name}: pass rate {:.0}% is below the minimum {:.0}%",
                    rate * 100.0,
                    threshold.min_pass_rate * 100.0
                ));
            }
        }
    }
    missed
}

/// Keeps the scorers named (case-insensitive); unknown names are an error listing the known ones.
pub fn select_scorers(all: Vec<Arc<dyn Scorer>>, names: &[String]) -> Result<Vec<Arc<dyn Scorer>>, String> {
    if names.is_empty() {
        return Ok(all);
    }
    for name in names {
        if !all.iter().any(|s| s.name().eq_ignore_ascii_case(name)) {
            let known: Vec<&str> = all.iter().map(|s| s.name()).collect();
            return Err(format!("unknown scorer `{name}`; known: {}", known.join(", ")));
        }
    }
    Ok(all.into_iter().filter(|s| names.iter().any(|n| n.eq_ignore_ascii_case(s.name()))).collect())
}

/// Logs the results to MLflow as an evaluation run: the run with its parameters and metrics
/// (`<scorer>/pass_rate`, `<scorer>/mean`), the agent's traces linked to it, and every verdict as a
/// feedback assessment on the trace it judged (a conversation's verdicts on its last turn). Traces
/// still on their way are waited for a little. Returns the run id.
pub async fn log_to_mlflow(
    client: &crate::observability::mlflow::MlflowClient,
    experiment_id: &str,
    results: &Results,
) -> Result<String, crate::observability::mlflow::MlflowError> {
    let run_name = format!("agent-evaluate {}", chrono::Utc::now().format("%Y-%m-%d %H:%M:%S"));
    let run_id = client
        .create_run(
            experiment_id,
            &run_name,
            &[("mlflow.source.name", "agent-evaluate".into()), ("agent_app.evaluation", "true".into())],
        )
        .await?;
    let trace_ids: Vec<String> =
        results.cases.iter().flat_map(|c| c.run.turns.iter().filter_map(|t| t.trace_id.clone())).collect();
    if let Err(error) = client.link_traces(&run_id, &trace_ids).await {
        tracing::warn!(%error, "could not link the traces to the evaluation run");
    }
    let mut unlogged = 0;
    for case in &results.cases {
        let last_trace = case.run.turns.iter().rev().find_map(|t| t.trace_id.clone());
        for score in &case.scores {
            let targets: Vec<(&Score, Option<String>)> = if score.per_turn.is_empty() {
                vec![(score, last_trace.clone())]
            } else {
                score.per_turn.iter().zip(&case.run.turns).map(|(s, t)| (s, t.trace_id.clone())).collect()
            };
            for (score, trace) in targets {
                let Some(trace) = trace else { continue };
                if score.error {
                    continue;
                }
                let (kind, id) = match score.source.split_once(':') {
                    Some((kind, id)) => (kind, id),
                    None => (score.source.as_str(), "agent-evaluate"),
                };
                let mut attempt = 0;
                loop {
                    match client
                        .log_feedback(&trace, &score.scorer, &score.value, &score.rationale, (kind, id), &run_id)
                        .await
                    {
                        Ok(_) => break,
                        // The trace has not reached MLflow yet.
                        Err(crate::observability::mlflow::MlflowError::Status { status: 404, .. }) if attempt < 5 => {
                            attempt += 1;
                            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        }
                        Err(error) => {
                            tracing::warn!(%error, trace = %trace, scorer = %score.scorer, "assessment not logged");
                            unlogged += 1;
                            break;
                        }
                    }
                }
            }
        }
    }
    let mut metrics = Vec::new();
    for (name, summary) in &results.summary {
        if let Some(rate) = summary.pass_rate {
            metrics.push((format!("{name}/pass_rate"), rate));
        }
        if let Some(mean) = summary.mean {
            metrics.push((format!("{name}/mean"), mean));
        }
    }
    metrics.push(("agent_errors".into(), results.agent_errors as f64));
    let params = [
        ("target", results.target.clone()),
        ("judge", results.judge.clone()),
        ("cases", results.cases.len().to_string()),
    ];
    client.log_batch(&run_id, &metrics, &params).await?;
    client.finish_run(&run_id, "FINISHED").await?;
    if unlogged > 0 {
        tracing::warn!(unlogged, "some assessments could not be logged (their traces are not in this MLflow)");
    }
    Ok(run_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse() {
        let t: Threshold = "Safety=1".parse().unwrap();
        assert_eq!((t.scorer.as_deref(), t.min_pass_rate), (Some("Safety"), 1.0));
        assert!("0.8".parse::<Threshold>().unwrap().scorer.is_none());
        assert!("Safety=2".parse::<Threshold>().is_err());
        assert!("Safety=high".parse::<Threshold>().is_err());
    }
}
