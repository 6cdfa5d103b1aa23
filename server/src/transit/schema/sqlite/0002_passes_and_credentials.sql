-- Passes as sold: an account record (product, category, card, route, window) that holds
-- while it is valid and not cancelled; its credentials are renewed from it, free.
CREATE TABLE passes(
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL, card_id INTEGER NOT NULL,
    product TEXT NOT NULL, category INTEGER NOT NULL, route INTEGER NOT NULL,
    valid_from INTEGER NOT NULL, valid_until INTEGER NOT NULL, cancelled_at INTEGER,
    created_at INTEGER NOT NULL);
CREATE INDEX passes_by_card ON passes(card_id, valid_until);
-- Credentials as issued: which key and card each binds and until when. A device holds a
-- bounded number of live keys, an account's orders are counted, and a denied key or card
-- leaves the deny list once nothing it could hold can still ride (`until`; NULL for entries
-- denied before this step: listed as before).
CREATE TABLE credentials(
    id INTEGER PRIMARY KEY AUTOINCREMENT, account_id TEXT NOT NULL, device_id TEXT NOT NULL,
    key_hash BLOB NOT NULL, card_id INTEGER NOT NULL, product TEXT NOT NULL,
    pass_until INTEGER NOT NULL, not_after INTEGER NOT NULL, issued_at INTEGER NOT NULL);
CREATE INDEX credentials_by_key ON credentials(key_hash, not_after);
CREATE INDEX credentials_by_card ON credentials(card_id, pass_until);
CREATE INDEX credentials_by_account ON credentials(account_id, issued_at);
CREATE INDEX credentials_by_device ON credentials(device_id, not_after);
ALTER TABLE deny_cards ADD COLUMN until INTEGER;
ALTER TABLE deny_devices ADD COLUMN until INTEGER;
