//! # thudo-core
//!
//! The plain-Rust core of thudo, Hanoi's offline-first citizen-app library. It knows nothing of
//! FFI: the `thudo-ffi` crate wraps it for Kotlin and Swift, the `thudo` CLI drives it directly.
//!
//! Data flows one way: a domain service calls the [`vault`], the vault calls [`crypto`] and
//! SQLite. See `docs/architecture.md`.

pub mod changes;
pub mod collections;
pub mod crypto;
pub mod handbook;
pub mod health;
pub mod hex;
pub mod net;
pub mod schema;
pub mod sync;
pub mod transit;
pub mod vault;
