//! # thudo-core
//!
//! The plain-Rust core of thudo, Hanoi's offline-first citizen-app library. It knows nothing of
//! FFI: the `thudo-ffi` crate wraps it for Kotlin and Swift, the `thudo` CLI drives it directly.
//!
//! Calls go one way, down: [`collections`] (registers every synced collection) and [`sync`]
//! (the engine) and [`reminders`] (read across the domains) above the domains ([`handbook`], [`health`], [`transit`], which never import
//! each other), above [`changes`] (outbox, clocks, collection declarations), the HTTPS
//! transport, [`schema`] (the SQLite migration path) and the [`vault`], above [`crypto`]. See
//! `docs/architecture.md`.

pub mod attachments;
pub mod background;
pub mod changes;
pub mod collections;
pub mod crypto;
pub mod handbook;
pub mod health;
pub mod hex;
pub mod logs;
mod net;
pub mod reminders;
pub mod schema;
pub mod sync;
pub mod transit;
pub mod vault;
