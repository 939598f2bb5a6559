//! The embedded default: traces kept in a SQLite file in the data folder, newest first, for the
//! `/traces` page. Each user sees their own, and keeps their newest (a set number per user).

use std::str::FromStr;

use futures::future::BoxFuture;
use serde::Serialize;
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use super::export::{ExportError, TraceSink};
use super::record::{TraceRecord, TraceState};

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
CREATE INDEX IF NOT EXISTS traces_by_owner ON traces (owner, start_ns);
CREATE INDEX IF NOT EXISTS traces_by_start ON traces (start_ns);";

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
        // WAL with synchronous=NORMAL: no fsync per batch; a power cut may lose the last traces,
        // never corrupt the file. Traces are diagnostics, not records.
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Normal);
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        Ok(Self { pool, keep: keep.max(1) })
    }

    /// Stores a batch in one statement (the SQLite driver runs on its own thread: each statement
    /// is a round trip to it).
    pub async fn insert(&self, batch: &[TraceRecord]) -> Result<(), sqlx::Error> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut insert = sqlx::QueryBuilder::new(
            "INSERT OR REPLACE INTO traces (trace_id, owner, name, state, start_ns, duration_ms, session, \
             request_preview, response_preview, total_tokens, error, record) ",
        );
        insert.push_values(batch, |mut row, t| {
            row.push_bind(&t.trace_id)
                .push_bind(&t.owner)
                .push_bind(&t.name)
                .push_bind(if t.state == TraceState::Ok { "OK" } else { "ERROR" })
                .push_bind(t.start_ns as i64)
                .push_bind(t.duration_ms())
                .push_bind(&t.session)
                .push_bind(&t.request_preview)
                .push_bind(&t.response_preview)
                .push_bind(t.usage.map(|u| u.total_tokens as i64))
                .push_bind(&t.error)
                .push_bind(serde_json::to_string(t).unwrap_or_default());
        });
        // Beyond `keep` traces of an owner, that owner's oldest go (found through the owner's
        // index): one user's requests never push out another's traces.
        let mut owners: Vec<&str> = batch.iter().map(|t| t.owner.as_str()).collect();
        owners.sort_unstable();
        owners.dedup();
        for owner in owners {
            insert.push("; DELETE FROM traces WHERE owner = ");
            insert.push_bind(owner);
            insert.push(" AND start_ns < (SELECT start_ns FROM traces WHERE owner = ");
            insert.push_bind(owner);
            insert.push(" ORDER BY start_ns DESC LIMIT 1 OFFSET ");
            insert.push_bind(self.keep as i64 - 1);
            insert.push(")");
        }
        insert.build().execute(&self.pool).await?;
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observability::trace::TraceState;

    fn record(i: u64, owner: &str) -> TraceRecord {
        TraceRecord {
            trace_id: format!("tr-{i:032x}"),
            name: "invoke_handler".into(),
            start_ns: 1_000_000_000 * (i + 1),
            end_ns: 1_000_000_000 * (i + 1) + 5_000_000,
            state: TraceState::Ok,
            error: None,
            session: None,
            user: None,
            request_preview: format!("question {i}"),
            response_preview: String::new(),
            usage: None,
            model_id: None,
            owner: owner.into(),
            spans: Vec::new(),
        }
    }

    #[tokio::test]
    async fn keeps_the_newest_and_each_owners_own() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalTraceStore::open(&dir.path().join("traces.db"), 3).await.unwrap();
        store.insert(&[record(0, "ana"), record(1, "bob")]).await.unwrap();
        store.insert(&[record(2, "ana"), record(3, "ana"), record(4, "ana")]).await.unwrap();
        let ana = store.list("ana", 10, None).await.unwrap();
        let ids: Vec<_> = ana.iter().map(|t| t.request_preview.as_str()).collect();
        assert_eq!(ids, ["question 4", "question 3", "question 2"], "ana's newest 3");
        // Ana's many requests did not push out Bob's one trace (retention is per user).
        let bob = store.list("bob", 10, None).await.unwrap();
        assert_eq!(bob.iter().map(|t| t.request_preview.as_str()).collect::<Vec<_>>(), ["question 1"]);
        assert!(store.get("bob", &record(4, "").trace_id).await.unwrap().is_none());
        assert_eq!(store.get("ana", &record(4, "").trace_id).await.unwrap().unwrap().request_preview, "question 4");
        // Paging back from the second.
        let older = store.list("ana", 10, Some(ana[1].start_ms * 1_000_000)).await.unwrap();
        assert_eq!(older.len(), 1);
    }
}
