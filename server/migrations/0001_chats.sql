-- Chat history. Portable between SQLite and PostgreSQL: text ids, epoch-millisecond times, JSON as text.
CREATE TABLE IF NOT EXISTS chats (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    title TEXT NOT NULL,
    visibility TEXT NOT NULL DEFAULT 'private',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS chats_by_user ON chats (user_id, updated_at);

CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    chat_id TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    position BIGINT NOT NULL,
    role TEXT NOT NULL,
    text TEXT NOT NULL,
    items TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    trace_id TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_chat ON messages (chat_id, position);

CREATE TABLE IF NOT EXISTS votes (
    chat_id TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    message_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    is_upvoted BIGINT NOT NULL, -- 1 up, 0 down (portable: the Any driver reads no SQLite booleans)
    created_at BIGINT NOT NULL,
    PRIMARY KEY (chat_id, message_id)
);
