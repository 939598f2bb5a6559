//! The MLflow REST calls the server makes besides exporting spans: version tracking (a LoggedModel
//! per git commit, docs/reference.md §4.2) and user feedback as assessments (docs/reference.md §4.4). Works against an MLflow
//! server or a Databricks workspace.

use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::auth::TrackingAuth;
use crate::databricks::auth::WorkspaceAuth;
use crate::store::feedback::FeedbackSink;

#[derive(Debug, thiserror::Error)]
pub enum MlflowError {
    #[error("could not reach MLflow at {url}: {message}")]
    Connect { url: String, message: String },
    #[error("MLflow {url} answered HTTP {status}: {body}")]
    Status { url: String, status: u16, body: String },
    #[error("MLflow {url} answered something unexpected: {message}")]
    Protocol { url: String, message: String },
    #[error("no credential for the Databricks workspace: {0}")]
    Auth(String),
}

#[derive(Clone)]
pub struct MlflowClient {
    http: reqwest::Client,
    /// The tracking server or workspace URL, no trailing slash.
    base: String,
    auth: Option<TrackingAuth>,
}

const CALL_TIMEOUT: Duration = Duration::from_secs(15);

impl MlflowClient {
    /// An MLflow server at `tracking_uri` (`http://…`), with its credential if it wants one.
    pub fn server(tracking_uri: &str, auth: Option<TrackingAuth>) -> Self {
        Self { http: crate::http_client::new(), base: tracking_uri.trim_end_matches('/').to_string(), auth }
    }

    /// The workspace's managed MLflow.
    pub fn databricks(auth: WorkspaceAuth) -> Self {
        Self { http: crate::http_client::new(), base: auth.host.clone(), auth: Some(TrackingAuth::Workspace(auth)) }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// How its calls authenticate (spans sent beside them use the same).
    pub fn auth(&self) -> Option<&TrackingAuth> {
        self.auth.as_ref()
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Result<Value, MlflowError> {
        let url = format!("{}{path}", self.base);
        let mut refused_token = false;
        loop {
            let mut request = self.http.request(method.clone(), &url).timeout(CALL_TIMEOUT).json(&body);
            let mut bearer = None;
            if let Some(auth) = &self.auth {
                let value = auth.header().await.map_err(MlflowError::Auth)?;
                request = request.header(reqwest::header::AUTHORIZATION, &value);
                bearer = Some(value);
            }
            let response =
                request.send().await.map_err(|e| MlflowError::Connect { url: url.clone(), message: e.to_string() })?;
            let status = response.status();
            // A refused workspace token is replaced once.
            if status == reqwest::StatusCode::UNAUTHORIZED
                && !refused_token
                && let (Some(auth), Some(bearer)) = (&self.auth, &bearer)
                && auth.rejected(bearer).await
            {
                refused_token = true;
                continue;
            }
            let text = response.text().await.unwrap_or_default();
            if !status.is_success() {
                return Err(MlflowError::Status {
                    url,
                    status: status.as_u16(),
                    body: text.chars().take(500).collect(),
                });
            }
            return serde_json::from_str(&text).map_err(|e| MlflowError::Protocol { url, message: e.to_string() });
        }
    }

    /// The id of the experiment named `name` (MLFLOW_EXPERIMENT_NAME), created if there is none, as
    /// `mlflow.set_experiment` does.
    pub async fn find_or_create_experiment(&self, name: &str) -> Result<String, MlflowError> {
        let escaped = name.replace('\'', "\\'");
        let search = json!({"filter": format!("name = '{escaped}'"), "max_results": 1});
        for attempt in 0..2 {
            let found = self.call(reqwest::Method::POST, "/api/2.0/mlflow/experiments/search", search.clone()).await?;
            if let Some(id) = found.pointer("/experiments/0/experiment_id").and_then(Value::as_str) {
                return Ok(id.to_string());
            }
            match self.call(reqwest::Method::POST, "/api/2.0/mlflow/experiments/create", json!({"name": name})).await {
                Ok(created) => {
                    return created.get("experiment_id").and_then(Value::as_str).map(str::to_string).ok_or_else(|| {
                        MlflowError::Protocol {
                            url: self.base.clone(),
                            message: format!("no experiment id in {created}"),
                        }
                    });
                }
                // Created meanwhile by another process: found on the second search.
                Err(MlflowError::Status { status: 400 | 409, .. }) if attempt == 0 => {}
                Err(error) => return Err(error),
            }
        }
        Err(MlflowError::Protocol {
            url: self.base.clone(),
            message: format!("experiment {name:?} neither found nor created"),
        })
    }

    /// The id of the LoggedModel named `name` in the experiment, created if there is none.
    pub async fn find_or_create_logged_model(&self, experiment_id: &str, name: &str) -> Result<String, MlflowError> {
        let escaped = name.replace('\'', "\\'");
        let found = self
            .call(
                reqwest::Method::POST,
                "/api/2.0/mlflow/logged-models/search",
                json!({"experiment_ids": [experiment_id], "filter": format!("name = '{escaped}'"), "max_results": 1}),
            )
            .await?;
        if let Some(id) = found.pointer("/models/0/info/model_id").and_then(Value::as_str) {
            return Ok(id.to_string());
        }
        let created = self
            .call(
                reqwest::Method::POST,
                "/api/2.0/mlflow/logged-models",
                json!({"experiment_id": experiment_id, "name": name, "model_type": "agent"}),
            )
            .await?;
        created.pointer("/model/info/model_id").and_then(Value::as_str).map(str::to_string).ok_or_else(|| {
            MlflowError::Protocol { url: self.base.clone(), message: format!("no model id in {created}") }
        })
    }

    /// Logs (or, with the previous id, updates) a `user_feedback` assessment on a trace.
    pub async fn user_feedback(
        &self,
        trace_id: &str,
        user: &str,
        thumbs_up: bool,
        previous: Option<&str>,
    ) -> Result<String, MlflowError> {
        let path = format!("/api/3.0/mlflow/traces/{trace_id}/assessments");
        if let Some(id) = previous {
            let body = json!({
                "assessment": {"trace_id": trace_id, "assessment_name": "user_feedback", "feedback": {"value": thumbs_up}},
                "update_mask": "feedback",
            });
            match self.call(reqwest::Method::PATCH, &format!("{path}/{id}"), body).await {
                Ok(_) => return Ok(id.to_string()),
                // Gone (deleted in the UI, say): log a new one instead.
                Err(MlflowError::Status { status: 404, .. }) => {}
                Err(error) => return Err(error),
            }
        }
        let body = json!({"assessment": {
            "trace_id": trace_id,
            "assessment_name": "user_feedback",
            "source": {"source_type": "HUMAN", "source_id": user},
            "feedback": {"value": thumbs_up},
        }});
        let created = self.call(reqwest::Method::POST, &path, body).await?;
        created.pointer("/assessment/assessment_id").and_then(Value::as_str).map(str::to_string).ok_or_else(|| {
            MlflowError::Protocol { url: self.base.clone(), message: format!("no assessment id in {created}") }
        })
    }
}

/// Evaluation runs (`agent-evaluate`): a run, its metrics, its traces, and the judges' assessments.
impl MlflowClient {
    pub async fn create_run(
        &self,
        experiment_id: &str,
        run_name: &str,
        tags: &[(&str, String)],
    ) -> Result<String, MlflowError> {
        let tags: Vec<Value> = tags.iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
        let body = json!({
            "experiment_id": experiment_id,
            "run_name": run_name,
            "start_time": chrono::Utc::now().timestamp_millis(),
            "tags": tags,
        });
        let created = self.call(reqwest::Method::POST, "/api/2.0/mlflow/runs/create", body).await?;
        created
            .pointer("/run/info/run_id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| MlflowError::Protocol { url: self.base.clone(), message: format!("no run id in {created}") })
    }

    pub async fn log_batch(
        &self,
        run_id: &str,
        metrics: &[(String, f64)],
        params: &[(&str, String)],
    ) -> Result<(), MlflowError> {
        let now = chrono::Utc::now().timestamp_millis();
        let metrics: Vec<Value> =
            metrics.iter().map(|(k, v)| json!({"key": k, "value": v, "timestamp": now, "step": 0})).collect();
        let params: Vec<Value> = params.iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
        let body = json!({"run_id": run_id, "metrics": metrics, "params": params});
        self.call(reqwest::Method::POST, "/api/2.0/mlflow/runs/log-batch", body).await.map(|_| ())
    }

    pub async fn finish_run(&self, run_id: &str, status: &str) -> Result<(), MlflowError> {
        let body = json!({"run_id": run_id, "status": status, "end_time": chrono::Utc::now().timestamp_millis()});
        self.call(reqwest::Method::POST, "/api/2.0/mlflow/runs/update", body).await.map(|_| ())
    }

    /// Shows the traces in the run (its Traces tab), 100 at a time as MLflow takes them.
    pub async fn link_traces(&self, run_id: &str, trace_ids: &[String]) -> Result<(), MlflowError> {
        for chunk in trace_ids.chunks(100) {
            let body = json!({"run_id": run_id, "trace_ids": chunk});
            self.call(reqwest::Method::POST, "/api/2.0/mlflow/traces/link-to-run", body).await?;
        }
        Ok(())
    }

    /// A judge's (or code's) verdict on a trace, as a feedback assessment of the run.
    pub async fn log_feedback(
        &self,
        trace_id: &str,
        name: &str,
        value: &Value,
        rationale: &str,
        source: (&str, &str),
        run_id: &str,
    ) -> Result<String, MlflowError> {
        let body = json!({"assessment": {
            "trace_id": trace_id,
            "assessment_name": name,
            "source": {"source_type": source.0, "source_id": source.1},
            "feedback": {"value": value},
            "rationale": rationale,
            "metadata": {"mlflow.assessment.sourceRunId": run_id},
        }});
        let created =
            self.call(reqwest::Method::POST, &format!("/api/3.0/mlflow/traces/{trace_id}/assessments"), body).await?;
        created.pointer("/assessment/assessment_id").and_then(Value::as_str).map(str::to_string).ok_or_else(|| {
            MlflowError::Protocol { url: self.base.clone(), message: format!("no assessment id in {created}") }
        })
    }
}

impl FeedbackSink for MlflowClient {
    fn record<'a>(
        &'a self,
        trace_id: &'a str,
        user: &'a str,
        thumbs_up: bool,
        previous: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<String>, String>> {
        Box::pin(async move {
            self.user_feedback(trace_id, user, thumbs_up, previous).await.map(Some).map_err(|e| e.to_string())
        })
    }
}

/// The version this app runs as, for its LoggedModel name: `git-<sha8>` of the working tree it runs
/// in, else of the commit it was built from (`AGENT_GIT_SHA` at build time), else `no-git`. Never
/// fails, with or without a `git` binary.
pub fn app_version() -> String {
    version_from("git")
}

fn version_from(git: &str) -> String {
    let from_git = std::process::Command::new(git)
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok());
    let sha = from_git.or_else(|| option_env!("AGENT_GIT_SHA").map(str::to_string));
    match sha.map(|s| s.trim().to_string()).filter(|s| s.len() >= 8 && s.chars().all(|c| c.is_ascii_hexdigit())) {
        Some(sha) => format!("git-{}", &sha[..8]),
        None => "no-git".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_names_the_commit_or_says_no_git() {
        let version = version_from("git");
        let in_checkout = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.git").exists();
        if in_checkout {
            assert!(version.starts_with("git-") && version.len() == 12, "{version}");
        }
        // No git binary at all: no crash (the reference's bug, docs/reference.md §10.6).
        let without = version_from("/nonexistent/git");
        assert!(without == "no-git" || option_env!("AGENT_GIT_SHA").is_some(), "{without}");
    }
}
