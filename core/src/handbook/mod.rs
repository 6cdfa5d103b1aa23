//! The electronic party-member handbook: the document library with accent-insensitive
//! Vietnamese search ([`library`], its own SQLite file of public documents), the member's
//! profile, notes, meetings, attendance, notices and the four party procedures ([`member`], in
//! the vault), and party fees ([`fees`]).
//!
//! Owns: the `handbook.*` collections, declared for sync beside their types
//! ([`member::synced`], [`library::synced`]). May call: the vault, the outbox and collection
//! declarations ([`crate::changes`]), the shared SQLite migration path ([`crate::schema`]), the
//! backend transport for its own calls ([`backend`]: signed attendance).
//! Never calls another domain or the sync engine.

pub mod attendance;
pub mod backend;
pub mod fees;
mod fold;
pub mod library;
pub mod member;
