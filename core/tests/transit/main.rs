//! Transit: issuer, phone and validator together, good input and bad. One test binary, its
//! tests split by scenario family; the shared world is in `world`.

#![allow(clippy::unwrap_used)] // tests fail by panicking

#[path = "../common/mod.rs"]
mod common;
mod world;

mod bus;
mod inspection;
mod metro;
mod phone;
mod qr;
mod trust;
mod vendor;
