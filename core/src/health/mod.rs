//! The electronic health book: records as FHIR R4 resources in the vault ([`records`],
//! [`fhir`]), SMART Health Card verification ([`shc`]) and the childhood vaccination schedule
//! ([`schedule`]).
//!
//! Owns: the `health.records` collection, declared for sync beside its type
//! ([`records::synced`]). May call: the vault, the outbox and collection declarations
//! ([`crate::changes`]), the cryptography ([`crate::crypto`], for ES256). Never calls another
//! domain or the sync engine.

pub mod dcc;
pub mod ddcc;
pub mod fhir;
pub mod records;
pub mod schedule;
pub mod shc;
