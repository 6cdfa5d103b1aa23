//! Payments whose notification never came: the backend asks the provider's query API about
//! every order still waiting past its checkout, and records a signed answer as the
//! notification would have been recorded. A gateway that is down, forged or knows nothing
//! changes nothing; one instance asks a round; old orders are the operator's.

use std::sync::atomic::{AtomicUsize, Ordering};

use thudo_core::transit::backend::OrderStatus as WireStatus;
use thudo_server::payments::vnpay::{Sandbox, SandboxOutcome, SANDBOX_TMN_CODE};
use thudo_server::transit::follow_up::FollowUp;
use thudo_server::transit::sales::PAYMENT_WINDOW_SECS;
use thudo_server::transit::store::OrderStatus;

use crate::payments::{monthly, paying_world};
use crate::world::common;
use crate::world::*;

/// A gateway's query API on loopback answering from `sandbox`'s ledger; counts the questions.
async fn query_api(sandbox: Arc<Sandbox>) -> (String, Arc<AtomicUsize>) {
    let asked = Arc::new(AtomicUsize::new(0));
    let count = asked.clone();
    let app = axum::Router::new().route(
        "/merchant_webapi/api/transaction",
        axum::routing::post(move |body: axum::body::Bytes| {
            let (sandbox, count) = (sandbox.clone(), count.clone());
            async move {
                count.fetch_add(1, Ordering::SeqCst);
                axum::Json(sandbox.answer_query(&body))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (
        format!("http://{addr}/merchant_webapi/api/transaction"),
        asked,
    )
}

/// A monthly pass ordered by citizen `citizen` and left waiting on the provider; its order id.
async fn waiting_order(w: &World, citizen: &str) -> (Arc<Vault>, String) {
    let v = w.phone_device(citizen, citizen).await;
    let phone = Arc::new(Phone::open(v.clone(), None, PhoneOptions::default()).unwrap());
    let bought = w
        .transit()
        .buy_and_install(v.clone(), phone.clone(), monthly(&phone))
        .await
        .unwrap();
    assert_eq!(bought.order.status, WireStatus::AwaitingPayment);
    (v, bought.order.order_id)
}

fn status(w: &World, id: &str) -> OrderStatus {
    w.storage.order(id).unwrap().unwrap().status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_whose_notification_was_lost_is_learnt_from_the_provider() {
    let (w, sandbox) = paying_world().await;
    let (url, asked) = query_api(sandbox.clone()).await;
    // Four riders (a card holds one monthly pass: a second paid is returned).
    let (paid_v, paid) = waiting_order(&w, "001090000021").await;
    let (_, declined) = waiting_order(&w, "001090000022").await;
    let (_, held) = waiting_order(&w, "001090000023").await;
    let (_, never) = waiting_order(&w, "001090000024").await;
    let t = now() as i64;
    // The buyers went through the gateway; its notifications never reached the backend.
    sandbox.settle_unnotified(&paid, 280_000, SandboxOutcome::Pay, t);
    sandbox.settle_unnotified(&declined, 280_000, SandboxOutcome::Decline, t);
    sandbox.settle_unnotified(&held, 280_000, SandboxOutcome::Review, t);
    // While the checkouts are open, nobody is asked about (the buyer may still be paying).
    let round = w.state.follow_up_payments(&url, "a", t).await.unwrap();
    assert_eq!(round, Some(FollowUp::default()));
    assert_eq!(asked.load(Ordering::SeqCst), 0);
    // Once they are over, each is asked about once and its answer recorded.
    let after = t + PAYMENT_WINDOW_SECS + 60;
    let round = w.state.follow_up_payments(&url, "a", after).await.unwrap();
    assert_eq!(
        round,
        Some(FollowUp {
            asked: 4,
            recorded: 3,
            unchanged: 1,
            failed: 0
        })
    );
    assert_eq!(status(&w, &paid), OrderStatus::Paid);
    assert_eq!(status(&w, &declined), OrderStatus::Failed);
    assert_eq!(status(&w, &held), OrderStatus::UnderReview);
    assert_eq!(status(&w, &never), OrderStatus::AwaitingPayment);
    let pass = w.transit().collect(paid_v.clone(), &paid).await.unwrap();
    assert_eq!(pass.price_vnd, 280_000);
    // Another instance, within the round: it does not ask the same again.
    let other = w
        .state
        .follow_up_payments(&url, "b", after + 10)
        .await
        .unwrap();
    assert_eq!(other, None);
    assert_eq!(asked.load(Ordering::SeqCst), 4);
    // The next round asks what still waits: the order held for review (now paid at the
    // provider: its pass opens), the one declined (nothing new), and the one never paid (the
    // provider holds no transaction five minutes past its checkout: never asked again).
    sandbox.settle_unnotified(&held, 280_000, SandboxOutcome::Pay, t + 600);
    let next = after + 300;
    let round = w.state.follow_up_payments(&url, "b", next).await.unwrap();
    assert_eq!(
        round,
        Some(FollowUp {
            asked: 3,
            recorded: 1,
            unchanged: 2,
            failed: 0
        })
    );
    assert_eq!(status(&w, &held), OrderStatus::Paid);
    // The lost notification of the payment, delivered at last: the same transaction, already
    // recorded; the payment counts once in the day's ledger.
    let late = sandbox.notification_again(&paid, t + 900).unwrap();
    assert_eq!(crate::payments::notify(&w, &late).await, "02");
    let ledger = w
        .storage
        .ledger(&today())
        .unwrap()
        .into_iter()
        .filter(|e| e.order_id == paid && e.entry == "payment")
        .count();
    assert_eq!(ledger, 1);
    // Later rounds ask on a backoff: the declined order after 15 minutes, not the one never
    // paid.
    let before = asked.load(Ordering::SeqCst);
    let round = w
        .state
        .follow_up_payments(&url, "b", next + 600)
        .await
        .unwrap();
    assert_eq!(round, Some(FollowUp::default()));
    let round = w
        .state
        .follow_up_payments(&url, "b", next + 901)
        .await
        .unwrap();
    assert_eq!(
        round,
        Some(FollowUp {
            asked: 1,
            unchanged: 1,
            ..FollowUp::default()
        })
    );
    assert_eq!(asked.load(Ordering::SeqCst), before + 1);
    // Two days on, the order never paid is the operator's: not asked about.
    let asked_before = asked.load(Ordering::SeqCst);
    let round = w
        .state
        .follow_up_payments(&url, "b", t + 3 * 86_400)
        .await
        .unwrap();
    assert_eq!(round, Some(FollowUp::default()));
    assert_eq!(asked.load(Ordering::SeqCst), asked_before);
}

/// A round cut short at its worst moments: the database fails while a payment learnt from the
/// provider is being recorded (its pass refused), and then after the payment was recorded but
/// before the question was written down (an instance dying between the two). Nothing is
/// recorded half way: no ledger entry without its pass; the next round records the payment
/// once; a payment recorded is not asked about again, and counts once in the ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_cut_short_records_nothing_half_way_and_nothing_twice() {
    let (w, sandbox) = paying_world().await;
    let (url, asked) = query_api(sandbox.clone()).await;
    let (v, order) = waiting_order(&w, RIDER).await;
    let t = now() as i64;
    sandbox.settle_unnotified(&order, 280_000, SandboxOutcome::Pay, t);
    let after = t + PAYMENT_WINDOW_SECS + 60;
    let payments = || {
        w.storage
            .ledger(&today())
            .unwrap()
            .into_iter()
            .filter(|e| e.order_id == order && e.entry == "payment")
            .count()
    };
    let passes = || {
        common::count(
            &w.db,
            &format!("SELECT COUNT(*) FROM orders WHERE id = '{order}' AND pass_id IS NOT NULL"),
        )
    };
    // The pass cannot be written: the payment is not recorded at all.
    let (fail, mend) = common::failing_writes(&w.db, "passes");
    common::tamper(&w.db, &fail);
    let round = w.state.follow_up_payments(&url, "a", after).await.unwrap();
    assert_eq!(
        round,
        Some(FollowUp {
            asked: 1,
            failed: 1,
            ..FollowUp::default()
        })
    );
    assert_eq!(status(&w, &order), OrderStatus::AwaitingPayment);
    assert_eq!((payments(), passes()), (0, 0));
    common::tamper(&w.db, &mend);
    // Recorded, and then the question cannot be written down: the round fails there.
    let (fail, mend) = common::failing_writes(&w.db, "payment_follow_ups");
    common::tamper(&w.db, &fail);
    assert!(w
        .state
        .follow_up_payments(&url, "b", after + 300)
        .await
        .is_err());
    common::tamper(&w.db, &mend);
    assert_eq!(status(&w, &order), OrderStatus::Paid);
    assert_eq!((payments(), passes()), (1, 1));
    // The next rounds find nothing to ask: the payment stands once.
    let before = asked.load(Ordering::SeqCst);
    for at in [after + 600, after + 4_000, after + 90_000] {
        let round = w.state.follow_up_payments(&url, "c", at).await.unwrap();
        assert_eq!(round, Some(FollowUp::default()), "at {at}");
    }
    assert_eq!(asked.load(Ordering::SeqCst), before);
    assert_eq!(payments(), 1);
    let pass = w.transit().collect(v, &order).await.unwrap();
    assert_eq!(pass.price_vnd, 280_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_is_down_forged_or_hostile_changes_nothing() {
    let (w, sandbox) = paying_world().await;
    let (_, order) = waiting_order(&w, RIDER).await;
    let t = now() as i64;
    sandbox.settle_unnotified(&order, 280_000, SandboxOutcome::Pay, t);
    let after = t + PAYMENT_WINDOW_SECS + 60;
    let failed_once = Some(FollowUp {
        asked: 1,
        failed: 1,
        ..FollowUp::default()
    });
    // Down: nothing listens there.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let round = w
        .state
        .follow_up_payments(&format!("http://{closed}/q"), "a", after)
        .await
        .unwrap();
    assert_eq!(round, failed_once);
    // A failure waits its backoff (5 minutes after the first) before the order is asked again.
    let round = w
        .state
        .follow_up_payments(&format!("http://{closed}/q"), "a", after + 200)
        .await
        .unwrap();
    assert_eq!(round, Some(FollowUp::default()));
    // (Each hostile answer below is tried at once: the order's schedule set back.)
    let due_now = || w.storage.followed_up(&order, 1, Some(0)).unwrap();
    // Hostile answers: an error status, an endless body, the gateway's answer about another
    // order (replayed), a paid answer for too little, a paid answer signed with another
    // secret.
    let forger = Arc::new(Sandbox::new(SANDBOX_TMN_CODE, b"a guessed secret"));
    let gateway = sandbox.clone();
    let mode = Arc::new(AtomicUsize::new(0));
    let which = mode.clone();
    let hostile = axum::Router::new().route(
        "/q",
        axum::routing::post(move |body: axum::body::Bytes| {
            let (sandbox, which, forger) = (gateway.clone(), which.clone(), forger.clone());
            async move {
                use axum::response::IntoResponse;
                match which.load(Ordering::SeqCst) {
                    0 => (axum::http::StatusCode::BAD_GATEWAY, "busy").into_response(),
                    1 => "x".repeat(1 << 20).into_response(),
                    2 => {
                        // The gateway's signed answer about another order.
                        let answer = sandbox.answer_query(&body);
                        let mut fields = answer.as_object().unwrap().clone();
                        fields.insert("vnp_TxnRef".into(), "o-elsewhere".into());
                        fields.remove("vnp_SecureHash");
                        axum::Json(sandbox.signed_answer(fields)).into_response()
                    }
                    3 => {
                        let answer = sandbox.answer_query(&body);
                        let mut fields = answer.as_object().unwrap().clone();
                        fields.insert("vnp_Amount".into(), "100".into());
                        fields.remove("vnp_SecureHash");
                        axum::Json(sandbox.signed_answer(fields)).into_response()
                    }
                    _ => {
                        let answer = sandbox.answer_query(&body);
                        let mut fields = answer.as_object().unwrap().clone();
                        fields.remove("vnp_SecureHash");
                        axum::Json(forger.signed_answer(fields)).into_response()
                    }
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, hostile).await });
    let mut at = after + 600;
    for m in 0..5 {
        mode.store(m, Ordering::SeqCst);
        let round = w
            .state
            .follow_up_payments(&format!("http://{addr}/q"), "a", at)
            .await
            .unwrap();
        assert_eq!(round, failed_once, "hostile answer {m}");
        assert_eq!(status(&w, &order), OrderStatus::AwaitingPayment, "{m}");
        due_now();
        at += 300;
    }
    // The real gateway, at last: recorded.
    let (url, _) = query_api(sandbox).await;
    let round = w.state.follow_up_payments(&url, "a", at).await.unwrap();
    assert_eq!(round.map(|r| r.recorded), Some(1));
    assert_eq!(status(&w, &order), OrderStatus::Paid);
}

/// A payment learnt from the provider after the phone was told the order expired (the backend
/// down through the notification's retries and the late notices' grace): not a pass, which
/// the rider may have bought again, but money owed back, listed to return.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_learnt_too_late_is_listed_to_return() {
    use thudo_server::transit::store::{NewOrder, LATE_NOTICE_SECS};
    let (w, sandbox) = paying_world().await;
    let (_, id) = waiting_order(&w, RIDER).await;
    let made = w.storage.order(&id).unwrap().unwrap().order;
    let t = now() as i64;
    let old = NewOrder {
        id: "o-long-ago".into(),
        created_at: t - PAYMENT_WINDOW_SECS - LATE_NOTICE_SECS - 120,
        expires_at: t - LATE_NOTICE_SECS - 120,
        ..made
    };
    w.storage.create_order(&old, &today()).unwrap();
    sandbox.settle_unnotified(&old.id, 280_000, SandboxOutcome::Pay, t - LATE_NOTICE_SECS);
    let (url, _) = query_api(sandbox).await;
    let round = w.state.follow_up_payments(&url, "a", t).await.unwrap();
    assert_eq!(round.map(|r| r.recorded), Some(1));
    assert_eq!(status(&w, &old.id), OrderStatus::Refunded);
    let owed: Vec<_> = w
        .storage
        .ledger(&today())
        .unwrap()
        .into_iter()
        .filter(|e| e.order_id == old.id)
        .map(|e| e.entry)
        .collect();
    assert!(owed.contains(&"refund_due".to_owned()), "{owed:?}");
}
