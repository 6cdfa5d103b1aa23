-- Orders still waiting on their provider (awaiting payment, under review, failed or
-- cancelled: a later try may have paid) by age, and how often the provider was asked about
-- each and when it is next asked (a backoff; the largest value: never again). The backend
-- asks the provider about those whose notification never came.
CREATE INDEX orders_by_status ON orders(status, created_at);
CREATE TABLE payment_follow_ups(
    order_id TEXT PRIMARY KEY, asked INTEGER NOT NULL, next_at BIGINT NOT NULL);
