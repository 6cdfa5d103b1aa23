-- Who published a file to a scope (a party organisation): it, or an organisation above it,
-- withdraws the file; one below or beside it does not. Files published before this step have
-- none, and any organisation governing the scope withdraws them.
ALTER TABLE file_scopes ADD COLUMN publisher TEXT;
