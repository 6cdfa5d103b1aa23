//! Validators are enrolled, taps are charged from their evidence once across validators,
//! revocations reach validators, reduced categories need an entitlement, issuer keys rotate,
//! and no rider can claim another's transit key.

use super::world::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validators_are_enrolled_not_self_declared() {
    let w = World::start().await;
    // A citizen's phone cannot declare itself a validator.
    let fake = vault(&w.dir.path().join("fake-bus"));
    let e = w
        .client
        .register(
            fake.clone(),
            &RegisterRequest {
                id_token: w
                    .idp
                    .id_token(RIDER, &w.client.registration_nonce().await.unwrap().nonce)
                    .unwrap(),
                device_name: "my bus".into(),
                role: "validator".into(),
                account_id: None,
            },
        )
        .await
        .unwrap_err();
    refused(e, 403, "enrolment_required");
    // A registered phone can neither read the feed nor upload taps.
    let phone = w.phone_device("phone", RIDER).await;
    refused(
        w.transit().validator_feed(phone.clone()).await.unwrap_err(),
        403,
        "validators_only",
    );
    let tap = Tap {
        seq: 1,
        at: now(),
        route: 32,
        accepted: true,
        reason: Reason::Ok,
        card_id: Some(1),
        product: Some(Product::PayAsYouGo),
        qr_timestamp: None,
        qr_counter: None,
        qr: None,
        gate: None,
    };
    refused(
        w.transit()
            .upload_taps(phone.clone(), vec![tap.clone()])
            .await
            .unwrap_err(),
        403,
        "validators_only",
    );

    // Codes: unknown, single use, expired.
    let enrol = |code: String, name: &str| {
        let v = vault(&w.dir.path().join(name));
        let c = &w.client;
        async move {
            c.enrol_validator(
                v,
                &ValidatorEnrolmentRequest {
                    enrolment_code: code,
                    device_name: "bus".into(),
                },
            )
            .await
        }
    };
    refused(
        enrol("0".repeat(64), "v-unknown").await.unwrap_err(),
        403,
        "enrolment_unknown",
    );
    let code = w.enrolment_code(32);
    enrol(code.clone(), "v-first").await.unwrap();
    refused(
        enrol(code, "v-again").await.unwrap_err(),
        403,
        "enrolment_used",
    );
    let expired = "e".repeat(64);
    w.storage
        .create_enrolment(&NewEnrolment {
            code_hash: thudo_server::storage::sha256(expired.as_bytes()),
            label: "old".into(),
            route: Some(32),
            gate: None,
            inspector: false,
            expires_at: now() as i64 - 1,
        })
        .unwrap();
    refused(
        enrol(expired, "v-expired").await.unwrap_err(),
        403,
        "enrolment_expired",
    );
    // The operator's rules for enrolments: bound to exactly one route or gate, bounded life.
    for bad in [
        json!({"label": "x"}),
        json!({"label": "x", "route": 32, "gate": "201:entry"}),
        json!({"label": "x", "gate": "L2A-CL-3"}),
        json!({"label": "x", "gate": "201:sideways"}),
        json!({"label": "", "route": 32}),
        json!({"label": "x", "route": 32, "ttl_secs": 10_000_000}),
    ] {
        assert_eq!(
            w.admin_post("/v1/admin/transit/enrolments", bad).await.0,
            400
        );
    }
    let (status, gate) = w
        .admin_post(
            "/v1/admin/transit/enrolments",
            json!({"label": "Cát Linh gate 3", "gate": "201:entry"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(gate["code"].as_str().unwrap().len(), 64);
    // The other binding may be sent as null, and a whole number with a point is a number
    // (JSON has one number type).
    for good in [
        json!({"label": "bus 5", "route": 5, "gate": null}),
        json!({"label": "La Khê out", "route": null, "gate": "210:exit", "ttl_secs": 3600.0}),
        json!({"label": "bus 6", "route": 6.0}),
    ] {
        let (status, answer) = w.admin_post("/v1/admin/transit/enrolments", good).await;
        assert_eq!(status, 200, "{answer}");
    }

    // A bus works until the operator decommissions it; then its calls are refused at once.
    let (bus, mut validator, id) = w.bus("bus-32", 32).await;
    let listed = w.admin_get("/v1/admin/transit/validators").await;
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["id"] == id.as_str() && v["route"] == 32));
    validator.validate("not a ticket", now()).unwrap();
    w.transit()
        .upload_taps(bus.clone(), validator.export_taps().unwrap())
        .await
        .unwrap();
    let (status, _) = w
        .admin_post(
            &format!("/v1/admin/transit/validators/{id}/decommission"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    refused(
        w.transit().validator_feed(bus.clone()).await.unwrap_err(),
        403,
        "decommissioned",
    );
    refused(
        w.transit().upload_taps(bus, vec![tap]).await.unwrap_err(),
        403,
        "decommissioned",
    );
    let (status, _) = w
        .admin_post(
            "/v1/admin/transit/validators/v-nope/decommission",
            json!({}),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taps_are_charged_from_their_evidence_once_across_validators() {
    let w = World::start().await;
    let (bus_a, mut a, a_id) = w.bus("bus-a", 32).await;
    let (bus_b, mut b, _) = w.bus("bus-b", 32).await;
    let (rider_vault, rider) = w.rider("rider", RIDER, Product::PayAsYouGo).await;
    let (victim_vault, victim) = w.rider("victim", VICTIM, Product::PayAsYouGo).await;
    let t0 = tomorrow_morning();

    // Four trips in a day on bus A: capped at 30,000.
    for hour in 0..4u64 {
        let t = t0 + hour * 3600;
        assert!(
            a.validate(&rider.current_qr(t).unwrap().text, t)
                .unwrap()
                .accepted
        );
    }
    // A relay: the QR shown on bus A at +5 h is also shown, seconds later, on bus B (a
    // screenshot sent to an accomplice). Both validators accept offline.
    let t = t0 + 5 * 3600;
    let relayed = rider.current_qr(t).unwrap().text;
    assert!(a.validate(&relayed, t).unwrap().accepted);
    assert!(b.validate(&relayed, t + 5).unwrap().accepted);

    let taps = a.export_taps().unwrap();
    assert!(
        taps.iter().all(|t| t.qr.is_some()),
        "every scan carries its evidence"
    );
    // A tap named twice in one upload (a validator's bug, or a forger's) is stored and charged
    // once; the second is its duplicate, not a database error.
    let mut doubled = taps.clone();
    doubled.push(taps[0].clone());
    let receipt = w
        .transit()
        .upload_taps(bus_a.clone(), doubled)
        .await
        .unwrap();
    assert_eq!(
        (
            receipt.stored,
            receipt.duplicates,
            receipt.charged_vnd,
            receipt.not_charged
        ),
        (5, 1, 30_000, 0)
    );
    assert_eq!(receipt.taps.len(), 6);
    let repeated: Vec<u64> = receipt
        .taps
        .iter()
        .filter(|o| o.duplicate)
        .map(|o| o.seq)
        .collect();
    assert_eq!(repeated, [taps[0].seq]);
    // The same upload again (a lost receipt): stored once, charged once.
    let again = w.transit().upload_taps(bus_a.clone(), taps).await.unwrap();
    assert_eq!(
        (again.stored, again.duplicates, again.charged_vnd),
        (0, 5, 0)
    );
    let from_b = w
        .transit()
        .upload_taps(bus_b.clone(), b.export_taps().unwrap())
        .await
        .unwrap();
    assert_eq!(
        (from_b.stored, from_b.charged_vnd, from_b.not_charged),
        (1, 0, 1)
    );
    let fraud = w.admin_get("/v1/admin/transit/fraud").await;
    let relay = &fraud.as_array().unwrap()[0];
    assert_eq!(relay["kind"], "suspected_relay");
    assert_eq!(relay["first_validator_id"], a_id.as_str());

    // A rogue validator's claims: an accepted tap for the victim's card with no scan, with the
    // rider's scan relabelled as the victim's card, and with a forged scan. None charges the
    // victim; the forged and evidence-free ones are recorded for the operator.
    let victim_card = common::buy(
        &w.client,
        victim_vault.clone(),
        &order(&victim, Product::PayAsYouGo, Category::Standard),
    )
    .await
    .unwrap()
    .card_id;
    let t = t0 + 6 * 3600;
    let genuine = rider.current_qr(t).unwrap().text;
    let mut forged = genuine.clone().into_bytes();
    let i = forged.len() - 20;
    forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let claim = |seq: u64, qr: Option<String>| Tap {
        seq,
        at: t,
        route: 32,
        accepted: true,
        reason: Reason::Ok,
        card_id: Some(victim_card),
        product: Some(Product::PayAsYouGo),
        qr_timestamp: Some(t as u32),
        qr_counter: Some(1),
        qr,
        gate: None,
    };
    let rogue = w
        .transit()
        .upload_taps(
            bus_b.clone(),
            vec![
                claim(100, None),
                claim(101, Some(forged)),
                claim(102, Some("HNT1:".to_owned() + &"0".repeat(5000))),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        (rogue.stored, rogue.charged_vnd, rogue.not_charged),
        (3, 0, 3)
    );
    let relabelled = w
        .transit()
        .upload_taps(bus_b.clone(), vec![claim(103, Some(genuine))])
        .await
        .unwrap();
    // Charged to the card in the evidence (the rider's, already at the day's cap), never the
    // victim's.
    assert_eq!(relabelled.stored, 1);
    let victim_charges = w.charges(&victim_vault).await;
    assert_eq!(victim_charges["days"], json!([]), "the victim pays nothing");
    let rider_charges = w.charges(&rider_vault).await;
    assert_eq!(rider_charges["days"][0][1], 30_000);
    let kinds: Vec<String> = w
        .admin_get("/v1/admin/transit/fraud")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        [
            "suspected_relay",
            "accepted_without_evidence",
            "forged_evidence",
            "forged_evidence"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_reach_validators_in_newer_lists_and_stop_charges() {
    let w = World::start().await;
    let (bus, mut validator, _) = w.bus("bus", 32).await;
    assert_eq!(validator.deny_list_version(), 1);
    let (rider_vault, rider) = w.rider("rider", RIDER, Product::PayAsYouGo).await;
    let (thief_vault, stolen) = w.rider("stolen", VICTIM, Product::PayAsYouGo).await;
    let t0 = tomorrow_morning();
    // Taps made before the revocation, uploaded after it.
    let before = now() - 5;
    let early = rider.current_qr(before).unwrap().text;
    assert!(validator.validate(&early, before).unwrap().accepted);

    // The rider's card is revoked: the very first publication is a newer version than the one
    // validators hold, so the validator takes it.
    let card = common::buy(
        &w.client,
        rider_vault.clone(),
        &order(&rider, Product::PayAsYouGo, Category::Standard),
    )
    .await
    .unwrap()
    .card_id;
    let (status, v) = w
        .admin_post("/v1/admin/transit/deny", json!({"cards": [card]}))
        .await;
    assert_eq!((status, v["version"].as_u64()), (200, Some(2)));
    // A stolen phone: revoking the device revokes every transit key it bought credentials for.
    let stolen_device = BackendClient::registration(&thief_vault)
        .unwrap()
        .unwrap()
        .device_id;
    let (_, v) = w
        .admin_post(
            "/v1/admin/transit/deny",
            json!({"devices": [stolen_device]}),
        )
        .await;
    assert_eq!(v["version"].as_u64(), Some(3));
    let (status, _) = w
        .admin_post("/v1/admin/transit/deny", json!({"device_keys": ["zz"]}))
        .await;
    assert_eq!(status, 400);

    let feed = w.transit().validator_feed(bus.clone()).await.unwrap();
    let signed = thudo_core::hex::decode(&feed.deny_list).unwrap();
    assert_eq!(validator.update_deny_list(&signed).unwrap(), 3);
    assert!(
        validator.update_deny_list(&signed).is_err(),
        "the same version again is refused"
    );
    let verdict = validator
        .validate(&rider.current_qr(t0).unwrap().text, t0)
        .unwrap();
    assert_eq!(verdict.reason, Reason::Revoked);
    let verdict = validator
        .validate(&stolen.current_qr(t0 + 10).unwrap().text, t0 + 10)
        .unwrap();
    assert_eq!(
        verdict.reason,
        Reason::Revoked,
        "the stolen phone's key is denied"
    );

    // A validator still on the old list accepts the revoked card offline; the backend does
    // not charge it, while the tap made before the revocation is charged.
    let (old_bus, mut old, _) = {
        let v = vault(&w.dir.path().join("old-bus"));
        w.client
            .enrol_validator(
                v.clone(),
                &ValidatorEnrolmentRequest {
                    enrolment_code: w.enrolment_code(32),
                    device_name: "old".into(),
                },
            )
            .await
            .unwrap();
        let validator = Validator::open(
            v.clone(),
            feed.issuer_keys.clone(),
            ValidatorConfig {
                route: 32,
                ..ValidatorConfig::default()
            },
        )
        .unwrap();
        (v, validator, ())
    };
    let late = t0 + 3600;
    assert!(
        old.validate(&rider.current_qr(late).unwrap().text, late)
            .unwrap()
            .accepted
    );
    let r = w
        .transit()
        .upload_taps(old_bus, old.export_taps().unwrap())
        .await
        .unwrap();
    assert_eq!((r.charged_vnd, r.not_charged), (0, 1));
    let r = w
        .transit()
        .upload_taps(bus, validator.export_taps().unwrap())
        .await
        .unwrap();
    assert_eq!(
        r.charged_vnd, 8_000,
        "the tap before the revocation is charged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reduced_and_free_categories_need_an_entitlement() {
    let w = World::start().await;
    let v = w.phone_device("grandma", RIDER).await;
    let phone = Phone::open(v.clone(), None, PhoneOptions::default()).unwrap();
    let free = order(&phone, Product::FreePass, Category::Elderly);
    let e = common::buy(&w.client, v.clone(), &free).await.unwrap_err();
    assert!(matches!(e, BackendError::NotEntitled { .. }), "{e:?}");
    let mut half = order(&phone, Product::MonthlyAllRoutes, Category::Priority);
    half.month = this_month();
    let half = half.signed_by(&phone, now()).unwrap();
    assert!(matches!(
        common::buy(&w.client, v.clone(), &half).await,
        Err(BackendError::NotEntitled { .. })
    ));
    // Standard is self-service.
    let mut standard = half.clone();
    standard.category = Category::Standard;
    let standard = standard.signed_by(&phone, now()).unwrap();
    assert_eq!(
        common::buy(&w.client, v.clone(), &standard)
            .await
            .unwrap()
            .price_vnd,
        280_000
    );

    // An entitlement that ended yesterday does not renew; bad grants are refused.
    let t = now() as i64;
    let grant = |category: &str, from: i64, until: i64| json!({"category": category, "valid_from": from, "valid_until": until, "evidence_ref": "HS-2026-0042"});
    let path = format!("/v1/admin/citizens/{RIDER}/entitlements");
    assert_eq!(
        w.admin_post(&path, grant("elderly", t - 86_400 * 30, t - 86_400))
            .await
            .0,
        200
    );
    assert!(matches!(
        common::buy(&w.client, v.clone(), &free).await,
        Err(BackendError::NotEntitled { .. })
    ));
    for bad in [
        grant("standard", t, t + 10),
        grant("elderly", t, t - 10),
        json!({"category": "elderly", "valid_from": t, "valid_until": t + 10, "evidence_ref": ""}),
        json!({"category": "vip", "valid_from": t, "valid_until": t + 10, "evidence_ref": "x"}),
    ] {
        assert_eq!(w.admin_post(&path, bad).await.0, 400);
    }
    // In force for two more hours: the credential lasts no longer than the entitlement.
    assert_eq!(
        w.admin_post(&path, grant("elderly", t - 60, t + 7200))
            .await
            .0,
        200
    );
    let r = common::buy(&w.client, v.clone(), &free).await.unwrap();
    assert_eq!(r.price_vnd, 0);
    let fields = phone
        .install_credential(&thudo_core::hex::decode(&r.credential).unwrap())
        .unwrap();
    assert_eq!(fields.category, Category::Elderly);
    assert!(i64::from(fields.not_after) <= t + 7200 + 5);
    // The entitlement covers elderly only, not priority.
    assert!(matches!(
        common::buy(&w.client, v.clone(), &half).await,
        Err(BackendError::NotEntitled { .. })
    ));
    let listed = w.admin_get(&path).await;
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(listed[0]["evidence_ref"], "HS-2026-0042");

    // A reduced pass bought ahead for a month the entitlement does not reach: refused when
    // ordered, not paid for and then never collectable.
    assert_eq!(
        w.admin_post(&path, grant("priority", t - 60, t + 7200))
            .await
            .0,
        200
    );
    let next_month = CredentialOrder {
        month: month_ahead(1),
        ..order(&phone, Product::MonthlyAllRoutes, Category::Priority)
    }
    .signed_by(&phone, now())
    .unwrap();
    assert!(matches!(
        common::buy(&w.client, v.clone(), &next_month).await,
        Err(BackendError::NotEntitled { .. })
    ));
    // Granted through next month, it is sold.
    assert_eq!(
        w.admin_post(&path, grant("priority", t - 60, t + 70 * 86_400))
            .await
            .0,
        200
    );
    let sold = common::buy(&w.client, v.clone(), &next_month).await;
    assert!(sold.is_ok(), "{sold:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_key_rotation_reaches_validators_and_old_taps_still_verify() {
    let w = World::start().await;
    let (bus, mut validator, _) = w.bus("bus", 32).await;
    let (rider_vault, rider) = w.rider("rider", RIDER, Product::PayAsYouGo).await;
    // A tap with the credential of key 1, uploaded only after the rotation.
    let before = now() - 5;
    assert!(
        validator
            .validate(&rider.current_qr(before).unwrap().text, before)
            .unwrap()
            .accepted
    );

    for bad in [
        json!({"retire_previous_after_secs": 3600}),
        json!({"starts_in_secs": 100 * 86_400}),
        // Older keys retired before the new one starts: nothing could sign in between.
        json!({"starts_in_secs": 7 * 86_400, "retire_previous_after_secs": 259_200}),
    ] {
        assert_eq!(
            w.admin_post("/v1/admin/transit/issuer/rotate", bad).await.0,
            400
        );
    }
    let (status, ring) = w
        .admin_post(
            "/v1/admin/transit/issuer/rotate",
            json!({"starts_in_secs": 0, "retire_previous_after_secs": 259_200}),
        )
        .await;
    assert_eq!(status, 200);
    let ids: Vec<u64> = ring
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key_id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2], "previous and current, with their windows");
    assert!(ring[0]["valid_until"].as_u64().unwrap() <= now() + 259_200 + 5);

    // New credentials carry key 2; a validator that has not fetched the feed refuses them,
    // one that has accepts them and takes the list key 2 signed.
    let fresh = common::buy(
        &w.client,
        rider_vault.clone(),
        &order(&rider, Product::PayAsYouGo, Category::Standard),
    )
    .await
    .unwrap();
    rider
        .install_credential(&thudo_core::hex::decode(&fresh.credential).unwrap())
        .unwrap();
    let t = tomorrow_morning();
    let qr = rider.current_qr(t).unwrap().text;
    assert_eq!(
        validator.validate(&qr, t).unwrap().reason,
        Reason::UnknownIssuer
    );
    let feed = w.transit().validator_feed(bus.clone()).await.unwrap();
    assert_eq!(feed.issuer_keys.len(), 2);
    validator.set_trusted_keys(feed.issuer_keys).unwrap();
    assert_eq!(
        validator
            .update_deny_list(&thudo_core::hex::decode(&feed.deny_list).unwrap())
            .unwrap(),
        2,
        "a rotation publishes a newer list"
    );
    let qr = rider.current_qr(t + 60).unwrap().text;
    assert!(validator.validate(&qr, t + 60).unwrap().accepted);
    // Both the key-1 tap and the key-2 tap verify at the backend and are charged.
    let receipt = w
        .transit()
        .upload_taps(bus, validator.export_taps().unwrap())
        .await
        .unwrap();
    assert_eq!((receipt.charged_vnd, receipt.not_charged), (16_000, 0));
    // The keyring survives a restart of the server.
    let restarted = AppState::new(ServerConfig {
        storage: w.storage.clone(),
        operators: w.idp.operators(),
        secrets: std::sync::Arc::new(thudo_server::secrets::ServerSecrets::local()),
        fares: FarePolicy::default(),
        identity: w.idp.config(),
        test_identity: None,
        payments: thudo_server::transit::sales::Payments::sandbox(true),
        limits: thudo_server::gate::RateLimits::off(),
        min_client_version: None,
        push_bytes_per_day: thudo_server::sync::MAX_PUSH_BYTES_PER_DAY,
        pdf_reader: Default::default(),
    })
    .unwrap();
    let running = thudo_server::start(restarted, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let c = BackendClient::new(BackendConfig::new(&format!("http://{}", running.addr))).unwrap();
    let v = vault(&w.dir.path().join("bus-2"));
    c.enrol_validator(
        v.clone(),
        &ValidatorEnrolmentRequest {
            enrolment_code: w.enrolment_code(32),
            device_name: "bus 2".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        TransitClient::new(&c)
            .validator_feed(v)
            .await
            .unwrap()
            .issuer_keys
            .len(),
        2
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_can_claim_another_riders_transit_key() {
    // An attacker copies the victim's device key off a QR, buys a credential naming it, and
    // would revoke their own device to get the victim's key on every validator's deny list.
    let w = World::start().await;
    let (_victim_vault, victim) = w.rider("victim", VICTIM, Product::PayAsYouGo).await;
    let attacker = w.phone_device("attacker", RIDER).await;
    let e = common::buy(
        &w.client,
        attacker.clone(),
        &order(&victim, Product::PayAsYouGo, Category::Standard),
    )
    .await
    .unwrap_err();
    refused(e, 403, "device_key_taken");
    let attacker_id = BackendClient::registration(&attacker)
        .unwrap()
        .unwrap()
        .device_id;
    let (_, v) = w
        .admin_post("/v1/admin/transit/deny", json!({"devices": [attacker_id]}))
        .await;
    let (_, _, devices) = w.storage.deny_list(chrono::Utc::now().timestamp()).unwrap();
    assert!(
        devices.is_empty(),
        "version {v}: the victim's key stays off the list"
    );
}

/// An order names a key only with that key's signature over it, fresh; one device holds a few
/// live keys and one account orders a bounded number an hour: a flood of made-up keys (which
/// revoking the device would put on every validator's deny list) is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_prove_their_key_and_a_flood_of_keys_is_refused() {
    use thudo_core::crypto::p256::SoftwareKey;
    let w = World::start().await;
    let v = w.phone_device("flooder", RIDER).await;
    let token = BackendClient::registration(&v).unwrap().unwrap().token;
    let keyed = |key: &SoftwareKey, signed_at: u64| {
        CredentialOrder::new(Product::PayAsYouGo, Category::Standard).signed_with(key, signed_at)
    };
    // An order, and (when it was taken: these are free) the collection of its credential.
    let post = |order: CredentialOrder| {
        let req = w
            .http
            .post(w.url("/v1/transit/orders"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&order).unwrap());
        let (http, token) = (w.http.clone(), token.clone());
        let base = w.url("");
        async move {
            let answer = |r: reqwest::Response| async move {
                let retry_after = r
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_owned());
                (r.status().as_u16(), json_of(r).await, retry_after)
            };
            let ordered = answer(req.send().await.unwrap()).await;
            if ordered.0 != 200 {
                return ordered;
            }
            let id = ordered.1["order_id"].as_str().unwrap().to_owned();
            let collect = http
                .post(format!("{base}/v1/transit/orders/{id}/credential"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            answer(collect).await
        }
    };
    let key = SoftwareKey::generate().unwrap().0;
    let other = SoftwareKey::generate().unwrap().0;
    // No proof, another key's proof, a proof of another order, a stale proof: refused.
    let mut unproven = keyed(&key, now());
    unproven.proof.clear();
    let mut forged = keyed(&other, now());
    forged.device_public_key = thudo_core::hex::encode(key.public_key());
    let mut altered = keyed(&key, now());
    altered.product = Product::FreePass;
    let stale = keyed(&key, now() - 3_600);
    for (order, code) in [
        (unproven, "proof_required"),
        (forged, "bad_proof"),
        (altered, "bad_proof"),
        (stale, "stale_proof"),
    ] {
        let (status, body, _) = post(order).await;
        assert_eq!((status, body["error"].as_str()), (403, Some(code)));
    }
    // Made-up keys, each properly proven: the device's limit of live keys holds.
    let keys: Vec<SoftwareKey> = (0..4).map(|_| SoftwareKey::generate().unwrap().0).collect();
    for k in &keys[..3] {
        assert_eq!(post(keyed(k, now())).await.0, 200);
    }
    let (status, body, _) = post(keyed(&keys[3], now())).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("too_many_keys"))
    );
    // Renewals of a key it holds go on, up to the account's orders an hour, then 429 with a
    // time to retry (the client honours Retry-After).
    let mut last = (200, Value::Null, None);
    for _ in 0..20 {
        last = post(keyed(&keys[0], now())).await;
        if last.0 != 200 {
            break;
        }
    }
    assert_eq!(
        (last.0, last.1["error"].as_str(), last.2.as_deref()),
        (429, Some("too_many_orders"), Some("600"))
    );
    // What the device holds is on its revocation's deny list, and nothing more.
    let device = BackendClient::registration(&v).unwrap().unwrap().device_id;
    w.admin_post("/v1/admin/transit/deny", json!({"devices": [device]}))
        .await;
    let (_, _, listed) = w.storage.deny_list(now() as i64).unwrap();
    assert_eq!(listed.len(), 3);
}

/// Sequence numbers are a validator's counter, but an upload may name any `u64`: those past
/// `i64::MAX` (stored negative) are recognised as duplicates as the rest are, even in one range
/// with small ones, never a database error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_numbers_past_i64_are_stored_once() {
    let w = World::start().await;
    let (bus, _validator, _) = w.bus("bus-seq", 32).await;
    let tap = |seq: u64| Tap {
        seq,
        at: now(),
        route: 32,
        accepted: false,
        reason: Reason::Expired,
        card_id: None,
        product: None,
        qr_timestamp: None,
        qr_counter: None,
        qr: None,
        gate: None,
    };
    let taps = vec![tap(7), tap(1 << 63), tap(u64::MAX)];
    let first = w
        .transit()
        .upload_taps(bus.clone(), taps.clone())
        .await
        .unwrap();
    assert_eq!((first.stored, first.duplicates), (3, 0));
    assert_eq!(first.acknowledged_seq, u64::MAX);
    let again = w.transit().upload_taps(bus, taps).await.unwrap();
    assert_eq!((again.stored, again.duplicates), (0, 3));
}

/// A validator restored from a backup (here reinstalled with its token: its log starts again
/// from 1) numbers new taps with numbers the backend already holds for others. The backend
/// stores none of them and names them; the validator moves them past every stored number and
/// uploads them again, so no fare is lost as a "duplicate". A retry of a stored tap is still a
/// duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_validators_taps_are_renumbered_not_lost() {
    let w = World::start().await;
    let (bus, first, _) = w.bus("bus-restored", 32).await;
    let (phone, rider) = w.rider("rider-restored", RIDER, Product::PayAsYouGo).await;
    let t0 = tomorrow_morning();
    let first = Arc::new(Mutex::new(first));
    for hour in 0..2 {
        assert_eq!(tap(&first, &rider, t0 + hour * 3600), Reason::Ok);
    }
    let before = first.lock().unwrap().export_taps().unwrap();
    let receipt = w
        .transit()
        .upload_and_acknowledge(bus.clone(), first.clone())
        .await
        .unwrap();
    assert_eq!((receipt.stored, receipt.reused.len()), (2, 0));
    let charged_first = receipt.charged_vnd;
    assert!(charged_first > 0);

    // The same validator with its log lost: the next taps are numbered 1 and 2 again.
    let feed = w.transit().validator_feed(bus.clone()).await.unwrap();
    let mut restored = Validator::open(
        vault(&w.dir.path().join("bus-restored-log")),
        feed.issuer_keys,
        ValidatorConfig {
            route: 32,
            ..ValidatorConfig::default()
        },
    )
    .unwrap();
    restored
        .update_deny_list(&thudo_core::hex::decode(&feed.deny_list).unwrap())
        .unwrap();
    let restored = Arc::new(Mutex::new(restored));
    for hour in 2..4 {
        assert_eq!(tap(&restored, &rider, t0 + hour * 3600), Reason::Ok);
    }
    let reused: Vec<u64> = restored
        .lock()
        .unwrap()
        .export_taps()
        .unwrap()
        .iter()
        .map(|t| t.seq)
        .collect();
    assert_eq!(reused, [1, 2]);

    let receipt = w
        .transit()
        .upload_and_acknowledge(bus.clone(), restored.clone())
        .await
        .unwrap();
    assert_eq!(receipt.reused, [1, 2]);
    assert_eq!(receipt.next_free_seq, Some(3));
    assert_eq!((receipt.stored, receipt.duplicates), (2, 0));
    assert!(receipt.charged_vnd > 0);
    let (left, status) = {
        let mut restored = restored.lock().unwrap();
        (restored.export_taps().unwrap(), restored.tap_log_status())
    };
    assert!(left.is_empty());
    assert_eq!((status.next_seq, status.acked_seq), (5, 4));
    // Four trips charged in all: the day's total is what the four fares add up to under the
    // cap, the same whichever validator took them.
    let days = w.charges(&phone).await["days"].clone();
    let total: u64 = days
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d[1].as_u64().unwrap())
        .sum();
    assert_eq!(total, charged_first + receipt.charged_vnd);
    assert_eq!(total, 30_000, "four bus trips reach the day's cap");

    // The first upload sent again (its receipt lost): duplicates, nothing renumbered.
    let again = w
        .transit()
        .upload_taps(bus.clone(), before.clone())
        .await
        .unwrap();
    assert_eq!((again.stored, again.duplicates), (0, 2));
    assert!(again.reused.is_empty());
    // Another QR under a stored number and second (a clock reset to the same time): reused.
    let mut other = before[0].clone();
    other.qr_counter = other.qr_counter.map(|c| c + 1);
    let clash = w.transit().upload_taps(bus, vec![other]).await.unwrap();
    assert_eq!((clash.stored, clash.duplicates), (0, 0));
    assert_eq!(clash.reused, [before[0].seq]);
    assert_eq!(clash.next_free_seq, Some(5));
}
