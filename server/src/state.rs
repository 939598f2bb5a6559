//! What every handler shares: the settings and the agent runner, built once at start-up.

use std::sync::Arc;

use crate::config::Settings;
use crate::databricks::auth::WorkspaceAuth;
use crate::databricks::lakebase::DatabasePassword;
#[cfg(feature = "embedded-model")]
use crate::llm::local;
use crate::llm::openai::{CallPolicy, OpenAiCompatible};
use crate::llm::{ChatModel, Unconfigured};
use crate::observability::Observability;
use crate::runner::{Agent, Limits, Runner};
use crate::store::ChatStore;
use crate::store::feedback::{FeedbackSink, NoFeedbackSink};
use crate::tools::mcp::McpHub;

/// A database URL without its password, for logs.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub runner: Arc<Runner>,
    /// Chat history; `None` when off, or when its database could not be opened at start-up.
    pub store: Option<ChatStore>,
    /// Background responses (`"background": true`), kept in the chat history's database.
    pub background: Option<crate::background::BackgroundTasks>,
    /// Where votes go besides the chat history (MLflow assessments, with tracing).
    pub feedback: Arc<dyn FeedbackSink>,
    /// Where traces go.
    pub observability: Observability,
    /// The Databricks workspace and the app's credential for it, when one is configured: shared by
    /// the model, MCP servers, tracing and tools (one token cache).
    pub workspace: Option<WorkspaceAuth>,
    /// Each user's stored bytes, for their quota.
    pub storage_usage: Arc<crate::store::usage::StorageUsage>,
}

impl AppState {
    /// The agent on the model the settings choose. Fails on an agent that model APIs would reject.
    pub fn new(settings: Settings, mut agent: Agent) -> Result<Self, String> {
        agent.tools.validate()?;
        if let Some(model) = &settings.model.name {
            agent.model = model.clone();
        }
        if let Some(dir) = &settings.agent.docs_dir {
            let base_url = settings.agent.docs_base_url.clone().unwrap_or_else(|| "/documents/".into());
            agent.tools.add(crate::tools::docs::document_search(dir, base_url));
        }
        agent
            .approval_required
            .extend(settings.agent.require_approval.iter().map(|n| n.trim().to_string()).filter(|n| !n.is_empty()));
        let workspace = WorkspaceAuth::from_args(&settings.databricks).map_err(|e| e.to_string())?;
        if let Some(workspace) = &workspace {
            tracing::info!(host = %workspace.host, auth = workspace.auth_type(), "Databricks workspace");
        }
        let model = model_for(&settings, workspace.as_ref());
        if let Some(served) = model.served_model() {
            agent.model = served;
        }
        let mut mcp_servers = agent.mcp_servers.clone();
        if let Some(path) = &settings.mcp.config {
            mcp_servers.extend(crate::tools::mcp::servers_from_file(path)?);
        }
        let limits = Limits {
            max_turns: settings.agent.max_turns.max(1),
            tool_timeout: settings.agent.tool_timeout(),
            max_tool_output_bytes: settings.limits.max_tool_output_bytes,
            max_model_output_bytes: settings.limits.max_model_output_bytes,
        };
        let mcp = Arc::new(McpHub::new(mcp_servers, workspace.clone(), (&settings.mcp).into()));
        let runner = Runner::new(Arc::new(agent), model, limits, mcp);
        Ok(Self {
            settings: Arc::new(settings),
            runner: Arc::new(runner),
            store: None,
            background: None,
            feedback: Arc::new(NoFeedbackSink),
            observability: Observability::off(),
            workspace,
            storage_usage: Default::default(),
        })
    }

    /// What a background task runs with.
    pub fn engine(&self) -> crate::background::Engine {
        crate::background::Engine {
            runner: self.runner.clone(),
            exporter: self.observability.exporter.clone(),
            workspace: self.workspace.clone(),
        }
    }

    /// Starts tracing as the settings say (see `observability`).
    pub async fn with_tracing(mut self) -> Self {
        let settings = &self.settings;
        // `databricks://<profile>` traces to that profile's workspace, whatever the model uses.
        let workspace = match settings.tracing.databricks_profile() {
            Some(profile) => WorkspaceAuth::from_args(&settings.databricks.only_profile(profile)).unwrap_or_else(|e| {
                tracing::error!(profile, error = %e, "MLFLOW_TRACKING_URI names a Databricks profile that cannot be used");
                None
            }),
            None => self.workspace.clone(),
        };
        self.observability = Observability::start(
            &settings.tracing,
            settings.server.app_name.as_deref(),
            &settings.server.data_dir,
            workspace,
        )
        .await;
        self.feedback = self.observability.feedback_sink();
        self
    }

    /// Opens the chat history database the settings name. If it cannot be opened the app still
    /// runs, with chats kept in the page only (logged, and the page says "Ephemeral").
    pub async fn with_chat_history(mut self) -> Self {
        let Some(mut url) = self.settings.chat_database_url() else {
            if self.settings.chat_history_has_no_database() {
                tracing::warn!(
                    "chats are not kept: this app runs on Databricks Apps, whose files do not survive a restart, and no \
                     database is bound. Bind a Lakebase database resource (databricks.yml) to keep them"
                );
            }
            return self;
        };
        // Lakebase without a password: a short-lived token, renewed before it expires.
        let password = match self.database_password() {
            Ok(password) => password,
            Err(error) => {
                tracing::error!("chat history is off: {error}");
                return self;
            }
        };
        let mut renew_at = None;
        if let Some(password) = &password {
            match password.fetch().await {
                Ok(token) => {
                    url = self.settings.history.postgres_url(Some(token.secret.expose())).unwrap_or(url);
                    renew_at = Some(token.refresh_at);
                    tracing::info!("database password: {}", password.describe());
                }
                Err(error) => {
                    tracing::error!(%error, "chat history is off: no password for the Lakebase database");
                    return self;
                }
            }
        }
        match ChatStore::connect(&url).await {
            Ok(store) => {
                tracing::info!("chat history in {}", redact_url(&url));
                if let (Some(password), Some(renew_at)) = (password, renew_at) {
                    tokio::spawn(renew_database_password(
                        store.clone(),
                        password,
                        renew_at,
                        self.settings.history.clone(),
                    ));
                }
                self.background =
                    Some(crate::background::BackgroundTasks::new(store.clone(), (&self.settings.background).into()));
                self.store = Some(store);
            }
            Err(error) => tracing::error!(%error, "chat history is off: its database could not be opened"),
        }
        self
    }

    /// How the database password is fetched, when `PG*` come without one: a Lakebase credential for
    /// `LAKEBASE_INSTANCE_NAME`, else the app's service principal's token.
    fn database_password(&self) -> Result<Option<DatabasePassword>, String> {
        if !self.settings.history.database_password_needed() {
            return Ok(None);
        }
        if let Some(instance) = &self.settings.history.lakebase_instance_name {
            let workspace = self.workspace.clone().ok_or(
                "LAKEBASE_INSTANCE_NAME is set but there is no Databricks workspace credential to ask for its password",
            )?;
            return Ok(Some(DatabasePassword::InstanceCredential { workspace, instance: instance.clone() }));
        }
        match crate::databricks::oauth::ClientCredentials::of_app(&self.settings.databricks) {
            Some(sp) => Ok(Some(DatabasePassword::ServicePrincipal(Arc::new(sp)))),
            None => Err("PGHOST is set without PGPASSWORD, and there is neither LAKEBASE_INSTANCE_NAME nor the app's \
                         service principal (DATABRICKS_HOST, DATABRICKS_CLIENT_ID, DATABRICKS_CLIENT_SECRET) to get one"
                .into()),
        }
    }
}

/// Keeps new database connections on a valid password: renews it before it expires, and points the
/// pool's connect options at it. A failed renewal is retried; open connections are unaffected.
async fn renew_database_password(
    store: ChatStore,
    password: DatabasePassword,
    mut renew_at: std::time::Instant,
    history: crate::config::HistorySettings,
) {
    loop {
        tokio::time::sleep_until(renew_at.into()).await;
        match password.fetch().await {
            Ok(token) => {
                renew_at = token.refresh_at;
                if let Some(url) = history.postgres_url(Some(token.secret.expose()))
                    && let Err(error) = store.set_connect_url(&url)
                {
                    tracing::warn!(%error, "could not use the renewed database password");
                }
            }
            Err(error) => {
                tracing::warn!(%error, "could not renew the database password; retrying in 30 s");
                renew_at = std::time::Instant::now() + std::time::Duration::from_secs(30);
            }
        }
    }
}

/// The model the settings choose (see [`model_for`]), for callers without an [`AppState`].
pub fn model_from_settings(settings: &Settings) -> Arc<dyn ChatModel> {
    match WorkspaceAuth::from_args(&settings.databricks) {
        Ok(workspace) => model_for(settings, workspace.as_ref()),
        Err(error) => Arc::new(Unconfigured(error.to_string())),
    }
}

/// Databricks Model Serving when a workspace is configured (`DATABRICKS_HOST` or a profile; signed
/// with its credential), else any OpenAI-compatible server when `OPENAI_BASE_URL` is set, else the
/// embedded model.
pub fn model_for(settings: &Settings, workspace: Option<&WorkspaceAuth>) -> Arc<dyn ChatModel> {
    let policy = CallPolicy {
        timeout: settings.model.timeout(),
        idle_timeout: settings.model.idle_timeout(),
        max_retries: settings.model.max_retries,
        retry_base: std::time::Duration::from_millis(settings.model.retry_base_ms),
    };
    if let Some(auth) = workspace {
        return Arc::new(OpenAiCompatible::databricks(auth.clone(), policy));
    }
    if settings.databricks.host.is_some() || settings.databricks.profile.is_some() {
        return Arc::new(Unconfigured(
            "a Databricks workspace is set but there is no credential for it: set DATABRICKS_TOKEN (a personal access \
             token), or DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET (a service principal), or log in with \
             `databricks auth login` (the Databricks CLI on PATH)"
                .into(),
        ));
    }
    if let Some(base_url) = &settings.model.openai_base_url {
        return Arc::new(OpenAiCompatible::openai(base_url, settings.model.openai_api_key.clone(), policy));
    }
    local_model(settings)
}

/// A build without the embedded model (the deployable binary: Databricks Apps call Model Serving).
#[cfg(not(feature = "embedded-model"))]
fn local_model(_: &Settings) -> Arc<dyn ChatModel> {
    Arc::new(Unconfigured(
        "no model endpoint is set and this build has no embedded model: set DATABRICKS_HOST (with DATABRICKS_TOKEN or \
         the app's DATABRICKS_CLIENT_ID/_SECRET), or OPENAI_BASE_URL; see .env.example"
            .into(),
    ))
}

/// The embedded model, when it has been fetched (scripts/fetch-model.sh).
#[cfg(feature = "embedded-model")]
fn local_model(settings: &Settings) -> Arc<dyn ChatModel> {
    let cache = settings.local.cache.clone().unwrap_or_else(local::default_cache);
    let path = local::resolve_model_path(&settings.local.model, &cache);
    if !path.is_file() {
        return Arc::new(Unconfigured(format!(
            "no model endpoint is set and the embedded model is not at {}: run scripts/fetch-model.sh, or set \
             DATABRICKS_HOST and DATABRICKS_TOKEN, or OPENAI_BASE_URL (and OPENAI_API_KEY); see .env.example",
            path.display()
        )));
    }
    let threads = settings.local.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let local_settings = local::LocalSettings {
        threads,
        context_tokens: settings.local.context_tokens,
        queue: settings.local.queue.max(1),
        max_tokens: settings.local.max_tokens,
    };
    match local::LocalModel::load(&path, local_settings) {
        Ok(model) => Arc::new(model),
        Err(e) => Arc::new(Unconfigured(e)),
    }
}
