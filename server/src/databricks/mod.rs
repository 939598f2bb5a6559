//! Databricks connectivity: where the workspace and its credentials come from (environment,
//! `~/.databrickscfg` profiles), the token sources (personal access token, OAuth M2M for the app's
//! service principal, the Databricks CLI's U2M login, the user's forwarded token), and
//! `discover-tools`. Every caller of the workspace (model, MCP, tracing, MLflow, Lakebase) takes its
//! credential from [`auth::WorkspaceAuth`].

pub mod auth;
pub mod cli;
pub mod config;
pub mod discover;
pub mod lakebase;
pub mod oauth;
