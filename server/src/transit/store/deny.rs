//! The deny list (cards and device keys, each from a time on, under a strictly increasing
//! version) and the transit keys each device bought credentials for.

use thudo_core::hex;

use super::super::rules::VerifiedScan;
use super::DenyStore;
use crate::devices::store::Device;
use crate::storage::engine::{big, params, Engine, Tx};
use crate::storage::locks::Lock;
use crate::storage::{Result, SqlStorage};

/// The deny-list version as stored.
fn stored_deny_version(tx: &mut dyn Tx) -> Result<u32> {
    Ok(tx
        .row("SELECT value FROM settings WHERE key = 'deny_version'", &[])?
        .map(|r| r.bytes(0))
        .transpose()?
        .and_then(|v| String::from_utf8(v).ok()?.parse().ok())
        .unwrap_or(1))
}

/// Publishes a new deny-list version, one writer at a time on every instance.
pub(super) fn bump_deny_version(tx: &mut dyn Tx) -> Result<u32> {
    tx.lock(Lock::Deny)?;
    let version = stored_deny_version(tx)? + 1;
    tx.exec(
        "UPDATE settings SET value = ?1 WHERE key = 'deny_version'",
        params![version.to_string().into_bytes()],
    )?;
    Ok(version)
}

/// Whether a verified scan's card or device key was on the deny list at the QR's time.
pub(super) fn revoked_at(tx: &mut dyn Tx, s: &VerifiedScan) -> Result<bool> {
    Ok(tx
        .row(
            "SELECT 1 FROM deny_cards WHERE card_id = ?1 AND denied_at <= ?2
             UNION SELECT 1 FROM deny_devices WHERE key_hash = ?3 AND denied_at <= ?2",
            params![
                big(s.card_id),
                i64::from(s.qr_timestamp),
                &s.device_key_hash
            ],
        )?
        .is_some())
}

/// A device's revocation denies every transit key it bought credentials for, in the same
/// transaction ([`crate::devices::store::RevocationHook`]); returns how many.
pub fn deny_device_keys(tx: &mut dyn Tx, device_id: &str, now: i64) -> Result<usize> {
    let denied = tx.exec(
        "INSERT INTO deny_devices(key_hash, denied_at)
         SELECT key_hash, ?1 FROM device_keys WHERE device_id = ?2 ON CONFLICT DO NOTHING",
        params![now, device_id],
    )?;
    if denied > 0 {
        bump_deny_version(tx)?;
    }
    Ok(denied as usize)
}

impl<E: Engine> DenyStore for SqlStorage<E> {
    fn deny(&self, cards: &[u64], device_key_hashes: &[[u8; 32]], at: i64) -> Result<u32> {
        self.write(|tx| {
            let version = bump_deny_version(tx)?;
            for c in cards {
                tx.exec(
                    "INSERT INTO deny_cards(card_id, denied_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                    params![big(*c), at],
                )?;
            }
            for h in device_key_hashes {
                tx.exec(
                    "INSERT INTO deny_devices(key_hash, denied_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                    params![h, at],
                )?;
            }
            Ok(version)
        })
    }

    fn deny_list(&self) -> Result<(u32, Vec<u64>, Vec<[u8; 32]>)> {
        // One snapshot: the version and the entries it names are read together, and no writer
        // (nor another validator's feed) waits on it.
        self.snapshot(|tx| {
            let version = stored_deny_version(tx)?;
            let cards = tx
                .rows("SELECT card_id FROM deny_cards ORDER BY card_id", &[])?
                .iter()
                .map(|r| Ok(r.int(0)? as u64))
                .collect::<Result<_>>()?;
            let devices = tx
                .rows("SELECT key_hash FROM deny_devices ORDER BY key_hash", &[])?
                .iter()
                .filter_map(|r| r.hash(0).transpose())
                .collect::<Result<_>>()?;
            Ok((version, cards, devices))
        })
    }

    fn record_device_key(&self, device: &Device, key_hash: &[u8; 32]) -> Result<bool> {
        self.write(|tx| {
            // A revocation of this device in flight finishes first (and this then sees it).
            tx.lock(Lock::Device(&device.id))?;
            // Two accounts claiming one key at once: one waits and then sees the other's claim.
            tx.lock(Lock::DeviceKey(&hex::encode(key_hash)))?;
            let active = tx
                .row(
                    "SELECT 1 FROM devices WHERE id = ?1 AND revoked_at IS NULL",
                    params![&device.id],
                )?
                .is_some();
            if !active {
                return Ok(false);
            }
            let other_account = tx
                .row(
                    "SELECT 1 FROM device_keys k JOIN devices d ON d.id = k.device_id
                     WHERE k.key_hash = ?1 AND d.account_id <> ?2",
                    params![key_hash, &device.account_id],
                )?
                .is_some();
            if other_account {
                return Ok(false);
            }
            tx.exec(
                "INSERT INTO device_keys(device_id, key_hash) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![&device.id, key_hash],
            )?;
            Ok(true)
        })
    }

    fn device_keys(&self, device_id: &str) -> Result<Vec<[u8; 32]>> {
        self.read(|tx| {
            tx.rows(
                "SELECT key_hash FROM device_keys WHERE device_id = ?1",
                params![device_id],
            )?
            .iter()
            .filter_map(|r| r.hash(0).transpose())
            .collect()
        })
    }
}
