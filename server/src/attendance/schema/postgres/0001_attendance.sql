-- Cell secretaries (who may be issued a meeting's check-in credential), members' verified
-- check-ins (once per member and meeting, with the evidence), and each device's check-in key
-- (the first one it signed with).
CREATE TABLE cell_secretaries(
    cell TEXT PRIMARY KEY, account_id TEXT NOT NULL, set_at BIGINT NOT NULL);
CREATE TABLE check_ins(
    cell TEXT NOT NULL, meeting_id TEXT NOT NULL, account_id TEXT NOT NULL,
    device_id TEXT NOT NULL, shown_at BIGINT NOT NULL, scanned_at BIGINT NOT NULL,
    received_at BIGINT NOT NULL, evidence BYTEA NOT NULL,
    PRIMARY KEY(cell, meeting_id, account_id));
CREATE TABLE check_in_keys(
    device_id TEXT PRIMARY KEY, member_key BYTEA NOT NULL);
CREATE UNIQUE INDEX check_in_keys_by_key ON check_in_keys(member_key);
