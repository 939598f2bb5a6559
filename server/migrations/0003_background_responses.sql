-- Background responses (`"background": true`): the request, where the task stands, and every stream
-- event it wrote, so a client can poll, resume from a sequence number, and a restarted server can
-- take the task over.
CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    status TEXT NOT NULL, -- queued | in_progress | completed | failed | cancelled
    request TEXT NOT NULL, -- the validated request (JSON)
    response TEXT, -- the final response object (JSON), once the task ended
    worker TEXT NOT NULL, -- the process that runs it
    heartbeat_at BIGINT NOT NULL, -- last sign of life of that process (epoch ms)
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_by_status ON responses (status, heartbeat_at);

CREATE TABLE IF NOT EXISTS response_events (
    response_id TEXT NOT NULL REFERENCES responses (id) ON DELETE CASCADE,
    sequence BIGINT NOT NULL,
    kind TEXT NOT NULL,
    event TEXT NOT NULL, -- the stream event (JSON)
    PRIMARY KEY (response_id, sequence)
);
