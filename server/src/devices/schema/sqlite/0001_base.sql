-- Accounts (a citizen, by a hash of the ID; a transit card each), their devices and tokens,
-- and registration nonces (identity assertions are single use).
CREATE TABLE accounts(
    id TEXT PRIMARY KEY, citizen_hash BLOB NOT NULL UNIQUE, cell TEXT, card_id INTEGER NOT NULL UNIQUE);
CREATE TABLE devices(
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL REFERENCES accounts(id), name TEXT NOT NULL,
    role TEXT NOT NULL, token_hash BLOB NOT NULL UNIQUE, created_at INTEGER NOT NULL,
    revoked_at INTEGER);
CREATE TABLE nonces(hash BLOB PRIMARY KEY, expires_at INTEGER NOT NULL, used_at INTEGER);
