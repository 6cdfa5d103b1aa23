-- Transit: taps with the backend's verdict, QR uses across validators, the deny list (from a
-- time on, under a version that starts at 1 so the first revocation publishes 2), validators
-- and their enrolments, fraud records, entitlements, the transit keys devices hold,
-- inspections, metro journeys and guardians' dependants.
CREATE TABLE taps(
    validator_id TEXT NOT NULL, seq INTEGER NOT NULL, at INTEGER NOT NULL, route INTEGER NOT NULL,
    accepted INTEGER NOT NULL, reason TEXT NOT NULL, card_id INTEGER, product TEXT,
    day TEXT NOT NULL, month TEXT NOT NULL, charged_vnd INTEGER NOT NULL,
    verdict TEXT NOT NULL DEFAULT 'unverified', qr_ts INTEGER, qr_counter INTEGER,
    station INTEGER, direction TEXT,
    PRIMARY KEY(validator_id, seq));
CREATE INDEX taps_by_card ON taps(card_id, day);
CREATE INDEX taps_by_day ON taps(day, card_id);
CREATE TABLE deny_cards(card_id INTEGER PRIMARY KEY, denied_at INTEGER NOT NULL DEFAULT 0);
CREATE TABLE deny_devices(key_hash BLOB PRIMARY KEY, denied_at INTEGER NOT NULL);
INSERT OR IGNORE INTO settings(key, value) VALUES ('deny_version', CAST('1' AS BLOB));
CREATE TABLE enrolments(
    code_hash BLOB PRIMARY KEY, label TEXT NOT NULL, route INTEGER, gate TEXT,
    expires_at INTEGER NOT NULL, used_at INTEGER);
CREATE TABLE validators(
    id TEXT PRIMARY KEY, name TEXT NOT NULL, label TEXT NOT NULL, route INTEGER, gate TEXT,
    token_hash BLOB NOT NULL UNIQUE, enrolled_at INTEGER NOT NULL, decommissioned_at INTEGER,
    last_upload_at INTEGER);
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
CREATE TABLE device_keys(
    device_id TEXT NOT NULL, key_hash BLOB NOT NULL, PRIMARY KEY(device_id, key_hash));
CREATE TABLE inspections(
    validator_id TEXT NOT NULL, seq INTEGER NOT NULL, at INTEGER NOT NULL,
    outcome TEXT NOT NULL, reason TEXT NOT NULL, paired INTEGER NOT NULL, tapped_at INTEGER,
    card_id INTEGER, evidence TEXT NOT NULL, recorded_at INTEGER NOT NULL,
    PRIMARY KEY(validator_id, seq));
CREATE TABLE journeys(
    id INTEGER PRIMARY KEY AUTOINCREMENT, card_id INTEGER NOT NULL, product TEXT NOT NULL,
    entry_validator TEXT, entry_seq INTEGER, entry_station INTEGER, entry_at INTEGER,
    exit_validator TEXT, exit_seq INTEGER, exit_station INTEGER, exit_at INTEGER,
    status TEXT NOT NULL, day TEXT NOT NULL, month TEXT NOT NULL,
    fare_vnd INTEGER NOT NULL DEFAULT 0, full_fare_vnd INTEGER NOT NULL DEFAULT 0,
    recorded_at INTEGER NOT NULL);
CREATE INDEX journeys_by_card ON journeys(card_id, status);
CREATE INDEX journeys_by_status ON journeys(status, entry_at);
CREATE INDEX journeys_by_day ON journeys(day, card_id);
CREATE TABLE dependants(
    guardian_account TEXT NOT NULL, dependant_account TEXT NOT NULL, created_at INTEGER NOT NULL,
    PRIMARY KEY(guardian_account, dependant_account));
CREATE INDEX dependants_by_dependant ON dependants(dependant_account);
