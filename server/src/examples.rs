//! Example agents, to try a feature without editing `agent.rs`: `AGENT_EXAMPLE=<name>`.

use crate::runner::Agent;
use crate::tools::builtin;

/// The examples, by name.
pub const NAMES: [&str; 2] = ["handoffs", "weather"];

pub fn by_name(name: &str) -> Result<Agent, String> {
    match name.trim() {
        "handoffs" => Ok(handoffs()),
        // `agent.rs`'s example of a tool of your own.
        "weather" => Ok(crate::agent::weather_agent()),
        other => Err(format!("unknown AGENT_EXAMPLE `{other}`: the examples are {}", NAMES.join(", "))),
    }
}

/// Your agent (`agent.rs`), able to hand billing questions to a Billing agent (`transfer_to_billing`).
pub fn handoffs() -> Agent {
    let billing = Agent::new("Billing")
        .instructions("You handle invoices, payments and refunds. Answer briefly and precisely.")
        .handoff_description("questions about invoices, payments and refunds")
        .tool(builtin::get_current_time());
    crate::agent::agent().handoff(billing)
}
