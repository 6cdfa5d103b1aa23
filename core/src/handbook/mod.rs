//! The electronic party-member handbook: the document library with Vietnamese search, and
//! party fees.

pub mod fees;
pub mod fold;
pub mod library;
pub mod member;
