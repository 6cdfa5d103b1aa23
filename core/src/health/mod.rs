//! The electronic health book: records as FHIR R4 resources in the vault ([`records`],
//! [`fhir`]), SMART Health Card verification ([`shc`]), vaccine passports ([`dcc`]: EU DCC),
//! the WHO's DDCC core data set ([`ddcc`]), the trust bundle that says whom to trust
//! ([`trust_bundle`]) and the childhood vaccination schedule ([`schedule`]).
//!
//! Owns: the `health.records` collection, declared for sync beside its type
//! ([`records::synced`]), and the installed trust bundle. May call: the vault, the outbox and
//! collection declarations ([`crate::changes`]), the cryptography ([`crate::crypto`], for
//! ES256), and the backend client (`net`) to fetch the trust bundle. Never calls
//! another domain or the sync engine.

pub mod dcc;
pub mod ddcc;

/// How far in the future a card's issue time (`nbf`, `iat`) may be and still be taken: a card
/// downloaded the moment it was issued, scanned on a phone whose clock runs a little slow, is
/// genuine. Expiry gets no such grace.
pub const ISSUE_CLOCK_TOLERANCE_SECS: i64 = 5 * 60;

pub mod fhir;
pub mod records;
pub mod schedule;
pub mod shc;
pub mod trust_bundle;
