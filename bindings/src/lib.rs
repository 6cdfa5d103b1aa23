//! # thudo-ffi
//!
//! The UniFFI facade of [`thudo_core`] for Kotlin and Swift. It holds no logic: each object wraps
//! a core service, moves blocking work (SQLite, PBKDF2) onto tokio's blocking pool so the
//! caller's coroutine or task is never blocked, and turns core errors into typed exceptions.
//!
//! Generate bindings with `cargo run -p thudo-ffi --features bindgen --bin uniffi-bindgen --
//! generate --library <libthudo_ffi.so> --language kotlin|swift --out-dir <dir>` (see
//! `scripts/bindings.sh`).

mod attachments;
mod attendance;
mod cancel;
mod handbook;
mod health;
mod health_book;
mod http;
mod logging;
mod reminders;
mod sync;
mod transit;
mod transit_client;
mod vault;

pub use attachments::AttachmentError;
pub use cancel::CancelToken;
pub use handbook::*;
pub use health::*;
pub use health_book::*;
pub use http::*;
pub use logging::*;
pub use sync::*;
pub use transit::*;
pub use transit_client::*;
pub use vault::*;

use thudo_core::background::Unfinished;

uniffi::setup_scaffolding!();

/// Runs blocking core work on tokio's blocking pool and awaits it.
pub(crate) async fn blocking<T, E>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, E>
where
    T: Send + 'static,
    E: Send + 'static + From<Internal>,
{
    match thudo_core::background::run_blocking(work).await {
        Ok(result) => result,
        Err(Unfinished::Panicked) => Err(E::from(Internal(
            "the operation panicked inside the library".into(),
        ))),
        Err(Unfinished::Cancelled) => Err(E::from(Internal("the operation was cancelled".into()))),
    }
}

/// The system clock in unix seconds: the FFI's default where core takes an injected time.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The system clock as the host sees time: signed unix seconds.
pub(crate) fn now() -> i64 {
    signed(unix_now())
}

/// A core number as the host sees it. The host has no unsigned types (Java cannot call
/// functions taking them), so every number crosses as `i64` (or `i32` for small ones); a value
/// beyond `i64::MAX` (none that core makes) saturates rather than turning negative.
pub(crate) fn signed(value: impl TryInto<i64>) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

/// A small core number (a count of attempts, a QR's size) as the host's `i32`; saturates.
pub(crate) fn small(value: impl TryInto<i32>) -> i32 {
    value.try_into().unwrap_or(i32::MAX)
}

/// A card id as the host sees it: the same 64 bits, so every id stays distinct and converts
/// back exactly (`card_id_from_host`). Ids above 2^63 (the backend issues none; a forged QR may
/// carry one) appear negative.
pub(crate) fn card_id_to_host(id: u64) -> i64 {
    id as i64
}

/// A card id from the host, bit for bit (see `card_id_to_host`).
pub(crate) fn card_id_from_host(id: i64) -> u64 {
    id as u64
}

/// A host number as the width core uses, or `Err(reason)` naming `what` when it does not fit
/// (a negative time, a route over 65,535): refused, never wrapped.
pub(crate) fn fit<T: TryFrom<i64>>(what: &str, value: i64) -> Result<T, String> {
    T::try_from(value).map_err(|_| format!("{what} {value} is out of range"))
}

/// Bytes held in a record: Kotlin `Bytes` (compares by content, unlike `ByteArray`), Swift
/// `Data`. Function arguments and results stay plain byte arrays.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

uniffi::custom_newtype!(Bytes, Vec<u8>);

/// Gives an FFI error its host-facing API: `code()` (stable, for the app's own localised text)
/// and `isRetryable()` (whether trying again later can help). Its message is its `Display`.
/// Codes and retry rules come from the explicit table given here (one row per variant), never
/// from the variants' names: renaming a variant cannot change a published code, a new variant
/// does not compile without its row, `bindings/error-codes.txt` lists every code published and
/// docs/errors.md every code with its retry rule (tests compare them). An error with a
/// `Vault { fault }` case names its domain (`vault: "handbook"`): each fault then has the code
/// `domain.fault` (`handbook.locked`) and the fault's retry rule, and comes from a core vault
/// error; `internal: Internal` makes a bug in the library (`Internal`) its `Internal` case.
macro_rules! error_api {
    ($error:ident, $(vault: $domain:literal,)? $(internal: $internal:ident,)? {$($variant:ident => ($code:literal, $retryable:literal)),* $(,)?}) => {
        #[uniffi::export]
        impl $error {
            /// A stable code for this failure, `domain.kind` (for example `vault.wrong_key`):
            /// map it to the app's own localised text. Codes are never changed or reused; new
            /// ones may be added.
            pub fn code(&self) -> String {
                self.code_and_retry().0
            }

            /// Whether the same call can succeed later without the app changing anything (after
            /// the user unlocks the device, when the network is back): schedule a retry.
            /// Otherwise the app must act (sign in again, ask for another key, update).
            pub fn is_retryable(&self) -> bool {
                self.code_and_retry().1
            }
        }

        $(
            #[doc = concat!("A vault failure under a ", $domain, " call: its `Vault` case.")]
            impl From<thudo_core::vault::VaultError> for $error {
                fn from(e: thudo_core::vault::VaultError) -> Self {
                    $error::Vault { fault: e.into() }
                }
            }
        )?

        $(
            impl From<crate::Internal> for $error {
                fn from(crate::Internal(reason): crate::Internal) -> Self {
                    $error::$internal { reason }
                }
            }
        )?

        impl $error {
            /// Every code with its variant (`Vault.Locked` for a vault fault) and retry rule, in
            /// the table's order, the vault's faults last (for the tests that keep the published
            /// list and docs/errors.md; not exported to Kotlin or Swift).
            #[doc(hidden)]
            pub fn codes() -> Vec<(String, String, bool)> {
                #[allow(unused_mut)]
                let mut codes = vec![$((stringify!($variant).to_owned(), $code.to_owned(), $retryable)),*];
                $(codes.extend(crate::VaultFault::CODES.iter().map(|(variant, kind, retryable)| {
                    (format!("Vault.{variant}"), format!("{}.{kind}", $domain), *retryable)
                }));)?
                codes
            }

            fn code_and_retry(&self) -> (String, bool) {
                match self {
                    $($error::$variant { .. } => ($code.to_owned(), $retryable),)*
                    $($error::Vault { fault } => {
                        let (kind, retryable) = fault.kind_and_retry();
                        (format!("{}.{kind}", $domain), retryable)
                    })?
                }
            }
        }
    };
}

pub(crate) use error_api;

/// A failure of the library itself (a bug), carried to the error type of the call.
pub(crate) struct Internal(pub String);

/// A failure of the vault under a domain's call. Every domain's error carries it as its `Vault`
/// case (`HandbookError`, `HealthBookError`, `SyncError`, `TransitError`, `AttachmentError`), so
/// an app handles a locked key, a lost key or a full disk in one place whatever it called.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Enum)]
#[uniffi::export(Display)]
pub enum VaultFault {
    /// The vault was shut down (`shutdown()`): open it again to go on.
    #[error("the vault is closed")]
    Closed,
    /// The platform key that protects the vault is locked (device locked, biometric needed):
    /// retry after the user unlocks.
    #[error("key unavailable: {reason}")]
    Locked {
        /// What the platform said.
        reason: String,
    },
    /// The vault's key is gone for good (the platform deleted it, a restore to another
    /// device): the data cannot be read again; recover as docs/android.md and docs/ios.md say.
    #[error("vault key lost: {reason}")]
    KeyLost {
        /// What the platform said.
        reason: String,
    },
    /// The vault's files are damaged beyond one record (restore a backup).
    #[error("vault store corrupt: {reason}")]
    CorruptStore {
        /// What was wrong.
        reason: String,
    },
    /// The vault (or the handbook's library file) was written by a newer version of the
    /// library: update the app. The file is left untouched.
    #[error("the file is at schema {found}, newer than this build's {supported}")]
    NewerSchema {
        /// The file's version.
        found: i64,
        /// The newest this build knows.
        supported: i64,
    },
    /// The disk failed (full, read-only, removed): retry when there is room.
    #[error("disk: {reason}")]
    Io {
        /// What the system said.
        reason: String,
    },
    /// Any other failure of the vault or the library file (a damaged record, a refused
    /// argument).
    #[error("storage: {reason}")]
    Storage {
        /// The vault's error.
        reason: String,
    },
}

impl VaultFault {
    /// Each case's code within its domain (`locked` in `handbook.locked`) and retry rule.
    pub(crate) const CODES: [(&'static str, &'static str, bool); 7] = [
        ("Closed", "closed", false),
        ("Locked", "locked", true),
        ("KeyLost", "key_lost", false),
        ("CorruptStore", "corrupt_store", false),
        ("NewerSchema", "newer_schema", false),
        ("Io", "io", true),
        ("Storage", "storage", false),
    ];

    fn kind_and_retry(&self) -> (&'static str, bool) {
        let variant = match self {
            VaultFault::Closed => "Closed",
            VaultFault::Locked { .. } => "Locked",
            VaultFault::KeyLost { .. } => "KeyLost",
            VaultFault::CorruptStore { .. } => "CorruptStore",
            VaultFault::NewerSchema { .. } => "NewerSchema",
            VaultFault::Io { .. } => "Io",
            VaultFault::Storage { .. } => "Storage",
        };
        Self::CODES
            .iter()
            .find(|(name, _, _)| *name == variant)
            .map_or(("storage", false), |(_, kind, retryable)| {
                (*kind, *retryable)
            })
    }
}

impl From<thudo_core::vault::VaultError> for VaultFault {
    fn from(e: thudo_core::vault::VaultError) -> Self {
        use thudo_core::vault::VaultError as E;
        match e {
            E::Closed => VaultFault::Closed,
            E::KeyUnavailable { reason } => VaultFault::Locked { reason },
            E::KeyLost { reason } => VaultFault::KeyLost { reason },
            E::CorruptStore { reason } => VaultFault::CorruptStore { reason },
            E::NewerSchema { found, supported } => VaultFault::NewerSchema {
                found: found.into(),
                supported: supported.into(),
            },
            E::Io { reason } => VaultFault::Io { reason },
            other => VaultFault::Storage {
                reason: other.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mobile build without the built-in HTTPS client (`--no-default-features`): the
    /// constructor that needs it says so with a typed error; the platform client's works.
    #[cfg(not(feature = "rust-http"))]
    #[test]
    fn without_the_built_in_client_only_the_platform_client_syncs() {
        struct Offline;
        impl crate::http::HttpClient for Offline {
            fn send(
                &self,
                _: crate::http::HttpRequest,
            ) -> Result<crate::http::HttpResponse, HttpError> {
                Err(HttpError::Failed {
                    reason: "offline".into(),
                })
            }
        }
        let settings = SyncSettings {
            base_url: "https://api.example.vn".into(),
            request_timeout_ms: None,
            max_attempts: None,
            backoff_base_ms: None,
            pinned_spki_sha256_hex: Vec::new(),
            health_trust_key: None,
        };
        match SyncClient::new(settings.clone()) {
            Err(SyncError::InvalidArgument { reason }) => {
                assert!(reason.contains("withHttpClient"))
            }
            Err(other) => panic!("expected InvalidArgument, got {other:?}"),
            Ok(_) => panic!("a client without an HTTP stack was made"),
        }
        assert!(SyncClient::with_http_client(settings, std::sync::Arc::new(Offline)).is_ok());
    }

    #[test]
    fn host_numbers_fit_or_are_refused_and_core_numbers_never_turn_negative() {
        assert_eq!(fit::<u16>("route", 65_535), Ok(65_535));
        assert_eq!(
            fit::<u16>("route", 65_536),
            Err("route 65536 is out of range".to_string())
        );
        assert!(fit::<u32>("time", -1).is_err());
        assert!(fit::<u64>("amount", -1).is_err());
        assert_eq!(fit::<u64>("amount", i64::MAX), Ok(i64::MAX as u64));
        assert_eq!(signed(7u32), 7);
        assert_eq!(signed(u64::MAX), i64::MAX);
        assert_eq!(small(u64::MAX), i32::MAX);
        assert_eq!(small(57u32), 57);
        // Card ids keep all 64 bits both ways.
        for id in [0u64, 9_704_000_000_123, u64::MAX, 1 << 63] {
            assert_eq!(card_id_from_host(card_id_to_host(id)), id);
        }
        assert_ne!(card_id_to_host(u64::MAX), card_id_to_host(u64::MAX - 1));
        assert!(now() > 1_700_000_000);
    }
}
