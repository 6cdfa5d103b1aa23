-- The operators' audit trail: append-only, each entry sealed with an HMAC over the one before
-- (operators/audit.rs).
CREATE TABLE audit_log(
    seq BIGINT PRIMARY KEY, at BIGINT NOT NULL, subject TEXT NOT NULL, role TEXT NOT NULL,
    organisation TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL,
    refers_to BIGINT, detail TEXT NOT NULL, key_number BIGINT NOT NULL, mac BYTEA NOT NULL);
