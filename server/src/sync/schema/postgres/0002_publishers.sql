-- Who published each record an operator published (a health facility): another facility may
-- not replace it.
CREATE TABLE publishers(
    scope TEXT NOT NULL, collection TEXT NOT NULL, record_id TEXT NOT NULL,
    publisher TEXT NOT NULL, PRIMARY KEY(scope, collection, record_id));
