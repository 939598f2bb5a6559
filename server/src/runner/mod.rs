//! The agent loop: call the model, stream what it says, run the tools it asks for, feed their
//! outputs back, until it answers without tool calls or runs out of turns.
//!
//! Cancellation is by drop: the HTTP layer drops the run when the client goes away, which closes the
//! model connection and drops the running tool futures.

//!
//! - `agent.rs`: the [`Agent`] builder; `agent_loop.rs`: the [`Runner`]; `handoff.rs`: hand-offs;
//!   `agent_tool.rs`: agents used as tools; `scope.rs`: what a run hands its tool calls;
//!   `output.rs`: the stream events and the response; `history.rs`: input items to chat messages.

mod agent;
mod agent_loop;
mod agent_tool;
mod handoff;
pub mod history;
pub mod output;
mod scope;

pub use agent::Agent;
pub use agent_loop::{PlannedCall, RunError, Runner};
pub use handoff::handoff_name;
pub use scope::Limits;
