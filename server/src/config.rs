//! Settings, from command-line flags, the environment and a `.env` file, with the reference's
//! variable names where it has one (`DATABRICKS_*`, `OPENAI_*`, `DATABRICKS_APP_PORT`…).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use app::percent_encode;

use clap::{CommandFactory, FromArgMatches, Parser};

/// A credential: usable, but never printed (`Debug` shows `***`).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_string()))
    }
}

/// Everything the server can be told. Flags win over the environment, the environment over `.env`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "server",
    version,
    about = "agent-app: an AI agent server with the OpenAI Responses / MLflow ResponsesAgent API and a chat UI"
)]
pub struct Settings {
    /// Port to listen on (Databricks Apps sets DATABRICKS_APP_PORT).
    #[arg(long, env = "DATABRICKS_APP_PORT", default_value_t = 8000)]
    pub port: u16,

    /// Address to listen on.
    #[arg(long, env = "AGENT_HOST", default_value = "0.0.0.0")]
    pub host: IpAddr,

    /// Worker threads for the async runtime (default: one per core).
    #[arg(long, env = "AGENT_WORKERS")]
    pub workers: Option<usize>,

    /// Databricks workspace URL; the model is then called at <host>/serving-endpoints.
    #[arg(long, env = "DATABRICKS_HOST")]
    pub databricks_host: Option<String>,

    /// Databricks personal access token for the model endpoint.
    #[arg(long, env = "DATABRICKS_TOKEN", hide_env_values = true)]
    pub databricks_token: Option<Secret>,

    /// OAuth client id of the app's service principal (Databricks Apps set it).
    #[arg(long, env = "DATABRICKS_CLIENT_ID")]
    pub databricks_client_id: Option<String>,

    /// OAuth client secret of the app's service principal (Databricks Apps set it).
    #[arg(long, env = "DATABRICKS_CLIENT_SECRET", hide_env_values = true)]
    pub databricks_client_secret: Option<Secret>,

    /// A profile of the Databricks config file (`databricks auth login` writes them) to take the
    /// workspace and its credentials from; `[DEFAULT]` is used when nothing else is configured.
    #[arg(long, env = "DATABRICKS_CONFIG_PROFILE")]
    pub databricks_config_profile: Option<String>,

    /// The Databricks config file (default `~/.databrickscfg`).
    #[arg(long, env = "DATABRICKS_CONFIG_FILE")]
    pub databricks_config_file: Option<PathBuf>,

    /// Force one credential: `pat`, `oauth-m2m` or `databricks-cli` (default: the first available).
    #[arg(long, env = "DATABRICKS_AUTH_TYPE")]
    pub databricks_auth_type: Option<String>,

    /// The Databricks CLI, run as `databricks auth token` when there is no token or service principal.
    #[arg(long, env = "DATABRICKS_CLI_PATH", default_value = "databricks")]
    pub databricks_cli_path: String,

    /// Any OpenAI-compatible chat-completions server (used when DATABRICKS_HOST is not set).
    #[arg(long, env = "OPENAI_BASE_URL")]
    pub openai_base_url: Option<String>,

    /// API key for OPENAI_BASE_URL.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub openai_api_key: Option<Secret>,

    /// The embedded model, used when neither DATABRICKS_HOST nor OPENAI_BASE_URL is set:
    /// qwen2.5-coder-0.5b (default, calls tools), smollm2-135m (small, chat only), or a GGUF path.
    #[arg(long, env = "AGENT_LOCAL_MODEL", default_value = "qwen2.5-coder-0.5b")]
    pub local_model: String,

    /// Where fetched models are kept (default: ~/.cache/agent-app/models).
    #[arg(long, env = "AGENT_MODEL_CACHE")]
    pub model_cache: Option<PathBuf>,

    /// Threads for the embedded model (default: one per core).
    #[arg(long, env = "AGENT_LOCAL_THREADS")]
    pub local_threads: Option<usize>,

    /// Context window of the embedded model, in tokens (prompt and answer).
    #[arg(long, env = "AGENT_LOCAL_CONTEXT_TOKENS", default_value_t = 8192)]
    pub local_context_tokens: u32,

    /// Most tokens the embedded model writes per call, unless the request asks for fewer.
    #[arg(long, env = "AGENT_LOCAL_MAX_TOKENS", default_value_t = 1024)]
    pub local_max_tokens: usize,

    /// Requests that may wait for the embedded model; beyond that, 503.
    #[arg(long, env = "AGENT_LOCAL_QUEUE", default_value_t = 16)]
    pub local_queue: usize,

    /// Model (serving endpoint) name; overrides the one in the agent definition.
    #[arg(long, env = "AGENT_MODEL")]
    pub model: Option<String>,

    /// The app's name, reported by /agent/info (Databricks Apps sets it).
    #[arg(long, env = "DATABRICKS_APP_NAME")]
    pub app_name: Option<String>,

    /// Seconds to wait for the model endpoint to start answering.
    #[arg(long, env = "MODEL_TIMEOUT_SECONDS", default_value_t = 120.0)]
    pub model_timeout_seconds: f64,

    /// Seconds a model stream may stay silent before it is given up.
    #[arg(long, env = "MODEL_STREAM_IDLE_TIMEOUT_SECONDS", default_value_t = 120.0)]
    pub model_idle_timeout_seconds: f64,

    /// Retries of a model call that failed before answering (429, 5xx, connection errors).
    #[arg(long, env = "MODEL_MAX_RETRIES", default_value_t = 3)]
    pub model_max_retries: u32,

    /// First retry delay in milliseconds; doubles each time (a Retry-After header wins).
    #[arg(long, env = "MODEL_RETRY_BASE_MS", default_value_t = 500)]
    pub model_retry_base_ms: u64,

    /// Seconds one tool call may take before its output becomes a timeout error.
    #[arg(long, env = "AGENT_TOOL_TIMEOUT_SECONDS", default_value_t = 300.0)]
    pub tool_timeout_seconds: f64,

    /// A JSON file of MCP servers (`{"mcpServers": {"name": {"url": …} | {"command": …}}}`), added to
    /// those of `agent.rs`.
    #[arg(long, env = "AGENT_MCP_CONFIG")]
    pub mcp_config: Option<PathBuf>,

    /// Seconds to connect to an MCP server and list its tools before it is left out of a turn.
    #[arg(long, env = "AGENT_MCP_CONNECT_TIMEOUT_SECONDS", default_value_t = 20.0)]
    pub mcp_connect_timeout_seconds: f64,

    /// Seconds an MCP tool call may take.
    #[arg(long, env = "AGENT_MCP_READ_TIMEOUT_SECONDS", default_value_t = 300.0)]
    pub mcp_read_timeout_seconds: f64,

    /// Seconds an MCP server's tool list is reused before it is listed again.
    #[arg(long, env = "AGENT_MCP_TOOLS_TTL_SECONDS", default_value_t = 300.0)]
    pub mcp_tools_ttl_seconds: f64,

    /// Requests a minute each user may send to the agent (`/invocations`, `/responses`, the chat);
    /// 0: no limit. The user is the one the Apps proxy forwards (`X-Forwarded-Email`).
    #[arg(long, env = "AGENT_RATE_LIMIT_PER_MINUTE", default_value_t = 0)]
    pub rate_limit_per_minute: u32,

    /// Browser origins other than the app's own allowed to call the API's state-changing routes,
    /// comma-separated (`https://portal.example.com`). Cross-site browser requests are refused
    /// otherwise; API clients, which send no `Origin`, are not affected.
    #[arg(long, env = "AGENT_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Requests a user may send at once before the per-minute rate applies (default: a minute's worth).
    #[arg(long, env = "AGENT_RATE_LIMIT_BURST")]
    pub rate_limit_burst: Option<u32>,

    /// Run an example agent instead of `agent.rs` (`handoffs`: yours, plus a Billing agent it can
    /// hand over to).
    #[arg(long, env = "AGENT_EXAMPLE")]
    pub agent_example: Option<String>,

    /// A folder of documents (Markdown, text, HTML) the agent can search: adds the `search_documents`
    /// retriever tool, whose answers cite their sources.
    #[arg(long, env = "AGENT_DOCS_DIR")]
    pub docs_dir: Option<PathBuf>,

    /// Where the documents of AGENT_DOCS_DIR are read by people (their citations link there): a
    /// file's path is appended. Default: the app serves them itself at `/docs/`.
    #[arg(long, env = "AGENT_DOCS_BASE_URL")]
    pub docs_base_url: Option<String>,

    /// Tools that wait for the user's approval before they run, comma-separated names (`server__*`
    /// for all tools of an MCP server, `*` for every tool), besides those `agent.rs` marks.
    #[arg(long, env = "AGENT_REQUIRE_APPROVAL", value_delimiter = ',')]
    pub require_approval: Vec<String>,

    /// Model calls per request before the agent gives up (the reference's max_turns).
    #[arg(long, env = "AGENT_MAX_TURNS", default_value_t = 10)]
    pub max_turns: usize,

    /// Seconds a client may take to send a request's head; also how long a kept-alive connection
    /// may sit idle. Slow or silent clients are disconnected after it.
    #[arg(long, env = "AGENT_HEADER_TIMEOUT_SECONDS", default_value_t = 30.0)]
    pub header_timeout_seconds: f64,

    /// Seconds a client may take to send a request's body, whole.
    #[arg(long, env = "AGENT_BODY_TIMEOUT_SECONDS", default_value_t = 60.0)]
    pub body_timeout_seconds: f64,

    /// Connections open at once; more are closed as they arrive (default: three quarters of the
    /// open-file limit, which the server first raises to its maximum; at most 10,000).
    #[arg(long, env = "AGENT_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Request bytes one user may have in flight at once; more is refused (429) before it is read.
    #[arg(long, env = "AGENT_MAX_INFLIGHT_BYTES_PER_USER", default_value_t = 32 * 1024 * 1024)]
    pub max_inflight_bytes_per_user: usize,

    /// Background responses (API tasks and the chat page's saved answers) one user may have running
    /// at once; more is refused (429). 0: no cap.
    #[arg(long, env = "AGENT_MAX_BACKGROUND_TASKS_PER_USER", default_value_t = 8)]
    pub max_background_tasks_per_user: usize,

    /// Bytes of chats and background responses one user may keep; past it, new ones are refused
    /// (413) until they delete some. 0: no cap.
    #[arg(long, env = "AGENT_MAX_STORED_BYTES_PER_USER", default_value_t = 256 * 1024 * 1024)]
    pub max_stored_bytes_per_user: u64,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "AGENT_MAX_REQUEST_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub max_request_bytes: usize,

    /// Most input items accepted in one request.
    #[arg(long, env = "AGENT_MAX_INPUT_ITEMS", default_value_t = 2000)]
    pub max_input_items: usize,

    /// Tool output longer than this many bytes is cut before it goes to the model.
    #[arg(long, env = "AGENT_MAX_TOOL_OUTPUT_BYTES", default_value_t = 256 * 1024)]
    pub max_tool_output_bytes: usize,

    /// A model answer (one call: text, reasoning and tool arguments) longer than this many bytes is
    /// stopped and reported as an error: a runaway model cannot fill memory or the client.
    #[arg(long, env = "AGENT_MAX_MODEL_OUTPUT_BYTES", default_value_t = 1024 * 1024)]
    pub max_model_output_bytes: usize,

    /// Seconds between SSE keep-alive comments while a stream is otherwise silent.
    #[arg(long, env = "AGENT_SSE_KEEPALIVE_SECONDS", default_value_t = 15.0)]
    pub sse_keepalive_seconds: f64,

    /// The chat page's greeting (the reference's variable).
    #[arg(long, env = "CHAT_GREETING", default_value = app::config::DEFAULT_GREETING)]
    pub chat_greeting: String,

    /// Keep chats (history sidebar, votes). Off: chats live in the page only ("Ephemeral").
    #[arg(long, env = "AGENT_CHAT_HISTORY", default_value_t = true, action = clap::ArgAction::Set)]
    pub chat_history: bool,

    /// Name each new chat by asking the model for a title (else its first message is its title).
    #[arg(long, env = "AGENT_CHAT_TITLES", default_value_t = true, action = clap::ArgAction::Set)]
    pub chat_titles: bool,

    /// The chat history database: `postgres://…` or `sqlite://…`. Default: the `PG*` variables of a
    /// Databricks Apps database resource if set, else SQLite in the data folder.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<Secret>,

    /// A Lakebase database instance: the database password (with `PG*` and no `PGPASSWORD`) is then
    /// a credential for it from the Lakebase credential API, signed with the workspace credential
    /// (the app's service principal on Databricks Apps, your login locally).
    #[arg(long, env = "LAKEBASE_INSTANCE_NAME")]
    pub lakebase_instance_name: Option<String>,

    /// Where the embedded defaults keep their files (the SQLite chat history, local traces).
    #[arg(long, env = "AGENT_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Record every request as an MLflow trace (spans of the agent, model calls and tools).
    #[arg(long, env = "AGENT_TRACING", default_value_t = true, action = clap::ArgAction::Set)]
    pub tracing: bool,

    /// Where traces go: an MLflow server (`http://…`, with MLFLOW_EXPERIMENT_ID), or `databricks`
    /// (the workspace of DATABRICKS_HOST). Unset: the local trace store, shown at /traces.
    #[arg(long, env = "MLFLOW_TRACKING_URI")]
    pub mlflow_tracking_uri: Option<String>,

    /// The MLflow experiment traces go to (Databricks Apps set it from the experiment resource).
    #[arg(long, env = "MLFLOW_EXPERIMENT_ID")]
    pub mlflow_experiment_id: Option<String>,

    /// Databricks: `<catalog>.<schema>` of the Unity Catalog trace location the experiment uses.
    #[arg(long, env = "MLFLOW_TRACING_DESTINATION")]
    pub mlflow_tracing_destination: Option<String>,

    /// Finished traces that may wait for export; beyond that they are dropped (and counted).
    #[arg(long, env = "AGENT_TRACE_QUEUE", default_value_t = 1024)]
    pub trace_queue: usize,

    /// Traces the local store keeps per user (each user's newest).
    #[arg(long, env = "AGENT_LOCAL_TRACES", default_value_t = 1000)]
    pub local_traces: usize,

    /// Background responses (`"background": true`): longest a task may run before it is stopped
    /// and marked failed.
    #[arg(long, env = "TASK_TIMEOUT_SECONDS", default_value_t = 3600.0)]
    pub task_timeout_seconds: f64,

    /// Background responses: how often a reader checks the database for events of a task that
    /// another process runs.
    #[arg(long, env = "POLL_INTERVAL_SECONDS", default_value_t = 1.0)]
    pub poll_interval_seconds: f64,

    /// Background responses: a task whose process has not shown signs of life for this long (it
    /// stopped or crashed) is taken over and resumed by another process, or by this one after a
    /// restart.
    #[arg(long, env = "AGENT_BACKGROUND_LEASE_SECONDS", default_value_t = 15.0)]
    pub background_lease_seconds: f64,

    /// Background responses are kept (to poll, resume and replay) for this many hours after they end.
    #[arg(long, env = "AGENT_BACKGROUND_RETENTION_HOURS", default_value_t = 720.0)]
    pub background_retention_hours: f64,

    /// Folder with the built site (pkg/, favicon…); default: target/site, else site/ next to the binary.
    #[arg(long, env = "LEPTOS_SITE_ROOT")]
    pub site_root: Option<PathBuf>,

    /// Running on Databricks Apps (the platform set `DATABRICKS_APP_NAME` and `DATABRICKS_APP_PORT`):
    /// local files do not survive a restart or a redeploy there.
    #[arg(skip)]
    pub on_databricks_apps: bool,
}

impl Default for Settings {
    /// The defaults, ignoring the environment (for tests and embedding).
    fn default() -> Self {
        let command = Settings::command().mut_args(|arg| arg.env(None::<&str>));
        let matches = command.try_get_matches_from(["server"]).expect("defaults parse");
        Settings::from_arg_matches(&matches).expect("defaults parse")
    }
}

impl Settings {
    /// Loads `.env` (without overriding variables already set), then flags and environment.
    pub fn load() -> Self {
        // The shell's variables win: a value exported on purpose should not be silently replaced.
        let _ = dotenvy::dotenv();
        let mut settings = Settings::parse();
        settings.on_databricks_apps =
            env_var("DATABRICKS_APP_NAME").is_some() && env_var("DATABRICKS_APP_PORT").is_some();
        settings
    }

    pub fn model_timeout(&self) -> Duration {
        secs(self.model_timeout_seconds)
    }

    pub fn model_idle_timeout(&self) -> Duration {
        secs(self.model_idle_timeout_seconds)
    }

    pub fn tool_timeout(&self) -> Duration {
        secs(self.tool_timeout_seconds)
    }

    pub fn mcp_timeouts(&self) -> crate::tools::mcp::McpTimeouts {
        crate::tools::mcp::McpTimeouts {
            connect: secs(self.mcp_connect_timeout_seconds),
            read: secs(self.mcp_read_timeout_seconds),
            tools_ttl: secs(self.mcp_tools_ttl_seconds),
        }
    }

    pub fn background_timings(&self) -> crate::background::Timings {
        crate::background::Timings {
            task_timeout: secs(self.task_timeout_seconds),
            poll_interval: secs(self.poll_interval_seconds).max(Duration::from_millis(10)),
            lease: secs(self.background_lease_seconds).max(Duration::from_millis(300)),
            retention: secs(self.background_retention_hours * 3600.0),
        }
    }

    pub fn sse_keepalive(&self) -> Duration {
        secs(self.sse_keepalive_seconds)
    }

    /// Where the built site is: the setting, else `target/site` under the working directory, else
    /// `site/` next to the binary (the deployed layout).
    pub fn resolve_site_root(&self) -> PathBuf {
        if let Some(root) = &self.site_root {
            return root.clone();
        }
        let dev = PathBuf::from("target/site");
        if dev.is_dir() {
            return dev;
        }
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join("site")))
            .filter(|p| p.is_dir())
            .unwrap_or(dev)
    }
}

impl Settings {
    /// The chat history database URL: `DATABASE_URL`, else one built from the `PG*` variables
    /// (`PGHOST`, `PGPORT`, `PGDATABASE`, `PGUSER`, `PGPASSWORD`, `PGSSLMODE`, as Databricks Apps set
    /// them for a Lakebase resource), else SQLite under the data folder. `None` with history off,
    /// and on Databricks Apps without a database: a SQLite file there is lost at every restart and
    /// redeploy, so the page says "Ephemeral" rather than show a history it would lose.
    pub fn chat_database_url(&self) -> Option<String> {
        if !self.chat_history {
            return None;
        }
        if let Some(url) = &self.database_url {
            return Some(url.expose().to_string());
        }
        if let Some(url) = postgres_url_from_env(None) {
            return Some(url);
        }
        if self.on_databricks_apps {
            return None;
        }
        Some(format!("sqlite://{}?mode=rwc", self.data_dir.join("agent-app.db").display()))
    }

    /// Chat history is asked for but has nowhere durable to go (Databricks Apps, no database bound).
    pub fn chat_history_has_no_database(&self) -> bool {
        self.chat_history && self.chat_database_url().is_none()
    }

    /// A Lakebase database resource without a password: the server fetches the password (and renews
    /// it before it expires) as [`crate::databricks::lakebase::DatabasePassword`] says.
    pub fn database_password_needed(&self) -> bool {
        self.chat_history
            && self.database_url.is_none()
            && env_var("PGHOST").is_some()
            && env_var("PGPASSWORD").is_none()
    }

    /// The app's service principal, when its client credentials are set (Databricks Apps set them).
    pub fn service_principal(&self) -> Option<crate::databricks::oauth::ClientCredentials> {
        let (host, id, secret) = (
            self.databricks_host.as_ref()?,
            self.databricks_client_id.as_ref()?,
            self.databricks_client_secret.as_ref()?,
        );
        Some(crate::databricks::oauth::ClientCredentials::new(host, id, secret.clone()))
    }
}

/// The PostgreSQL URL the `PG*` variables describe (`PGHOST`, `PGPORT`, `PGDATABASE`, `PGUSER`,
/// `PGPASSWORD`, `PGSSLMODE`, as Databricks Apps set them for a Lakebase resource), with `password`
/// instead of `PGPASSWORD` when given. `None` without `PGHOST`.
pub fn postgres_url_from_env(password: Option<&str>) -> Option<String> {
    let host = env_var("PGHOST")?;
    let user = env_var("PGUSER").map(|u| percent_encode(&u)).unwrap_or_default();
    let password = password.map(str::to_string).or_else(|| env_var("PGPASSWORD"));
    let password = password.map(|p| format!(":{}", percent_encode(&p))).unwrap_or_default();
    let at = if user.is_empty() { String::new() } else { format!("{user}{password}@") };
    let port = env_var("PGPORT").unwrap_or_else(|| "5432".into());
    let database = env_var("PGDATABASE").unwrap_or_else(|| "databricks_postgres".into());
    let sslmode = env_var("PGSSLMODE").unwrap_or_else(|| "require".into());
    Some(format!("postgres://{at}{host}:{port}/{database}?sslmode={sslmode}"))
}

/// An environment variable, empty counting as unset (as the `PG*` variables are read).
fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Seconds as a duration; nonsense (negative, NaN) becomes zero rather than a panic.
fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_not_printed() {
        let s = Settings {
            databricks_token: Some(Secret::new("dapi-very-secret")),
            openai_api_key: Some(Secret::new("sk-also-secret")),
            ..Settings::default()
        };
        let printed = format!("{s:?}");
        assert!(!printed.contains("very-secret") && !printed.contains("also-secret"), "{printed}");
    }

    #[test]
    fn flags_parse_and_defaults_hold() {
        let s = Settings::try_parse_from(["server", "--port", "9123", "--max-turns", "3"]).unwrap();
        assert_eq!(s.port, 9123);
        assert_eq!(s.max_turns, 3);
        let d = Settings::default();
        assert_eq!(d.port, 8000);
        assert_eq!(d.max_turns, 10);
        assert_eq!(d.tool_timeout(), Duration::from_secs(300));
    }
}
