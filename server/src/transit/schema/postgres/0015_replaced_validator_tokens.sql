-- Validator tokens replaced before their first use: a renewal presenting the previous token
-- again (the answer to the first was lost, or a copy of the previous token renewed after the
-- validator did). Nobody honest holds one; presented later, it shows two holders.
CREATE TABLE validator_replaced_tokens(
    token_hash BYTEA PRIMARY KEY, validator_id TEXT NOT NULL, replaced_at BIGINT NOT NULL);
CREATE INDEX validator_replaced_tokens_by_time ON validator_replaced_tokens(replaced_at);
