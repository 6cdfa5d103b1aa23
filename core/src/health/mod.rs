//! The electronic health book. For now: verification of SMART Health Cards.

pub mod schedule;
pub mod shc;
