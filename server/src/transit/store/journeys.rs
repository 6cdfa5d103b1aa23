//! Metro journeys: each gate tap filed into the card's journeys (an entry opens one, an exit
//! completes the latest entry before it), priced by [`journey_fare`] under the caps, settled
//! at the maximum when their time runs out, and fed to exit gates while open.

use serde_json::Value;
use thudo_core::transit::metro::{
    EntryFeed, Gate, GateDirection, GateEntry, ENTRY_HONOURED_SECS, REPEAT_TAP_SECS,
};
use thudo_core::transit::{trips, Product};

use super::super::fares::FarePolicy;
use super::super::rules::{journey_fare, Finding, FraudKind, JourneyEnds, JourneyStatus};
use super::credentials::bump_deny_version;
use super::fraud::record_fraud;
use super::riders::{paid_in, publish_caps, publish_to_card, Paid};
use super::sales::enforce_in;
use super::JourneyStore;
use crate::storage::engine::{big, params, Engine, Tx};
use crate::storage::locks::Lock;
use crate::storage::{code_of, Result, SqlStorage, StorageError};

impl<E: Engine> JourneyStore for SqlStorage<E> {
    fn settle_journeys(&self, now: i64, fares: &FarePolicy) -> Result<u32> {
        let (today, _) = fares.local_day_and_month(now.max(0) as u64);
        let cutoff = now.saturating_sub(fares.max_journey_secs(&today) as i64);
        self.write(|tx| {
            let due = tx.rows(
                "SELECT id, card_id FROM journeys
                 WHERE (status = 'open' AND entry_at < ?1) OR (status = 'no_entry' AND exit_at < ?1)
                 ORDER BY id LIMIT 1000",
                params![cutoff],
            )?;
            // Exits with no entry settled while an entry gate lagged, whose check for one entry
            // let out twice is now possible (every entry gate uploaded past them; with no entry
            // gate left, nothing to find) or given up.
            let give_up_before = now.saturating_sub(REPEAT_CHECK_GIVE_UP_SECS);
            let ready_until = drained_until(tx, GateDirection::Entry)?
                .unwrap_or(i64::MAX)
                .max(give_up_before - 1);
            // One range, in the index's order.
            let pending = tx.rows(
                "SELECT id, card_id FROM journeys
                 WHERE repeat_check_at IS NOT NULL AND repeat_check_at <= ?1
                 ORDER BY repeat_check_at LIMIT 1000",
                params![ready_until],
            )?;
            let cards: Vec<u64> = due
                .iter()
                .chain(&pending)
                .map(|r| Ok(r.int(1)? as u64))
                .collect::<Result<_>>()?;
            let mut locks: Vec<Lock<'_>> = cards.iter().map(|c| Lock::Card(*c)).collect();
            if !locks.is_empty() {
                // A charge may deny its card (below), after publishing has taken accounts'
                // scopes, which rank above the deny list.
                locks.push(Lock::Deny);
            }
            tx.lock_all(&locks)?;
            // Read under the locks, once: how far every entry gate has uploaded.
            let entries_until = drained_until(tx, GateDirection::Entry)?;
            let mut paid = Paid::new();
            let mut settled = 0;
            for r in &due {
                let id = r.int(0)?;
                // Read again under the card's lock: an upload may have completed it meanwhile.
                let status = tx
                    .row("SELECT status FROM journeys WHERE id = ?1", params![id])?
                    .map(|r| r.text(0))
                    .transpose()?;
                let status = status.as_deref().and_then(JourneyStatus::parse);
                let Some(to) = status.and_then(JourneyStatus::when_time_runs_out) else {
                    continue;
                };
                if status == Some(JourneyStatus::NoEntry) {
                    let_out_twice(tx, fares, id, now, entries_until, Lagging::Wait)?;
                }
                settle_journey(tx, fares, id, to, &mut paid)?;
                settled += 1;
            }
            for r in &pending {
                let id = r.int(0)?;
                // Read again under the card's lock: another instance may have checked it, or
                // its entry arrived and completed it.
                let at = tx
                    .row(
                        "SELECT repeat_check_at FROM journeys WHERE id = ?1",
                        params![id],
                    )?
                    .map(|r| r.opt_int(0))
                    .transpose()?
                    .flatten();
                let Some(at) = at else { continue };
                tx.exec(
                    "UPDATE journeys SET repeat_check_at = NULL WHERE id = ?1",
                    params![id],
                )?;
                // Checked if it can be now; else it waits again, unless its week is over.
                let lagging = if at < give_up_before {
                    Lagging::GiveUp
                } else {
                    Lagging::Wait
                };
                let_out_twice(tx, fares, id, now, entries_until, lagging)?;
            }
            for (card, day, month) in &paid {
                publish_caps(tx, fares, *card, day, month)?;
            }
            // A fare charged here counts against the credit limit as one charged by an upload
            // does: a card that only ever enters (its exits never tapped) is denied all the same.
            let charged: Vec<u64> = paid
                .iter()
                .map(|(card, _, _)| *card)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            if !charged.is_empty() && enforce_in(tx, &charged, fares.credit_limit_vnd, now)? {
                bump_deny_version(tx)?;
            }
            Ok(settled)
        })
    }

    fn entry_feed(
        &self,
        cursor: u64,
        now: i64,
        honoured_secs: u64,
        limit: usize,
    ) -> Result<EntryFeed> {
        self.read(|tx| {
            // Completeness first: an upload seen here committed its entries with it. With no
            // entry gate there are no entries to miss.
            let complete_until = drained_until(tx, GateDirection::Entry)?.unwrap_or(now);
            let rows = tx.rows(
                "SELECT id, card_id, entry_station, entry_at FROM journeys
                 WHERE id > ?1 AND status IN ('open', 'no_exit') AND entry_at >= ?2 ORDER BY id LIMIT ?3",
                params![
                    big(cursor),
                    now.saturating_sub(honoured_secs as i64),
                    limit as i64
                ],
            )?;
            let mut feed = EntryFeed {
                entries: Vec::with_capacity(rows.len()),
                cursor,
                complete_until: complete_until.max(0) as u64,
                now: now.max(0) as u64,
            };
            for r in &rows {
                feed.cursor = r.int(0)? as u64;
                feed.entries.push(GateEntry {
                    card_id: r.int(1)? as u64,
                    station: u16::try_from(r.int(2)?).unwrap_or(0),
                    at: r.int(3)? as u64,
                });
            }
            if rows.len() >= limit {
                // More to come: not complete until the gate has read it all.
                feed.complete_until = 0;
            }
            Ok(feed)
        })
    }

    fn cards_inside(&self, now: i64, honoured_secs: u64, limit: usize) -> Result<(Vec<u64>, u64)> {
        self.read(|tx| {
            // Exits first: an exit seen here committed its journey's close with it. With no
            // exit gate at all (a network being rolled out) exits are never known, so no entry
            // gate refuses by the feed.
            let exits_until = drained_until(tx, GateDirection::Exit)?.unwrap_or(0);
            let rows = tx.rows(
                "SELECT DISTINCT card_id FROM journeys
                 WHERE status = 'open' AND entry_at >= ?1 ORDER BY card_id LIMIT ?2",
                params![now.saturating_sub(honoured_secs as i64), limit as i64],
            )?;
            let cards = rows
                .iter()
                .map(|r| Ok(r.int(0)? as u64))
                .collect::<Result<Vec<u64>>>()?;
            Ok((cards, exits_until.max(0) as u64))
        })
    }
}

/// The time up to which every active gate of `direction` has uploaded its log (the oldest
/// last upload among them; 0 for one never heard from), or `None` when there is no such gate.
fn drained_until(tx: &mut dyn Tx, direction: GateDirection) -> Result<Option<i64>> {
    let pattern = match direction {
        GateDirection::Entry => "%:entry",
        GateDirection::Exit => "%:exit",
    };
    tx.row(
        "SELECT CAST(MIN(COALESCE(last_upload_at, 0)) AS BIGINT), CAST(COUNT(*) AS BIGINT)
         FROM validators WHERE gate LIKE ?1 AND decommissioned_at IS NULL",
        params![pattern],
    )?
    .map(|r| -> Result<Option<i64>> { Ok((r.int(1)? > 0).then_some(r.opt_int(0)?.unwrap_or(0))) })
    .transpose()
    .map(Option::flatten)
}

/// How long after an exit with no entry its check for one entry let out twice waits for
/// lagging entry gates before it is given up (a week: the longest a validator is built to stay
/// offline).
const REPEAT_CHECK_GIVE_UP_SECS: i64 = 7 * 86_400;

/// What [`let_out_twice`] does when an entry gate has not uploaded past the exit.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lagging {
    /// Mark the journey to be checked once every entry gate has (the minute's settlement).
    Wait,
    /// Leave it unrecorded.
    GiveUp,
}

/// Records `repeated_exit` when exit-only journey `id`, whose time for a late entry has run
/// out, came within a journey's time of an entry another gate let out (before or after it, as
/// uploads arrive): one entry let out twice (a phone or a relayed QR handed back over the
/// barrier), at any station. Gates learn entries, not exits, from the feed, so a second gate
/// lets the second rider out; only here is it known. Checked only once every entry gate has
/// uploaded past the exit, so no entry still on its way can explain it: until then the journey
/// waits (`repeat_check_at`), and an entry that arrives meanwhile completes it instead; an
/// entry gate still behind [`REPEAT_CHECK_GIVE_UP_SECS`] after the exit leaves it unrecorded
/// rather than accuse an honest rider. `entries_until`: [`drained_until`] for entry gates.
fn let_out_twice(
    tx: &mut dyn Tx,
    fares: &FarePolicy,
    id: i64,
    now: i64,
    entries_until: Option<i64>,
    lagging: Lagging,
) -> Result<()> {
    let Some(exit) = tx.row(
        "SELECT card_id, exit_validator, exit_seq, exit_station, exit_at FROM journeys
         WHERE id = ?1 AND entry_at IS NULL AND exit_at IS NOT NULL AND exit_validator IS NOT NULL",
        params![id],
    )?
    else {
        return Ok(());
    };
    let (card, validator, at) = (exit.int(0)?, exit.text(1)?, exit.int(4)?);
    match entries_until {
        // No entry gate: no entry to have been let out twice.
        None => return Ok(()),
        Some(until) if until < at => {
            if lagging == Lagging::Wait {
                tx.exec(
                    "UPDATE journeys SET repeat_check_at = ?2 WHERE id = ?1",
                    params![id, at],
                )?;
            }
            return Ok(());
        }
        Some(_) => {}
    }
    let (day, _) = fares.local_day_and_month(at.max(0) as u64);
    let journey_secs = fares.max_journey_secs(&day) as i64;
    let first = tx.row(
        "SELECT exit_validator, exit_station, exit_at FROM journeys
         WHERE card_id = ?1 AND status = 'closed' AND entry_at <= ?2 AND entry_at >= ?3
           AND exit_validator IS NOT NULL AND exit_validator <> ?4
         ORDER BY entry_at DESC, id DESC LIMIT 1",
        params![card, at, at.saturating_sub(journey_secs), &validator],
    )?;
    let Some(first) = first else {
        return Ok(());
    };
    let finding = Finding {
        kind: FraudKind::RepeatedExit,
        card_id: Some(card as u64),
        first_validator_id: first.opt_text(0)?,
        detail: format!(
            "one entry let out twice: at station {} and at station {}, {} s apart",
            first.int(1)?,
            exit.int(3)?,
            at.abs_diff(first.int(2)?)
        ),
    };
    record_fraud(tx, &finding, &validator, exit.int(2)? as u64, now)
}

/// A verified, first-use tap at a metro gate.
pub(super) struct GateTap<'a> {
    pub(super) validator_id: &'a str,
    pub(super) seq: u64,
    pub(super) gate: Gate,
    pub(super) card_id: u64,
    pub(super) product: Product,
    /// Whether the pass was valid (windows, route) at the tap: an exit checks nothing of it.
    pub(super) pass_valid: bool,
    /// The phone's signed QR time.
    pub(super) at: u64,
}

impl GateTap<'_> {
    fn side(&self) -> Side<'_> {
        Side {
            validator_id: self.validator_id,
            seq: self.seq as i64,
            station: i64::from(self.gate.station),
            at: self.at as i64,
        }
    }
}

/// One tap of a journey: the gate's validator and sequence, the station, the phone's time.
struct Side<'a> {
    validator_id: &'a str,
    seq: i64,
    station: i64,
    at: i64,
}

/// A journey to store.
struct NewJourney<'a> {
    card: u64,
    product: Product,
    entry: Option<Side<'a>>,
    exit: Option<Side<'a>>,
    status: JourneyStatus,
    day: &'a str,
    month: &'a str,
}

/// Stores a journey; returns its number. Journeys are numbered in commit order (one lock until
/// the commit), so an exit gate's entry-feed cursor never skips one.
fn insert_journey(tx: &mut dyn Tx, j: &NewJourney<'_>, now: i64) -> Result<i64> {
    // Held from before the number is taken until the commit (the caller took it first).
    tx.lock(Lock::Journeys)?;
    let (entry, exit) = (j.entry.as_ref(), j.exit.as_ref());
    tx.row(
        "INSERT INTO journeys(card_id, product, entry_validator, entry_seq, entry_station,
                              entry_at, exit_validator, exit_seq, exit_station, exit_at,
                              status, day, month, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
         RETURNING id",
        params![
            big(j.card),
            code_of(&j.product),
            entry.map(|s| s.validator_id),
            entry.map(|s| s.seq),
            entry.map(|s| s.station),
            entry.map(|s| s.at),
            exit.map(|s| s.validator_id),
            exit.map(|s| s.seq),
            exit.map(|s| s.station),
            exit.map(|s| s.at),
            j.status.as_str(),
            j.day,
            j.month,
            now
        ],
    )?
    .ok_or_else(|| StorageError::Failed("no journey number returned".into()))?
    .int(0)
}

/// Files a gate tap into the card's journeys and prices what it completes; returns what it
/// charged. Both taps of a journey carry the same phone's signed time, so an exit pairs only
/// with an entry before it and with no other entry in between.
///
/// - An entry opens a journey. An earlier one left open is settled at the maximum (no exit
///   came); an exit that arrived first (its gate uploaded before the entry gate) is completed.
/// - An exit completes the card's latest entry if that journey is still open or was settled at
///   the maximum (correcting it); else it waits as a journey with no entry.
/// - A repeated tap within [`REPEAT_TAP_SECS`] is ignored; a repeated exit is recorded for the
///   operator (one entry let out twice may be a phone passed back).
///
/// The caller holds the card's lock.
pub(super) fn journey_tap(
    tx: &mut dyn Tx,
    fares: &FarePolicy,
    tap: &GateTap<'_>,
    now: i64,
    paid: &mut Paid,
) -> Result<u64> {
    let (day, month) = fares.local_day_and_month(tap.at);
    let (card, at) = (big(tap.card_id), big(tap.at));
    let station = i64::from(tap.gate.station);
    // Gates upload in any order: a repeat may be filed before the tap it repeats.
    let since = big(tap.at.saturating_sub(REPEAT_TAP_SECS));
    let until = big(tap.at + REPEAT_TAP_SECS);
    let mut charged = 0;
    match tap.gate.direction {
        GateDirection::Entry => {
            let repeated = tx.row(
                "SELECT entry_validator, entry_at FROM journeys WHERE card_id = ?1 AND entry_station = ?2
                   AND entry_at >= ?3 AND entry_at <= ?4 AND (exit_at IS NULL OR exit_at > ?5)",
                params![card.clone(), station, since, until, at.clone()],
            )?;
            if let Some(row) = repeated {
                // Again at the same gate: one rider tapping twice. At another gate of the
                // station: the card let two people in.
                let first = row.opt_text(0)?;
                if first.as_deref() != Some(tap.validator_id) {
                    let finding = Finding {
                        kind: FraudKind::DoubleEntry,
                        card_id: Some(tap.card_id),
                        detail: format!(
                            "let in at two gates of station {station}, {} s apart",
                            (row.opt_int(1)?.unwrap_or(0) - tap.at as i64).abs()
                        ),
                        first_validator_id: first,
                    };
                    record_fraud(tx, &finding, tap.validator_id, tap.seq, now)?;
                }
                return Ok(0);
            }
            // An exit after this entry that was paired with an older entry (this entry's gate
            // uploaded late) is this entry's: the older entry had no exit.
            let crossed = tx.row(
                "SELECT id, exit_validator, exit_seq, exit_station, exit_at FROM journeys
                 WHERE card_id = ?1 AND status = 'closed' AND entry_at < ?2 AND exit_at > ?2
                   AND exit_at <= ?3
                 ORDER BY exit_at LIMIT 1",
                params![card.clone(), at.clone(), big(tap.at + ENTRY_HONOURED_SECS)],
            )?;
            if let Some(c) = crossed {
                let old = c.int(0)?;
                tx.exec(
                    "UPDATE journeys SET exit_validator = NULL, exit_seq = NULL, exit_station = NULL,
                            exit_at = NULL WHERE id = ?1",
                    params![old],
                )?;
                charged += settle_journey(tx, fares, old, JourneyStatus::NoExit, paid)?;
                let exit_validator = c.opt_text(1)?.unwrap_or_default();
                let exit = Side {
                    validator_id: &exit_validator,
                    seq: c.opt_int(2)?.unwrap_or(0),
                    station: c.opt_int(3)?.unwrap_or(0),
                    at: c.opt_int(4)?.unwrap_or(0),
                };
                let new = NewJourney {
                    card: tap.card_id,
                    product: tap.product,
                    entry: Some(tap.side()),
                    exit: Some(exit),
                    status: JourneyStatus::Open,
                    day: &day,
                    month: &month,
                };
                let id = insert_journey(tx, &new, now)?;
                charged += settle_journey(tx, fares, id, JourneyStatus::Closed, paid)?;
                return Ok(charged);
            }
            let left_open = tx.rows(
                "SELECT id, entry_validator, entry_station, entry_at FROM journeys
                 WHERE card_id = ?1 AND status = 'open' AND entry_at < ?2",
                params![card.clone(), at.clone()],
            )?;
            for row in left_open {
                // Let in again while still inside (within a journey's time): to look at (an
                // exit gate may also not have uploaded yet); the open entry is charged the
                // maximum as a journey with no exit.
                let (entered, since) = (row.opt_int(2)?.unwrap_or(0), row.opt_int(3)?.unwrap_or(0));
                if tap.at as i64 - since <= fares.max_journey_secs(&day) as i64 {
                    let finding = Finding {
                        kind: FraudKind::DoubleEntry,
                        card_id: Some(tap.card_id),
                        first_validator_id: row.opt_text(1)?,
                        detail: format!(
                            "let in at station {station} while inside since station {entered}, {} s before",
                            tap.at as i64 - since
                        ),
                    };
                    record_fraud(tx, &finding, tap.validator_id, tap.seq, now)?;
                }
                charged += settle_journey(tx, fares, row.int(0)?, JourneyStatus::NoExit, paid)?;
            }
            let waiting_exit = tx.row(
                "SELECT j.id, j.day, j.month FROM journeys j
                 WHERE j.card_id = ?1 AND j.entry_at IS NULL
                   AND j.status IN ('no_entry', 'no_entry_charged') AND j.exit_at >= ?2 AND j.exit_at <= ?3
                   AND NOT EXISTS (SELECT 1 FROM journeys e WHERE e.card_id = ?1
                                     AND e.entry_at > ?2 AND e.entry_at < j.exit_at)
                 ORDER BY j.exit_at LIMIT 1",
                params![card.clone(), at.clone(), big(tap.at + ENTRY_HONOURED_SECS)],
            )?;
            if let Some(row) = waiting_exit {
                let id = row.int(0)?;
                // The day it was charged on changes: that day's cap progress is published again.
                paid.insert((tap.card_id, row.text(1)?, row.text(2)?));
                // Its own entry explains the exit: no check for one let out twice is due.
                tx.exec(
                    "UPDATE journeys SET entry_validator = ?2, entry_seq = ?3, entry_station = ?4,
                            entry_at = ?5, day = ?6, month = ?7, product = ?8,
                            repeat_check_at = NULL WHERE id = ?1",
                    params![
                        id,
                        tap.validator_id,
                        big(tap.seq),
                        station,
                        at,
                        &day,
                        &month,
                        code_of(&tap.product)
                    ],
                )?;
                charged += settle_journey(tx, fares, id, JourneyStatus::Closed, paid)?;
            } else {
                let new = NewJourney {
                    card: tap.card_id,
                    product: tap.product,
                    entry: Some(tap.side()),
                    exit: None,
                    status: JourneyStatus::Open,
                    day: &day,
                    month: &month,
                };
                insert_journey(tx, &new, now)?;
            }
        }
        GateDirection::Exit => {
            let repeated = tx.row(
                "SELECT exit_validator FROM journeys WHERE card_id = ?1 AND exit_station = ?2
                   AND exit_at >= ?3 AND exit_at <= ?4",
                params![card.clone(), station, since, until],
            )?;
            if let Some(row) = repeated {
                if row.opt_text(0)?.as_deref() != Some(tap.validator_id) {
                    let finding = Finding {
                        kind: FraudKind::RepeatedExit,
                        card_id: Some(tap.card_id),
                        first_validator_id: row.opt_text(0)?,
                        detail: "one journey let out at two exit gates".into(),
                    };
                    record_fraud(tx, &finding, tap.validator_id, tap.seq, now)?;
                }
                return Ok(0);
            }
            // The card's latest entry before this exit, whatever became of it.
            let latest = tx.row(
                "SELECT id, status FROM journeys WHERE card_id = ?1 AND entry_at IS NOT NULL
                   AND entry_at <= ?2 AND entry_at >= ?3
                 ORDER BY entry_at DESC, id DESC LIMIT 1",
                params![
                    card.clone(),
                    at.clone(),
                    big(tap.at.saturating_sub(ENTRY_HONOURED_SECS))
                ],
            )?;
            let open = match &latest {
                Some(row)
                    if matches!(
                        JourneyStatus::parse(&row.text(1)?),
                        Some(JourneyStatus::Open | JourneyStatus::NoExit)
                    ) =>
                {
                    Some(row.int(0)?)
                }
                _ => None,
            };
            if let Some(id) = open {
                tx.exec(
                    "UPDATE journeys SET exit_validator = ?2, exit_seq = ?3, exit_station = ?4,
                            exit_at = ?5 WHERE id = ?1",
                    params![id, tap.validator_id, big(tap.seq), station, at],
                )?;
                charged += settle_journey(tx, fares, id, JourneyStatus::Closed, paid)?;
            } else {
                // With no entry, the pass counts only if it was valid here and now.
                let product = if tap.pass_valid {
                    tap.product
                } else {
                    Product::PayAsYouGo
                };
                let new = NewJourney {
                    card: tap.card_id,
                    product,
                    entry: None,
                    exit: Some(tap.side()),
                    status: JourneyStatus::NoEntry,
                    day: &day,
                    month: &month,
                };
                insert_journey(tx, &new, now)?;
            }
        }
    }
    Ok(charged)
}

/// Prices journey `id` as `status` (`closed`: by its two stations; `no_exit` or
/// `no_entry_charged`: the maximum fare), under the caps as they stand without its own earlier
/// charge, and publishes it to the rider as a trip. Returns the change in what it charged (a
/// correction may lower it: then 0). The caller holds the card's lock.
pub(super) fn settle_journey(
    tx: &mut dyn Tx,
    fares: &FarePolicy,
    id: i64,
    status: JourneyStatus,
    paid: &mut Paid,
) -> Result<u64> {
    let Some(r) = tx.row(
        "SELECT card_id, product, entry_station, entry_at, exit_station, exit_at, day, month,
                fare_vnd FROM journeys WHERE id = ?1",
        params![id],
    )?
    else {
        return Ok(0);
    };
    let card = r.int(0)? as u64;
    let product: Product = serde_json::from_value(Value::String(r.text(1)?))
        .map_err(|e| StorageError::Failed(format!("journey {id}: {e}")))?;
    let station =
        |i: usize| -> Result<Option<u16>> { Ok(r.opt_int(i)?.and_then(|v| u16::try_from(v).ok())) };
    let ends = JourneyEnds {
        entry: station(2)?,
        exit: station(4)?,
        entry_at: r.opt_int(3)?,
        exit_at: r.opt_int(5)?,
    };
    let (entry, exit, entry_at, exit_at) = (ends.entry, ends.exit, ends.entry_at, ends.exit_at);
    let (day, month) = (r.text(6)?, r.text(7)?);
    let before = r.int(8)? as u64;
    let (full, priced) = journey_fare(fares, &day, status, ends, product);
    // The caps count what the card paid without this journey's charge.
    let (today, this_month) = paid_in(tx, card, &day, &month)?;
    let fare = fares.capped(
        full,
        today.saturating_sub(before),
        this_month.saturating_sub(before),
    );
    tx.exec(
        "UPDATE journeys SET status = ?2, fare_vnd = ?3, full_fare_vnd = ?4 WHERE id = ?1",
        params![id, status.as_str(), big(fare), big(full)],
    )?;
    let name = |s: Option<u16>| s.and_then(|s| fares.station_name(&day, s));
    let route = entry
        .or(exit)
        .and_then(|s| fares.metro.in_force(&day)?.station(s).map(|s| s.line.route));
    let trip = trips::Trip {
        id: format!("journey:{id}"),
        card_id: card,
        mode: "metro".into(),
        route,
        at: entry_at.or(exit_at).unwrap_or(0) as u64,
        from_station: name(entry),
        to_station: name(exit),
        exit_at: exit_at.map(|t| t as u64),
        incomplete: !priced,
        day: day.clone(),
        product,
        fare_vnd: fare,
        full_fare_vnd: full,
    };
    let payload = serde_json::to_value(&trip).map_err(|e| StorageError::Failed(e.to_string()))?;
    publish_to_card(tx, card, trips::TRIPS, &trip.id, payload)?;
    paid.insert((card, day, month));
    Ok(fare.saturating_sub(before))
}
