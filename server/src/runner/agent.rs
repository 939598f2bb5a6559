//! An agent: who it is, what model it uses, what tools and MCP servers it has, which calls wait for
//! the user's approval, and which agents it can hand the conversation to. Built in `agent.rs`.

use std::sync::Arc;

use crate::tools::mcp::McpServer;
use crate::tools::{Tool, ToolSet};

/// An agent: who it is, what model it uses, what tools it has. Built in `agent.rs`.
#[derive(Clone)]
pub struct Agent {
    pub name: String,
    pub instructions: String,
    pub model: String,
    pub tools: ToolSet,
    /// MCP servers whose tools the agent also gets, per request.
    pub mcp_servers: Vec<McpServer>,
    /// Tools that must be approved by the user before they run, by name (`AGENT_REQUIRE_APPROVAL`
    /// adds to it); `server__*` matches every tool of an MCP server, `*` every tool.
    pub approval_required: Vec<String>,
    /// Agents this one can hand the conversation to (`transfer_to_<name>` tools).
    pub handoffs: Vec<Arc<Agent>>,
    /// When to hand over to this agent, told to the agent handing over.
    pub handoff_description: Option<String>,
    /// OAuth scopes the signed-in user's token must grant for this agent's on-behalf-of tools
    /// (`ToolContext::user_workspace`); MCP servers acting as the user add their own.
    pub user_scopes: Vec<String>,
}

impl Agent {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            instructions: String::new(),
            model: String::new(),
            tools: ToolSet::default(),
            mcp_servers: Vec::new(),
            approval_required: Vec::new(),
            handoffs: Vec::new(),
            handoff_description: None,
            user_scopes: Vec::new(),
        }
    }

    /// Scopes the user's token must grant for this agent's tools that act as the user (the app's
    /// `user_api_scopes`); the chat page names any the signed-in user's token lacks.
    pub fn user_scopes<S: Into<String>>(mut self, scopes: impl IntoIterator<Item = S>) -> Self {
        self.user_scopes.extend(scopes.into_iter().map(Into::into));
        self
    }

    /// Every scope this agent, the agents it hands over to or uses as tools' MCP servers need
    /// from the user's token, sorted, once each.
    pub fn required_user_scopes(&self, extra_servers: &[McpServer]) -> Vec<String> {
        let mut scopes = std::collections::BTreeSet::new();
        let mut seen = std::collections::HashSet::new();
        let mut stack: Vec<&Agent> = vec![self];
        while let Some(agent) = stack.pop() {
            if !seen.insert(agent as *const Agent) {
                continue;
            }
            scopes.extend(agent.user_scopes.iter().cloned());
            for server in &agent.mcp_servers {
                scopes.extend(server.required_user_scopes());
            }
            stack.extend(agent.handoffs.iter().map(|a| a.as_ref()));
        }
        for server in extra_servers {
            scopes.extend(server.required_user_scopes());
        }
        scopes.into_iter().collect()
    }

    /// Lets this agent hand the conversation to `agent`, which then answers with its own
    /// instructions and tools (the model calls `transfer_to_<agent name>`).
    pub fn handoff(mut self, agent: Agent) -> Self {
        self.handoffs.push(Arc::new(agent));
        self
    }

    /// When another agent should hand over to this one.
    pub fn handoff_description(mut self, description: impl Into<String>) -> Self {
        self.handoff_description = Some(description.into());
        self
    }

    /// Whether the conversation can move between agents (items then name their agent).
    pub(super) fn has_handoffs(&self) -> bool {
        !self.handoffs.is_empty()
    }

    /// This agent or one it hands over to (at any depth) by name.
    pub(super) fn find(self: &Arc<Self>, name: &str) -> Option<Arc<Agent>> {
        let mut seen = std::collections::HashSet::new();
        let mut stack = vec![self.clone()];
        while let Some(agent) = stack.pop() {
            if agent.name == name {
                return Some(agent);
            }
            if seen.insert(Arc::as_ptr(&agent)) {
                stack.extend(agent.handoffs.iter().cloned());
            }
        }
        None
    }

    /// Tools (by name, or `prefix*`) that ask the user before they run, like [`crate::tools::with_approval`]
    /// does for one tool: MCP tools too (`"files__*"`).
    pub fn require_approval<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.approval_required.extend(names.into_iter().map(Into::into));
        self
    }

    /// Whether a call of `name` waits for the user's approval.
    pub fn needs_approval(&self, name: &str, tool: &dyn Tool) -> bool {
        let qualified = tool.qualified_name();
        let names = [Some(name), qualified.as_deref()];
        tool.requires_approval()
            || self.approval_required.iter().any(|pattern| {
                names.iter().flatten().any(|name| match pattern.strip_suffix('*') {
                    Some(prefix) => name.starts_with(prefix),
                    None => pattern == name,
                })
            })
    }

    /// The system prompt.
    pub fn instructions(mut self, instructions: impl Into<String>) -> Self {
        self.instructions = instructions.into();
        self
    }

    /// The model or serving-endpoint name (`AGENT_MODEL` overrides it).
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = model.into();
        self
    }

    pub fn tool(mut self, tool: Arc<dyn Tool>) -> Self {
        self.tools.add(tool);
        self
    }

    /// An MCP server (see [`McpServer`]: any URL, a local command, or a Databricks managed server).
    pub fn mcp_server(mut self, server: McpServer) -> Self {
        self.mcp_servers.push(server);
        self
    }
}
