//! Configuration values by key (the issuer's keyring, the deny list's version, the answers
//! kept for retried purchases): a store every concern may use.

use super::engine::{params, Engine};
use super::locks::Lock;
use super::migrations::ConcernSchema;
use super::{Result, SqlStorage, StorageError};

/// The settings table.
pub const SCHEMA: ConcernSchema = ConcernSchema {
    concern: "settings",
    sqlite: &[include_str!("schema/sqlite/0001_base.sql")],
    postgres: &[include_str!("schema/postgres/0001_base.sql")],
};

/// A value's update that may also set a companion value beside it (`None`: left as it is).
pub type UpdateWith<'a> = dyn FnMut(Option<Vec<u8>>) -> Result<(Vec<u8>, Option<Vec<u8>>)> + 'a;

/// Configuration values by key.
pub trait SettingsStore: Send + Sync + 'static {
    /// A configuration value.
    fn get_setting(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Sets a configuration value.
    fn set_setting(&self, key: &str, value: &[u8]) -> Result<()>;
    /// Stores `value` under `key` unless the key holds a value already; returns the value
    /// stored, so that of two instances racing to set it, both go on with the first's.
    fn claim_setting(&self, key: &str, value: &[u8]) -> Result<Vec<u8>>;
    /// Replaces a value with `update(current)` in one transaction, one instance at a time;
    /// returns the new value. `update` may run more than once.
    fn update_setting(
        &self,
        key: &str,
        update: &mut dyn FnMut(Option<Vec<u8>>) -> Result<Vec<u8>>,
    ) -> Result<Vec<u8>>;
    /// [`update_setting`](Self::update_setting) that also sets `companion`, in the same
    /// transaction, to the second value `update` returns (`None`: left as it is): a summary
    /// kept beside a large value is then never out of step with it.
    fn update_setting_and(
        &self,
        key: &str,
        companion: &str,
        update: &mut UpdateWith<'_>,
    ) -> Result<Vec<u8>>;
}

impl<E: Engine> SettingsStore for SqlStorage<E> {
    fn get_setting(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.read(|tx| {
            tx.row("SELECT value FROM settings WHERE key = ?1", params![key])?
                .map(|r| r.bytes(0))
                .transpose()
        })
    }

    fn set_setting(&self, key: &str, value: &[u8]) -> Result<()> {
        self.write(|tx| {
            tx.exec(
                "INSERT INTO settings(key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )?;
            Ok(())
        })
    }

    fn claim_setting(&self, key: &str, value: &[u8]) -> Result<Vec<u8>> {
        self.write(|tx| {
            tx.exec(
                "INSERT INTO settings(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO NOTHING",
                params![key, value],
            )?;
            tx.row("SELECT value FROM settings WHERE key = ?1", params![key])?
                .ok_or_else(|| StorageError::Failed(format!("setting {key} vanished")))?
                .bytes(0)
        })
    }

    fn update_setting(
        &self,
        key: &str,
        update: &mut dyn FnMut(Option<Vec<u8>>) -> Result<Vec<u8>>,
    ) -> Result<Vec<u8>> {
        self.update_setting_and(key, "", &mut |current| Ok((update(current)?, None)))
    }

    fn update_setting_and(
        &self,
        key: &str,
        companion: &str,
        update: &mut UpdateWith<'_>,
    ) -> Result<Vec<u8>> {
        self.write(|tx| {
            tx.lock(Lock::Setting(key))?;
            let current = tx
                .row("SELECT value FROM settings WHERE key = ?1", params![key])?
                .map(|r| r.bytes(0))
                .transpose()?;
            let (value, beside) = update(current)?;
            let upsert = "INSERT INTO settings(key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value";
            tx.exec(upsert, params![key, &value[..]])?;
            if let Some(beside) = beside {
                tx.exec(upsert, params![companion, &beside[..]])?;
            }
            Ok(value)
        })
    }
}

/// A P-256 signing key kept under `key` as hex PKCS#8 (a deployment keeps it in an HSM), made
/// on first use: of several instances making it at once, all go on with the first stored.
/// `Err` says what is wrong with it (no randomness, unreadable, not P-256).
pub fn p256_key<S: SettingsStore + ?Sized>(
    settings: &S,
    key: &str,
) -> std::result::Result<thudo_core::crypto::p256::SoftwareKey, String> {
    use thudo_core::crypto::p256::SoftwareKey;
    let stored = match settings.get_setting(key).map_err(|e| e.to_string())? {
        Some(stored) => stored,
        None => {
            let (_, pkcs8) = SoftwareKey::generate().ok_or("no randomness")?;
            settings
                .claim_setting(key, thudo_core::hex::encode(&pkcs8).as_bytes())
                .map_err(|e| e.to_string())?
        }
    };
    let pkcs8 = std::str::from_utf8(&stored)
        .ok()
        .and_then(thudo_core::hex::decode)
        .ok_or("unreadable")?;
    SoftwareKey::from_pkcs8(&pkcs8).ok_or_else(|| "not a P-256 key".to_owned())
}
