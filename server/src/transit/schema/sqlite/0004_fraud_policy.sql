-- What a fraud record led to under the operator's policy (NULL: not acted on yet; records from
-- before this step are left as recorded), penalty fares charged for it, and dependants the
-- operator allows to travel alone on their guardian's phone.
ALTER TABLE fraud ADD COLUMN action TEXT;
UPDATE fraud SET action = 'record';
CREATE INDEX fraud_unacted ON fraud(id) WHERE action IS NULL;
CREATE TABLE penalties(
    fraud_id INTEGER PRIMARY KEY, card_id INTEGER NOT NULL, day TEXT NOT NULL,
    amount_vnd INTEGER NOT NULL, at INTEGER NOT NULL);
CREATE INDEX penalties_by_card ON penalties(card_id);
CREATE INDEX penalties_by_day ON penalties(day);
ALTER TABLE dependants ADD COLUMN travels_alone INTEGER NOT NULL DEFAULT 0;
-- Transit keys are looked up by their hash (the key claimed by one account; whose phone holds it).
CREATE INDEX device_keys_by_key ON device_keys(key_hash);
-- A dependant's ride waits to be judged until its validator's log is known past its window
-- (the holder may tap just after, in a later upload): the holder's card, and when.
ALTER TABLE taps ADD COLUMN together_with INTEGER;
ALTER TABLE taps ADD COLUMN together_due INTEGER;
CREATE INDEX taps_together_due ON taps(validator_id, together_due) WHERE together_due IS NOT NULL;
