-- Enrolled validators, tap evidence and the backend's own verdict, QR uses across validators,
-- fraud records, entitlements, revoked device keys, dated revocations, and a deny-list version
-- that starts at 1 so the first revocation publishes 2.
CREATE TABLE enrolments(
    code_hash BLOB PRIMARY KEY, label TEXT NOT NULL, route INTEGER, gate TEXT,
    expires_at INTEGER NOT NULL, used_at INTEGER);
CREATE TABLE validators(
    id TEXT PRIMARY KEY, name TEXT NOT NULL, label TEXT NOT NULL, route INTEGER, gate TEXT,
    token_hash BLOB NOT NULL UNIQUE, enrolled_at INTEGER NOT NULL, decommissioned_at INTEGER);
ALTER TABLE taps ADD COLUMN verdict TEXT NOT NULL DEFAULT 'unverified';
ALTER TABLE taps ADD COLUMN qr_ts INTEGER;
ALTER TABLE taps ADD COLUMN qr_counter INTEGER;
CREATE TABLE qr_uses(
    card_id INTEGER NOT NULL, qr_ts INTEGER NOT NULL, qr_counter INTEGER NOT NULL,
    validator_id TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY(card_id, qr_ts, qr_counter));
CREATE TABLE fraud(
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, validator_id TEXT NOT NULL,
    seq INTEGER NOT NULL, card_id INTEGER, first_validator_id TEXT, detail TEXT NOT NULL,
    recorded_at INTEGER NOT NULL);
CREATE TABLE entitlements(
    account_id TEXT NOT NULL REFERENCES accounts(id), category INTEGER NOT NULL,
    valid_from INTEGER NOT NULL, valid_until INTEGER NOT NULL, evidence_ref TEXT NOT NULL,
    created_at INTEGER NOT NULL);
CREATE INDEX entitlements_by_account ON entitlements(account_id, category);
ALTER TABLE deny_cards ADD COLUMN denied_at INTEGER NOT NULL DEFAULT 0;
CREATE TABLE deny_devices(key_hash BLOB PRIMARY KEY, denied_at INTEGER NOT NULL);
CREATE TABLE device_keys(
    device_id TEXT NOT NULL, key_hash BLOB NOT NULL, PRIMARY KEY(device_id, key_hash));
INSERT OR IGNORE INTO settings(key, value) VALUES ('deny_version', CAST('1' AS BLOB));
