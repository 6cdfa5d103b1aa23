-- From here on each concern keeps its own numbered steps (storage::migrations): the ledger.
-- Version 6 tells a build from before that this file is newer than it.
CREATE TABLE IF NOT EXISTS schema_steps(
    concern TEXT NOT NULL, step INTEGER NOT NULL, applied_at INTEGER NOT NULL,
    PRIMARY KEY(concern, step));
