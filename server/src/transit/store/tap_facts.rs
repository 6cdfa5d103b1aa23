//! What storing an upload needs to know, read in a few statements for the whole upload (not a
//! few per tap: on PostgreSQL each statement is a round trip), and kept current as the upload's
//! own taps are stored: which sequences are stored, which cards and keys were denied and when,
//! which QRs were used where, what each card paid per day and month, and who sees each card.

use std::collections::HashMap;

use super::super::fares::FarePolicy;
use super::super::rules::{
    rides_refunded_pass, Evidence, PassTerms, SoldPass, VerifiedScan, MIN_TRAVEL_SECS,
};
use super::CheckedTap;
use crate::storage::engine::{big, Row, Tx, Val};
use crate::storage::{code_of, Result};
use thudo_core::transit::validator::Tap;

/// Values per statement in an `IN (...)` list: within SQLite's and PostgreSQL's limits.
const IN_CHUNK: usize = 1_000;

/// Runs `sql` (with `{in}` where the list goes, after `fixed` parameters) once per chunk of
/// `values`; returns every row.
pub(super) fn rows_in(
    tx: &mut dyn Tx,
    sql: &str,
    fixed: &[Val<'_>],
    values: &[Val<'_>],
) -> Result<Vec<Row>> {
    let mut out = Vec::new();
    for chunk in values.chunks(IN_CHUNK) {
        let list: Vec<String> = (0..chunk.len())
            .map(|i| format!("?{}", fixed.len() + i + 1))
            .collect();
        let params: Vec<Val<'_>> = fixed.iter().chain(chunk.iter()).cloned().collect();
        out.extend(tx.rows(&sql.replace("{in}", &list.join(", ")), &params)?);
    }
    Ok(out)
}

/// Rows to insert into one table, written together (a statement per few hundred rows instead of
/// one per row).
#[derive(Debug)]
pub(super) struct PendingRows {
    insert: &'static str,
    columns: usize,
    values: Vec<Val<'static>>,
}

impl PendingRows {
    /// Rows for `insert` (`INSERT INTO t(a, b, ...)`, `columns` of them).
    pub(super) fn new(insert: &'static str, columns: usize) -> PendingRows {
        PendingRows {
            insert,
            columns,
            values: Vec::new(),
        }
    }

    /// Adds one row (`columns` values).
    pub(super) fn push(&mut self, row: Vec<Val<'static>>) {
        debug_assert_eq!(row.len(), self.columns);
        self.values.extend(row);
    }

    /// Writes the rows held, then holds none.
    pub(super) fn flush(&mut self, tx: &mut dyn Tx) -> Result<()> {
        // At most 8,000 parameters a statement.
        let per_statement = (8_000 / self.columns).max(1);
        for rows in self.values.chunks(per_statement * self.columns) {
            let tuples: Vec<String> = rows
                .chunks(self.columns)
                .enumerate()
                .map(|(r, _)| {
                    let cells: Vec<String> = (0..self.columns)
                        .map(|c| format!("?{}", r * self.columns + c + 1))
                        .collect();
                    format!("({})", cells.join(", "))
                })
                .collect();
            tx.exec(
                &format!("{} VALUES {}", self.insert, tuples.join(", ")),
                rows,
            )?;
        }
        self.values.clear();
        Ok(())
    }
}

/// One QR use on a validator without a gate (a bus).
#[derive(Debug, Clone)]
struct BusUse {
    qr_ts: i64,
    validator_id: String,
}

/// The facts an upload's taps are judged and charged on.
#[derive(Debug, Default)]
pub(super) struct UploadFacts {
    /// Stored sequences with what identifies the tap stored under each.
    stored: HashMap<u64, StoredTap>,
    denied_cards: HashMap<u64, i64>,
    denied_keys: HashMap<[u8; 32], i64>,
    first_use: HashMap<(u64, u32, u32), String>,
    bus_uses: HashMap<u64, Vec<BusUse>>,
    paid_day: HashMap<(u64, String), u64>,
    paid_month: HashMap<(u64, String), u64>,
    seeing: HashMap<u64, Vec<String>>,
    holders: HashMap<[u8; 32], (u64, String)>,
    made: QrsMade,
    /// Each card's passes by product (its wire code) with windows near the upload's times.
    passes: HashMap<(u64, String), Vec<SoldPass>>,
}

/// What identifies a stored tap: when the validator made it, and the QR's time and counter
/// when its scan verified.
#[derive(Debug)]
struct StoredTap {
    at: i64,
    qr_ts: Option<i64>,
    qr_counter: Option<i64>,
}

/// The QRs of each card and phone key used within a day of an upload's: (time, counter).
type QrsMade = HashMap<(u64, [u8; 32]), Vec<(i64, i64)>>;

/// How far a phone's QR times may run against its counter (a clock corrected by sync, QRs
/// shown up to their acceptance window late) before a QR counts as made ahead of its time.
pub const QR_ORDER_SLACK_SECS: i64 = 10 * 60;

impl UploadFacts {
    /// Reads the facts for `taps` of validator `validator_id`.
    pub(super) fn load(
        tx: &mut dyn Tx,
        validator_id: &str,
        taps: &[&CheckedTap],
        fares: &FarePolicy,
    ) -> Result<UploadFacts> {
        let mut facts = UploadFacts::default();
        let scans: Vec<&VerifiedScan> = taps
            .iter()
            .filter_map(|t| match &t.evidence {
                Evidence::Verified(s) => Some(s),
                _ => None,
            })
            .collect();
        if let (Some(low), Some(high)) = (
            taps.iter().map(|t| t.tap.seq).min(),
            taps.iter().map(|t| t.tap.seq).max(),
        ) {
            // Sequences are stored as signed 64-bit integers: one past i64::MAX is stored
            // negative, so a range across that line is the two ranges on either side of it.
            let query = if (low as i64) <= (high as i64) {
                "SELECT seq, at, qr_ts, qr_counter FROM taps WHERE validator_id = ?1 AND seq >= ?2 AND seq <= ?3"
            } else {
                "SELECT seq, at, qr_ts, qr_counter FROM taps WHERE validator_id = ?1 AND (seq >= ?2 OR seq <= ?3)"
            };
            for r in tx.rows(query, &[validator_id.into(), big(low), big(high)])? {
                facts.stored.insert(
                    r.int(0)? as u64,
                    StoredTap {
                        at: r.int(1)?,
                        qr_ts: r.opt_int(2)?,
                        qr_counter: r.opt_int(3)?,
                    },
                );
            }
        }
        if scans.is_empty() {
            return Ok(facts);
        }
        let mut cards: Vec<u64> = scans.iter().map(|s| s.card_id).collect();
        cards.sort_unstable();
        cards.dedup();
        let card_vals: Vec<Val<'_>> = cards.iter().map(|c| big(*c)).collect();
        let mut keys: Vec<[u8; 32]> = scans.iter().map(|s| s.device_key_hash).collect();
        keys.sort_unstable();
        keys.dedup();
        let key_vals: Vec<Val<'_>> = keys.iter().map(|k| Val::from(&k[..])).collect();

        // Denied by the operator (a balance owed still pays its fares), from when.
        for r in rows_in(
            tx,
            "SELECT card_id, denied_at FROM deny_cards WHERE reason IS NULL AND card_id IN ({in})",
            &[],
            &card_vals,
        )? {
            facts.denied_cards.insert(r.int(0)? as u64, r.int(1)?);
        }
        for r in rows_in(
            tx,
            "SELECT key_hash, denied_at FROM deny_devices WHERE key_hash IN ({in})",
            &[],
            &key_vals,
        )? {
            if let Some(key) = r.hash(0)? {
                facts.denied_keys.insert(key, r.int(1)?);
            }
        }
        // The same cards' QR uses a day either side of the upload's times, in one read: first
        // uses, rides on other buses (judged within MIN_TRAVEL_SECS), and each phone key's QRs
        // in the order it made them.
        let times = scans.iter().map(|s| i64::from(s.qr_timestamp));
        let (low, high) = (
            times.clone().min().unwrap_or(0) - 86_400,
            times.max().unwrap_or(0) + 86_400,
        );
        for r in rows_in(
            tx,
            "SELECT q.card_id, q.qr_ts, q.qr_counter, q.validator_id,
                    CASE WHEN v.gate IS NULL THEN 1 ELSE 0 END, q.device_key_hash
             FROM qr_uses q LEFT JOIN validators v ON v.id = q.validator_id
             WHERE q.qr_ts >= ?1 AND q.qr_ts <= ?2 AND q.card_id IN ({in})",
            &[low.into(), high.into()],
            &card_vals,
        )? {
            let (card, ts, counter) = (r.int(0)? as u64, r.int(1)?, r.int(2)?);
            let validator = r.text(3)?;
            if let Some(key) = r.hash(5)? {
                facts
                    .made
                    .entry((card, key))
                    .or_default()
                    .push((ts, counter));
            }
            facts
                .first_use
                .insert((card, ts as u32, counter as u32), validator.clone());
            if r.int(4)? == 1 {
                facts.bus_uses.entry(card).or_default().push(BusUse {
                    qr_ts: ts,
                    validator_id: validator,
                });
            }
        }
        // The same cards' passes as sold, to charge rides taken after a refund.
        for r in rows_in(
            tx,
            "SELECT card_id, product, category, route, valid_from, valid_until, created_at,
                    cancelled_at FROM passes
             WHERE valid_until >= ?1 AND valid_from <= ?2 AND card_id IN ({in})",
            &[low.into(), high.into()],
            &card_vals,
        )? {
            facts
                .passes
                .entry((r.int(0)? as u64, r.text(1)?))
                .or_default()
                .push(SoldPass {
                    terms: PassTerms {
                        category: r.int(2)? as u8,
                        route: r.int(3)? as u16,
                        valid_from: r.int(4)?,
                        valid_until: r.int(5)?,
                    },
                    created_at: r.int(6)?,
                    cancelled_at: r.opt_int(7)?,
                });
        }
        // What each card paid in the upload's days and months.
        let mut months: Vec<String> = scans
            .iter()
            .map(|s| fares.local_day_and_month(u64::from(s.qr_timestamp)).1)
            .collect();
        months.sort_unstable();
        months.dedup();
        for month in &months {
            for (table, column) in [("taps", "charged_vnd"), ("journeys", "fare_vnd")] {
                let sql = format!(
                    "SELECT card_id, day, CAST(SUM({column}) AS BIGINT) FROM {table}
                     WHERE month = ?1 AND card_id IN ({{in}}) GROUP BY card_id, day"
                );
                for r in rows_in(tx, &sql, &[month.as_str().into()], &card_vals)? {
                    let (card, day, vnd) = (r.int(0)? as u64, r.text(1)?, r.int(2)? as u64);
                    *facts.paid_day.entry((card, day)).or_default() += vnd;
                    *facts.paid_month.entry((card, month.clone())).or_default() += vnd;
                }
            }
        }
        // Who sees each card's rides: its account, then its guardians'.
        let mut account_of = HashMap::new();
        for r in rows_in(
            tx,
            "SELECT card_id, id FROM accounts WHERE card_id IN ({in})",
            &[],
            &card_vals,
        )? {
            let (card, account) = (r.int(0)? as u64, r.text(1)?);
            account_of.insert(account.clone(), card);
            facts.seeing.insert(card, vec![account]);
        }
        for r in rows_in(
            tx,
            "SELECT a.card_id, d.guardian_account FROM dependants d
             JOIN accounts a ON a.id = d.dependant_account
             WHERE a.card_id IN ({in}) ORDER BY a.card_id, d.guardian_account",
            &[],
            &card_vals,
        )? {
            facts
                .seeing
                .entry(r.int(0)? as u64)
                .or_default()
                .push(r.text(1)?);
        }
        // Whose phone holds each key (its account's own card).
        for r in rows_in(
            tx,
            "SELECT k.key_hash, a.card_id, a.id FROM device_keys k
             JOIN devices d ON d.id = k.device_id JOIN accounts a ON a.id = d.account_id
             WHERE k.key_hash IN ({in})",
            &[],
            &key_vals,
        )? {
            if let Some(key) = r.hash(0)? {
                facts
                    .holders
                    .entry(key)
                    .or_insert((r.int(1)? as u64, r.text(2)?));
            }
        }
        Ok(facts)
    }

    /// Whether this validator's tap `seq` is stored (by an earlier upload, or earlier in this).
    pub(super) fn is_stored(&self, seq: u64) -> bool {
        self.stored.contains_key(&seq)
    }

    /// Whether the tap's number is stored for another tap (made at another time, or of another
    /// QR): the validator numbers anew (restored from a backup, reinstalled with its token), so
    /// this is not a retry but a new tap under a number already used.
    pub(super) fn is_reused(&self, tap: &Tap) -> bool {
        let differs = |stored: Option<i64>, sent: Option<u32>| matches!((stored, sent), (Some(a), Some(b)) if a != i64::from(b));
        self.stored.get(&tap.seq).is_some_and(|stored| {
            stored.at != tap.at as i64
                || differs(stored.qr_ts, tap.qr_timestamp)
                || differs(stored.qr_counter, tap.qr_counter)
        })
    }

    /// Notes that `tap` is stored now, with the QR time and counter verified from its scan.
    pub(super) fn stored(&mut self, tap: &Tap, qr: Option<(u32, u32)>) {
        self.stored.insert(
            tap.seq,
            StoredTap {
                at: tap.at as i64,
                qr_ts: qr.map(|(ts, _)| i64::from(ts)),
                qr_counter: qr.map(|(_, counter)| i64::from(counter)),
            },
        );
    }

    /// Whether the scan's card or key was denied by the operator at the QR's time.
    pub(super) fn revoked(&self, s: &VerifiedScan) -> bool {
        let at = i64::from(s.qr_timestamp);
        self.denied_cards.get(&s.card_id).is_some_and(|d| *d <= at)
            || self
                .denied_keys
                .get(&s.device_key_hash)
                .is_some_and(|d| *d <= at)
    }

    /// Whether the scan rides a pass refunded before its QR was made
    /// ([`rides_refunded_pass`]).
    pub(super) fn rides_refunded_pass(&self, s: &VerifiedScan) -> bool {
        self.passes
            .get(&(s.card_id, code_of(&s.product)))
            .is_some_and(|passes| rides_refunded_pass(passes, &s.pass, i64::from(s.qr_timestamp)))
    }

    /// The validator that used this QR first, if one did.
    pub(super) fn first_use_by(&self, s: &VerifiedScan) -> Option<&str> {
        self.first_use
            .get(&(s.card_id, s.qr_timestamp, s.qr_counter))
            .map(String::as_str)
    }

    /// A use of the card on another bus within [`MIN_TRAVEL_SECS`] of `s`: (validator, QR time).
    pub(super) fn other_bus_near(
        &self,
        s: &VerifiedScan,
        validator_id: &str,
    ) -> Option<(String, i64)> {
        let ts = i64::from(s.qr_timestamp);
        let window = MIN_TRAVEL_SECS as i64;
        self.bus_uses
            .get(&s.card_id)?
            .iter()
            .filter(|u| u.validator_id != validator_id && (u.qr_ts - ts).abs() <= window)
            .min_by_key(|u| u.qr_ts)
            .map(|u| (u.validator_id.clone(), u.qr_ts))
    }

    /// A QR of the same card and phone key whose time runs against this one's counter by more
    /// than [`QR_ORDER_SLACK_SECS`]: made later but for an earlier time, or the other way round.
    /// Returns its (time, counter).
    pub(super) fn made_out_of_order(&self, s: &VerifiedScan) -> Option<(i64, i64)> {
        let (ts, counter) = (i64::from(s.qr_timestamp), i64::from(s.qr_counter));
        self.made
            .get(&(s.card_id, s.device_key_hash))?
            .iter()
            .find(|(t, c)| {
                (*c > counter && *t + QR_ORDER_SLACK_SECS < ts)
                    || (*c < counter && *t > ts + QR_ORDER_SLACK_SECS)
            })
            .copied()
    }

    /// Notes a QR used now on `validator_id` (a bus when `bus`).
    pub(super) fn used(&mut self, s: &VerifiedScan, validator_id: &str, bus: bool) {
        self.made
            .entry((s.card_id, s.device_key_hash))
            .or_default()
            .push((i64::from(s.qr_timestamp), i64::from(s.qr_counter)));
        self.first_use
            .entry((s.card_id, s.qr_timestamp, s.qr_counter))
            .or_insert_with(|| validator_id.to_owned());
        if bus {
            self.bus_uses.entry(s.card_id).or_default().push(BusUse {
                qr_ts: i64::from(s.qr_timestamp),
                validator_id: validator_id.to_owned(),
            });
        }
    }

    /// What `card` paid on `day` and in `month`, VND.
    pub(super) fn paid_in(&self, card: u64, day: &str, month: &str) -> (u64, u64) {
        (
            self.paid_day
                .get(&(card, day.to_owned()))
                .copied()
                .unwrap_or(0),
            self.paid_month
                .get(&(card, month.to_owned()))
                .copied()
                .unwrap_or(0),
        )
    }

    /// Notes a fare charged now.
    pub(super) fn charged(&mut self, card: u64, day: &str, month: &str, vnd: u64) {
        *self.paid_day.entry((card, day.to_owned())).or_default() += vnd;
        *self.paid_month.entry((card, month.to_owned())).or_default() += vnd;
    }

    /// The accounts that see `card`'s rides: its own, then its guardians'.
    pub(super) fn seeing(&self, card: u64) -> &[String] {
        self.seeing.get(&card).map_or(&[], Vec::as_slice)
    }

    /// The card and account of the phone holding `key`, if a device recorded it.
    pub(super) fn holder(&self, key: &[u8; 32]) -> Option<&(u64, String)> {
        self.holders.get(key)
    }
}
