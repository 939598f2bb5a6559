//! An agent used as a tool of another (`Agent::as_tool`): a tool like any other, whose call runs
//! that agent's own loop (its instructions, tools, MCP servers and approval rules; the caller's
//! model unless it names one) under the tool's span. Its answer's text is the output; what its
//! tools put in `custom_outputs` joins the caller's response.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use app::responses::ResponsesRequest;
use futures::future::BoxFuture;
use serde_json::Value;

use super::output::{Output, new_id};
use super::{Agent, Limits, Runner};
use crate::databricks::auth::WorkspaceAuth;
use crate::llm::{ChatModel, ToolSpec};
use crate::observability::Span;
use crate::tools::agents::{AgentInput, input_spec};
use crate::tools::mcp::{McpHub, McpTimeouts};
use crate::tools::{Tool, ToolContext, ToolError};

pub(super) struct AgentTool {
    spec: ToolSpec,
    agent: Arc<Agent>,
}

impl AgentTool {
    pub(super) fn new(agent: Agent, name: &str, description: &str) -> Arc<dyn Tool> {
        Arc::new(Self { spec: input_spec(name, description), agent: Arc::new(agent) })
    }
}

/// What the calling run hands its tool calls (in `ToolContext::extensions`): what an agent used as
/// a tool runs with.
#[derive(Clone)]
pub(super) struct CallerRun {
    pub model: Arc<dyn ChatModel>,
    /// The model of the caller's agent, for an agent that names none.
    pub model_name: String,
    pub limits: Limits,
    pub hubs: Arc<AgentHubs>,
    /// The tool call's span: the agent's spans go under it.
    pub span: Span,
}

impl Tool for AgentTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call<'a>(&'a self, arguments: Value, context: ToolContext) -> BoxFuture<'a, Result<String, ToolError>> {
        Box::pin(async move {
            let failed = |reason: String| ToolError::Failed { tool: self.spec.name.clone(), reason };
            let Some(caller) = context.extensions.get::<CallerRun>().cloned() else {
                return Err(failed("an agent used as a tool runs inside another agent's run".into()));
            };
            let input: AgentInput = serde_json::from_value(arguments)
                .map_err(|e| ToolError::InvalidArguments { tool: self.spec.name.clone(), reason: e.to_string() })?;
            let agent = match self.agent.model.is_empty() {
                true => Arc::new(Agent { model: caller.model_name.clone(), ..(*self.agent).clone() }),
                false => self.agent.clone(),
            };
            let runner = Runner {
                mcp: caller.hubs.get(&agent),
                agent,
                model: caller.model,
                limits: caller.limits,
                hubs: caller.hubs,
            };
            let mut out = Output::new(None, new_id("resp"), runner.agent.model.clone());
            let result = runner.run(&ResponsesRequest::user(input.input), &context, &mut out, &caller.span).await;
            for (key, value) in out.response.custom_outputs.take().unwrap_or_default() {
                context.set_custom_output(key, value);
            }
            result.map_err(|e| failed(e.to_string()))?;
            Ok(out.response.output_text())
        })
    }
}

/// The MCP servers of the agents a run reaches besides its first (hand-off targets, agents used as
/// tools), one hub per agent (by name) so their connections and tool lists are reused.
pub(super) struct AgentHubs {
    workspace: Option<WorkspaceAuth>,
    timeouts: McpTimeouts,
    by_agent: Mutex<HashMap<String, Arc<McpHub>>>,
}

impl AgentHubs {
    pub(super) fn new(workspace: Option<WorkspaceAuth>, timeouts: McpTimeouts) -> Self {
        Self { workspace, timeouts, by_agent: Mutex::default() }
    }

    pub(super) fn get(&self, agent: &Agent) -> Arc<McpHub> {
        let mut hubs = self.by_agent.lock().unwrap_or_else(|p| p.into_inner());
        hubs.entry(agent.name.clone())
            .or_insert_with(|| {
                Arc::new(McpHub::new(agent.mcp_servers.clone(), self.workspace.clone(), self.timeouts.clone()))
            })
            .clone()
    }
}
