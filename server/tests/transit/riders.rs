//! What a rider sees and holds: trips and caps on the phone, a day pass, a guardian's
//! pass for a dependant.

use super::world::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_riders_phone_shows_its_trips_and_how_close_it_is_to_the_caps() {
    use thudo_core::transit::trips::RiderHistory;
    let w = World::start().await;
    let (phone_vault, rider) = w.rider("rider", RIDER, Product::PayAsYouGo).await;
    let (bus_vault, mut bus, _) = w.bus("bus", 32).await;
    // Four rides in one Hanoi morning: 8,000 VND each until the 30,000 daily cap.
    let t = tomorrow_morning();
    for ride in 0..4u64 {
        let at = t + ride * 1_800;
        assert!(
            bus.validate(&rider.current_qr(at).unwrap().text, at)
                .unwrap()
                .accepted
        );
    }
    let receipt = w.upload_bus(&bus_vault, &mut bus).await;
    assert_eq!(receipt.charged_vnd, 30_000);
    // The phone syncs and holds its trips and cap progress, offline from here on.
    w.client
        .sync(phone_vault.clone(), &common::collections(), None)
        .await
        .unwrap();
    let history = RiderHistory::new(&phone_vault);
    let trips = history.trips_from("2000-01-01", None).unwrap();
    let fares: Vec<u64> = trips.iter().rev().map(|t| t.fare_vnd).collect();
    assert_eq!(
        fares,
        [8_000, 8_000, 8_000, 6_000],
        "newest first, reversed here"
    );
    assert!(trips.iter().all(|t| t.route == Some(32) && t.mode == "bus"));
    assert!(trips[0].capped() && !trips[1].capped());
    let day = trips[0].day.clone();
    let cap = history.cap(&day, None).unwrap().unwrap();
    assert_eq!(
        (cap.paid_vnd, cap.cap_vnd, cap.reached()),
        (30_000, 30_000, true)
    );
    let month = history.cap(&day[..7], None).unwrap().unwrap();
    assert_eq!((month.paid_vnd, month.reached()), (30_000, false));
    // Another rider's trips are not on this phone.
    let (other_vault, other) = w.rider("other", VICTIM, Product::PayAsYouGo).await;
    let at = t + 4 * 1_800;
    assert!(
        bus.validate(&other.current_qr(at).unwrap().text, at)
            .unwrap()
            .accepted
    );
    w.upload_bus(&bus_vault, &mut bus).await;
    for v in [&phone_vault, &other_vault] {
        w.client
            .sync(v.clone(), &common::collections(), None)
            .await
            .unwrap();
    }
    assert_eq!(history.trips_from("2000-01-01", None).unwrap().len(), 4);
    // The phone keeps what it shows: forgetting before a day removes older trips and ended
    // caps only, and the next sync does not bring them back.
    assert_eq!(history.forget_before(&day).unwrap(), 0);
    let next_day = chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d")
        .unwrap()
        .succ_opt()
        .unwrap()
        .to_string();
    let month_over = next_day[..7] != day[..7];
    assert_eq!(
        history.forget_before(&next_day).unwrap(),
        4 + 1 + usize::from(month_over),
        "4 trips, the day's cap, and the month's if it ended"
    );
    assert_eq!(history.cap(&day[..7], None).unwrap().is_some(), !month_over);
    w.client
        .sync(phone_vault.clone(), &common::collections(), None)
        .await
        .unwrap();
    assert!(history.trips_from("2000-01-01", None).unwrap().is_empty());
    assert_eq!(
        RiderHistory::new(&other_vault)
            .trips_from("2000-01-01", None)
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_pass_rides_free_all_day_and_ends_at_midnight_in_hanoi() {
    use thudo_core::transit::presentation::Signal;
    use thudo_core::transit::trips::RiderHistory;
    let w = World::start().await;
    let v = w.phone_device("day", RIDER).await;
    let phone = Phone::open(v.clone(), None, PhoneOptions::default()).unwrap();
    let bought = common::buy(
        &w.client,
        v.clone(),
        &order(&phone, Product::DayPass, Category::Standard),
    )
    .await
    .unwrap();
    assert_eq!(bought.price_vnd, 30_000);
    // The pass window is today in Hanoi: midnight to midnight, local time.
    let from = u64::from(bought.pass_valid_from);
    assert_eq!((from + 7 * 3600) % 86_400, 0, "starts at 00:00 Hanoi");
    assert_eq!(u64::from(bought.pass_valid_until), from + 86_399);
    assert!((from..=from + 86_399).contains(&now()));
    phone
        .install_credential(&thudo_core::hex::decode(&bought.credential).unwrap())
        .unwrap();
    let (bus_vault, mut bus, _) = w.bus("bus", 32).await;
    let t = now();
    let verdict = bus.validate(&phone.current_qr(t).unwrap().text, t).unwrap();
    assert!(verdict.accepted);
    assert_eq!(verdict.product, Some(Product::DayPass));
    assert_eq!(
        verdict.presentation.signal,
        Signal::Go,
        "no warning on its own day"
    );
    // Tomorrow it is refused.
    let tomorrow = u64::from(bought.pass_valid_until) + 60;
    let late = bus
        .validate(&phone.current_qr(tomorrow).unwrap().text, tomorrow)
        .unwrap();
    assert_eq!(late.reason, Reason::PassExpired);
    let receipt = w
        .transit()
        .upload_taps(bus_vault, bus.export_taps().unwrap())
        .await
        .unwrap();
    assert_eq!(receipt.charged_vnd, 0);
    w.client
        .sync(v.clone(), &common::collections(), None)
        .await
        .unwrap();
    let trips = RiderHistory::new(&v)
        .trips_from("2000-01-01", None)
        .unwrap();
    assert_eq!(trips.len(), 1);
    assert_eq!((trips[0].product, trips[0].fare_vnd), (Product::DayPass, 0));
    // Not sold to a free rider, even one entitled (they ride on a free pass).
    let elderly = w.phone_device("elderly", VICTIM).await;
    let t = now() as i64;
    let path = format!("/v1/admin/citizens/{VICTIM}/entitlements");
    let grant = json!({"category": "elderly", "valid_from": t - 86_400, "valid_until": t + 86_400,
        "evidence_ref": "HS-2026-0043"});
    assert_eq!(w.admin_post(&path, grant).await.0, 200);
    let e = common::buy(
        &w.client,
        elderly,
        &order(&phone, Product::DayPass, Category::Elderly),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, BackendError::Refused { status: 400, .. }),
        "{e:?}"
    );
}

/// Taps `phone`'s QR at `at` on a shared validator; returns the verdict's reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guardian_holds_a_childs_pass_and_each_rider_keeps_their_own_trips_and_caps() {
    use thudo_core::transit::trips::RiderHistory;
    const CHILD: &str = "001022012345";
    let w = World::start().await;
    let (parent_vault, phone) = w.rider("parent", RIDER, Product::PayAsYouGo).await;
    let parent_card = phone.credential().unwrap().card_id;
    let child_order = CredentialOrder {
        dependant: Some(CHILD.into()),
        ..order(&phone, Product::FreePass, Category::Child)
    }
    .signed_by(&phone, now())
    .unwrap();
    // Nobody buys a pass for a citizen the operator has not recorded as their dependant.
    refused(
        common::buy(&w.client, parent_vault.clone(), &child_order)
            .await
            .unwrap_err(),
        403,
        "not_guardian",
    );
    let path = format!("/v1/admin/citizens/{RIDER}/dependants");
    for bad in [
        json!({"dependant_citizen_id": RIDER, "evidence_ref": "SHK-0142"}),
        json!({"dependant_citizen_id": "12", "evidence_ref": "SHK-0142"}),
        // The registry's evidence is not optional.
        json!({"dependant_citizen_id": CHILD}),
        json!({"dependant_citizen_id": CHILD, "evidence_ref": " "}),
    ] {
        assert_eq!(w.admin_post(&path, bad).await.0, 400);
    }
    for _ in 0..2 {
        let (status, _) = w
            .admin_post(
                &path,
                json!({"dependant_citizen_id": CHILD, "evidence_ref": "SHK-0142"}),
            )
            .await;
        assert_eq!(status, 200, "recording it twice changes nothing");
    }
    // The child's free pass needs the child's entitlement, not the parent's.
    assert!(matches!(
        common::buy(&w.client, parent_vault.clone(), &child_order).await,
        Err(BackendError::NotEntitled { .. })
    ));
    let t = now() as i64;
    let (status, _) = w
        .admin_post(
            &format!("/v1/admin/citizens/{CHILD}/entitlements"),
            json!({"category": "child", "valid_from": t - 86_400, "valid_until": t + 86_400 * 365, "evidence_ref": "KS-2020-0117"}),
        )
        .await;
    assert_eq!(status, 200);
    let bought = w
        .transit()
        .buy_and_install(parent_vault.clone(), Arc::new(phone), child_order.clone())
        .await
        .unwrap();
    // Reopened from its vault, the phone holds both passes, the owner's first.
    let phone = Phone::open(parent_vault.clone(), None, PhoneOptions::default()).unwrap();
    let held: Vec<u64> = phone.credentials().iter().map(|c| c.card_id).collect();
    assert_eq!(held, [parent_card, bought.order.card_id]);
    assert_ne!(
        parent_card, bought.order.card_id,
        "the child rides on their own card"
    );
    // Another citizen cannot buy for the child.
    let (stranger_vault, stranger) = w.rider("stranger", VICTIM, Product::PayAsYouGo).await;
    refused(
        common::buy(
            &w.client,
            stranger_vault.clone(),
            &CredentialOrder {
                dependant: Some(CHILD.into()),
                ..order(&stranger, Product::FreePass, Category::Child)
            }
            .signed_by(&stranger, now())
            .unwrap(),
        )
        .await
        .unwrap_err(),
        403,
        "not_guardian",
    );

    // Parent and child board one bus a second apart with one phone: two cards, no passback.
    let (bus_vault, mut bus, _) = w.bus("bus", 32).await;
    let at = tomorrow_morning();
    let parent_ride = bus
        .validate(&phone.current_qr(at).unwrap().text, at)
        .unwrap();
    let child_ride = bus
        .validate(
            &phone
                .current_qr_for(bought.order.card_id, at + 1)
                .unwrap()
                .text,
            at + 1,
        )
        .unwrap();
    assert!(parent_ride.accepted && child_ride.accepted);
    assert_eq!(child_ride.category, Some(Category::Child));
    let receipt = w.upload_bus(&bus_vault, &mut bus).await;
    assert_eq!(receipt.charged_vnd, 8_000, "the child rides free");

    // The parent's phone shows both riders' trips, each on its own card, and each card's caps.
    w.client
        .sync(parent_vault.clone(), &common::collections(), None)
        .await
        .unwrap();
    let history = RiderHistory::new(&parent_vault);
    assert_eq!(history.trips_from("2000-01-01", None).unwrap().len(), 2);
    let child_trips = history
        .trips_from("2000-01-01", Some(bought.order.card_id))
        .unwrap();
    assert_eq!(child_trips.len(), 1);
    assert_eq!(
        (child_trips[0].product, child_trips[0].fare_vnd),
        (Product::FreePass, 0)
    );
    let day = child_trips[0].day.clone();
    let own = history.cap(&day, None).unwrap().unwrap();
    assert_eq!((own.card_id, own.paid_vnd), (Some(parent_card), 8_000));
    assert_eq!(history.cap(&day, Some(parent_card)).unwrap(), Some(own));
    assert_eq!(history.cap(&day, Some(bought.order.card_id)).unwrap(), None);
    // A teenage dependant travels alone and pays as they go: their cap progress reaches the
    // parent's phone under their card, apart from the parent's.
    const TEEN: &str = "001008012345";
    w.admin_post(
        &path,
        json!({"dependant_citizen_id": TEEN, "travels_alone": true, "evidence_ref": "SHK-0142"}),
    )
    .await;
    let teen = w
        .transit()
        .buy_and_install(
            parent_vault.clone(),
            Arc::new(Phone::open(parent_vault.clone(), None, PhoneOptions::default()).unwrap()),
            CredentialOrder {
                dependant: Some(TEEN.into()),
                ..order(&phone, Product::PayAsYouGo, Category::Standard)
            },
        )
        .await
        .unwrap();
    let phone = Phone::open(parent_vault.clone(), None, PhoneOptions::default()).unwrap();
    let at = at + 600;
    assert!(
        bus.validate(
            &phone.current_qr_for(teen.order.card_id, at).unwrap().text,
            at
        )
        .unwrap()
        .accepted
    );
    w.upload_bus(&bus_vault, &mut bus).await;
    w.client
        .sync(parent_vault.clone(), &common::collections(), None)
        .await
        .unwrap();
    let teen_cap = history
        .cap(&day, Some(teen.order.card_id))
        .unwrap()
        .unwrap();
    assert_eq!(
        (teen_cap.card_id, teen_cap.paid_vnd),
        (Some(teen.order.card_id), 8_000)
    );
    assert_eq!(history.cap(&day, None).unwrap().unwrap().paid_vnd, 8_000);
    // The guardianship ends (custody changed): no more of the child's passes, nor their trips.
    let end = |who: &str| {
        let path = format!("/v1/admin/citizens/{RIDER}/dependants/{who}");
        let url = w.url(&format!("{path}?evidence_ref=QD-2026-77"));
        let (http, token) = (w.http.clone(), w.operator_for(&path));
        async move {
            http.delete(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(end(CHILD).await, 200);
    assert_eq!(end(CHILD).await, 404, "once");
    assert_eq!(end("12").await, 400);
    refused(
        common::buy(&w.client, parent_vault.clone(), &child_order)
            .await
            .unwrap_err(),
        403,
        "not_guardian",
    );
    let before = history
        .trips_from("2000-01-01", Some(bought.order.card_id))
        .unwrap()
        .len();
    let at = at + 1_200;
    // With the parent, as the child's ticket rides.
    assert!(
        bus.validate(&phone.current_qr(at - 1).unwrap().text, at - 1)
            .unwrap()
            .accepted
    );
    assert!(
        bus.validate(
            &phone.current_qr_for(bought.order.card_id, at).unwrap().text,
            at
        )
        .unwrap()
        .accepted,
        "a pass already held rides until its credential ends"
    );
    w.upload_bus(&bus_vault, &mut bus).await;
    w.client
        .sync(parent_vault.clone(), &common::collections(), None)
        .await
        .unwrap();
    assert_eq!(
        history
            .trips_from("2000-01-01", Some(bought.order.card_id))
            .unwrap()
            .len(),
        before,
        "the child's new trips no longer reach the former guardian"
    );
    // Removing the child's pass leaves the owner's.
    assert!(phone.remove_credential(bought.order.card_id).unwrap());
    assert!(phone.remove_credential(parent_card).is_err());
    assert_eq!(phone.credentials().len(), 2);
}

/// A pass is bought once and its credential renewed free while the pass holds: never after its
/// entitlement ends, for a revoked device, for a forged credential, or for another account
/// replaying the rider's request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_renews_its_credential_free_while_it_holds_and_never_after() {
    use thudo_core::transit::backend::{RenewalRequest, RENEW_BEFORE_SECS};
    let w = World::start().await;
    let (v, phone) = w.rider("renewer", RIDER, Product::PayAsYouGo).await;
    let phone = Arc::new(phone);
    let before = phone.credential().unwrap();
    let renewed = w
        .transit()
        .renew(v.clone(), phone.clone(), before.card_id)
        .await
        .unwrap();
    assert_eq!(
        (renewed.card_id, renewed.product, renewed.pass_valid_until),
        (before.card_id, before.product, before.pass_valid_until),
        "the same pass"
    );
    assert!(renewed.not_after >= before.not_after);
    assert_eq!(phone.credential().unwrap(), renewed, "installed");
    // Nothing due while the credential has more than 48 h; due within them.
    assert!(w
        .transit()
        .renew_due(v.clone(), phone.clone(), now(), RENEW_BEFORE_SECS)
        .await
        .is_empty());
    // On the backend's clock: for a phone 300 s slow (its offset learned at sync), a credential
    // 48 h and 100 s of device time from its end is 48 h minus 200 s from it: due.
    phone.set_clock_offset(300).unwrap();
    let slow_now = u64::from(renewed.not_after) - RENEW_BEFORE_SECS - 100;
    let due = w
        .transit()
        .renew_due(v.clone(), phone.clone(), slow_now, RENEW_BEFORE_SECS)
        .await;
    assert_eq!(due.len(), 1);
    assert!(due[0].outcome.is_ok(), "{:?}", due[0].outcome);
    phone.set_clock_offset(0).unwrap();
    let due = w
        .transit()
        .renew_due(
            v.clone(),
            phone.clone(),
            now() + 30 * 3600,
            RENEW_BEFORE_SECS,
        )
        .await;
    assert_eq!(due.len(), 1);
    assert!(due[0].outcome.is_ok(), "{:?}", due[0].outcome);

    // A forged credential (a changed byte) and another account replaying the rider's signed
    // request are refused.
    let (held, _, _) = phone.held_credential(before.card_id).unwrap();
    let signed = |credential: &[u8]| RenewalRequest::signed_by(&phone, credential, now()).unwrap();
    let post = |vault: Arc<Vault>, request: RenewalRequest| {
        let req = w.device_post(&vault, "/v1/transit/credentials/renew", &request);
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), json_of(r).await["error"].clone())
        }
    };
    let mut forged = held.clone();
    forged[5] ^= 1;
    assert_eq!(
        post(v.clone(), signed(&forged)).await,
        (403, json!("bad_credential"))
    );
    let thief = w.phone_device("thief", VICTIM).await;
    assert_eq!(
        post(thief.clone(), signed(&held)).await,
        (403, json!("not_guardian"))
    );

    // A revoked device renews nothing.
    let second = w.phone_device("second", RIDER).await;
    let device = BackendClient::registration(&v).unwrap().unwrap().device_id;
    let proof = w
        .idp
        .id_token(RIDER, &w.client.registration_nonce().await.unwrap().nonce)
        .unwrap();
    w.client
        .revoke_device(second, &device, &proof)
        .await
        .unwrap();
    let e = w
        .transit()
        .renew(v.clone(), phone.clone(), before.card_id)
        .await
        .unwrap_err();
    assert!(matches!(e, BackendError::Unauthorized), "{e:?}");
}

/// A reduced category's pass renews only while its entitlement is in force.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reduced_pass_stops_renewing_when_its_entitlement_ends() {
    let w = World::start().await;
    let v = w.phone_device("student", RIDER).await;
    let phone = Arc::new(Phone::open(v.clone(), None, PhoneOptions::default()).unwrap());
    let t = now() as i64;
    let (status, _) = w
        .admin_post(
            &format!("/v1/admin/citizens/{RIDER}/entitlements"),
            // 8 s: time for the purchase below on a loaded machine, short for the test.
            json!({"category": "priority", "valid_from": t - 60, "valid_until": t + 8,
                   "evidence_ref": "case-7"}),
        )
        .await;
    assert_eq!(status, 200);
    let bought = w
        .transit()
        .buy_and_install(
            v.clone(),
            phone.clone(),
            order(&phone, Product::PayAsYouGo, Category::Priority),
        )
        .await
        .unwrap();
    let credential = phone.credential().unwrap();
    assert!(
        i64::from(credential.not_after) <= t + 9,
        "no longer than the entitlement"
    );
    let past = (t + 10 - now() as i64).max(0) as u64;
    tokio::time::sleep(std::time::Duration::from_secs(past)).await;
    let e = w
        .transit()
        .renew(v.clone(), phone.clone(), bought.order.card_id)
        .await
        .unwrap_err();
    assert!(matches!(e, BackendError::NotEntitled { .. }), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependants_ticket_is_for_travelling_with_its_holder() {
    use thudo_core::transit::trips::RiderHistory;
    const CHILD: &str = "001022054321";
    let w = World::start().await;
    let (parent_vault, phone) = w.rider("parent", RIDER, Product::PayAsYouGo).await;
    // The parent's fares come out of prepaid credit (this server's sandbox pays at once).
    w.transit()
        .top_up(parent_vault.clone(), 200_000, None)
        .await
        .unwrap();
    let path = format!("/v1/admin/citizens/{RIDER}/dependants");
    w.admin_post(
        &path,
        json!({"dependant_citizen_id": CHILD, "evidence_ref": "SHK-0142"}),
    )
    .await;
    let t = now() as i64;
    w.admin_post(
        &format!("/v1/admin/citizens/{CHILD}/entitlements"),
        json!({"category": "child", "valid_from": t - 86_400, "valid_until": t + 86_400 * 365, "evidence_ref": "KS-2020-0118"}),
    )
    .await;
    let phone = Arc::new(phone);
    let child = w
        .transit()
        .buy_and_install(
            parent_vault.clone(),
            phone.clone(),
            CredentialOrder {
                dependant: Some(CHILD.into()),
                ..CredentialOrder::new(Product::FreePass, Category::Child)
            },
        )
        .await
        .unwrap()
        .order
        .card_id;
    // The child's ticket rides only with its holder's: issued as format version 2.
    let held = |card: u64| {
        phone
            .credentials()
            .into_iter()
            .find(|c| c.card_id == card)
            .unwrap()
    };
    assert!(held(child).with_holder);
    let show = |bus: &mut thudo_core::transit::validator::Validator, card: Option<u64>, at: u64| {
        let qr = match card {
            Some(c) => phone.current_qr_for(c, at).unwrap(),
            None => phone.current_qr(at).unwrap(),
        };
        bus.validate(&qr.text, at).unwrap().reason
    };
    let ride = |bus: &mut thudo_core::transit::validator::Validator, card: Option<u64>, at: u64| {
        assert_eq!(show(bus, card, at), Reason::Ok);
    };
    let at = tomorrow_morning();
    // Together: the child's QR first is refused (the parent taps first), then both ride.
    let (v1, mut together, _) = w.bus("together", 32).await;
    assert_eq!(
        show(&mut together, Some(child), at),
        Reason::HolderNotTapped
    );
    ride(&mut together, None, at + 10);
    ride(&mut together, Some(child), at + 40);
    w.upload_bus_drained(&v1, &mut together).await;
    let alone_records = |w: &World| {
        w.storage
            .fraud_records(0, 10_000)
            .unwrap()
            .into_iter()
            .filter(|f| f.kind == thudo_server::transit::rules::FraudKind::DependantAlone)
            .collect::<Vec<_>>()
    };
    assert!(alone_records(&w).is_empty());
    // Together across two uploads: the parent taps just before the bus uploads, the child
    // just after. Not judged until the bus's log is known past the window, then fine.
    let (v3, mut split, _) = w.bus("split", 32).await;
    ride(&mut split, None, at + 1_800);
    w.upload_bus(&v3, &mut split).await;
    ride(&mut split, Some(child), at + 1_830);
    w.upload_bus_drained(&v3, &mut split).await;
    // The parent rides again ten minutes later: the log is known past the pair's window.
    ride(&mut split, None, at + 2_430);
    w.upload_bus_drained(&v3, &mut split).await;
    assert!(alone_records(&w).is_empty());
    // Alone on another bus: refused at the door; nothing charged, nothing to record.
    let (v2, mut alone, v2_id) = w.bus("alone", 32).await;
    assert_eq!(
        show(&mut alone, Some(child), at + 3_600),
        Reason::HolderNotTapped
    );
    w.upload_bus_drained(&v2, &mut alone).await;
    assert!(alone_records(&w).is_empty());
    // The operator records that the child travels alone (to school): the renewed ticket is
    // version 1 and rides alone, with no record.
    w.admin_post(
        &path,
        json!({"dependant_citizen_id": CHILD, "travels_alone": true, "evidence_ref": "SHK-0142"}),
    )
    .await;
    w.transit()
        .renew(parent_vault.clone(), phone.clone(), child)
        .await
        .unwrap();
    assert!(!held(child).with_holder);
    ride(&mut alone, Some(child), at + 7_200);
    ride(&mut alone, None, at + 7_800);
    w.upload_bus_drained(&v2, &mut alone).await;
    assert!(alone_records(&w).is_empty());
    // The operator withdraws that. The ticket issued before still rides alone (version 1,
    // until it ends within 72 hours), and the backend records the ride once the bus's log is
    // complete past the window, with a warning on the parent's phone.
    w.admin_post(
        &path,
        json!({"dependant_citizen_id": CHILD, "travels_alone": false, "evidence_ref": "SHK-0142"}),
    )
    .await;
    ride(&mut alone, Some(child), at + 9_000);
    w.upload_bus(&v2, &mut alone).await;
    assert!(
        alone_records(&w).is_empty(),
        "not judged before the log is complete"
    );
    // The parent boards this bus ten minutes later, alone: the child's window is past.
    ride(&mut alone, None, at + 9_600);
    let _ = w.upload_bus_drained(&v2, &mut alone).await;
    let records = alone_records(&w);
    assert_eq!(records.len(), 1);
    assert_eq!(
        (records[0].card_id, records[0].validator_id.as_str()),
        (Some(child), v2_id.as_str())
    );
    w.client
        .sync(parent_vault.clone(), &common::collections(), None)
        .await
        .unwrap();
    let notices = RiderHistory::new(&parent_vault).notices().unwrap();
    assert_eq!(notices.len(), 1);
    assert_eq!(
        (
            notices[0].card_id,
            notices[0].kind.as_str(),
            notices[0].penalty_vnd
        ),
        (child, "dependant_alone", 0)
    );
    assert!(notices[0].message_en.contains("without its holder"));
    // Renewed now, the ticket rides with its holder again.
    w.transit()
        .renew(parent_vault.clone(), phone.clone(), child)
        .await
        .unwrap();
    assert!(held(child).with_holder);
    // An app too old to install version 2 (it names no credential formats) is renewed the
    // child's ticket as version 1, which its phone installs.
    let (credential, _, _) = phone.held_credential(child).unwrap();
    let request =
        thudo_core::transit::backend::RenewalRequest::signed_by(&phone, &credential, now())
            .unwrap();
    let answer = w
        .device_post(&parent_vault, "/v1/transit/credentials/renew", &request)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    let renewed =
        thudo_core::hex::decode(json_of(answer).await["credential"].as_str().unwrap()).unwrap();
    assert_eq!(
        renewed[0], 1,
        "version 1 for an app that does not name version 2"
    );
}

/// A rider sets the phone's clock two hours ahead, makes a QR, sets it back and sends the
/// screenshot to a friend who rides with it two hours later. Each QR verifies on its own; the
/// phone's counter gives it away: the QR made first claims the latest time. Rides in step with
/// the counter record nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qr_made_ahead_of_its_time_for_someone_else_is_recorded() {
    use thudo_server::transit::rules::FraudKind;
    let w = World::start().await;
    let (_, rider) = w.rider("clock-setter", RIDER, Product::PayAsYouGo).await;
    let (bus_vault, mut bus, _) = w.bus("bus-32", 32).await;
    let (other_vault, mut other_bus, _) = w.bus("bus-33", 33).await;
    // Enrolled now, before the rides below put the pay-as-you-go card past its credit.
    let (third_vault, mut third_bus, _) = w.bus("bus-34", 34).await;
    let t = tomorrow_morning();
    let ahead = rider.current_qr(t + 7_200).unwrap().text;
    for at in [t, t + 600] {
        assert!(
            bus.validate(&rider.current_qr(at).unwrap().text, at)
                .unwrap()
                .accepted
        );
    }
    w.upload_bus(&bus_vault, &mut bus).await;
    let made_ahead = |w: &World| -> Vec<_> {
        w.storage
            .fraud_records(0, 10_000)
            .unwrap()
            .into_iter()
            .filter(|r| r.kind == FraudKind::QrMadeAhead)
            .collect()
    };
    assert!(made_ahead(&w).is_empty(), "rides in step record nothing");
    // The friend's ride with the screenshot, two hours on.
    assert!(other_bus.validate(&ahead, t + 7_200).unwrap().accepted);
    w.upload_bus(&other_vault, &mut other_bus).await;
    let found = made_ahead(&w);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].card_id, Some(rider.credential().unwrap().card_id));
    // The rider's own next ride, made after and for later still, is in step again; one made
    // after but for a time before the screenshot's runs against it too, and is not recorded
    // again the same day (one record a card a day).
    let before = t + 1_200;
    let verdict = third_bus
        .validate(&rider.current_qr(before).unwrap().text, before)
        .unwrap();
    assert!(verdict.accepted, "{verdict:?}");
    w.upload_bus(&third_vault, &mut third_bus).await;
    let next = t + 8_000;
    assert!(
        bus.validate(&rider.current_qr(next).unwrap().text, next)
            .unwrap()
            .accepted
    );
    w.upload_bus(&bus_vault, &mut bus).await;
    assert_eq!(made_ahead(&w).len(), 1);
}

/// A paid order whose collection fails (the network drops once the order is paid) is answered
/// without its credential but with its id, and that id collects the pass later: nothing paid
/// is lost, and no second order is needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_order_whose_collection_fails_keeps_its_id_to_collect_later() {
    use crate::common::{start_proxy_to, Fault};
    use thudo_core::transit::backend::OrderStatus;
    let w = World::start().await;
    let (url, proxy) = start_proxy_to(&[w.running.addr], 29).await;
    let mut config = BackendConfig::new(&url);
    config.backoff_base = std::time::Duration::from_millis(5);
    config.backoff_max = std::time::Duration::from_millis(20);
    let attempts = config.max_attempts as usize;
    let flaky = BackendClient::new(config).unwrap();
    let v = w.phone_device("buyer", RIDER).await;
    let phone = Arc::new(Phone::open(v.clone(), None, PhoneOptions::default()).unwrap());
    // The order goes through; every attempt to collect it fails.
    proxy
        .faults
        .lock()
        .unwrap()
        .extend(std::iter::once(Fault::Pass).chain(std::iter::repeat_n(Fault::Error500, attempts)));
    let bought = TransitClient::new(&flaky)
        .buy_and_install(
            v.clone(),
            phone.clone(),
            order(&phone, Product::PayAsYouGo, Category::Standard),
        )
        .await
        .unwrap();
    assert!(
        proxy.faults.lock().unwrap().is_empty(),
        "every fault was met"
    );
    assert_eq!(bought.order.status, OrderStatus::Paid);
    assert_eq!(bought.credential, None);
    assert!(phone.credential().is_none());
    let collected = w
        .transit()
        .collect_and_install(v, phone.clone(), &bought.order.order_id)
        .await
        .unwrap();
    assert_eq!(collected.card_id, bought.order.card_id);
    assert_eq!(phone.credential(), Some(collected));
}

/// A guardian pays a dependant's pay-as-you-go fares: credit on the child's card, and the
/// child's balance read. Another account does neither, even knowing the card's number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guardian_tops_up_a_dependants_card_and_nobody_else_can() {
    const CHILD: &str = "001022054322";
    let w = World::start().await;
    let (parent_vault, phone) = w.rider("parent", RIDER, Product::PayAsYouGo).await;
    let path = format!("/v1/admin/citizens/{RIDER}/dependants");
    w.admin_post(
        &path,
        json!({"dependant_citizen_id": CHILD, "evidence_ref": "SHK-0143"}),
    )
    .await;
    let child = w
        .transit()
        .buy_and_install(
            parent_vault.clone(),
            Arc::new(phone),
            CredentialOrder {
                dependant: Some(CHILD.into()),
                ..CredentialOrder::new(Product::PayAsYouGo, Category::Standard)
            },
        )
        .await
        .unwrap()
        .order
        .card_id;
    // This server's sandbox pays at once.
    let top_up = w
        .transit()
        .top_up(parent_vault.clone(), 30_000, Some(child))
        .await
        .unwrap();
    assert_eq!((top_up.card_id, top_up.price_vnd), (child, 30_000));
    let childs = w
        .transit()
        .balance(parent_vault.clone(), Some(child))
        .await
        .unwrap();
    assert_eq!((childs.card_id, childs.balance_vnd), (child, 30_000));
    let own = w
        .transit()
        .balance(parent_vault.clone(), None)
        .await
        .unwrap();
    assert_ne!(own.card_id, child);
    assert_eq!(own.balance_vnd, 0, "the parent's own card is not credited");
    // Another account, or a made-up card.
    let (stranger, _) = w.rider("stranger", VICTIM, Product::PayAsYouGo).await;
    for (vault, card) in [(&stranger, child), (&parent_vault, child + 1)] {
        refused(
            w.transit()
                .top_up(vault.clone(), 30_000, Some(card))
                .await
                .unwrap_err(),
            403,
            "not_guardian",
        );
        refused(
            w.transit()
                .balance(vault.clone(), Some(card))
                .await
                .unwrap_err(),
            403,
            "not_guardian",
        );
    }
    let childs = w
        .transit()
        .balance(parent_vault, Some(child))
        .await
        .unwrap();
    assert_eq!(
        childs.balance_vnd, 30_000,
        "nothing credited by the refusals"
    );
}
