-- Published files by their SHA-256: their bytes in chunks, the text extracted from a PDF, and
-- the scopes (a party cell, an account) whose devices may fetch them.
CREATE TABLE files(
    sha256 TEXT PRIMARY KEY, size INTEGER NOT NULL, media_type TEXT NOT NULL,
    text TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE file_chunks(
    sha256 TEXT NOT NULL, idx INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY(sha256, idx));
CREATE TABLE file_scopes(
    sha256 TEXT NOT NULL, scope TEXT NOT NULL, PRIMARY KEY(sha256, scope));
