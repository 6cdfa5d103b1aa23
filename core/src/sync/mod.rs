//! Synchronisation with the backend. For now: the durable outbox that domain services write to
//! in the same transaction as the change it describes (the push and pull client is issue 4).

pub mod outbox;
