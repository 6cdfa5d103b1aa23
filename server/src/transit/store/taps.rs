//! Taps and inspections as validators upload them: stored once each, judged by
//! [`judge_tap`], charged under the caps, published to the rider as trips; fraud recorded.

use std::collections::BTreeSet;

use thudo_core::transit::{trips, Product};

use super::super::fares::{parse_gate, FarePolicy};
use super::super::rules::{judge_tap, Evidence, Finding, FraudKind, TapVerdict, VerifiedScan};
use super::credentials::revoked_at;
use super::journeys::{journey_tap, GateTap};
use super::riders::{publish_caps, publish_caps_to, publish_to_accounts, Paid};
use super::tap_facts::{PendingRows, UploadFacts};
use thudo_core::transit::backend::{InspectionReceipt, TapOutcome};

use super::fraud::{judge_dependant_rides, mark_dependant_rides, record_fraud, RideToCheck};
use super::{
    CheckedInspection, CheckedTap, FraudActions, FraudRecord, InspectionStats, TapStore, TapTotals,
    ValidatorRecord,
};
use crate::storage::engine::{big, params, Engine, Tx, Val};
use crate::storage::locks::Lock;
use crate::storage::{code_of, Result, SqlStorage, StorageError};

/// What storing an upload's taps has added up so far.
struct Taken<'a> {
    totals: &'a mut TapTotals,
    paid: &'a mut Paid,
    rides: &'a mut Vec<RideToCheck>,
    facts: &'a mut UploadFacts,
    taps: &'a mut PendingRows,
    qr_uses: &'a mut PendingRows,
}

impl<E: Engine> TapStore for SqlStorage<E> {
    fn record_taps(
        &self,
        validator: &ValidatorRecord,
        taps: &[CheckedTap],
        fares: &FarePolicy,
        complete_at: Option<i64>,
    ) -> Result<TapTotals> {
        let mut ordered: Vec<&CheckedTap> = taps.iter().collect();
        ordered.sort_by_key(|t| (t.tap.at, t.tap.seq));
        // One upload per validator at a time (the de-duplication by sequence); the cards whose
        // fares it may charge, by bucket (at most CARD_LOCK_BUCKETS locks however many cards
        // it names); a gate's journeys are numbered in commit order. All before any scope's
        // change log is appended to.
        let mut locks = vec![Lock::Validator(&validator.id)];
        locks.extend(taps.iter().filter_map(|t| match &t.evidence {
            Evidence::Verified(s) => Some(Lock::Card(s.card_id)),
            _ => None,
        }));
        if validator.gate.is_some() {
            locks.push(Lock::Journeys);
        }
        self.write(|tx| {
            tx.lock_all(&locks)?;
            let mut totals = TapTotals::default();
            let now = chrono::Utc::now().timestamp();
            let mut paid = Paid::new();
            let mut rides = Vec::new();
            let mut facts = UploadFacts::load(tx, &validator.id, &ordered, fares)?;
            let mut taps = PendingRows::new(
                "INSERT INTO taps(validator_id, seq, at, route, accepted, reason, card_id, product,
                                  day, month, charged_vnd, verdict, qr_ts, qr_counter, station,
                                  direction)",
                16,
            );
            let mut qr_uses = PendingRows::new(
                "INSERT INTO qr_uses(card_id, qr_ts, qr_counter, validator_id, seq, device_key_hash)",
                6,
            );
            for checked in &ordered {
                let mut taken = Taken {
                    totals: &mut totals,
                    paid: &mut paid,
                    rides: &mut rides,
                    facts: &mut facts,
                    taps: &mut taps,
                    qr_uses: &mut qr_uses,
                };
                record_tap(tx, validator, checked, fares, now, &mut taken)?;
            }
            taps.flush(tx)?;
            qr_uses.flush(tx)?;
            // Taps under reused numbers are not stored: the log is not known complete (for a
            // dependant's ride, for the gates' feeds) until they come back renumbered.
            let complete_at = complete_at.filter(|_| totals.reused.is_empty());
            if !totals.reused.is_empty() {
                totals.next_free_seq = next_free_seq(tx, "taps", &validator.id)?;
            }
            // With the whole upload stored: a dependant's ride with its holder's tap just after
            // is travelling together.
            mark_dependant_rides(tx, &validator.id, &rides, &facts)?;
            // A drained log is complete up to its export, which is no earlier than its last
            // tap by the validator's clock (the clock the phones' QR times are checked against).
            let known_until = complete_at.map(|at| {
                let last_tap = ordered.iter().map(|t| t.tap.at as i64).max().unwrap_or(at);
                at.max(last_tap)
            });
            judge_dependant_rides(tx, &validator.id, known_until, now)?;
            // Each card's progress toward the caps it paid toward, once per upload.
            for (card, day, month) in &paid {
                if validator.gate.is_some() {
                    // A gate's charges are its journeys': read them back.
                    publish_caps(tx, fares, *card, day, month)?;
                } else if !facts.seeing(*card).is_empty() {
                    let accounts = facts.seeing(*card).to_vec();
                    let paid = facts.paid_in(*card, day, month);
                    publish_caps_to(tx, fares, *card, (day, month), paid, &accounts)?;
                }
            }
            let cards: BTreeSet<u64> = paid.iter().map(|(card, _, _)| *card).collect();
            totals.paid_cards = cards.into_iter().collect();
            // An entry gate's log emptied: the entry feed is complete up to its export.
            if let Some(at) = complete_at {
                tx.exec(
                    "UPDATE validators SET last_upload_at = ?2
                     WHERE id = ?1 AND (last_upload_at IS NULL OR last_upload_at < ?2)",
                    params![&validator.id, at],
                )?;
            }
            Ok(totals)
        })
    }

    fn record_inspections(
        &self,
        inspector: &ValidatorRecord,
        inspections: &[CheckedInspection],
    ) -> Result<InspectionReceipt> {
        self.write(|tx| {
            let mut receipt = InspectionReceipt::default();
            let now = chrono::Utc::now().timestamp();
            for c in inspections {
                let i = &c.inspection;
                receipt.acknowledged_seq = receipt.acknowledged_seq.max(i.seq);
                let evidence = match &c.evidence {
                    Evidence::Missing => "missing".to_owned(),
                    Evidence::Forged(why) => format!("forged:{why}"),
                    Evidence::Verified(s) => match &s.invalid {
                        Some(why) => format!("invalid:{why}"),
                        None if revoked_at(tx, s)? => "revoked".to_owned(),
                        None => "valid".to_owned(),
                    },
                };
                let card = match &c.evidence {
                    Evidence::Verified(s) => Some(big(s.card_id)),
                    _ => None,
                };
                let added = tx.exec(
                    "INSERT INTO inspections(validator_id, seq, at, outcome, reason, paired, tapped_at,
                                             card_id, evidence, recorded_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING",
                    params![
                        &inspector.id,
                        big(i.seq),
                        big(i.at),
                        code_of(&i.outcome),
                        code_of(&i.reason),
                        i.paired,
                        i.tapped_at.map(big),
                        card,
                        evidence,
                        now,
                    ],
                )?;
                if added == 1 {
                    receipt.stored += 1;
                    continue;
                }
                // Stored before: the same inspection again, or another one under its number.
                let stored_at = tx
                    .row(
                        "SELECT at FROM inspections WHERE validator_id = ?1 AND seq = ?2",
                        params![&inspector.id, big(i.seq)],
                    )?
                    .map(|r| r.int(0))
                    .transpose()?;
                if stored_at.is_some_and(|at| at != i.at as i64) {
                    receipt.reused.push(i.seq);
                } else {
                    receipt.duplicates += 1;
                }
            }
            if !receipt.reused.is_empty() {
                receipt.next_free_seq = next_free_seq(tx, "inspections", &inspector.id)?;
            }
            Ok(receipt)
        })
    }

    fn inspection_stats(&self) -> Result<InspectionStats> {
        self.read(|tx| {
            let row = tx.row(
                "SELECT CAST(COUNT(*) AS BIGINT),
                        CAST(COALESCE(SUM(CASE WHEN outcome = 'valid' THEN 1 ELSE 0 END), 0) AS BIGINT),
                        CAST(COALESCE(SUM(CASE WHEN outcome = 'not_tapped' THEN 1 ELSE 0 END), 0) AS BIGINT),
                        CAST(COALESCE(SUM(CASE WHEN outcome = 'invalid' THEN 1 ELSE 0 END), 0) AS BIGINT),
                        CAST(COALESCE(SUM(CASE WHEN outcome = 'not_tapped' AND evidence = 'valid' THEN 1 ELSE 0 END), 0) AS BIGINT),
                        CAST(COALESCE(SUM(CASE WHEN outcome = 'valid' AND evidence <> 'valid' THEN 1 ELSE 0 END), 0) AS BIGINT)
                 FROM inspections",
                &[],
            )?;
            let n = |i: usize| -> Result<u64> {
                Ok(row.as_ref().map_or(Ok(0), |r| r.int(i))? as u64)
            };
            Ok(InspectionStats {
                inspections: n(0)?,
                valid: n(1)?,
                not_tapped: n(2)?,
                invalid: n(3)?,
                verified_not_tapped: n(4)?,
                disputed: n(5)?,
            })
        })
    }

    fn charges(&self, card_id: u64) -> Result<Vec<(String, u64)>> {
        self.read(|tx| {
            let mut days = std::collections::BTreeMap::<String, u64>::new();
            for sql in [
                "SELECT day, CAST(SUM(charged_vnd) AS BIGINT) FROM taps WHERE card_id = ?1 GROUP BY day",
                "SELECT day, CAST(SUM(fare_vnd) AS BIGINT) FROM journeys WHERE card_id = ?1 GROUP BY day",
                "SELECT day, CAST(SUM(amount_vnd) AS BIGINT) FROM penalties WHERE card_id = ?1 GROUP BY day",
            ] {
                for r in tx.rows(sql, params![big(card_id)])? {
                    *days.entry(r.text(0)?).or_default() += r.int(1)? as u64;
                }
            }
            Ok(days.into_iter().collect())
        })
    }

    fn capped_cards(&self, day: &str, cap_vnd: u64) -> Result<Vec<u64>> {
        self.read(|tx| {
            tx.rows(
                "SELECT card_id FROM (
                     SELECT card_id, charged_vnd AS vnd FROM taps WHERE day = ?1 AND card_id IS NOT NULL
                     UNION ALL
                     SELECT card_id, fare_vnd AS vnd FROM journeys WHERE day = ?1
                 ) paid GROUP BY card_id HAVING CAST(SUM(vnd) AS BIGINT) >= ?2
                 ORDER BY card_id LIMIT 100000",
                params![day, big(cap_vnd)],
            )?
            .iter()
            .map(|r| Ok(r.int(0)? as u64))
            .collect()
        })
    }

    fn act_on_fraud(&self, fares: &FarePolicy, now: i64) -> Result<FraudActions> {
        self.write(|tx| super::fraud::act_on_fraud(tx, fares, now))
    }

    fn fraud_records(&self, after: u64, limit: usize) -> Result<Vec<FraudRecord>> {
        self.read(|tx| {
            tx.rows(
                "SELECT kind, validator_id, seq, card_id, first_validator_id, detail, recorded_at, id
                 FROM fraud WHERE id > ?1 ORDER BY id LIMIT ?2",
                params![big(after), limit as i64],
            )?
            .iter()
            .map(|r| {
                let kind = r.text(0)?;
                Ok(FraudRecord {
                    kind: FraudKind::parse(&kind).ok_or_else(|| {
                        StorageError::Failed(format!("unknown fraud kind {kind}"))
                    })?,
                    validator_id: r.text(1)?,
                    seq: r.int(2)? as u64,
                    card_id: r.opt_int(3)?.map(|c| c as u64),
                    first_validator_id: r.opt_text(4)?,
                    detail: r.text(5)?,
                    recorded_at: r.int(6)?,
                    id: r.int(7)? as u64,
                })
            })
            .collect()
        })
    }
}

/// The first sequence number above every tap stored from `validator_id`, taken as unsigned
/// (numbers past `i64::MAX` are stored negative); `None` when `u64::MAX` is taken.
fn next_free_seq(tx: &mut dyn Tx, table: &str, validator_id: &str) -> Result<Option<u64>> {
    let mut highest = |sign: &str| -> Result<Option<u64>> {
        let sql = format!("SELECT MAX(seq) FROM {table} WHERE validator_id = ?1 AND seq {sign} 0");
        Ok(match tx.row(&sql, params![validator_id])? {
            Some(r) => r.opt_int(0)?.map(|s| s as u64),
            None => None,
        })
    };
    let highest = match highest("<")? {
        Some(s) => Some(s),
        None => highest(">=")?,
    };
    Ok(highest.map_or(Some(1), |s| s.checked_add(1)))
}

/// Stores one tap and charges its fare; the caller holds the validator's and the cards' locks.
/// A tap charged (or ridden on a pass) becomes a trip on the rider's phone; `paid` collects the
/// (card, day, month) whose cap progress changed.
fn record_tap(
    tx: &mut dyn Tx,
    validator: &ValidatorRecord,
    checked: &CheckedTap,
    fares: &FarePolicy,
    now: i64,
    taken: &mut Taken<'_>,
) -> Result<()> {
    let t = &checked.tap;
    let totals = &mut *taken.totals;
    // A gate's station and direction are the operator's binding, never the tap's claim.
    let gate = validator.gate.as_deref().and_then(parse_gate);
    totals.highest_seq = totals.highest_seq.max(t.seq);
    if taken.facts.is_reused(t) {
        // Not stored: the validator renumbers it past the numbers stored and uploads it again.
        totals.reused.push(t.seq);
        return Ok(());
    }
    if taken.facts.is_stored(t.seq) {
        totals.duplicates += 1;
        // What the first upload stored: a retry whose answer was lost reports it again.
        let stored = tx.row(
            "SELECT t.verdict, CAST(t.charged_vnd + COALESCE((SELECT SUM(j.fare_vnd) FROM journeys j
                     WHERE j.exit_validator = t.validator_id AND j.exit_seq = t.seq), 0) AS BIGINT)
             FROM taps t WHERE t.validator_id = ?1 AND t.seq = ?2",
            params![&validator.id, big(t.seq)],
        )?;
        if let Some(r) = stored {
            let charged = r.int(1)? as u64;
            totals.stored_charged_vnd += charged;
            totals.outcomes.push(TapOutcome {
                seq: t.seq,
                verdict: r.text(0)?,
                charged_vnd: charged,
                duplicate: true,
            });
        } else if let Some(first) = totals.outcomes.iter().find(|o| o.seq == t.seq).cloned() {
            // Named twice in this upload (not written yet): the first's outcome, its charge
            // counted once.
            totals.outcomes.push(TapOutcome {
                duplicate: true,
                ..first
            });
        }
        return Ok(());
    }
    let scan = match &checked.evidence {
        Evidence::Verified(s) => Some(s),
        _ => None,
    };
    // A ride on a pass refunded before its QR was made is charged as pay-as-you-go: the
    // refund returned the price, and the credential rides on until it ends.
    let repriced;
    let scan = match scan {
        Some(s) if s.product != Product::PayAsYouGo && taken.facts.rides_refunded_pass(s) => {
            repriced = VerifiedScan {
                product: Product::PayAsYouGo,
                pass_valid: false,
                ..s.clone()
            };
            Some(&repriced)
        }
        other => other,
    };
    // The facts the rules need, looked up for a tap a validator accepted on a verified scan.
    let (revoked, first_use_by) = match scan {
        Some(s) if t.accepted => (
            taken.facts.revoked(s),
            taken.facts.first_use_by(s).map(str::to_owned),
        ),
        _ => (false, None),
    };
    let (verdict, finding) = judge_tap(
        t.accepted,
        &checked.evidence,
        revoked,
        first_use_by.as_deref(),
        &validator.id,
    );
    if let Some(f) = finding {
        record_fraud(tx, &f, &validator.id, t.seq, now)?;
    }
    let charged = verdict == TapVerdict::Charged;
    // A ride boarded (a bus, an entry gate): whether a dependant's ticket travelled with its
    // holder is checked once the upload is stored.
    if let (true, Some(s)) = (charged, scan) {
        if gate.is_none_or(|g| g.direction == thudo_core::transit::metro::GateDirection::Entry) {
            taken.rides.push(RideToCheck {
                seq: t.seq,
                card_id: s.card_id,
                device_key_hash: s.device_key_hash,
                qr_timestamp: s.qr_timestamp,
            });
        }
    }
    if let (true, Some(s), None) = (charged, scan, gate) {
        // One card on another bus at the same moment: a pass carrying several people.
        let ts = i64::from(s.qr_timestamp);
        if let Some((other, other_ts)) = taken.facts.other_bus_near(s, &validator.id) {
            let finding = Finding {
                kind: FraudKind::ImpossibleTravel,
                card_id: Some(s.card_id),
                first_validator_id: Some(other),
                detail: format!(
                    "on two buses {} s apart (QR times {other_ts} and {ts})",
                    (other_ts - ts).abs()
                ),
            };
            record_fraud(tx, &finding, &validator.id, t.seq, now)?;
        }
    }
    if let (true, Some(s)) = (charged, scan) {
        // A QR made for a time out of step with the same phone's other QRs: the phone's clock
        // set forward to make one for later, a screenshot for someone else. Once a day a card
        // at most: the rider's later QRs run against the same one too.
        let out_of_order = match taken.facts.made_out_of_order(s) {
            Some(found) => tx
                .row(
                    "SELECT 1 FROM fraud WHERE kind = 'qr_made_ahead' AND card_id = ?1
                       AND recorded_at > ?2",
                    params![big(s.card_id), now - 86_400],
                )?
                .is_none()
                .then_some(found),
            None => None,
        };
        if let Some((other_ts, other_counter)) = out_of_order {
            let finding = Finding {
                kind: FraudKind::QrMadeAhead,
                card_id: Some(s.card_id),
                first_validator_id: None,
                detail: format!(
                    "QR {} made for {} but QR {other_counter} of the same phone for {other_ts}",
                    s.qr_counter, s.qr_timestamp
                ),
            };
            record_fraud(tx, &finding, &validator.id, t.seq, now)?;
        }
        taken.qr_uses.push(vec![
            big(s.card_id),
            s.qr_timestamp.into(),
            s.qr_counter.into(),
            validator.id.clone().into(),
            big(t.seq),
            s.device_key_hash.to_vec().into(),
        ]);
        taken.facts.used(s, &validator.id, gate.is_none());
    }
    // Days and months from the phone's signed QR time when there is one.
    let when = scan.map_or(t.at, |s| u64::from(s.qr_timestamp));
    let (day, month) = fares.local_day_and_month(when);
    let route = validator
        .route
        .or_else(|| gate.and_then(|g| fares.gate_route(&g, &day)))
        .unwrap_or(t.route);
    let mut fare = 0u64;
    if let (
        None,
        true,
        Some(VerifiedScan {
            card_id,
            product: Product::PayAsYouGo,
            ..
        }),
    ) = (gate, charged, scan)
    {
        let (today, this_month) = taken.facts.paid_in(*card_id, &day, &month);
        fare = fares.charge(route, today, this_month);
        taken.facts.charged(*card_id, &day, &month, fare);
    }
    if t.accepted && !charged {
        totals.not_charged += 1;
    }
    let reason = code_of(&t.reason);
    let product = scan
        .and_then(|s| serde_json::to_value(s.product).ok())
        .map(|v| v.to_string());
    taken.taps.push(vec![
        validator.id.clone().into(),
        big(t.seq),
        big(t.at),
        route.into(),
        t.accepted.into(),
        reason.into(),
        scan.map(|s| big(s.card_id)).unwrap_or(Val::Null),
        product.into(),
        day.clone().into(),
        month.clone().into(),
        big(fare),
        verdict.as_str().into(),
        scan.map(|s| s.qr_timestamp).into(),
        scan.map(|s| s.qr_counter).into(),
        gate.map(|g| g.station).into(),
        gate.map(|g| code_of(&g.direction)).into(),
    ]);
    taken
        .facts
        .stored(t, scan.map(|s| (s.qr_timestamp, s.qr_counter)));
    let (totals, paid) = (&mut *taken.totals, &mut *taken.paid);
    totals.stored += 1;
    totals.charged_vnd += fare;
    if gate.is_none() || !charged || scan.is_none() {
        totals.stored_charged_vnd += fare;
        totals.outcomes.push(TapOutcome {
            seq: t.seq,
            verdict: verdict.as_str().to_owned(),
            charged_vnd: fare,
            duplicate: false,
        });
    }
    if let (Some(gate), true, Some(s)) = (gate, charged, scan) {
        let tap = GateTap {
            validator_id: &validator.id,
            seq: t.seq,
            gate,
            card_id: s.card_id,
            product: s.product,
            pass_valid: s.pass_valid,
            at: when,
        };
        let journey_fare = journey_tap(tx, fares, &tap, now, paid)?;
        totals.charged_vnd += journey_fare;
        totals.stored_charged_vnd += journey_fare;
        totals.outcomes.push(TapOutcome {
            seq: t.seq,
            verdict: verdict.as_str().to_owned(),
            charged_vnd: journey_fare,
            duplicate: false,
        });
        return Ok(());
    }
    if let (true, Some(s)) = (charged, scan) {
        let full_fare_vnd = match s.product {
            Product::PayAsYouGo => {
                paid.insert((s.card_id, day.clone(), month.clone()));
                fares.charge(route, 0, 0)
            }
            _ => 0,
        };
        let trip = trips::Trip {
            id: format!("{}:{}", validator.id, t.seq),
            card_id: s.card_id,
            mode: "bus".into(),
            route: Some(route),
            at: when,
            from_station: None,
            to_station: None,
            exit_at: None,
            incomplete: false,
            day: day.clone(),
            product: s.product,
            fare_vnd: fare,
            full_fare_vnd,
        };
        let payload =
            serde_json::to_value(&trip).map_err(|e| StorageError::Failed(e.to_string()))?;
        let accounts = taken.facts.seeing(s.card_id).to_vec();
        publish_to_accounts(tx, &accounts, trips::TRIPS, &trip.id, payload)?;
    }
    Ok(())
}
