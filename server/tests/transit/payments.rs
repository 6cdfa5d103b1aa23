//! Sales through the payment provider: a pass exists only once the provider's signed
//! notification confirms its payment; forged, tampered, replayed, duplicated, declined and
//! late notifications change nothing they should not; the ledger and the day's reconciliation
//! add up; a prepaid balance owed past the credit limit denies the card until a top-up.

use std::sync::Arc;

use serde_json::Value;
use thudo_core::transit::backend::{CredentialOrder, OrderStatus};
use thudo_core::transit::phone::{Phone, PhoneOptions};
use thudo_core::transit::{Category, Product};
use thudo_server::payments::vnpay::{Sandbox, SandboxOutcome};
use thudo_server::transit::sales::Payments;
use thudo_server::transit::store::{NewOrder, OrderPurpose, Pass, PaymentRecord};

use crate::world::*;

/// A world whose orders wait for the provider, with the gateway's side in the test's hands.
pub(crate) async fn paying_world() -> (World, Arc<Sandbox>) {
    let (sandbox, provider) =
        Sandbox::pair("https://pay.test/vpcpay.html", "https://app.test/paid");
    let w = World::start_with(Payments {
        provider: Arc::new(provider),
        sandbox: Some(sandbox.clone()),
        auto_pay: false,
        query_url: None,
    })
    .await;
    (w, sandbox)
}

/// The provider's notification as it reaches the server; returns its `RspCode`.
pub(crate) async fn notify(w: &World, query: &str) -> String {
    let r = w
        .http
        .get(w.url(&format!("/v1/payments/vnpay/notify?{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        200,
        "a provider is always answered 200"
    );
    json_of(r).await["RspCode"].as_str().unwrap().to_owned()
}

pub(crate) fn monthly(phone: &Phone) -> CredentialOrder {
    CredentialOrder {
        month: this_month(),
        ..CredentialOrder::new(Product::MonthlyAllRoutes, Category::Standard)
    }
    .signed_by(phone, now())
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monthly_pass_is_sold_for_next_month_but_not_further_ahead() {
    let (w, _sandbox) = paying_world().await;
    let v = w.phone_device("planner", RIDER).await;
    let phone = Arc::new(Phone::open(v.clone(), None, PhoneOptions::default()).unwrap());
    let ahead = |months: u32| {
        CredentialOrder {
            month: month_ahead(months),
            ..CredentialOrder::new(Product::MonthlyAllRoutes, Category::Standard)
        }
        .signed_by(&phone, now())
        .unwrap()
    };
    let next = w
        .transit()
        .buy_and_install(v.clone(), phone.clone(), ahead(1))
        .await
        .unwrap();
    assert_eq!(next.order.price_vnd, 280_000);
    for months in [2, 12, 900] {
        refused(
            w.transit()
                .buy_and_install(v.clone(), phone.clone(), ahead(months))
                .await
                .unwrap_err(),
            400,
            "bad_request",
        );
    }
}

/// Past its payment window an unpaid order still waits a while for the provider's late
/// notice ("pending"), then is over ("expired: order again"), and a payment told after that
/// goes back rather than making a second pass for a rider who ordered again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpaid_order_waits_for_a_late_notice_then_expires() {
    use thudo_server::transit::store::LATE_NOTICE_SECS;
    let (w, sandbox) = paying_world().await;
    let v = w.phone_device("slow-bank", RIDER).await;
    let phone = Arc::new(Phone::open(v.clone(), None, PhoneOptions::default()).unwrap());
    let bought = w
        .transit()
        .buy_and_install(v.clone(), phone.clone(), monthly(&phone))
        .await
        .unwrap();
    let made = w
        .storage
        .order(&bought.order.order_id)
        .unwrap()
        .unwrap()
        .order;
    let t = now() as i64;
    for (id, expires_at, status, code) in [
        ("o-in-grace", t - 60, 409, "payment_pending"),
        ("o-expired", t - LATE_NOTICE_SECS - 60, 410, "order_expired"),
    ] {
        let order = NewOrder {
            id: id.into(),
            expires_at,
            ..made.clone()
        };
        w.storage.create_order(&order, &today()).unwrap();
        refused(
            w.transit().collect(v.clone(), id).await.unwrap_err(),
            status,
            code,
        );
    }
    let query = sandbox.notification("o-expired", 280_000, SandboxOutcome::Pay, t);
    assert_eq!(notify(&w, &query).await, "00");
    refused(
        w.transit()
            .collect(v.clone(), "o-expired")
            .await
            .unwrap_err(),
        403,
        "pass_cancelled",
    );
    let query = sandbox.notification("o-in-grace", 280_000, SandboxOutcome::Pay, t);
    assert_eq!(notify(&w, &query).await, "00");
    let collected = w.transit().collect(v.clone(), "o-in-grace").await.unwrap();
    assert_eq!(collected.price_vnd, 280_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_exists_only_once_its_payment_is_confirmed_and_counts_once() {
    let (w, sandbox) = paying_world().await;
    let v = w.phone_device("buyer", RIDER).await;
    let phone = Arc::new(Phone::open(v.clone(), None, PhoneOptions::default()).unwrap());
    let bought = w
        .transit()
        .buy_and_install(v.clone(), phone.clone(), monthly(&phone))
        .await
        .unwrap();
    let order = bought.order;
    assert_eq!(order.status, OrderStatus::AwaitingPayment);
    assert_eq!(order.price_vnd, 280_000);
    assert!(bought.credential.is_none() && phone.credential().is_none());
    // The checkout is signed for the gateway, at the price in hundredths of a dong.
    assert_eq!(
        sandbox.read_checkout(&order.payment_url).unwrap(),
        (order.order_id.clone(), 280_000)
    );
    let id = order.order_id.clone();
    // Not paid yet: nothing to collect (retry soon).
    refused(
        w.transit().collect(v.clone(), &id).await.unwrap_err(),
        409,
        "payment_pending",
    );

    // Forged: another secret; the right secret over a changed amount; the gateway's
    // signature over too little; an order that does not exist.
    let forger = Sandbox::new(thudo_server::payments::vnpay::SANDBOX_TMN_CODE, b"guessed");
    assert_eq!(
        notify(
            &w,
            &forger.notification(&id, 280_000, SandboxOutcome::Pay, now() as i64)
        )
        .await,
        "97"
    );
    let genuine = sandbox.notification(&id, 280_000, SandboxOutcome::Pay, now() as i64);
    let tampered = genuine.replace("vnp_Amount=28000000", "vnp_Amount=100");
    assert_eq!(notify(&w, &tampered).await, "97");
    assert_eq!(
        notify(
            &w,
            &sandbox.notification(&id, 1, SandboxOutcome::Pay, now() as i64)
        )
        .await,
        "04"
    );
    assert_eq!(
        notify(
            &w,
            &sandbox.notification("o-none", 280_000, SandboxOutcome::Pay, now() as i64)
        )
        .await,
        "01"
    );
    assert_eq!(notify(&w, "").await, "97");
    assert_eq!(notify(&w, &genuine[..genuine.len() / 2]).await, "97");
    refused(
        w.transit().collect(v.clone(), &id).await.unwrap_err(),
        409,
        "payment_pending",
    );

    // Declined at the bank: the order failed; then paid on a second try.
    let declined = sandbox.notification(&id, 280_000, SandboxOutcome::Decline, now() as i64);
    assert_eq!(notify(&w, &declined).await, "00");
    refused(
        w.transit().collect(v.clone(), &id).await.unwrap_err(),
        402,
        "payment_failed",
    );
    assert_eq!(notify(&w, &genuine).await, "00");
    // Replayed, and a decline reported after the payment: nothing changes.
    assert_eq!(notify(&w, &genuine).await, "02");
    assert_eq!(notify(&w, &declined).await, "02");
    let late_decline = sandbox.notification(&id, 280_000, SandboxOutcome::Decline, now() as i64);
    assert_eq!(notify(&w, &late_decline).await, "02");
    assert_eq!(
        w.transit()
            .order_status(v.clone(), &id)
            .await
            .unwrap()
            .status,
        OrderStatus::Paid
    );

    // Collected twice: one credential, installed.
    let fields = w
        .transit()
        .collect_and_install(v.clone(), phone.clone(), &id)
        .await
        .unwrap();
    assert_eq!(fields.product, Product::MonthlyAllRoutes);
    let first = w.transit().collect(v.clone(), &id).await.unwrap();
    let again = w.transit().collect(v.clone(), &id).await.unwrap();
    assert_eq!(first.credential, again.credential);
    // Another account cannot see or collect it.
    let other = w.phone_device("stranger", VICTIM).await;
    refused(
        w.transit().collect(other.clone(), &id).await.unwrap_err(),
        404,
        "not_found",
    );

    // Paid a second time by mistake (another provider transaction): recorded and returned.
    let twice = sandbox.notification(&id, 280_000, SandboxOutcome::Pay, now() as i64);
    assert_eq!(notify(&w, &twice).await, "00");

    // The ledger: the order, one failure, two payments, the second owed back; the
    // reconciliation adds up to it and lists that transaction to return.
    let day = today();
    let ledger = w
        .admin_get(&format!("/v1/admin/transit/ledger?day={day}"))
        .await;
    let entries: Vec<(&str, u64)> = ledger["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["order_id"] == id.as_str())
        .map(|e| {
            (
                e["entry"].as_str().unwrap(),
                e["amount_vnd"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("order", 280_000),
            ("payment_failed", 0),
            ("payment", 280_000),
            ("payment", 280_000),
            ("refund_due", 280_000)
        ]
    );
    let rec = w
        .admin_get(&format!("/v1/admin/transit/reconciliation?day={day}"))
        .await;
    assert_adds_up(&ledger, &rec);
    let line = rec["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["product"] == "monthly_all_routes")
        .unwrap();
    assert_eq!(
        (
            &line["sales"],
            &line["sales_vnd"],
            &line["refunds_vnd"],
            &line["refunds_due_vnd"]
        ),
        (
            &Value::from(2),
            &Value::from(560_000),
            &Value::from(0),
            &Value::from(280_000)
        )
    );
    assert_eq!(rec["unpaid"], 1);
    let owed = rec["to_return"].as_array().unwrap();
    assert_eq!(owed.len(), 1, "{rec}");
    assert_eq!(
        (&owed[0]["order_id"], &owed[0]["amount_vnd"]),
        (&Value::from(id.as_str()), &Value::from(280_000))
    );

    // Refunded by the operator: the pass is cancelled, its renewal refused.
    let (status, body) = w
        .admin_post(
            &format!("/v1/admin/transit/orders/{id}/refund"),
            Value::Null,
        )
        .await;
    assert_eq!((status, &body["status"]), (200, &Value::from("refunded")));
    refused(
        w.transit()
            .renew(v.clone(), phone.clone(), fields.card_id)
            .await
            .unwrap_err(),
        403,
        "pass_cancelled",
    );
    refused(
        w.transit().collect(v.clone(), &id).await.unwrap_err(),
        403,
        "pass_cancelled",
    );
    let rec = w
        .admin_get(&format!("/v1/admin/transit/reconciliation?day={day}"))
        .await;
    let ledger = w
        .admin_get(&format!("/v1/admin/transit/ledger?day={day}"))
        .await;
    assert_adds_up(&ledger, &rec);
    assert_eq!(
        (&rec["refunds_vnd"], &rec["refunds_due_vnd"]),
        (&Value::from(280_000), &Value::from(280_000))
    );
}

/// The reconciliation's sums are the ledger's.
pub(crate) fn assert_adds_up(ledger: &Value, rec: &Value) {
    let sum = |entry: &str| -> u64 {
        ledger["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["entry"] == entry)
            .map(|e| e["amount_vnd"].as_u64().unwrap())
            .sum()
    };
    let lines = |field: &str| -> u64 {
        rec["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l[field].as_u64().unwrap())
            .sum()
    };
    assert_eq!(rec["sales_vnd"].as_u64().unwrap(), sum("payment"));
    assert_eq!(lines("sales_vnd"), sum("payment"));
    assert_eq!(rec["refunds_vnd"].as_u64().unwrap(), sum("refund"));
    assert_eq!(lines("refunds_vnd"), sum("refund"));
    assert_eq!(rec["refunds_due_vnd"].as_u64().unwrap(), sum("refund_due"));
    assert_eq!(lines("refunds_due_vnd"), sum("refund_due"));
    assert_eq!(rec["ordered_vnd"].as_u64().unwrap(), sum("order"));
}

/// A buyer told a payment failed orders again and pays, then also pays on the first order's
/// page: the card gets one pass, and the second payment is listed to return.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_paid_on_two_orders_is_made_once_and_the_other_payment_listed_to_return() {
    let (w, sandbox) = paying_world().await;
    let v = w.phone_device("buyer", RIDER).await;
    let phone = Phone::open(v.clone(), None, PhoneOptions::default()).unwrap();
    let first = w
        .transit()
        .order(v.clone(), &monthly(&phone))
        .await
        .unwrap();
    let declined = sandbox.notification(
        &first.order_id,
        280_000,
        SandboxOutcome::Decline,
        now() as i64,
    );
    assert_eq!(notify(&w, &declined).await, "00");
    refused(
        w.transit()
            .collect(v.clone(), &first.order_id)
            .await
            .unwrap_err(),
        402,
        "payment_failed",
    );
    let second = w
        .transit()
        .order(v.clone(), &monthly(&phone))
        .await
        .unwrap();
    for order in [&second, &first] {
        let paid =
            sandbox.notification(&order.order_id, 280_000, SandboxOutcome::Pay, now() as i64);
        assert_eq!(notify(&w, &paid).await, "00");
    }
    assert!(w
        .transit()
        .collect(v.clone(), &second.order_id)
        .await
        .is_ok());
    let status = |id: String| {
        let (w, v) = (&w, v.clone());
        async move { w.transit().order_status(v, &id).await.unwrap().status }
    };
    assert_eq!(status(second.order_id.clone()).await, OrderStatus::Paid);
    assert_eq!(status(first.order_id.clone()).await, OrderStatus::Refunded);
    let rec = w
        .admin_get(&format!("/v1/admin/transit/reconciliation?day={}", today()))
        .await;
    let owed: Vec<&Value> = rec["to_return"].as_array().unwrap().iter().collect();
    assert_eq!(owed.len(), 1, "{rec}");
    assert_eq!(owed[0]["order_id"], first.order_id.as_str());
    assert_eq!(rec["refunds_due_vnd"], 280_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_delivered_twice_at_once_makes_one_pass_and_a_late_one_is_refunded() {
    let (w, sandbox) = paying_world().await;
    let v = w.phone_device("buyer", RIDER).await;
    let phone = Phone::open(v.clone(), None, PhoneOptions::default()).unwrap();
    let order = w
        .transit()
        .order(v.clone(), &monthly(&phone))
        .await
        .unwrap();
    let paid = sandbox.notification(&order.order_id, 280_000, SandboxOutcome::Pay, now() as i64);
    let (a, b) = tokio::join!(notify(&w, &paid), notify(&w, &paid));
    let mut answers = [a, b];
    answers.sort();
    assert_eq!(answers, ["00".to_owned(), "02".to_owned()]);
    let payments = w
        .storage
        .ledger(&today())
        .unwrap()
        .into_iter()
        .filter(|e| e.order_id == order.order_id && e.entry == "payment")
        .count();
    assert_eq!(payments, 1);

    // A payment whose notification arrives after the pass it bought ended (the provider's
    // retries took that long): recorded, and its refund with it; no pass.
    let t = now() as i64;
    let late = NewOrder {
        id: "o-late-day-pass".into(),
        account_id: "a-late".into(),
        device_id: "d-late".into(),
        purpose: OrderPurpose::Pass,
        card_id: 9_704_000_000_777,
        pass: Some(Pass {
            card_id: 9_704_000_000_777,
            product: Product::DayPass,
            category: Category::Standard,
            route: 0,
            valid_from: t - 2 * 86_400,
            valid_until: t - 86_400,
        }),
        device_key: None,
        dependant: false,
        amount_vnd: 30_000,
        provider: "vnpay".into(),
        created_at: t - 2 * 86_400,
        expires_at: t - 2 * 86_400 + 900,
    };
    w.storage.create_order(&late, &today()).unwrap();
    let query = sandbox.notification(&late.id, 30_000, SandboxOutcome::Pay, t);
    assert_eq!(notify(&w, &query).await, "00");
    let stored = w.storage.order(&late.id).unwrap().unwrap();
    assert_eq!(
        stored.status,
        thudo_server::transit::store::OrderStatus::Refunded
    );
    let n = w
        .state
        .storage()
        .record_payment(
            &thudo_server::payments::Notification {
                order_id: late.id.clone(),
                amount_vnd: 30_000,
                result: thudo_server::payments::PaymentResult::Paid,
                provider_ref: String::new(),
            },
            20_000,
            t,
            &today(),
        )
        .unwrap();
    assert_eq!(n, PaymentRecord::AlreadyRecorded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_owing_more_than_its_credit_is_denied_until_a_top_up() {
    let (w, sandbox) = paying_world().await;
    let (v, phone) = w.rider("payg", RIDER, Product::PayAsYouGo).await;
    let card = phone.credential().unwrap().card_id;
    let (bus_vault, mut bus, _) = w.bus("bus-32", 32).await;
    let at = tomorrow_morning();
    for ride in 0..4u64 {
        let t = at + ride * 600;
        let verdict = bus.validate(&phone.current_qr(t).unwrap().text, t).unwrap();
        assert!(verdict.accepted, "{verdict:?}");
    }
    let receipt = w.upload_bus(&bus_vault, &mut bus).await;
    assert!(receipt.charged_vnd > 20_000, "{receipt:?}");
    let balance = w.transit().balance(v.clone(), None).await.unwrap();
    assert_eq!(balance.balance_vnd, -(receipt.charged_vnd as i64));
    assert!(balance.denied);
    // The next list names the card: validators refuse it.
    let feed = w.transit().validator_feed(bus_vault.clone()).await.unwrap();
    bus.update_deny_list(&thudo_core::hex::decode(&feed.deny_list).unwrap())
        .unwrap();
    let t = at + 3_600;
    let verdict = bus.validate(&phone.current_qr(t).unwrap().text, t).unwrap();
    assert_eq!(
        verdict.reason,
        thudo_core::transit::validator::Reason::Revoked
    );
    // It buys nothing but credit; out-of-range top-ups are refused.
    let phone_key = Phone::open(v.clone(), None, PhoneOptions::default()).unwrap();
    refused(
        w.transit()
            .order(v.clone(), &monthly(&phone_key))
            .await
            .unwrap_err(),
        403,
        "balance_owed",
    );
    for bad in [0, 9_999, 2_000_001] {
        refused(
            w.transit().top_up(v.clone(), bad, None).await.unwrap_err(),
            400,
            "bad_request",
        );
    }
    let top_up = w.transit().top_up(v.clone(), 50_000, None).await.unwrap();
    assert_eq!(top_up.status, OrderStatus::AwaitingPayment);
    // A top-up has no credential: there is none to find.
    refused(
        w.transit()
            .collect(v.clone(), &top_up.order_id)
            .await
            .unwrap_err(),
        404,
        "not_found",
    );
    assert!(
        w.transit().balance(v.clone(), None).await.unwrap().denied,
        "not paid yet"
    );
    let paid = sandbox.notification(&top_up.order_id, 50_000, SandboxOutcome::Pay, now() as i64);
    assert_eq!(notify(&w, &paid).await, "00");
    let balance = w.transit().balance(v.clone(), None).await.unwrap();
    assert_eq!(
        (balance.balance_vnd, balance.denied),
        (50_000 - receipt.charged_vnd as i64, false)
    );
    let lifted = w.transit().validator_feed(bus_vault.clone()).await.unwrap();
    assert_ne!(lifted.deny_list, feed.deny_list);
    bus.update_deny_list(&thudo_core::hex::decode(&lifted.deny_list).unwrap())
        .unwrap();
    let t = at + 7_200;
    assert!(
        bus.validate(&phone.current_qr(t).unwrap().text, t)
            .unwrap()
            .accepted
    );
    assert_eq!(card, balance.card_id);
    let rec = w
        .admin_get(&format!("/v1/admin/transit/reconciliation?day={}", today()))
        .await;
    let top_ups = rec["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["product"] == "top_up")
        .unwrap();
    assert_eq!(top_ups["sales_vnd"], 50_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_retried_with_its_key_is_one_order_even_at_once() {
    let (w, _) = paying_world().await;
    let v = w.phone_device("buyer", RIDER).await;
    let phone = Phone::open(v.clone(), None, PhoneOptions::default()).unwrap();
    let token = thudo_core::sync::client::BackendClient::registration(&v)
        .unwrap()
        .unwrap()
        .token;
    let body = serde_json::to_vec(&monthly(&phone)).unwrap();
    let send_body = |key: &'static str, body: Vec<u8>| {
        let req = w
            .http
            .post(w.url("/v1/transit/orders"))
            .bearer_auth(&token)
            .header("idempotency-key", key)
            .header("content-type", "application/json")
            .body(body);
        async move { json_of(req.send().await.unwrap()).await }
    };
    let send = |key: &'static str| send_body(key, body.clone());
    let (a, b) = tokio::join!(send("order-1"), send("order-1"));
    assert_eq!(a["order_id"], b["order_id"]);
    let again = send("order-1").await;
    assert_eq!(again["order_id"], a["order_id"]);
    let other = send("order-2").await;
    assert_ne!(other["order_id"], a["order_id"]);
    // The key reused for another purchase (next month's pass): refused, never answered with
    // the first order, which the buyer would pay for thinking it the second.
    let next_month = CredentialOrder {
        month: month_ahead(1),
        ..CredentialOrder::new(Product::MonthlyAllRoutes, Category::Standard)
    }
    .signed_by(&phone, now())
    .unwrap();
    let reused = send_body("order-1", serde_json::to_vec(&next_month).unwrap()).await;
    assert_eq!(reused["error"], "bad_request", "{reused}");
    assert!(reused["message"]
        .as_str()
        .unwrap()
        .contains("Idempotency-Key"));
    // Two different purchases under one new key at once: one order, and the other refused,
    // never answered with it, whichever stores first.
    let next_body = serde_json::to_vec(&next_month).unwrap();
    let (x, y) = tokio::join!(send("order-3"), send_body("order-3", next_body));
    let made = [&x, &y]
        .iter()
        .filter(|r| r.get("order_id").is_some())
        .count();
    let refused = [&x, &y]
        .iter()
        .filter(|r| r["error"] == "bad_request")
        .count();
    assert_eq!((made, refused), (1, 1), "{x} {y}");
    let orders = w
        .storage
        .ledger(&today())
        .unwrap()
        .into_iter()
        .filter(|e| e.entry == "order")
        .count();
    assert_eq!(orders, 3, "three keys, three orders");
}

/// Next month's pass bought while this month's rides: this month's stays shown, next month's
/// waits; as its start nears its credential is renewed (bought days ahead, the first one has
/// lapsed by then), and it is put in place when it starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_months_pass_bought_ahead_waits_and_is_renewed_before_it_starts() {
    use thudo_core::transit::backend::RENEW_BEFORE_SECS;
    let w = World::start().await;
    let v = w.phone_device("planner", RIDER).await;
    let phone = Arc::new(Phone::open(v.clone(), None, PhoneOptions::default()).unwrap());
    let order = |month: String| {
        CredentialOrder {
            month,
            ..CredentialOrder::new(Product::MonthlyAllRoutes, Category::Standard)
        }
        .signed_by(&phone, now())
        .unwrap()
    };
    let this = w
        .transit()
        .buy_and_install(v.clone(), phone.clone(), order(this_month()))
        .await
        .unwrap()
        .credential
        .unwrap();
    let next = w
        .transit()
        .buy_and_install(v.clone(), phone.clone(), order(month_ahead(1)))
        .await
        .unwrap();
    let bought = next.credential.unwrap();
    assert_eq!(
        phone.credential().unwrap(),
        this,
        "this month's still rides"
    );
    assert_eq!(phone.upcoming_credentials(), std::slice::from_ref(&bought));
    assert!(phone.current_qr(now()).is_ok());

    // A day before next month starts (on the device's clock), both are renewed: this month's
    // ends within the window, next month's starts within it, its first credential lapsed
    // before then (unless bought in the month's last days).
    let starts = u64::from(bought.pass_valid_from);
    let day_before = starts - 86_400;
    let renewals = w
        .transit()
        .renew_due(v.clone(), phone.clone(), day_before, RENEW_BEFORE_SECS)
        .await;
    let cards: Vec<u64> = renewals.iter().map(|r| r.card_id).collect();
    let lapsed = u64::from(bought.not_after) < day_before + RENEW_BEFORE_SECS;
    assert_eq!(cards.len(), 1 + usize::from(lapsed), "{renewals:?}");
    assert!(cards.iter().all(|c| *c == this.card_id));
    assert!(renewals.iter().all(|r| r.outcome.is_ok()), "{renewals:?}");
    let waiting = phone.upcoming_credentials();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].pass_valid_from, bought.pass_valid_from);
    assert_eq!(
        phone.credential().unwrap().pass_valid_from,
        this.pass_valid_from
    );
    // Once it starts, it is the one shown.
    phone.start_due_passes(starts + 1).unwrap();
    assert_eq!(
        phone.credential().unwrap().pass_valid_from,
        bought.pass_valid_from
    );
    assert!(phone.upcoming_credentials().is_empty());
}

/// A guardian pays for a dependant's pass, and the operator withdraws the guardianship before
/// it is collected: the pass can never be collected, so its payment is not kept with nothing
/// to show for it. The order is refunded, the payment listed to return in the provider's
/// portal, and the phone told why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_pass_that_can_no_longer_be_collected_is_returned() {
    const CHILD: &str = "001022098765";
    let (w, sandbox) = paying_world().await;
    let v = w.phone_device("guardian", RIDER).await;
    let phone = Phone::open(v.clone(), None, PhoneOptions::default()).unwrap();
    let path = format!("/v1/admin/citizens/{RIDER}/dependants");
    let grant = serde_json::json!({"dependant_citizen_id": CHILD, "evidence_ref": "SHK-0142"});
    assert_eq!(w.admin_post(&path, grant).await.0, 200);
    let childs = CredentialOrder {
        dependant: Some(CHILD.into()),
        month: this_month(),
        ..CredentialOrder::new(Product::MonthlyAllRoutes, Category::Standard)
    }
    .signed_by(&phone, now())
    .unwrap();
    let order = w.transit().order(v.clone(), &childs).await.unwrap();
    assert_eq!(order.status, OrderStatus::AwaitingPayment);
    let id = order.order_id.clone();
    // Custody changes before the payment arrives.
    let ended = format!("{path}/{CHILD}");
    let url = w.url(&format!("{ended}?evidence_ref=QD-2026-77"));
    let status = w
        .http
        .delete(url)
        .bearer_auth(w.operator_for(&ended))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(status, 200);
    let paid = sandbox.notification(&id, order.price_vnd, SandboxOutcome::Pay, now() as i64);
    assert_eq!(notify(&w, &paid).await, "00");
    match w.transit().collect(v.clone(), &id).await.unwrap_err() {
        BackendError::Refused {
            status,
            code,
            message,
            ..
        } => {
            assert_eq!((status, code.as_str()), (403, "not_guardian"));
            assert!(message.contains("returned"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // Refunded, and listed to return; asked again, it says so.
    refused(
        w.transit().collect(v.clone(), &id).await.unwrap_err(),
        403,
        "pass_cancelled",
    );
    let rec = w
        .admin_get(&format!("/v1/admin/transit/reconciliation?day={}", today()))
        .await;
    let to_return: Vec<&str> = rec["to_return"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["order_id"].as_str())
        .collect();
    assert_eq!(to_return, [id.as_str()]);
    assert_eq!(rec["refunds_due_vnd"], Value::from(order.price_vnd));
}

/// Only the phone that ordered a pass can collect it (the credential binds its key). That phone
/// revoked (lost, stolen) with its pass paid and not collected: the order is refunded and
/// listed to return, in the revocation's transaction. A payment that arrives after the
/// revocation is listed to return too, never kept with nothing to show for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_phones_uncollected_passes_are_returned() {
    let (w, sandbox) = paying_world().await;
    let v = w.phone_device("lost phone", RIDER).await;
    let phone = Phone::open(v.clone(), None, PhoneOptions::default()).unwrap();
    let paid_first = w
        .transit()
        .order(v.clone(), &monthly(&phone))
        .await
        .unwrap();
    let query = sandbox.notification(
        &paid_first.order_id,
        paid_first.price_vnd,
        SandboxOutcome::Pay,
        now() as i64,
    );
    assert_eq!(notify(&w, &query).await, "00");
    // A second pass (one route) still waiting on its payment.
    let single = CredentialOrder {
        route: 32,
        month: this_month(),
        ..CredentialOrder::new(Product::MonthlySingleRoute, Category::Standard)
    }
    .signed_by(&phone, now())
    .unwrap();
    let paid_later = w.transit().order(v.clone(), &single).await.unwrap();
    let device = thudo_core::sync::client::BackendClient::registration(&v)
        .unwrap()
        .unwrap()
        .device_id;
    let (status, answer) = w
        .admin_post(
            &format!("/v1/admin/devices/{device}/revoke"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let query = sandbox.notification(
        &paid_later.order_id,
        paid_later.price_vnd,
        SandboxOutcome::Pay,
        now() as i64,
    );
    assert_eq!(notify(&w, &query).await, "00");
    // Delivered twice: recorded once.
    assert_eq!(notify(&w, &query).await, "02");
    let rec = w
        .admin_get(&format!("/v1/admin/transit/reconciliation?day={}", today()))
        .await;
    let mut to_return: Vec<&str> = rec["to_return"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["order_id"].as_str())
        .collect();
    to_return.sort();
    let mut expected = [paid_first.order_id.as_str(), paid_later.order_id.as_str()];
    expected.sort();
    assert_eq!(to_return, expected);
    assert_eq!(
        rec["refunds_due_vnd"],
        Value::from(paid_first.price_vnd + paid_later.price_vnd)
    );
}

/// A pass refunded while its credential still rides (validators offline hear of nothing for up
/// to 72 h): each ride after the refund is charged as pay-as-you-go, on a bus and through the
/// metro's gates, while a ride before it stays the pass's, however late it is uploaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rides_after_a_refund_are_charged_as_pay_as_you_go() {
    let w = World::start().await;
    let v = w.phone_device("rider", RIDER).await;
    let phone = Phone::open(v.clone(), None, PhoneOptions::default()).unwrap();
    let placed = w
        .transit()
        .order(v.clone(), &monthly(&phone))
        .await
        .unwrap();
    let bought = w
        .transit()
        .collect(v.clone(), &placed.order_id)
        .await
        .unwrap();
    phone
        .install_credential(&thudo_core::hex::decode(&bought.credential).unwrap())
        .unwrap();
    let (bus_vault, mut bus, _) = w.bus("bus", 32).await;
    let (in_vault, cat_linh_in) = w.gate("cat-linh-in", 201, GateDirection::Entry).await;
    let (out_vault, thuong_dinh_out) = w.gate("thuong-dinh-out", 205, GateDirection::Exit).await;
    let ride = |bus: &mut Validator, at: u64| {
        let verdict = bus
            .validate(&phone.current_qr(at).unwrap().text, at)
            .unwrap();
        assert!(verdict.accepted, "at {at}: {:?}", verdict.reason);
    };
    // A ride on the pass, then the refund (a second later: the ride came before it).
    let before = now();
    assert!(
        u64::from(bought.pass_valid_until) > before + 400,
        "the month ends within minutes: run again after it"
    );
    ride(&mut bus, before);
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let (status, body) = w
        .admin_post(
            &format!("/v1/admin/transit/orders/{}/refund", placed.order_id),
            Value::Null,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // The credential still rides offline: two buses and a metro journey after the refund.
    let after = before + 130;
    let last = after + 260;
    ride(&mut bus, after);
    ride(&mut bus, after + 150);
    let exported = bus.export_taps().unwrap();
    let buses = w
        .transit()
        .upload_taps(bus_vault.clone(), exported.clone())
        .await
        .unwrap();
    assert_eq!(
        buses.taps.iter().map(|t| t.charged_vnd).collect::<Vec<_>>(),
        [0, 8_000, 8_000],
        "the ride before the refund is the pass's, the two after are fares"
    );
    // Delivered again (the first answer lost): the same charges reported, none made twice.
    let again = w
        .transit()
        .upload_taps(bus_vault.clone(), exported)
        .await
        .unwrap();
    assert_eq!((again.duplicates, again.charged_vnd), (3, 0));
    assert_eq!(again.stored_charged_vnd, 16_000);
    assert_eq!(tap(&cat_linh_in, &phone, after + 200), Reason::Ok);
    w.upload_gate(&in_vault, &cat_linh_in).await;
    w.transit()
        .refresh_entries(out_vault.clone(), thuong_dinh_out.clone(), last)
        .await
        .unwrap();
    assert_eq!(tap(&thuong_dinh_out, &phone, last), Reason::Ok);
    let exit = w.upload_gate(&out_vault, &thuong_dinh_out).await;
    assert_eq!(exit.charged_vnd, 10_000, "Cát Linh to Thượng Đình");
}

/// The gateway is told the buyer's address for its fraud checks: the one a trusted balancer
/// saw, never one the client wrote itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_is_told_the_buyers_address_as_the_balancer_saw_it() {
    let address_sent = |balanced: bool| async move {
        let (sandbox, provider) =
            Sandbox::pair("https://pay.test/vpcpay.html", "https://app.test/paid");
        let payments = Payments {
            provider: Arc::new(provider),
            sandbox: Some(sandbox),
            auto_pay: false,
            query_url: None,
        };
        let balancers = if balanced {
            vec!["127.0.0.1".parse().unwrap()]
        } else {
            Vec::new()
        };
        let w = World::start_configured(|config| ServerConfig {
            payments,
            limits: thudo_server::gate::RateLimits::off().behind(balancers),
            ..config
        })
        .await;
        let v = w.phone_device("buyer", RIDER).await;
        let phone = Phone::open(v.clone(), None, PhoneOptions::default()).unwrap();
        let r = w
            .device_post(&v, "/v1/transit/orders", &monthly(&phone))
            .header("x-forwarded-for", "198.51.100.9, 203.0.113.7")
            .send()
            .await
            .unwrap();
        let body = json_of(r).await;
        let url = body["payment_url"].as_str().unwrap().to_owned();
        url.split(['?', '&'])
            .find_map(|pair| pair.strip_prefix("vnp_IpAddr="))
            .unwrap()
            .to_owned()
    };
    // Behind a balancer: the nearest address it did not write is the buyer's.
    assert_eq!(address_sent(true).await, "203.0.113.7");
    // Without one, the header is the client's own word and is not believed (the peer's
    // address is sent: on this loopback test, the same as for an address not known).
    assert_eq!(address_sent(false).await, "127.0.0.1");
}
