//! `search_documents`: a retriever over a folder of your documents (Markdown, text, HTML), with a
//! real full-text index (SQLite FTS5, BM25 ranking) built in memory when it is first searched.
//!
//! Each file is cut into passages; a search returns the best passages with their `doc_uri` (where
//! the user can read the source: `AGENT_DOCS_BASE_URL` + the file's path, else the app's own
//! `/documents/<path>`), title and text. The tool is a RETRIEVER span in traces, and answers that cite
//! its passages carry `url_citation` annotations (see `runner::output`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Row, SqlitePool};
use tokio::sync::OnceCell;

use super::{RetrieverSchema, Tool, retriever, tool};

/// Files bigger than this are skipped (an index of documents, not of data dumps).
const MAX_FILE_BYTES: u64 = 2 * 1024 * 1024;
/// Passages are cut at paragraph ends near this many characters.
const PASSAGE_CHARS: usize = 1200;
const EXTENSIONS: [&str; 5] = ["md", "markdown", "txt", "html", "htm"];

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Passage {
    /// `<path>#<n>`: the passage's id.
    pub chunk_id: String,
    pub doc_uri: String,
    pub title: String,
    pub text: String,
}

/// The index of one folder.
pub struct DocumentIndex {
    root: PathBuf,
    base_url: String,
    pool: OnceCell<Result<SqlitePool, String>>,
}

impl DocumentIndex {
    /// `base_url`: what a file's path is appended to for its `doc_uri` (e.g. `/documents/` or
    /// `https://wiki.example.com/`).
    pub fn new(root: impl Into<PathBuf>, base_url: impl Into<String>) -> Self {
        let mut base_url = base_url.into();
        if !base_url.ends_with('/') {
            base_url.push('/');
        }
        Self { root: root.into(), base_url, pool: OnceCell::new() }
    }

    async fn pool(&self) -> Result<&SqlitePool, String> {
        self.pool.get_or_init(|| self.build()).await.as_ref().map_err(Clone::clone)
    }

    /// Reads every document under the root into a fresh in-memory FTS5 table.
    async fn build(&self) -> Result<SqlitePool, String> {
        let options = SqliteConnectOptions::new().in_memory(true);
        // One connection: an in-memory database lives and dies with its connection.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(|e| format!("document index: {e}"))?;
        sqlx::query(
            "CREATE VIRTUAL TABLE passages USING fts5(text, title, chunk_id UNINDEXED, doc_uri UNINDEXED, \
             tokenize = 'porter unicode61')",
        )
        .execute(&pool)
        .await
        .map_err(|e| format!("document index: {e}"))?;
        let root = self.root.clone();
        let files = tokio::task::spawn_blocking(move || read_documents(&root))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot read the documents in {}: {e}", self.root.display()))?;
        let mut tx = pool.begin().await.map_err(|e| e.to_string())?;
        let mut count = 0;
        for (path, content) in files {
            let (title, body) = title_and_body(&path, &content);
            let uri = format!("{}{}", self.base_url, path);
            for (n, text) in passages(&body).into_iter().enumerate() {
                sqlx::query("INSERT INTO passages (text, title, chunk_id, doc_uri) VALUES ($1, $2, $3, $4)")
                    .bind(text)
                    .bind(&title)
                    .bind(format!("{path}#{n}"))
                    .bind(&uri)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| e.to_string())?;
                count += 1;
            }
        }
        tx.commit().await.map_err(|e| e.to_string())?;
        tracing::info!(passages = count, root = %self.root.display(), "document index built");
        Ok(pool)
    }

    /// The best `limit` passages for `query` (any of its words; BM25, titles weigh more).
    pub async fn search(&self, query: &str, limit: usize) -> Result<Vec<Passage>, String> {
        let pool = self.pool().await?;
        let Some(expression) = match_expression(query) else { return Ok(Vec::new()) };
        let rows = sqlx::query(
            "SELECT chunk_id, doc_uri, title, text FROM passages WHERE passages MATCH $1 \
             ORDER BY bm25(passages, 1.0, 2.0) LIMIT $2",
        )
        .bind(expression)
        .bind(limit.clamp(1, 20) as i64)
        .fetch_all(pool)
        .await
        .map_err(|e| format!("search failed: {e}"))?;
        rows.iter()
            .map(|r| {
                Ok(Passage {
                    chunk_id: r.try_get("chunk_id")?,
                    doc_uri: r.try_get("doc_uri")?,
                    title: r.try_get("title")?,
                    text: r.try_get("text")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|e| e.to_string())
    }
}

/// Arguments of `search_documents`.
#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct SearchArgs {
    /// What to look for, in a few words.
    pub query: String,
    /// How many passages to return (1 to 20, default 5).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// `search_documents` over the documents in `root` (see the module docs), as a retriever tool.
pub fn document_search(root: impl Into<PathBuf>, base_url: impl Into<String>) -> Arc<dyn Tool> {
    let index = Arc::new(DocumentIndex::new(root, base_url));
    let search = tool(
        "search_documents",
        "Search the knowledge base for passages relevant to a question. Returns passages with their source; \
         cite the ones you use by their cite_as marker, e.g. [1].",
        move |args: SearchArgs| {
            let index = index.clone();
            async move { index.search(&args.query, args.limit.unwrap_or(5)).await }
        },
    );
    retriever(search, RetrieverSchema::new("text").primary_key("chunk_id").doc_uri("doc_uri").other_columns(&["title"]))
}

/// An FTS5 expression that matches any word of the query: each word quoted (FTS5 syntax in the
/// query is taken literally), joined with OR. `None` when the query has no words.
fn match_expression(query: &str) -> Option<String> {
    let words: Vec<String> = query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(32)
        .map(|w| format!("\"{}\"", w.to_lowercase()))
        .collect();
    (!words.is_empty()).then(|| words.join(" OR "))
}

/// Every document under `root`: (path relative to it, with `/`, content).
/// The document at `relative` (a `/`-separated path under `root`), if it is one the index reads: a
/// regular file with a document extension, no part of its path hidden (`.env`, `.git/`), no symbolic
/// link on the way (nothing outside the folder), at most `MAX_FILE_BYTES`.
pub fn document_file(root: &Path, relative: &str) -> Option<PathBuf> {
    let parts: Vec<&str> = relative.split('/').collect();
    if parts.iter().any(|p| p.is_empty() || p.starts_with('.') || p.contains('\\')) {
        return None;
    }
    let name = parts.last()?;
    let extension = name.rsplit_once('.').map(|(_, e)| e)?;
    if !EXTENSIONS.iter().any(|x| extension.eq_ignore_ascii_case(x)) {
        return None;
    }
    let mut path = root.to_path_buf();
    for part in &parts {
        path.push(part);
        // Not followed: a link, even to inside the folder, is not a document of it.
        if std::fs::symlink_metadata(&path).ok()?.file_type().is_symlink() {
            return None;
        }
    }
    let metadata = std::fs::symlink_metadata(&path).ok()?;
    (metadata.is_file() && metadata.len() <= MAX_FILE_BYTES).then_some(path)
}

fn read_documents(root: &Path) -> std::io::Result<Vec<(String, String)>> {
    let mut found = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let path = entry.path();
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if kind.is_dir() && !hidden {
                folders.push(path);
            } else if kind.is_file()
                && !hidden
                && path.extension().is_some_and(|e| EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
                && entry.metadata()?.len() <= MAX_FILE_BYTES
                && let Ok(content) = std::fs::read_to_string(&path)
                && let Ok(relative) = path.strip_prefix(root)
            {
                let relative = relative.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>();
                found.push((relative.join("/"), content));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// The document's title (its first `# heading`, or `<title>`, else its file name) and its text.
fn title_and_body(path: &str, content: &str) -> (String, String) {
    let name = path.rsplit('/').next().unwrap_or(path);
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s).to_string();
    if path.ends_with(".html") || path.ends_with(".htm") {
        let title = content
            .split_once("<title>")
            .and_then(|(_, rest)| rest.split_once("</title>"))
            .map(|(t, _)| t.trim().to_string())
            .filter(|t| !t.is_empty());
        let text = html_text(content);
        return (title.unwrap_or(stem), text);
    }
    let title = content.lines().find_map(|l| l.strip_prefix("# ")).map(|t| t.trim().to_string());
    (title.unwrap_or(stem), content.to_string())
}

/// The text of an HTML page: tags, scripts and styles dropped.
fn html_text(html: &str) -> String {
    let mut text = String::with_capacity(html.len() / 2);
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        text.push_str(&rest[..start]);
        let after = &rest[start..];
        let lower = after.get(..8).unwrap_or(after).to_ascii_lowercase();
        let skip_to = if lower.starts_with("<script") {
            after.find("</script>").map(|i| i + 9)
        } else if lower.starts_with("<style") {
            after.find("</style>").map(|i| i + 8)
        } else {
            after.find('>').map(|i| i + 1)
        };
        match skip_to {
            Some(n) => {
                text.push(' ');
                rest = &after[n..];
            }
            None => {
                rest = "";
            }
        }
    }
    text.push_str(rest);
    text
}

/// The document cut into passages at paragraph ends, each at most about [`PASSAGE_CHARS`].
fn passages(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for paragraph in body.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        if !current.is_empty() && current.chars().count() + paragraph.chars().count() > PASSAGE_CHARS {
            out.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push_str("\n\n");
        }
        // A paragraph longer than a passage is cut on its own (at char boundaries).
        let mut paragraph = paragraph;
        while paragraph.chars().count() > PASSAGE_CHARS {
            let cut = paragraph.char_indices().nth(PASSAGE_CHARS).map_or(paragraph.len(), |(i, _)| i);
            out.push(paragraph[..cut].to_string());
            paragraph = &paragraph[cut..];
        }
        current.push_str(paragraph);
    }
    if !current.trim().is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_become_safe_fts_expressions() {
        assert_eq!(
            match_expression("How long do cats sleep?").unwrap(),
            r#""how" OR "long" OR "do" OR "cats" OR "sleep""#
        );
        assert_eq!(match_expression(r#"a" OR NEAR(b"#).unwrap(), r#""a" OR "or" OR "near" OR "b""#);
        assert_eq!(match_expression("?!  "), None);
    }

    #[test]
    fn documents_are_cut_into_passages_and_titled() {
        let long = "word ".repeat(400);
        let body = format!("# Title\n\nshort one\n\n{long}\n\nend");
        let parts = passages(&body);
        assert!(parts.len() >= 2, "{parts:?}");
        assert!(parts.iter().all(|p| p.chars().count() <= PASSAGE_CHARS + 2));
        assert_eq!(title_and_body("a/b/notes.md", &body).0, "Title");
        assert_eq!(title_and_body("a/plain.txt", "no heading").0, "plain");
        let (title, text) =
            title_and_body("p.html", "<html><title>Page</title><style>x{}</style><p>Hello <b>there</b></p></html>");
        assert_eq!(title, "Page");
        assert_eq!(text.split_whitespace().collect::<Vec<_>>(), ["Page", "Hello", "there"]);
    }
}
