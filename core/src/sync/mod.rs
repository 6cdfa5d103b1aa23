//! Synchronisation with the backend (docs/protocol/sync.md): the durable [`outbox`] that domain
//! services write in the same transaction as their change, the [`protocol`] messages, the
//! [`hlc`] that orders last-writer-wins writes, how pulled changes are [`apply`]-ed, and the
//! [`client`] that pushes and pulls over HTTP with retries.

pub mod apply;
pub mod client;
pub mod hlc;
pub mod outbox;
pub mod protocol;
