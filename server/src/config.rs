//! Settings, from command-line flags, the environment and a `.env` file, with the reference's
//! variable names where it has one (`DATABRICKS_*`, `OPENAI_*`, `DATABRICKS_APP_PORT`…).
//!
//! One group per part of the server (`--help` shows them under their headings); the wiring
//! (`state.rs`) hands each part its own group, so no part depends on the whole.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use app::percent_encode;
use clap::{Args, CommandFactory, FromArgMatches, Parser};

pub use crate::secret::Secret;

/// Everything the server can be told. Flags win over the environment, the environment over `.env`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "server",
    version,
    about = "agent-app: an AI agent server with the OpenAI Responses / MLflow ResponsesAgent API and a chat UI"
)]
pub struct Settings {
    #[command(flatten)]
    pub server: ServerSettings,
    #[command(flatten)]
    pub databricks: DatabricksArgs,
    #[command(flatten)]
    pub model: ModelSettings,
    #[command(flatten)]
    pub local: LocalModelSettings,
    #[command(flatten)]
    pub agent: AgentSettings,
    #[command(flatten)]
    pub mcp: McpSettings,
    #[command(flatten)]
    pub limits: LimitSettings,
    #[command(flatten)]
    pub history: HistorySettings,
    #[command(flatten)]
    pub tracing: TracingSettings,
    #[command(flatten)]
    pub background: BackgroundSettings,

    /// Running on Databricks Apps (the platform set `DATABRICKS_APP_NAME` and `DATABRICKS_APP_PORT`):
    /// local files do not survive a restart or a redeploy there.
    #[arg(skip)]
    pub on_databricks_apps: bool,
}

/// The Databricks workspace and its credentials, as the Databricks SDKs and CLI read them (the
/// environment, then a profile of `~/.databrickscfg`). The server, `quickstart` and
/// `discover-tools` take the same group.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Databricks")]
pub struct DatabricksArgs {
    /// Databricks workspace URL; the model is then called at <host>/serving-endpoints.
    #[arg(id = "databricks_host", long = "databricks-host", env = "DATABRICKS_HOST")]
    pub host: Option<String>,

    /// Databricks personal access token for the model endpoint.
    #[arg(id = "databricks_token", long = "databricks-token", env = "DATABRICKS_TOKEN", hide_env_values = true)]
    pub token: Option<Secret>,

    /// OAuth client id of the app's service principal (Databricks Apps set it).
    #[arg(id = "databricks_client_id", long = "databricks-client-id", env = "DATABRICKS_CLIENT_ID")]
    pub client_id: Option<String>,

    /// OAuth client secret of the app's service principal (Databricks Apps set it).
    #[arg(
        id = "databricks_client_secret",
        long = "databricks-client-secret",
        env = "DATABRICKS_CLIENT_SECRET",
        hide_env_values = true
    )]
    pub client_secret: Option<Secret>,

    /// A profile of the Databricks config file (`databricks auth login` writes them) to take the
    /// workspace and its credentials from; `[DEFAULT]` is used when nothing else is configured.
    #[arg(
        id = "databricks_config_profile",
        long = "profile",
        alias = "databricks-config-profile",
        env = "DATABRICKS_CONFIG_PROFILE"
    )]
    pub profile: Option<String>,

    /// The Databricks config file (default `~/.databrickscfg`).
    #[arg(id = "databricks_config_file", long = "databricks-config-file", env = "DATABRICKS_CONFIG_FILE")]
    pub config_file: Option<PathBuf>,

    /// Force one credential: `pat`, `oauth-m2m` or `databricks-cli` (default: the first available).
    #[arg(id = "databricks_auth_type", long = "databricks-auth-type", env = "DATABRICKS_AUTH_TYPE")]
    pub auth_type: Option<String>,

    /// The Databricks CLI, run as `databricks auth token` when there is no token or service principal.
    #[arg(
        id = "databricks_cli_path",
        long = "databricks-cli-path",
        env = "DATABRICKS_CLI_PATH",
        default_value = "databricks"
    )]
    pub cli_path: String,
}

/// The HTTP server and the page it serves.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Server")]
pub struct ServerSettings {
    /// Port to listen on (Databricks Apps sets DATABRICKS_APP_PORT).
    #[arg(long, env = "DATABRICKS_APP_PORT", default_value_t = 8000)]
    pub port: u16,

    /// Address to listen on.
    #[arg(long, env = "AGENT_HOST", default_value = "0.0.0.0")]
    pub host: IpAddr,

    /// Worker threads for the async runtime (default: one per core).
    #[arg(long, env = "AGENT_WORKERS")]
    pub workers: Option<usize>,

    /// The app's name, reported by /agent/info (Databricks Apps sets it).
    #[arg(long, env = "DATABRICKS_APP_NAME")]
    pub app_name: Option<String>,

    /// Where the embedded defaults keep their files (the SQLite chat history, local traces).
    #[arg(long, env = "AGENT_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Folder with the built site (pkg/, favicon…); default: target/site, else site/ next to the binary.
    #[arg(long, env = "LEPTOS_SITE_ROOT")]
    pub site_root: Option<PathBuf>,

    /// The chat page's greeting (the reference's variable).
    #[arg(long, env = "CHAT_GREETING", default_value = app::config::DEFAULT_GREETING)]
    pub chat_greeting: String,

    /// Browser origins other than the app's own allowed to call the API's state-changing routes,
    /// comma-separated (`https://portal.example.com`). Cross-site browser requests are refused
    /// otherwise; API clients, which send no `Origin`, are not affected.
    #[arg(long, env = "AGENT_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Seconds between SSE keep-alive comments while a stream is otherwise silent.
    #[arg(long, env = "AGENT_SSE_KEEPALIVE_SECONDS", default_value_t = 15.0)]
    pub sse_keepalive_seconds: f64,

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
}

/// Which model endpoint the agent calls, and how.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Model endpoint")]
pub struct ModelSettings {
    /// Model (serving endpoint) name; overrides the one in the agent definition.
    #[arg(id = "model", long = "model", env = "AGENT_MODEL")]
    pub name: Option<String>,

    /// Any OpenAI-compatible chat-completions server (used when DATABRICKS_HOST is not set).
    #[arg(long, env = "OPENAI_BASE_URL")]
    pub openai_base_url: Option<String>,

    /// API key for OPENAI_BASE_URL.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub openai_api_key: Option<Secret>,

    /// Seconds to wait for the model endpoint to start answering.
    #[arg(
        id = "model_timeout_seconds",
        long = "model-timeout-seconds",
        env = "MODEL_TIMEOUT_SECONDS",
        default_value_t = 120.0
    )]
    pub timeout_seconds: f64,

    /// Seconds a model stream may stay silent before it is given up.
    #[arg(
        id = "model_idle_timeout_seconds",
        long = "model-idle-timeout-seconds",
        env = "MODEL_STREAM_IDLE_TIMEOUT_SECONDS",
        default_value_t = 120.0
    )]
    pub idle_timeout_seconds: f64,

    /// Retries of a model call that failed before answering (429, 5xx, connection errors).
    #[arg(id = "model_max_retries", long = "model-max-retries", env = "MODEL_MAX_RETRIES", default_value_t = 3)]
    pub max_retries: u32,

    /// First retry delay in milliseconds; doubles each time (a Retry-After header wins).
    #[arg(
        id = "model_retry_base_ms",
        long = "model-retry-base-ms",
        env = "MODEL_RETRY_BASE_MS",
        default_value_t = 500
    )]
    pub retry_base_ms: u64,
}

/// The embedded model, used when no endpoint is set.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Embedded model")]
pub struct LocalModelSettings {
    /// The embedded model, used when neither DATABRICKS_HOST nor OPENAI_BASE_URL is set:
    /// qwen2.5-coder-0.5b (default, calls tools), smollm2-135m (small, chat only), or a GGUF path.
    #[arg(id = "local_model", long = "local-model", env = "AGENT_LOCAL_MODEL", default_value = "qwen2.5-coder-0.5b")]
    pub model: String,

    /// Where fetched models are kept (default: ~/.cache/agent-app/models).
    #[arg(id = "model_cache", long = "model-cache", env = "AGENT_MODEL_CACHE")]
    pub cache: Option<PathBuf>,

    /// Threads for the embedded model (default: one per core).
    #[arg(id = "local_threads", long = "local-threads", env = "AGENT_LOCAL_THREADS")]
    pub threads: Option<usize>,

    /// Context window of the embedded model, in tokens (prompt and answer).
    #[arg(
        id = "local_context_tokens",
        long = "local-context-tokens",
        env = "AGENT_LOCAL_CONTEXT_TOKENS",
        default_value_t = 8192
    )]
    pub context_tokens: u32,

    /// Most tokens the embedded model writes per call, unless the request asks for fewer.
    #[arg(id = "local_max_tokens", long = "local-max-tokens", env = "AGENT_LOCAL_MAX_TOKENS", default_value_t = 1024)]
    pub max_tokens: usize,

    /// Requests that may wait for the embedded model; beyond that, 503.
    #[arg(id = "local_queue", long = "local-queue", env = "AGENT_LOCAL_QUEUE", default_value_t = 16)]
    pub queue: usize,
}

/// What the agent of agent.rs gets besides its own definition.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Agent")]
pub struct AgentSettings {
    /// Run an example agent instead of `agent.rs` (`handoffs`: yours, plus a Billing agent it can
    /// hand over to).
    #[arg(id = "agent_example", long = "agent-example", env = "AGENT_EXAMPLE")]
    pub example: Option<String>,

    /// A folder of documents (Markdown, text, HTML) the agent can search: adds the `search_documents`
    /// retriever tool, whose answers cite their sources.
    #[arg(long, env = "AGENT_DOCS_DIR")]
    pub docs_dir: Option<PathBuf>,

    /// Where the documents of AGENT_DOCS_DIR are read by people (their citations link there): a
    /// file's path is appended. Default: the app serves them itself at `/documents/`.
    #[arg(long, env = "AGENT_DOCS_BASE_URL")]
    pub docs_base_url: Option<String>,

    /// Tools that wait for the user's approval before they run, comma-separated names (`server__*`
    /// for all tools of an MCP server, `*` for every tool), besides those `agent.rs` marks.
    #[arg(long, env = "AGENT_REQUIRE_APPROVAL", value_delimiter = ',')]
    pub require_approval: Vec<String>,

    /// Model calls per request before the agent gives up (the reference's max_turns).
    #[arg(long, env = "AGENT_MAX_TURNS", default_value_t = 10)]
    pub max_turns: usize,

    /// Seconds one tool call may take before its output becomes a timeout error.
    #[arg(long, env = "AGENT_TOOL_TIMEOUT_SECONDS", default_value_t = 300.0)]
    pub tool_timeout_seconds: f64,
}

/// MCP servers from a file, and how long they may take.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "MCP servers")]
pub struct McpSettings {
    /// A JSON file of MCP servers (`{"mcpServers": {"name": {"url": …} | {"command": …}}}`), added to
    /// those of `agent.rs`.
    #[arg(id = "mcp_config", long = "mcp-config", env = "AGENT_MCP_CONFIG")]
    pub config: Option<PathBuf>,

    /// Seconds to connect to an MCP server and list its tools before it is left out of a turn.
    #[arg(
        id = "mcp_connect_timeout_seconds",
        long = "mcp-connect-timeout-seconds",
        env = "AGENT_MCP_CONNECT_TIMEOUT_SECONDS",
        default_value_t = 20.0
    )]
    pub connect_timeout_seconds: f64,

    /// Seconds an MCP tool call may take.
    #[arg(
        id = "mcp_read_timeout_seconds",
        long = "mcp-read-timeout-seconds",
        env = "AGENT_MCP_READ_TIMEOUT_SECONDS",
        default_value_t = 300.0
    )]
    pub read_timeout_seconds: f64,

    /// Seconds an MCP server's tool list is reused before it is listed again.
    #[arg(
        id = "mcp_tools_ttl_seconds",
        long = "mcp-tools-ttl-seconds",
        env = "AGENT_MCP_TOOLS_TTL_SECONDS",
        default_value_t = 300.0
    )]
    pub tools_ttl_seconds: f64,
}

/// What one request or one user may take.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Limits")]
pub struct LimitSettings {
    /// Requests a minute each user may send to the agent (`/invocations`, `/responses`, the chat);
    /// 0: no limit. The user is the one the Apps proxy forwards (`X-Forwarded-Email`).
    #[arg(long, env = "AGENT_RATE_LIMIT_PER_MINUTE", default_value_t = 0)]
    pub rate_limit_per_minute: u32,

    /// Requests a user may send at once before the per-minute rate applies (default: a minute's worth).
    #[arg(long, env = "AGENT_RATE_LIMIT_BURST")]
    pub rate_limit_burst: Option<u32>,

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
}

/// Where chats are kept.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Chat history")]
pub struct HistorySettings {
    /// Keep chats (history sidebar, votes). Off: chats live in the page only ("Ephemeral").
    #[arg(id = "chat_history", long = "chat-history", env = "AGENT_CHAT_HISTORY", default_value_t = true, action = clap::ArgAction::Set)]
    pub enabled: bool,

    /// Name each new chat by asking the model for a title (else its first message is its title).
    #[arg(id = "chat_titles", long = "chat-titles", env = "AGENT_CHAT_TITLES", default_value_t = true, action = clap::ArgAction::Set)]
    pub titles: bool,

    /// The chat history database: `postgres://…` or `sqlite://…`. Default: the `PG*` variables of a
    /// Databricks Apps database resource if set, else SQLite in the data folder.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<Secret>,

    /// A Lakebase database instance: the database password (with `PG*` and no `PGPASSWORD`) is then
    /// a credential for it from the Lakebase credential API, signed with the workspace credential
    /// (the app's service principal on Databricks Apps, your login locally).
    #[arg(long, env = "LAKEBASE_INSTANCE_NAME")]
    pub lakebase_instance_name: Option<String>,

    /// The Lakebase database resource's connection, as Databricks Apps set it (`PG*`): the chat
    /// history goes there when DATABASE_URL is not set.
    #[arg(long = "pg-host", env = "PGHOST")]
    pub pg_host: Option<String>,

    #[arg(long = "pg-port", env = "PGPORT")]
    pub pg_port: Option<String>,

    #[arg(long = "pg-database", env = "PGDATABASE")]
    pub pg_database: Option<String>,

    #[arg(long = "pg-user", env = "PGUSER")]
    pub pg_user: Option<String>,

    /// Without it (and with LAKEBASE_INSTANCE_NAME or the app's service principal) the password is
    /// a short-lived credential, renewed before it expires.
    #[arg(long = "pg-password", env = "PGPASSWORD", hide_env_values = true)]
    pub pg_password: Option<Secret>,

    #[arg(long = "pg-sslmode", env = "PGSSLMODE")]
    pub pg_sslmode: Option<String>,
}

/// Where traces go.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Tracing")]
pub struct TracingSettings {
    /// Record every request as an MLflow trace (spans of the agent, model calls and tools).
    #[arg(id = "tracing", long = "tracing", env = "AGENT_TRACING", default_value_t = true, action = clap::ArgAction::Set)]
    pub enabled: bool,

    /// Where traces go: an MLflow server (`http://…`), `databricks` (the workspace of DATABRICKS_HOST
    /// or the profile) or `databricks://<profile>` (that profile's workspace). Unset: the local trace
    /// store, shown at /traces.
    #[arg(long, env = "MLFLOW_TRACKING_URI")]
    pub mlflow_tracking_uri: Option<String>,

    /// The MLflow experiment traces go to (Databricks Apps set it from the experiment resource).
    #[arg(long, env = "MLFLOW_EXPERIMENT_ID")]
    pub mlflow_experiment_id: Option<String>,

    /// The MLflow experiment by name, created if missing (when MLFLOW_EXPERIMENT_ID is not set).
    #[arg(long, env = "MLFLOW_EXPERIMENT_NAME")]
    pub mlflow_experiment_name: Option<String>,

    /// An MLflow server's bearer token.
    #[arg(long, env = "MLFLOW_TRACKING_TOKEN", hide_env_values = true)]
    pub mlflow_tracking_token: Option<Secret>,

    /// An MLflow server's user (basic auth, with MLFLOW_TRACKING_PASSWORD).
    #[arg(long, env = "MLFLOW_TRACKING_USERNAME")]
    pub mlflow_tracking_username: Option<String>,

    #[arg(long, env = "MLFLOW_TRACKING_PASSWORD", hide_env_values = true)]
    pub mlflow_tracking_password: Option<Secret>,

    /// An OpenTelemetry collector's OTLP/HTTP traces URL: spans go there (protobuf) instead of to
    /// MLflow, as MLflow itself does when it is set.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")]
    pub otel_traces_endpoint: Option<String>,

    /// Headers for the collector: `key=value` pairs, comma-separated, values percent-encoded.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_TRACES_HEADERS", hide_env_values = true)]
    pub otel_traces_headers: Option<Secret>,

    /// Databricks: `<catalog>.<schema>` of the Unity Catalog trace location the experiment uses.
    #[arg(long, env = "MLFLOW_TRACING_DESTINATION")]
    pub mlflow_tracing_destination: Option<String>,

    /// Finished traces that may wait for export; beyond that they are dropped (and counted).
    #[arg(long, env = "AGENT_TRACE_QUEUE", default_value_t = 1024)]
    pub trace_queue: usize,

    /// Traces the local store keeps per user (each user's newest).
    #[arg(long, env = "AGENT_LOCAL_TRACES", default_value_t = 1000)]
    pub local_traces: usize,
}

impl DatabricksArgs {
    /// Only `profile` of the config file (for `MLFLOW_TRACKING_URI=databricks://<profile>`): the
    /// host and credentials set for the model are not this workspace's.
    pub fn only_profile(&self, profile: &str) -> Self {
        Self {
            host: None,
            token: None,
            client_id: None,
            client_secret: None,
            profile: Some(profile.to_string()),
            config_file: self.config_file.clone(),
            auth_type: None,
            cli_path: self.cli_path.clone(),
        }
    }
}

impl TracingSettings {
    /// `<profile>` of `MLFLOW_TRACKING_URI=databricks://<profile>`.
    pub fn databricks_profile(&self) -> Option<&str> {
        let uri = self.mlflow_tracking_uri.as_deref()?.trim();
        uri.strip_prefix("databricks://").filter(|p| !p.is_empty())
    }
}

/// Background responses ("background": true) and the chat page's saved answers.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Background responses")]
pub struct BackgroundSettings {
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
    #[arg(
        id = "background_lease_seconds",
        long = "background-lease-seconds",
        env = "AGENT_BACKGROUND_LEASE_SECONDS",
        default_value_t = 15.0
    )]
    pub lease_seconds: f64,

    /// Background responses are kept (to poll, resume and replay) for this many hours after they end.
    #[arg(
        id = "background_retention_hours",
        long = "background-retention-hours",
        env = "AGENT_BACKGROUND_RETENTION_HOURS",
        default_value_t = 720.0
    )]
    pub retention_hours: f64,
}

impl Default for Settings {
    /// The defaults, ignoring the environment (for tests and embedding).
    fn default() -> Self {
        let command = Settings::command().mut_args(|arg| arg.env(None::<&str>));
        let matches = command.try_get_matches_from(["server"]).expect("defaults parse");
        Settings::from_arg_matches(&matches).expect("defaults parse")
    }
}

impl Default for DatabricksArgs {
    /// Nothing configured (the CLI looked up on `PATH` as `databricks`).
    fn default() -> Self {
        Settings::default().databricks
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

    /// The chat history database URL: `DATABASE_URL`, else one built from the `PG*` variables
    /// (`PGHOST`, `PGPORT`, `PGDATABASE`, `PGUSER`, `PGPASSWORD`, `PGSSLMODE`, as Databricks Apps set
    /// them for a Lakebase resource), else SQLite under the data folder. `None` with history off,
    /// and on Databricks Apps without a database: a SQLite file there is lost at every restart and
    /// redeploy, so the page says "Ephemeral" rather than show a history it would lose.
    pub fn chat_database_url(&self) -> Option<String> {
        let history = &self.history;
        if !history.enabled {
            return None;
        }
        if let Some(url) = &history.database_url {
            return Some(url.expose().to_string());
        }
        if let Some(url) = history.postgres_url(None) {
            return Some(url);
        }
        if self.on_databricks_apps {
            return None;
        }
        Some(format!("sqlite://{}?mode=rwc", self.server.data_dir.join("agent-app.db").display()))
    }

    /// Chat history is asked for but has nowhere durable to go (Databricks Apps, no database bound).
    pub fn chat_history_has_no_database(&self) -> bool {
        self.history.enabled && self.chat_database_url().is_none()
    }
}

impl ServerSettings {
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

impl ModelSettings {
    pub fn timeout(&self) -> Duration {
        secs(self.timeout_seconds)
    }

    pub fn idle_timeout(&self) -> Duration {
        secs(self.idle_timeout_seconds)
    }
}

impl AgentSettings {
    pub fn tool_timeout(&self) -> Duration {
        secs(self.tool_timeout_seconds)
    }
}

impl McpSettings {
    pub fn connect_timeout(&self) -> Duration {
        secs(self.connect_timeout_seconds)
    }

    pub fn read_timeout(&self) -> Duration {
        secs(self.read_timeout_seconds)
    }

    pub fn tools_ttl(&self) -> Duration {
        secs(self.tools_ttl_seconds)
    }
}

impl BackgroundSettings {
    /// Longest a task may run.
    pub fn task_timeout(&self) -> Duration {
        secs(self.task_timeout_seconds)
    }

    pub fn poll_interval(&self) -> Duration {
        secs(self.poll_interval_seconds).max(Duration::from_millis(10))
    }

    pub fn lease(&self) -> Duration {
        secs(self.lease_seconds).max(Duration::from_millis(300))
    }

    pub fn retention(&self) -> Duration {
        secs(self.retention_hours * 3600.0)
    }
}

impl HistorySettings {
    /// A Lakebase database resource without a password: the server fetches the password (and renews
    /// it before it expires).
    pub fn database_password_needed(&self) -> bool {
        self.enabled && self.database_url.is_none() && self.pg_host().is_some() && self.pg_password.is_none()
    }

    /// The PostgreSQL URL the `PG*` variables describe, with `password` instead of `PGPASSWORD`
    /// when given. `None` without `PGHOST`.
    pub fn postgres_url(&self, password: Option<&str>) -> Option<String> {
        let host = self.pg_host()?;
        let given = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
        let user = given(&self.pg_user).map(|u| percent_encode(&u)).unwrap_or_default();
        let password = password
            .map(str::to_string)
            .or_else(|| self.pg_password.as_ref().map(|p| p.expose().to_string()).filter(|p| !p.is_empty()));
        let password = password.map(|p| format!(":{}", percent_encode(&p))).unwrap_or_default();
        let at = if user.is_empty() { String::new() } else { format!("{user}{password}@") };
        let port = given(&self.pg_port).unwrap_or_else(|| "5432".into());
        let database = given(&self.pg_database).unwrap_or_else(|| "databricks_postgres".into());
        let sslmode = given(&self.pg_sslmode).unwrap_or_else(|| "require".into());
        Some(format!("postgres://{at}{host}:{port}/{database}?sslmode={sslmode}"))
    }

    fn pg_host(&self) -> Option<&str> {
        self.pg_host.as_deref().filter(|h| !h.is_empty())
    }
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
        let mut s = Settings::default();
        s.databricks.token = Some(Secret::new("dapi-very-secret"));
        s.model.openai_api_key = Some(Secret::new("sk-also-secret"));
        s.history.pg_password = Some(Secret::new("pg-secret"));
        let printed = format!("{s:?}");
        assert!(!printed.contains("very-secret") && !printed.contains("also-secret") && !printed.contains("pg-secret"));
    }

    #[test]
    fn flags_parse_and_defaults_hold() {
        let s = Settings::try_parse_from(["server", "--port", "9123", "--max-turns", "3", "--databricks-host", "h"])
            .unwrap();
        assert_eq!(s.server.port, 9123);
        assert_eq!(s.agent.max_turns, 3);
        assert_eq!(s.databricks.host.as_deref(), Some("h"));
        let d = Settings::default();
        assert_eq!(d.server.port, 8000);
        assert_eq!(d.agent.max_turns, 10);
        assert_eq!(d.agent.tool_timeout(), Duration::from_secs(300));
        assert_eq!(d.databricks.cli_path, "databricks");
    }

    #[test]
    fn the_pg_variables_make_a_url() {
        let mut h = Settings::default().history;
        h.pg_host = Some("db.example".into());
        h.pg_user = Some("a@b".into());
        h.pg_database = Some("chats".into());
        assert!(h.database_password_needed());
        assert_eq!(
            h.postgres_url(Some("t/k")).unwrap(),
            "postgres://a%40b:t%2Fk@db.example:5432/chats?sslmode=require"
        );
        h.pg_host = Some(String::new());
        assert_eq!(h.postgres_url(None), None);
    }
}
