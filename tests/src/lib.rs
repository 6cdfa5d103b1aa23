//! Cross-crate scenarios; the tests live in `tests/`.
