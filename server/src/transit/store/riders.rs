//! Riders: entitlements to reduced categories, guardians and their dependants, and what a
//! card's riders see on their phones (trips, cap progress) through the change log.

use serde_json::Value;
use thudo_core::sync::protocol::Change;
use thudo_core::transit::trips::{self, TransitNotice, NOTICES};

use super::super::fares::FarePolicy;
use super::{Entitlement, RiderStore};
use crate::devices::store::account_in;
use crate::secrets::CitizenKey;
use crate::storage::engine::{big, params, Engine, Row, Tx};
use crate::storage::{Result, SqlStorage, StorageError};
use crate::sync::store::append;

/// The (card, local day, month) whose cap progress an upload changed.
pub(super) type Paid = std::collections::BTreeSet<(u64, String, String)>;

fn entitlement_row(r: &Row) -> Result<Option<Entitlement>> {
    let Some(category) = u8::try_from(r.int(0)?)
        .ok()
        .and_then(thudo_core::transit::Category::from_code)
    else {
        return Ok(None);
    };
    Ok(Some(Entitlement {
        category,
        valid_from: r.int(1)?,
        valid_until: r.int(2)?,
        evidence_ref: r.text(3)?,
    }))
}

/// The account a card belongs to (taps of cards no account holds are not published).
fn account_of_card(tx: &mut dyn Tx, card: u64) -> Result<Option<String>> {
    tx.row(
        "SELECT id FROM accounts WHERE card_id = ?1",
        params![big(card)],
    )?
    .map(|r| r.text(0))
    .transpose()
}

/// What a card paid in a day and in the month, VND.
pub(super) fn paid_in(tx: &mut dyn Tx, card: u64, day: &str, month: &str) -> Result<(u64, u64)> {
    // Bus rides are charged on their taps, metro journeys on the journey: caps count both.
    let mut paid = (0, 0);
    for table in ["taps", "journeys"] {
        let column = if table == "taps" {
            "charged_vnd"
        } else {
            "fare_vnd"
        };
        let sql = format!(
            "SELECT CAST(COALESCE(SUM(CASE WHEN day = ?2 THEN {column} ELSE 0 END), 0) AS BIGINT),
                    CAST(COALESCE(SUM({column}), 0) AS BIGINT)
             FROM {table} WHERE card_id = ?1 AND month = ?3"
        );
        if let Some(r) = tx.row(&sql, params![big(card), day, month])? {
            paid.0 += r.int(0)? as u64;
            paid.1 += r.int(1)? as u64;
        }
    }
    Ok(paid)
}

/// Publishes a record to the account holding `card`, if any.
pub(super) fn publish_to_card(
    tx: &mut dyn Tx,
    card: u64,
    collection: &str,
    record_id: &str,
    payload: Value,
) -> Result<()> {
    let accounts = accounts_seeing_card(tx, card)?;
    publish_to_accounts(tx, &accounts, collection, record_id, payload)
}

/// [`publish_to_card`] to the accounts that see the card, known already.
pub(super) fn publish_to_accounts(
    tx: &mut dyn Tx,
    accounts: &[String],
    collection: &str,
    record_id: &str,
    payload: Value,
) -> Result<()> {
    for account in accounts {
        append(
            tx,
            &format!("acct:{account}"),
            &Change {
                collection: collection.to_owned(),
                record_id: record_id.to_owned(),
                op: "put".into(),
                payload: payload.clone(),
                hlc: String::new(),
            },
        )?;
    }
    Ok(())
}

/// The account holding `card`, then its guardians' accounts (a guardian sees a dependant's
/// trips and caps on the phone that holds their pass).
fn accounts_seeing_card(tx: &mut dyn Tx, card: u64) -> Result<Vec<String>> {
    let Some(account) = account_of_card(tx, card)? else {
        return Ok(Vec::new());
    };
    let mut accounts = vec![account.clone()];
    for r in tx.rows(
        "SELECT guardian_account FROM dependants WHERE dependant_account = ?1 ORDER BY guardian_account",
        params![&account],
    )? {
        accounts.push(r.text(0)?);
    }
    Ok(accounts)
}

/// Publishes a card's progress toward the day's and the month's caps to its account.
pub(super) fn publish_caps(
    tx: &mut dyn Tx,
    fares: &FarePolicy,
    card: u64,
    day: &str,
    month: &str,
) -> Result<()> {
    let accounts = accounts_seeing_card(tx, card)?;
    if accounts.is_empty() {
        return Ok(());
    }
    let paid = paid_in(tx, card, day, month)?;
    publish_caps_to(tx, fares, card, (day, month), paid, &accounts)
}

/// [`publish_caps`] with what the card paid in the day and the month, and who sees it, known.
pub(super) fn publish_caps_to(
    tx: &mut dyn Tx,
    fares: &FarePolicy,
    card: u64,
    (day, month): (&str, &str),
    (today, this_month): (u64, u64),
    accounts: &[String],
) -> Result<()> {
    // The card's own account names a cap by its period; a guardian's by card and period.
    for (i, account) in accounts.iter().enumerate() {
        for (period, paid_vnd, cap_vnd) in [
            (day, today, fares.daily_cap_vnd),
            (month, this_month, fares.monthly_cap_vnd),
        ] {
            let progress = trips::CapProgress {
                id: trips::CapProgress::record_id(period, (i > 0).then_some(card)),
                card_id: Some(card),
                period: period.to_owned(),
                paid_vnd,
                cap_vnd,
            };
            let payload =
                serde_json::to_value(&progress).map_err(|e| StorageError::Failed(e.to_string()))?;
            append(
                tx,
                &format!("acct:{account}"),
                &Change {
                    collection: trips::CAPS.to_owned(),
                    record_id: progress.id.clone(),
                    op: "put".into(),
                    payload,
                    hlc: String::new(),
                },
            )?;
        }
    }
    Ok(())
}

/// Tells the dependant's own phones (an adult's: an elderly parent's) that a guardian was
/// recorded for them, or is no more: another account now buys their passes and sees their
/// trips, or stopped to.
fn tell_dependant(tx: &mut dyn Tx, guardian: &str, dependant: &str, added: bool) -> Result<()> {
    let Some(card) = tx.row(
        "SELECT card_id FROM accounts WHERE id = ?1",
        params![dependant],
    )?
    else {
        return Ok(());
    };
    let at = chrono::Utc::now().timestamp();
    let (kind, vi, en) = if added {
        (
            "guardian_added",
            "Một người giám hộ đã được ghi nhận cho bạn: điện thoại của họ có thể mua vé cho bạn \
             và xem các chuyến đi của bạn. Nếu bạn không đồng ý, hãy liên hệ cơ quan hộ tịch.",
            "A guardian was recorded for you: their phones may buy your passes and see your \
             trips. If you did not agree to this, contact the civil registry.",
        )
    } else {
        (
            "guardian_removed",
            "Người giám hộ của bạn không còn được ghi nhận: họ không mua vé cho bạn và không xem \
             các chuyến đi của bạn nữa.",
            "Your guardian is no longer recorded: they no longer buy your passes or see your \
             trips.",
        )
    };
    let notice = TransitNotice {
        id: format!("{kind}:{guardian}:{at}"),
        card_id: card.int(0)? as u64,
        kind: kind.to_owned(),
        at: at.max(0) as u64,
        penalty_vnd: 0,
        message_vi: vi.to_owned(),
        message_en: en.to_owned(),
    };
    let payload = serde_json::to_value(&notice).map_err(|e| StorageError::Failed(e.to_string()))?;
    publish_to_accounts(tx, &[dependant.to_owned()], NOTICES, &notice.id, payload)
}

impl<E: Engine> RiderStore for SqlStorage<E> {
    fn grant_entitlement(&self, citizen: &CitizenKey, e: &Entitlement) -> Result<()> {
        self.write(|tx| {
            let account = account_in(tx, citizen)?;
            tx.exec(
                "INSERT INTO entitlements(account_id, category, valid_from, valid_until, evidence_ref, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![&account, e.category as u8, e.valid_from, e.valid_until, &e.evidence_ref, chrono::Utc::now().timestamp()],
            )?;
            Ok(())
        })
    }

    fn add_dependant(
        &self,
        guardian: &CitizenKey,
        dependant: &CitizenKey,
        travels_alone: bool,
    ) -> Result<()> {
        self.write(|tx| {
            let guardian = account_in(tx, guardian)?;
            let dependant = account_in(tx, dependant)?;
            tx.exec(
                "INSERT INTO dependants(guardian_account, dependant_account, created_at,
                                        travels_alone)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (guardian_account, dependant_account)
                 DO UPDATE SET travels_alone = excluded.travels_alone",
                params![
                    &guardian,
                    &dependant,
                    chrono::Utc::now().timestamp(),
                    travels_alone
                ],
            )?;
            tell_dependant(tx, &guardian, &dependant, true)
        })
    }

    fn remove_dependant(&self, guardian: &CitizenKey, dependant: &CitizenKey) -> Result<bool> {
        self.write(|tx| {
            let account = |tx: &mut dyn Tx, key: &CitizenKey| -> Result<Option<String>> {
                tx.row(
                    "SELECT id FROM accounts WHERE citizen_hash = ?1",
                    params![key.as_bytes()],
                )?
                .map(|r| r.text(0))
                .transpose()
            };
            let (Some(guardian), Some(dependant)) =
                (account(tx, guardian)?, account(tx, dependant)?)
            else {
                return Ok(false);
            };
            let removed = tx.exec(
                "DELETE FROM dependants WHERE guardian_account = ?1 AND dependant_account = ?2",
                params![&guardian, &dependant],
            )? > 0;
            if removed {
                tell_dependant(tx, &guardian, &dependant, false)?;
            }
            Ok(removed)
        })
    }

    fn dependant_of(
        &self,
        guardian_account: &str,
        dependant: &CitizenKey,
    ) -> Result<Option<(String, u64)>> {
        self.read(|tx| {
            tx.row(
                "SELECT a.id, a.card_id FROM accounts a
                 JOIN dependants d ON d.dependant_account = a.id
                 WHERE a.citizen_hash = ?1 AND d.guardian_account = ?2",
                params![dependant.as_bytes(), guardian_account],
            )?
            .map(|r| Ok((r.text(0)?, r.int(1)? as u64)))
            .transpose()
        })
    }

    fn entitlements(&self, citizen: &CitizenKey) -> Result<Vec<Entitlement>> {
        self.write(|tx| {
            let account = account_in(tx, citizen)?;
            let rows = tx.rows(
                "SELECT category, valid_from, valid_until, evidence_ref FROM entitlements
                 WHERE account_id = ?1 ORDER BY valid_from",
                params![&account],
            )?;
            Ok(rows
                .iter()
                .filter_map(|r| entitlement_row(r).ok().flatten())
                .collect())
        })
    }

    fn entitlement_at(
        &self,
        account_id: &str,
        category: thudo_core::transit::Category,
        at: i64,
    ) -> Result<Option<Entitlement>> {
        self.read(|tx| {
            Ok(tx
                .row(
                    "SELECT category, valid_from, valid_until, evidence_ref FROM entitlements
                     WHERE account_id = ?1 AND category = ?2 AND valid_from <= ?3 AND valid_until >= ?3
                     ORDER BY valid_until DESC LIMIT 1",
                    params![account_id, category as u8, at],
                )?
                .as_ref()
                .map(entitlement_row)
                .transpose()?
                .flatten())
        })
    }
}
