-- The MLflow assessment a vote became, so that a re-vote updates it instead of adding another.
ALTER TABLE votes ADD COLUMN assessment_id TEXT;
