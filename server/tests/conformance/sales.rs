//! Sales on every engine: an order paid once whatever the provider resends, top-ups and the
//! credit limit, refunds, payments told late, the ledger adding up, and an account's orders
//! counted against each other across instances.

use super::*;

pub(super) fn sales_are_paid_once_and_add_up<E: Engine>(s: &SqlStorage<E>) {
    use thudo_server::payments::{Notification, PaymentResult};
    use thudo_server::transit::store::{
        NewOrder, OrderAdmission, OrderPurpose, OrderStatus, Pass, PaymentRecord,
    };
    let d = device(s, CITIZEN, 1);
    let now = chrono::Utc::now().timestamp();
    let day = "2026-12-05";
    let pass = Pass {
        card_id: d.card_id,
        product: Product::MonthlyAllRoutes,
        category: Category::Standard,
        route: 0,
        valid_from: now - 60,
        valid_until: now + 86_400,
    };
    let order = |id: &str, purpose: OrderPurpose, amount: u64| NewOrder {
        id: id.into(),
        account_id: d.account_id.clone(),
        device_id: d.id.clone(),
        purpose,
        card_id: d.card_id,
        pass: (purpose == OrderPurpose::Pass).then(|| pass.clone()),
        device_key: Some(vec![4; 65]),
        dependant: false,
        amount_vnd: amount,
        provider: "vnpay".into(),
        created_at: now,
        expires_at: now + 900,
    };
    let paid = |id: &str, amount: u64, reference: &str| Notification {
        order_id: id.into(),
        amount_vnd: amount,
        result: PaymentResult::Paid,
        provider_ref: reference.into(),
    };
    let pass_order = order("o-pass", OrderPurpose::Pass, 280_000);
    assert_eq!(
        s.create_order(&pass_order, day).unwrap(),
        OrderAdmission::Admitted(OrderStatus::AwaitingPayment)
    );
    assert!(
        s.pass_for(&pass).unwrap().is_none(),
        "no pass before payment"
    );
    assert_eq!(
        s.record_payment(&paid("o-pass", 1, "t1"), 20_000, now, day)
            .unwrap(),
        PaymentRecord::WrongAmount
    );
    assert_eq!(
        s.record_payment(&paid("o-none", 1, "t1"), 20_000, now, day)
            .unwrap(),
        PaymentRecord::UnknownOrder
    );
    assert!(matches!(
        s.record_payment(&paid("o-pass", 280_000, "t1"), 20_000, now, day)
            .unwrap(),
        PaymentRecord::Recorded {
            status: OrderStatus::Paid,
            ..
        }
    ));
    assert_eq!(
        s.record_payment(&paid("o-pass", 280_000, "t1"), 20_000, now, day)
            .unwrap(),
        PaymentRecord::AlreadyRecorded
    );
    assert!(s.pass_for(&pass).unwrap().is_some());
    let stored = s.order("o-pass").unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.order),
        (OrderStatus::Paid, pass_order)
    );
    assert_eq!(
        s.keep_credential("o-pass", b"first").unwrap().as_deref(),
        Some(&b"first"[..])
    );
    assert_eq!(
        s.keep_credential("o-pass", b"second").unwrap().as_deref(),
        Some(&b"first"[..])
    );
    // A top-up credits the card; fares and the credit limit deny and lift it.
    let top_up = order("o-top", OrderPurpose::TopUp, 10_000);
    s.create_order(&top_up, day).unwrap();
    assert_eq!(
        s.record_payment(&paid("o-top", 10_000, "t2"), 20_000, now, day)
            .unwrap(),
        PaymentRecord::Recorded {
            status: OrderStatus::Paid
        }
    );
    assert_eq!(s.balance(d.card_id).unwrap(), 10_000);
    let bus = enrol(s, 1, Some(32), None);
    let fares = FarePolicy::default();
    let at = chrono::Utc::now().timestamp() as u64 - 600;
    let taps: Vec<CheckedTap> = (1..=4)
        .map(|i| tap(i, at + i * 60, d.card_id, i as u32, None))
        .collect();
    let charged = s.record_taps(&bus, &taps, &fares, None).unwrap();
    assert_eq!(charged.paid_cards, [d.card_id]);
    assert_eq!(
        s.balance(d.card_id).unwrap(),
        10_000 - charged.charged_vnd as i64
    );
    let version = s.deny_list(now).unwrap().0;
    let limit = charged.charged_vnd - 10_000 - 1;
    assert!(
        s.enforce_balances(&[d.card_id], limit, now)
            .unwrap()
            .unwrap()
            > version
    );
    assert!(s.balance_denied(d.card_id).unwrap());
    assert!(s.deny_list(now).unwrap().1.contains(&d.card_id));
    assert_eq!(s.enforce_balances(&[d.card_id], limit, now).unwrap(), None);
    assert!(s
        .enforce_balances(&[d.card_id], limit + 1, now)
        .unwrap()
        .is_some());
    assert!(!s.deny_list(now).unwrap().1.contains(&d.card_id));
    // Refunded: the pass is cancelled; the reconciliation adds up to the ledger.
    assert_eq!(
        s.refund("o-pass", now, day).unwrap(),
        Some(OrderStatus::Refunded)
    );
    assert_eq!(s.refund("o-none", now, day).unwrap(), None);
    // A top-up is not refunded here: its credit is spent, and the card would owe what went back.
    assert_eq!(s.refund("o-top", now, day).unwrap(), None);
    assert_eq!(s.order("o-top").unwrap().unwrap().status, OrderStatus::Paid);
    assert!(s.pass_for(&pass).unwrap().unwrap().cancelled_at.is_some());
    let ledger = s.ledger(day).unwrap();
    let entries: Vec<&str> = ledger.iter().map(|e| e.entry.as_str()).collect();
    assert_eq!(entries, ["order", "payment", "order", "payment", "refund"]);
    let rec = s.reconciliation(day).unwrap();
    assert_eq!(
        (rec.sales_vnd, rec.refunds_vnd, rec.ordered_vnd),
        (290_000, 280_000, 290_000)
    );
    assert_eq!(rec.lines.len(), 2);
    // On another day's ledger: a pass paid after a failure (a second try at the bank) opens;
    // one paid past its window and the late notices' grace goes back (the phone was told
    // "expired: order again"); one paid within the grace opens.
    let later = "2026-12-06";
    let failed = order("o-failed", OrderPurpose::Pass, 280_000);
    s.create_order(&failed, later).unwrap();
    let mut failure = paid("o-failed", 280_000, "");
    failure.result = PaymentResult::Failed { code: "24".into() };
    s.record_payment(&failure, 20_000, now, later).unwrap();
    let mut expired = order("o-expired", OrderPurpose::Pass, 280_000);
    expired.expires_at = now - thudo_server::transit::store::LATE_NOTICE_SECS - 1;
    s.create_order(&expired, later).unwrap();
    let mut in_grace = order("o-in-grace", OrderPurpose::Pass, 280_000);
    in_grace.expires_at = now - 60;
    // The next day's pass: another than the one the failed order opens.
    in_grace.pass = Some(Pass {
        valid_from: pass.valid_from + 86_400,
        valid_until: pass.valid_until + 86_400,
        ..pass.clone()
    });
    s.create_order(&in_grace, later).unwrap();
    // The failed order's pass ordered again and paid on both orders' pages: the second payment
    // goes back, whichever order it names.
    s.create_order(&order("o-again", OrderPurpose::Pass, 280_000), later)
        .unwrap();
    for (id, status) in [
        ("o-failed", OrderStatus::Paid),
        ("o-expired", OrderStatus::Refunded),
        ("o-in-grace", OrderStatus::Paid),
        ("o-again", OrderStatus::Refunded),
    ] {
        assert_eq!(
            s.record_payment(
                &paid(id, 280_000, &format!("late-{id}")),
                20_000,
                now,
                later
            )
            .unwrap(),
            PaymentRecord::Recorded { status },
            "{id}"
        );
        assert_eq!(s.order(id).unwrap().unwrap().status, status, "{id}");
    }
    let rec = s.reconciliation(later).unwrap();
    assert_eq!(
        (rec.sales_vnd, rec.refunds_vnd, rec.refunds_due_vnd),
        (4 * 280_000, 0, 2 * 280_000)
    );
    // What was not kept is listed to return in the provider's portal, by transaction.
    let to_return: Vec<_> = rec
        .to_return
        .iter()
        .map(|e| (e.order_id.as_str(), e.provider_ref.as_deref()))
        .collect();
    assert_eq!(
        to_return,
        [
            ("o-expired", Some("late-o-expired")),
            ("o-again", Some("late-o-again"))
        ]
    );
    // A transaction first reported pending (a failure under its reference), then paid: the
    // payment is recorded, not taken for the same notification again.
    let mut pending = order("o-pending", OrderPurpose::Pass, 280_000);
    pending.pass = Some(Pass {
        valid_from: pass.valid_from + 2 * 86_400,
        valid_until: pass.valid_until + 2 * 86_400,
        ..pass.clone()
    });
    s.create_order(&pending, later).unwrap();
    let mut first = paid("o-pending", 280_000, "tx-7");
    first.result = PaymentResult::Failed { code: "00".into() };
    s.record_payment(&first, 20_000, now, later).unwrap();
    for answer in [
        PaymentRecord::Recorded {
            status: OrderStatus::Paid,
        },
        PaymentRecord::AlreadyRecorded,
    ] {
        assert_eq!(
            s.record_payment(&paid("o-pending", 280_000, "tx-7"), 20_000, now, later)
                .unwrap(),
            answer
        );
    }
    // Refunded: no credential is handed out for it any more.
    assert_eq!(s.keep_credential("o-pass", b"third").unwrap(), None);
    // The operator denies the card while it owes: lifting the balance denial (a top-up) leaves
    // the operator's.
    assert!(s
        .enforce_balances(&[d.card_id], limit, now)
        .unwrap()
        .is_some());
    assert!(s.deny(&[d.card_id], &[], now).unwrap() > 0);
    assert!(!s.balance_denied(d.card_id).unwrap());
    s.enforce_balances(&[d.card_id], limit + 1, now).unwrap();
    assert!(s.deny_list(now).unwrap().1.contains(&d.card_id));
}

/// Orders of one account made at once (on several instances: threads here, each its own
/// transaction) are counted against each other: never more than the hour's limit admitted.
pub(super) fn an_accounts_racing_orders_stay_within_its_limit<E: Engine>(s: &SqlStorage<E>) {
    use thudo_server::transit::store::{
        NewOrder, OrderAdmission, OrderPurpose, MAX_ORDERS_PER_HOUR,
    };
    let d = device(s, CITIZEN, 1);
    let now = chrono::Utc::now().timestamp();
    let admitted = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for thread in 0..4 {
            let (d, admitted) = (&d, &admitted);
            scope.spawn(move || {
                for i in 0..MAX_ORDERS_PER_HOUR {
                    let order = NewOrder {
                        id: format!("o-race-{thread}-{i}"),
                        account_id: d.account_id.clone(),
                        device_id: d.id.clone(),
                        purpose: OrderPurpose::TopUp,
                        card_id: d.card_id,
                        pass: None,
                        device_key: None,
                        dependant: false,
                        amount_vnd: 10_000,
                        provider: "vnpay".into(),
                        created_at: now,
                        expires_at: now + 900,
                    };
                    if matches!(
                        s.create_order(&order, "2026-12-05").unwrap(),
                        OrderAdmission::Admitted(_)
                    ) {
                        admitted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(admitted.into_inner(), MAX_ORDERS_PER_HOUR);
}
