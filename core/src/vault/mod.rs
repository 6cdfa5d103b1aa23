//! The encrypted vault: the one store every domain writes to.
//!
//! One SQLite file per vault (WAL, `secure_delete`, in-memory temp store). Every record is sealed
//! with AEAD under a data key; its id and indexed values are stored only as keyed hashes (blind
//! indexes). The data key is wrapped by a passphrase or by a host [`KeyProvider`]. See
//! `docs/security.md` for the threat model and `docs/architecture.md` for the layout.
//!
//! Every method that returns `Ok` has committed its write. All methods are blocking; call them
//! off any async executor (the FFI facade does).
//!
//! This module opens, closes, backs up and wipes a vault; the rest is split by concern:
//! `records` (the record operations, one transaction each), `tx` (the same inside a
//! transaction: encryption, blind indexes, the checks of names and sizes), `key_slots` (the key
//! slots and the key operations), `observers` (change notification).

mod backup;
#[cfg(fuzzing)]
#[doc(hidden)]
pub use backup::write_raw as fuzz_write_raw_backup;
mod codec;
mod error;
mod key_slots;
mod keys;
mod observers;
mod records;
mod schema;
mod tx;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::crypto::Cipher;

pub use codec::Record;
pub use error::{Result, VaultError};
pub use keys::{KeyProvider, KeyProviderError, Unlock, DEFAULT_KDF_ITERATIONS, MIN_KDF_ITERATIONS};
pub use observers::{ChangeObserver, ChangeObservers};
pub use schema::LATEST as SCHEMA_VERSION;
pub use tx::VaultTx;

use key_slots::{create_keys, read_slots, unlock_keys};
use keys::{KeySet, Wrapper};

/// The database file's name inside a vault directory.
pub const DATABASE_FILE: &str = "vault.db";
/// The largest body one record may hold.
pub const MAX_BODY_LEN: usize = 16 * 1024 * 1024;

/// Collections a restored backup does not write: trust anchors this device installed only
/// after checking their signature (the health trust bundle, `health.trust_bundle`). A backup
/// is sealed with whatever passphrase its writer chose, so its records are that writer's word:
/// a restore must not put an unchecked anchor, or an older one, in place of the one verified.
/// The app fetches the current one again after a restore. Nor a transit validator's state
/// (`transit.tap`, `transit.validator`, `transit.entry`, an inspector's `transit.inspection`,
/// numbered by a counter in `transit.validator`): its tap log restored would bring
/// back taps already uploaded and numbers already used, out of order, and an older deny list
/// in place of the current one; a validator restored from a backup starts as one whose log was
/// lost (the backend moves its reused numbers on) and fetches its lists again.
pub const NOT_RESTORED: &[&str] = &[
    "health.trust_bundle",
    "transit.tap",
    "transit.validator",
    "transit.entry",
    "transit.inspection",
];
/// Records a backup never holds, nor a restore writes (collection, id): state bound to this
/// device. The transit device key kept in the vault when the app gives no platform signer
/// (`transit.phone`, `device_key`) would make a backup a kit to clone the citizen's tickets
/// onto another phone; without it, passes restored elsewhere are reported lost for their key
/// (`KeyLost`), as after a keystore reset. The phone's QR counter and clock offset
/// (`transit.phone`, `state`) restored from an old backup would count again QRs already shown,
/// out of step with their times at the backend. The device's registration with the backend
/// (`sync.registration`, `device`: its bearer token) would let whoever restores a backup sync
/// as this device without signing in; its clock's node and reading (`sync.state`, `node`,
/// `hlc`, `clock_offset_ms`) would make two devices one clock whose equal readings tie, and a
/// deferral of its pushes (`push_after`) is this device's. The restored device signs in again
/// and makes its own.
pub const NOT_BACKED_UP: &[(&str, &str)] = &[
    ("transit.phone", "device_key"),
    ("transit.phone", "state"),
    ("sync.registration", "device"),
    ("sync.state", "node"),
    ("sync.state", "hlc"),
    ("sync.state", "clock_offset_ms"),
    ("sync.state", "push_after"),
];

/// The sync outbox's collection: a restore never replaces a change waiting in it by another.
const OUTBOX: &str = "sync.outbox";

fn backed_up(collection: &str, id: &str) -> bool {
    !NOT_BACKED_UP.contains(&(collection, id))
}
const MAX_ID_LEN: usize = 512;
const MAX_NAME_LEN: usize = 64;
const MAX_INDEX_VALUE_LEN: usize = 4096;
const MAX_INDEX_ENTRIES: usize = 32;

/// Settings for opening (and, the first time, creating) a vault.
#[derive(Debug, Clone)]
pub struct VaultOptions {
    /// PBKDF2 iterations for a new passphrase. Keep the default outside tests.
    pub kdf_iterations: u32,
    /// The AEAD for a new vault; an existing vault keeps the one it was created with.
    pub cipher: Cipher,
    /// How long to wait for another connection's lock before failing with an I/O error.
    pub busy_timeout: Duration,
}

impl Default for VaultOptions {
    fn default() -> Self {
        VaultOptions {
            kdf_iterations: DEFAULT_KDF_ITERATIONS,
            cipher: Cipher::default(),
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// One change in a [`Vault::write_batch`].
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// Insert or replace a record.
    Put {
        /// Collection name.
        collection: String,
        /// Record id.
        id: String,
        /// Indexed fields and values.
        index: Vec<(String, String)>,
        /// Record content.
        body: Vec<u8>,
    },
    /// Delete a record if it exists.
    Delete {
        /// Collection name.
        collection: String,
        /// Record id.
        id: String,
    },
}

/// A record type stored as JSON in its own collection; the typed face of the vault for domain
/// services.
pub trait Document: Serialize + DeserializeOwned {
    /// The collection holding documents of this type.
    const COLLECTION: &'static str;
    /// The document's id, unique within the collection.
    fn id(&self) -> String;
    /// The fields to index for [`Vault::query_docs`], and their values.
    fn index(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

struct State {
    conn: Connection,
    keys: KeySet,
}

/// An open, unlocked vault. Cheap to share across threads (`Arc<Vault>`); calls are serialised on
/// one SQLite connection.
pub struct Vault {
    dir: PathBuf,
    kdf_iterations: u32,
    state: Mutex<Option<State>>,
    wrapper: Mutex<Option<Arc<Wrapper>>>,
    interrupt: rusqlite::InterruptHandle,
    closed: AtomicBool,
    /// Held for the whole of a key operation (passphrase change, provider switch, data key
    /// rotation, wipe): they run one at a time, so the key slot on disk and the wrapper in
    /// memory always come from the same, last, operation.
    key_ops: Mutex<()>,
    observers: ChangeObservers,
}

/// The first step of a wipe, one transaction: the key slots are overwritten and deleted and
/// the vault is marked as being wiped. An open that finds the mark finishes the wipe.
const WIPE_FIRST_STEP: &str = "BEGIN IMMEDIATE;
     UPDATE key_slots SET wrapped = zeroblob(length(wrapped)), params = zeroblob(length(params));
     DELETE FROM key_slots;
     DELETE FROM vault_meta;
     INSERT INTO vault_meta (name, value) VALUES ('wiping', x'01');
     COMMIT;";

/// The SQL of a wipe's first step, for crash tests that stop a wipe right after it.
#[doc(hidden)]
pub fn wipe_first_step_sql() -> String {
    WIPE_FIRST_STEP.to_owned()
}

/// Copies the WAL into the database and truncates it: old page images (a replaced key slot, a
/// deleted record's envelope) leave the WAL file, and the database file holds only the current
/// pages (`secure_delete` zeroes freed content).
fn checkpoint(conn: &Connection) -> Result<()> {
    let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
    if busy != 0 {
        return Err(VaultError::Io {
            reason: "the write-ahead log could not be checkpointed (another reader)".into(),
        });
    }
    Ok(())
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("dir", &self.dir)
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// Path of the database file of the vault in `dir`.
pub fn database_path(dir: &Path) -> PathBuf {
    dir.join(DATABASE_FILE)
}

impl Vault {
    /// Opens the vault in directory `dir`, creating the directory and a new vault if there is
    /// none. A new vault is protected by `unlock`; an existing one must be unlocked by it.
    ///
    /// Errors: [`VaultError::WrongKey`] (nothing is written), [`VaultError::NewerSchema`] (the
    /// file is not modified), [`VaultError::CorruptStore`], [`VaultError::KeyUnavailable`],
    /// [`VaultError::Io`].
    pub fn open(dir: impl AsRef<Path>, unlock: Unlock, options: &VaultOptions) -> Result<Vault> {
        let dir = dir.as_ref().to_path_buf();
        keys::check_iterations(options.kdf_iterations)?;
        std::fs::create_dir_all(&dir)?;
        let mut conn = Connection::open_with_flags(
            database_path(&dir),
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(options.busy_timeout)?;
        // Refuse a newer store before the first write (journal_mode below writes the header).
        let found = schema::version(&conn)?;
        if found > schema::LATEST {
            return Err(VaultError::NewerSchema {
                found,
                supported: schema::LATEST,
            });
        }
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(VaultError::Io {
                reason: format!("cannot enable WAL (got {mode})"),
            });
        }
        conn.execute_batch(
            "PRAGMA synchronous = FULL;
             PRAGMA temp_store = MEMORY;
             PRAGMA cache_size = -8192;
             PRAGMA secure_delete = ON;
             PRAGMA foreign_keys = ON;",
        )?;
        schema::migrate(&mut conn)?;

        let slots = read_slots(&conn)?;
        let (wrapper, keys) = if slots.is_empty() {
            let marked_wiping = conn
                .query_row("SELECT 1 FROM vault_meta WHERE name = 'wiping'", [], |_| {
                    Ok(())
                })
                .optional()?
                .is_some();
            if marked_wiping {
                // A wipe was cut short after its keys were gone: finish it, then start anew.
                log::warn!("finishing a vault wipe that was cut short");
                drop(conn);
                destroy(&dir)?;
                return Vault::open(dir, unlock, options);
            }
            let holds_data: bool = conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM records) OR EXISTS (SELECT 1 FROM vault_meta)",
                [],
                |r| r.get(0),
            )?;
            if holds_data {
                // Never fresh keys over rows nobody can read any more.
                log::error!("vault refused: records present but key slots missing");
                return Err(VaultError::CorruptStore {
                    reason: "the vault's key slots are missing".into(),
                });
            }
            create_keys(&mut conn, unlock, options)?
        } else {
            unlock_keys(&conn, &slots, unlock)?
        };
        let interrupt = conn.get_interrupt_handle();
        log::info!(schema_found = found, schema = schema::LATEST, new = slots.is_empty(); "vault opened");
        Ok(Vault {
            dir,
            kdf_iterations: options.kdf_iterations,
            state: Mutex::new(Some(State { conn, keys })),
            wrapper: Mutex::new(Some(Arc::new(wrapper))),
            interrupt,
            closed: AtomicBool::new(false),
            key_ops: Mutex::new(()),
            observers: ChangeObservers::default(),
        })
    }

    /// The vault's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether [`Vault::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Closes the vault: interrupts SQL in flight on other threads, waits for it to stop,
    /// checkpoints and truncates the write-ahead log (no old key slot or deleted record's
    /// envelope stays in a file of the vault), drops the keys. Every later call fails with
    /// [`VaultError::Closed`]. Idempotent.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.interrupt.interrupt();
        let state = self.lock_state().take();
        if let Some(state) = &state {
            // An interrupt raised while no statement ran stays pending and would stop the
            // checkpoint: a statement run to its end clears it.
            let _ = state.conn.query_row("SELECT 1", [], |_| Ok(()));
            let _ = checkpoint(&state.conn);
        }
        if state.is_some() {
            log::debug!("vault closed");
        }
        drop(state);
        lock(&self.wrapper).take();
    }

    fn lock_state(&self) -> MutexGuard<'_, Option<State>> {
        lock(&self.state)
    }

    fn current_wrapper(&self) -> Result<Arc<Wrapper>> {
        lock(&self.wrapper).clone().ok_or(VaultError::Closed)
    }

    fn check_open(&self) -> Result<()> {
        if self.is_closed() {
            Err(VaultError::Closed)
        } else {
            Ok(())
        }
    }

    /// Runs `f` on the open state; maps an interrupt during close to `Closed`.
    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        self.check_open()?;
        let mut guard = self.lock_state();
        let state = guard.as_mut().ok_or(VaultError::Closed)?;
        let result = f(state);
        if result.is_err() && self.is_closed() {
            return Err(VaultError::Closed);
        }
        result
    }

    /// Runs `f` in one write transaction: all of its changes commit together or none do. `f`
    /// may fail with a domain error (anything a [`VaultError`] converts into); its changes are
    /// then rolled back and the error returned as is.
    ///
    /// Inside `f`, use the [`VaultTx`] it is given, never `self`: the vault's lock is held, and a
    /// call on `self` would wait for it forever.
    pub fn transaction<T, E: From<VaultError>>(
        &self,
        f: impl FnOnce(&VaultTx<'_>) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let mut failure: Option<E> = None;
        let mut changed = Vec::new();
        let outcome = self.with_state(|state| {
            let tx = state
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let vtx = VaultTx {
                conn: &tx,
                keys: &state.keys,
                closed: &self.closed,
                changed: Default::default(),
            };
            match f(&vtx) {
                Ok(value) => {
                    changed = vtx.changed.take().into_iter().collect();
                    drop(vtx);
                    tx.commit()?;
                    Ok(Some(value))
                }
                // Dropping `tx` rolls back.
                Err(e) => {
                    failure = Some(e);
                    Ok(None)
                }
            }
        });
        match (outcome, failure) {
            (_, Some(_)) if self.is_closed() => Err(VaultError::Closed.into()),
            (_, Some(e)) => Err(e),
            (Ok(Some(value)), None) => {
                // After the vault's lock is released: an observer may read the vault.
                self.observers.notify(&changed);
                Ok(value)
            }
            (Err(e), None) => Err(e.into()),
            (Ok(None), None) => Err(VaultError::Closed.into()),
        }
    }

    /// Calls `observer` after committed transactions that wrote records, with the collections
    /// they wrote (merged while it is busy: [`ChangeObservers`]); returns the id to stop with
    /// [`Vault::unobserve`].
    pub fn observe(&self, observer: ChangeObserver) -> u64 {
        self.observers.add(observer)
    }

    /// Stops the observer `id`; returns whether it was there.
    pub fn unobserve(&self, id: u64) -> bool {
        self.observers.remove(id)
    }

    /// Writes every record but [`NOT_BACKED_UP`] and [`NOT_RESTORED`], decrypted and re-sealed
    /// under `passphrase`, to an encrypted backup file at `path` (written beside it, then
    /// renamed, so a crash never leaves half a backup). A record damaged on disk (it no longer
    /// decrypts) is left out and logged by collection. Returns the number of records.
    pub fn export_backup(&self, path: &Path, passphrase: &str) -> Result<u64> {
        self.export_backup_cancellable(path, passphrase, &|| false)
    }

    /// [`Vault::export_backup`], given up with [`VaultError::Cancelled`] as soon as `stop` says
    /// so between two records (the partial file is removed).
    pub fn export_backup_cancellable(
        &self,
        path: &Path,
        passphrase: &str,
        stop: &dyn Fn() -> bool,
    ) -> Result<u64> {
        self.check_open()?;
        let mut writer = backup::Writer::create(path, passphrase, self.kdf_iterations)?;
        self.with_state(|state| {
            // One read transaction: the backup is a consistent snapshot.
            let tx = state
                .conn
                .transaction_with_behavior(TransactionBehavior::Deferred)?;
            let vtx = VaultTx {
                conn: &tx,
                keys: &state.keys,
                closed: &self.closed,
                changed: Default::default(),
            };
            let mut stmt = tx.prepare(
                "SELECT collection, id_hash, envelope FROM records ORDER BY collection, id_hash",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                self.check_open()?;
                if stop() {
                    return Err(VaultError::Cancelled);
                }
                let collection: String = row.get(0)?;
                // What a restore would not write back is not carried either (a validator's
                // tap log names riders' cards).
                if NOT_RESTORED.contains(&collection.as_str()) {
                    continue;
                }
                let id_hash: Vec<u8> = row.get(1)?;
                let envelope: Vec<u8> = row.get(2)?;
                let record = match vtx.decrypt(&collection, &id_hash, envelope) {
                    Ok(record) => record,
                    // A record damaged on disk is left out rather than stop every backup:
                    // the rest is what a backup can still save.
                    Err(VaultError::CorruptRecord { .. }) => {
                        log::warn!("backup: a damaged record of {collection} left out");
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                if backed_up(&collection, &record.id) {
                    writer.add(&collection, &record)?;
                }
            }
            Ok(())
        })?;
        writer.finish()
    }

    /// Reads a backup made by [`Vault::export_backup`] and stores all of its records (replacing
    /// records with the same ids) in one transaction, except the trust anchors of
    /// [`NOT_RESTORED`] and the device secrets of [`NOT_BACKED_UP`]. A change waiting to be
    /// synced here is never replaced by another in the backup: the import is refused
    /// ([`VaultError::InvalidArgument`]: sync first). A wrong passphrase gives
    /// [`VaultError::WrongKey`]; a damaged or truncated file gives [`VaultError::InvalidBackup`];
    /// either way nothing is written. Returns the number of records imported.
    pub fn import_backup(&self, path: &Path, passphrase: &str) -> Result<u64> {
        self.import_backup_cancellable(path, passphrase, &|| false)
    }

    /// [`Vault::import_backup`], given up with [`VaultError::Cancelled`] (nothing imported) as
    /// soon as `stop` says so between two records.
    pub fn import_backup_cancellable(
        &self,
        path: &Path,
        passphrase: &str,
        stop: &dyn Fn() -> bool,
    ) -> Result<u64> {
        self.check_open()?;
        let mut reader = backup::Reader::open(path, passphrase)?;
        self.transaction(|tx| {
            let mut count = 0u64;
            while let Some((collection, record)) = reader.next_entry()? {
                if stop() {
                    return Err(VaultError::Cancelled);
                }
                // The outbox is numbered per device: a backup's unsent change (another
                // phone's, or one re-stamped since) taking the place of another waiting here
                // would lose it. The same change, from this device's own backup, is no loss.
                if collection == OUTBOX {
                    if let Some(local) = tx.get(OUTBOX, &record.id)? {
                        if local.body != record.body {
                            return Err(VaultError::invalid(
                                "changes made here are waiting to be synced: sync before restoring this backup",
                            ));
                        }
                    }
                }
                if NOT_RESTORED.contains(&collection.as_str())
                    || !backed_up(&collection, &record.id)
                {
                    continue;
                }
                tx.put(&collection, &record.id, &record.index, &record.body)
                    .map_err(|e| match e {
                        VaultError::InvalidArgument { reason } => VaultError::InvalidBackup {
                            reason: format!("entry {count}: {reason}"),
                        },
                        other => other,
                    })?;
                count += 1;
            }
            Ok(count)
        })
    }

    /// Destroys the vault: overwrites and deletes its key slots, closes it, deletes its files.
    /// The records cannot be read again by anyone.
    /// A crash at any point leaves the old vault or nothing: the first step destroys the key
    /// slots and marks the vault in one transaction; an open that finds the mark finishes the
    /// wipe before anything else.
    pub fn wipe(&self) -> Result<()> {
        let _one_key_op = lock(&self.key_ops);
        self.with_state(|state| {
            state.conn.execute_batch(WIPE_FIRST_STEP)?;
            // The files are deleted next; the checkpoint only shortens what a crash leaves.
            let _ = checkpoint(&state.conn);
            Ok(())
        })?;
        self.close();
        destroy(&self.dir)?;
        log::info!("vault wiped");
        Ok(())
    }
}

/// Deletes the vault files in `dir` without opening them, for a user who has lost the
/// passphrase. Missing files are not an error.
pub fn destroy(dir: &Path) -> Result<()> {
    let db = database_path(dir);
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = db.clone().into_os_string();
        name.push(suffix);
        match std::fs::remove_file(PathBuf::from(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    // Leave the directory if the host app keeps other files in it.
    let _ = std::fs::remove_dir(dir);
    Ok(())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves no half-done SQL (transactions roll back on drop).
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
