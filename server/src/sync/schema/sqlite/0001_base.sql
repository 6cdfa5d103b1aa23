-- The change log by scope, the clocks of last-writer-wins records, and the idempotency keys
-- of applied mutations.
CREATE TABLE changes(
    seq INTEGER PRIMARY KEY AUTOINCREMENT, scope TEXT NOT NULL, collection TEXT NOT NULL,
    record_id TEXT NOT NULL, op TEXT NOT NULL, payload TEXT NOT NULL, hlc TEXT NOT NULL);
CREATE INDEX changes_by_scope ON changes(scope, collection, seq);
CREATE TABLE versions(
    scope TEXT NOT NULL, collection TEXT NOT NULL, record_id TEXT NOT NULL, hlc TEXT NOT NULL,
    PRIMARY KEY(scope, collection, record_id));
CREATE TABLE mutations(
    account_id TEXT NOT NULL, idempotency_key TEXT NOT NULL, outcome TEXT NOT NULL,
    PRIMARY KEY(account_id, idempotency_key));
