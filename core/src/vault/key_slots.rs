//! The key slots and key metadata in the database, and the key operations on an open vault:
//! passphrase change, key provider switch, data key rotation. The keys themselves (derivation,
//! wrapping) are in `keys`.

use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::keys::{self, KeyProvider, KeySet, Slot, Wrapper};
use super::{checkpoint, lock, Result, Unlock, Vault, VaultError, VaultOptions, VaultTx};
use crate::crypto::{self, Cipher};

impl Vault {
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
        let slot = wrap_checked(&wrapper, data_key)?;
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
        self.rotate_data_key_cancellable(&|| false)
    }

    /// [`Vault::rotate_data_key`], given up with [`VaultError::Cancelled`] (and nothing
    /// changed) as soon as `stop` says so between two records.
    pub fn rotate_data_key_cancellable(&self, stop: &dyn Fn() -> bool) -> Result<u64> {
        let _one_key_op = lock(&self.key_ops);
        let wrapper = self.current_wrapper()?;
        let new_key = crypto::random_key().map_err(|_| VaultError::Io {
            reason: "system random source failed".into(),
        })?;
        // Checked before a record is touched: a provider that cannot give the new key back
        // would otherwise leave every record under a key nobody can unwrap.
        let slot = wrap_checked(&wrapper, &new_key)?;
        self.with_state(|state| {
            let cipher = state.keys.record.cipher();
            let new_keys = KeySet::new(new_key, state.keys.generation + 1, cipher);
            let tx = state
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
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
            // A few records in memory at a time (a vault may hold more than a phone's RAM),
            // in storage order: each one's copy goes in after every row there is, so logs read
            // by position (the tap log) keep their order, and the old row goes out.
            let last_old: i64 =
                tx.query_row("SELECT COALESCE(MAX(record_id), 0) FROM records", [], |r| {
                    r.get(0)
                })?;
            let (mut after, mut count) = (0i64, 0u64);
            loop {
                let batch = tx
                    .prepare_cached(
                        "SELECT record_id, collection, id_hash, envelope FROM records
                         WHERE record_id > ?1 AND record_id <= ?2 ORDER BY record_id LIMIT 32",
                    )?
                    .query_map([after, last_old], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, Vec<u8>>(2)?,
                            r.get::<_, Vec<u8>>(3)?,
                        ))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let Some(&(last, ..)) = batch.last() else {
                    break;
                };
                after = last;
                for (record_id, collection, id_hash, envelope) in batch {
                    self.check_open()?;
                    if stop() {
                        // Dropping the transaction rolls the whole rotation back.
                        return Err(VaultError::Cancelled);
                    }
                    let record = old.decrypt(&collection, &id_hash, envelope)?;
                    new.put(&collection, &record.id, &record.index, &record.body)?;
                    tx.prepare_cached("DELETE FROM record_index WHERE record_id = ?1")?
                        .execute([record_id])?;
                    tx.prepare_cached("DELETE FROM records WHERE record_id = ?1")?
                        .execute([record_id])?;
                    count += 1;
                }
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
}

pub(super) fn read_slots(conn: &Connection) -> Result<Vec<Slot>> {
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

pub(super) fn create_keys(
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
    let slot = wrap_checked(&wrapper, &data_key)?;
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

pub(super) fn unlock_keys(
    conn: &Connection,
    slots: &[Slot],
    unlock: Unlock,
) -> Result<(Wrapper, KeySet)> {
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

/// `data_key` wrapped by `wrapper`, once `wrapper` has given it back: a key slot is never
/// written that cannot be opened again.
fn wrap_checked(wrapper: &Wrapper, data_key: &crypto::SecretKey) -> Result<Slot> {
    let slot = wrapper.wrap(data_key)?;
    let back = wrapper.unwrap(&slot)?;
    if !crypto::constant_time_eq(back.as_ref(), data_key.as_ref()) {
        return Err(VaultError::KeyUnavailable {
            reason: "the key provider did not return the key it wrapped".into(),
        });
    }
    Ok(slot)
}
