//! What a run hands its tool calls (in `ToolContext::extensions`): what an agent used as a tool
//! runs with. Also the MCP servers of the agents a run reaches, and the bounds on a run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::agent::Agent;
use crate::databricks::auth::WorkspaceAuth;
use crate::llm::ChatModel;
use crate::observability::Span;
use crate::tools::mcp::{McpHub, McpTimeouts};

/// Bounds on one run.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_turns: usize,
    pub tool_timeout: Duration,
    pub max_tool_output_bytes: usize,
    pub max_model_output_bytes: usize,
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
