-- Sales: an order has a price and buys its pass (or prepaid credit) only once a payment
-- provider's signed notification confirms it. The ledger records every order, payment,
-- failure, cancellation and refund, and is never updated, only appended to.
CREATE TABLE orders(
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL, device_id TEXT NOT NULL,
    purpose TEXT NOT NULL, card_id BIGINT NOT NULL, product TEXT, category BIGINT,
    route BIGINT, valid_from BIGINT, valid_until BIGINT, device_key BYTEA,
    dependant BIGINT NOT NULL, amount_vnd BIGINT NOT NULL, status TEXT NOT NULL,
    provider TEXT NOT NULL, provider_ref TEXT, created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL, settled_at BIGINT, pass_id TEXT, credential BYTEA);
CREATE INDEX orders_by_account ON orders(account_id, created_at);
CREATE TABLE ledger(
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at BIGINT NOT NULL, day TEXT NOT NULL,
    entry TEXT NOT NULL, order_id TEXT NOT NULL, purpose TEXT NOT NULL,
    card_id BIGINT NOT NULL, product TEXT, category BIGINT, amount_vnd BIGINT NOT NULL,
    provider_ref TEXT);
CREATE INDEX ledger_by_day ON ledger(day, entry);
CREATE INDEX ledger_by_card ON ledger(card_id, entry);
-- Why a card is denied: NULL by the operator, 'balance' while its prepaid balance is below
-- the credit limit (a top-up lifts it).
ALTER TABLE deny_cards ADD COLUMN reason TEXT;
