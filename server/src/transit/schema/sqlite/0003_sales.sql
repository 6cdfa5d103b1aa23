-- Sales: an order has a price and buys its pass (or prepaid credit) only once a payment
-- provider's signed notification confirms it. The ledger records every order, payment,
-- failure, cancellation and refund, and is never updated, only appended to.
CREATE TABLE orders(
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL, device_id TEXT NOT NULL,
    purpose TEXT NOT NULL, card_id INTEGER NOT NULL, product TEXT, category INTEGER,
    route INTEGER, valid_from INTEGER, valid_until INTEGER, device_key BLOB,
    dependant INTEGER NOT NULL, amount_vnd INTEGER NOT NULL, status TEXT NOT NULL,
    provider TEXT NOT NULL, provider_ref TEXT, created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL, settled_at INTEGER, pass_id TEXT, credential BLOB);
CREATE INDEX orders_by_account ON orders(account_id, created_at);
CREATE TABLE ledger(
    id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, day TEXT NOT NULL,
    entry TEXT NOT NULL, order_id TEXT NOT NULL, purpose TEXT NOT NULL,
    card_id INTEGER NOT NULL, product TEXT, category INTEGER, amount_vnd INTEGER NOT NULL,
    provider_ref TEXT);
CREATE INDEX ledger_by_day ON ledger(day, entry);
CREATE INDEX ledger_by_card ON ledger(card_id, entry);
-- Why a card is denied: NULL by the operator, 'balance' while its prepaid balance is below
-- the credit limit (a top-up lifts it).
ALTER TABLE deny_cards ADD COLUMN reason TEXT;
