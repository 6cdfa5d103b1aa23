-- The cells a member left, and when (in the order left): a check-in made in the old cell
-- before the move and uploaded after it still counts there.
CREATE TABLE cell_history(
    seq INTEGER PRIMARY KEY AUTOINCREMENT, account_id TEXT NOT NULL, cell TEXT NOT NULL,
    left_at INTEGER NOT NULL);
CREATE INDEX cell_history_by_account ON cell_history(account_id, left_at);
