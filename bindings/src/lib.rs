//! # thudo-ffi
//!
//! The UniFFI facade of [`thudo_core`] for Kotlin and Swift. It holds no logic: each object wraps
//! a core service, moves blocking work (SQLite, PBKDF2) onto tokio's blocking pool so the
//! caller's coroutine or task is never blocked, and turns core errors into typed exceptions.
//!
//! Generate bindings with `cargo run -p thudo-ffi --features bindgen --bin uniffi-bindgen --
//! generate --library <libthudo_ffi.so> --language kotlin|swift --out-dir <dir>` (see
//! `scripts/bindings.sh`).

mod handbook;
mod health;
mod health_book;
mod logging;
mod sync;
mod transit;
mod vault;

pub use handbook::*;
pub use health::*;
pub use health_book::*;
pub use logging::*;
pub use sync::*;
pub use transit::*;
pub use vault::*;

uniffi::setup_scaffolding!();

/// Runs blocking core work on tokio's blocking pool and awaits it.
pub(crate) async fn blocking<T, E>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, E>
where
    T: Send + 'static,
    E: Send + 'static + From<Internal>,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(join) => Err(E::from(Internal(if join.is_panic() {
            "the operation panicked inside the library".into()
        } else {
            "the operation was cancelled".into()
        }))),
    }
}

/// The system clock in unix seconds: the FFI's default where core takes an injected time.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A failure of the library itself (a bug), carried to the error type of the call.
pub(crate) struct Internal(pub String);

/// What a domain's error keeps of a vault failure: the two a host acts on (reopen; retry after
/// the user unlocks), and the rest as text.
pub(crate) enum VaultFault {
    Closed,
    Locked(String),
    Other(String),
}

pub(crate) fn vault_fault(e: thudo_core::vault::VaultError) -> VaultFault {
    use thudo_core::vault::VaultError as E;
    match e {
        E::Closed => VaultFault::Closed,
        E::KeyUnavailable { reason } => VaultFault::Locked(reason),
        other => VaultFault::Other(other.to_string()),
    }
}
