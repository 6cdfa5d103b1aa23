-- Payments a provider holds for review are listed until the provider settles them, whatever
-- day they were reported: this index finds them without scanning the ledger.
CREATE INDEX ledger_under_review ON ledger(id) WHERE entry = 'payment_under_review';
