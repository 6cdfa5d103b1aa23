-- When this backend began recording the meeting credentials it issues: a check-in under an
-- unrecorded credential counts only for a QR shown before then (issued by a version that kept
-- no record; uploaded within the grace after the upgrade).
CREATE TABLE meeting_credentials_since(at INTEGER NOT NULL);
INSERT INTO meeting_credentials_since(at) VALUES (CAST(strftime('%s', 'now') AS INTEGER));
