//! Payments the provider holds for review: the buyer's money taken, not confirmed. Never
//! "order again"; listed until settled, by the provider's notification or, when it never
//! comes, by the operator from the provider's portal.

use std::sync::Arc;

use serde_json::{json, Value};
use thudo_core::transit::backend::{CredentialOrder, OrderStatus};
use thudo_core::transit::phone::{Phone, PhoneOptions};
use thudo_core::transit::{Category, Product};
use thudo_server::payments::vnpay::{Sandbox, SANDBOX_TMN_CODE};
use thudo_server::transit::store::{NewOrder, PaymentRecord, LATE_NOTICE_SECS};

use crate::payments::{assert_adds_up, notify, paying_world};
use crate::world::*;

/// A notification as the gateway signs it, for transaction `transaction` of `order`.
fn signed(
    sandbox: &Sandbox,
    order: &str,
    transaction: &str,
    response: &str,
    status: &str,
) -> String {
    signed_for(sandbox, order, transaction, response, status, 280_000)
}

/// As [`signed`], for an order of `amount_vnd`.
fn signed_for(
    sandbox: &Sandbox,
    order: &str,
    transaction: &str,
    response: &str,
    status: &str,
    amount_vnd: u64,
) -> String {
    let field = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    let amount = (amount_vnd * 100).to_string();
    sandbox.signed_query(vec![
        field("vnp_TmnCode", SANDBOX_TMN_CODE),
        field("vnp_Amount", &amount),
        field("vnp_ResponseCode", response),
        field("vnp_TransactionNo", transaction),
        field("vnp_TransactionStatus", status),
        field("vnp_TxnRef", order),
    ])
}

/// The reconciliation's held payments, as `"order" "transaction"`.
async fn held_list(w: &World) -> Vec<String> {
    let rec = w.admin_get("/v1/admin/transit/reconciliation").await;
    rec["under_review"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{} {}", e["order_id"], e["provider_ref"]))
        .collect()
}

/// The operator settles transaction `transaction` of `order` held for review.
async fn settle(w: &World, order: &str, transaction: &str, outcome: &str) -> (u16, Value) {
    let path = format!("/v1/admin/transit/orders/{order}/review");
    w.admin_post(
        &path,
        json!({"provider_ref": transaction, "outcome": outcome}),
    )
    .await
}

/// Orders `ids` for the same pass, next month's (still to come however late a test settles
/// it), paid by none yet, each expiring at its time.
async fn orders(w: &World, name: &str, ids: &[(&str, i64)]) -> Arc<thudo_core::vault::Vault> {
    let v = w.phone_device(name, RIDER).await;
    let phone = Arc::new(Phone::open(v.clone(), None, PhoneOptions::default()).unwrap());
    let next_month = CredentialOrder {
        month: month_ahead(1),
        ..CredentialOrder::new(Product::MonthlyAllRoutes, Category::Standard)
    }
    .signed_by(&phone, now())
    .unwrap();
    let bought = w
        .transit()
        .buy_and_install(v.clone(), phone.clone(), next_month)
        .await
        .unwrap();
    let made = w.storage.order(&bought.order.order_id).unwrap().unwrap();
    for (id, expires_at) in ids {
        let order = NewOrder {
            id: (*id).into(),
            expires_at: *expires_at,
            ..made.order.clone()
        };
        w.storage.create_order(&order, &today()).unwrap();
    }
    v
}

/// Money the bank took and the provider holds for review (VNPAY 07, or a transaction taken at
/// the bank and not completed at the provider) is neither paid nor failed: the phone is told
/// not to pay again, past the order's window too, whatever another attempt does meanwhile; the
/// reconciliation lists it until the provider settles it; the provider's confirmation opens
/// the pass, and its return ends the review.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn money_held_for_review_is_never_order_again_and_its_confirmation_opens_the_pass() {
    let (w, sandbox) = paying_world().await;
    let t = now() as i64;
    // Held within the late notices' grace (the phone hears "pending", then "held"), or past
    // it (the phone may have heard "expired, order again").
    let v = orders(
        &w,
        "reviewed",
        &[
            ("o-reviewed", t - 60),
            ("o-returned", t - LATE_NOTICE_SECS - 60),
            ("o-late-review", t - LATE_NOTICE_SECS - 60),
            ("o-declined-first", t - 60),
        ],
    )
    .await;
    let signed = |order: &str, transaction: &str, response: &str, status: &str| {
        signed(&sandbox, order, transaction, response, status)
    };
    let collect = |id: &'static str| w.transit().collect(v.clone(), id);
    let day = today();
    assert_eq!(
        notify(&w, &signed("o-reviewed", "X1", "07", "07")).await,
        "00"
    );
    // Delivered twice, and reported again as reversed: recorded once.
    assert_eq!(
        notify(&w, &signed("o-reviewed", "X1", "07", "07")).await,
        "02"
    );
    assert_eq!(
        notify(&w, &signed("o-reviewed", "X1", "00", "04")).await,
        "02"
    );
    // Another attempt on the same order declined: the held money still stands.
    assert_eq!(
        notify(&w, &signed("o-reviewed", "Y1", "51", "02")).await,
        "00"
    );
    for _ in 0..2 {
        refused(
            collect("o-reviewed").await.unwrap_err(),
            409,
            "payment_under_review",
        );
    }
    let shown = w.transit().order_status(v.clone(), "o-reviewed").await;
    assert_eq!(shown.unwrap().status, OrderStatus::UnderReview);
    assert_eq!(held_list(&w).await, [r#""o-reviewed" "X1""#]);
    let rec = w
        .admin_get(&format!("/v1/admin/transit/reconciliation?day={day}"))
        .await;
    assert_eq!(
        (&rec["under_review"][0]["amount_vnd"], &rec["sales_vnd"]),
        (&Value::from(280_000), &Value::from(0))
    );
    // Held only after the phone could have been told "expired, order again": its
    // confirmation goes back rather than making a second pass.
    let late = signed("o-late-review", "W1", "07", "07");
    assert_eq!(notify(&w, &late).await, "00");
    let confirmed = signed("o-late-review", "W1", "00", "00");
    assert_eq!(notify(&w, &confirmed).await, "00");
    refused(
        collect("o-late-review").await.unwrap_err(),
        403,
        "pass_cancelled",
    );
    // A failure first (the phone may have heard "order again"), then money held within the
    // grace: its confirmation after the window goes back too.
    let declined = signed("o-declined-first", "D1", "51", "02");
    assert_eq!(notify(&w, &declined).await, "00");
    let held_after = signed("o-declined-first", "D2", "07", "07");
    assert_eq!(notify(&w, &held_after).await, "00");
    // The provider's confirmation of `transaction`, told days after the order's window.
    let confirmed_days_later = |order: &str, transaction: &str| {
        let confirmation = thudo_server::payments::Notification {
            order_id: order.into(),
            amount_vnd: 280_000,
            result: thudo_server::payments::PaymentResult::Paid,
            provider_ref: transaction.into(),
        };
        match w
            .storage
            .record_payment(&confirmation, 20_000, t + 3 * 86_400, &day)
            .unwrap()
        {
            PaymentRecord::Recorded { status } => status,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        confirmed_days_later("o-declined-first", "D2"),
        thudo_server::transit::store::OrderStatus::Refunded
    );
    // The provider confirms the held transaction long after the order's window: the pass,
    // not a refund for being late.
    assert_eq!(
        confirmed_days_later("o-reviewed", "X1"),
        thudo_server::transit::store::OrderStatus::Paid
    );
    assert_eq!(collect("o-reviewed").await.unwrap().price_vnd, 280_000);
    assert!(held_list(&w).await.is_empty(), "settled");

    // The provider returns held money: the review ends, and the phone may order again.
    assert_eq!(
        notify(&w, &signed("o-returned", "Z1", "07", "07")).await,
        "00"
    );
    assert_eq!(held_list(&w).await, [r#""o-returned" "Z1""#]);
    assert_eq!(
        notify(&w, &signed("o-returned", "Z1", "99", "02")).await,
        "00"
    );
    refused(
        collect("o-returned").await.unwrap_err(),
        402,
        "payment_failed",
    );
    assert!(held_list(&w).await.is_empty());

    let ledger = w
        .admin_get(&format!("/v1/admin/transit/ledger?day={day}"))
        .await;
    let rec = w
        .admin_get(&format!("/v1/admin/transit/reconciliation?day={day}"))
        .await;
    assert_adds_up(&ledger, &rec);
    assert_eq!(
        (&rec["sales_vnd"], &rec["refunds_due_vnd"]),
        (&Value::from(840_000), &Value::from(560_000))
    );
}

/// When the provider never notifies the end of a review, the operator records what its portal
/// shows: paid (the pass opens) or returned (the review ends). Only a transaction the provider
/// reported held can be settled so, by a transit operator, and once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_settles_a_review_the_provider_never_ended() {
    let (w, sandbox) = paying_world().await;
    let t = now() as i64;
    let v = orders(
        &w,
        "held-long",
        &[("o-held", t + 600), ("o-held-2", t + 600)],
    )
    .await;
    for (order, transaction) in [("o-held", "H1"), ("o-held-2", "H2")] {
        let held = signed(&sandbox, order, transaction, "07", "07");
        assert_eq!(notify(&w, &held).await, "00");
    }
    // No payment of nothing: an unknown transaction, another order's, an order not held.
    for (order, transaction) in [("o-held", "H9"), ("o-held", "H2"), ("o-none", "H1")] {
        let (status, answer) = settle(&w, order, transaction, "paid").await;
        assert_eq!(status, 404, "{answer}");
    }
    let (status, answer) = settle(&w, "o-held", "H1", "kept").await;
    assert_eq!(status, 400, "{answer}");
    // Not an auditor's power.
    let r = w
        .http
        .post(w.url("/v1/admin/transit/orders/o-held/review"))
        .bearer_auth(operator(&w.idp, thudo_server::operators::Role::Auditor))
        .header("content-type", "application/json")
        .body(json!({"provider_ref": "H1", "outcome": "paid"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    refused(
        w.transit().collect(v.clone(), "o-held").await.unwrap_err(),
        409,
        "payment_under_review",
    );
    // Released to the merchant: the pass opens; settled once.
    let (status, answer) = settle(&w, "o-held", "H1", "paid").await;
    assert_eq!(
        (status, &answer["status"]),
        (200, &json!("paid")),
        "{answer}"
    );
    assert_eq!(
        w.transit()
            .collect(v.clone(), "o-held")
            .await
            .unwrap()
            .price_vnd,
        280_000
    );
    let (status, _) = settle(&w, "o-held", "H1", "returned").await;
    assert_eq!(status, 404, "settled already");
    assert_eq!(held_list(&w).await, [r#""o-held-2" "H2""#]);
    // Given back to the buyer: the review ends and the phone may order again.
    let (status, answer) = settle(&w, "o-held-2", "H2", "returned").await;
    assert_eq!(
        (status, &answer["status"]),
        (200, &json!("failed")),
        "{answer}"
    );
    refused(
        w.transit()
            .collect(v.clone(), "o-held-2")
            .await
            .unwrap_err(),
        402,
        "payment_failed",
    );
    assert!(held_list(&w).await.is_empty());
    // The trail names each settlement: the order, the transaction, the outcome, the status.
    let trail = w.admin_get("/v1/admin/audit?limit=1000").await;
    let settled: Vec<_> = trail["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "POST /v1/admin/transit/orders/{id}/review")
        .filter_map(|e| {
            let detail: Value = serde_json::from_str(e["detail"].as_str()?).ok()?;
            let effect = &detail["effect"];
            (detail["status"] == 200).then(|| {
                format!(
                    "{} {} {} {}",
                    e["target"], effect["provider_ref"], effect["outcome"], effect["status"]
                )
            })
        })
        .collect();
    assert_eq!(
        settled,
        [
            r#""id=o-held" "H1" "paid" "paid""#,
            r#""id=o-held-2" "H2" "returned" "failed""#
        ],
        "{trail}"
    );
}

/// An operator's settlement follows the rules a provider's notification follows: "paid" past
/// the order's window (the phone may have heard "order again") goes back; money held on an
/// order paid already and returned leaves the order as it is; a top-up's "paid" adds its
/// credit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_settlement_follows_the_payment_rules() {
    let (w, sandbox) = paying_world().await;
    let t = now() as i64;
    let v = orders(
        &w,
        "ruled",
        &[("o-late", t - LATE_NOTICE_SECS - 60), ("o-paid", t + 600)],
    )
    .await;
    let held = |order: &str, transaction: &str| signed(&sandbox, order, transaction, "07", "07");
    assert_eq!(notify(&w, &held("o-late", "L1")).await, "00");
    let (status, answer) = settle(&w, "o-late", "L1", "paid").await;
    assert_eq!(
        (status, &answer["status"]),
        (200, &json!("refunded")),
        "{answer}"
    );
    refused(
        w.transit().collect(v.clone(), "o-late").await.unwrap_err(),
        403,
        "pass_cancelled",
    );
    let paid = signed(&sandbox, "o-paid", "P1", "00", "00");
    assert_eq!(notify(&w, &paid).await, "00");
    assert_eq!(notify(&w, &held("o-paid", "P2")).await, "00");
    let (status, answer) = settle(&w, "o-paid", "P2", "returned").await;
    assert_eq!(
        (status, &answer["status"]),
        (200, &json!("paid")),
        "{answer}"
    );
    assert_eq!(
        w.transit()
            .collect(v.clone(), "o-paid")
            .await
            .unwrap()
            .price_vnd,
        280_000
    );
    // A top-up held, then released: its credit is on the card.
    let top_up = w.transit().top_up(v.clone(), 50_000, None).await.unwrap();
    let id = top_up.order_id.as_str();
    let held_top_up = signed_for(&sandbox, id, "T1", "07", "07", 50_000);
    assert_eq!(notify(&w, &held_top_up).await, "00");
    assert_eq!(
        w.transit()
            .balance(v.clone(), None)
            .await
            .unwrap()
            .balance_vnd,
        0
    );
    let (status, answer) = settle(&w, id, "T1", "paid").await;
    assert_eq!(
        (status, &answer["status"]),
        (200, &json!("paid")),
        "{answer}"
    );
    assert_eq!(
        w.transit()
            .balance(v.clone(), None)
            .await
            .unwrap()
            .balance_vnd,
        50_000
    );
    assert!(held_list(&w).await.is_empty());
    let ledger = w.admin_get("/v1/admin/transit/ledger").await;
    let rec = w.admin_get("/v1/admin/transit/reconciliation").await;
    assert_adds_up(&ledger, &rec);
    assert_eq!(
        (&rec["sales_vnd"], &rec["refunds_due_vnd"]),
        (&json!(280_000 + 280_000 + 50_000), &json!(280_000))
    );
}

/// However the provider's notifications arrive (no transaction reference, late, about money
/// held on an order paid already), each is recorded once and every review is settled by its
/// own transaction's outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviews_settle_by_their_own_transaction_however_notifications_arrive() {
    let (w, sandbox) = paying_world().await;
    let t = now() as i64;
    orders(
        &w,
        "odd-bank",
        &[
            ("o-no-ref", t + 600),
            ("o-twice", t + 600),
            ("o-failed-first", t + 600),
        ],
    )
    .await;
    // No transaction reference: the review and a failure, each recorded once however often
    // the return URL is replayed; a failure without a reference ends a review without one.
    let field = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    let unnamed = |response: &str, status: &str| {
        sandbox.signed_query(vec![
            field("vnp_TmnCode", SANDBOX_TMN_CODE),
            field("vnp_Amount", "28000000"),
            field("vnp_ResponseCode", response),
            field("vnp_TransactionStatus", status),
            field("vnp_TxnRef", "o-no-ref"),
        ])
    };
    for (query, first) in [(unnamed("07", "07"), "00"), (unnamed("51", "02"), "00")] {
        assert_eq!(notify(&w, &query).await, first);
        assert_eq!(notify(&w, &query).await, "02");
        assert_eq!(notify(&w, &query).await, "02");
    }
    let ledger = w.admin_get("/v1/admin/transit/ledger").await;
    let entries = |order: &str| {
        ledger["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["order_id"] == order)
            .map(|e| e["entry"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        entries("o-no-ref"),
        ["order", "payment_under_review", "payment_failed"]
    );
    assert!(held_list(&w).await.is_empty());

    // Paid by one transaction; another held, then returned: listed, then settled.
    let notice = |transaction: &str, response: &str, status: &str| {
        signed(&sandbox, "o-twice", transaction, response, status)
    };
    assert_eq!(notify(&w, &notice("P1", "00", "00")).await, "00");
    assert_eq!(notify(&w, &notice("P2", "07", "07")).await, "00");
    assert_eq!(held_list(&w).await, [r#""o-twice" "P2""#]);
    assert_eq!(notify(&w, &notice("P2", "99", "02")).await, "00");
    assert!(held_list(&w).await.is_empty());
    // A review of the paid transaction delivered late (a retry after an error): nothing held.
    assert_eq!(notify(&w, &notice("P1", "07", "07")).await, "02");
    assert!(held_list(&w).await.is_empty());

    // The same on an order not paid: its transaction's failure recorded, then the review of
    // that transaction delivered late (or its return URL replayed by the buyer) is not taken
    // as money held: the order stays failed, nothing is listed to return.
    let failed_first =
        |response: &str, status: &str| signed(&sandbox, "o-failed-first", "F1", response, status);
    assert_eq!(notify(&w, &failed_first("99", "02")).await, "00");
    assert_eq!(notify(&w, &failed_first("07", "07")).await, "02");
    assert!(held_list(&w).await.is_empty());
    let ledger = w.admin_get("/v1/admin/transit/ledger").await;
    let entries = |order: &str| {
        ledger["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["order_id"] == order)
            .map(|e| e["entry"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(entries("o-failed-first"), ["order", "payment_failed"]);
}
