//! The embedded default: traces kept in a SQLite file in the data folder, newest first, for the
//! `/traces` page. Each user sees their own. Old traces go beyond a set number.

use std::str::FromStr;

use futures::future::BoxFuture;
use serde::Serialize;
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use super::export::{ExportError, TraceSink};
use super::trace::{TraceRecord, TraceState};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS traces (
    trace_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    duration_ms REAL NOT NULL,
    session TEXT,
    request_preview TEXT NOT NULL,
    response_preview TEXT NOT NULL,
    total_tokens INTEGER,
    error TEXT,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS traces_by_owner ON traces (owner, start_ns);";

/// A line of the trace list.
#[derive(Debug, Clone, Serialize)]
pub struct TraceSummary {
    pub trace_id: String,
    pub name: String,
    pub state: String,
    pub start_ms: i64,
    pub duration_ms: f64,
    pub session: Option<String>,
    pub request_preview: String,
    pub response_preview: String,
    pub total_tokens: Option<i64>,
    pub error: Option<String>,
}

#[derive(Clone)]
pub struct LocalTraceStore {
    pool: SqlitePool,
    keep: usize,
}

impl LocalTraceStore {
    /// Opens (or creates) the store at `path`, keeping the newest `keep` traces.
    pub async fn open(path: &std::path::Path, keep: usize) -> Result<Self, sqlx::Error> {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        Ok(Self { pool, keep: keep.max(1) })
    }

    pub async fn insert(&self, batch: &[TraceRecord]) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        for t in batch {
            let record = serde_json::to_string(t).unwrap_or_default();
            sqlx::query(
                "INSERT OR REPLACE INTO traces (trace_id, owner, name, state, start_ns, duration_ms, session, \
                 request_preview, response_preview, total_tokens, error, record) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&t.trace_id)
            .bind(&t.owner)
            .bind(&t.name)
            .bind(if t.state == TraceState::Ok { "OK" } else { "ERROR" })
            .bind(t.start_ns as i64)
            .bind(t.duration_ms())
            .bind(&t.session)
            .bind(&t.request_preview)
            .bind(&t.response_preview)
            .bind(t.usage.map(|u| u.total_tokens as i64))
            .bind(&t.error)
            .bind(record)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "DELETE FROM traces WHERE trace_id IN (SELECT trace_id FROM traces ORDER BY start_ns DESC LIMIT -1 OFFSET ?)",
        )
        .bind(self.keep as i64)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// The owner's traces, newest first; `before` (a start time in ns) pages back.
    pub async fn list(&self, owner: &str, limit: usize, before: Option<i64>) -> Result<Vec<TraceSummary>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT trace_id, name, state, start_ns, duration_ms, session, request_preview, response_preview, \
             total_tokens, error FROM traces WHERE owner = ? AND start_ns < ? ORDER BY start_ns DESC LIMIT ?",
        )
        .bind(owner)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TraceSummary {
                    trace_id: r.try_get("trace_id")?,
                    name: r.try_get("name")?,
                    state: r.try_get("state")?,
                    start_ms: r.try_get::<i64, _>("start_ns")? / 1_000_000,
                    duration_ms: r.try_get("duration_ms")?,
                    session: r.try_get("session")?,
                    request_preview: r.try_get("request_preview")?,
                    response_preview: r.try_get("response_preview")?,
                    total_tokens: r.try_get("total_tokens")?,
                    error: r.try_get("error")?,
                })
            })
            .collect()
    }

    /// One of the owner's traces, whole.
    pub async fn get(&self, owner: &str, trace_id: &str) -> Result<Option<TraceRecord>, sqlx::Error> {
        let record: Option<String> = sqlx::query_scalar("SELECT record FROM traces WHERE trace_id = ? AND owner = ?")
            .bind(trace_id)
            .bind(owner)
            .fetch_optional(&self.pool)
            .await?;
        Ok(record.and_then(|r| serde_json::from_str(&r).ok()))
    }
}

impl TraceSink for LocalTraceStore {
    fn describe(&self) -> String {
        "the local trace store".into()
    }

    fn export<'a>(&'a self, batch: &'a [TraceRecord]) -> BoxFuture<'a, Result<(), ExportError>> {
        Box::pin(async move { self.insert(batch).await.map_err(|e| ExportError::Transient(e.to_string())) })
    }
}
