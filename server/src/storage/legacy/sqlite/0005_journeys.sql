-- Metro journeys: an entry tap and an exit tap priced together by the station fare table.
-- Gate taps say where and which way; entry gates' last uploads say how complete the entry
-- feed is.
ALTER TABLE taps ADD COLUMN station INTEGER;
ALTER TABLE taps ADD COLUMN direction TEXT;
ALTER TABLE validators ADD COLUMN last_upload_at INTEGER;
CREATE TABLE journeys(
    id INTEGER PRIMARY KEY AUTOINCREMENT, card_id INTEGER NOT NULL, product TEXT NOT NULL,
    entry_validator TEXT, entry_seq INTEGER, entry_station INTEGER, entry_at INTEGER,
    exit_validator TEXT, exit_seq INTEGER, exit_station INTEGER, exit_at INTEGER,
    status TEXT NOT NULL, day TEXT NOT NULL, month TEXT NOT NULL,
    fare_vnd INTEGER NOT NULL DEFAULT 0, full_fare_vnd INTEGER NOT NULL DEFAULT 0,
    recorded_at INTEGER NOT NULL);
CREATE INDEX journeys_by_card ON journeys(card_id, status);
CREATE INDEX journeys_by_status ON journeys(status, entry_at);
-- The cards that reached a day's cap, for the validator feed.
CREATE INDEX journeys_by_day ON journeys(day, card_id);
CREATE INDEX taps_by_day ON taps(day, card_id);
-- Guardianship (from the household registry): a guardian's phones may buy and hold a
-- dependant's passes and see their trips.
CREATE TABLE dependants(
    guardian_account TEXT NOT NULL, dependant_account TEXT NOT NULL, created_at INTEGER NOT NULL,
    PRIMARY KEY(guardian_account, dependant_account));
CREATE INDEX dependants_by_dependant ON dependants(dependant_account);
