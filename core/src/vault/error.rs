//! The vault's typed errors. Messages are written for a support engineer and never contain
//! record ids, bodies, index values, passphrases or keys.

/// Everything that can go wrong in the vault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// The passphrase or the host key does not unlock this vault (or this backup). Nothing was
    /// changed; try again with the right one.
    #[error("wrong key: {reason}")]
    WrongKey {
        /// Which key was wrong, in words.
        reason: String,
    },
    /// The host's key provider cannot be used now (the device is locked, user authentication
    /// is needed): retry after the user unlocks. Nothing was changed.
    #[error("key provider unavailable: {reason}")]
    KeyUnavailable {
        /// What the key provider reported.
        reason: String,
    },
    /// The key that protects this vault is gone for good: the app was restored to a new phone
    /// from a backup that could not carry a hardware key, or the platform invalidated the key.
    /// The vault cannot be read by anyone. Recover by destroying it, registering again and
    /// pulling from the backend (or importing an encrypted export). Nothing was changed.
    #[error("the vault's key is gone: {reason}")]
    KeyLost {
        /// What the key provider reported.
        reason: String,
    },
    /// A stored record failed authentication or could not be decoded: it was altered on disk or
    /// moved from another record. Its data is never returned.
    #[error("corrupt record in collection '{collection}': {reason}")]
    CorruptRecord {
        /// The collection holding the record.
        collection: String,
        /// What failed.
        reason: String,
    },
    /// The database file itself is damaged or is not a thudo vault.
    #[error("corrupt store: {reason}")]
    CorruptStore {
        /// What SQLite or the vault found.
        reason: String,
    },
    /// The store was written by a newer thudo; it was not modified. Update the app.
    #[error("store schema version {found} is newer than this library supports ({supported})")]
    NewerSchema {
        /// The schema version found on disk.
        found: u32,
        /// The newest schema version this library knows.
        supported: u32,
    },
    /// No record with that id exists in the collection.
    #[error("record not found in collection '{collection}'")]
    NotFound {
        /// The collection searched.
        collection: String,
    },
    /// The vault was closed; open it again to continue.
    #[error("vault is closed")]
    Closed,
    /// The caller stopped a long operation (a rotation, a backup) before it finished: nothing
    /// of it was kept (the rotation and the import rolled back, the partial backup file
    /// removed). The same call can be made again.
    #[error("stopped before it finished")]
    Cancelled,
    /// A caller passed an argument the vault cannot accept.
    #[error("invalid argument: {reason}")]
    InvalidArgument {
        /// Which argument, and why.
        reason: String,
    },
    /// A backup file is malformed, truncated or altered.
    #[error("invalid backup: {reason}")]
    InvalidBackup {
        /// What was wrong with it.
        reason: String,
    },
    /// The file system or SQLite failed (disk full, permission denied, ...).
    #[error("I/O error: {reason}")]
    Io {
        /// The underlying error.
        reason: String,
    },
}

impl VaultError {
    pub(crate) fn corrupt(collection: &str, reason: impl Into<String>) -> Self {
        VaultError::CorruptRecord {
            collection: collection.to_owned(),
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        VaultError::InvalidArgument {
            reason: reason.into(),
        }
    }
}

impl From<rusqlite::Error> for VaultError {
    fn from(err: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        match err.sqlite_error_code() {
            Some(ErrorCode::OperationInterrupted) => VaultError::Closed,
            Some(ErrorCode::NotADatabase) | Some(ErrorCode::DatabaseCorrupt) => {
                VaultError::CorruptStore {
                    reason: err.to_string(),
                }
            }
            _ => VaultError::Io {
                reason: err.to_string(),
            },
        }
    }
}

impl From<std::io::Error> for VaultError {
    fn from(err: std::io::Error) -> Self {
        VaultError::Io {
            reason: err.to_string(),
        }
    }
}

/// Shorthand for vault results.
pub type Result<T, E = VaultError> = std::result::Result<T, E>;
