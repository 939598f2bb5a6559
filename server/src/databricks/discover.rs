//! `discover-tools`: what a workspace offers an agent as tools (Unity Catalog functions and tables,
//! Vector Search indexes, Genie spaces, custom MCP apps, MCP connections), each with the MCP URL and
//! the `agent.rs` line that adds it. A section the caller may not read is reported, not fatal.

use std::time::Duration;

use reqwest::Method;
use serde::Serialize;
use serde_json::Value;

use super::auth::WorkspaceAuth;

/// Limits, as the reference's flags.
#[derive(Debug, Clone)]
pub struct DiscoverOptions {
    /// Only this catalog (else every catalog, within `max_schemas`).
    pub catalog: Option<String>,
    /// Only this schema of `catalog`.
    pub schema: Option<String>,
    /// At most this many results per kind.
    pub max_results: usize,
    /// At most this many schemas searched in all.
    pub max_schemas: usize,
}

impl Default for DiscoverOptions {
    fn default() -> Self {
        Self { catalog: None, schema: None, max_results: 100, max_schemas: 25 }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct Discovery {
    pub workspace: String,
    pub uc_functions: Vec<Found>,
    pub tables: Vec<Found>,
    pub vector_search_indexes: Vec<Found>,
    pub genie_spaces: Vec<Found>,
    pub mcp_apps: Vec<Found>,
    pub mcp_connections: Vec<Found>,
    /// Sections that could not be read, and why.
    pub errors: Vec<SectionError>,
}

#[derive(Debug, Serialize)]
pub struct Found {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where its MCP server is (tables have none: they are reached through Genie or SQL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mcp_url: Option<String>,
    /// The line of `agent.rs` that adds it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_rs: Option<String>,
    /// Columns (tables), the endpoint (indexes), the app URL (apps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SectionError {
    pub section: &'static str,
    pub error: String,
}

const TIMEOUT: Duration = Duration::from_secs(60);
/// Schemas never worth listing.
const SKIPPED: [&str; 3] = ["information_schema", "__databricks_internal", "system"];

pub async fn discover(workspace: &WorkspaceAuth, options: &DiscoverOptions) -> Discovery {
    let mut found = Discovery { workspace: workspace.host.clone(), ..Default::default() };
    let host = &workspace.host;
    let max = options.max_results;

    // Unity Catalog: catalog → schema → functions and tables, within the schema budget.
    match schemas(workspace, options).await {
        Err(error) => found.errors.push(SectionError { section: "unity_catalog", error }),
        Ok(schemas) => {
            for (catalog, schema) in schemas {
                let query = format!("catalog_name={}&schema_name={}", encode(&catalog), encode(&schema));
                match list(workspace, &format!("/api/2.1/unity-catalog/functions?{query}"), "functions", max).await {
                    Err(error) => found.errors.push(SectionError { section: "uc_functions", error }),
                    Ok(functions) => {
                        for f in functions.iter().take(max.saturating_sub(found.uc_functions.len())) {
                            let name = text(f, "name");
                            found.uc_functions.push(Found {
                                name: text_or(f, "full_name", &format!("{catalog}.{schema}.{name}")),
                                description: opt_text(f, "comment"),
                                mcp_url: Some(format!("{host}/api/2.0/mcp/functions/{catalog}/{schema}/{name}")),
                                agent_rs: Some(format!(
                                    ".mcp_server(McpServer::uc_function({catalog:?}, {schema:?}, {name:?}))"
                                )),
                                details: None,
                            });
                        }
                    }
                }
                match list(workspace, &format!("/api/2.1/unity-catalog/tables?{query}"), "tables", max).await {
                    Err(error) => found.errors.push(SectionError { section: "tables", error }),
                    Ok(tables) => {
                        for t in tables.iter().take(max.saturating_sub(found.tables.len())) {
                            let columns: Vec<String> = t["columns"]
                                .as_array()
                                .map(|c| {
                                    c.iter()
                                        .take(5)
                                        .map(|c| format!("{} {}", text(c, "name"), text(c, "type_name").to_lowercase()))
                                        .collect()
                                })
                                .unwrap_or_default();
                            found.tables.push(Found {
                                name: text_or(t, "full_name", &format!("{catalog}.{schema}.{}", text(t, "name"))),
                                description: opt_text(t, "comment"),
                                mcp_url: None,
                                agent_rs: None,
                                details: (!columns.is_empty()).then(|| columns.join(", ")),
                            });
                        }
                    }
                }
            }
        }
    }

    // Vector Search: endpoint → indexes.
    match list(workspace, "/api/2.0/vector-search/endpoints", "endpoints", max).await {
        Err(error) => found.errors.push(SectionError { section: "vector_search", error }),
        Ok(endpoints) => {
            for endpoint in endpoints {
                let endpoint = text(&endpoint, "name");
                let path = format!("/api/2.0/vector-search/indexes?endpoint_name={}", encode(&endpoint));
                match list(workspace, &path, "vector_indexes", max).await {
                    Err(error) => found.errors.push(SectionError { section: "vector_search", error }),
                    Ok(indexes) => {
                        for index in indexes.iter().take(max.saturating_sub(found.vector_search_indexes.len())) {
                            let name = text(index, "name");
                            let parts: Vec<&str> = name.splitn(3, '.').collect();
                            let (mcp_url, agent_rs) = match parts.as_slice() {
                                [c, s, i] => (
                                    Some(format!("{host}/api/2.0/mcp/vector-search/{c}/{s}/{i}")),
                                    Some(format!(".mcp_server(McpServer::vector_search({c:?}, {s:?}, Some({i:?})))")),
                                ),
                                _ => (None, None),
                            };
                            found.vector_search_indexes.push(Found {
                                name,
                                description: None,
                                mcp_url,
                                agent_rs,
                                details: Some(format!("endpoint {endpoint}")),
                            });
                        }
                    }
                }
            }
        }
    }

    match list(workspace, "/api/2.0/genie/spaces", "spaces", max).await {
        Err(error) => found.errors.push(SectionError { section: "genie_spaces", error }),
        Ok(spaces) => {
            for space in spaces {
                let id = text(&space, "space_id");
                found.genie_spaces.push(Found {
                    name: text_or(&space, "title", &id),
                    description: opt_text(&space, "description"),
                    mcp_url: Some(format!("{host}/api/2.0/mcp/genie/{id}")),
                    agent_rs: Some(format!(".mcp_server(McpServer::genie({id:?}))")),
                    details: Some(format!("space {id}")),
                });
            }
        }
    }

    match list(workspace, "/api/2.0/apps", "apps", usize::MAX).await {
        Err(error) => found.errors.push(SectionError { section: "mcp_apps", error }),
        Ok(apps) => {
            for app in apps.iter().filter(|a| text(a, "name").starts_with("mcp-")).take(max) {
                let name = text(app, "name");
                let url = opt_text(app, "url");
                found.mcp_apps.push(Found {
                    mcp_url: url.as_ref().map(|u| format!("{}/mcp", u.trim_end_matches('/'))),
                    agent_rs: Some(format!(".mcp_server(McpServer::app({name:?}))")),
                    description: opt_text(app, "description"),
                    details: url,
                    name,
                });
            }
        }
    }

    match list(workspace, "/api/2.1/unity-catalog/connections", "connections", usize::MAX).await {
        Err(error) => found.errors.push(SectionError { section: "mcp_connections", error }),
        Ok(connections) => {
            let is_mcp = |c: &Value| c["options"]["is_mcp_connection"].as_str() == Some("true");
            for connection in connections.iter().filter(|c| is_mcp(c)).take(max) {
                let name = text(connection, "name");
                found.mcp_connections.push(Found {
                    mcp_url: Some(format!("{host}/api/2.0/mcp/external/{name}")),
                    agent_rs: Some(format!(".mcp_server(McpServer::external({name:?}))")),
                    description: opt_text(connection, "comment"),
                    details: None,
                    name,
                });
            }
        }
    }
    found
}

/// The (catalog, schema) pairs to search, within the budget.
async fn schemas(workspace: &WorkspaceAuth, options: &DiscoverOptions) -> Result<Vec<(String, String)>, String> {
    if let (Some(catalog), Some(schema)) = (&options.catalog, &options.schema) {
        return Ok(vec![(catalog.clone(), schema.clone())]);
    }
    let catalogs = match &options.catalog {
        Some(catalog) => vec![catalog.clone()],
        None => list(workspace, "/api/2.1/unity-catalog/catalogs", "catalogs", usize::MAX)
            .await?
            .iter()
            .map(|c| text(c, "name"))
            .filter(|c| !SKIPPED.contains(&c.as_str()) && !c.starts_with("__"))
            .collect(),
    };
    let mut pairs = Vec::new();
    for catalog in catalogs {
        let path = format!("/api/2.1/unity-catalog/schemas?catalog_name={}", encode(&catalog));
        for schema in list(workspace, &path, "schemas", usize::MAX).await? {
            let schema = text(&schema, "name");
            if SKIPPED.contains(&schema.as_str()) {
                continue;
            }
            if pairs.len() >= options.max_schemas {
                return Ok(pairs);
            }
            pairs.push((catalog.clone(), schema));
        }
    }
    Ok(pairs)
}

/// Every item of a paginated list (`next_page_token`), up to `max`.
async fn list(workspace: &WorkspaceAuth, path: &str, key: &str, max: usize) -> Result<Vec<Value>, String> {
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page_path = match &token {
            None => path.to_string(),
            Some(t) => format!("{path}{}page_token={}", if path.contains('?') { '&' } else { '?' }, encode(t)),
        };
        let page = workspace.call_json(Method::GET, &page_path, None, TIMEOUT).await.map_err(|e| e.to_string())?;
        if let Some(list) = page[key].as_array() {
            items.extend(list.iter().cloned());
        }
        token = page["next_page_token"].as_str().filter(|t| !t.is_empty()).map(str::to_string);
        if token.is_none() || items.len() >= max {
            items.truncate(max);
            return Ok(items);
        }
    }
}

fn text(value: &Value, key: &str) -> String {
    value[key].as_str().unwrap_or_default().to_string()
}

fn opt_text(value: &Value, key: &str) -> Option<String> {
    value[key].as_str().filter(|s| !s.trim().is_empty()).map(str::to_string)
}

fn text_or(value: &Value, key: &str, default: &str) -> String {
    opt_text(value, key).unwrap_or_else(|| default.to_string())
}

fn encode(value: &str) -> String {
    app::percent_encode(value)
}

impl Discovery {
    /// A report to read: per kind, the first 10 with their MCP URLs and `agent.rs` lines.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut out = format!("# Tools available in {}\n", self.workspace);
        let sections: [(&str, &Vec<Found>); 6] = [
            ("Unity Catalog functions", &self.uc_functions),
            ("Tables (query them through a Genie space or Databricks SQL)", &self.tables),
            ("Vector Search indexes", &self.vector_search_indexes),
            ("Genie spaces", &self.genie_spaces),
            ("Custom MCP servers (apps named mcp-*)", &self.mcp_apps),
            ("MCP connections (Unity Catalog)", &self.mcp_connections),
        ];
        for (title, items) in sections {
            let _ = write!(out, "\n## {title} ({})\n", items.len());
            if items.is_empty() {
                out.push_str("none found\n");
            }
            for item in items.iter().take(10) {
                let _ = write!(out, "- {}", item.name);
                if let Some(d) = &item.description {
                    let _ = write!(out, ": {}", d.lines().next().unwrap_or_default());
                }
                out.push('\n');
                if let Some(details) = &item.details {
                    let _ = writeln!(out, "  {details}");
                }
                if let Some(url) = &item.mcp_url {
                    let _ = writeln!(out, "  MCP: {url}");
                }
                if let Some(line) = &item.agent_rs {
                    let _ = writeln!(out, "  agent.rs: {line}");
                }
            }
            if items.len() > 10 {
                let _ = writeln!(out, "- … and {} more (--format json lists all)", items.len() - 10);
            }
        }
        out.push_str(
            "\n## MCP URL patterns\n\
             - UC functions: {host}/api/2.0/mcp/functions/{catalog}/{schema}[/{function}] (system/ai: code interpreter)\n\
             - Vector Search: {host}/api/2.0/mcp/vector-search/{catalog}/{schema}[/{index}]\n\
             - Genie: {host}/api/2.0/mcp/genie/{space_id}\n\
             - UC connection: {host}/api/2.0/mcp/external/{connection}\n\
             - Databricks SQL: {host}/api/2.0/mcp/sql\n\
             - Custom MCP app: {app_url}/mcp\n",
        );
        for e in &self.errors {
            let _ = writeln!(out, "\nnote: {} could not be listed: {}", e.section, e.error);
        }
        out
    }

    /// Counts per kind, one line (printed on stderr).
    pub fn summary(&self) -> String {
        format!(
            "found {} UC functions, {} tables, {} vector search indexes, {} Genie spaces, {} MCP apps, {} MCP connections{}",
            self.uc_functions.len(),
            self.tables.len(),
            self.vector_search_indexes.len(),
            self.genie_spaces.len(),
            self.mcp_apps.len(),
            self.mcp_connections.len(),
            if self.errors.is_empty() { String::new() } else { format!("; {} sections unreadable", self.errors.len()) }
        )
    }
}
