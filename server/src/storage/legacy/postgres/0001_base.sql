-- The backend's schema on PostgreSQL: the same tables as SQLite's version 3. Integers are
-- BIGINT throughout (one integer type on the wire between the engines); hashes are BYTEA.
CREATE TABLE accounts(
    id TEXT PRIMARY KEY, citizen_hash BYTEA NOT NULL UNIQUE, cell TEXT,
    card_id BIGINT NOT NULL UNIQUE);
-- rowid: registration order, as SQLite's implicit rowid gives it (the same queries order by it).
CREATE TABLE devices(
    rowid BIGINT GENERATED ALWAYS AS IDENTITY, id TEXT PRIMARY KEY, account_id TEXT NOT NULL REFERENCES accounts(id), name TEXT NOT NULL,
    role TEXT NOT NULL, token_hash BYTEA NOT NULL UNIQUE, created_at BIGINT NOT NULL,
    revoked_at BIGINT);
CREATE INDEX devices_by_account ON devices(account_id);
-- The change log. A change's seq is taken while its scope's lock is held, so within a scope
-- seq order is commit order and a cursor never passes a change committed late.
CREATE TABLE changes(
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, scope TEXT NOT NULL,
    collection TEXT NOT NULL, record_id TEXT NOT NULL, op TEXT NOT NULL, payload TEXT NOT NULL,
    hlc TEXT NOT NULL);
CREATE INDEX changes_by_scope ON changes(scope, collection, seq);
CREATE TABLE versions(
    scope TEXT NOT NULL, collection TEXT NOT NULL, record_id TEXT NOT NULL, hlc TEXT NOT NULL,
    PRIMARY KEY(scope, collection, record_id));
CREATE TABLE mutations(
    account_id TEXT NOT NULL, idempotency_key TEXT NOT NULL, outcome TEXT NOT NULL,
    PRIMARY KEY(account_id, idempotency_key));
CREATE TABLE taps(
    validator_id TEXT NOT NULL, seq BIGINT NOT NULL, at BIGINT NOT NULL, route BIGINT NOT NULL,
    accepted BIGINT NOT NULL, reason TEXT NOT NULL, card_id BIGINT, product TEXT,
    day TEXT NOT NULL, month TEXT NOT NULL, charged_vnd BIGINT NOT NULL,
    verdict TEXT NOT NULL DEFAULT 'unverified', qr_ts BIGINT, qr_counter BIGINT,
    PRIMARY KEY(validator_id, seq));
CREATE INDEX taps_by_card ON taps(card_id, day);
CREATE TABLE deny_cards(card_id BIGINT PRIMARY KEY, denied_at BIGINT NOT NULL DEFAULT 0);
CREATE TABLE deny_devices(key_hash BYTEA PRIMARY KEY, denied_at BIGINT NOT NULL);
CREATE TABLE settings(key TEXT PRIMARY KEY, value BYTEA NOT NULL);
INSERT INTO settings(key, value) VALUES ('deny_version', CAST('1' AS BYTEA));
CREATE TABLE enrolments(
    code_hash BYTEA PRIMARY KEY, label TEXT NOT NULL, route BIGINT, gate TEXT,
    expires_at BIGINT NOT NULL, used_at BIGINT);
CREATE TABLE validators(
    id TEXT PRIMARY KEY, name TEXT NOT NULL, label TEXT NOT NULL, route BIGINT, gate TEXT,
    token_hash BYTEA NOT NULL UNIQUE, enrolled_at BIGINT NOT NULL, decommissioned_at BIGINT);
CREATE TABLE qr_uses(
    card_id BIGINT NOT NULL, qr_ts BIGINT NOT NULL, qr_counter BIGINT NOT NULL,
    validator_id TEXT NOT NULL, seq BIGINT NOT NULL, PRIMARY KEY(card_id, qr_ts, qr_counter));
CREATE TABLE fraud(
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, kind TEXT NOT NULL,
    validator_id TEXT NOT NULL, seq BIGINT NOT NULL, card_id BIGINT, first_validator_id TEXT,
    detail TEXT NOT NULL, recorded_at BIGINT NOT NULL);
CREATE TABLE entitlements(
    account_id TEXT NOT NULL REFERENCES accounts(id), category BIGINT NOT NULL,
    valid_from BIGINT NOT NULL, valid_until BIGINT NOT NULL, evidence_ref TEXT NOT NULL,
    created_at BIGINT NOT NULL);
CREATE INDEX entitlements_by_account ON entitlements(account_id, category);
CREATE TABLE device_keys(
    device_id TEXT NOT NULL, key_hash BYTEA NOT NULL, PRIMARY KEY(device_id, key_hash));
CREATE INDEX device_keys_by_hash ON device_keys(key_hash);
CREATE TABLE nonces(hash BYTEA PRIMARY KEY, expires_at BIGINT NOT NULL, used_at BIGINT);
