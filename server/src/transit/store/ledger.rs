//! The ledger: every order, payment, failure, cancellation and refund appended (never updated),
//! and what it says of the transactions a provider held for review.

use serde_json::Value;
use thudo_core::transit::Category;

use super::{LedgerEntry, NewOrder, LATE_NOTICE_SECS};
use crate::storage::engine::{big, params, Row, Tx};
use crate::storage::{code_of, Result, StorageError};

pub(super) fn parse<T: serde::de::DeserializeOwned>(text: String) -> Result<T> {
    serde_json::from_value(Value::String(text.clone()))
        .map_err(|_| StorageError::Failed(format!("unknown stored value {text}")))
}

pub(super) fn category(code: i64) -> Result<Category> {
    u8::try_from(code)
        .ok()
        .and_then(Category::from_code)
        .ok_or_else(|| StorageError::Failed(format!("unknown category {code}")))
}

/// Appends one entry to the ledger.
pub(super) fn enter(
    tx: &mut dyn Tx,
    order: &NewOrder,
    entry: &str,
    amount_vnd: u64,
    provider_ref: Option<&str>,
    at: i64,
    day: &str,
) -> Result<()> {
    tx.exec(
        "INSERT INTO ledger(at, day, entry, order_id, purpose, card_id, product, category,
                            amount_vnd, provider_ref)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            at,
            day,
            entry,
            &order.id,
            code_of(&order.purpose),
            big(order.card_id),
            order.pass.as_ref().map(|p| code_of(&p.product)),
            order.pass.as_ref().map(|p| p.category as u8),
            big(amount_vnd),
            provider_ref
        ],
    )?;
    Ok(())
}

/// Whether transaction `reference` of `order` was held for review before its phone could be
/// told the order expired, with no failure reported before it: the phone then heard only
/// "pending" and "do not pay again", never "order again".
pub(super) fn reviewed_before_expiry(
    tx: &mut dyn Tx,
    order: &NewOrder,
    reference: Option<&str>,
) -> Result<bool> {
    let Some(reference) = reference else {
        return Ok(false);
    };
    Ok(tx
        .row(
            "SELECT 1 FROM ledger r WHERE r.order_id = ?1 AND r.provider_ref = ?2
               AND r.entry = 'payment_under_review' AND r.at <= ?3
               AND NOT EXISTS (SELECT 1 FROM ledger f WHERE f.order_id = r.order_id
                 AND f.id < r.id AND f.entry IN ('payment_failed', 'payment_cancelled'))",
            params![
                &order.id,
                reference,
                order.expires_at.saturating_add(LATE_NOTICE_SECS)
            ],
        )?
        .is_some())
}

/// The ledger entries that settle a transaction held for review.
const SETTLING: &str = "('payment', 'payment_failed', 'payment_cancelled')";

/// Whether transaction `reference` of order `order_id` is held for review and not settled.
pub(super) fn is_held(tx: &mut dyn Tx, order_id: &str, reference: Option<&str>) -> Result<bool> {
    Ok(unsettled_reviews(tx, Some(order_id))?
        .iter()
        .any(|e| e.provider_ref.as_deref() == reference))
}

/// Whether transaction `reference` of order `order_id` was paid, failed or cancelled already.
pub(super) fn settled(tx: &mut dyn Tx, order_id: &str, reference: Option<&str>) -> Result<bool> {
    Ok(tx
        .row(
            &format!(
                "SELECT 1 FROM ledger WHERE order_id = ?1 AND provider_ref = ?2
                   AND entry IN {SETTLING}"
            ),
            params![order_id, reference],
        )?
        .is_some())
}

/// Payments held for review that the provider has not settled (no payment, failure or
/// cancellation of the same transaction, whichever came first; without a transaction
/// reference, none since), of one order or all, oldest first.
pub(super) fn unsettled_reviews(
    tx: &mut dyn Tx,
    order_id: Option<&str>,
) -> Result<Vec<LedgerEntry>> {
    let unsettled = format!(
        "l.entry = 'payment_under_review' AND NOT EXISTS (
           SELECT 1 FROM ledger s WHERE s.order_id = l.order_id
             AND (s.provider_ref = l.provider_ref
                  OR (l.provider_ref IS NULL AND s.provider_ref IS NULL AND s.id > l.id))
             AND s.entry IN {SETTLING})"
    );
    let columns = "l.at, l.day, l.entry, l.order_id, l.purpose, l.card_id, l.product, l.category,
                   l.amount_vnd, l.provider_ref";
    let rows = match order_id {
        Some(id) => tx.rows(
            &format!(
                "SELECT {columns} FROM ledger l WHERE l.order_id = ?1 AND {unsettled}
                 ORDER BY l.id"
            ),
            params![id],
        )?,
        None => tx.rows(
            &format!("SELECT {columns} FROM ledger l WHERE {unsettled} ORDER BY l.id"),
            params![],
        )?,
    };
    rows.iter().map(ledger_entry).collect()
}

/// A day's ledger entries in order, of one kind or all.
pub(super) fn ledger_entries(
    tx: &mut dyn Tx,
    day: &str,
    kind: Option<&str>,
) -> Result<Vec<LedgerEntry>> {
    // PostgreSQL cannot type a parameter tested only for NULL: it is cast to text.
    tx.rows(
        "SELECT at, day, entry, order_id, purpose, card_id, product, category, amount_vnd,
                provider_ref
         FROM ledger WHERE day = ?1 AND (CAST(?2 AS TEXT) IS NULL OR entry = CAST(?2 AS TEXT))
         ORDER BY id",
        params![day, kind],
    )?
    .iter()
    .map(ledger_entry)
    .collect()
}

/// A ledger row read in the column order of [`ledger_entries`].
fn ledger_entry(r: &Row) -> Result<LedgerEntry> {
    Ok(LedgerEntry {
        at: r.int(0)?,
        day: r.text(1)?,
        entry: r.text(2)?,
        order_id: r.text(3)?,
        purpose: parse(r.text(4)?)?,
        card_id: r.int(5)? as u64,
        product: r.opt_text(6)?.map(parse).transpose()?,
        category: r.opt_int(7)?.map(category).transpose()?,
        amount_vnd: r.int(8)? as u64,
        provider_ref: r.opt_text(9)?,
    })
}
