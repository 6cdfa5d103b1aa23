-- From here on each concern keeps its own numbered steps (storage::migrations): the ledger.
-- Version 4 tells a build from before that this database is newer than it.
CREATE TABLE IF NOT EXISTS schema_steps(
    concern TEXT NOT NULL, step BIGINT NOT NULL, applied_at BIGINT NOT NULL,
    PRIMARY KEY(concern, step));
