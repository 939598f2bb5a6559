//! What every handler shares: the settings and the agent runner, built once at start-up.

use std::sync::Arc;

use crate::config::Settings;
use crate::llm::openai::{CallPolicy, OpenAiCompatible};
use crate::llm::{ChatModel, Unconfigured};
use crate::runner::{Agent, Limits, Runner};

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub runner: Arc<Runner>,
}

impl AppState {
    /// The agent on the model the settings choose. Fails on an agent that model APIs would reject.
    pub fn new(settings: Settings, mut agent: Agent) -> Result<Self, String> {
        agent.tools.validate()?;
        if let Some(model) = &settings.model {
            agent.model = model.clone();
        }
        let runner = Runner {
            agent: Arc::new(agent),
            model: model_from_settings(&settings),
            limits: Limits {
                max_turns: settings.max_turns.max(1),
                tool_timeout: settings.tool_timeout(),
                max_tool_output_bytes: settings.max_tool_output_bytes,
            },
        };
        Ok(Self { settings: Arc::new(settings), runner: Arc::new(runner) })
    }
}

/// Databricks Model Serving when `DATABRICKS_HOST` is set, else any OpenAI-compatible server when
/// `OPENAI_BASE_URL` is set.
pub fn model_from_settings(settings: &Settings) -> Arc<dyn ChatModel> {
    let policy = CallPolicy {
        timeout: settings.model_timeout(),
        idle_timeout: settings.model_idle_timeout(),
        max_retries: settings.model_max_retries,
        retry_base: std::time::Duration::from_millis(settings.model_retry_base_ms),
    };
    if let Some(host) = &settings.databricks_host {
        return match &settings.databricks_token {
            Some(token) => Arc::new(OpenAiCompatible::databricks(host, Some(token.clone()), policy)),
            None => Arc::new(Unconfigured(
                "DATABRICKS_HOST is set but DATABRICKS_TOKEN is not: set a personal access token".into(),
            )),
        };
    }
    if let Some(base_url) = &settings.openai_base_url {
        return Arc::new(OpenAiCompatible::openai(base_url, settings.openai_api_key.clone(), policy));
    }
    Arc::new(Unconfigured(
        "set DATABRICKS_HOST and DATABRICKS_TOKEN, or OPENAI_BASE_URL (and OPENAI_API_KEY); see .env.example".into(),
    ))
}
