//! The encrypted vault, for Kotlin and Swift.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use zeroize::Zeroizing;

use thudo_core::crypto::Cipher as VaultCipher;
use thudo_core::vault as core;

use crate::blocking;

/// Errors of vault calls, thrown as exceptions in Kotlin and Swift.
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[uniffi::export(Display)]
pub enum VaultError {
    /// The passphrase or the host key does not unlock this vault or backup; nothing changed.
    #[error("wrong key: {reason}")]
    WrongKey {
        /// Which key was wrong.
        reason: String,
    },
    /// The host's key provider cannot be used now (device locked, user authentication needed):
    /// retry after the user unlocks. Nothing changed.
    #[error("key provider unavailable: {reason}")]
    KeyUnavailable {
        /// What the provider reported.
        reason: String,
    },
    /// The key that protects this vault is gone for good (the app was restored to a new phone,
    /// or the platform invalidated the key): no one can read this vault. Recover with
    /// `destroyVault`, register again and sync (or import an encrypted export). Nothing changed.
    #[error("the vault's key is gone: {reason}")]
    KeyLost {
        /// What the provider reported.
        reason: String,
    },
    /// A stored record was altered or moved; its data is not returned.
    #[error("corrupt record in '{collection}': {reason}")]
    CorruptRecord {
        /// The collection of the record.
        collection: String,
        /// What failed.
        reason: String,
    },
    /// The database file is damaged or is not a thudo vault.
    #[error("corrupt store: {reason}")]
    CorruptStore {
        /// What was found.
        reason: String,
    },
    /// The store was written by a newer library and was left untouched.
    #[error("store schema {found} is newer than supported {supported}")]
    NewerSchema {
        /// Version on disk.
        found: i64,
        /// Newest version this library knows.
        supported: i64,
    },
    /// No record with that id in the collection.
    #[error("not found in '{collection}'")]
    NotFound {
        /// The collection searched.
        collection: String,
    },
    /// The vault was closed.
    #[error("vault is closed")]
    Closed,
    /// The call's `CancelToken` fired before it finished: nothing of it was kept (a rotation or
    /// an import rolled back, a partial backup file removed). Call again when it suits.
    #[error("stopped before it finished")]
    Cancelled,
    /// An argument was rejected.
    #[error("invalid argument: {reason}")]
    InvalidArgument {
        /// Which and why.
        reason: String,
    },
    /// A backup file is malformed, truncated or altered.
    #[error("invalid backup: {reason}")]
    InvalidBackup {
        /// What was wrong.
        reason: String,
    },
    /// The file system or SQLite failed.
    #[error("I/O error: {reason}")]
    Io {
        /// The underlying error.
        reason: String,
    },
    /// A bug in the library; please report it.
    #[error("internal error: {reason}")]
    Internal {
        /// What happened.
        reason: String,
    },
}

impl From<core::VaultError> for VaultError {
    fn from(err: core::VaultError) -> Self {
        use core::VaultError as E;
        match err {
            E::WrongKey { reason } => VaultError::WrongKey { reason },
            E::KeyUnavailable { reason } => VaultError::KeyUnavailable { reason },
            E::KeyLost { reason } => VaultError::KeyLost { reason },
            E::CorruptRecord { collection, reason } => {
                VaultError::CorruptRecord { collection, reason }
            }
            E::CorruptStore { reason } => VaultError::CorruptStore { reason },
            E::NewerSchema { found, supported } => VaultError::NewerSchema {
                found: found.into(),
                supported: supported.into(),
            },
            E::NotFound { collection } => VaultError::NotFound { collection },
            E::Closed => VaultError::Closed,
            E::Cancelled => VaultError::Cancelled,
            E::InvalidArgument { reason } => VaultError::InvalidArgument { reason },
            E::InvalidBackup { reason } => VaultError::InvalidBackup { reason },
            E::Io { reason } => VaultError::Io { reason },
        }
    }
}

/// Why a [`KeyProvider`] failed.
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[uniffi::export(Display)]
pub enum KeyProviderError {
    /// The wrapped key was not made by this provider's key.
    #[error("the provider's key does not match")]
    WrongKey,
    /// The key cannot be used now (device locked, user authentication needed): the vault
    /// reports `KeyUnavailable`, worth retrying after an unlock.
    #[error("{reason}")]
    Unavailable {
        /// What the platform reported.
        reason: String,
    },
    /// The key no longer exists or was invalidated for good (restored to a new phone, key
    /// deleted, biometrics re-enrolled): the vault reports `KeyLost`. Never make a new key in
    /// its place when unwrapping.
    #[error("key gone: {reason}")]
    Gone {
        /// What the platform reported.
        reason: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for KeyProviderError {
    fn from(err: uniffi::UnexpectedUniFFICallbackError) -> Self {
        KeyProviderError::Unavailable {
            reason: format!("key provider threw: {}", err.reason),
        }
    }
}

/// A key the app keeps in Android Keystore or the iOS Keychain / Secure Enclave, used to wrap the
/// vault's data key. Implement it in Kotlin or Swift. It must not call back into the vault.
#[uniffi::export(with_foreign)]
pub trait KeyProvider: Send + Sync {
    /// A stable name for the current key, stored next to the wrapped key.
    fn key_id(&self) -> String;
    /// Encrypts the 32-byte data key.
    fn wrap_key(&self, data_key: Vec<u8>) -> Result<Vec<u8>, KeyProviderError>;
    /// Decrypts what `wrap_key` returned.
    fn unwrap_key(&self, wrapped: Vec<u8>) -> Result<Vec<u8>, KeyProviderError>;
}

/// Adapts a foreign provider to the core trait.
struct ForeignProvider(Arc<dyn KeyProvider>);

impl core::KeyProvider for ForeignProvider {
    fn key_id(&self) -> String {
        self.0.key_id()
    }
    fn wrap_key(&self, data_key: &[u8]) -> Result<Vec<u8>, core::KeyProviderError> {
        self.0.wrap_key(data_key.to_vec()).map_err(Into::into)
    }
    fn unwrap_key(&self, wrapped: &[u8]) -> Result<Vec<u8>, core::KeyProviderError> {
        self.0.unwrap_key(wrapped.to_vec()).map_err(Into::into)
    }
}

impl From<KeyProviderError> for core::KeyProviderError {
    fn from(err: KeyProviderError) -> Self {
        match err {
            KeyProviderError::WrongKey => core::KeyProviderError::WrongKey,
            KeyProviderError::Unavailable { reason } => {
                core::KeyProviderError::Unavailable { reason }
            }
            KeyProviderError::Gone { reason } => core::KeyProviderError::Gone { reason },
        }
    }
}

fn unlock_with(provider: Arc<dyn KeyProvider>) -> core::Unlock {
    core::Unlock::Provider(Arc::new(ForeignProvider(provider)))
}

/// The AEAD a new vault uses (core's type, carried as it is).
#[uniffi::remote(Enum)]
pub enum VaultCipher {
    /// AES-256-GCM (default; fastest on 64-bit phones).
    Aes256Gcm,
    /// ChaCha20-Poly1305 (fastest on old 32-bit phones without AES instructions).
    ChaCha20Poly1305,
}

/// Settings for opening or creating a vault.
#[derive(Debug, Clone, uniffi::Record)]
pub struct VaultOptions {
    /// PBKDF2 iterations for a new passphrase; keep the default outside tests (minimum 10,000).
    #[uniffi(default = 600000)]
    pub kdf_iterations: i32,
    /// The cipher of a new vault (null: AES-256-GCM); an existing vault keeps its own.
    #[uniffi(default = None)]
    pub cipher: Option<VaultCipher>,
}

impl Default for VaultOptions {
    fn default() -> Self {
        VaultOptions {
            kdf_iterations: crate::small(core::DEFAULT_KDF_ITERATIONS),
            cipher: None,
        }
    }
}

impl From<VaultOptions> for core::VaultOptions {
    fn from(o: VaultOptions) -> Self {
        core::VaultOptions {
            // Negative counts as 0: refused below the minimum by the vault.
            kdf_iterations: o.kdf_iterations.max(0) as u32,
            cipher: o.cipher.unwrap_or_default(),
            ..Default::default()
        }
    }
}

/// A record in clear.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct VaultRecord {
    /// Unique within its collection.
    pub id: String,
    /// Indexed fields and values, for `query`.
    pub index: HashMap<String, String>,
    /// The record's content.
    pub body: crate::Bytes,
}

impl From<core::Record> for VaultRecord {
    fn from(r: core::Record) -> Self {
        VaultRecord {
            id: r.id,
            index: r.index.into_iter().collect(),
            body: crate::Bytes(r.body),
        }
    }
}

/// One change of a `write_batch`.
#[derive(Debug, Clone, uniffi::Enum)]
pub enum WriteOp {
    /// Insert or replace a record.
    Put {
        /// Collection name (a-z, 0-9, '.', '_', '-').
        collection: String,
        /// Record id.
        id: String,
        /// Record content.
        body: crate::Bytes,
        /// Indexed fields and values.
        index: HashMap<String, String>,
    },
    /// Delete a record if present.
    Delete {
        /// Collection name.
        collection: String,
        /// Record id.
        id: String,
    },
}

fn index_pairs(index: HashMap<String, String>) -> Vec<(String, String)> {
    let mut pairs: Vec<_> = index.into_iter().collect();
    pairs.sort();
    pairs
}

impl From<WriteOp> for core::WriteOp {
    fn from(op: WriteOp) -> Self {
        match op {
            WriteOp::Put {
                collection,
                id,
                body,
                index,
            } => core::WriteOp::Put {
                collection,
                id,
                index: index_pairs(index),
                body: body.0,
            },
            WriteOp::Delete { collection, id } => core::WriteOp::Delete { collection, id },
        }
    }
}

/// An open, encrypted vault. All I/O methods are `suspend` in Kotlin and `async` in Swift and
/// never block the caller's thread. Call `close()` when done; Kotlin's `use {}` also frees it.
#[derive(uniffi::Object)]
pub struct Vault {
    pub(crate) inner: Arc<core::Vault>,
}

impl Vault {
    /// The core vault, for the other domains' facades.
    pub(crate) fn core(&self) -> Arc<core::Vault> {
        self.inner.clone()
    }

    /// Runs `work` on the blocking pool with the core vault.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&core::Vault) -> core::Result<T> + Send + 'static,
    ) -> Result<T, VaultError> {
        let inner = self.inner.clone();
        blocking(move || work(&inner).map_err(VaultError::from)).await
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl Vault {
    /// Opens the vault in directory `path` with a passphrase, creating it if there is none.
    #[uniffi::constructor]
    pub async fn open_with_passphrase(
        path: String,
        passphrase: String,
        options: Option<VaultOptions>,
    ) -> Result<Arc<Self>, VaultError> {
        let options: core::VaultOptions = options.unwrap_or_default().into();
        let unlock = core::Unlock::passphrase(passphrase);
        blocking(move || {
            core::Vault::open(PathBuf::from(path), unlock, &options).map_err(VaultError::from)
        })
        .await
        .map(|v| Arc::new(Vault { inner: Arc::new(v) }))
    }

    /// Opens the vault in directory `path` with a host key, creating it if there is none.
    #[uniffi::constructor]
    pub async fn open_with_key_provider(
        path: String,
        provider: Arc<dyn KeyProvider>,
        options: Option<VaultOptions>,
    ) -> Result<Arc<Self>, VaultError> {
        let options: core::VaultOptions = options.unwrap_or_default().into();
        let unlock = unlock_with(provider);
        blocking(move || {
            core::Vault::open(PathBuf::from(path), unlock, &options).map_err(VaultError::from)
        })
        .await
        .map(|v| Arc::new(Vault { inner: Arc::new(v) }))
    }

    /// Inserts or replaces a record; `index` lists the fields `query` can find it by.
    pub async fn put(
        &self,
        collection: String,
        id: String,
        body: Vec<u8>,
        index: HashMap<String, String>,
    ) -> Result<(), VaultError> {
        self.run(move |v| v.put(&collection, &id, &index_pairs(index), &body))
            .await
    }

    /// The record, or a `NotFound` error.
    pub async fn get(&self, collection: String, id: String) -> Result<VaultRecord, VaultError> {
        self.run(move |v| v.get(&collection, &id))
            .await
            .map(Into::into)
    }

    /// The record, or null / nil.
    pub async fn find(
        &self,
        collection: String,
        id: String,
    ) -> Result<Option<VaultRecord>, VaultError> {
        self.run(move |v| v.find(&collection, &id))
            .await
            .map(|r| r.map(Into::into))
    }

    /// Deletes a record; returns whether it existed.
    pub async fn delete(&self, collection: String, id: String) -> Result<bool, VaultError> {
        self.run(move |v| v.delete(&collection, &id)).await
    }

    /// Every record of the collection, sorted by id.
    pub async fn list(&self, collection: String) -> Result<Vec<VaultRecord>, VaultError> {
        self.run(move |v| v.list(&collection))
            .await
            .map(|rs| rs.into_iter().map(Into::into).collect())
    }

    /// The number of records in the collection.
    pub async fn count(&self, collection: String) -> Result<i64, VaultError> {
        self.run(move |v| v.count(&collection).map(crate::signed))
            .await
    }

    /// The records whose indexed `field` equals `value` exactly, sorted by id.
    pub async fn query(
        &self,
        collection: String,
        field: String,
        value: String,
    ) -> Result<Vec<VaultRecord>, VaultError> {
        self.run(move |v| v.query(&collection, &field, &value))
            .await
            .map(|rs| rs.into_iter().map(Into::into).collect())
    }

    /// Applies all operations in one transaction: all land or none.
    pub async fn write_batch(&self, ops: Vec<WriteOp>) -> Result<(), VaultError> {
        let ops: Vec<core::WriteOp> = ops.into_iter().map(Into::into).collect();
        self.run(move |v| v.write_batch(&ops)).await
    }

    /// Replaces the passphrase (`old` must be right); records are not re-encrypted.
    pub async fn change_passphrase(&self, old: String, new: String) -> Result<(), VaultError> {
        // Passphrases are wiped from memory once used, as core's unlock does.
        let (old, new) = (Zeroizing::new(old), Zeroizing::new(new));
        self.run(move |v| v.change_passphrase(&old, &new)).await
    }

    /// Protects the vault with `provider` from now on (new key, or switch from passphrase).
    pub async fn rotate_key_provider(
        &self,
        provider: Arc<dyn KeyProvider>,
    ) -> Result<(), VaultError> {
        self.run(move |v| v.rotate_key_provider(Arc::new(ForeignProvider(provider))))
            .await
    }

    /// Replaces the data key and re-encrypts every record, atomically; returns the count.
    /// `cancel` stops it between two records with `Cancelled`, and nothing changes.
    #[uniffi::method(default(cancel = None))]
    pub async fn rotate_data_key(
        &self,
        cancel: Option<Arc<crate::cancel::CancelToken>>,
    ) -> Result<i64, VaultError> {
        self.run(move |v| {
            v.rotate_data_key_cancellable(&|| fired(&cancel))
                .map(crate::signed)
        })
        .await
    }

    /// Writes an encrypted backup of every record to `path`; returns the count. `cancel`
    /// stops it between two records with `Cancelled`, and the partial file is removed.
    #[uniffi::method(default(cancel = None))]
    pub async fn export_backup(
        &self,
        path: String,
        passphrase: String,
        cancel: Option<Arc<crate::cancel::CancelToken>>,
    ) -> Result<i64, VaultError> {
        let passphrase = Zeroizing::new(passphrase);
        self.run(move |v| {
            v.export_backup_cancellable(path.as_ref(), &passphrase, &|| fired(&cancel))
                .map(crate::signed)
        })
        .await
    }

    /// Imports a backup (all records or none); returns the count. The health trust bundle is
    /// not restored (a backup's records are its writer's word): refresh it afterwards. `cancel` stops it between
    /// two records with `Cancelled`, and nothing is imported.
    #[uniffi::method(default(cancel = None))]
    pub async fn import_backup(
        &self,
        path: String,
        passphrase: String,
        cancel: Option<Arc<crate::cancel::CancelToken>>,
    ) -> Result<i64, VaultError> {
        let passphrase = Zeroizing::new(passphrase);
        self.run(move |v| {
            v.import_backup_cancellable(path.as_ref(), &passphrase, &|| fired(&cancel))
                .map(crate::signed)
        })
        .await
    }

    /// Destroys the keys and deletes the vault's files; the vault is closed afterwards.
    pub async fn wipe(&self) -> Result<(), VaultError> {
        self.run(|v| v.wipe()).await
    }

    /// Closes the vault now: interrupts work in flight (which fails with `Closed`), drops the
    /// keys and folds the write-ahead log into the file (no old key slot or deleted record
    /// left in it). Later calls fail with `Closed`. Idempotent. Async: it waits for the
    /// statement it interrupts and for the checkpoint's I/O.
    pub async fn shutdown(&self) {
        let inner = self.inner.clone();
        let _ = thudo_core::background::run_blocking(move || inner.close()).await;
    }

    /// Whether the vault was closed.
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Tells `listener` of every committed change to `collections` (all when empty): writes by
    /// this app and changes applied by sync, with the collections written (sorted, each once),
    /// on the store's notifier thread (never the writer's). Transactions that commit while the
    /// listener is busy are merged into its next call, so a burst costs one call and nothing
    /// piles up. Until
    /// `cancel()` is called on the returned subscription (or it is freed). Kotlin:
    /// `vault.changes(...)` gives a `Flow`; Swift: `vault.changes(...)` a `ChangeStream`.
    pub fn observe(
        &self,
        collections: Vec<String>,
        listener: Arc<dyn ChangeListener>,
    ) -> Arc<ChangeSubscription> {
        let id = self.inner.observe(filtered(collections, listener));
        let vault = Arc::downgrade(&self.inner);
        ChangeSubscription::new(move || {
            if let Some(vault) = vault.upgrade() {
                vault.unobserve(id);
            }
        })
    }
}

/// Told of committed changes (see `Vault.observe`). Keep it short: post to the UI's thread or
/// a channel; never call back into the store from it.
#[uniffi::export(with_foreign)]
pub trait ChangeListener: Send + Sync {
    /// The collections written (of those observed), sorted, each once; transactions that
    /// committed while the listener was busy arrive merged in one call.
    fn on_change(&self, collections: Vec<String>);
}

/// Whether an optional cancel token has fired.
fn fired(cancel: &Option<Arc<crate::cancel::CancelToken>>) -> bool {
    cancel.as_ref().is_some_and(|t| t.is_cancelled())
}

/// Passes on the changes to `collections` (every change when empty).
pub(crate) fn filtered(
    collections: Vec<String>,
    listener: Arc<dyn ChangeListener>,
) -> core::ChangeObserver {
    Arc::new(move |changed: &[String]| {
        let wanted: Vec<String> = changed
            .iter()
            .filter(|c| collections.is_empty() || collections.contains(c))
            .cloned()
            .collect();
        if !wanted.is_empty() {
            listener.on_change(wanted);
        }
    })
}

/// A running observation: `cancel()` stops it; freeing it does too.
#[derive(uniffi::Object)]
pub struct ChangeSubscription {
    stop: std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl ChangeSubscription {
    pub(crate) fn new(stop: impl FnOnce() + Send + 'static) -> Arc<Self> {
        Arc::new(ChangeSubscription {
            stop: std::sync::Mutex::new(Some(Box::new(stop))),
        })
    }
}

#[uniffi::export]
impl ChangeSubscription {
    /// Stops the observation; later changes are not reported. Idempotent.
    pub fn cancel(&self) {
        let stop = self.stop.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(stop) = stop {
            stop();
        }
    }
}

impl Drop for ChangeSubscription {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// Deletes the vault files in `path` without opening them (a forgotten passphrase, a key gone
/// for good).
#[uniffi::export(async_runtime = "tokio")]
pub async fn destroy_vault(path: String) -> Result<(), VaultError> {
    blocking(move || core::destroy(path.as_ref()).map_err(Into::into)).await
}

/// The newest vault schema version this library reads and writes.
#[uniffi::export]
pub fn vault_schema_version() -> i64 {
    core::SCHEMA_VERSION.into()
}

crate::error_api!(VaultError, internal: Internal, {
        WrongKey => ("vault.wrong_key", false),
        KeyUnavailable => ("vault.key_unavailable", true),
        KeyLost => ("vault.key_lost", false),
        CorruptRecord => ("vault.corrupt_record", false),
        CorruptStore => ("vault.corrupt_store", false),
        NewerSchema => ("vault.newer_schema", false),
        NotFound => ("vault.not_found", false),
        Closed => ("vault.closed", false),
        Cancelled => ("vault.cancelled", true),
        InvalidArgument => ("vault.invalid_argument", false),
        InvalidBackup => ("vault.invalid_backup", false),
        Io => ("vault.io", true),
        Internal => ("vault.internal", false),
});

crate::error_api!(KeyProviderError, {
        WrongKey => ("key_provider.wrong_key", false),
        Unavailable => ("key_provider.unavailable", true),
        Gone => ("key_provider.gone", false),
});
