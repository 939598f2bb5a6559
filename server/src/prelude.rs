//! What an agent definition uses, in one import: `use crate::prelude::*;` (`server::prelude` from
//! another crate).

pub use schemars::JsonSchema;
pub use serde::Deserialize;

pub use crate::evaluate::scorers::Scorer;
pub use crate::runner::Agent;
pub use crate::tools::agents::RemoteAgent;
pub use crate::tools::mcp::McpServer;
pub use crate::tools::{NoArgs, ToolContext, builtin, tool, tool_with_context, with_approval};
