-- A provider's notification is looked up by its order and transaction reference while the
-- order's lock is held: without an index that read scans the whole ledger.
CREATE INDEX ledger_by_order ON ledger(order_id, provider_ref);
