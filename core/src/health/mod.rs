//! The electronic health book: records as FHIR R4 resources in the vault ([`records`],
//! [`fhir`]), SMART Health Card verification ([`shc`]) and the childhood vaccination schedule
//! ([`schedule`]).

pub mod fhir;
pub mod records;
pub mod schedule;
pub mod shc;
