//! `quickstart`: sets a checkout up to run (see `server::quickstart`). Interactive on a terminal;
//! `--yes` (or no terminal) takes the flags and defaults without asking.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches};
use server::config::DatabricksArgs;
use server::databricks::config::EnvConfig;
use server::quickstart::{QuickstartOptions, check_prerequisites, profiles, run};

#[derive(clap::Parser)]
#[command(name = "quickstart", about = "Set agent-app up: prerequisites, .env, Databricks profile, MLflow experiment")]
struct Args {
    /// The app's name in databricks.yml.
    #[arg(long)]
    app_name: Option<String>,
    /// The MLflow experiment (default /Users/<you>/agents-on-apps).
    #[arg(long)]
    experiment: Option<String>,
    /// A Lakebase database instance to keep the chats in (created when there is none of that name):
    /// the bundle binds it, and local runs use it too.
    #[arg(long)]
    lakebase: Option<String>,
    /// The database in the Lakebase instance.
    #[arg(long, default_value = "databricks_postgres")]
    lakebase_database: String,
    /// Set up the embedded default only (no workspace).
    #[arg(long)]
    offline: bool,
    /// Ask nothing: take the flags and defaults.
    #[arg(long, short)]
    yes: bool,
    /// The checkout to set up.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    #[command(flatten)]
    databricks: DatabricksArgs,
}

fn ask(question: &str, default: &str) -> String {
    print!("{question} [{default}]: ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    let answer = answer.trim();
    if answer.is_empty() { default.to_string() } else { answer.to_string() }
}

fn mark(ok: bool) -> &'static str {
    if ok { "✓" } else { "✗" }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    // `--host` as well as the server's `--databricks-host` (quickstart has no host of its own).
    let command = Args::command().mut_arg("databricks_host", |arg| arg.visible_alias("host"));
    let mut args = match Args::from_arg_matches(&command.get_matches()) {
        Ok(args) => args,
        Err(error) => error.exit(),
    };
    println!("agent-app quickstart\n\nPrerequisites:");
    for step in check_prerequisites() {
        println!("  {} {}", mark(step.ok), step.what);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let config_file = args.databricks.config_file.clone().or_else(|| home.as_ref().map(|h| h.join(".databrickscfg")));
    let interactive = !args.yes && std::io::stdin().is_terminal();
    if interactive && !args.offline && args.databricks.profile.is_none() && args.databricks.host.is_none() {
        let found = config_file.as_deref().map(profiles).unwrap_or_default();
        if found.is_empty() {
            println!("\nNo Databricks profiles found (`databricks auth login --host <workspace>` makes one).");
            args.offline = ask("Set up the offline embedded default? (y/n)", "y").starts_with('y');
        } else {
            println!("\nDatabricks profiles: {}", found.join(", "));
            let choice = ask("Profile to use (or `offline`)", &found[0]);
            if choice == "offline" { args.offline = true } else { args.databricks.profile = Some(choice) }
        }
    }
    if interactive && !args.offline && args.app_name.is_none() {
        args.app_name = Some(ask("App name in databricks.yml", "agent-app"));
    }
    if interactive && !args.offline && args.lakebase.is_none() {
        let answer =
            ask("Lakebase instance to keep the chats in (created if missing; `none` to skip)", "agent-app-chats");
        if answer != "none" {
            args.lakebase = Some(answer);
        }
    }
    let options = QuickstartOptions {
        dir: args.dir,
        profile: args.databricks.profile.clone(),
        host: args.databricks.host.clone(),
        app_name: args.app_name,
        experiment: args.experiment,
        lakebase: args.lakebase,
        lakebase_database: Some(args.lakebase_database),
        offline: args.offline,
        // The profile and host are chosen above; the rest as the environment says.
        env: EnvConfig { host: None, profile: None, ..EnvConfig::from(&args.databricks) },
        cli_path: args.databricks.cli_path,
        home,
    };
    println!("\nSetup:");
    match run(&options).await {
        Ok(steps) => {
            for step in steps {
                println!("  {} {}", mark(step.ok), step.what);
            }
            println!(
                "\nNext: scripts/run.sh (chat at http://localhost:8000). To deploy: scripts/preflight.sh, \
                 scripts/build-deploy.sh, databricks bundle deploy -t dev, databricks bundle run agent_app -t dev \
                 (README.md, \"Deploy to Databricks Apps\")."
            );
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("  ✗ {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
