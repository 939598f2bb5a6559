//! Agents served elsewhere, called as tools: [`RemoteAgent`] (another app's `/responses`, a
//! Databricks App by name, or a Model Serving endpoint). Agents of this app used as tools, and
//! hand-offs between them, are the runner's (`Agent::as_tool`, `Agent::handoff`).

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::{Tool, ToolContext, ToolError, ToolSpec};

/// What an agent called as a tool is given.
#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct AgentInput {
    /// The task or question for the agent, with everything it needs to know.
    pub input: String,
}

/// The spec of a tool that takes an [`AgentInput`].
pub fn input_spec(name: &str, description: &str) -> ToolSpec {
    let (parameters, strict) = super::schema_for::<AgentInput>();
    ToolSpec { name: name.to_string(), description: description.to_string(), parameters, strict }
}

/// Where a remote agent is served.
#[derive(Debug, Clone)]
enum Endpoint {
    /// `<url>/responses` (any agent-app or MLflow AgentServer, or another OpenAI Responses server).
    Url(String),
    /// A Databricks App by name: its URL is looked up in the workspace.
    App(String),
    /// A Databricks Model Serving endpoint (`/serving-endpoints/<name>/invocations`).
    Serving(String),
}

/// An agent served elsewhere, called as a tool with `{"input": "…"}`; its answer's text is the output.
#[derive(Debug, Clone)]
pub struct RemoteAgent {
    name: String,
    description: String,
    endpoint: Endpoint,
    /// Send the workspace credential (always for apps and serving endpoints).
    workspace_auth: bool,
    timeout: Duration,
}

impl RemoteAgent {
    /// The agent at `base_url` (its `/responses` route), e.g. another agent-app.
    pub fn url(name: &str, description: &str, base_url: &str) -> Self {
        Self::new(name, description, Endpoint::Url(base_url.trim_end_matches('/').to_string()), false)
    }

    /// The Databricks App `app_name` (`apps/<name>`), called with the workspace credential.
    pub fn app(name: &str, description: &str, app_name: &str) -> Self {
        let app_name = app_name.strip_prefix("apps/").unwrap_or(app_name);
        Self::new(name, description, Endpoint::App(app_name.to_string()), true)
    }

    /// The Model Serving endpoint `endpoint` (an agent deployed with Mosaic AI Agent Framework).
    pub fn serving_endpoint(name: &str, description: &str, endpoint: &str) -> Self {
        Self::new(name, description, Endpoint::Serving(endpoint.to_string()), true)
    }

    fn new(name: &str, description: &str, endpoint: Endpoint, workspace_auth: bool) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            endpoint,
            workspace_auth,
            timeout: Duration::from_secs(300),
        }
    }

    /// Sends the app's workspace credential to a `url` agent too (one on the workspace's host).
    pub fn with_workspace_auth(mut self) -> Self {
        self.workspace_auth = true;
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn into_tool(self) -> Arc<dyn Tool> {
        let spec = input_spec(&self.name, &self.description);
        Arc::new(RemoteAgentTool { spec, remote: self, client: crate::http_client::new() })
    }
}

struct RemoteAgentTool {
    spec: ToolSpec,
    remote: RemoteAgent,
    client: reqwest::Client,
}

impl RemoteAgentTool {
    async fn url(&self, context: &ToolContext) -> Result<String, String> {
        let workspace = || context.workspace.as_ref().ok_or("no Databricks workspace is configured".to_string());
        Ok(match &self.remote.endpoint {
            Endpoint::Url(url) => format!("{url}/responses"),
            Endpoint::Serving(name) => format!("{}/serving-endpoints/{name}/invocations", workspace()?.host),
            Endpoint::App(name) => {
                let app = workspace()?
                    .call_json(reqwest::Method::GET, &format!("/api/2.0/apps/{name}"), None, Duration::from_secs(30))
                    .await
                    .map_err(|e| format!("cannot look up the app `{name}`: {e}"))?;
                let url = app.get("url").and_then(Value::as_str).ok_or(format!("the app `{name}` has no URL yet"))?;
                format!("{}/responses", url.trim_end_matches('/'))
            }
        })
    }

    async fn ask(&self, input: String, context: &ToolContext) -> Result<String, String> {
        let url = self.url(context).await?;
        let body = json!({"input": [{"role": "user", "content": input}]});
        let mut request = self.client.post(&url).timeout(self.remote.timeout).json(&body);
        if self.remote.workspace_auth {
            let workspace = context.workspace.as_ref().ok_or("no Databricks workspace is configured")?;
            let token = workspace.token().await.map_err(|e| e.to_string())?;
            request = request.bearer_auth(token.expose());
        }
        let response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| format!("{url}: {e}"))?;
        if !status.is_success() {
            let excerpt: String = text.chars().take(500).collect();
            return Err(format!("{url} answered {status}: {excerpt}"));
        }
        let value: Value = serde_json::from_str(&text).map_err(|e| format!("{url}: not JSON ({e})"))?;
        Ok(answer_text(&value))
    }
}

/// The text of a Responses answer (`output` messages), or of a chat completion (`choices`).
fn answer_text(value: &Value) -> String {
    if let Some(output) = value.get("output").and_then(Value::as_array) {
        return output
            .iter()
            .filter(|i| i["type"] == "message")
            .flat_map(|i| i["content"].as_array().into_iter().flatten())
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n\n");
    }
    value.pointer("/choices/0/message/content").and_then(Value::as_str).unwrap_or_default().to_string()
}

impl Tool for RemoteAgentTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }
    fn call<'a>(&'a self, arguments: Value, context: ToolContext) -> BoxFuture<'a, Result<String, ToolError>> {
        Box::pin(async move {
            let input = serde_json::from_value::<AgentInput>(arguments)
                .map_err(|e| ToolError::InvalidArguments { tool: self.spec.name.clone(), reason: e.to_string() })?;
            self.ask(input.input, &context)
                .await
                .map_err(|reason| ToolError::Failed { tool: self.spec.name.clone(), reason })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_from_responses_and_chat_completions() {
        let responses = json!({"output": [{"type": "function_call"}, {"type": "message", "content": [{"type": "output_text", "text": "42"}]}]});
        assert_eq!(answer_text(&responses), "42");
        assert_eq!(answer_text(&json!({"choices": [{"message": {"content": "hi"}}]})), "hi");
    }
}
