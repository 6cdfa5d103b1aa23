//! The deny list (cards and device keys, each from a time on, under a strictly increasing
//! version), the passes sold and the credentials issued for them.

use thudo_core::hex;

use super::super::rules::VerifiedScan;
use super::{
    deny_until, CredentialStore, IssueOutcome, IssuedCredential, Pass, PassRecord, Rider,
    MAX_LIVE_KEYS_PER_DEVICE, MAX_ORDERS_PER_HOUR,
};
use crate::devices::store::Device;
use crate::storage::engine::{big, params, Engine, Tx};
use crate::storage::locks::Lock;
use crate::storage::{code_of, random_bytes, Result, SqlStorage, StorageError};

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

/// Whether a verified scan's card or device key was on the deny list at the QR's time (a card
/// denied for the balance it owes still pays its fares: its debt grows until it tops up).
pub(super) fn revoked_at(tx: &mut dyn Tx, s: &VerifiedScan) -> Result<bool> {
    Ok(tx
        .row(
            "SELECT 1 FROM deny_cards WHERE card_id = ?1 AND denied_at <= ?2 AND reason IS NULL
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
    let keys: Vec<[u8; 32]> = tx
        .rows(
            "SELECT key_hash FROM device_keys WHERE device_id = ?1",
            params![device_id],
        )?
        .iter()
        .filter_map(|r| r.hash(0).transpose())
        .collect::<Result<_>>()?;
    let mut denied = 0;
    for key in &keys {
        denied += deny_key(tx, key, now)?;
    }
    if denied > 0 {
        bump_deny_version(tx)?;
    }
    tell_account(tx, device_id, now)?;
    Ok(denied)
}

/// Tells the account's devices that one of them was revoked (a citizen who did not do it
/// learns that someone did, on every phone still signed in).
fn tell_account(tx: &mut dyn Tx, device_id: &str, now: i64) -> Result<()> {
    let Some(row) = tx.row(
        "SELECT d.account_id, d.name, a.card_id FROM devices d
         JOIN accounts a ON a.id = d.account_id WHERE d.id = ?1",
        params![device_id],
    )?
    else {
        return Ok(());
    };
    let (account, name) = (row.text(0)?, row.text(1)?);
    let notice = thudo_core::transit::trips::TransitNotice {
        id: format!("device_revoked:{device_id}"),
        card_id: row.int(2)? as u64,
        kind: "device_revoked".into(),
        at: now.max(0) as u64,
        penalty_vnd: 0,
        message_vi: format!(
            "Thiết bị \u{201c}{name}\u{201d} đã bị thu hồi: nó không còn dùng được tài khoản và vé \
             của bạn. Nếu không phải bạn làm, hãy đăng nhập lại và liên hệ hỗ trợ."
        ),
        message_en: format!(
            "The device \u{201c}{name}\u{201d} was revoked: it can no longer use your account or \
             passes. If you did not do this, sign in again and contact support."
        ),
    };
    let payload = serde_json::to_value(&notice).map_err(|e| StorageError::Failed(e.to_string()))?;
    super::riders::publish_to_accounts(
        tx,
        &[account],
        thudo_core::transit::trips::NOTICES,
        &notice.id,
        payload,
    )
}

/// Denies one key from `at` until nothing issued for it can ride; 1 when newly denied.
fn deny_key(tx: &mut dyn Tx, key: &[u8; 32], at: i64) -> Result<usize> {
    let last = tx
        .row(
            "SELECT CAST(MAX(not_after) AS BIGINT) FROM credentials WHERE key_hash = ?1",
            params![key],
        )?
        .map(|r| r.opt_int(0))
        .transpose()?
        .flatten();
    Ok(tx.exec(
        "INSERT INTO deny_devices(key_hash, denied_at, until) VALUES (?1, ?2, ?3)
         ON CONFLICT DO NOTHING",
        params![key, at, deny_until(last, at)],
    )? as usize)
}

/// Denies one card from `at` until its credentials have ended (none is issued for it again, so
/// nothing rides on it after: a pass longer than its credential needs renewals); 1 when new.
pub(super) fn deny_card(
    tx: &mut dyn Tx,
    card: u64,
    at: i64,
    reason: Option<&str>,
) -> Result<usize> {
    let last = tx
        .row(
            "SELECT CAST(MAX(not_after) AS BIGINT) FROM credentials WHERE card_id = ?1",
            params![big(card)],
        )?
        .map(|r| r.opt_int(0))
        .transpose()?
        .flatten();
    if reason.is_some() {
        return Ok(tx.exec(
            "INSERT INTO deny_cards(card_id, denied_at, until, reason) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT DO NOTHING",
            params![big(card), at, deny_until(last, at), reason],
        )? as usize);
    }
    // The operator's denial (or its policy's) stands over a denial for a balance owed: a
    // top-up, which lifts only the latter, must not lift it. It counts from its own time: the
    // rides before it, under the balance denial, still pay.
    Ok(tx.exec(
        "INSERT INTO deny_cards(card_id, denied_at, until, reason) VALUES (?1, ?2, ?3, NULL)
         ON CONFLICT (card_id) DO UPDATE SET reason = NULL, until = excluded.until,
             denied_at = excluded.denied_at
         WHERE deny_cards.reason IS NOT NULL",
        params![big(card), at, deny_until(last, at)],
    )? as usize)
}

/// Most entries (cards and device keys) an operator's mass denial may bring the list to: a
/// list that size fits the validators' feed (16 MiB) with the day's capped cards, even if
/// every entry is a device key (64 hex characters). Entries leave it 73 h after their last
/// credential ends. Denials the backend makes itself (a fraud policy, a balance owed, a
/// revoked phone) are not refused (they follow real cards and phones), and an operator's denial
/// of up to [`ALWAYS_TAKEN`] entries goes past this into [`LISTED_RESERVE`]: a stolen card or
/// phone is listed on a full list.
pub const MAX_LISTED: usize = 200_000;
/// An operator's denial of at most this many entries is taken past [`MAX_LISTED`], into
/// [`LISTED_RESERVE`].
pub const ALWAYS_TAKEN: usize = 100;
/// How far past [`MAX_LISTED`] small denials still go: a stolen card or phone is listed on a
/// full list, and the list stops here however many small denials come (about 14 MB of feed
/// when every entry is a phone key, under the 16 MiB a validator reads).
pub const LISTED_RESERVE: usize = 10_000;

/// Opens a pass sold to `account_id`; returns its id.
pub(super) fn insert_pass(
    tx: &mut dyn Tx,
    account_id: &str,
    pass: &Pass,
    now: i64,
) -> Result<String> {
    let id = format!("p-{}", hex::encode(&random_bytes::<8>()?));
    tx.exec(
        "INSERT INTO passes(id, account_id, card_id, product, category, route,
                            valid_from, valid_until, cancelled_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, ?9)",
        params![
            &id,
            account_id,
            big(pass.card_id),
            code_of(&pass.product),
            pass.category as u8,
            pass.route,
            pass.valid_from,
            pass.valid_until,
            now
        ],
    )?;
    Ok(id)
}

impl<E: Engine> CredentialStore for SqlStorage<E> {
    fn deny(&self, cards: &[u64], device_key_hashes: &[[u8; 32]], at: i64) -> Result<u32> {
        self.write(|tx| {
            // The version first: it takes the deny list's lock, so two denials at once are
            // counted against each other.
            let version = bump_deny_version(tx)?;
            let adding = cards.len() + device_key_hashes.len();
            let listed = |tx: &mut dyn Tx| -> Result<usize> {
                let mut count = |table: &str| -> Result<i64> {
                    tx.row(
                        &format!("SELECT COUNT(*) FROM {table} WHERE until IS NULL OR until >= ?1"),
                        params![at],
                    )?
                    .map_or(Ok(0), |r| r.int(0))
                };
                Ok((count("deny_cards")? + count("deny_devices")?) as usize)
            };
            let refused = |listed: usize, ceiling: usize| {
                // An error: nothing of it is kept, nor the new version.
                StorageError::ValueRefused(format!(
                    "the deny list would hold {listed} entries, past the {ceiling} every \
                     validator's feed can carry"
                ))
            };
            // A mass denial is judged before it is written (as if every entry were new):
            // writing 200,000 entries to undo them would hold the list's lock for long.
            if adding > ALWAYS_TAKEN {
                let would = listed(tx)? + adding;
                if would > MAX_LISTED {
                    return Err(refused(would, MAX_LISTED));
                }
            }
            let mut written = 0;
            for c in cards {
                written += deny_card(tx, *c, at, None)?;
            }
            for h in device_key_hashes {
                written += deny_key(tx, h, at)?;
            }
            // A few entries go past a full list, into the reserve, counted once written (one
            // listed already, a retry, writes nothing and is taken); a flood of small denials
            // stops where the reserve does.
            if written > 0 && (1..=ALWAYS_TAKEN).contains(&adding) {
                let now_listed = listed(tx)?;
                if now_listed > MAX_LISTED + LISTED_RESERVE {
                    return Err(refused(now_listed, MAX_LISTED + LISTED_RESERVE));
                }
            }
            Ok(version)
        })
    }

    fn deny_list(&self, now: i64) -> Result<(u32, Vec<u64>, Vec<[u8; 32]>)> {
        // One snapshot: the version and the entries it names are read together, and no writer
        // (nor another validator's feed) waits on it.
        self.snapshot(|tx| {
            let version = stored_deny_version(tx)?;
            let cards = tx
                .rows(
                    "SELECT card_id FROM deny_cards WHERE until IS NULL OR until >= ?1 ORDER BY card_id",
                    params![now],
                )?
                .iter()
                .map(|r| Ok(r.int(0)? as u64))
                .collect::<Result<_>>()?;
            let devices = tx
                .rows(
                    "SELECT key_hash FROM deny_devices WHERE until IS NULL OR until >= ?1 ORDER BY key_hash",
                    params![now],
                )?
                .iter()
                .filter_map(|r| r.hash(0).transpose())
                .collect::<Result<_>>()?;
            Ok((version, cards, devices))
        })
    }

    fn record_credential(
        &self,
        device: &Device,
        issued: &IssuedCredential,
        new_pass: Option<&Pass>,
        now: i64,
    ) -> Result<IssueOutcome> {
        let key_hex = hex::encode(&issued.key_hash);
        self.write(|tx| {
            // A revocation of this device in flight finishes first (and this then sees it);
            // two accounts claiming one key at once: one waits and then sees the other's claim.
            // The account's credentials are counted against its hourly limit below.
            tx.lock_all(&[
                Lock::Account(&device.account_id),
                Lock::Device(&device.id),
                Lock::DeviceKey(&key_hex),
            ])?;
            let key = &issued.key_hash;
            let exists = |tx: &mut dyn Tx, sql: &str, p: &[crate::storage::engine::Val<'_>]| {
                Ok::<bool, crate::storage::StorageError>(tx.row(sql, p)?.is_some())
            };
            if !exists(
                tx,
                "SELECT 1 FROM devices WHERE id = ?1 AND revoked_at IS NULL",
                params![&device.id],
            )? {
                return Ok(IssueOutcome::DeviceRevoked);
            }
            if exists(
                tx,
                "SELECT 1 FROM device_keys k JOIN devices d ON d.id = k.device_id
                 WHERE k.key_hash = ?1 AND d.account_id <> ?2",
                params![key, &device.account_id],
            )? {
                return Ok(IssueOutcome::KeyTaken);
            }
            if exists(tx, "SELECT 1 FROM deny_devices WHERE key_hash = ?1", params![key])? {
                return Ok(IssueOutcome::KeyDenied);
            }
            if exists(
                tx,
                "SELECT 1 FROM deny_cards WHERE card_id = ?1",
                params![big(issued.card_id)],
            )? {
                return Ok(IssueOutcome::CardDenied);
            }
            let live_keys = tx
                .rows(
                    "SELECT DISTINCT key_hash FROM credentials
                     WHERE device_id = ?1 AND not_after >= ?2 AND key_hash <> ?3",
                    params![&device.id, now, key],
                )?
                .len();
            if live_keys >= MAX_LIVE_KEYS_PER_DEVICE {
                return Ok(IssueOutcome::TooManyKeys);
            }
            let orders = tx
                .row(
                    "SELECT CAST(COUNT(*) AS BIGINT) FROM credentials
                     WHERE account_id = ?1 AND issued_at > ?2",
                    params![&device.account_id, now - 3_600],
                )?
                .map_or(Ok(0), |r| r.int(0))?;
            if orders >= MAX_ORDERS_PER_HOUR as i64 {
                return Ok(IssueOutcome::TooManyOrders);
            }
            if let Some(pass) = new_pass {
                insert_pass(tx, &device.account_id, pass, now)?;
            }
            tx.exec(
                "INSERT INTO device_keys(device_id, key_hash) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![&device.id, key],
            )?;
            tx.exec(
                "INSERT INTO credentials(account_id, device_id, key_hash, card_id, product,
                                         pass_until, not_after, issued_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    &device.account_id,
                    &device.id,
                    key,
                    big(issued.card_id),
                    code_of(&issued.product),
                    issued.pass_until,
                    issued.not_after,
                    now
                ],
            )?;
            Ok(IssueOutcome::Recorded)
        })
    }

    fn pass_for(&self, terms: &Pass) -> Result<Option<PassRecord>> {
        self.read(|tx| {
            tx.row(
                "SELECT id, account_id, cancelled_at FROM passes
                 WHERE card_id = ?1 AND product = ?2 AND category = ?3 AND route = ?4
                   AND valid_from = ?5 AND valid_until = ?6
                 ORDER BY cancelled_at IS NOT NULL, created_at LIMIT 1",
                params![
                    big(terms.card_id),
                    code_of(&terms.product),
                    terms.category as u8,
                    terms.route,
                    terms.valid_from,
                    terms.valid_until
                ],
            )?
            .map(|r| {
                Ok(PassRecord {
                    id: r.text(0)?,
                    account_id: r.text(1)?,
                    cancelled_at: r.opt_int(2)?,
                })
            })
            .transpose()
        })
    }

    fn rider_of_card(&self, account_id: &str, card_id: u64) -> Result<Option<Rider>> {
        self.read(|tx| {
            tx.row(
                "SELECT a.id, CASE WHEN a.id = ?2 THEN 0 ELSE COALESCE((
                     SELECT 1 - d.travels_alone FROM dependants d
                     WHERE d.guardian_account = ?2 AND d.dependant_account = a.id), 0) END
                 FROM accounts a WHERE a.card_id = ?1 AND (a.id = ?2 OR EXISTS (
                     SELECT 1 FROM dependants d
                     WHERE d.guardian_account = ?2 AND d.dependant_account = a.id))",
                params![big(card_id), account_id],
            )?
            .map(|r| {
                Ok(Rider {
                    account_id: r.text(0)?,
                    with_holder: r.int(1)? != 0,
                })
            })
            .transpose()
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
