-- The operators' audit trail: append-only, each entry sealed with an HMAC over the one before
-- (operators/audit.rs).
CREATE TABLE audit_log(
    seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, subject TEXT NOT NULL, role TEXT NOT NULL,
    organisation TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL,
    refers_to INTEGER, detail TEXT NOT NULL, key_number INTEGER NOT NULL, mac BLOB NOT NULL);
