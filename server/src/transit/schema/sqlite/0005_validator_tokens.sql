-- Validator tokens expire and are renewed: the current token until when, and the one it
-- replaced, honoured a while so that a renewal whose answer was lost is not a lock-out.
-- Validators enrolled before have 30 days from now.
ALTER TABLE validators ADD COLUMN token_expires_at INTEGER;
ALTER TABLE validators ADD COLUMN previous_token_hash BLOB;
ALTER TABLE validators ADD COLUMN previous_valid_until INTEGER;
UPDATE validators SET token_expires_at = CAST(strftime('%s', 'now') AS INTEGER) + 2592000;
CREATE UNIQUE INDEX validators_by_previous_token ON validators(previous_token_hash);
