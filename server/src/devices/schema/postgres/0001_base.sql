-- Accounts (a citizen, by a hash of the ID; a transit card each), their devices and tokens,
-- and registration nonces (identity assertions are single use). Integers are BIGINT
-- throughout (one integer type on the wire between the engines); hashes are BYTEA.
CREATE TABLE accounts(
    id TEXT PRIMARY KEY, citizen_hash BYTEA NOT NULL UNIQUE, cell TEXT,
    card_id BIGINT NOT NULL UNIQUE);
-- rowid: registration order, as SQLite's implicit rowid gives it (the same queries order by it).
CREATE TABLE devices(
    rowid BIGINT GENERATED ALWAYS AS IDENTITY, id TEXT PRIMARY KEY, account_id TEXT NOT NULL REFERENCES accounts(id), name TEXT NOT NULL,
    role TEXT NOT NULL, token_hash BYTEA NOT NULL UNIQUE, created_at BIGINT NOT NULL,
    revoked_at BIGINT);
CREATE INDEX devices_by_account ON devices(account_id);
CREATE TABLE nonces(hash BYTEA PRIMARY KEY, expires_at BIGINT NOT NULL, used_at BIGINT);
