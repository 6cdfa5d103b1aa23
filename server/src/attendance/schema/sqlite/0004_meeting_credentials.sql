-- Every meeting credential issued: to which secretary's account and phone key. A secretary
-- replaced has their credentials revoked from that moment: a QR their phone shows afterwards
-- is counted for nobody.
CREATE TABLE meeting_credentials(
    cell TEXT NOT NULL, meeting_id TEXT NOT NULL, secretary_key BLOB NOT NULL,
    account_id TEXT NOT NULL, issued_at INTEGER NOT NULL, revoked_at INTEGER,
    PRIMARY KEY(cell, meeting_id, secretary_key));
CREATE INDEX meeting_credentials_by_account ON meeting_credentials(cell, account_id);
