//! Your agent. This is the one file to edit to make it yours: its instructions, its model, its
//! tools, its MCP servers. `agent()` is what the app serves; the two functions after it are
//! examples to copy from, compiled with the app (so they stay true), served only when asked for
//! (`AGENT_EXAMPLE=weather`). README: "Make the agent yours".

use crate::prelude::*;

/// The agent this app serves.
pub fn agent() -> Agent {
    Agent::new("Agent")
        .instructions("You are a helpful assistant.")
        .model("databricks-gpt-5-2")
        .tool(builtin::get_current_time())
}

/// Example: a tool of your own. A tool is an async function of typed arguments: the JSON schema
/// the model sees comes from the argument type, the descriptions from its doc comments.
pub fn weather_agent() -> Agent {
    agent().tool(tool("get_weather", "Get the current weather for a city.", get_weather))
}

/// The arguments of `get_weather`.
#[derive(Deserialize, JsonSchema)]
pub struct WeatherArgs {
    /// City name, e.g. "Amsterdam".
    pub city: String,
}

/// `Ok` goes back to the model as the tool's output; `Err` as an error it can retry or explain.
/// (`tool_with_context` gives a tool the user, the session and the request headers too.)
pub async fn get_weather(args: WeatherArgs) -> Result<String, String> {
    match args.city.trim() {
        "" => Err("say which city".into()),
        city => Ok(format!("It is sunny in {city}.")),
    }
}

/// Example: everything else an agent can have. `cargo discover-tools` lists the MCP servers of
/// your Databricks workspace, with the line to add for each.
pub fn connected_agent() -> Agent {
    let billing = Agent::new("Billing")
        .instructions("You handle invoices and refunds.")
        .handoff_description("questions about invoices and refunds");
    let researcher = Agent::new("Researcher").instructions("You look things up and answer in three sentences.");
    agent()
        // Databricks managed MCP servers: UC functions (here: the code interpreter), a Genie space
        // acting as the signed-in user; any MCP server by URL, or a local command.
        .mcp_server(McpServer::uc_functions("system", "ai"))
        .mcp_server(McpServer::genie("<space id>").on_behalf_of_user())
        .mcp_server(McpServer::http("search", "https://example.com/mcp"))
        .mcp_server(McpServer::stdio("files", "npx", ["-y", "@modelcontextprotocol/server-filesystem", "."]))
        // Calls that wait for the user's approval (by name, or every tool of an MCP server).
        .require_approval(["files__*"])
        // Another agent the model can hand the conversation to, one it can call like a tool, and
        // one served elsewhere (a Databricks App).
        .handoff(billing)
        .tool(researcher.as_tool("research", "Looks a question up and answers briefly."))
        .tool(RemoteAgent::app("support", "Answers product support questions.", "support-agent").into_tool())
}

/// Your own evaluation scorers, run by `agent-evaluate` after the built-in ones (see `Contains` in
/// `evaluate/scorers.rs` for a short one).
pub fn scorers() -> Vec<std::sync::Arc<dyn Scorer>> {
    Vec::new()
}
