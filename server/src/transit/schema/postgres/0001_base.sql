-- Transit: taps with the backend's verdict, QR uses across validators, the deny list (from a
-- time on, under a version that starts at 1 so the first revocation publishes 2), validators
-- and their enrolments, fraud records, entitlements, the transit keys devices hold,
-- inspections, metro journeys and guardians' dependants.
CREATE TABLE taps(
    validator_id TEXT NOT NULL, seq BIGINT NOT NULL, at BIGINT NOT NULL, route BIGINT NOT NULL,
    accepted BIGINT NOT NULL, reason TEXT NOT NULL, card_id BIGINT, product TEXT,
    day TEXT NOT NULL, month TEXT NOT NULL, charged_vnd BIGINT NOT NULL,
    verdict TEXT NOT NULL DEFAULT 'unverified', qr_ts BIGINT, qr_counter BIGINT,
    station BIGINT, direction TEXT,
    PRIMARY KEY(validator_id, seq));
CREATE INDEX taps_by_card ON taps(card_id, day);
CREATE INDEX taps_by_day ON taps(day, card_id);
CREATE TABLE deny_cards(card_id BIGINT PRIMARY KEY, denied_at BIGINT NOT NULL DEFAULT 0);
CREATE TABLE deny_devices(key_hash BYTEA PRIMARY KEY, denied_at BIGINT NOT NULL);
INSERT INTO settings(key, value) VALUES ('deny_version', CAST('1' AS BYTEA)) ON CONFLICT DO NOTHING;
CREATE TABLE enrolments(
    code_hash BYTEA PRIMARY KEY, label TEXT NOT NULL, route BIGINT, gate TEXT,
    expires_at BIGINT NOT NULL, used_at BIGINT);
CREATE TABLE validators(
    id TEXT PRIMARY KEY, name TEXT NOT NULL, label TEXT NOT NULL, route BIGINT, gate TEXT,
    token_hash BYTEA NOT NULL UNIQUE, enrolled_at BIGINT NOT NULL, decommissioned_at BIGINT,
    last_upload_at BIGINT);
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
CREATE TABLE inspections(
    validator_id TEXT NOT NULL, seq BIGINT NOT NULL, at BIGINT NOT NULL,
    outcome TEXT NOT NULL, reason TEXT NOT NULL, paired BIGINT NOT NULL, tapped_at BIGINT,
    card_id BIGINT, evidence TEXT NOT NULL, recorded_at BIGINT NOT NULL,
    PRIMARY KEY(validator_id, seq));
CREATE TABLE journeys(
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, card_id BIGINT NOT NULL, product TEXT NOT NULL,
    entry_validator TEXT, entry_seq BIGINT, entry_station BIGINT, entry_at BIGINT,
    exit_validator TEXT, exit_seq BIGINT, exit_station BIGINT, exit_at BIGINT,
    status TEXT NOT NULL, day TEXT NOT NULL, month TEXT NOT NULL,
    fare_vnd BIGINT NOT NULL DEFAULT 0, full_fare_vnd BIGINT NOT NULL DEFAULT 0,
    recorded_at BIGINT NOT NULL);
CREATE INDEX journeys_by_card ON journeys(card_id, status);
CREATE INDEX journeys_by_status ON journeys(status, entry_at);
CREATE INDEX journeys_by_day ON journeys(day, card_id);
CREATE TABLE dependants(
    guardian_account TEXT NOT NULL, dependant_account TEXT NOT NULL, created_at BIGINT NOT NULL,
    PRIMARY KEY(guardian_account, dependant_account));
CREATE INDEX dependants_by_dependant ON dependants(dependant_account);
