//! MCP servers as tool sources, through the official Rust SDK (`rmcp`): remote servers over
//! Streamable HTTP (Databricks managed servers, `mcp-*` apps, any URL) and local processes over stdio.
//!
//! Per request, as the reference does, each server is checked: an HTTP server gets a new session
//! (initialize) signed as the app or as the user; a stdio server's process is reused while it lives.
//! Tool lists are cached for a while. A server that cannot be reached in time is left out of the
//! turn with a warning; the agent answers with the other tools and is told what is missing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

use super::{Tool, ToolContext, ToolError};
use crate::databricks::auth::WorkspaceAuth;
use crate::llm::ToolSpec;
use crate::secret::Secret;

/// One MCP server the agent may use. Made in `agent.rs` (see the constructors) or read from the
/// `AGENT_MCP_CONFIG` file.
#[derive(Clone, Debug)]
pub struct McpServer {
    pub name: String,
    transport: Transport,
    auth: McpAuth,
    headers: Vec<(String, String)>,
    /// OAuth scopes the user's token needs when the server acts as the user (None: inferred).
    user_scopes: Option<Vec<String>>,
}

#[derive(Clone, Debug)]
enum Transport {
    Http(Endpoint),
    Stdio { command: String, args: Vec<String>, env: Vec<(String, String)> },
}

#[derive(Clone, Debug)]
enum Endpoint {
    Url(String),
    /// A path on the workspace (`/api/2.0/mcp/…`): Databricks managed MCP servers.
    Workspace(String),
    /// A Databricks App serving MCP at `<its url>/mcp` (custom `mcp-*` servers).
    App(String),
}

/// Whose credential an HTTP server gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum McpAuth {
    /// The app's (its service principal, token or CLI login) for workspace URLs; none elsewhere.
    Auto,
    /// The app's workspace credential, whatever the URL.
    App,
    /// The signed-in user's token (`x-forwarded-access-token`, on-behalf-of): the server acts as them.
    User,
    None,
}

impl McpServer {
    /// A server over Streamable HTTP at `url`.
    pub fn http(name: &str, url: &str) -> Self {
        Self::new(name, Transport::Http(Endpoint::Url(url.trim().to_string())))
    }

    /// A local process speaking MCP on stdin/stdout, started once and restarted if it dies.
    pub fn stdio<I, S>(name: &str, command: &str, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let args = args.into_iter().map(Into::into).collect();
        Self::new(name, Transport::Stdio { command: command.to_string(), args, env: Vec::new() })
    }

    /// Unity Catalog functions of a schema as tools (`/api/2.0/mcp/functions/{catalog}/{schema}`).
    /// `("system", "ai")` is the built-in code interpreter.
    pub fn uc_functions(catalog: &str, schema: &str) -> Self {
        Self::workspace(&format!("{catalog}-{schema}"), &format!("functions/{catalog}/{schema}"))
    }

    /// One Unity Catalog function as a tool.
    pub fn uc_function(catalog: &str, schema: &str, function: &str) -> Self {
        Self::workspace(function, &format!("functions/{catalog}/{schema}/{function}"))
    }

    /// Vector Search indexes of a schema (or one index) as retrieval tools.
    pub fn vector_search(catalog: &str, schema: &str, index: Option<&str>) -> Self {
        match index {
            Some(index) => Self::workspace(index, &format!("vector-search/{catalog}/{schema}/{index}")),
            None => Self::workspace(&format!("{catalog}-{schema}"), &format!("vector-search/{catalog}/{schema}")),
        }
    }

    /// A Genie space (natural-language questions over its tables).
    pub fn genie(space_id: &str) -> Self {
        Self::workspace(&format!("genie-{space_id}"), &format!("genie/{space_id}"))
    }

    /// An external MCP server behind a Unity Catalog connection.
    pub fn external(connection: &str) -> Self {
        Self::workspace(connection, &format!("external/{connection}"))
    }

    /// Databricks SQL.
    pub fn sql() -> Self {
        Self::workspace("sql", "sql")
    }

    /// A custom MCP server deployed as a Databricks App (conventionally named `mcp-*`): its URL is
    /// looked up, and `/mcp` on it is called with the app's credential.
    pub fn app(app_name: &str) -> Self {
        Self::new(app_name, Transport::Http(Endpoint::App(app_name.to_string())))
    }

    fn workspace(name: &str, path: &str) -> Self {
        Self::new(name, Transport::Http(Endpoint::Workspace(format!("/api/2.0/mcp/{path}"))))
    }

    fn new(name: &str, transport: Transport) -> Self {
        Self { name: name.to_string(), transport, auth: McpAuth::Auto, headers: Vec::new(), user_scopes: None }
    }

    /// The OAuth scopes the signed-in user's token must grant for this server to act as them (the
    /// app's `user_api_scopes`). Databricks managed servers have theirs inferred from the URL.
    pub fn user_scopes<S: Into<String>>(mut self, scopes: impl IntoIterator<Item = S>) -> Self {
        self.user_scopes = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// The scopes the user's token needs: none unless the server acts as the user; then those given,
    /// else the managed server's own (Databricks' managed MCP documentation: `genie`, `ai-search`,
    /// `sql`, `unity-catalog`).
    pub fn required_user_scopes(&self) -> Vec<String> {
        if self.auth != McpAuth::User {
            return Vec::new();
        }
        if let Some(scopes) = &self.user_scopes {
            return scopes.clone();
        }
        let Transport::Http(Endpoint::Workspace(path)) = &self.transport else { return Vec::new() };
        let kind = path.trim_start_matches("/api/2.0/mcp/").split('/').next().unwrap_or_default();
        let scope = match kind {
            "genie" => "genie",
            "vector-search" | "ai-search" => "ai-search",
            "sql" => "sql",
            "functions" => "unity-catalog",
            _ => return Vec::new(),
        };
        vec![scope.to_string()]
    }

    /// Calls go out as the signed-in user (their `x-forwarded-access-token`), not as the app.
    pub fn on_behalf_of_user(mut self) -> Self {
        self.auth = McpAuth::User;
        self
    }

    /// Whose credential the server gets (see [`McpAuth`]).
    pub fn auth(mut self, auth: McpAuth) -> Self {
        self.auth = auth;
        self
    }

    /// A header sent on every HTTP request (e.g. an API key of a third-party server).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// An environment variable for a stdio server's process.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        if let Transport::Stdio { env, .. } = &mut self.transport {
            env.push((name.to_string(), value.to_string()));
        }
        self
    }

    /// Renames the server (it prefixes its tools' names when they clash with others).
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Where it is, for logs and `/agent/info`, which every user can read: a URL without its
    /// credentials and query, a process without its arguments (either may carry a secret).
    pub fn location(&self) -> String {
        match &self.transport {
            Transport::Http(Endpoint::Url(url)) => redact_url(url),
            Transport::Http(Endpoint::Workspace(path)) => format!("<workspace>{path}"),
            Transport::Http(Endpoint::App(app)) => format!("<app {app}>/mcp"),
            Transport::Stdio { command, args, .. } => {
                let program = command.rsplit('/').next().unwrap_or(command);
                format!("stdio: {program} ({} argument{})", args.len(), if args.len() == 1 { "" } else { "s" })
            }
        }
    }
}

/// `scheme://host[:port]/path`: no user, password, query or fragment.
fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = rest.split_once('/').map(|(a, p)| (a, format!("/{p}"))).unwrap_or((rest, String::new()));
    let host = authority.rsplit('@').next().unwrap_or(authority);
    if scheme.is_empty() { format!("{host}{path}") } else { format!("{scheme}://{host}{path}") }
}

// ---------------------------------------------------------------------------------------------
// The configuration file
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigFile {
    mcp_servers: HashMap<String, ServerEntryConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerEntryConfig {
    url: Option<String>,
    /// A managed server's path under `/api/2.0/mcp/` (`genie/<space>`, `functions/<c>/<s>`, …).
    databricks: Option<String>,
    app: Option<String>,
    command: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: HashMap<String, String>,
    #[serde(default)]
    headers: HashMap<String, String>,
    auth: Option<String>,
    /// With `"auth": "user"`: the OAuth scopes the user's token must grant (managed servers: inferred).
    scopes: Option<Vec<String>>,
}

/// Reads MCP servers from a JSON file in the common `mcpServers` shape. `${VAR}` in any value (url,
/// command, args, headers, env) is replaced by the variable (so secrets stay out of the file).
pub fn servers_from_file(path: &std::path::Path) -> Result<Vec<McpServer>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    servers_from_json(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn servers_from_json(text: &str) -> Result<Vec<McpServer>, String> {
    let file: ConfigFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut names: Vec<_> = file.mcp_servers.into_iter().collect();
    names.sort_by(|a, b| a.0.cmp(&b.0));
    names
        .into_iter()
        .map(|(name, entry)| {
            let kinds = [entry.url.is_some(), entry.databricks.is_some(), entry.app.is_some(), entry.command.is_some()];
            if kinds.iter().filter(|k| **k).count() != 1 {
                return Err(format!("server `{name}`: give exactly one of url, databricks, app or command"));
            }
            // `${VAR}` works in every value, so that tokens and hosts stay out of the file.
            let mut server = if let Some(url) = &entry.url {
                McpServer::http(&name, &expand_env(url)?)
            } else if let Some(path) = &entry.databricks {
                let path = expand_env(path)?;
                McpServer::workspace(&name, path.trim_start_matches('/').trim_start_matches("api/2.0/mcp/"))
            } else if let Some(app) = &entry.app {
                McpServer::app(&expand_env(app)?).named(&name)
            } else {
                let command = expand_env(entry.command.as_deref().unwrap_or_default())?;
                let args = entry.args.iter().map(|a| expand_env(a)).collect::<Result<Vec<_>, _>>()?;
                let mut server = McpServer::stdio(&name, &command, args);
                for (key, value) in &entry.env {
                    server = server.env(key, &expand_env(value)?);
                }
                server
            };
            for (key, value) in &entry.headers {
                server = server.header(key, &expand_env(value)?);
            }
            server.auth = match entry.auth.as_deref() {
                None | Some("auto") => McpAuth::Auto,
                Some("app") => McpAuth::App,
                Some("user") => McpAuth::User,
                Some("none") => McpAuth::None,
                Some(other) => {
                    return Err(format!("server `{name}`: auth `{other}` is not one of auto, app, user, none"));
                }
            };
            server.user_scopes = entry.scopes.clone();
            Ok(server)
        })
        .collect()
}

fn expand_env(value: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').ok_or_else(|| format!("unclosed ${{ in `{value}`"))? + start;
        let name = &rest[start + 2..end];
        out.push_str(&std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))?);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Connecting, per request
// ---------------------------------------------------------------------------------------------

type Client = RunningService<RoleClient, ClientConfig>;

#[derive(Debug, Clone)]
pub struct McpTimeouts {
    /// Connect + initialize + list tools.
    pub connect: Duration,
    /// One tool call.
    pub read: Duration,
    /// How long a tool list is reused.
    pub tools_ttl: Duration,
}

impl From<&crate::config::McpSettings> for McpTimeouts {
    fn from(settings: &crate::config::McpSettings) -> Self {
        Self { connect: settings.connect_timeout(), read: settings.read_timeout(), tools_ttl: settings.tools_ttl() }
    }
}

impl Default for McpTimeouts {
    fn default() -> Self {
        Self { connect: Duration::from_secs(20), read: Duration::from_secs(300), tools_ttl: Duration::from_secs(300) }
    }
}

/// The agent's MCP servers, and what is cached about them.
#[derive(Default)]
pub struct McpHub {
    servers: Vec<ServerState>,
    workspace: Option<WorkspaceAuth>,
    timeouts: McpTimeouts,
    http: reqwest::Client,
}

/// Tool lists by identity (`app`, or the user they were listed for), with when they were listed.
type ToolLists = HashMap<String, (Instant, Arc<Vec<rmcp::model::Tool>>)>;

struct ServerState {
    server: McpServer,
    tools: Mutex<ToolLists>,
    /// The running process of a stdio server.
    process: Mutex<Option<Arc<Client>>>,
    /// A Databricks App's URL, looked up once.
    app_url: tokio::sync::OnceCell<String>,
}

/// A server left out of a turn, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Unavailable {
    pub server: String,
    pub reason: String,
}

/// The MCP tools of one request, and the servers that could not give theirs.
#[derive(Default)]
pub struct RequestTools {
    pub tools: Vec<Arc<dyn Tool>>,
    pub unavailable: Vec<Unavailable>,
}

#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error("{0}")]
    Auth(String),
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("could not list its tools: {0}")]
    List(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

impl McpHub {
    pub fn timeouts(&self) -> &McpTimeouts {
        &self.timeouts
    }

    pub fn workspace(&self) -> Option<&WorkspaceAuth> {
        self.workspace.as_ref()
    }

    pub fn new(servers: Vec<McpServer>, workspace: Option<WorkspaceAuth>, timeouts: McpTimeouts) -> Self {
        let servers = servers
            .into_iter()
            .map(|server| ServerState {
                server,
                tools: Mutex::default(),
                process: Mutex::default(),
                app_url: tokio::sync::OnceCell::new(),
            })
            .collect();
        Self { servers, workspace, timeouts, http: crate::http_client::new() }
    }

    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    pub fn servers(&self) -> impl Iterator<Item = &McpServer> {
        self.servers.iter().map(|s| &s.server)
    }

    /// Connects to every server at once and returns their tools, named so that they do not clash
    /// with `taken` (the agent's own tools) or each other.
    pub async fn tools_for(&self, context: &ToolContext, taken: &[&str]) -> RequestTools {
        if self.servers.is_empty() {
            return RequestTools::default();
        }
        let connected = futures::future::join_all(self.servers.iter().map(|state| async move {
            let result = tokio::time::timeout(self.timeouts.connect, self.connect(state, context)).await;
            (state, result.unwrap_or(Err(ConnectError::Timeout(self.timeouts.connect))))
        }))
        .await;
        let mut names: Vec<String> = taken.iter().map(|s| s.to_string()).collect();
        let mut out = RequestTools::default();
        for (state, result) in connected {
            let name = &state.server.name;
            match result {
                Ok((client, tools)) => {
                    for tool in tools.iter() {
                        let exposed = exposed_name(name, &tool.name, &names);
                        names.push(exposed.clone());
                        out.tools.push(Arc::new(McpTool::new(exposed, name, tool, client.clone(), self.timeouts.read)));
                    }
                }
                Err(error) => {
                    tracing::warn!(server = %name, %error, "MCP server left out of this turn");
                    out.unavailable.push(Unavailable { server: name.clone(), reason: error.to_string() });
                }
            }
        }
        out
    }

    async fn connect(
        &self,
        state: &ServerState,
        context: &ToolContext,
    ) -> Result<(Arc<Client>, Arc<Vec<rmcp::model::Tool>>), ConnectError> {
        let (client, identity) = match &state.server.transport {
            Transport::Stdio { command, args, env } => {
                // Listing its tools is the check that the process still serves; one that does not
                // is replaced.
                let client = self.process(state, command, args, env, false).await?;
                if let Ok(tools) = client.list_all_tools().await {
                    return Ok((client, Arc::new(tools)));
                }
                tracing::warn!(server = %state.server.name, "MCP server process not answering; restarting it");
                let client = self.process(state, command, args, env, true).await?;
                let tools = client.list_all_tools().await.map_err(|e| ConnectError::List(e.to_string()))?;
                return Ok((client, Arc::new(tools)));
            }
            Transport::Http(endpoint) => self.http_session(state, endpoint, context).await?,
        };
        let cached = state.tools.lock().await.get(&identity).cloned();
        let tools = match cached {
            Some((listed, tools)) if listed.elapsed() < self.timeouts.tools_ttl => tools,
            _ => {
                let tools = Arc::new(client.list_all_tools().await.map_err(|e| ConnectError::List(e.to_string()))?);
                state.tools.lock().await.insert(identity, (Instant::now(), tools.clone()));
                tools
            }
        };
        Ok((client, tools))
    }

    /// The stdio server's process: the running one, or a new one if it is not running (or
    /// `restart`).
    async fn process(
        &self,
        state: &ServerState,
        command: &str,
        args: &[String],
        env: &[(String, String)],
        restart: bool,
    ) -> Result<Arc<Client>, ConnectError> {
        let mut process = state.process.lock().await;
        if let Some(client) = process.as_ref()
            && !client.is_closed()
            && !restart
        {
            return Ok(client.clone());
        }
        let mut cmd = tokio::process::Command::new(command);
        cmd.args(args).envs(env.iter().map(|(k, v)| (k, v)));
        let (transport, _) = TokioChildProcess::builder(cmd)
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .map_err(|e| ConnectError::Connect(format!("cannot start `{command}`: {e}")))?;
        let client =
            Arc::new(client_config().serve(transport).await.map_err(|e| ConnectError::Connect(e.to_string()))?);
        *process = Some(client.clone());
        Ok(client)
    }

    /// A new session on an HTTP server, signed as the server's auth says.
    async fn http_session(
        &self,
        state: &ServerState,
        endpoint: &Endpoint,
        context: &ToolContext,
    ) -> Result<(Arc<Client>, String), ConnectError> {
        let workspace = || {
            self.workspace.as_ref().ok_or_else(|| {
                ConnectError::Auth(
                    "it is a Databricks server and no workspace is configured (DATABRICKS_HOST, a profile, or the \
                     app's service principal)"
                        .into(),
                )
            })
        };
        let url = match endpoint {
            Endpoint::Url(url) => url.clone(),
            Endpoint::Workspace(path) => format!("{}{path}", workspace()?.host),
            Endpoint::App(app) => format!("{}/mcp", self.app_url(state, app, workspace()?).await?),
        };
        let on_workspace = self.workspace.as_ref().is_some_and(|w| url.starts_with(&w.host));
        let is_databricks = !matches!(endpoint, Endpoint::Url(_)) || on_workspace;
        let (token, identity) = match &state.server.auth {
            McpAuth::None => (None, "app".to_string()),
            McpAuth::Auto if !is_databricks => (None, "app".to_string()),
            McpAuth::Auto | McpAuth::App => {
                let token = workspace()?.token().await.map_err(|e| ConnectError::Auth(e.to_string()))?;
                (Some(token), "app".to_string())
            }
            McpAuth::User => {
                let token = context.user_token().ok_or_else(|| {
                    ConnectError::Auth(
                        "it acts on behalf of the user, and the request has no user token (x-forwarded-access-token: \
                         enable user authorization for the app)"
                            .into(),
                    )
                })?;
                (Some(token), format!("user:{}", context.user.as_deref().unwrap_or("")))
            }
        };
        let mut config = StreamableHttpClientTransportConfig::with_uri(url.as_str());
        if let Some(token) = token {
            // rmcp adds "Bearer " itself.
            config = config.auth_header(token.expose());
        }
        let mut headers = HashMap::new();
        for (name, value) in &state.server.headers {
            let name = reqwest::header::HeaderName::try_from(name.as_str())
                .map_err(|e| ConnectError::Connect(format!("bad header name `{name}`: {e}")))?;
            let mut value = reqwest::header::HeaderValue::try_from(value.as_str())
                .map_err(|e| ConnectError::Connect(format!("bad value for header `{name}`: {e}")))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        config = config.custom_headers(headers);
        let transport = StreamableHttpClientTransport::with_client(self.http.clone(), config);
        let client = client_config().serve(transport).await.map_err(|e| ConnectError::Connect(e.to_string()))?;
        Ok((Arc::new(client), identity))
    }

    /// `GET /api/2.0/apps/{name}` → its `url`.
    async fn app_url(&self, state: &ServerState, app: &str, workspace: &WorkspaceAuth) -> Result<String, ConnectError> {
        state
            .app_url
            .get_or_try_init(|| async {
                let found = workspace
                    .call_json(reqwest::Method::GET, &format!("/api/2.0/apps/{app}"), None, self.timeouts.connect)
                    .await
                    .map_err(|e| ConnectError::Connect(format!("cannot look the app up: {e}")))?;
                found
                    .get("url")
                    .and_then(Value::as_str)
                    .map(|u| u.trim_end_matches('/').to_string())
                    .ok_or_else(|| ConnectError::Connect(format!("app `{app}` has no URL (is it deployed?)")))
            })
            .await
            .cloned()
    }
}

fn client_config() -> ClientConfig {
    ClientConfig::new(ClientCapabilities::default(), Implementation::new("agent-app", env!("CARGO_PKG_VERSION")))
}

/// The name the model sees: the tool's own when free, else `<server>__<tool>`; only characters model
/// APIs accept, at most 64 (long names keep a hash of the whole so they stay distinct).
fn exposed_name(server: &str, tool: &str, taken: &[String]) -> String {
    let clean = |s: &str| -> String {
        s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect()
    };
    let fit = |s: String| -> String {
        if s.len() <= 64 {
            return s;
        }
        let hash = s.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3));
        format!("{}_{:08x}", &s[..55], hash as u32)
    };
    let free = |name: &String| !name.is_empty() && !taken.iter().any(|t| t == name);
    let own = fit(clean(tool));
    if free(&own) {
        return own;
    }
    let prefixed = fit(clean(&format!("{server}__{tool}")));
    if free(&prefixed) {
        return prefixed;
    }
    (2..).map(|n| fit(format!("{prefixed}_{n}"))).find(free).expect("some suffix is free")
}

/// A tool of an MCP server, bound to this request's connection.
struct McpTool {
    spec: ToolSpec,
    remote_name: String,
    server: String,
    client: Arc<Client>,
    timeout: Duration,
}

impl McpTool {
    fn new(exposed: String, server: &str, tool: &rmcp::model::Tool, client: Arc<Client>, timeout: Duration) -> Self {
        let mut parameters = Value::Object((*tool.input_schema).clone());
        if let Some(object) = parameters.as_object_mut() {
            object.entry("type").or_insert_with(|| "object".into());
            object.entry("properties").or_insert_with(|| Value::Object(Default::default()));
        }
        let description = tool.description.as_deref().or(tool.title.as_deref()).unwrap_or_default().to_string();
        Self {
            spec: ToolSpec { name: exposed, description, parameters, strict: false },
            remote_name: tool.name.to_string(),
            server: server.to_string(),
            client,
            timeout,
        }
    }
}

impl Tool for McpTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn qualified_name(&self) -> Option<String> {
        Some(format!("{}__{}", self.server, self.remote_name))
    }

    fn call<'a>(&'a self, arguments: Value, _: ToolContext) -> BoxFuture<'a, Result<String, ToolError>> {
        Box::pin(async move {
            let tool = self.spec.name.clone();
            let arguments = match arguments {
                Value::Object(map) => map,
                Value::Null => Default::default(),
                other => {
                    return Err(ToolError::InvalidArguments {
                        tool,
                        reason: format!("expected an object, got {other}"),
                    });
                }
            };
            let params = CallToolRequestParams::new(self.remote_name.clone()).with_arguments(arguments);
            let result = match tokio::time::timeout(self.timeout, self.client.call_tool(params)).await {
                Err(_) => return Err(ToolError::Timeout { tool, limit: self.timeout }),
                Ok(Err(e)) => {
                    return Err(ToolError::Failed { tool, reason: format!("MCP server `{}`: {e}", self.server) });
                }
                Ok(Ok(result)) => result,
            };
            let mut parts: Vec<String> = result
                .content
                .iter()
                .map(|block| match block.as_text() {
                    Some(text) => text.text.clone(),
                    None => serde_json::to_string(block).unwrap_or_default(),
                })
                .collect();
            if parts.is_empty()
                && let Some(structured) = &result.structured_content
            {
                parts.push(structured.to_string());
            }
            let text = parts.join("\n");
            if result.is_error == Some(true) {
                return Err(ToolError::Failed { tool, reason: text });
            }
            Ok(text)
        })
    }
}

/// The user's token as the Apps proxy forwards it.
pub const USER_TOKEN_HEADER: &str = "x-forwarded-access-token";

impl ToolContext {
    /// The signed-in user's own token (`x-forwarded-access-token`), when the app has user
    /// authorization. Never log or store it.
    pub fn user_token(&self) -> Option<Secret> {
        let value = self.headers.get(USER_TOKEN_HEADER)?.to_str().ok()?.trim();
        (!value.is_empty()).then(|| Secret::new(value))
    }

    /// The workspace as the signed-in user (the equivalent of the reference's
    /// `get_user_workspace_client()`): for tools that must only see what the user may see.
    pub fn user_workspace(&self) -> Option<WorkspaceAuth> {
        Some(self.workspace.as_ref()?.for_user(self.user_token()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposed_names_are_valid_and_distinct() {
        let taken = vec!["get_current_time".to_string()];
        assert_eq!(exposed_name("calc", "add", &taken), "add");
        assert_eq!(exposed_name("calc", "get_current_time", &taken), "calc__get_current_time");
        assert_eq!(exposed_name("my server", "do.it now", &taken), "do_it_now");
        let long = "x".repeat(100);
        let a = exposed_name("s", &long, &taken);
        assert_eq!(a.len(), 64);
        let taken = vec![a.clone(), "s__".to_string() + &long];
        let b = exposed_name("s", &long, &taken);
        assert_ne!(a, b);
        assert!(b.len() <= 64 && b.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-'), "{b}");
    }

    #[test]
    fn config_files_in_the_mcp_servers_shape() {
        // SAFETY: the only test of this binary reading this variable.
        unsafe { std::env::set_var("AGENT_TEST_MCP_KEY", "k3y") };
        unsafe { std::env::set_var("AGENT_TEST_MCP_PORT", "9") };
        let servers = servers_from_json(
            r#"{"mcpServers": {
                "calc": {"url": "http://127.0.0.1:${AGENT_TEST_MCP_PORT}/mcp", "headers": {"X-Key": "${AGENT_TEST_MCP_KEY}"}, "auth": "none"},
                "files": {"command": "python3", "args": ["server.py", "--key=${AGENT_TEST_MCP_KEY}"], "env": {"MODE": "test"}},
                "genie": {"databricks": "genie/01ef", "auth": "user"},
                "tools": {"app": "mcp-tools"}
            }}"#,
        )
        .unwrap();
        let by_name = |n: &str| servers.iter().find(|s| s.name == n).unwrap();
        assert_eq!(by_name("calc").headers, vec![("X-Key".to_string(), "k3y".to_string())]);
        assert_eq!(by_name("calc").auth, McpAuth::None);
        assert!(
            matches!(&by_name("calc").transport, Transport::Http(Endpoint::Url(u)) if u == "http://127.0.0.1:9/mcp")
        );
        let Transport::Stdio { args, .. } = &by_name("files").transport else { panic!() };
        assert_eq!(args, &["server.py", "--key=k3y"], "variables in args too");
        // What every user can read of them: no arguments, no credentials.
        assert_eq!(by_name("files").location(), "stdio: python3 (2 arguments)");
        assert_eq!(
            McpServer::http("x", "https://user:pw@mcp.example.com/v1/mcp?api_key=s3cret").location(),
            "https://mcp.example.com/v1/mcp"
        );
        assert_eq!(by_name("genie").location(), "<workspace>/api/2.0/mcp/genie/01ef");
        assert_eq!(by_name("genie").auth, McpAuth::User);
        assert_eq!(by_name("tools").location(), "<app mcp-tools>/mcp");
        let error = servers_from_json(r#"{"mcpServers": {"x": {"url": "u", "command": "c"}}}"#).err().unwrap();
        assert!(error.contains("exactly one of"), "{error}");
        let error = servers_from_json(r#"{"mcpServers": {"x": {"url": "u", "headers": {"A": "${NOPE_NOT_SET}"}}}}"#)
            .err()
            .unwrap();
        assert!(error.contains("NOPE_NOT_SET"), "{error}");
        assert!(servers_from_json(r#"{"mcpServers": {"x": {"uri": "u"}}}"#).is_err());
    }

    #[test]
    fn managed_server_urls() {
        assert_eq!(McpServer::uc_functions("system", "ai").location(), "<workspace>/api/2.0/mcp/functions/system/ai");
        assert_eq!(
            McpServer::vector_search("main", "docs", Some("idx")).location(),
            "<workspace>/api/2.0/mcp/vector-search/main/docs/idx"
        );
        assert_eq!(McpServer::genie("abc").location(), "<workspace>/api/2.0/mcp/genie/abc");
        assert_eq!(McpServer::external("github").location(), "<workspace>/api/2.0/mcp/external/github");
        assert_eq!(McpServer::sql().location(), "<workspace>/api/2.0/mcp/sql");
    }
}
