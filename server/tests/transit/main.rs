//! The backend trusts no device's word about transit: validators are enrolled by the operator,
//! every uploaded tap is re-verified from the scan it carries, a QR is charged once across all
//! validators (a second use elsewhere is a suspected relay), reduced and free categories need an
//! entitlement, and revocations reach validators in strictly newer deny lists. Each attack below
//! is tried against the real server on loopback and must fail with a typed error or no charge.

#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../common/mod.rs"]
mod common;
mod inspection;
mod metro;
mod payments;
mod payments_follow_up;
mod reviews;
mod riders;
mod trust;
mod validator_tokens;
mod world;
