-- The background response that writes an answer: a page reloaded mid-answer reattaches to it.
ALTER TABLE messages ADD COLUMN response_id TEXT;
