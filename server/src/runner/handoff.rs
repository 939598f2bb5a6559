//! Hand-offs: the model calls `transfer_to_<agent>` and that agent takes the conversation over
//! (its instructions, tools, MCP servers and approval rules) for the rest of the answer. The runner
//! sees the call by its name ([`Agent::handoff_target`]); the tool itself only says who answers now.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::agent::Agent;
use crate::llm::ToolSpec;
use crate::tools::{Tool, ToolContext, ToolError};

/// The tool name a hand-off to `agent` gets: `transfer_to_<name in snake case>`.
pub fn handoff_name(agent: &Agent) -> String {
    let mut name = String::from("transfer_to_");
    for c in agent.name.chars() {
        if c.is_ascii_alphanumeric() {
            name.push(c.to_ascii_lowercase());
        } else if !name.ends_with('_') {
            name.push('_');
        }
    }
    name.trim_end_matches('_').chars().take(64).collect()
}

impl Agent {
    /// The agent a call of `tool_name` hands the conversation to, if it is one of this agent's
    /// hand-offs.
    pub(super) fn handoff_target(&self, tool_name: &str) -> Option<Arc<Agent>> {
        self.handoffs.iter().find(|agent| handoff_name(agent) == tool_name).cloned()
    }

    /// A `transfer_to_<agent>` tool for each agent this one can hand over to.
    pub(super) fn handoff_tools(&self) -> Vec<Arc<dyn Tool>> {
        self.handoffs.iter().map(|agent| handoff_tool(agent)).collect()
    }
}

fn handoff_tool(agent: &Agent) -> Arc<dyn Tool> {
    let description = match agent.handoff_description.as_deref() {
        Some(d) => format!("Hand the conversation to {}: {d}", agent.name),
        None => format!("Hand the conversation to {}, who takes it from here.", agent.name),
    };
    let spec = ToolSpec {
        name: handoff_name(agent),
        description,
        parameters: json!({"type": "object", "properties": {}, "required": [], "additionalProperties": false}),
        strict: true,
    };
    Arc::new(HandoffTool { spec, output: json!({"assistant": agent.name}).to_string() })
}

struct HandoffTool {
    spec: ToolSpec,
    output: String,
}

impl Tool for HandoffTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }
    fn call<'a>(&'a self, _: Value, _: ToolContext) -> BoxFuture<'a, Result<String, ToolError>> {
        Box::pin(async move { Ok(self.output.clone()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handoff_names_are_snake_case() {
        assert_eq!(handoff_name(&Agent::new("Billing Agent")), "transfer_to_billing_agent");
        assert_eq!(handoff_name(&Agent::new("R&D / Search")), "transfer_to_r_d_search");
    }

    #[test]
    fn a_handoff_is_found_by_its_tool_name() {
        let agent = Agent::new("Triage").handoff(Agent::new("Billing Agent"));
        assert_eq!(agent.handoff_target("transfer_to_billing_agent").unwrap().name, "Billing Agent");
        assert!(agent.handoff_target("transfer_to_nobody").is_none());
    }
}
