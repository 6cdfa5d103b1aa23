-- The bytes each account pushed on each day (UTC day number): a day's pushes are bounded, so
-- one account's devices cannot fill the change log every other device of it pulls. An
-- account's older days are dropped as it pushes.
CREATE TABLE push_budget(
    account_id TEXT NOT NULL, day BIGINT NOT NULL, bytes BIGINT NOT NULL,
    PRIMARY KEY(account_id, day));
