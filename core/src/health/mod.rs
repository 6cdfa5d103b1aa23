//! The electronic health book. For now: verification of SMART Health Cards.

pub mod shc;
