//! The server's integration tests, as one binary (one link of the server instead of one per file):
//! each module drives the real server over HTTP, most of them in front of the scripted fake model
//! (`server/fake-model`). Run one module with `cargo test -p server --test it <module>::`.

#[allow(dead_code)]
mod common;

mod agent_loop;
mod api;
mod approvals;
mod apps_runtime;
mod background;
mod binary;
mod chat_templates;
mod chat_ui;
mod databricks_auth;
mod discover_tools;
mod evaluate;
mod faults;
mod history;
mod lakebase;
mod local_model;
mod mcp;
mod multi_agent;
mod openapi;
mod quickstart;
mod retrieval;
mod traces;
