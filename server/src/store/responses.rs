//! Background responses in the database (the tasks themselves are run by `crate::background`).
//!
//! A task row says who owns it, where it stands, and which process runs it (`worker`, with a
//! heartbeat); its stream events are rows of their own, keyed by sequence number, so readers can
//! replay and resume them and a process that takes an orphaned task over can pick up where it was.

use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{ChatStore, StoreError, now_ms};

/// Statuses a background response ends in.
pub const TERMINAL: [&str; 4] = ["completed", "failed", "cancelled", "incomplete"];

pub fn is_terminal(status: &str) -> bool {
    TERMINAL.contains(&status)
}

#[derive(Debug, Clone)]
pub struct StoredResponse {
    pub id: String,
    pub user_id: String,
    pub status: String,
    pub request: Value,
    /// The final response object, once the task ended.
    pub response: Option<Value>,
    pub worker: String,
    pub created_at: i64,
}

/// One stream event of a background response.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub sequence: i64,
    /// The event's `type`.
    pub kind: String,
    /// The event as JSON.
    pub event: String,
}

fn stored_response(row: &AnyRow) -> Result<StoredResponse, StoreError> {
    let json = |column: &str| -> Result<Option<Value>, StoreError> {
        Ok(row.try_get::<Option<String>, _>(column)?.and_then(|text| serde_json::from_str(&text).ok()))
    };
    Ok(StoredResponse {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        status: row.try_get("status")?,
        request: json("request")?.unwrap_or(Value::Null),
        response: json("response")?,
        worker: row.try_get("worker")?,
        created_at: row.try_get("created_at")?,
    })
}

macro_rules! response_columns {
    () => {
        "id, user_id, status, request, response, worker, created_at"
    };
}

/// A task to record as in progress on `worker`.
pub struct NewTask<'a> {
    pub id: &'a str,
    pub user: &'a str,
    pub request: &'a Value,
    pub worker: &'a str,
}

impl NewTask<'_> {
    pub(super) async fn insert(&self, db: impl sqlx::Executor<'_, Database = sqlx::Any>) -> Result<(), StoreError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO responses (id, user_id, status, request, response, worker, heartbeat_at, created_at, updated_at) \
             VALUES ($1, $2, 'in_progress', $3, NULL, $4, $5, $5, $5)",
        )
        .bind(self.id)
        .bind(self.user)
        .bind(self.request.to_string())
        .bind(self.worker)
        .bind(now)
        .execute(db)
        .await?;
        Ok(())
    }
}

impl ChatStore {
    /// Records a new task (a chat's answer records its task with the exchange: `begin_exchange`).
    pub async fn create_response(&self, task: &NewTask<'_>) -> Result<(), StoreError> {
        task.insert(&self.pool).await
    }

    /// Adds stream events (in one transaction; events already there are kept as they are).
    pub async fn append_events(&self, id: &str, events: &[StoredEvent]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        insert_events(&mut tx, id, events).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The running process says it is alive. Returns the task's status and worker as they now are
    /// (a cancelled task, or one another process took over, is to be stopped).
    pub async fn heartbeat(&self, id: &str, worker: &str) -> Result<(String, String), StoreError> {
        sqlx::query("UPDATE responses SET heartbeat_at = $3 WHERE id = $1 AND worker = $2")
            .bind(id)
            .bind(worker)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        let row = sqlx::query("SELECT status, worker FROM responses WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok((row.try_get("status")?, row.try_get("worker")?))
    }

    /// Saves a task's last events and its end, in one transaction (a task's end is one commit,
    /// not two). A task another process took over is left alone; a cancelled one stays cancelled.
    pub async fn finish_response(
        &self,
        id: &str,
        worker: &str,
        status: &str,
        response: &Value,
        last_events: &[StoredEvent],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        insert_events(&mut tx, id, last_events).await?;
        sqlx::query(
            "UPDATE responses SET status = CASE WHEN status = 'cancelled' THEN status ELSE $3 END, response = $4, \
             updated_at = $5 WHERE id = $1 AND worker = $2",
        )
        .bind(id)
        .bind(worker)
        .bind(status)
        .bind(response.to_string())
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The user's task (another user's is not found).
    pub async fn get_response(&self, user: &str, id: &str) -> Result<StoredResponse, StoreError> {
        let row =
            sqlx::query(concat!("SELECT ", response_columns!(), " FROM responses WHERE id = $1 AND user_id = $2"))
                .bind(id)
                .bind(user)
                .fetch_optional(&self.pool)
                .await?
                .ok_or(StoreError::NotFound)?;
        stored_response(&row)
    }

    /// A task whoever owns it (a process taking it over acts for its owner).
    pub async fn get_response_any_owner(&self, id: &str) -> Result<StoredResponse, StoreError> {
        let row = sqlx::query(concat!("SELECT ", response_columns!(), " FROM responses WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        stored_response(&row)
    }

    /// A task's status, whoever owns it.
    pub async fn response_status(&self, id: &str) -> Result<String, StoreError> {
        sqlx::query_scalar("SELECT status FROM responses WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)
    }

    /// Events after sequence number `after`, in order, at most `limit`.
    pub async fn response_events(&self, id: &str, after: i64, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT sequence, kind, event FROM response_events WHERE response_id = $1 AND sequence > $2 \
             ORDER BY sequence LIMIT $3",
        )
        .bind(id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredEvent {
                    sequence: r.try_get("sequence")?,
                    kind: r.try_get("kind")?,
                    event: r.try_get("event")?,
                })
            })
            .collect()
    }

    /// Every event of a task (to rebuild where it stood).
    pub async fn all_response_events(&self, id: &str) -> Result<Vec<StoredEvent>, StoreError> {
        self.response_events(id, -1, i64::MAX).await
    }

    /// Marks the user's task cancelled, unless it already ended. Returns it as it now is.
    pub async fn cancel_response(&self, user: &str, id: &str) -> Result<StoredResponse, StoreError> {
        sqlx::query(
            "UPDATE responses SET status = 'cancelled', updated_at = $3 WHERE id = $1 AND user_id = $2 \
             AND status IN ('queued', 'in_progress')",
        )
        .bind(id)
        .bind(user)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        self.get_response(user, id).await
    }

    /// Unfinished tasks whose process has not shown signs of life since `stale_before` (epoch ms).
    pub async fn orphaned_responses(&self, stale_before: i64) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM responses WHERE status IN ('queued', 'in_progress') AND heartbeat_at < $1 \
             ORDER BY created_at LIMIT 100",
        )
        .bind(stale_before)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Takes an orphaned task over for `worker`; false if another process was quicker (or it ended).
    pub async fn claim_response(&self, id: &str, worker: &str, stale_before: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE responses SET worker = $2, heartbeat_at = $3 WHERE id = $1 \
             AND status IN ('queued', 'in_progress') AND heartbeat_at < $4",
        )
        .bind(id)
        .bind(worker)
        .bind(now_ms())
        .bind(stale_before)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes tasks that ended before `ended_before` (epoch ms), with their events.
    pub async fn prune_responses(&self, ended_before: i64) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Events first: SQLite only cascades with foreign keys on, and this way needs no cascade.
        sqlx::query(
            "DELETE FROM response_events WHERE response_id IN (SELECT id FROM responses WHERE \
             status NOT IN ('queued', 'in_progress') AND updated_at < $1)",
        )
        .bind(ended_before)
        .execute(&mut *tx)
        .await?;
        let done =
            sqlx::query("DELETE FROM responses WHERE status NOT IN ('queued', 'in_progress') AND updated_at < $1")
                .bind(ended_before)
                .execute(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }
}

/// Inserts stream events: one statement per batch of rows, not one per event (which was most of a
/// saved answer's cost). 4 parameters a row stays under every database's cap. Events already there
/// are kept as they are.
async fn insert_events(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
    events: &[StoredEvent],
) -> Result<(), StoreError> {
    for batch in events.chunks(200) {
        // `$n` placeholders, as every query here writes them (sqlx's `Any` builder would write `?`,
        // which PostgreSQL refuses).
        let mut sql = String::from("INSERT INTO response_events (response_id, sequence, kind, event) VALUES ");
        for row in 0..batch.len() {
            let n = row * 4;
            let sep = if row == 0 { "" } else { ", " };
            sql.push_str(&format!("{sep}(${}, ${}, ${}, ${})", n + 1, n + 2, n + 3, n + 4));
        }
        sql.push_str(" ON CONFLICT (response_id, sequence) DO NOTHING");
        let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
        for event in batch {
            insert = insert.bind(id).bind(event.sequence).bind(&event.kind).bind(&event.event);
        }
        insert.execute(&mut **tx).await?;
    }
    Ok(())
}
