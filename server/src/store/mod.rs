//! Chat history: chats, their messages and votes, in SQLite (the embedded default) or PostgreSQL
//! (`DATABASE_URL`, or the `PG*` variables a Databricks Apps database resource injects).
//!
//! One code path for both through sqlx's `Any` driver: portable SQL, `$n` parameters, ids as text,
//! times as epoch milliseconds, JSON as text. Every query names its owner: a chat that is not the
//! caller's is simply not found, never "forbidden" (no hint that it exists).

pub mod feedback;
mod migrations;
pub mod recorder;
pub mod responses;
pub mod usage;

use std::time::Duration;

pub use app::history::{ChatSummary, MessageStatus, StoredChat, StoredMessage, Visibility};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("chat history database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("chat history migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
}

/// An answer as it stands, to save.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerRecord {
    pub id: String,
    pub text: String,
    pub items: serde_json::Value,
    pub status: MessageStatus,
    pub error: Option<String>,
    pub trace_id: Option<String>,
    pub response_id: Option<String>,
}

/// Titles are cut to this many characters (the reference's fallback length).
pub const TITLE_CHARS: usize = 128;

#[derive(Clone)]
pub struct ChatStore {
    pool: AnyPool,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The first `TITLE_CHARS` characters of the first message, on one line.
pub fn fallback_title(first_message: &str) -> String {
    let one_line = first_message.split_whitespace().collect::<Vec<_>>().join(" ");
    let title: String = one_line.chars().take(TITLE_CHARS).collect();
    if title.is_empty() { "New chat".into() } else { title }
}

impl ChatStore {
    /// Connects (creating a SQLite file and its folder if needed) and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        if let Some(path) = url.strip_prefix("sqlite://").map(|p| p.split('?').next().unwrap_or(p))
            && let Some(dir) = std::path::Path::new(path).parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Invalid(format!("cannot create {}: {e}", dir.display())))?;
        }
        let sqlite = url.starts_with("sqlite:");
        let pool = AnyPoolOptions::new()
            // SQLite has one writer: more connections only queue on its lock.
            .max_connections(if sqlite { 4 } else { 10 })
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if sqlite {
                        // WAL: readers never wait for the writer; a busy writer is waited for, not failed.
                        sqlx::query("PRAGMA journal_mode = WAL").execute(&mut *conn).await?;
                        // A commit reaches the write-ahead log at once (a killed process loses
                        // nothing written); it is synced to disk at checkpoints, not at every commit.
                        sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA busy_timeout = 5000").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        migrations::migrator().run(&pool).await?;
        Ok(Self { pool })
    }

    /// Creates the chat for `user` if it does not exist. A chat id that belongs to someone else is
    /// refused as not found.
    pub async fn ensure_chat(&self, user: &str, chat_id: &str, first_message: &str) -> Result<(), StoreError> {
        if chat_id.is_empty() || chat_id.len() > 128 {
            return Err(StoreError::Invalid("chat id must be 1 to 128 characters".into()));
        }
        let now = now_ms();
        sqlx::query(
            "INSERT INTO chats (id, user_id, title, visibility, created_at, updated_at) \
             VALUES ($1, $2, $3, 'private', $4, $4) ON CONFLICT (id) DO NOTHING",
        )
        .bind(chat_id)
        .bind(user)
        .bind(fallback_title(first_message))
        .bind(now)
        .execute(&self.pool)
        .await?;
        let owner: Option<String> = sqlx::query_scalar("SELECT user_id FROM chats WHERE id = $1")
            .bind(chat_id)
            .fetch_optional(&self.pool)
            .await?;
        if owner.as_deref() == Some(user) { Ok(()) } else { Err(StoreError::NotFound) }
    }

    /// Roughly how many bytes a user keeps here: their chats' messages and their background
    /// responses (requests, results and saved events), counted in characters.
    pub async fn stored_bytes(&self, user: &str) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COALESCE((SELECT SUM(LENGTH(m.text) + LENGTH(m.items)) FROM messages m JOIN chats c ON c.id = m.chat_id \
             WHERE c.user_id = $1), 0) \
             + COALESCE((SELECT SUM(LENGTH(r.request) + COALESCE(LENGTH(r.response), 0)) FROM responses r \
             WHERE r.user_id = $1), 0) \
             + COALESCE((SELECT SUM(LENGTH(e.event)) FROM response_events e JOIN responses r ON r.id = e.response_id \
             WHERE r.user_id = $1), 0) AS total",
        )
        .bind(user)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>("total").unwrap_or(0))
    }

    /// Starts the exchange at `position` (0-based): what was at or after it goes (an edited question or
    /// a regenerated answer replaces it), then the question and an empty answer are written. One
    /// transaction: the chat is created or touched (refused as not found if it is someone else's),
    /// a new chat skips the deletes, both messages go in one statement, and so does the background
    /// task that writes the answer (`task`), which the answer names from the start (a page
    /// reloaded at once finds it).
    #[allow(clippy::too_many_arguments)]
    pub async fn begin_exchange(
        &self,
        user: &str,
        chat_id: &str,
        position: i64,
        question_id: &str,
        question: &str,
        answer_id: &str,
        task: Option<&responses::NewTask<'_>>,
    ) -> Result<(), StoreError> {
        if chat_id.is_empty() || chat_id.len() > 128 {
            return Err(StoreError::Invalid("chat id must be 1 to 128 characters".into()));
        }
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        // No row back: the chat exists and is not this user's.
        let created_at: Option<i64> = sqlx::query_scalar(
            "INSERT INTO chats (id, user_id, title, visibility, created_at, updated_at) \
             VALUES ($1, $2, $3, 'private', $4, $4) \
             ON CONFLICT (id) DO UPDATE SET updated_at = excluded.updated_at WHERE chats.user_id = excluded.user_id \
             RETURNING created_at",
        )
        .bind(chat_id)
        .bind(user)
        .bind(fallback_title(question))
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(created_at) = created_at else { return Err(StoreError::NotFound) };
        // A chat this statement created (created_at is now) has no messages to replace.
        if created_at != now || position > 0 {
            sqlx::query(
                "DELETE FROM votes WHERE chat_id = $1 AND message_id IN \
                 (SELECT id FROM messages WHERE chat_id = $1 AND position >= $2)",
            )
            .bind(chat_id)
            .bind(position * 2)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM messages WHERE chat_id = $1 AND position >= $2")
                .bind(chat_id)
                .bind(position * 2)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(task) = task {
            task.insert(&mut *tx).await?;
        }
        sqlx::query(
            "INSERT INTO messages (id, chat_id, position, role, text, items, status, error, trace_id, response_id, created_at) \
             VALUES ($1, $2, $3, 'user', $4, '[]', $5, NULL, NULL, NULL, $8), \
                    ($6, $2, $7, 'assistant', '', '[]', $9, NULL, NULL, $10, $8)",
        )
        .bind(question_id)
        .bind(chat_id)
        .bind(position * 2)
        .bind(question)
        .bind(MessageStatus::Complete.as_str())
        .bind(answer_id)
        .bind(position * 2 + 1)
        .bind(now)
        .bind(MessageStatus::Incomplete.as_str())
        .bind(task.map(|t| t.id))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The chat answer a background response writes, if one does: (chat id, answer id).
    pub async fn answer_of_response(&self, response_id: &str) -> Result<Option<(String, String)>, StoreError> {
        let row = sqlx::query("SELECT chat_id, id FROM messages WHERE response_id = $1 AND role = 'assistant'")
            .bind(response_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get("chat_id")?, r.try_get("id")?))).transpose()
    }

    /// Whether `answer_id` is an answer in the user's chat (before an answer goes on).
    pub async fn check_answer(&self, user: &str, chat_id: &str, answer_id: &str) -> Result<(), StoreError> {
        self.answer_items(user, chat_id, answer_id).await.map(|_| ())
    }

    /// The saved items of `user`'s answer `answer_id` in `chat_id` (not found for anyone else's).
    pub async fn answer_items(
        &self,
        user: &str,
        chat_id: &str,
        answer_id: &str,
    ) -> Result<serde_json::Value, StoreError> {
        let found: Option<String> = sqlx::query_scalar(
            "SELECT m.items FROM messages m JOIN chats c ON c.id = m.chat_id \
             WHERE m.id = $1 AND m.chat_id = $2 AND c.user_id = $3 AND m.role = 'assistant'",
        )
        .bind(answer_id)
        .bind(chat_id)
        .bind(user)
        .fetch_optional(&self.pool)
        .await?;
        let items = found.ok_or(StoreError::NotFound)?;
        Ok(serde_json::from_str(&items).unwrap_or_default())
    }

    /// Saves an answer as it stands (called as it grows, and once more at its end).
    pub async fn save_answer(&self, chat_id: &str, answer: &AnswerRecord) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE messages SET text = $3, items = $4, status = $5, error = $6, trace_id = $7, \
             response_id = COALESCE($8, response_id) \
             WHERE id = $1 AND chat_id = $2",
        )
        .bind(&answer.id)
        .bind(chat_id)
        .bind(&answer.text)
        .bind(answer.items.to_string())
        .bind(answer.status.as_str())
        .bind(answer.error.as_deref())
        .bind(answer.trace_id.as_deref())
        .bind(answer.response_id.as_deref())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The user's chats, newest activity first, `limit` at a time; `before` is the `updated_at` of
    /// the last chat of the previous page.
    pub async fn list_chats(
        &self,
        user: &str,
        limit: i64,
        before: Option<i64>,
    ) -> Result<Vec<ChatSummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, title, visibility, created_at, updated_at FROM chats \
             WHERE user_id = $1 AND updated_at < $2 ORDER BY updated_at DESC, id DESC LIMIT $3",
        )
        .bind(user)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit.clamp(1, 100))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(summary).collect()
    }

    /// A chat with every message, if it is the user's or public.
    pub async fn get_chat(&self, user: &str, chat_id: &str) -> Result<StoredChat, StoreError> {
        let row = sqlx::query("SELECT id, title, visibility, created_at, updated_at, user_id FROM chats WHERE id = $1")
            .bind(chat_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        let chat = summary(&row)?;
        let owned = row.try_get::<String, _>("user_id")? == user;
        if !owned && chat.visibility != Visibility::Public {
            return Err(StoreError::NotFound);
        }
        let rows = sqlx::query(
            "SELECT m.id, m.position, m.role, m.text, m.items, m.status, m.error, m.trace_id, m.response_id, m.created_at, \
             v.is_upvoted FROM messages m LEFT JOIN votes v ON v.message_id = m.id AND v.chat_id = m.chat_id \
             AND v.user_id = $2 WHERE m.chat_id = $1 ORDER BY m.position",
        )
        .bind(chat_id)
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        let messages = rows
            .iter()
            .map(|r| {
                Ok(StoredMessage {
                    id: r.try_get("id")?,
                    position: r.try_get("position")?,
                    role: r.try_get("role")?,
                    text: r.try_get("text")?,
                    items: serde_json::from_str(&r.try_get::<String, _>("items")?).unwrap_or_default(),
                    status: MessageStatus::parse(&r.try_get::<String, _>("status")?),
                    error: r.try_get("error")?,
                    trace_id: r.try_get("trace_id")?,
                    response_id: r.try_get("response_id")?,
                    vote: r.try_get::<Option<i64>, _>("is_upvoted")?.map(|v| v != 0),
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(StoredChat { chat, owned, messages })
    }

    /// Renames and/or changes the visibility of the user's chat.
    pub async fn update_chat(
        &self,
        user: &str,
        chat_id: &str,
        title: Option<&str>,
        visibility: Option<Visibility>,
    ) -> Result<(), StoreError> {
        if let Some(title) = title {
            let title: String = title.trim().chars().take(TITLE_CHARS).collect();
            if title.is_empty() {
                return Err(StoreError::Invalid("title must not be empty".into()));
            }
            let done = sqlx::query("UPDATE chats SET title = $3 WHERE id = $1 AND user_id = $2")
                .bind(chat_id)
                .bind(user)
                .bind(title)
                .execute(&self.pool)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
        }
        if let Some(visibility) = visibility {
            let done = sqlx::query("UPDATE chats SET visibility = $3 WHERE id = $1 AND user_id = $2")
                .bind(chat_id)
                .bind(user)
                .bind(visibility.as_str())
                .execute(&self.pool)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
        }
        Ok(())
    }

    /// Sets a generated title, unless the user renamed the chat meanwhile (the title is still the
    /// fallback).
    pub async fn set_generated_title(&self, chat_id: &str, fallback: &str, title: &str) -> Result<(), StoreError> {
        let title: String = title.trim().chars().take(TITLE_CHARS).collect();
        if !title.is_empty() {
            sqlx::query("UPDATE chats SET title = $3 WHERE id = $1 AND title = $2")
                .bind(chat_id)
                .bind(fallback)
                .bind(title)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Deletes the user's chat; its messages and votes go with it (`ON DELETE CASCADE`).
    pub async fn delete_chat(&self, user: &str, chat_id: &str) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM chats WHERE id = $1 AND user_id = $2")
            .bind(chat_id)
            .bind(user)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    /// Records the user's thumbs up/down on an answer of their chat. Returns the answer's trace id
    /// (for the MLflow assessment) and the assessment an earlier vote on it became, if any.
    pub async fn vote(&self, user: &str, chat_id: &str, message_id: &str, up: bool) -> Result<VoteTarget, StoreError> {
        let row = sqlx::query(
            "SELECT m.trace_id, v.assessment_id FROM messages m JOIN chats c ON c.id = m.chat_id \
             LEFT JOIN votes v ON v.chat_id = m.chat_id AND v.message_id = m.id \
             WHERE m.id = $1 AND m.chat_id = $2 AND c.user_id = $3 AND m.role = 'assistant'",
        )
        .bind(message_id)
        .bind(chat_id)
        .bind(user)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Err(StoreError::NotFound) };
        let target = VoteTarget { trace_id: row.try_get("trace_id")?, assessment_id: row.try_get("assessment_id")? };
        sqlx::query(
            "INSERT INTO votes (chat_id, message_id, user_id, is_upvoted, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (chat_id, message_id) DO UPDATE SET is_upvoted = excluded.is_upvoted, user_id = excluded.user_id",
        )
        .bind(chat_id)
        .bind(message_id)
        .bind(user)
        .bind(i64::from(up))
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(target)
    }

    /// Remembers the MLflow assessment a vote became.
    pub async fn set_vote_assessment(
        &self,
        chat_id: &str,
        message_id: &str,
        assessment_id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE votes SET assessment_id = $3 WHERE chat_id = $1 AND message_id = $2")
            .bind(chat_id)
            .bind(message_id)
            .bind(assessment_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Connections opened from now on use this URL (a Lakebase password is a token that rotates;
    /// open connections stay as they are, since PostgreSQL checks the password only on connect).
    pub fn set_connect_url(&self, url: &str) -> Result<(), StoreError> {
        let options: sqlx::any::AnyConnectOptions = url.parse()?;
        self.pool.set_connect_options(options);
        Ok(())
    }

    /// Whether the database answers (for `/health`-style checks and tests).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// What a vote is about: the answer's trace, and the assessment an earlier vote became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoteTarget {
    pub trace_id: Option<String>,
    pub assessment_id: Option<String>,
}

fn summary(row: &AnyRow) -> Result<ChatSummary, StoreError> {
    Ok(ChatSummary {
        id: row.try_get("id")?,
        title: row.try_get("title")?,
        visibility: Visibility::parse(&row.try_get::<String, _>("visibility")?),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
