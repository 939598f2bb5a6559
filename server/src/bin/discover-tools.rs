//! `discover-tools`: lists what a Databricks workspace offers an agent as tools, with their MCP URLs
//! and the `agent.rs` line for each. Credentials as the server takes them (environment, `.env`, a
//! profile of `~/.databrickscfg`, or the Databricks CLI's login).

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use server::config::DatabricksArgs;
use server::databricks::auth::WorkspaceAuth;
use server::databricks::config::{EnvConfig, WorkspaceConfig};
use server::databricks::discover::{DiscoverOptions, discover};

#[derive(Parser)]
#[command(
    name = "discover-tools",
    about = "List the tools a Databricks workspace offers an agent (UC functions, \
    Vector Search, Genie, MCP apps and connections) with their MCP URLs"
)]
struct Args {
    /// Only this catalog.
    #[arg(long)]
    catalog: Option<String>,
    /// Only this schema (needs --catalog).
    #[arg(long, requires = "catalog")]
    schema: Option<String>,
    /// `text` (a report; `markdown` is the same) or `json` (everything).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Write here instead of standard output.
    #[arg(long)]
    output: Option<PathBuf>,
    /// At most this many results per kind.
    #[arg(long, default_value_t = 100)]
    max_results: usize,
    /// At most this many schemas searched.
    #[arg(long, default_value_t = 25)]
    max_schemas: usize,
    #[command(flatten)]
    databricks: DatabricksArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Markdown,
    Json,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let _ = dotenvy::dotenv();
    let args = Args::parse();
    let env = EnvConfig::from(&args.databricks);
    let home = std::env::var_os("HOME").map(PathBuf::from);
    // Like the Databricks CLI: with nothing set, the [DEFAULT] profile.
    let has_file = env
        .config_file
        .clone()
        .or_else(|| home.as_ref().map(|h| h.join(".databrickscfg")))
        .is_some_and(|f| f.is_file());
    let env = if env.host.is_none() && env.profile.is_none() && has_file {
        EnvConfig { profile: Some("DEFAULT".into()), ..env }
    } else {
        env
    };
    let workspace = match WorkspaceConfig::resolve(&env, home.as_deref()) {
        Ok(config) => WorkspaceAuth::from_config(&config, &args.databricks.cli_path),
        Err(error) => {
            eprintln!("discover-tools: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    let Some(workspace) = workspace else {
        eprintln!(
            "discover-tools: no Databricks workspace: set DATABRICKS_HOST and DATABRICKS_TOKEN, or log in with \
             `databricks auth login` and pass --profile"
        );
        return std::process::ExitCode::from(2);
    };
    let options = DiscoverOptions {
        catalog: args.catalog,
        schema: args.schema,
        max_results: args.max_results,
        max_schemas: args.max_schemas,
    };
    let found = discover(&workspace, &options).await;
    let text = match args.format {
        Format::Json => serde_json::to_string_pretty(&found).expect("serialisable") + "\n",
        Format::Text | Format::Markdown => found.to_text(),
    };
    match &args.output {
        Some(path) => {
            if let Err(e) = std::fs::write(path, text) {
                eprintln!("discover-tools: cannot write {}: {e}", path.display());
                return std::process::ExitCode::from(1);
            }
        }
        None => print!("{text}"),
    }
    eprintln!("{}", found.summary());
    std::process::ExitCode::SUCCESS
}
