//! What follows a fraud record: a dependant's ride without its holder found after an upload,
//! and the operator's policy applied to records not acted on yet (a notice to the rider, a
//! penalty fare, a denial).

use thudo_core::transit::trips::{TransitNotice, NOTICES};

use super::super::fares::FarePolicy;
use super::super::rules::{notice_text, Finding, FraudAction, FraudKind, TRAVEL_TOGETHER_SECS};
use super::credentials::{bump_deny_version, deny_card};
use super::riders::publish_to_card;
use super::sales::enforce_in;
use super::tap_facts::UploadFacts;
use super::FraudActions;
use crate::storage::engine::{big, params, Tx};
use crate::storage::locks::Lock;
use crate::storage::{Result, StorageError};

/// A charged tap on a bus or at an entry gate, to check for a dependant riding alone once the
/// whole upload is stored (the holder may have tapped just after).
#[derive(Debug, Clone)]
pub(super) struct RideToCheck {
    pub(super) seq: u64,
    pub(super) card_id: u64,
    pub(super) device_key_hash: [u8; 32],
    pub(super) qr_timestamp: u32,
}

/// Marks, on its stored tap, each ride of a dependant's ticket (its card is not the card of the
/// account whose phone holds the key, and the operator did not record that the dependant
/// travels alone) to be judged once this validator's log is known past its window: the holder
/// may tap just after, in a later upload.
pub(super) fn mark_dependant_rides(
    tx: &mut dyn Tx,
    validator_id: &str,
    rides: &[RideToCheck],
    facts: &UploadFacts,
) -> Result<()> {
    for ride in rides {
        let Some((holder_card, holder_account)) = facts.holder(&ride.device_key_hash) else {
            continue;
        };
        if *holder_card == ride.card_id {
            continue;
        }
        let alone_allowed = tx
            .row(
                "SELECT 1 FROM dependants d JOIN accounts a ON a.id = d.dependant_account
                 WHERE d.guardian_account = ?1 AND a.card_id = ?2 AND d.travels_alone = 1",
                params![holder_account, big(ride.card_id)],
            )?
            .is_some();
        if alone_allowed {
            continue;
        }
        // Past the window, and past a phone clock off by up to a minute.
        let due = i64::from(ride.qr_timestamp) + TRAVEL_TOGETHER_SECS as i64 + 60;
        tx.exec(
            "UPDATE taps SET together_with = ?3, together_due = ?4
             WHERE validator_id = ?1 AND seq = ?2",
            params![validator_id, big(ride.seq), big(*holder_card), due],
        )?;
    }
    Ok(())
}

/// Judges this validator's marked rides whose window its log is known to be complete past
/// (`complete_until`: the export of an upload that drained it), or that are an hour old (a
/// validator that never drains): a ride with no accepted tap of the holder's card on the same
/// validator within [`TRAVEL_TOGETHER_SECS`] is a `dependant_alone` record.
pub(super) fn judge_dependant_rides(
    tx: &mut dyn Tx,
    validator_id: &str,
    complete_until: Option<i64>,
    now: i64,
) -> Result<()> {
    let cutoff = complete_until.unwrap_or(i64::MIN).max(now - 3_600);
    let due = tx.rows(
        "SELECT seq, card_id, qr_ts, together_with FROM taps
         WHERE validator_id = ?1 AND together_due IS NOT NULL AND together_due <= ?2",
        params![validator_id, cutoff],
    )?;
    let window = TRAVEL_TOGETHER_SECS as i64;
    for r in due {
        let (seq, card, ts, holder_card) = (r.int(0)?, r.int(1)?, r.int(2)?, r.int(3)?);
        let together = tx
            .row(
                "SELECT 1 FROM taps WHERE validator_id = ?1 AND card_id = ?2 AND accepted = 1
                   AND qr_ts >= ?3 AND qr_ts <= ?4",
                params![validator_id, holder_card, ts - window, ts + window],
            )?
            .is_some();
        if !together {
            let finding = Finding {
                kind: FraudKind::DependantAlone,
                card_id: Some(card as u64),
                first_validator_id: None,
                detail: format!(
                    "no tap of the holder's card {holder_card} on this validator within {window} s of QR time {ts}"
                ),
            };
            record_fraud(tx, &finding, validator_id, seq as u64, now)?;
        }
        tx.exec(
            "UPDATE taps SET together_due = NULL WHERE validator_id = ?1 AND seq = ?2",
            params![validator_id, seq],
        )?;
    }
    Ok(())
}

/// [`super::TapStore::act_on_fraud`] inside one transaction.
pub(super) fn act_on_fraud(tx: &mut dyn Tx, fares: &FarePolicy, now: i64) -> Result<FraudActions> {
    let rows = tx.rows(
        "SELECT id, kind, card_id, recorded_at FROM fraud WHERE action IS NULL ORDER BY id LIMIT 1000",
        &[],
    )?;
    let mut pending = Vec::with_capacity(rows.len());
    for r in &rows {
        let kind = r.text(1)?;
        let kind = FraudKind::parse(&kind)
            .ok_or_else(|| StorageError::Failed(format!("unknown fraud kind {kind}")))?;
        let card = r.opt_int(2)?.map(|c| c as u64);
        pending.push((r.int(0)?, kind, card, r.int(3)?));
    }
    // The cards charged or denied, then the deny list, then each rider's change log.
    let cards: Vec<Lock<'_>> = pending
        .iter()
        .filter_map(|(_, _, card, _)| card.map(Lock::Card))
        .collect();
    tx.lock_all(&cards)?;
    let mut done = FraudActions::default();
    let mut notices = Vec::new();
    for (id, kind, card, at) in pending {
        let action = fares.fraud_policy.action(kind, card);
        // Claimed once: another instance acting on the same record finds it taken.
        let claimed = tx.exec(
            "UPDATE fraud SET action = ?2 WHERE id = ?1 AND action IS NULL",
            params![id, action.as_str()],
        )?;
        let (Some(card), 1) = (card, claimed) else {
            continue;
        };
        done.acted += 1;
        let penalty = match action {
            FraudAction::Record => continue,
            FraudAction::Warn => {
                done.warned += 1;
                0
            }
            FraudAction::Fare { vnd } => {
                let (day, _) = fares.local_day_and_month(at.max(0) as u64);
                tx.exec(
                    "INSERT INTO penalties(fraud_id, card_id, day, amount_vnd, at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![id, big(card), day, big(vnd), now],
                )?;
                done.fined += 1;
                vnd
            }
            FraudAction::Deny => {
                done.denied += deny_card(tx, card, now, None)? as u32;
                0
            }
        };
        let (message_vi, message_en) = notice_text(kind, action);
        notices.push(TransitNotice {
            id: format!("fraud:{id}"),
            card_id: card,
            kind: kind.as_str().to_owned(),
            at: at.max(0) as u64,
            penalty_vnd: penalty,
            message_vi,
            message_en,
        });
    }
    // A penalty lowers a prepaid balance: a card owing past its credit is denied with it.
    let fined: Vec<u64> = notices
        .iter()
        .filter(|n| n.penalty_vnd > 0)
        .map(|n| n.card_id)
        .collect();
    let owing = !fined.is_empty() && enforce_in(tx, &fined, fares.credit_limit_vnd, now)?;
    if done.denied > 0 || owing {
        done.deny_version = Some(bump_deny_version(tx)?);
    }
    for notice in notices {
        let payload =
            serde_json::to_value(&notice).map_err(|e| StorageError::Failed(e.to_string()))?;
        publish_to_card(tx, notice.card_id, NOTICES, &notice.id, payload)?;
    }
    Ok(done)
}

/// Records a finding for the operator.
pub(super) fn record_fraud(
    tx: &mut dyn Tx,
    f: &Finding,
    validator_id: &str,
    seq: u64,
    now: i64,
) -> Result<()> {
    // A record naming no card (an accepted tap with no scan, or a forged one) can only be
    // recorded: it is entered as acted on, so a stolen validator's flood of them never stands
    // in the queue before a card's record that a policy denies or fines.
    let action = f.card_id.is_none().then(|| FraudAction::Record.as_str());
    tx.exec(
        "INSERT INTO fraud(kind, validator_id, seq, card_id, first_validator_id, detail, recorded_at, action)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            f.kind.as_str(),
            validator_id,
            big(seq),
            f.card_id.map(big),
            f.first_validator_id.as_deref(),
            &f.detail,
            now,
            action
        ],
    )?;
    Ok(())
}
