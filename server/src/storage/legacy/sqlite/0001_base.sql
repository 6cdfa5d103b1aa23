-- The base tables (idempotent: files made before versioning hold exactly these).
CREATE TABLE IF NOT EXISTS accounts(
    id TEXT PRIMARY KEY, citizen_hash BLOB NOT NULL UNIQUE, cell TEXT, card_id INTEGER NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS devices(
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL REFERENCES accounts(id), name TEXT NOT NULL,
    role TEXT NOT NULL, token_hash BLOB NOT NULL UNIQUE, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS changes(
    seq INTEGER PRIMARY KEY AUTOINCREMENT, scope TEXT NOT NULL, collection TEXT NOT NULL,
    record_id TEXT NOT NULL, op TEXT NOT NULL, payload TEXT NOT NULL, hlc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS changes_by_scope ON changes(scope, collection, seq);
CREATE TABLE IF NOT EXISTS versions(
    scope TEXT NOT NULL, collection TEXT NOT NULL, record_id TEXT NOT NULL, hlc TEXT NOT NULL,
    PRIMARY KEY(scope, collection, record_id));
CREATE TABLE IF NOT EXISTS mutations(
    account_id TEXT NOT NULL, idempotency_key TEXT NOT NULL, outcome TEXT NOT NULL,
    PRIMARY KEY(account_id, idempotency_key));
CREATE TABLE IF NOT EXISTS taps(
    validator_id TEXT NOT NULL, seq INTEGER NOT NULL, at INTEGER NOT NULL, route INTEGER NOT NULL,
    accepted INTEGER NOT NULL, reason TEXT NOT NULL, card_id INTEGER, product TEXT,
    day TEXT NOT NULL, month TEXT NOT NULL, charged_vnd INTEGER NOT NULL,
    PRIMARY KEY(validator_id, seq));
CREATE INDEX IF NOT EXISTS taps_by_card ON taps(card_id, day);
CREATE TABLE IF NOT EXISTS deny_cards(card_id INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS settings(key TEXT PRIMARY KEY, value BLOB NOT NULL);
