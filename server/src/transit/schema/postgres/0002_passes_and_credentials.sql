-- Passes as sold: an account record (product, category, card, route, window) that holds
-- while it is valid and not cancelled; its credentials are renewed from it, free.
CREATE TABLE passes(
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL, card_id BIGINT NOT NULL,
    product TEXT NOT NULL, category BIGINT NOT NULL, route BIGINT NOT NULL,
    valid_from BIGINT NOT NULL, valid_until BIGINT NOT NULL, cancelled_at BIGINT,
    created_at BIGINT NOT NULL);
CREATE INDEX passes_by_card ON passes(card_id, valid_until);
-- Credentials as issued: which key and card each binds and until when. A device holds a
-- bounded number of live keys, an account's orders are counted, and a denied key or card
-- leaves the deny list once nothing it could hold can still ride (`until`; NULL for entries
-- denied before this step: listed as before).
CREATE TABLE credentials(
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, account_id TEXT NOT NULL,
    device_id TEXT NOT NULL, key_hash BYTEA NOT NULL, card_id BIGINT NOT NULL,
    product TEXT NOT NULL, pass_until BIGINT NOT NULL, not_after BIGINT NOT NULL,
    issued_at BIGINT NOT NULL);
CREATE INDEX credentials_by_key ON credentials(key_hash, not_after);
CREATE INDEX credentials_by_card ON credentials(card_id, pass_until);
CREATE INDEX credentials_by_account ON credentials(account_id, issued_at);
CREATE INDEX credentials_by_device ON credentials(device_id, not_after);
ALTER TABLE deny_cards ADD COLUMN until BIGINT;
ALTER TABLE deny_devices ADD COLUMN until BIGINT;
