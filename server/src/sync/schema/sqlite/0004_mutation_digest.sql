-- What each idempotency key was first sent with (SHA-256, hex, of the mutation's collection,
-- record, operation, clock and payload): the same key sent again with other content is refused
-- instead of being answered as the first. Keys recorded before this step have none and are
-- answered as before.
ALTER TABLE mutations ADD COLUMN digest TEXT;
