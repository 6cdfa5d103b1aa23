-- Expired nonces are purged as new ones are made: by this index, not by reading the table.
CREATE INDEX nonces_by_expiry ON nonces(expires_at);
