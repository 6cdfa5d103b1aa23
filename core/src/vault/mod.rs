//! The encrypted vault: the one store every domain writes to.
//!
//! One SQLite file per vault (WAL, `secure_delete`, in-memory temp store). Every record is sealed
//! with AEAD under a data key; its id and indexed values are stored only as keyed hashes (blind
//! indexes). The data key is wrapped by a passphrase or by a host [`KeyProvider`]. See
//! `docs/security.md` for the threat model and `docs/architecture.md` for the layout.
//!
//! Every method that returns `Ok` has committed its write. All methods are blocking; call them
//! off any async executor (the FFI facade does).

mod backup;
#[cfg(fuzzing)]
#[doc(hidden)]
pub use backup::write_raw as fuzz_write_raw_backup;
mod codec;
mod error;
mod keys;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::crypto::{self, Cipher};

pub use codec::Record;
pub use error::{Result, VaultError};
pub use keys::{KeyProvider, KeyProviderError, Unlock, DEFAULT_KDF_ITERATIONS, MIN_KDF_ITERATIONS};
pub use schema::LATEST as SCHEMA_VERSION;

use keys::{KeySet, Slot, Wrapper};

/// The database file's name inside a vault directory.
pub const DATABASE_FILE: &str = "vault.db";
/// The largest body one record may hold.
pub const MAX_BODY_LEN: usize = 16 * 1024 * 1024;
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

/// Called after a transaction commits, with the collections it wrote (sorted, each once), on
/// the store's notifier thread, in commit order. It may read the store.
pub type ChangeObserver = Arc<dyn Fn(&[String]) + Send + Sync>;

type ObserverList = Arc<Mutex<(u64, Vec<(u64, ChangeObserver)>)>>;

/// The observers of a store (the vault, the document library): told of each committed change.
///
/// Observers run on one notifier thread per store, never on the writer's: a writer may hold
/// its own locks (a validator logging a tap, a phone storing its state), and an observer that
/// called back into that object would otherwise deadlock. The thread starts with the first
/// change that has an observer and ends when the store is dropped.
#[derive(Default)]
pub struct ChangeObservers {
    list: ObserverList,
    queue: Mutex<Option<std::sync::mpsc::Sender<Vec<String>>>>,
}

impl ChangeObservers {
    /// Adds `observer`; returns the id to remove it with.
    pub fn add(&self, observer: ChangeObserver) -> u64 {
        let mut inner = lock(&self.list);
        inner.0 += 1;
        let id = inner.0;
        inner.1.push((id, observer));
        id
    }

    /// Removes the observer `id`; returns whether it was there.
    pub fn remove(&self, id: u64) -> bool {
        let mut inner = lock(&self.list);
        let before = inner.1.len();
        inner.1.retain(|(i, _)| *i != id);
        inner.1.len() != before
    }

    /// Queues `changed` (nothing when empty or nobody observes) for the observers; returns at
    /// once.
    pub fn notify(&self, changed: &[String]) {
        if changed.is_empty() || lock(&self.list).1.is_empty() {
            return;
        }
        let mut queue = lock(&self.queue);
        if queue.is_none() {
            let (sender, receiver) = std::sync::mpsc::channel::<Vec<String>>();
            let list = self.list.clone();
            let started = std::thread::Builder::new()
                .name("thudo-changes".into())
                .spawn(move || {
                    for changed in receiver {
                        deliver(&list, &changed);
                    }
                });
            match started {
                Ok(_) => *queue = Some(sender),
                // No thread to be had: tell them here rather than not at all.
                Err(_) => return deliver(&self.list, changed),
            }
        }
        if let Some(sender) = queue.as_ref() {
            let _ = sender.send(changed.to_vec());
        }
    }
}

fn deliver(list: &ObserverList, changed: &[String]) {
    // A copy, so an observer may add or remove observers.
    let observers: Vec<ChangeObserver> = lock(list).1.iter().map(|(_, o)| o.clone()).collect();
    for observer in observers {
        observer(changed);
    }
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

    /// Calls `observer` after every committed transaction that wrote records, with the
    /// collections it wrote; returns the id to stop with [`Vault::unobserve`].
    pub fn observe(&self, observer: ChangeObserver) -> u64 {
        self.observers.add(observer)
    }

    /// Stops the observer `id`; returns whether it was there.
    pub fn unobserve(&self, id: u64) -> bool {
        self.observers.remove(id)
    }

    fn read<T>(&self, f: impl FnOnce(&VaultTx<'_>) -> Result<T>) -> Result<T> {
        self.with_state(|state| {
            f(&VaultTx {
                conn: &state.conn,
                keys: &state.keys,
                closed: &self.closed,
                changed: Default::default(),
            })
        })
    }

    /// Inserts or replaces a record.
    pub fn put(
        &self,
        collection: &str,
        id: &str,
        index: &[(String, String)],
        body: &[u8],
    ) -> Result<()> {
        self.transaction(|tx| tx.put(collection, id, index, body))
    }

    /// The record `id` of `collection`, or [`VaultError::NotFound`].
    pub fn get(&self, collection: &str, id: &str) -> Result<Record> {
        self.read(|tx| tx.get(collection, id))?
            .ok_or_else(|| VaultError::NotFound {
                collection: collection.to_owned(),
            })
    }

    /// The record `id` of `collection`, if it exists.
    pub fn find(&self, collection: &str, id: &str) -> Result<Option<Record>> {
        self.read(|tx| tx.get(collection, id))
    }

    /// Deletes a record; returns whether it existed.
    pub fn delete(&self, collection: &str, id: &str) -> Result<bool> {
        self.transaction(|tx| tx.delete(collection, id))
    }

    /// Every record of `collection`, sorted by id.
    pub fn list(&self, collection: &str) -> Result<Vec<Record>> {
        self.read(|tx| tx.list(collection))
    }

    /// How many records `collection` holds (no decryption).
    pub fn count(&self, collection: &str) -> Result<u64> {
        self.read(|tx| tx.count(collection))
    }

    /// At most `limit` records of `collection` in the order they were first stored, from the
    /// position after `after` (0: the start), each with its position: a log read page by page,
    /// never decrypted whole.
    pub fn list_page(
        &self,
        collection: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, Record)>> {
        self.read(|tx| tx.list_page(collection, after, limit, false))
    }

    /// Like [`Vault::list_page`], newest first, from the position before `before`
    /// (`i64::MAX`: the end).
    pub fn list_page_rev(
        &self,
        collection: &str,
        before: i64,
        limit: usize,
    ) -> Result<Vec<(i64, Record)>> {
        self.read(|tx| tx.list_page(collection, before, limit, true))
    }

    /// The records of `collection` whose indexed `field` equals `value` exactly, sorted by id.
    pub fn query(&self, collection: &str, field: &str, value: &str) -> Result<Vec<Record>> {
        self.read(|tx| tx.query(collection, field, value))
    }

    /// Applies every operation in one transaction.
    pub fn write_batch(&self, ops: &[WriteOp]) -> Result<()> {
        self.transaction(|tx| {
            for op in ops {
                match op {
                    WriteOp::Put {
                        collection,
                        id,
                        index,
                        body,
                    } => tx.put(collection, id, index, body)?,
                    WriteOp::Delete { collection, id } => {
                        tx.delete(collection, id)?;
                    }
                }
            }
            Ok(())
        })
    }

    /// Stores a typed document as JSON.
    pub fn put_doc<D: Document>(&self, doc: &D) -> Result<()> {
        self.transaction(|tx| tx.put_doc(doc))
    }

    /// The typed document `id`, if it exists.
    pub fn get_doc<D: Document>(&self, id: &str) -> Result<Option<D>> {
        self.read(|tx| tx.get_doc(id))
    }

    /// Every document of type `D`.
    pub fn list_docs<D: Document>(&self) -> Result<Vec<D>> {
        self.read(|tx| tx.list_docs())
    }

    /// The documents of type `D` whose indexed `field` equals `value`.
    pub fn query_docs<D: Document>(&self, field: &str, value: &str) -> Result<Vec<D>> {
        self.read(|tx| tx.query_docs(field, value))
    }

    /// Replaces the passphrase. `old` must be the current one ([`VaultError::WrongKey`]
    /// otherwise). Only the data key is rewrapped; records are untouched.
    pub fn change_passphrase(&self, old: &str, new: &str) -> Result<()> {
        self.check_open()?;
        let _one_key_op = lock(&self.key_ops);
        let slot = self
            .read(|tx| read_slots(tx.conn))?
            .into_iter()
            .find(|s| s.slot == keys::PASSPHRASE_SLOT)
            .ok_or_else(|| VaultError::WrongKey {
                reason: "the vault is protected by a key provider, not a passphrase".into(),
            })?;
        let (old_wrapper, old_key) = Wrapper::open_passphrase(&slot, old)?;
        let cipher = old_wrapper.cipher().unwrap_or_default();
        let new_wrapper = Wrapper::new_passphrase(new, self.kdf_iterations, cipher)?;
        self.replace_wrapper(new_wrapper, &old_key)?;
        log::info!("vault passphrase changed");
        Ok(())
    }

    /// Protects the data key with `provider` from now on (a new provider key, or a switch from
    /// passphrase to provider). The new wrapping is checked by unwrapping it before it replaces
    /// the old one, so a faulty provider cannot lock the user out.
    pub fn rotate_key_provider(&self, provider: Arc<dyn KeyProvider>) -> Result<()> {
        let _one_key_op = lock(&self.key_ops);
        let data_key = self.with_state(|state| Ok(state.keys.data_key().clone()))?;
        self.replace_wrapper(Wrapper::Provider(provider), &data_key)
    }

    /// Wraps `data_key` with `wrapper` (calling no provider under the state lock), checks the
    /// round trip, then swaps the key slot in one transaction and checkpoints at once: a copy of
    /// the files taken from then on holds only the new slot. The caller holds `key_ops`.
    fn replace_wrapper(&self, wrapper: Wrapper, data_key: &crypto::SecretKey) -> Result<()> {
        let slot = wrapper.wrap(data_key)?;
        let back = wrapper.unwrap(&slot)?;
        if !crypto::constant_time_eq(back.as_ref(), data_key.as_ref()) {
            return Err(VaultError::KeyUnavailable {
                reason: "the key provider did not return the key it wrapped".into(),
            });
        }
        self.with_state(|state| {
            if !crypto::constant_time_eq(state.keys.data_key().as_ref(), data_key.as_ref()) {
                return Err(VaultError::WrongKey {
                    reason: "the data key changed while the key slot was being replaced".into(),
                });
            }
            let tx = state
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            write_slot(&tx, &slot)?;
            tx.commit()?;
            *lock(&self.wrapper) = Some(Arc::new(wrapper));
            // Committed: the change stands whatever follows. Only another connection reading
            // the file at this instant can hold the checkpoint back; close() retries it.
            let _ = checkpoint(&state.conn);
            Ok(())
        })
    }

    /// Replaces the data key with a fresh one and re-encrypts every record and blind index under
    /// it, in one transaction: a crash leaves either the old key and records or the new ones.
    /// Returns the number of records re-encrypted.
    pub fn rotate_data_key(&self) -> Result<u64> {
        let _one_key_op = lock(&self.key_ops);
        let wrapper = self.current_wrapper()?;
        let new_key = crypto::random_key().map_err(|_| VaultError::Io {
            reason: "system random source failed".into(),
        })?;
        let slot = wrapper.wrap(&new_key)?;
        self.with_state(|state| {
            let cipher = state.keys.record.cipher();
            let new_keys = KeySet::new(new_key, state.keys.generation + 1, cipher);
            let tx = state
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let rows = {
                // In storage order: logs read by position (the tap log) keep their order.
                let mut stmt = tx.prepare(
                    "SELECT collection, id_hash, envelope FROM records ORDER BY record_id",
                )?;
                let rows = stmt.query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                    ))
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()?
            };
            tx.execute_batch("DELETE FROM record_index; DELETE FROM records;")?;
            let old = VaultTx {
                conn: &tx,
                keys: &state.keys,
                closed: &self.closed,
                changed: Default::default(),
            };
            let new = VaultTx {
                conn: &tx,
                keys: &new_keys,
                closed: &self.closed,
                changed: Default::default(),
            };
            let count = rows.len() as u64;
            for (collection, id_hash, envelope) in rows {
                self.check_open()?;
                let record = old.decrypt(&collection, &id_hash, envelope)?;
                new.put(&collection, &record.id, &record.index, &record.body)?;
            }
            write_slot(&tx, &slot)?;
            write_meta(&tx, &new_keys)?;
            tx.commit()?;
            state.keys = new_keys;
            // The old data key's slot and the records sealed under it leave the files now
            // (committed either way; see replace_wrapper).
            let _ = checkpoint(&state.conn);
            Ok(count)
        })
    }

    /// Writes every record, decrypted and re-sealed under `passphrase`, to an encrypted backup
    /// file at `path` (written beside it, then renamed, so a crash never leaves half a backup).
    /// Returns the number of records.
    pub fn export_backup(&self, path: &Path, passphrase: &str) -> Result<u64> {
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
                let collection: String = row.get(0)?;
                let id_hash: Vec<u8> = row.get(1)?;
                let envelope: Vec<u8> = row.get(2)?;
                let record = vtx.decrypt(&collection, &id_hash, envelope)?;
                writer.add(&collection, &record)?;
            }
            Ok(())
        })?;
        writer.finish()
    }

    /// Reads a backup made by [`Vault::export_backup`] and stores all of its records (replacing
    /// records with the same ids) in one transaction. A wrong passphrase gives
    /// [`VaultError::WrongKey`]; a damaged or truncated file gives [`VaultError::InvalidBackup`];
    /// either way nothing is written. Returns the number of records imported.
    pub fn import_backup(&self, path: &Path, passphrase: &str) -> Result<u64> {
        self.check_open()?;
        let mut reader = backup::Reader::open(path, passphrase)?;
        self.transaction(|tx| {
            let mut count = 0u64;
            while let Some((collection, record)) = reader.next_entry()? {
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

fn read_slots(conn: &Connection) -> Result<Vec<Slot>> {
    let mut stmt = conn.prepare("SELECT slot, key_id, params, wrapped FROM key_slots")?;
    let rows = stmt.query_map([], |r| {
        Ok(Slot {
            slot: r.get(0)?,
            key_id: r.get(1)?,
            params: r.get(2)?,
            wrapped: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Makes `slot` the vault's only key slot.
fn write_slot(conn: &Connection, slot: &Slot) -> Result<()> {
    conn.execute(
        "UPDATE key_slots SET wrapped = zeroblob(length(wrapped)), params = zeroblob(length(params))",
        [],
    )?;
    conn.execute("DELETE FROM key_slots", [])?;
    conn.execute(
        "INSERT INTO key_slots (slot, key_id, params, wrapped) VALUES (?1, ?2, ?3, ?4)",
        params![slot.slot, slot.key_id, slot.params, slot.wrapped],
    )?;
    Ok(())
}

fn write_meta(conn: &Connection, keys: &KeySet) -> Result<()> {
    let mut stmt =
        conn.prepare("INSERT OR REPLACE INTO vault_meta (name, value) VALUES (?1, ?2)")?;
    stmt.execute(params!["key_check", keys.key_check().to_vec()])?;
    stmt.execute(params![
        "key_generation",
        keys.generation.to_be_bytes().to_vec()
    ])?;
    stmt.execute(params!["cipher", vec![keys.record.cipher().id()]])?;
    Ok(())
}

fn read_meta(conn: &Connection, name: &str) -> Result<Vec<u8>> {
    conn.query_row(
        "SELECT value FROM vault_meta WHERE name = ?1",
        [name],
        |r| r.get(0),
    )
    .optional()?
    .ok_or_else(|| VaultError::CorruptStore {
        reason: format!("vault metadata '{name}' missing"),
    })
}

fn create_keys(
    conn: &mut Connection,
    unlock: Unlock,
    options: &VaultOptions,
) -> Result<(Wrapper, KeySet)> {
    let wrapper = match unlock {
        Unlock::Passphrase(p) => {
            Wrapper::new_passphrase(&p, options.kdf_iterations, options.cipher)?
        }
        Unlock::Provider(p) => Wrapper::Provider(p),
    };
    let data_key = crypto::random_key().map_err(|_| VaultError::Io {
        reason: "system random source failed".into(),
    })?;
    let slot = wrapper.wrap(&data_key)?;
    let back = wrapper.unwrap(&slot)?;
    if !crypto::constant_time_eq(back.as_ref(), data_key.as_ref()) {
        return Err(VaultError::KeyUnavailable {
            reason: "the key provider did not return the key it wrapped".into(),
        });
    }
    let keys = KeySet::new(data_key, 1, options.cipher);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if !read_slots(&tx)?.is_empty() {
        // Another process created the vault between our read and this write lock.
        return Err(VaultError::Io {
            reason: "the vault was created concurrently; open it again".into(),
        });
    }
    write_slot(&tx, &slot)?;
    write_meta(&tx, &keys)?;
    tx.commit()?;
    Ok((wrapper, keys))
}

fn unlock_keys(conn: &Connection, slots: &[Slot], unlock: Unlock) -> Result<(Wrapper, KeySet)> {
    let corrupt = |what: &str| VaultError::CorruptStore {
        reason: format!("bad vault metadata: {what}"),
    };
    let generation: [u8; 4] = read_meta(conn, "key_generation")?
        .try_into()
        .map_err(|_| corrupt("key_generation"))?;
    let cipher_id = read_meta(conn, "cipher")?;
    let cipher = cipher_id
        .first()
        .and_then(|id| Cipher::from_id(*id))
        .filter(|_| cipher_id.len() == 1)
        .ok_or_else(|| corrupt("cipher"))?;
    let check = read_meta(conn, "key_check")?;
    let (wrapper, data_key) = match unlock {
        Unlock::Passphrase(passphrase) => {
            let slot = slots
                .iter()
                .find(|s| s.slot == keys::PASSPHRASE_SLOT)
                .ok_or_else(|| VaultError::WrongKey {
                    reason: "the vault is protected by a key provider, not a passphrase".into(),
                })?;
            Wrapper::open_passphrase(slot, &passphrase)?
        }
        Unlock::Provider(provider) => {
            let wrapper = Wrapper::Provider(provider);
            let slot = slots
                .iter()
                .find(|s| s.slot == keys::PROVIDER_SLOT)
                .ok_or_else(|| VaultError::WrongKey {
                    reason: "the vault is protected by a passphrase, not a key provider".into(),
                })?;
            let key = wrapper.unwrap(slot)?;
            (wrapper, key)
        }
    };
    let keys = KeySet::new(data_key, u32::from_be_bytes(generation), cipher);
    if !keys.verify_key_check(&check) {
        return Err(VaultError::WrongKey {
            reason: "the key does not unlock this vault".into(),
        });
    }
    Ok((wrapper, keys))
}

fn check_name(kind: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.as_bytes()[0].is_ascii_lowercase()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(VaultError::invalid(format!(
            "{kind} name must be 1-{MAX_NAME_LEN} characters of a-z, 0-9, '.', '_', '-', starting with a letter"
        )))
    }
}

fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(VaultError::invalid(format!(
            "record id must be 1-{MAX_ID_LEN} bytes"
        )));
    }
    Ok(())
}

/// The vault seen from inside a transaction (or a read): the same operations, applied together.
pub struct VaultTx<'a> {
    conn: &'a Connection,
    keys: &'a KeySet,
    closed: &'a AtomicBool,
    /// Collections written in this transaction, for the change observers.
    changed: std::cell::RefCell<std::collections::BTreeSet<String>>,
}

impl VaultTx<'_> {
    fn mark_changed(&self, collection: &str) {
        let mut changed = self.changed.borrow_mut();
        if !changed.contains(collection) {
            changed.insert(collection.to_owned());
        }
    }

    fn id_hash(&self, collection: &str, id: &str) -> [u8; crypto::MAC_LEN] {
        self.keys.collection(collection).id.tag(&[id.as_bytes()])
    }

    /// Opens a stored envelope. The id hash is in the additional data, so an envelope that
    /// authenticates was sealed for exactly this (collection, id hash): no second HMAC needed.
    fn decrypt(&self, collection: &str, id_hash: &[u8], envelope: Vec<u8>) -> Result<Record> {
        let payload = codec::open(
            &self.keys.record,
            self.keys.generation,
            collection,
            id_hash,
            envelope,
        )?;
        codec::decode_payload_owned(collection, payload)
    }

    fn decrypt_rows(&self, collection: &str, rows: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Vec<Record>> {
        let mut records = Vec::with_capacity(rows.len());
        for (id_hash, envelope) in rows {
            if self.closed.load(Ordering::SeqCst) {
                return Err(VaultError::Closed);
            }
            records.push(self.decrypt(collection, &id_hash, envelope)?);
        }
        records.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(records)
    }

    /// Inserts or replaces a record.
    pub fn put(
        &self,
        collection: &str,
        id: &str,
        index: &[(String, String)],
        body: &[u8],
    ) -> Result<()> {
        check_name("collection", collection)?;
        check_id(id)?;
        if body.len() > MAX_BODY_LEN {
            return Err(VaultError::invalid(format!(
                "record body exceeds {MAX_BODY_LEN} bytes"
            )));
        }
        if index.len() > MAX_INDEX_ENTRIES {
            return Err(VaultError::invalid(format!(
                "at most {MAX_INDEX_ENTRIES} index entries"
            )));
        }
        for (field, value) in index {
            check_name("index field", field)?;
            if value.len() > MAX_INDEX_VALUE_LEN {
                return Err(VaultError::invalid(format!(
                    "index value exceeds {MAX_INDEX_VALUE_LEN} bytes"
                )));
            }
        }
        self.mark_changed(collection);
        let keys = self.keys.collection(collection);
        let id_hash = keys.id.tag(&[id.as_bytes()]);
        let payload = codec::encode_payload(id, index, body);
        let envelope = codec::seal(
            &self.keys.record,
            self.keys.generation,
            collection,
            &id_hash,
            payload,
        )?;
        let record_id: i64 = self
            .conn
            .prepare_cached(
                "INSERT INTO records (collection, id_hash, envelope) VALUES (?1, ?2, ?3)
                 ON CONFLICT (collection, id_hash) DO UPDATE SET envelope = excluded.envelope
                 RETURNING record_id",
            )?
            .query_row(params![collection, &id_hash[..], envelope], |r| r.get(0))?;
        self.conn
            .prepare_cached("DELETE FROM record_index WHERE record_id = ?1")?
            .execute([record_id])?;
        let mut insert = self.conn.prepare_cached(
            "INSERT OR IGNORE INTO record_index (collection, field, value_hash, record_id)
             VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (field, value) in index {
            let value_hash = keys.index.tag(&[field.as_bytes(), value.as_bytes()]);
            insert.execute(params![collection, field, &value_hash[..], record_id])?;
        }
        Ok(())
    }

    /// The record `id` of `collection`, if it exists.
    pub fn get(&self, collection: &str, id: &str) -> Result<Option<Record>> {
        check_name("collection", collection)?;
        check_id(id)?;
        let id_hash = self.id_hash(collection, id);
        let envelope: Option<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT envelope FROM records WHERE collection = ?1 AND id_hash = ?2")?
            .query_row(params![collection, &id_hash[..]], |r| r.get(0))
            .optional()?;
        envelope
            .map(|env| self.decrypt(collection, &id_hash, env))
            .transpose()
    }

    /// Deletes a record; returns whether it existed.
    pub fn delete(&self, collection: &str, id: &str) -> Result<bool> {
        check_name("collection", collection)?;
        check_id(id)?;
        let id_hash = self.id_hash(collection, id);
        let record_id: Option<i64> = self
            .conn
            .prepare_cached(
                "DELETE FROM records WHERE collection = ?1 AND id_hash = ?2 RETURNING record_id",
            )?
            .query_row(params![collection, &id_hash[..]], |r| r.get(0))
            .optional()?;
        if let Some(record_id) = record_id {
            self.mark_changed(collection);
            self.conn
                .prepare_cached("DELETE FROM record_index WHERE record_id = ?1")?
                .execute([record_id])?;
        }
        Ok(record_id.is_some())
    }

    /// Every record of `collection`, sorted by id.
    pub fn list(&self, collection: &str) -> Result<Vec<Record>> {
        check_name("collection", collection)?;
        let rows = self
            .conn
            .prepare_cached("SELECT id_hash, envelope FROM records WHERE collection = ?1")?
            .query_map([collection], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        self.decrypt_rows(collection, rows)
    }

    /// A page of `collection` in storage order from `from` (exclusive), forwards or backwards.
    pub fn list_page(
        &self,
        collection: &str,
        from: i64,
        limit: usize,
        backwards: bool,
    ) -> Result<Vec<(i64, Record)>> {
        check_name("collection", collection)?;
        let sql = if backwards {
            "SELECT record_id, id_hash, envelope FROM records
             WHERE collection = ?1 AND record_id < ?2 ORDER BY record_id DESC LIMIT ?3"
        } else {
            "SELECT record_id, id_hash, envelope FROM records
             WHERE collection = ?1 AND record_id > ?2 ORDER BY record_id LIMIT ?3"
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .conn
            .prepare_cached(sql)?
            .query_map(params![collection, from, limit], |r| {
                Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<rusqlite::Result<Vec<(i64, Vec<u8>, Vec<u8>)>>>()?;
        let mut page = Vec::with_capacity(rows.len());
        for (position, id_hash, envelope) in rows {
            if self.closed.load(Ordering::SeqCst) {
                return Err(VaultError::Closed);
            }
            page.push((position, self.decrypt(collection, &id_hash, envelope)?));
        }
        Ok(page)
    }

    /// How many records `collection` holds.
    pub fn count(&self, collection: &str) -> Result<u64> {
        check_name("collection", collection)?;
        let count: i64 = self
            .conn
            .prepare_cached("SELECT count(*) FROM records WHERE collection = ?1")?
            .query_row([collection], |r| r.get(0))?;
        Ok(count.max(0) as u64)
    }

    /// The records whose indexed `field` equals `value`, sorted by id.
    pub fn query(&self, collection: &str, field: &str, value: &str) -> Result<Vec<Record>> {
        check_name("collection", collection)?;
        check_name("index field", field)?;
        let value_hash = self
            .keys
            .collection(collection)
            .index
            .tag(&[field.as_bytes(), value.as_bytes()]);
        let rows = self
            .conn
            .prepare_cached(
                "SELECT r.id_hash, r.envelope FROM record_index i
                 JOIN records r ON r.record_id = i.record_id
                 WHERE i.collection = ?1 AND i.field = ?2 AND i.value_hash = ?3",
            )?
            .query_map(params![collection, field, &value_hash[..]], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut records = self.decrypt_rows(collection, rows)?;
        // An index row is only a hint: keep records whose sealed index really holds the value.
        records.retain(|r| r.index.iter().any(|(f, v)| f == field && v == value));
        Ok(records)
    }

    /// Stores a typed document as JSON.
    pub fn put_doc<D: Document>(&self, doc: &D) -> Result<()> {
        let body = serde_json::to_vec(doc)
            .map_err(|e| VaultError::invalid(format!("cannot serialise document: {e}")))?;
        self.put(D::COLLECTION, &doc.id(), &doc.index(), &body)
    }

    /// The typed document `id`, if it exists.
    pub fn get_doc<D: Document>(&self, id: &str) -> Result<Option<D>> {
        self.get(D::COLLECTION, id)?
            .map(|r| parse_doc(&r))
            .transpose()
    }

    /// Every document of type `D`.
    pub fn list_docs<D: Document>(&self) -> Result<Vec<D>> {
        self.list(D::COLLECTION)?.iter().map(parse_doc).collect()
    }

    /// The documents of type `D` whose indexed `field` equals `value`.
    pub fn query_docs<D: Document>(&self, field: &str, value: &str) -> Result<Vec<D>> {
        self.query(D::COLLECTION, field, value)?
            .iter()
            .map(parse_doc)
            .collect()
    }
}

fn parse_doc<D: Document>(record: &Record) -> Result<D> {
    serde_json::from_slice(&record.body)
        .map_err(|e| VaultError::corrupt(D::COLLECTION, format!("document does not parse: {e}")))
}
