-- Registration nonces (identity assertions are single use) and revoked devices.
CREATE TABLE nonces(hash BLOB PRIMARY KEY, expires_at INTEGER NOT NULL, used_at INTEGER);
ALTER TABLE devices ADD COLUMN revoked_at INTEGER;
