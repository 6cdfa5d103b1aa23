//! Devices syncing with the reference backend on loopback, through a proxy that injects faults:
//! 500s, 429 with Retry-After, timeouts, truncated and invalid bodies, requests delivered twice,
//! responses lost after the server committed, and the server killed and restarted. After
//! recovery the server holds each acknowledged mutation exactly once and the device every server
//! change.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::{citizen_key, http_client, operator, start_proxy, vault, Fault, Role};
use serde_json::{json, Value};
use thudo_core::changes::outbox;
use thudo_core::handbook::library::Library;
use thudo_core::handbook::member::{DocumentNote, MemberHandbook};
use thudo_core::health::fhir::Kind;
use thudo_core::health::records::{self, HealthBook};
use thudo_core::sync::client::{
    BackendClient, BackendConfig, BackendError, SyncEvent, SyncObserver,
};
use thudo_core::sync::protocol::RegisterRequest;
use thudo_core::vault::Vault;
use thudo_server::devices::identity::LocalIdentityProvider;
use thudo_server::prelude::*;
use thudo_server::publishing::seed;
use thudo_server::transit::fares::FarePolicy;
use thudo_server::{AppState, Running, ServerConfig};

const CITIZEN: &str = "001088012345";

struct Backend {
    db: String,
    storage: Arc<dyn Storage>,
    running: Option<Running>,
    addr: SocketAddr,
}

impl Backend {
    async fn start(dir: &Path) -> Backend {
        let db = common::database(dir);
        let storage = thudo_server::open_storage(&db).unwrap();
        let state = AppState::new(server_config(storage.clone())).unwrap();
        seed::publish_demo(state.storage().as_ref(), &citizen_key(CITIZEN)).unwrap();
        let running = thudo_server::start(state, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = running.addr;
        Backend {
            db,
            storage,
            running: Some(running),
            addr,
        }
    }

    /// Kills the server (requests in flight dropped) and starts it again on the same port and
    /// database after `down`.
    async fn crash_and_restart(&mut self, down: Duration) {
        if let Some(r) = self.running.take() {
            r.kill();
        }
        tokio::time::sleep(down).await;
        let storage = thudo_server::open_storage(&self.db).unwrap();
        let state = AppState::new(server_config(storage.clone())).unwrap();
        self.storage = storage;
        let mut tries = 0;
        self.running = loop {
            match thudo_server::start(state.clone(), self.addr).await {
                Ok(r) => break Some(r),
                Err(_) if tries < 50 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                Err(e) => panic!("restart: {e}"),
            }
        };
    }

    /// Every change the server holds for the citizen's account in a collection.
    fn account_changes(&self, collection: &str) -> Vec<thudo_core::sync::protocol::Change> {
        let account = self
            .storage
            .account_for_citizen(&citizen_key(CITIZEN))
            .unwrap();
        self.storage
            .pull(&format!("acct:{account}"), collection, 0, 1_000_000)
            .unwrap()
            .0
    }
}

fn client(url: &str) -> BackendClient {
    let mut c = BackendConfig::new(url);
    c.request_timeout = Duration::from_millis(600);
    c.backoff_base = Duration::from_millis(10);
    c.backoff_max = Duration::from_millis(1500);
    c.max_attempts = 12;
    c.push_batch = 7;
    c.page_size = 3;
    BackendClient::new(c).unwrap()
}

/// The test identity provider of every backend in this file (its key is the test's).
fn idp() -> Arc<LocalIdentityProvider> {
    static IDP: OnceLock<Arc<LocalIdentityProvider>> = OnceLock::new();
    IDP.get_or_init(|| LocalIdentityProvider::generate("https://id.thudo.test", "thudo").unwrap())
        .clone()
}

fn server_config(storage: Arc<dyn Storage>) -> ServerConfig {
    ServerConfig {
        storage,
        operators: idp().operators(),
        secrets: std::sync::Arc::new(thudo_server::secrets::ServerSecrets::local()),
        fares: FarePolicy::default(),
        identity: idp().config(),
        test_identity: None,
        payments: thudo_server::transit::sales::Payments::sandbox(false),
        limits: thudo_server::gate::RateLimits::off(),
        min_client_version: None,
        push_bytes_per_day: thudo_server::sync::MAX_PUSH_BYTES_PER_DAY,
        pdf_reader: Default::default(),
    }
}

async fn register(c: &BackendClient, v: &Arc<Vault>, name: &str) {
    c.sign_in_and_register(v.clone(), name, |n| {
        idp().id_token(CITIZEN, n).map_err(|e| e.to_string())
    })
    .await
    .unwrap();
}

fn note(id: &str, text: &str, at: i64) -> DocumentNote {
    DocumentNote {
        id: id.into(),
        document_id: "nq-57-2024".into(),
        text: text.into(),
        updated_at: at,
    }
}

/// Records each event.
#[derive(Default)]
struct Events(Mutex<Vec<SyncEvent>>);

impl SyncObserver for Events {
    fn on_event(&self, e: &SyncEvent) {
        self.0.lock().unwrap().push(e.clone());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_recovers_with_each_mutation_applied_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(dir.path()).await;
    let (url, proxy) = start_proxy(backend.addr).await;
    let device = vault(&dir.path().join("phone"));
    let c = client(&url);
    register(&c, &device, "phone").await;

    // 40 notes and 5 health records, written offline.
    let handbook = MemberHandbook::new(&device);
    for i in 0..40 {
        handbook
            .save_note(&note(
                &format!("n{i}"),
                &format!("ghi chú {i}"),
                1_790_000_000 + i,
            ))
            .unwrap();
    }
    let book = HealthBook::new(&device);
    // The citizen's Patient came with an earlier pull (a record is only filed under a person
    // the book knows); these readings are then entered as unsigned imports.
    let citizen = &seed::health_records()[0];
    device
        .transaction(|tx| records::store_pulled(tx, citizen, None, 1))
        .unwrap();
    for i in 0..5 {
        let obs = json!({"resourceType": "Observation", "id": format!("bp-{i}"), "status": "final",
            "code": {"text": "Huyết áp"}, "subject": {"reference": "Patient/demo-citizen"},
            "effectiveDateTime": "2026-11-20", "valueString": format!("12{i}/80")});
        let bundle =
            json!({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": obs}]});
        book.import_bundle(&bundle.to_string(), None, 1_790_000_000)
            .unwrap();
    }
    assert_eq!(device.transaction(outbox::pending).unwrap().len(), 45);

    *proxy.faults.lock().unwrap() = VecDeque::from(vec![
        Fault::Error500,
        Fault::LoseResponse,
        Fault::TooMany,
        Fault::Truncate,
        Fault::Twice,
        Fault::Garbage,
        Fault::Slow,
        Fault::LoseResponse,
        Fault::Twice,
        Fault::Truncate,
    ]);
    let events = Events::default();
    let library = Arc::new(Library::open(&dir.path().join("library.db")).unwrap());
    let started = std::time::Instant::now();
    let report = c
        .sync(
            device.clone(),
            &common::collections_with(library.clone()),
            Some(&events),
        )
        .await
        .unwrap();
    assert!(
        proxy.faults.lock().unwrap().is_empty(),
        "every fault was used"
    );
    assert!(report.retries >= 7, "{report:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    let events = events.0.lock().unwrap().clone();
    assert!(events
        .iter()
        .any(|e| matches!(e, SyncEvent::Retrying { delay_ms: 1000, .. })));
    assert!(events.iter().any(|e| matches!(
        e,
        SyncEvent::Pushed {
            done: 45,
            total: 45
        }
    )));

    // The outbox is empty; the server holds each mutation once, with its content.
    assert!(device.transaction(outbox::pending).unwrap().is_empty());
    let notes = backend.account_changes("handbook.note");
    assert_eq!(notes.len(), 40, "each note once");
    let mut by_id: HashMap<String, Value> = HashMap::new();
    for n in notes {
        assert!(by_id.insert(n.record_id.clone(), n.payload).is_none());
    }
    for i in 0..40 {
        assert_eq!(by_id[&format!("n{i}")]["text"], format!("ghi chú {i}"));
    }
    let health = backend.account_changes("health.records");
    assert_eq!(
        health.len(),
        5 + seed::health_records().len(),
        "5 pushed + the facility's"
    );
    assert_eq!(report.pushed + report.duplicates, 45);

    // And the device holds every server change.
    assert_eq!(library.count().unwrap(), seed::documents().len() as u64);
    assert!(!library.search("nghi quyet khoa hoc", 5).unwrap().is_empty());
    let records = book.records("demo-citizen", None, None, None).unwrap();
    assert_eq!(records.len(), 5 + seed::health_records().len());
    assert_eq!(
        book.records("demo-citizen", Some(Kind::AllergyIntolerance), None, None)
            .unwrap()[0]
            .provenance
            .source,
        thudo_core::health::records::Source::Server
    );
    assert_eq!(handbook.meetings_from("2026-01-01").unwrap().len(), 1);
    assert_eq!(handbook.notices().unwrap().len(), 1);
    assert!(report.clock_offset_ms.unwrap().abs() < 1_000);

    // A second sync moves nothing.
    let again = c
        .sync(device.clone(), &common::collections_with(library), None)
        .await
        .unwrap();
    assert_eq!((again.pushed, again.pulled), (0, 0), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_sync_comes_back_and_nothing_is_lost_or_doubled() {
    let dir = tempfile::tempdir().unwrap();
    let mut backend = Backend::start(dir.path()).await;
    let url = format!("http://{}", backend.addr);
    let device = vault(&dir.path().join("phone"));
    let c = Arc::new(client(&url));
    register(&c, &device, "phone").await;
    let handbook = MemberHandbook::new(&device);
    for i in 0..30 {
        handbook
            .save_note(&note(&format!("k{i}"), "x", 1_790_000_000 + i))
            .unwrap();
    }
    // Kill the server as the sync starts; it comes back 400 ms later.
    let sync = {
        let c = c.clone();
        let device = device.clone();
        tokio::spawn(async move { c.sync(device, &common::collections(), None).await })
    };
    backend.crash_and_restart(Duration::from_millis(400)).await;
    let report = sync.await.unwrap().unwrap();
    assert_eq!(report.pushed + report.duplicates, 30);
    assert_eq!(backend.account_changes("handbook.note").len(), 30);
    assert!(device.transaction(outbox::pending).unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_week_offline_then_everything_syncs_and_two_devices_converge() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(dir.path()).await;
    let url = format!("http://{}", backend.addr);
    let phone = vault(&dir.path().join("phone"));
    let tablet = vault(&dir.path().join("tablet"));
    let c = client(&url);
    register(&c, &phone, "phone").await;
    register(&c, &tablet, "tablet").await;

    // A week offline: the phone cannot reach the server at all.
    let offline = {
        let mut cfg = BackendConfig::new("http://127.0.0.1:9");
        cfg.max_attempts = 2;
        cfg.backoff_base = Duration::from_millis(5);
        BackendClient::new(cfg).unwrap()
    };
    // The offline client needs the registration too: it shares the phone's vault.
    let day: i64 = 86_400;
    // The week ended a little while ago.
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        - 7 * day
        - 3_600;
    let phone_book = MemberHandbook::new(&phone);
    for d in 0..7 {
        for i in 0..10 {
            phone_book
                .save_note(&note(
                    &format!("p{d}-{i}"),
                    &format!("ngày {d}"),
                    t0 + d * day + i,
                ))
                .unwrap();
        }
        let err = offline
            .sync(phone.clone(), &common::collections(), None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, BackendError::Unavailable { attempts: 2, .. }),
            "{err:?}"
        );
    }
    // After the week, the same note edited on both devices: the tablet's edit is later and must
    // win everywhere.
    let t1 = t0 + 7 * day;
    phone_book
        .save_note(&note("shared", "from the phone", t1 + 100))
        .unwrap();
    let tablet_book = MemberHandbook::new(&tablet);
    tablet_book
        .save_note(&note("shared", "from the tablet", t1 + 200))
        .unwrap();
    tablet_book
        .save_note(&note("t-only", "tablet note", t1 + 50))
        .unwrap();
    assert_eq!(phone.transaction(outbox::pending).unwrap().len(), 71);

    let r1 = c
        .sync(phone.clone(), &common::collections(), None)
        .await
        .unwrap();
    assert_eq!(r1.pushed, 71);
    let r2 = c
        .sync(tablet.clone(), &common::collections(), None)
        .await
        .unwrap();
    assert_eq!(r2.pushed, 2, "the tablet's shared edit is newer");
    // The phone's older edit and the tablet's own two echoes are not applied over newer copies.
    assert_eq!(r2.superseded_locally, 3, "{r2:?}");
    let r3 = c
        .sync(phone.clone(), &common::collections(), None)
        .await
        .unwrap();
    assert!(r3.applied >= 2, "{r3:?}");

    let notes = |v: &Arc<Vault>| -> HashMap<String, String> {
        v.list_docs::<DocumentNote>()
            .unwrap()
            .into_iter()
            .map(|n| (n.id, n.text))
            .collect()
    };
    let on_phone = notes(&phone);
    assert_eq!(on_phone.len(), 72);
    assert_eq!(on_phone, notes(&tablet), "both devices hold the same notes");
    assert_eq!(on_phone["shared"], "from the tablet");

    // Concurrent edits again; the phone's, made earlier, reaches the server last and is kept
    // out there, and the phone takes the tablet's.
    tablet_book
        .save_note(&note("x", "tablet, later", t1 + 500))
        .unwrap();
    phone_book
        .save_note(&note("x", "phone, earlier", t1 + 400))
        .unwrap();
    c.sync(tablet.clone(), &common::collections(), None)
        .await
        .unwrap();
    let r4 = c
        .sync(phone.clone(), &common::collections(), None)
        .await
        .unwrap();
    assert_eq!((r4.pushed, r4.superseded_on_server), (0, 1), "{r4:?}");
    assert_eq!(notes(&phone)["x"], "tablet, later");
    c.sync(tablet.clone(), &common::collections(), None)
        .await
        .unwrap();
    assert_eq!(notes(&phone), notes(&tablet));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_4xx_json_and_typed_client_errors() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(dir.path()).await;
    let base = format!("http://{}", backend.addr);
    let http = http_client();
    let (facility, party) = (
        operator(&idp(), Role::HealthFacility),
        operator(&idp(), Role::PartyOrganisation),
    );
    let cases: Vec<(&str, &str, Option<&str>, &str, u16)> = vec![
        ("POST", "/v1/devices", None, "{", 400),
        ("POST", "/v1/devices", None, "[]", 400),
        (
            "POST",
            "/v1/devices",
            None,
            r#"{"citizen_id":"12","device_name":"x","role":"phone"}"#,
            400,
        ),
        (
            "POST",
            "/v1/devices",
            None,
            r#"{"citizen_id":"001088012345","device_name":"","role":"phone"}"#,
            400,
        ),
        (
            "POST",
            "/v1/devices",
            None,
            r#"{"citizen_id":"001088012345","device_name":"x","role":"admin"}"#,
            400,
        ),
        (
            "POST",
            "/v1/devices",
            None,
            r#"{"id_token":"x","device_name":"x","role":"admin"}"#,
            400,
        ),
        (
            "POST",
            "/v1/devices",
            None,
            r#"{"id_token":"a.b.c","device_name":"x","role":"phone"}"#,
            403,
        ),
        (
            "POST",
            "/test/identity/token",
            None,
            r#"{"citizen_id":"001088012345","nonce":"n"}"#,
            404,
        ),
        ("POST", "/v1/devices/d-1/revoke", None, "{}", 401),
        ("POST", "/v1/sync/push", None, r#"{"mutations":[]}"#, 401),
        (
            "POST",
            "/v1/sync/push",
            Some("nope"),
            r#"{"mutations":[]}"#,
            401,
        ),
        (
            "GET",
            "/v1/sync/pull?collection=handbook.note",
            None,
            "",
            401,
        ),
        ("GET", "/v1/nothing", None, "", 404),
        // Credentials first: an anonymous caller learns nothing of the route's methods.
        ("DELETE", "/v1/devices", None, "", 401),
        ("DELETE", "/v1/devices", Some("nope"), "", 401),
        (
            "POST",
            "/v1/admin/transit/deny",
            Some("wrong"),
            r#"{"cards":[1]}"#,
            401,
        ),
        (
            "POST",
            "/v1/admin/citizens/001088012345/health",
            Some(facility.as_str()),
            r#"{"resources":[{"id":"x"}]}"#,
            400,
        ),
        (
            "POST",
            "/v1/admin/cells/hn.c1/health.records",
            Some(party.as_str()),
            r#"{"items":[]}"#,
            404,
        ),
    ];
    for (method, path, token, body, status) in cases {
        let mut req = http.request(method.parse().unwrap(), format!("{base}{path}"));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let r = req.body(body.to_owned()).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{method} {path} {body}");
        let v: Value = serde_json::from_slice(&r.bytes().await.unwrap())
            .unwrap_or_else(|_| panic!("{method} {path}: body is not JSON"));
        assert!(v["error"].is_string(), "{method} {path}: {v}");
    }
    // Authenticated bad requests.
    let device = vault(&dir.path().join("phone"));
    let c = client(&base);
    register(&c, &device, "phone").await;
    let token = BackendClient::registration(&device).unwrap().unwrap().token;
    let bad_auth: Vec<(&str, &str, &str, u16)> = vec![
        ("GET", "/v1/sync/pull?collection=nope", "", 404),
        ("GET", "/v1/sync/pull", "", 400),
        (
            "GET",
            "/v1/sync/pull?collection=handbook.note&cursor=zzz",
            "",
            400,
        ),
        (
            "GET",
            "/v1/sync/pull?collection=handbook.note&limit=0",
            "",
            400,
        ),
        (
            "GET",
            "/v1/sync/pull?collection=handbook.note&limit=100000",
            "",
            400,
        ),
        (
            "POST",
            "/v1/sync/push",
            r#"{"mutations":[{"idempotency_key":"a","seq":1,"collection":"x","record_id":"r","op":"put","payload":{}},{"idempotency_key":"a","seq":2,"collection":"x","record_id":"r","op":"put","payload":{}}]}"#,
            400,
        ),
        (
            "POST",
            "/v1/transit/orders",
            r#"{"product":"monthly_all_routes","category":"standard","device_public_key":"zz","month":"2026-12"}"#,
            400,
        ),
        ("POST", "/v1/transit/taps", r#"{"taps":[]}"#, 403),
    ];
    for (method, path, body, status) in bad_auth {
        let r = http
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .header("authorization", format!("Bearer {token}"))
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{method} {path}");
        let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        assert!(v["error"].is_string());
    }
    // Mutations the server cannot take are rejected one by one, and the device drops them.
    let push = json!({"mutations": [
        {"idempotency_key": "k1", "seq": 1, "collection": "made.up", "record_id": "r", "op": "put", "payload": {}},
        {"idempotency_key": "k2", "seq": 2, "collection": "handbook.documents", "record_id": "r", "op": "put", "payload": {}},
        {"idempotency_key": "k3", "seq": 3, "collection": "handbook.note", "record_id": "r", "op": "put", "payload": {}},
        {"idempotency_key": "k4", "seq": 4, "collection": "health.records", "record_id": "r", "op": "merge", "payload": {}},
        // Text PostgreSQL cannot store (a NUL) is refused alike on every engine.
        {"idempotency_key": "k5", "seq": 5, "collection": "handbook.note", "record_id": "r\0", "op": "put", "payload": {}, "hlc": "1790000000000-000000-x"},
        {"idempotency_key": "k6", "seq": 6, "collection": "handbook.note", "record_id": "r6", "op": "put", "payload": {}, "hlc": "1790000000000-000000-x\0"},
    ]});
    let r: Value = serde_json::from_slice(
        &http
            .post(format!("{base}/v1/sync/push"))
            .header("authorization", format!("Bearer {token}"))
            .body(push.to_string())
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    let reasons: Vec<&str> = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "unknown_collection",
            "read_only_collection",
            "missing_clock",
            "unknown_op",
            "bad_record_id",
            "bad_clock"
        ]
    );
    // A NUL in an idempotency key or a device name: a 400, not a storage failure.
    let push = json!({"mutations": [
        {"idempotency_key": "k\0", "seq": 7, "collection": "handbook.note", "record_id": "r7", "op": "put", "payload": {}},
    ]});
    let r = http
        .post(format!("{base}/v1/sync/push"))
        .header("authorization", format!("Bearer {token}"))
        .body(push.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = http
        .post(format!("{base}/v1/devices"))
        .body(r#"{"id_token":"a.b.c","device_name":"x\u0000","role":"phone"}"#)
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // Client side: a refusal is typed.
    let unregistered = vault(&dir.path().join("other"));
    assert!(matches!(
        c.sync(unregistered, &common::collections(), None).await,
        Err(BackendError::NotRegistered)
    ));
    let bad = c
        .register(
            device.clone(),
            &RegisterRequest {
                id_token: "abc".into(),
                device_name: "x".into(),
                role: "phone".into(),
                account_id: None,
            },
        )
        .await;
    assert!(
        matches!(&bad, Err(BackendError::Refused { status: 403, code, .. }) if code.as_str() == "identity_invalid"),
        "{bad:?}"
    );
    // The OpenAPI document served is the generated one.
    let served = http
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&served[..], thudo_server::app::openapi_json().as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_cancels_a_sync_waiting_on_retries() {
    // Port 9 refuses at once; the next attempt is then at least 30 s away (full jitter in
    // [base/2, base]), so a sync that ends within seconds of close() was cancelled, however
    // loaded the machine (a tight wall-clock bound here was flaky).
    let mut cfg = BackendConfig::new("http://127.0.0.1:9");
    cfg.max_attempts = 100;
    cfg.backoff_base = Duration::from_secs(60);
    cfg.backoff_max = Duration::from_secs(60);
    let c = Arc::new(BackendClient::new(cfg).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let device = vault(dir.path());
    device
        .put_doc(&thudo_core::sync::client::Registration {
            device_id: "d".into(),
            account_id: "a".into(),
            token: "t".into(),
            token_expires_at: None,
        })
        .unwrap();
    let task = {
        let c = c.clone();
        tokio::spawn(async move { c.sync(device, &common::collections(), None).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    c.close();
    let result = task.await.unwrap();
    assert!(
        matches!(result, Err(BackendError::ClientClosed)),
        "{result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_read_on_one_device_is_read_on_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(dir.path()).await;
    let c = client(&format!("http://{}", backend.addr));
    let phone = vault(&dir.path().join("phone"));
    let tablet = vault(&dir.path().join("tablet"));
    register(&c, &phone, "phone").await;
    register(&c, &tablet, "tablet").await;
    c.sync(phone.clone(), &common::collections(), None)
        .await
        .unwrap();
    c.sync(tablet.clone(), &common::collections(), None)
        .await
        .unwrap();
    let id = "tb-2026-11-20";
    assert!(!MemberHandbook::new(&tablet).notices().unwrap()[0].read);
    MemberHandbook::new(&phone)
        .mark_notice_read(id, 1_790_000_000)
        .unwrap();
    let pushed = c
        .sync(phone.clone(), &common::collections(), None)
        .await
        .unwrap();
    let rejected: Vec<thudo_core::sync::status::RejectedMutation> = phone.list_docs().unwrap();
    assert_eq!(
        (pushed.pushed, pushed.rejected),
        (1, 0),
        "{pushed:?} {rejected:?}"
    );
    let pulled = c
        .sync(tablet.clone(), &common::collections(), None)
        .await
        .unwrap();
    assert_eq!(pulled.applied, 1, "{pulled:?}");
    let notices = MemberHandbook::new(&tablet).notices().unwrap();
    assert_eq!(notices[0].id, id);
    assert!(notices[0].read, "the read mark came over");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_purchase_is_made_once_and_a_moved_member_pulls_the_new_cell() {
    use thudo_core::transit::backend::CredentialOrder;
    use thudo_core::transit::{Category, Product};
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(dir.path()).await;
    let base = format!("http://{}", backend.addr);
    let c = client(&base);
    let phone = vault(&dir.path().join("phone"));
    register(&c, &phone, "phone").await;
    let token = BackendClient::registration(&phone).unwrap().unwrap().token;
    let key = thudo_core::crypto::p256::SoftwareKey::generate().unwrap().0;
    let order = CredentialOrder::new(Product::PayAsYouGo, Category::Standard)
        .signed_with(&key, chrono::Utc::now().timestamp() as u64);
    let order = serde_json::to_string(&order).unwrap();
    let http = http_client();
    let buy = |key: &'static str| {
        let req = http
            .post(format!("{base}/v1/transit/orders"))
            .header("authorization", format!("Bearer {token}"))
            .header("idempotency-key", key)
            .body(order.clone());
        async move { req.send().await.unwrap().bytes().await.unwrap() }
    };
    let first = buy("k-1").await;
    assert_eq!(
        buy("k-1").await,
        first,
        "the same answer, not a second credential"
    );
    assert_ne!(buy("k-2").await, first, "another key is another purchase");

    // Moved to another cell: the next pull of cell content starts that cell from the beginning.
    c.sync(phone.clone(), &common::collections(), None)
        .await
        .unwrap();
    assert_eq!(
        MemberHandbook::new(&phone)
            .meetings_from("2000-01-01")
            .unwrap()
            .len(),
        1
    );
    let storage = backend.storage.clone();
    storage
        .publish(
            "cell:hn.chi-bo-moi",
            &[thudo_core::sync::protocol::Change {
                collection: "handbook.meeting".into(),
                record_id: "moi-1".into(),
                op: "put".into(),
                payload: json!({"id": "moi-1", "date": "2026-12-10", "topic": "Chi bộ mới", "document_ids": []}),
                hlc: String::new(),
            }],
        )
        .unwrap();
    // More changes in the old cell, so its cursor is ahead of the new cell's only change.
    seed::publish_demo(storage.as_ref(), &citizen_key(CITIZEN)).unwrap();
    storage
        .set_cell(&citizen_key(CITIZEN), "hn.chi-bo-moi")
        .unwrap();
    c.sync(phone.clone(), &common::collections(), None)
        .await
        .unwrap();
    let meetings = MemberHandbook::new(&phone)
        .meetings_from("2000-01-01")
        .unwrap();
    assert!(meetings.iter().any(|m| m.id == "moi-1"), "{meetings:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_status_counts_what_waits_and_when_sync_last_worked() {
    use thudo_core::sync::status::{status, SyncStatus};
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(dir.path()).await;
    let c = client(&format!("http://{}", backend.addr));
    let phone = vault(&dir.path().join("phone"));
    assert_eq!(
        status(&phone).unwrap(),
        SyncStatus::default(),
        "nothing yet"
    );
    register(&c, &phone, "phone").await;
    // Offline: two notes wait.
    let handbook = MemberHandbook::new(&phone);
    handbook
        .save_note(&note("s1", "một", 1_790_000_000))
        .unwrap();
    handbook
        .save_note(&note("s2", "hai", 1_790_000_001))
        .unwrap();
    let waiting = status(&phone).unwrap();
    assert_eq!((waiting.pending_uploads, waiting.rejected), (2, 0));
    assert_eq!(
        (waiting.last_attempt_at, waiting.last_success_at),
        (None, None)
    );
    // A sync that cannot reach the server: tried, not done, nothing lost.
    let mut offline = BackendConfig::new("http://127.0.0.1:9");
    offline.max_attempts = 1;
    let offline = BackendClient::new(offline).unwrap();
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let refused = offline
        .sync(phone.clone(), &common::collections(), None)
        .await;
    assert!(
        matches!(refused, Err(BackendError::Unavailable { .. })),
        "{refused:?}"
    );
    let failed = status(&phone).unwrap();
    assert_eq!((failed.pending_uploads, failed.last_success_at), (2, None));
    let tried = failed.last_attempt_at.unwrap();
    assert!(tried >= t0 && tried <= t0 + 60, "{failed:?}");
    // A sync that works: nothing waits, and it says when.
    c.sync(phone.clone(), &common::collections(), None)
        .await
        .unwrap();
    let synced = status(&phone).unwrap();
    assert_eq!((synced.pending_uploads, synced.rejected), (0, 0));
    let done = synced.last_success_at.unwrap();
    let started = synced.last_attempt_at.unwrap();
    assert!(
        tried <= started && started <= done && done <= t0 + 60,
        "{synced:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_progress_says_how_many_changes_to_expect() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(dir.path()).await;
    let c = client(&format!("http://{}", backend.addr));
    let (phone, tablet) = (
        vault(&dir.path().join("phone")),
        vault(&dir.path().join("tablet")),
    );
    register(&c, &phone, "phone").await;
    register(&c, &tablet, "tablet").await;
    let handbook = MemberHandbook::new(&phone);
    for i in 0..10 {
        handbook
            .save_note(&note(&format!("p{i}"), "ghi", 1_790_000_000 + i))
            .unwrap();
    }
    c.sync(phone.clone(), &common::collections(), None)
        .await
        .unwrap();
    // The tablet pulls them three to a page (the test client's page size).
    let events = Events::default();
    c.sync(tablet.clone(), &common::collections(), Some(&events))
        .await
        .unwrap();
    let notes: Vec<(i64, Option<i64>)> = events
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            SyncEvent::Pulled {
                collection,
                received,
                total,
            } if collection == "handbook.note" => Some((*received, *total)),
            _ => None,
        })
        .collect();
    assert_eq!(
        notes,
        [(3, Some(10)), (6, Some(10)), (9, Some(10)), (10, Some(10))],
        "every page knows the whole"
    );
}

/// A cursor carries a mark of the change at its position. After the database was restored
/// from a backup (its numbers counted again, other changes under them, or none there yet), the
/// change at the position is not the one the cursor saw, and the device starts over rather
/// than skip what it never had. A cursor from before marks (`c1`) reads as it did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_from_before_a_restore_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(dir.path()).await;
    let base = format!("http://{}", backend.addr);
    let c = client(&base);
    let phone = vault(&dir.path().join("phone"));
    register(&c, &phone, "phone").await;
    let handbook = MemberHandbook::new(&phone);
    for i in 0..3 {
        handbook
            .save_note(&note(&format!("r{i}"), "ghi", 1_790_000_000 + i))
            .unwrap();
    }
    c.sync(phone.clone(), &common::collections(), None)
        .await
        .unwrap();
    let token = BackendClient::registration(&phone).unwrap().unwrap().token;
    let http = http_client();
    let pull = |cursor: String| {
        let request = http
            .get(format!(
                "{base}/v1/sync/pull?collection=handbook.note&cursor={cursor}"
            ))
            .bearer_auth(&token)
            .send();
        async move {
            let bytes = request.await.unwrap().bytes().await.unwrap();
            let body: Value = serde_json::from_slice(&bytes).unwrap();
            let next = body["next_cursor"].as_str().unwrap().to_owned();
            (body["changes"].as_array().unwrap().len(), next)
        }
    };
    let (all, cursor) = pull(String::new()).await;
    assert_eq!(all, 3);
    assert_eq!(
        pull(cursor.clone()).await,
        (0, cursor.clone()),
        "at the end"
    );
    let parts: Vec<&str> = cursor.split('.').collect();
    let [version, tag, position, mark] = parts[..] else {
        panic!("{cursor}")
    };
    assert_eq!(version, "c2");
    // Another change at the position now.
    let flipped = format!(
        "{}{}",
        if mark.starts_with('0') { "1" } else { "0" },
        &mark[1..]
    );
    let other = format!("c2.{tag}.{position}.{flipped}");
    assert_eq!(pull(other).await.0, 3, "started over");
    // No change there yet (the database went back further).
    let ahead = format!("c2.{tag}.{}.{mark}", position.parse::<i64>().unwrap() + 100);
    assert_eq!(pull(ahead).await.0, 3, "started over");
    // A cursor from before marks.
    assert_eq!(pull(format!("c1.{tag}.{position}")).await.0, 0);
}
