//! Your agent. This is the one file to edit to make it yours: its instructions, its model, its tools.
//!
//! A tool is an async Rust function of typed arguments; the JSON schema the model sees is derived
//! from the argument type, and the doc comments on its fields become the descriptions. For example:
//!
//! ```ignore
//! /// Arguments of `get_weather`.
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! struct WeatherArgs {
//!     /// City name, e.g. "Amsterdam".
//!     city: String,
//! }
//!
//! // in agent(): .tool(tool("get_weather", "Get the weather for a city.", |args: WeatherArgs| async move {
//! //     Ok::<_, String>(format!("It is sunny in {}.", args.city))
//! // }))
//! ```
//!
//! A tool that fails returns `Err(...)`: the error text goes back to the model, which can retry or
//! explain. Use `tool_with_context` when the tool needs the user, the session or the request headers.
//!
//! MCP servers add their tools too (`cargo discover-tools` lists what your workspace has):
//!
//! ```ignore
//! .mcp_server(McpServer::uc_functions("system", "ai"))          // Databricks' code interpreter
//! .mcp_server(McpServer::genie("<space id>").on_behalf_of_user())
//! .mcp_server(McpServer::http("search", "https://example.com/mcp"))
//! .mcp_server(McpServer::stdio("files", "npx", ["-y", "@modelcontextprotocol/server-filesystem", "."]))
//! ```
//!
//! More: `.require_approval(["delete_*"])` (the user approves those calls), `.handoff(other_agent)`
//! (the model can hand the conversation over), `.tool(other_agent.as_tool("name", "what it does"))`,
//! `.tool(RemoteAgent::app("name", "what it does", "app-name").into_tool())` (an agent served
//! elsewhere). README: "Make the agent yours".

#[allow(unused_imports)]
use crate::tools::agents::RemoteAgent;
#[allow(unused_imports)]
use crate::tools::mcp::McpServer;
#[allow(unused_imports)]
use crate::tools::{NoArgs, tool, tool_with_context};
use crate::{runner::Agent, tools::builtin};

pub fn agent() -> Agent {
    Agent::new("Agent")
        .instructions("You are a helpful assistant.")
        .model("databricks-gpt-5-2")
        .tool(builtin::get_current_time())
}

/// Your own evaluation scorers, run by `agent-evaluate` after the built-in ones. A scorer implements
/// `crate::evaluate::scorers::Scorer` (see `Contains` there for a short example).
pub fn scorers() -> Vec<std::sync::Arc<dyn crate::evaluate::scorers::Scorer>> {
    Vec::new()
}
