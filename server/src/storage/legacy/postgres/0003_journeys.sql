-- Metro journeys: an entry tap and an exit tap priced together by the station fare table.
-- Gate taps say where and which way; entry gates' last uploads say how complete the entry
-- feed is.
ALTER TABLE taps ADD COLUMN station BIGINT;
ALTER TABLE taps ADD COLUMN direction TEXT;
ALTER TABLE validators ADD COLUMN last_upload_at BIGINT;
CREATE TABLE journeys(
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, card_id BIGINT NOT NULL, product TEXT NOT NULL,
    entry_validator TEXT, entry_seq BIGINT, entry_station BIGINT, entry_at BIGINT,
    exit_validator TEXT, exit_seq BIGINT, exit_station BIGINT, exit_at BIGINT,
    status TEXT NOT NULL, day TEXT NOT NULL, month TEXT NOT NULL,
    fare_vnd BIGINT NOT NULL DEFAULT 0, full_fare_vnd BIGINT NOT NULL DEFAULT 0,
    recorded_at BIGINT NOT NULL);
CREATE INDEX journeys_by_card ON journeys(card_id, status);
CREATE INDEX journeys_by_status ON journeys(status, entry_at);
-- The cards that reached a day's cap, for the validator feed.
CREATE INDEX journeys_by_day ON journeys(day, card_id);
CREATE INDEX taps_by_day ON taps(day, card_id);
-- Guardianship (from the household registry): a guardian's phones may buy and hold a
-- dependant's passes and see their trips.
CREATE TABLE dependants(
    guardian_account TEXT NOT NULL, dependant_account TEXT NOT NULL, created_at BIGINT NOT NULL,
    PRIMARY KEY(guardian_account, dependant_account));
CREATE INDEX dependants_by_dependant ON dependants(dependant_account);
