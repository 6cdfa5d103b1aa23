//! Orders, their payments and refunds, and prepaid balances; the ledger they append to is in `ledger`.

use thudo_core::transit::{Category, Product};

use super::credentials::{bump_deny_version, deny_card, insert_pass};
use super::ledger::{
    category, enter, is_held, ledger_entries, parse, reviewed_before_expiry, settled,
    unsettled_reviews,
};
use super::tap_facts::rows_in;
use super::{
    LedgerEntry, NewOrder, OrderAdmission, OrderPurpose, OrderRecord, OrderStatus, Pass,
    PaymentRecord, Reconciliation, ReconciliationLine, SalesStore, LATE_NOTICE_SECS,
    MAX_ORDERS_PER_HOUR,
};
use crate::payments::{Notification, PaymentResult};
use crate::storage::engine::{big, params, Engine, Row, Tx, Val};
use crate::storage::locks::Lock;
use crate::storage::{code_of, Result, SqlStorage};

const ORDER_COLUMNS: &str = "id, account_id, device_id, purpose, card_id, product, category, route,
     valid_from, valid_until, device_key, dependant, amount_vnd, provider, created_at,
     expires_at, status, provider_ref, credential";

fn order_of(r: &Row) -> Result<OrderRecord> {
    let purpose: OrderPurpose = parse(r.text(3)?)?;
    let pass = match (purpose, r.opt_text(5)?) {
        (OrderPurpose::Pass, Some(product)) => Some(Pass {
            card_id: r.int(4)? as u64,
            product: parse::<Product>(product)?,
            category: category(r.int(6)?)?,
            route: u16::try_from(r.int(7)?).unwrap_or(0),
            valid_from: r.int(8)?,
            valid_until: r.int(9)?,
        }),
        _ => None,
    };
    let bytes = |i: usize| -> Result<Option<Vec<u8>>> {
        match r.0.get(i) {
            Some(crate::storage::engine::Val::Null) | None => Ok(None),
            Some(_) => r.bytes(i).map(Some),
        }
    };
    Ok(OrderRecord {
        order: NewOrder {
            id: r.text(0)?,
            account_id: r.text(1)?,
            device_id: r.text(2)?,
            purpose,
            card_id: r.int(4)? as u64,
            pass,
            device_key: bytes(10)?,
            dependant: r.int(11)? != 0,
            amount_vnd: r.int(12)? as u64,
            provider: r.text(13)?,
            created_at: r.int(14)?,
            expires_at: r.int(15)?,
        },
        status: parse(r.text(16)?)?,
        provider_ref: r.opt_text(17)?,
        credential: bytes(18)?,
    })
}

fn load_order(tx: &mut dyn Tx, id: &str) -> Result<Option<OrderRecord>> {
    tx.row(
        &format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?1"),
        params![id],
    )?
    .map(|r| order_of(&r))
    .transpose()
}

/// Cancels a paid pass order whose credential was never collected and enters the refund it
/// is owed; `false` when it is not one (collected, unpaid, a top-up).
fn return_uncollected(tx: &mut dyn Tx, order_id: &str, now: i64, day: &str) -> Result<bool> {
    let Some(record) = load_order_with_device(tx, order_id)? else {
        return Ok(false);
    };
    let order = &record.order;
    if record.status != OrderStatus::Paid
        || record.credential.is_some()
        || order.purpose != OrderPurpose::Pass
    {
        return Ok(false);
    }
    cancel_pass_order(tx, order_id, now)?;
    owe_refund(tx, &record, now, day)?;
    Ok(true)
}

/// An order read under its lock and its phone's: the phone's revocation, which returns its
/// uncollected passes holding the phone's lock alone, has then committed or waits (on
/// PostgreSQL a refund reading the order before it would otherwise return the money twice).
fn load_order_with_device(tx: &mut dyn Tx, order_id: &str) -> Result<Option<OrderRecord>> {
    tx.lock(Lock::Order(order_id))?;
    let Some(first) = load_order(tx, order_id)? else {
        return Ok(None);
    };
    tx.lock(Lock::Device(&first.order.device_id))?;
    load_order(tx, order_id)
}

/// Enters the refund a cancelled paid order is owed (`refund_due`: to return in the provider's
/// portal).
fn owe_refund(tx: &mut dyn Tx, record: &OrderRecord, now: i64, day: &str) -> Result<()> {
    let order = &record.order;
    if order.amount_vnd > 0 {
        let reference = record.provider_ref.as_deref();
        enter(
            tx,
            order,
            "refund_due",
            order.amount_vnd,
            reference,
            now,
            day,
        )?;
    }
    Ok(())
}

/// A revoked device's paid passes it never collected: only that phone could (the credential
/// binds its key), so each is cancelled and its payment listed to return, in the revocation's
/// transaction ([`crate::devices::store::RevocationHook`]); returns how many. It holds the
/// device's lock, which ranks after an order's: each order changes only if it is still paid
/// and uncollected when its row is written, and a payment being recorded meanwhile takes the
/// device's lock to see the revocation ([`orderer_revoked`]).
pub fn return_device_orders(
    tx: &mut dyn Tx,
    device_id: &str,
    now: i64,
    day: &str,
) -> Result<usize> {
    let orders: Vec<String> = tx
        .rows(
            "SELECT id FROM orders WHERE device_id = ?1 AND status = 'paid'
               AND purpose = 'pass' AND credential IS NULL",
            params![device_id],
        )?
        .iter()
        .map(|r| r.text(0))
        .collect::<Result<_>>()?;
    let mut returned = 0;
    for order_id in &orders {
        let changed = tx.exec(
            "UPDATE orders SET status = 'refunded' WHERE id = ?1 AND status = 'paid'
               AND credential IS NULL",
            params![order_id],
        )?;
        let Some(record) = load_order(tx, order_id)?.filter(|_| changed == 1) else {
            continue;
        };
        cancel_pass_order(tx, order_id, now)?;
        owe_refund(tx, &record, now, day)?;
        returned += 1;
    }
    Ok(returned)
}

/// Cancels a pass order's pass (its renewals refused from `now`) and marks the order refunded.
fn cancel_pass_order(tx: &mut dyn Tx, order_id: &str, now: i64) -> Result<()> {
    tx.exec(
        "UPDATE passes SET cancelled_at = ?2 WHERE id = (SELECT pass_id FROM orders WHERE id = ?1)
           AND cancelled_at IS NULL",
        params![order_id, now],
    )?;
    tx.exec(
        "UPDATE orders SET status = 'refunded' WHERE id = ?1",
        params![order_id],
    )?;
    Ok(())
}

/// Enters a payment that is not kept (paid twice, too late to ride, a pass the card holds
/// already) with the refund it is owed: `refund_due`, money to return in the provider's portal
/// (the day's reconciliation lists it), not a refund made.
fn enter_returned(
    tx: &mut dyn Tx,
    order: &NewOrder,
    provider_ref: Option<&str>,
    at: i64,
    day: &str,
) -> Result<()> {
    enter(
        tx,
        order,
        "payment",
        order.amount_vnd,
        provider_ref,
        at,
        day,
    )?;
    enter(
        tx,
        order,
        "refund_due",
        order.amount_vnd,
        provider_ref,
        at,
        day,
    )
}

/// Whether the card already holds a live pass for what `order` buys (the same product, route
/// and days) from another order: a buyer told a payment failed who ordered again, then paid on
/// the first order's page too.
fn pass_held(tx: &mut dyn Tx, order: &NewOrder) -> Result<bool> {
    let Some(pass) = &order.pass else {
        return Ok(false);
    };
    // Two orders of one card paid at once (two instances) take turns here, so the second sees
    // the first's pass.
    tx.lock(Lock::Card(pass.card_id))?;
    Ok(tx
        .row(
            "SELECT 1 FROM passes WHERE card_id = ?1 AND product = ?2 AND route = ?3
               AND valid_from = ?4 AND valid_until = ?5 AND cancelled_at IS NULL",
            params![
                big(pass.card_id),
                code_of(&pass.product),
                pass.route,
                pass.valid_from,
                pass.valid_until
            ],
        )?
        .is_some())
}

/// Marks an order paid and makes what it bought (a pass; a top-up's credit is its ledger
/// entry).
fn settle_paid(
    tx: &mut dyn Tx,
    order: &NewOrder,
    provider_ref: Option<&str>,
    now: i64,
    day: &str,
) -> Result<()> {
    let pass_id = match &order.pass {
        Some(pass) => Some(insert_pass(tx, &order.account_id, pass, now)?),
        None => None,
    };
    tx.exec(
        "UPDATE orders SET status = 'paid', provider_ref = ?2, settled_at = ?3, pass_id = ?4
         WHERE id = ?1",
        params![&order.id, provider_ref, now, pass_id],
    )?;
    enter(
        tx,
        order,
        "payment",
        order.amount_vnd,
        provider_ref,
        now,
        day,
    )
}

/// Each card's credit bought minus fares and penalties charged, VND, a few statements for all.
fn balances_of(tx: &mut dyn Tx, cards: &[u64]) -> Result<std::collections::HashMap<u64, i64>> {
    let values: Vec<Val<'_>> = cards.iter().map(|c| big(*c)).collect();
    let mut balances = std::collections::HashMap::new();
    for (sql, sign) in [
        (
            "SELECT card_id, CAST(SUM(CASE entry WHEN 'payment' THEN amount_vnd ELSE -amount_vnd END) AS BIGINT)
             FROM ledger WHERE purpose = 'top_up' AND entry IN ('payment', 'refund', 'refund_due')
               AND card_id IN ({in}) GROUP BY card_id",
            1,
        ),
        (
            "SELECT card_id, CAST(SUM(charged_vnd) AS BIGINT) FROM taps WHERE card_id IN ({in})
             GROUP BY card_id",
            -1,
        ),
        (
            "SELECT card_id, CAST(SUM(fare_vnd) AS BIGINT) FROM journeys WHERE card_id IN ({in})
             GROUP BY card_id",
            -1,
        ),
        (
            "SELECT card_id, CAST(SUM(amount_vnd) AS BIGINT) FROM penalties WHERE card_id IN ({in})
             GROUP BY card_id",
            -1,
        ),
    ] {
        for r in rows_in(tx, sql, &[], &values)? {
            *balances.entry(r.int(0)? as u64).or_insert(0) += sign * r.opt_int(1)?.unwrap_or(0);
        }
    }
    Ok(balances)
}

/// Credit bought minus fares and penalties charged, VND.
fn balance_of(tx: &mut dyn Tx, card: u64) -> Result<i64> {
    Ok(balances_of(tx, &[card])?.get(&card).copied().unwrap_or(0))
}

/// Denies each of `cards` owing more than `credit_limit_vnd` and lifts the balance denial of
/// each that no longer does, inside the caller's transaction (which holds the cards' locks and
/// publishes a new deny-list version when this returns true).
pub(super) fn enforce_in(
    tx: &mut dyn Tx,
    cards: &[u64],
    credit_limit_vnd: u64,
    now: i64,
) -> Result<bool> {
    let floor = -i64::try_from(credit_limit_vnd).unwrap_or(i64::MAX);
    let balances = balances_of(tx, cards)?;
    let values: Vec<Val<'_>> = cards.iter().map(|c| big(*c)).collect();
    let mut reasons = std::collections::HashMap::new();
    for r in rows_in(
        tx,
        "SELECT card_id, reason FROM deny_cards WHERE card_id IN ({in})",
        &[],
        &values,
    )? {
        reasons.insert(r.int(0)? as u64, r.opt_text(1)?);
    }
    let mut changed = false;
    for card in cards {
        let owing = balances.get(card).copied().unwrap_or(0) < floor;
        match reasons.get(card) {
            None if owing => changed |= deny_card(tx, *card, now, Some("balance"))? > 0,
            Some(Some(reason)) if reason == "balance" && !owing => {
                changed |= tx.exec(
                    "DELETE FROM deny_cards WHERE card_id = ?1 AND reason = 'balance'",
                    params![big(*card)],
                )? > 0;
            }
            _ => {}
        }
    }
    Ok(changed)
}

fn denial_reason(tx: &mut dyn Tx, card: u64) -> Result<Option<Option<String>>> {
    tx.row(
        "SELECT reason FROM deny_cards WHERE card_id = ?1",
        params![big(card)],
    )?
    .map(|r| r.opt_text(0))
    .transpose()
}

impl<E: Engine> SalesStore for SqlStorage<E> {
    fn create_order(&self, order: &NewOrder, day: &str) -> Result<OrderAdmission> {
        self.write(|tx| {
            // The account too: two instances taking two orders of one account at once must
            // count each other's against the hourly limit.
            tx.lock_all(&[Lock::Order(&order.id), Lock::Account(&order.account_id)])?;
            // The same order made twice at once (a retry racing its first try): one order.
            if let Some(existing) = load_order(tx, &order.id)? {
                return Ok(OrderAdmission::Admitted(existing.status));
            }
            let recent = tx
                .row(
                    "SELECT CAST(COUNT(*) AS BIGINT) FROM orders
                     WHERE account_id = ?1 AND created_at > ?2",
                    params![&order.account_id, order.created_at - 3_600],
                )?
                .map_or(Ok(0), |r| r.int(0))?;
            if recent >= MAX_ORDERS_PER_HOUR as i64 {
                return Ok(OrderAdmission::TooManyOrders);
            }
            // A card owing more than its credit buys nothing but credit; a card the operator
            // denied buys nothing.
            match (denial_reason(tx, order.card_id)?, order.purpose) {
                (None, _) => {}
                (Some(Some(reason)), OrderPurpose::TopUp) if reason == "balance" => {}
                (Some(reason), _) => return Ok(OrderAdmission::CardDenied { reason }),
            }
            let pass = order.pass.as_ref();
            tx.exec(
                &format!(
                    "INSERT INTO orders({ORDER_COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                             ?16, 'awaiting_payment', NULL, NULL)"
                ),
                params![
                    &order.id,
                    &order.account_id,
                    &order.device_id,
                    code_of(&order.purpose),
                    big(order.card_id),
                    pass.map(|p| code_of(&p.product)),
                    pass.map(|p| p.category as u8),
                    pass.map(|p| p.route),
                    pass.map(|p| p.valid_from),
                    pass.map(|p| p.valid_until),
                    order.device_key.clone(),
                    order.dependant,
                    big(order.amount_vnd),
                    &order.provider,
                    order.created_at,
                    order.expires_at
                ],
            )?;
            enter(
                tx,
                order,
                "order",
                order.amount_vnd,
                None,
                order.created_at,
                day,
            )?;
            if order.amount_vnd == 0 {
                settle_paid(tx, order, None, order.created_at, day)?;
                return Ok(OrderAdmission::Admitted(OrderStatus::Paid));
            }
            Ok(OrderAdmission::Admitted(OrderStatus::AwaitingPayment))
        })
    }

    fn order(&self, id: &str) -> Result<Option<OrderRecord>> {
        self.read(|tx| load_order(tx, id))
    }

    fn orders_to_follow_up(
        &self,
        since: i64,
        now: i64,
        limit: u32,
    ) -> Result<Vec<(OrderRecord, u32)>> {
        self.read(|tx| {
            tx.rows(
                &format!(
                    "SELECT {ORDER_COLUMNS}, COALESCE(f.asked, 0) FROM orders
                     LEFT JOIN payment_follow_ups f ON f.order_id = orders.id
                     WHERE status IN ('awaiting_payment', 'under_review', 'failed', 'cancelled')
                       AND created_at >= ?1 AND expires_at < ?2 AND amount_vnd > 0
                       AND (f.next_at IS NULL OR f.next_at <= ?2)
                     ORDER BY created_at LIMIT ?3"
                ),
                params![since, now, i64::from(limit)],
            )?
            .iter()
            .map(|r| Ok((order_of(r)?, u32::try_from(r.int(19)?).unwrap_or(u32::MAX))))
            .collect()
        })
    }

    fn followed_up(&self, order_id: &str, asked: u32, next_at: Option<i64>) -> Result<()> {
        self.write(|tx| {
            tx.exec(
                "INSERT INTO payment_follow_ups(order_id, asked, next_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (order_id) DO UPDATE SET asked = excluded.asked,
                     next_at = excluded.next_at",
                params![order_id, i64::from(asked), next_at.unwrap_or(i64::MAX)],
            )?;
            Ok(())
        })
    }

    fn record_payment(
        &self,
        n: &Notification,
        credit_limit_vnd: u64,
        now: i64,
        day: &str,
    ) -> Result<PaymentRecord> {
        let provider_ref = Some(n.provider_ref.as_str()).filter(|r| !r.is_empty());
        // The same transaction sent again with the same outcome. One transaction may report
        // several in turn (pending then paid, failed then taken at the bank, held for review
        // then paid or returned): each is recorded once.
        let entry = outcome_entry(&n.result);
        // A repeat is answered from a read first, without the order's lock or a write: the
        // buyer's browser holds the same signed parameters (the return URL), and replays of
        // them must not load every instance's database.
        if let Some(reference) = provider_ref {
            let seen = self.read(|tx| {
                Ok(tx
                    .row(REPEAT_SQL, params![&n.order_id, reference, entry])?
                    .is_some())
            })?;
            if seen {
                return Ok(PaymentRecord::AlreadyRecorded);
            }
        }
        self.write(|tx| {
            tx.lock(Lock::Order(&n.order_id))?;
            record_locked(tx, n, credit_limit_vnd, now, day, true)
        })
    }

    fn settle_review(
        &self,
        order_id: &str,
        provider_ref: &str,
        result: PaymentResult,
        credit_limit_vnd: u64,
        now: i64,
        day: &str,
    ) -> Result<Option<PaymentRecord>> {
        self.write(|tx| {
            tx.lock(Lock::Order(order_id))?;
            // Checked under the lock the settlement is recorded under: a review the provider
            // settled meanwhile is not settled again.
            let reference = Some(provider_ref).filter(|r| !r.is_empty());
            let Some(record) = load_order(tx, order_id)? else {
                return Ok(None);
            };
            if !is_held(tx, order_id, reference)? {
                return Ok(None);
            }
            let n = Notification {
                order_id: order_id.to_owned(),
                amount_vnd: record.order.amount_vnd,
                result: result.clone(),
                provider_ref: provider_ref.to_owned(),
            };
            record_locked(tx, &n, credit_limit_vnd, now, day, false).map(Some)
        })
    }

    fn keep_credential(&self, order_id: &str, credential: &[u8]) -> Result<Option<Vec<u8>>> {
        self.write(|tx| {
            tx.lock(Lock::Order(order_id))?;
            // Refunded meanwhile: nothing is handed out.
            tx.exec(
                "UPDATE orders SET credential = ?2
                 WHERE id = ?1 AND credential IS NULL AND status = 'paid'",
                params![order_id, credential],
            )?;
            Ok(load_order(tx, order_id)?
                .filter(|o| o.status == OrderStatus::Paid)
                .and_then(|o| o.credential))
        })
    }

    fn refund(&self, order_id: &str, now: i64, day: &str) -> Result<Option<OrderStatus>> {
        self.write(|tx| {
            let Some(record) = load_order_with_device(tx, order_id)? else {
                return Ok(None);
            };
            // Pass orders only: a top-up's credit may be spent already, and returning it whole
            // would leave the card owing what the rider was paid back.
            if record.order.purpose != OrderPurpose::Pass {
                return Ok(None);
            }
            match record.status {
                OrderStatus::Paid => {}
                OrderStatus::Refunded => return Ok(Some(OrderStatus::Refunded)),
                _ => return Ok(None),
            }
            let order = &record.order;
            cancel_pass_order(tx, order_id, now)?;
            let reference = record.provider_ref.as_deref();
            enter(tx, order, "refund", order.amount_vnd, reference, now, day)?;
            Ok(Some(OrderStatus::Refunded))
        })
    }

    fn return_uncollectable(&self, order_id: &str, now: i64, day: &str) -> Result<bool> {
        self.write(|tx| return_uncollected(tx, order_id, now, day))
    }

    fn balance(&self, card_id: u64) -> Result<i64> {
        self.read(|tx| balance_of(tx, card_id))
    }

    fn balance_denied(&self, card_id: u64) -> Result<bool> {
        self.read(|tx| Ok(denial_reason(tx, card_id)?.flatten().as_deref() == Some("balance")))
    }

    fn enforce_balances(
        &self,
        cards: &[u64],
        credit_limit_vnd: u64,
        now: i64,
    ) -> Result<Option<u32>> {
        if cards.is_empty() {
            return Ok(None);
        }
        let locks: Vec<Lock<'_>> = cards.iter().map(|c| Lock::Card(*c)).collect();
        self.write(|tx| {
            tx.lock_all(&locks)?;
            if enforce_in(tx, cards, credit_limit_vnd, now)? {
                return Ok(Some(bump_deny_version(tx)?));
            }
            Ok(None)
        })
    }

    fn ledger(&self, day: &str) -> Result<Vec<LedgerEntry>> {
        self.read(|tx| ledger_entries(tx, day, None))
    }

    fn reconciliation(&self, day: &str) -> Result<Reconciliation> {
        self.snapshot(|tx| {
            let mut lines =
                std::collections::BTreeMap::<(String, Option<u8>), ReconciliationLine>::new();
            let mut rec = Reconciliation {
                day: day.to_owned(),
                ..Default::default()
            };
            for r in tx.rows(
                "SELECT entry, purpose, product, category, CAST(COUNT(*) AS BIGINT),
                        CAST(SUM(amount_vnd) AS BIGINT)
                 FROM ledger WHERE day = ?1 GROUP BY entry, purpose, product, category",
                params![day],
            )? {
                let (count, vnd) = (r.int(4)? as u64, r.int(5)? as u64);
                let product = match r.text(1)?.as_str() {
                    "top_up" => "top_up".to_owned(),
                    _ => r.opt_text(2)?.unwrap_or_default(),
                };
                let cat = r.opt_int(3)?.and_then(|c| u8::try_from(c).ok());
                let line = || ReconciliationLine {
                    product: product.clone(),
                    category: cat.and_then(Category::from_code),
                    ..Default::default()
                };
                match r.text(0)?.as_str() {
                    "order" => {
                        rec.orders += count;
                        rec.ordered_vnd += vnd;
                    }
                    "payment" => {
                        let l = lines.entry((product.clone(), cat)).or_insert_with(line);
                        l.sales += count;
                        l.sales_vnd += vnd;
                    }
                    "refund" => {
                        let l = lines.entry((product.clone(), cat)).or_insert_with(line);
                        l.refunds += count;
                        l.refunds_vnd += vnd;
                    }
                    "refund_due" => {
                        let l = lines.entry((product.clone(), cat)).or_insert_with(line);
                        l.refunds_due += count;
                        l.refunds_due_vnd += vnd;
                    }
                    // Listed one by one below: neither a sale nor a failure yet.
                    "payment_under_review" => {}
                    _ => rec.unpaid += count,
                }
            }
            let mut fares = ReconciliationLine {
                product: code_of(&Product::PayAsYouGo),
                ..Default::default()
            };
            for sql in [
                "SELECT CAST(COUNT(*) AS BIGINT), CAST(SUM(charged_vnd) AS BIGINT) FROM taps
                 WHERE day = ?1 AND charged_vnd > 0",
                "SELECT CAST(COUNT(*) AS BIGINT), CAST(SUM(fare_vnd) AS BIGINT) FROM journeys
                 WHERE day = ?1 AND fare_vnd > 0",
            ] {
                if let Some(r) = tx.row(sql, params![day])? {
                    fares.charges += r.int(0)? as u64;
                    fares.charged_vnd += r.opt_int(1)?.unwrap_or(0) as u64;
                }
            }
            if fares.charges > 0 {
                let key = (fares.product.clone(), None);
                let l = lines.entry(key).or_insert_with(|| ReconciliationLine {
                    product: fares.product.clone(),
                    ..Default::default()
                });
                l.charges = fares.charges;
                l.charged_vnd = fares.charged_vnd;
            }
            if let Some(r) = tx.row(
                "SELECT CAST(COUNT(*) AS BIGINT), CAST(SUM(amount_vnd) AS BIGINT) FROM penalties
                 WHERE day = ?1",
                params![day],
            )? {
                let count = r.int(0)? as u64;
                if count > 0 {
                    lines.insert(
                        ("penalty".to_owned(), None),
                        ReconciliationLine {
                            product: "penalty".to_owned(),
                            charges: count,
                            charged_vnd: r.opt_int(1)?.unwrap_or(0) as u64,
                            ..Default::default()
                        },
                    );
                }
            }
            rec.lines = lines.into_values().collect();
            rec.sales_vnd = rec.lines.iter().map(|l| l.sales_vnd).sum();
            rec.refunds_vnd = rec.lines.iter().map(|l| l.refunds_vnd).sum();
            rec.refunds_due_vnd = rec.lines.iter().map(|l| l.refunds_due_vnd).sum();
            rec.to_return = ledger_entries(tx, day, Some("refund_due"))?;
            rec.under_review = unsettled_reviews(tx, None)?;
            rec.charged_vnd = rec.lines.iter().map(|l| l.charged_vnd).sum();
            Ok(rec)
        })
    }
}

/// The same transaction's same outcome in the ledger (a repeat).
const REPEAT_SQL: &str = "SELECT 1 FROM ledger WHERE order_id = ?1 AND provider_ref = ?2
                            AND entry = ?3";

/// The ledger entry an outcome writes.
fn outcome_entry(result: &PaymentResult) -> &'static str {
    match result {
        PaymentResult::Paid => "payment",
        PaymentResult::Cancelled => "payment_cancelled",
        PaymentResult::UnderReview { .. } => "payment_under_review",
        PaymentResult::Failed { .. } => "payment_failed",
    }
}

/// Records notification `n` under its order's lock (see [`SalesStore::record_payment`]);
/// `check_repeat` false for an operator's settlement of a review, whose precondition (the
/// review unsettled) stands in for the repeat check.
fn record_locked(
    tx: &mut dyn Tx,
    n: &Notification,
    credit_limit_vnd: u64,
    now: i64,
    day: &str,
    check_repeat: bool,
) -> Result<PaymentRecord> {
    let provider_ref = Some(n.provider_ref.as_str()).filter(|r| !r.is_empty());
    let entry = outcome_entry(&n.result);
    let Some(record) = load_order(tx, &n.order_id)? else {
        return Ok(PaymentRecord::UnknownOrder);
    };
    let order = &record.order;
    if n.amount_vnd != order.amount_vnd {
        return Ok(PaymentRecord::WrongAmount);
    }
    // Checked again under the lock: two deliveries at once. An outcome with no transaction
    // reference is recorded once per kind since the last review without one (which only such
    // an outcome can settle).
    if check_repeat {
        let seen = match provider_ref {
            Some(reference) => tx.row(REPEAT_SQL, params![&order.id, reference, entry])?,
            None => tx.row(
                "SELECT 1 FROM ledger WHERE order_id = ?1 AND provider_ref IS NULL
                   AND entry = CAST(?2 AS TEXT)
                   AND (CAST(?2 AS TEXT) = 'payment_under_review' OR id > COALESCE(
                     (SELECT MAX(id) FROM ledger WHERE order_id = ?1 AND provider_ref IS NULL
                        AND entry = 'payment_under_review'), 0))",
                params![&order.id, entry],
            )?,
        };
        if seen.is_some() {
            return Ok(PaymentRecord::AlreadyRecorded);
        }
    }
    let open = matches!(
        record.status,
        OrderStatus::AwaitingPayment
            | OrderStatus::Failed
            | OrderStatus::Cancelled
            | OrderStatus::UnderReview
    );
    match (&n.result, open) {
        (PaymentResult::Paid, true) => {
            // A pass paid after the phone was told its order expired (unpaid past its
            // window and the late notices' grace: "order again"), or after the pass
            // ended: the money goes back, so a rider who ordered again never pays for
            // two passes. Before then, a payment after a failure is a second try at
            // the bank, on the page the buyer is still on: it opens the pass. An
            // order whose phone heard only "held for review, do not pay again" is
            // opened however late the provider confirms it.
            let expired = now > order.expires_at.saturating_add(LATE_NOTICE_SECS)
                && !(record.status == OrderStatus::UnderReview
                    && reviewed_before_expiry(tx, order, provider_ref)?);
            if order
                .pass
                .as_ref()
                .is_some_and(|p| p.valid_until < now || expired)
                || (order.pass.is_some() && orderer_revoked(tx, order)?)
                || pass_held(tx, order)?
            {
                enter_returned(tx, order, provider_ref, now, day)?;
                tx.exec(
                    "UPDATE orders SET status = 'refunded', provider_ref = ?2,
                            settled_at = ?3 WHERE id = ?1",
                    params![&order.id, provider_ref, now],
                )?;
                return Ok(PaymentRecord::Recorded {
                    status: OrderStatus::Refunded,
                });
            }
            settle_paid(tx, order, provider_ref, now, day)?;
            // Credit lifts a denial for the balance owed, in the same transaction.
            if order.purpose == OrderPurpose::TopUp {
                tx.lock(Lock::Card(order.card_id))?;
                if enforce_in(tx, &[order.card_id], credit_limit_vnd, now)? {
                    bump_deny_version(tx)?;
                }
            }
            Ok(PaymentRecord::Recorded {
                status: OrderStatus::Paid,
            })
        }
        (PaymentResult::Paid, false) => {
            if provider_ref.is_none() {
                return Ok(PaymentRecord::AlreadyRecorded);
            }
            // The same order paid twice: the second payment is recorded and returned.
            enter_returned(tx, order, provider_ref, now, day)?;
            Ok(PaymentRecord::Recorded {
                status: record.status,
            })
        }
        // Money held for review on an order already settled (a second transaction):
        // entered for the follow-up, unless that transaction was settled already (a
        // review delivered late); its confirmation is then returned.
        (PaymentResult::UnderReview { .. }, false) => {
            if provider_ref.is_none() || settled(tx, &order.id, provider_ref)? {
                return Ok(PaymentRecord::AlreadyRecorded);
            }
            enter(tx, order, entry, order.amount_vnd, provider_ref, now, day)?;
            Ok(PaymentRecord::Recorded {
                status: record.status,
            })
        }
        // The provider returned money it held on an order already settled: the
        // review ends; the order stays as it is.
        (PaymentResult::Failed { .. } | PaymentResult::Cancelled, false)
            if provider_ref.is_some() && is_held(tx, &order.id, provider_ref)? =>
        {
            enter(tx, order, entry, 0, provider_ref, now, day)?;
            Ok(PaymentRecord::Recorded {
                status: record.status,
            })
        }
        // A review of a transaction whose outcome is recorded already (delivered late, or
        // its return URL replayed) holds no money: the order stays as that outcome left it.
        (PaymentResult::UnderReview { .. }, true)
            if provider_ref.is_some() && settled(tx, &order.id, provider_ref)? =>
        {
            Ok(PaymentRecord::AlreadyRecorded)
        }
        (failed, true) => {
            // The money a review holds is listed at its amount, for the follow-up.
            let (status, amount) = match failed {
                PaymentResult::Cancelled => ("cancelled", 0),
                PaymentResult::UnderReview { .. } => ("under_review", order.amount_vnd),
                _ => ("failed", 0),
            };
            enter(tx, order, entry, amount, provider_ref, now, day)?;
            // While money is held for review, another attempt's failure does not tell
            // the phone "order again": the order leaves review once every held
            // transaction is settled (the provider returned it).
            if record.status == OrderStatus::UnderReview
                && !unsettled_reviews(tx, Some(&order.id))?.is_empty()
            {
                return Ok(PaymentRecord::Recorded {
                    status: OrderStatus::UnderReview,
                });
            }
            tx.exec(
                "UPDATE orders SET status = ?2, provider_ref = ?3, settled_at = ?4
                 WHERE id = ?1",
                params![&order.id, status, provider_ref, now],
            )?;
            Ok(PaymentRecord::Recorded {
                status: parse(status.to_owned())?,
            })
        }
        // A failure reported after the payment changes nothing.
        (_, false) => Ok(PaymentRecord::AlreadyRecorded),
    }
}

/// Whether the phone that ordered a pass was revoked: only it could collect the credential.
/// Under the device's lock, as its revocation returns its paid passes: a payment recorded
/// while the phone is revoked is seen by one or the other.
fn orderer_revoked(tx: &mut dyn Tx, order: &NewOrder) -> Result<bool> {
    tx.lock(Lock::Device(&order.device_id))?;
    Ok(tx
        .row(
            "SELECT 1 FROM devices WHERE id = ?1 AND revoked_at IS NOT NULL",
            params![&order.device_id],
        )?
        .is_some())
}
