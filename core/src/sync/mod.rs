//! Synchronisation with the backend (docs/protocol/sync.md): the [`protocol`] messages, how
//! pulled changes are [`apply`]-ed through each collection's declaration, and the [`client`]
//! that pushes the outbox and pulls every registered collection over HTTP with retries. It
//! knows no domain: collections come from a [`crate::changes::Registry`].

pub mod apply;
pub mod client;
pub mod events;
pub mod status;
/// The backend protocol's messages (they live with the transport, `crate::net`).
pub use crate::net::protocol;
