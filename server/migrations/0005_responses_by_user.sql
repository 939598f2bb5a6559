-- Per-user storage quotas add up a user's background responses.
CREATE INDEX IF NOT EXISTS responses_by_user ON responses (user_id);
