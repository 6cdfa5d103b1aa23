-- An exit with no entry settled while an entry gate had not uploaded past it: the time of that
-- exit, until every entry gate has (then it is checked for one entry let out twice) or the
-- check is given up. NULL for every other journey, so the index holds only those waiting.
ALTER TABLE journeys ADD COLUMN repeat_check_at BIGINT;
CREATE INDEX journeys_by_repeat_check ON journeys(repeat_check_at) WHERE repeat_check_at IS NOT NULL;
