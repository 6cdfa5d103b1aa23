-- When a validator's current token was first used after a renewal (its previous token's grace
-- ended then): the previous token presented again, past a window for the client's retries,
-- shows that two parties hold the validator's tokens.
ALTER TABLE validators ADD COLUMN successor_used_at INTEGER;
