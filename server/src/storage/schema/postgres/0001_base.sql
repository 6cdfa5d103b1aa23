-- Settings (the storage layer's key-value store).
CREATE TABLE settings(key TEXT PRIMARY KEY, value BYTEA NOT NULL);
