//! Accounts, devices and their tokens, registration nonces.

use thudo_core::hex;

use super::identity::NONCE_TTL_SECS;
use crate::secrets::{CitizenKey, ServerSecrets};
use crate::storage::engine::{big, params, Engine, Tx};
use crate::storage::locks::Lock;
use crate::storage::migrations::ConcernSchema;
use crate::storage::{random_bytes, Result, SqlStorage, StorageError};

/// A registered device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Device id.
    pub id: String,
    /// The citizen's account.
    pub account_id: String,
    /// `phone` or `validator`.
    pub role: String,
    /// The account's party cell, if a member.
    pub cell: Option<String>,
    /// The account's transit card number.
    pub card_id: u64,
}

/// One of a citizen's devices, as the citizen sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// Device id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// When it registered (unix seconds).
    pub created_at: i64,
}

/// What else a device's revocation does in its transaction (transit denies the keys the
/// device bought credentials for and returns the passes it paid for and can no longer
/// collect); returns how many keys it denied. Runs holding the device's lock.
pub type RevocationHook = dyn Fn(&mut dyn Tx, &str, i64) -> Result<usize> + Send + Sync;

/// The devices tables.
pub const SCHEMA: ConcernSchema = ConcernSchema {
    concern: "devices",
    sqlite: &[
        include_str!("schema/sqlite/0001_base.sql"),
        include_str!("schema/sqlite/0002_nonce_expiry.sql"),
        include_str!("schema/sqlite/0003_cell_history.sql"),
    ],
    postgres: &[
        include_str!("schema/postgres/0001_base.sql"),
        include_str!("schema/postgres/0002_nonce_expiry.sql"),
        include_str!("schema/postgres/0003_cell_history.sql"),
    ],
};

/// Accounts and devices.
pub trait DeviceStore: Send + Sync + 'static {
    /// The account of a citizen, created when new; returns its id.
    fn account_for_citizen(&self, citizen: &CitizenKey) -> Result<String>;
    /// Registers a device of a citizen's account under a token hash; returns the device id and
    /// account id, or `None` (nothing made) when `expected_account` is given and is not the
    /// citizen's account.
    fn register_device(
        &self,
        citizen: &CitizenKey,
        name: &str,
        role: &str,
        token_hash: &[u8; 32],
        expected_account: Option<&str>,
    ) -> Result<Option<(String, String)>>;
    /// The device holding a token.
    fn device_by_token(&self, token_hash: &[u8; 32]) -> Result<Option<Device>>;
    /// Sets the party cell of a citizen.
    fn set_cell(&self, citizen: &CitizenKey, cell: &str) -> Result<()> {
        self.move_to_cell(citizen, cell, &|_| true).map(|_| ())
    }
    /// Brings the stored citizen keys up to every secret of `secrets` (rows from before
    /// keying, or keyed with fewer secrets); returns how many rows were rekeyed. Refused when
    /// the database was keyed with secrets `secrets` does not begin with.
    fn rekey_citizens(&self, secrets: &ServerSecrets) -> Result<usize>;
    /// Moves a citizen to `cell` when `may_leave` allows their current cell (`None`: in no
    /// cell yet), keeping the cell left and when; whether they moved.
    fn move_to_cell(
        &self,
        citizen: &CitizenKey,
        cell: &str,
        may_leave: &(dyn Fn(Option<&str>) -> bool + Sync),
    ) -> Result<bool>;
    /// Spends the registration nonce whose hash is `hash` (authentic, good until
    /// `expires_at`, checked by the caller): `true` the first time, `false` after. Kept until
    /// well past its expiry, when it can no longer be spent anyway.
    fn spend_nonce(&self, hash: &[u8; 32], expires_at: i64, now: i64) -> Result<bool>;
    /// The active (not revoked) devices of an account, oldest first.
    fn devices_of(&self, account_id: &str) -> Result<Vec<DeviceRecord>>;
    /// Revokes a device of an account: its token stops working at once and, in the same
    /// transaction, `also` runs (transit denies its keys). Returns what `also` returned, or
    /// `None` when the account has no such active device.
    fn revoke_device(
        &self,
        account_id: &str,
        device_id: &str,
        now: i64,
        also: &RevocationHook,
    ) -> Result<Option<usize>>;
    /// The account a device belongs to.
    fn account_of_device(&self, device_id: &str) -> Result<Option<String>>;
    /// A citizen's account and party cell, if they have an account (none is made).
    fn member(&self, citizen: &CitizenKey) -> Result<Option<(String, Option<String>)>>;
}

/// The account of a citizen in a transaction, created when new (with a random card number).
pub fn account_in(tx: &mut dyn Tx, citizen: &CitizenKey) -> Result<String> {
    let hash = citizen.as_bytes();
    if let Some(row) = tx.row(
        "SELECT id FROM accounts WHERE citizen_hash = ?1",
        params![hash],
    )? {
        return row.text(0);
    }
    let id = format!("a-{}", hex::encode(&random_bytes::<8>()?));
    // Card numbers: random, 15 decimal digits, so they are not guessable from each other.
    let card = u64::from_le_bytes(random_bytes::<8>()?) % 900_000_000_000_000 + 100_000_000_000_000;
    tx.exec(
        "INSERT INTO accounts(id, citizen_hash, cell, card_id) VALUES (?1, ?2, NULL, ?3)",
        params![&id, hash, big(card)],
    )?;
    Ok(id)
}

/// The setting that lists the fingerprints of the secrets citizen keys are under.
const CITIZEN_KEYS_SETTING: &str = "citizen_keys";

impl<E: Engine> DeviceStore for SqlStorage<E> {
    fn rekey_citizens(&self, secrets: &ServerSecrets) -> Result<usize> {
        let wanted = secrets.fingerprints();
        self.write(|tx| {
            tx.lock(Lock::Setting(CITIZEN_KEYS_SETTING))?;
            let applied: Vec<String> = match tx.row(
                "SELECT value FROM settings WHERE key = ?1",
                params![CITIZEN_KEYS_SETTING],
            )? {
                Some(row) => serde_json::from_slice(&row.bytes(0)?).map_err(|e| {
                    StorageError::Failed(format!("setting {CITIZEN_KEYS_SETTING}: {e}"))
                })?,
                None => Vec::new(),
            };
            if !wanted.starts_with(&applied) {
                return Err(StorageError::Failed(
                    "the database's citizen IDs are keyed with other secrets than the \
                     configured ones (a secrets file may only gain lines)"
                        .into(),
                ));
            }
            if applied.len() == wanted.len() {
                return Ok(0);
            }
            let rows = tx.rows("SELECT id, citizen_hash FROM accounts", params![])?;
            for row in &rows {
                let stored = row
                    .hash(1)?
                    .ok_or_else(|| StorageError::Failed("a citizen key is not 32 bytes".into()))?;
                let rekeyed = secrets.rekey(applied.len(), &stored);
                tx.exec(
                    "UPDATE accounts SET citizen_hash = ?1 WHERE id = ?2",
                    params![&rekeyed, &row.text(0)?],
                )?;
            }
            let value =
                serde_json::to_vec(&wanted).map_err(|e| StorageError::Failed(e.to_string()))?;
            tx.exec(
                "INSERT INTO settings(key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![CITIZEN_KEYS_SETTING, value],
            )?;
            Ok(rows.len())
        })
    }

    fn account_for_citizen(&self, citizen: &CitizenKey) -> Result<String> {
        self.write(|tx| account_in(tx, citizen))
    }

    fn register_device(
        &self,
        citizen: &CitizenKey,
        name: &str,
        role: &str,
        token_hash: &[u8; 32],
        expected_account: Option<&str>,
    ) -> Result<Option<(String, String)>> {
        self.write(|tx| {
            if let Some(expected) = expected_account {
                let held = tx.row(
                    "SELECT id FROM accounts WHERE citizen_hash = ?1",
                    params![citizen.as_bytes()],
                )?;
                if held.map(|r| r.text(0)).transpose()?.as_deref() != Some(expected) {
                    return Ok(None);
                }
            }
            let account = account_in(tx, citizen)?;
            let id = format!("d-{}", hex::encode(&random_bytes::<8>()?));
            tx.exec(
                "INSERT INTO devices(id, account_id, name, role, token_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![&id, &account, name, role, token_hash, chrono::Utc::now().timestamp()],
            )?;
            Ok(Some((id, account)))
        })
    }

    fn device_by_token(&self, token_hash: &[u8; 32]) -> Result<Option<Device>> {
        self.read(|tx| {
            tx.row(
                "SELECT d.id, d.account_id, d.role, a.cell, a.card_id FROM devices d
                 JOIN accounts a ON a.id = d.account_id
                 WHERE d.token_hash = ?1 AND d.revoked_at IS NULL",
                params![token_hash],
            )?
            .map(|r| {
                Ok(Device {
                    id: r.text(0)?,
                    account_id: r.text(1)?,
                    role: r.text(2)?,
                    cell: r.opt_text(3)?,
                    card_id: r.int(4)? as u64,
                })
            })
            .transpose()
        })
    }

    fn move_to_cell(
        &self,
        citizen: &CitizenKey,
        cell: &str,
        may_leave: &(dyn Fn(Option<&str>) -> bool + Sync),
    ) -> Result<bool> {
        self.write(|tx| {
            let account = account_in(tx, citizen)?;
            // Read and changed under the account's lock: two organisations moving a member at
            // once each judge the cell the other left (on PostgreSQL the read alone would see
            // the cell from before, and one could move a member out of a cell it does not
            // govern).
            tx.lock(Lock::Account(&account))?;
            let current = tx
                .row("SELECT cell FROM accounts WHERE id = ?1", params![&account])?
                .map(|r| r.opt_text(0))
                .transpose()?
                .flatten();
            if !may_leave(current.as_deref()) {
                return Ok(false);
            }
            if let Some(left) = current.as_deref().filter(|c| *c != cell) {
                tx.exec(
                    "INSERT INTO cell_history(account_id, cell, left_at) VALUES (?1, ?2, ?3)",
                    params![&account, left, chrono::Utc::now().timestamp()],
                )?;
            }
            tx.exec(
                "UPDATE accounts SET cell = ?1 WHERE id = ?2",
                params![cell, &account],
            )?;
            Ok(true)
        })
    }

    fn spend_nonce(&self, hash: &[u8; 32], expires_at: i64, now: i64) -> Result<bool> {
        self.write(|tx| {
            // Spent nonces are dropped as new ones are spent, well past their expiry: a
            // replay checked against an instant just before it (or on an instance whose clock
            // is behind) still finds its row.
            tx.exec(
                "DELETE FROM nonces WHERE expires_at < ?1",
                params![now - 2 * NONCE_TTL_SECS],
            )?;
            // The insert is the claim: of two instances spending one nonce at once, the
            // second waits for the first's row and then inserts nothing.
            let inserted = tx.exec(
                "INSERT INTO nonces(hash, expires_at, used_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (hash) DO NOTHING",
                params![hash, expires_at, now],
            )?;
            Ok(inserted == 1)
        })
    }

    fn devices_of(&self, account_id: &str) -> Result<Vec<DeviceRecord>> {
        self.read(|tx| {
            tx.rows(
                "SELECT id, name, created_at FROM devices
                 WHERE account_id = ?1 AND revoked_at IS NULL ORDER BY created_at, rowid",
                params![account_id],
            )?
            .iter()
            .map(|r| {
                Ok(DeviceRecord {
                    id: r.text(0)?,
                    name: r.text(1)?,
                    created_at: r.int(2)?,
                })
            })
            .collect()
        })
    }

    fn member(&self, citizen: &CitizenKey) -> Result<Option<(String, Option<String>)>> {
        self.read(|tx| {
            tx.row(
                "SELECT id, cell FROM accounts WHERE citizen_hash = ?1",
                params![citizen.as_bytes()],
            )?
            .map(|r| Ok((r.text(0)?, r.opt_text(1)?)))
            .transpose()
        })
    }

    fn account_of_device(&self, device_id: &str) -> Result<Option<String>> {
        self.read(|tx| {
            tx.row(
                "SELECT account_id FROM devices WHERE id = ?1",
                params![device_id],
            )?
            .map(|r| r.text(0))
            .transpose()
        })
    }

    fn revoke_device(
        &self,
        account_id: &str,
        device_id: &str,
        now: i64,
        also: &RevocationHook,
    ) -> Result<Option<usize>> {
        self.write(|tx| {
            // The device's lock: a purchase recording a transit key for this device waits, or
            // finished before and its key is denied here.
            tx.lock(Lock::Device(device_id))?;
            let n = tx.exec(
                "UPDATE devices SET revoked_at = ?1
                 WHERE id = ?2 AND account_id = ?3 AND revoked_at IS NULL",
                params![now, device_id, account_id],
            )?;
            if n != 1 {
                return Ok(None);
            }
            also(tx, device_id, now).map(Some)
        })
    }
}
