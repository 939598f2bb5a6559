//! An agent used as a tool of another (`Agent::as_tool`): a tool like any other, whose call runs
//! that agent's own loop (its instructions, tools, MCP servers and approval rules; the caller's
//! model unless it names one) under the tool's span. Its answer's text is the output; what its
//! tools put in `custom_outputs` joins the caller's response.

use std::sync::Arc;

use app::responses::ResponsesRequest;
use futures::future::BoxFuture;
use serde_json::Value;

use super::agent::Agent;
use super::agent_loop::Runner;
use super::output::{Output, new_id};
use super::scope::CallerRun;
use crate::llm::ToolSpec;
use crate::tools::agents::{AgentInput, input_spec};
use crate::tools::{Tool, ToolContext, ToolError};

struct AgentTool {
    spec: ToolSpec,
    agent: Arc<Agent>,
}

impl Agent {
    /// This agent as a tool of another: it gets `{"input": "…"}`, runs its own loop (its own
    /// instructions, tools, MCP servers and approval rules; the caller's model unless it names
    /// one), and its answer is the tool's output.
    pub fn as_tool(self, name: &str, description: &str) -> Arc<dyn Tool> {
        Arc::new(AgentTool { spec: input_spec(name, description), agent: Arc::new(self) })
    }
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
