//! The agent under evaluation, over its API: `POST {url}/invocations`, the trace id asked for. The
//! in-process agent is served on a loopback port and reached the same way, so both are measured
//! alike.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

use crate::secret::Secret;

/// One exchange: what was sent and what came back.
#[derive(Debug, Clone, Serialize)]
pub struct Turn {
    pub user: String,
    pub answer: String,
    pub tool_calls: Vec<ToolCallSeen>,
    /// The response's output items (the next turn sends them back as history).
    #[serde(skip)]
    pub output: Vec<Value>,
    pub latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ToolCallSeen {
    pub name: String,
    pub arguments: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

pub struct Target {
    url: String,
    token: Option<Secret>,
    http: reqwest::Client,
    timeout: Duration,
}

impl Target {
    /// The agent at `url` (its base: `/invocations` is added), with an optional bearer token.
    pub fn new(url: &str, token: Option<Secret>, timeout: Duration) -> Self {
        let url = url.trim_end_matches('/').trim_end_matches("/invocations").trim_end_matches("/responses");
        Self { url: url.to_string(), token, http: crate::http_client::new(), timeout }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends `input` (history and the new user message) in session `session`.
    pub async fn respond(&self, input: &[Value], session: &str) -> Turn {
        let user = last_user_text(input);
        let started = Instant::now();
        let mut request = self
            .http
            .post(format!("{}/invocations", self.url))
            .header("x-mlflow-return-trace-id", "true")
            .timeout(self.timeout)
            .json(&json!({"input": input, "context": {"conversation_id": session}}));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose());
        }
        let result = async {
            let response = request.send().await.map_err(|e| format!("the agent did not answer: {e}"))?;
            let status = response.status();
            let body: Value = response.json().await.map_err(|e| format!("HTTP {status}, not JSON: {e}"))?;
            if !status.is_success() {
                let detail = body.get("detail").and_then(Value::as_str).map(str::to_string).unwrap_or(body.to_string());
                return Err(format!("HTTP {}: {detail}", status.as_u16()));
            }
            Ok(body)
        }
        .await;
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        match result {
            Err(error) => Turn {
                user,
                answer: String::new(),
                tool_calls: Vec::new(),
                output: Vec::new(),
                latency_ms,
                tokens: None,
                trace_id: None,
                error: Some(error),
            },
            Ok(body) => {
                let output = body["output"].as_array().cloned().unwrap_or_default();
                Turn {
                    user,
                    answer: answer_text(&output),
                    tool_calls: tool_calls(&output),
                    latency_ms,
                    tokens: body["usage"]["total_tokens"].as_u64(),
                    trace_id: body["metadata"]["trace_id"].as_str().map(str::to_string),
                    error: None,
                    output,
                }
            }
        }
    }
}

/// The text of the output's messages.
pub fn answer_text(output: &[Value]) -> String {
    let mut text = String::new();
    for item in output.iter().filter(|i| i["type"] == "message") {
        for part in item["content"].as_array().into_iter().flatten() {
            if let Some(t) = part["text"].as_str() {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(t);
            }
        }
    }
    text
}

fn tool_calls(output: &[Value]) -> Vec<ToolCallSeen> {
    output
        .iter()
        .filter(|i| i["type"] == "function_call")
        .map(|call| {
            let id = &call["call_id"];
            let result = output.iter().find(|o| o["type"] == "function_call_output" && &o["call_id"] == id);
            ToolCallSeen {
                name: call["name"].as_str().unwrap_or_default().to_string(),
                arguments: call["arguments"].as_str().unwrap_or_default().to_string(),
                output: result.and_then(|r| r["output"].as_str()).map(str::to_string),
            }
        })
        .collect()
}

fn last_user_text(input: &[Value]) -> String {
    input
        .iter()
        .rev()
        .find(|i| i["role"] == "user")
        .map(|i| match &i["content"] {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n"),
            _ => String::new(),
        })
        .unwrap_or_default()
}
