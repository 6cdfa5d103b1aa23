//! Two backend instances on one database behind a load balancer that sends each request to
//! either at random and injects faults (lost responses, requests delivered twice, 500s,
//! truncated and invalid bodies). Citizens' devices sync at the same time, riders buy passes
//! and two validators upload at once: nothing acknowledged is lost, nothing is applied twice,
//! every device converges and every fare is charged once. Runs on SQLite (two connections to
//! one file) and, with `THUDO_TEST_POSTGRES`, on PostgreSQL.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::{start_proxy_to, vault, Storage};
use thudo_core::handbook::member::{DocumentNote, MemberHandbook};
use thudo_core::sync::client::{BackendClient, BackendConfig};
use thudo_core::sync::protocol::ValidatorEnrolmentRequest;
use thudo_core::transit::backend::CredentialOrder;
use thudo_core::transit::backend::TransitClient;
use thudo_core::transit::phone::{Phone, PhoneOptions};
use thudo_core::transit::validator::{Validator, ValidatorConfig};
use thudo_core::transit::{Category, Product};
use thudo_core::vault::Vault;
use thudo_server::devices::identity::LocalIdentityProvider;
use thudo_server::transit::fares::FarePolicy;
use thudo_server::transit::sales::Payments;
use thudo_server::{AppState, Running, ServerConfig};

const CITIZENS: usize = 4;
const DEVICES_PER_CITIZEN: usize = 2;
const ROUNDS: usize = 3;
const NOTES_PER_ROUND: usize = 6;
const RIDES: usize = 5;

fn client(url: &str) -> BackendClient {
    let mut c = BackendConfig::new(url);
    c.request_timeout = Duration::from_secs(5);
    c.backoff_base = Duration::from_millis(5);
    c.backoff_max = Duration::from_millis(200);
    c.max_attempts = 30;
    c.push_batch = 4;
    c.page_size = 5;
    BackendClient::new(c).unwrap()
}

fn citizen(i: usize) -> String {
    format!("00109000{i:04}")
}

fn seed() -> u64 {
    let mut b = [0u8; 8];
    thudo_core::crypto::fill_random(&mut b).unwrap();
    u64::from_le_bytes(b)
}

async fn instance(
    db: &str,
    idp: &LocalIdentityProvider,
    payments: &Payments,
) -> (Arc<dyn Storage>, Running) {
    let storage = thudo_server::open_storage(db).unwrap();
    let state = AppState::new(ServerConfig {
        storage: storage.clone(),
        operators: idp.operators(),
        secrets: std::sync::Arc::new(thudo_server::secrets::ServerSecrets::local()),
        fares: FarePolicy::default(),
        identity: idp.config(),
        test_identity: None,
        payments: payments.clone(),
        limits: thudo_server::gate::RateLimits::off(),
        min_client_version: None,
        push_bytes_per_day: thudo_server::sync::MAX_PUSH_BYTES_PER_DAY,
        pdf_reader: Default::default(),
    })
    .unwrap();
    let running = thudo_server::start(state, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    (storage, running)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_behind_a_faulty_balancer_lose_nothing_and_charge_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::database(dir.path());
    let idp = LocalIdentityProvider::generate("https://id.thudo.test", "thudo").unwrap();
    // Both instances start on the new database at once: one issuer keyring for both.
    // One provider for both instances: a notification may reach either.
    let payments = Payments::sandbox(false);
    let ((storage, a), (_, b)) = tokio::join!(
        instance(&db, &idp, &payments),
        instance(&db, &idp, &payments)
    );
    let seed = seed();
    let (url, proxy) = start_proxy_to(&[a.addr, b.addr], seed).await;
    let c = client(&url);

    // Devices register and validators enrol through the balancer (no faults yet: a lost
    // registration answer is the citizen's to redo, as a single-use code is).
    let mut devices: Vec<(usize, usize, Arc<Vault>)> = Vec::new();
    for ci in 0..CITIZENS {
        for di in 0..DEVICES_PER_CITIZEN {
            let v = vault(&dir.path().join(format!("c{ci}-d{di}")));
            c.sign_in_and_register(v.clone(), &format!("d{di}"), |n| {
                idp.id_token(&citizen(ci), n).map_err(|e| e.to_string())
            })
            .await
            .unwrap();
            devices.push((ci, di, v));
        }
    }
    let mut validators = Vec::new();
    for (i, route) in [32u16, 34].into_iter().enumerate() {
        let v = vault(&dir.path().join(format!("bus-{i}")));
        let (code, _) = thudo_server::transit::validators::create_enrolment(
            storage.as_ref(),
            &format!("bus {route}"),
            thudo_server::transit::validators::Binding::Bus(route),
            3600,
        )
        .unwrap();
        c.enrol_validator(
            v.clone(),
            &ValidatorEnrolmentRequest {
                enrolment_code: code,
                device_name: format!("bus {route}"),
            },
        )
        .await
        .unwrap();
        validators.push((v, route));
    }

    // From here on, one request in four meets a fault.
    proxy.random_fault_one_in.store(4, Ordering::Relaxed);

    // Every device writes notes offline and syncs, all at once, round after round.
    for round in 0..ROUNDS {
        for (ci, di, v) in &devices {
            let handbook = MemberHandbook::new(v);
            for n in 0..NOTES_PER_ROUND {
                let id = format!("c{ci}-d{di}-r{round}-n{n}");
                handbook
                    .save_note(&DocumentNote {
                        id,
                        document_id: "nq-57-2024".into(),
                        text: format!("ghi chú {round}.{n}"),
                        updated_at: 1_790_000_000 + (round * 100 + n) as i64,
                    })
                    .unwrap();
            }
        }
        let registry = common::collections();
        let syncs = devices
            .iter()
            .map(|(_, _, v)| c.sync(v.clone(), &registry, None));
        for report in futures_util::future::join_all(syncs).await {
            report.unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        }
    }

    // Riders buy pay-as-you-go passes through the faulty balancer (retried purchases).
    let mut riders = Vec::new();
    for (ci, _, v) in devices.iter().filter(|(_, di, _)| *di == 0) {
        let phone = Phone::open(v.clone(), None, PhoneOptions::default()).unwrap();
        let order = CredentialOrder::new(Product::PayAsYouGo, Category::Standard)
            .signed_by(&phone, chrono::Utc::now().timestamp() as u64)
            .unwrap();
        let placed = TransitClient::new(&c)
            .order(v.clone(), &order)
            .await
            .unwrap();
        let r = TransitClient::new(&c)
            .collect(v.clone(), &placed.order_id)
            .await
            .unwrap();
        phone
            .install_credential(&thudo_core::hex::decode(&r.credential).unwrap())
            .unwrap();
        riders.push((*ci, phone, r.card_id));
    }

    // Each rider rides five times in one Hanoi day, alternating buses, ten minutes apart.
    let mut buses = Vec::new();
    for (v, route) in &validators {
        let feed = TransitClient::new(&c)
            .validator_feed(v.clone())
            .await
            .unwrap();
        let mut bus = Validator::open(
            v.clone(),
            feed.issuer_keys,
            ValidatorConfig {
                route: *route,
                ..ValidatorConfig::default()
            },
        )
        .unwrap();
        bus.update_deny_list(&thudo_core::hex::decode(&feed.deny_list).unwrap())
            .unwrap();
        buses.push((v.clone(), bus));
    }
    let now = chrono::Utc::now().timestamp() as u64;
    let hanoi = now + 7 * 3600;
    let morning = hanoi - hanoi % 86_400 + 86_400 - 7 * 3600 + 7 * 3600;
    let policy = FarePolicy::default();
    let mut expected = Vec::new();
    for (_, phone, card) in &riders {
        let (mut today, mut month) = (0, 0);
        for ride in 0..RIDES {
            let at = morning + (ride as u64) * 600;
            let (_, bus) = &mut buses[ride % 2];
            let qr = phone.current_qr(at).unwrap().text;
            assert!(bus.validate(&qr, at).unwrap().accepted);
            let fare = policy.charge(validators[ride % 2].1, today, month);
            today += fare;
            month += fare;
        }
        expected.push((*card, today));
    }

    // Both validators upload at the same time, through the balancer, until all is taken.
    let exported: Vec<_> = buses
        .iter_mut()
        .map(|(v, bus)| (v.clone(), bus.export_taps().unwrap()))
        .collect();
    assert_eq!(
        exported.iter().map(|(_, t)| t.len()).sum::<usize>(),
        riders.len() * RIDES
    );
    let uploads = exported.iter().cloned().map(|(v, taps)| {
        let c = &c;
        async move { TransitClient::new(c).upload_taps(v.clone(), taps).await }
    });
    let mut first_fares = Vec::new();
    for receipt in futures_util::future::join_all(uploads).await {
        let receipt = receipt.unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        // Some answers were lost to the balancer and the client retried: whatever the retry
        // found stored is reported as if charged by the first.
        assert_eq!(
            receipt.stored_charged_vnd,
            receipt.taps.iter().map(|t| t.charged_vnd).sum::<u64>()
        );
        first_fares.push(receipt.stored_charged_vnd);
    }
    let all_fares: u64 = expected.iter().map(|(_, fare)| fare).sum();
    assert_eq!(
        first_fares.iter().sum::<u64>(),
        all_fares,
        "seed {seed}: receipts add up"
    );
    // And once more, as a validator that never saw its acknowledgement would: nothing charged
    // twice, and the receipt says what is stored for each tap.
    for ((v, taps), first) in exported.into_iter().zip(first_fares) {
        let sent = taps.len();
        let again = TransitClient::new(&c).upload_taps(v, taps).await;
        let again = again.unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(again.charged_vnd, 0, "seed {seed}: nothing charged twice");
        assert_eq!(
            again.stored_charged_vnd, first,
            "seed {seed}: what is stored"
        );
        assert_eq!(again.taps.len(), sent);
        assert!(again
            .taps
            .iter()
            .all(|t| t.duplicate && t.verdict == "charged"));
    }

    // A last sync of each device without faults: everything converges.
    proxy.random_fault_one_in.store(0, Ordering::Relaxed);
    for (_, _, v) in &devices {
        c.sync(v.clone(), &common::collections(), None)
            .await
            .unwrap();
    }
    let faults = proxy
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.contains("Some("))
        .count();
    assert!(faults >= 10, "seed {seed}: only {faults} faults were met");

    let per_citizen = DEVICES_PER_CITIZEN * ROUNDS * NOTES_PER_ROUND;
    for ci in 0..CITIZENS {
        // The server holds each note once.
        let account = storage
            .account_for_citizen(
                &thudo_server::secrets::ServerSecrets::local().citizen(&citizen(ci)),
            )
            .unwrap();
        let (changes, _, more) = storage
            .pull(&format!("acct:{account}"), "handbook.note", 0, 100_000)
            .unwrap();
        assert!(!more);
        let ids: HashSet<&str> = changes.iter().map(|c| c.record_id.as_str()).collect();
        assert_eq!(changes.len(), per_citizen, "seed {seed}: applied twice?");
        assert_eq!(ids.len(), per_citizen, "seed {seed}: lost?");
        // Every device of the citizen holds every note of the citizen's devices.
        for (_, _, v) in devices.iter().filter(|(c, _, _)| *c == ci) {
            let notes = MemberHandbook::new(v).notes_for("nq-57-2024").unwrap();
            assert_eq!(
                notes.len(),
                per_citizen,
                "seed {seed}: a device missed a change"
            );
        }
    }
    for (card, fare) in expected {
        let charged: u64 = storage.charges(card).unwrap().iter().map(|(_, v)| v).sum();
        assert_eq!(
            charged, fare,
            "seed {seed}: card {card} charged once, capped"
        );
    }
    assert_eq!(
        storage.fraud_records(0, 10_000).unwrap(),
        vec![],
        "seed {seed}: no tap was taken for a relay or a forgery"
    );
    a.stop().await;
    b.stop().await;
}
