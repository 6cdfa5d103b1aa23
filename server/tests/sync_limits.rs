//! Sync limits: a buggy or hostile device of the same account cannot make another phone or the
//! server run out of memory. The server refuses records over the cap, ends pull pages at a byte
//! cap, and the client reads responses with a size limit, applying pages as they come.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::sync::{Arc, Mutex};

use axum::routing::get;
use common::{http_client, start_local, vault};
use thudo_core::handbook::member::{DocumentNote, MemberHandbook};
use thudo_core::sync::client::{
    BackendClient, BackendConfig, BackendError, SyncEvent, SyncObserver,
};
use thudo_core::sync::protocol::{MAX_PULL_PAGE_BYTES, MAX_RECORD_BYTES};

const CITIZEN: &str = "001088012345";

fn note(id: &str, bytes: usize, at: i64) -> DocumentNote {
    DocumentNote {
        id: id.into(),
        document_id: "nq-57-2024".into(),
        text: "đ".repeat(bytes / 2),
        updated_at: at,
    }
}

#[derive(Default)]
struct Pages(Mutex<Vec<i64>>);

impl SyncObserver for Pages {
    fn on_event(&self, event: &SyncEvent) {
        if let SyncEvent::Pulled {
            collection,
            received,
            ..
        } = event
        {
            if collection == "handbook.note" {
                self.0.lock().unwrap().push(*received);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_records_are_refused_and_pages_are_bounded_in_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let common::Local {
        running,
        idp,
        client: c,
        url,
        ..
    } = start_local(dir.path()).await;
    let hostile = vault(&dir.path().join("hostile"));
    let phone = vault(&dir.path().join("phone"));
    c.sign_in_and_register(hostile.clone(), "hostile", |n| {
        idp.id_token(CITIZEN, n).map_err(|e| e.to_string())
    })
    .await
    .unwrap();
    c.sign_in_and_register(phone.clone(), "phone", |n| {
        idp.id_token(CITIZEN, n).map_err(|e| e.to_string())
    })
    .await
    .unwrap();

    // One record over the cap is refused for good; a normal one beside it goes through.
    let book = MemberHandbook::new(&hostile);
    book.save_note(&note("huge", MAX_RECORD_BYTES + 1024, 1_790_000_000))
        .unwrap();
    book.save_note(&note("small", 100, 1_790_000_001)).unwrap();
    let pushed = c
        .sync(hostile.clone(), &common::collections(), None)
        .await
        .unwrap();
    assert_eq!((pushed.pushed, pushed.rejected), (1, 1), "{pushed:?}");

    // A bare FHIR resource is what a facility publishes: a device pushing one is refused, so
    // no device's record can pass as a facility's on the other phones.
    let token = BackendClient::registration(&hostile)
        .unwrap()
        .unwrap()
        .token;
    let http = http_client();
    let body = serde_json::json!({"mutations": [{"idempotency_key": "bare-1", "seq": 1,
        "collection": "health.records", "record_id": "Immunization/fake", "op": "put",
        "payload": {"resourceType": "Immunization", "id": "fake", "status": "completed",
                    "vaccineCode": {"text": "x"}, "patient": {"reference": "Patient/p"},
                    "occurrenceDateTime": "2026-11-01"}}]});
    let push = || async {
        let answer = http
            .post(format!("{url}/v1/sync/push"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&answer.bytes().await.unwrap()).unwrap()
    };
    let answer = push().await;
    assert_eq!(answer["results"][0]["outcome"], "rejected");
    assert_eq!(answer["results"][0]["reason"], "resource_wrapper_required");
    // The same push again (its answer lost): refused again for the same reason, not taken
    // for a duplicate the device would drop as delivered.
    let again = push().await;
    assert_eq!(again["results"][0], answer["results"][0], "{again}");

    // Many records just under the cap, 20 MiB in all (more than one request may carry): pushed
    // in batches bounded in bytes, then pulled in pages bounded in bytes.
    let count = 20;
    for i in 0..count {
        book.save_note(&note(
            &format!("big-{i}"),
            MAX_RECORD_BYTES - 4096,
            1_790_000_100 + i,
        ))
        .unwrap();
    }
    let pushed = c
        .sync(hostile.clone(), &common::collections(), None)
        .await
        .unwrap();
    assert_eq!(pushed.pushed, count);
    let pages = Pages::default();
    let pulled = c
        .sync(phone.clone(), &common::collections(), Some(&pages))
        .await
        .unwrap();
    assert_eq!(pulled.applied, count + 1, "{pulled:?}");
    let received = pages.0.lock().unwrap().clone();
    // Each page holds at most the byte cap plus one record: at least three pages here.
    let per_page = (MAX_PULL_PAGE_BYTES + MAX_RECORD_BYTES) / (MAX_RECORD_BYTES - 4096);
    assert!(received.len() >= 3, "pages {received:?}");
    for pair in received.windows(2) {
        assert!(pair[1] - pair[0] <= per_page as i64, "pages {received:?}");
    }
    let notes = MemberHandbook::new(&phone).notes_for("nq-57-2024").unwrap();
    assert_eq!(notes.len() as i64, count + 1);
    assert!(notes.iter().all(|n| n.id != "huge"));
    running.stop().await;
}

/// A device registered (as far as it knows) with the server `app` on loopback, one attempt a
/// request (pushes of `push_batch` when given); the vault's directory is returned to be kept.
async fn device_of(
    app: axum::Router,
    push_batch: Option<usize>,
) -> (
    tempfile::TempDir,
    std::sync::Arc<thudo_core::vault::Vault>,
    BackendClient,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let dir = tempfile::tempdir().unwrap();
    let v = vault(&dir.path().join("v"));
    v.put_doc(&thudo_core::sync::client::Registration {
        device_id: "d".into(),
        account_id: "a".into(),
        token: "t".into(),
        token_expires_at: None,
    })
    .unwrap();
    let mut config = BackendConfig::new(&format!("http://{addr}"));
    config.max_attempts = 1;
    config.push_batch = push_batch.unwrap_or(config.push_batch);
    (dir, v, BackendClient::new(config).unwrap())
}

/// A device pulls from `app` (a broken or hostile server) and refuses the answer as too large.
async fn pull_is_refused_for_its_size(app: axum::Router) {
    let (_dir, v, c) = device_of(app, None).await;
    match c.sync(v, &common::collections(), None).await {
        Err(BackendError::Protocol { detail }) => {
            assert!(detail.contains("larger than"), "{detail}")
        }
        other => panic!("expected a refused response, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_refuses_a_response_over_its_limit_as_it_streams() {
    // A broken or hostile server answering a pull with 64 MiB, without a length up front.
    let app = axum::Router::new().route(
        "/v1/sync/pull",
        get(|| async {
            let chunk = vec![b' '; 1 << 20];
            let stream = futures_util::stream::iter(
                (0..64).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
            );
            axum::body::Body::from_stream(stream)
        }),
    );
    pull_is_refused_for_its_size(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_bomb_is_refused_by_its_decompressed_size() {
    // 64 MiB of zeros compress to about 64 KiB: the limit must count what comes out.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, &vec![0u8; 64 << 20]).unwrap();
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 1 << 20, "{} bytes compressed", bomb.len());
    let app = axum::Router::new().route(
        "/v1/sync/pull",
        get(move || {
            let bomb = bomb.clone();
            async move {
                (
                    [
                        ("content-encoding", "gzip"),
                        ("content-type", "application/json"),
                    ],
                    bomb,
                )
            }
        }),
    );
    pull_is_refused_for_its_size(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_compressed_for_clients_that_accept_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let local = common::start_local(dir.path()).await;
    let spec = local.url.clone() + "/openapi.json";
    // A client that leaves decoding to the test.
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured(thudo_core::sync::client::tls_config(&[], &[]).unwrap())
        .no_gzip()
        .build()
        .unwrap();
    let plain = http.get(&spec).send().await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    let plain = plain.bytes().await.unwrap();
    let zipped = http
        .get(&spec)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    let zipped = zipped.bytes().await.unwrap();
    assert!(
        zipped.len() * 4 < plain.len(),
        "{} of {}",
        zipped.len(),
        plain.len()
    );
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&zipped[..]),
        &mut unzipped,
    )
    .unwrap();
    assert_eq!(unzipped, plain);
    local.running.stop().await;
}

/// A server that always says "more" with cursors that go round (A, B, A, ...) and empty pages
/// is followed at most `MAX_PULL_PAGES_PER_SYNC` pages per collection: the sync ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_cursors_go_round_is_not_followed_for_ever() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use thudo_core::sync::client::MAX_PULL_PAGES_PER_SYNC;
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    let app = axum::Router::new()
        .route(
            "/v1/sync/pull",
            get(move || {
                let n = count.fetch_add(1, Ordering::SeqCst);
                async move {
                    let cursor = if n % 2 == 0 { "A" } else { "B" };
                    axum::Json(serde_json::json!({
                        "changes": [], "next_cursor": cursor, "has_more": true
                    }))
                }
            }),
        )
        .route(
            "/v1/sync/push",
            axum::routing::post(|| async { axum::Json(serde_json::json!({"results": []})) }),
        );
    let (_dir, v, c) = device_of(app, None).await;
    let one =
        thudo_core::changes::Registry::new(vec![thudo_core::changes::Collection::of_documents::<
            DocumentNote,
        >(
            thudo_core::changes::CollectionSpec::device(
                "handbook.note",
                thudo_core::changes::ConflictPolicy::LastWriterWins,
            ),
        )]);
    let report = tokio::time::timeout(std::time::Duration::from_secs(120), c.sync(v, &one, None))
        .await
        .expect("the sync ends")
        .unwrap();
    assert_eq!(report.pulled, 0);
    assert_eq!(served.load(Ordering::SeqCst), MAX_PULL_PAGES_PER_SYNC);
}

/// A push reads the outbox whole once and then each batch alone, yet sends in the order the
/// changes were made even where storage order differs (an entry written again, as a restored
/// backup does), and sends the changes made while it ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_goes_in_change_order_batch_by_batch() {
    use axum::routing::post;
    let received: Arc<Mutex<Vec<Vec<u64>>>> = Arc::default();
    let seen = received.clone();
    let phone_slot: Arc<Mutex<Option<Arc<thudo_core::vault::Vault>>>> = Arc::default();
    let phone_in_push = phone_slot.clone();
    let app = axum::Router::new()
        .route(
            "/v1/sync/pull",
            get(|| async {
                axum::Json(serde_json::json!({"changes": [], "next_cursor": "", "has_more": false}))
            }),
        )
        .route(
            "/v1/sync/push",
            post(move |body: axum::body::Bytes| {
                let (seen, phone) = (seen.clone(), phone_in_push.clone());
                async move {
                    let request: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    let mutations = request["mutations"].as_array().unwrap();
                    let mut batches = seen.lock().unwrap();
                    batches.push(mutations.iter().map(|m| m["seq"].as_u64().unwrap()).collect());
                    // While the first batch is on its way, the citizen writes another note.
                    if batches.len() == 1 {
                        let phone = phone.lock().unwrap().clone().unwrap();
                        MemberHandbook::new(&phone)
                            .save_note(&note("during", 100, 1_790_000_100))
                            .unwrap();
                    }
                    let results: Vec<_> = mutations
                        .iter()
                        .map(|m| serde_json::json!({"idempotency_key": m["idempotency_key"], "outcome": "applied"}))
                        .collect();
                    axum::Json(serde_json::json!({ "results": results }))
                }
            }),
        );
    let (_dir, phone, c) = device_of(app, Some(2)).await;
    *phone_slot.lock().unwrap() = Some(phone.clone());
    let book = MemberHandbook::new(&phone);
    for i in 0..5 {
        book.save_note(&note(&format!("n{i}"), 100, 1_790_000_000 + i))
            .unwrap();
    }
    // The first change written again: it is now last in storage, first in change order.
    use thudo_core::changes::outbox::OutboxEntry;
    let first: OutboxEntry = phone.get_doc(&format!("{:020}", 1)).unwrap().unwrap();
    phone
        .delete(
            <OutboxEntry as thudo_core::vault::Document>::COLLECTION,
            &format!("{:020}", 1),
        )
        .unwrap();
    phone.put_doc(&first).unwrap();
    let report = c
        .sync(phone.clone(), &common::collections(), None)
        .await
        .unwrap();
    assert_eq!(report.pushed, 6, "{report:?}");
    assert_eq!(
        *received.lock().unwrap(),
        vec![vec![1, 2], vec![3, 4], vec![5], vec![6]],
        "in change order, two at a time, and the change made during the push"
    );
    assert!(phone
        .transaction(thudo_core::changes::outbox::pending)
        .unwrap()
        .is_empty());
}

/// A backend whose accounts may push `bytes_per_day`, on the database `db`.
async fn start_with_push_budget(db: &str, bytes_per_day: u64) -> common::Local {
    common::start_configured(db, |config| thudo_server::ServerConfig {
        push_bytes_per_day: bytes_per_day,
        ..config
    })
    .await
}

/// An account's day of pushes, spent: the batches that fit are taken, the next is refused
/// whole though its first change alone would fit (429 until the next UTC day), waits in the
/// phone's outbox with the time to come back, and the sync goes on; a retry of a change
/// already taken is answered once the day is spent to the byte, and another account pushes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_days_pushes_stop_at_the_budget_and_wait_on_the_phone() {
    use thudo_core::changes::outbox::{self, OutboxEntry};
    use thudo_server::sync::store::push_cost;
    // Within two minutes of midnight (UTC) the day's end would come before the client gives
    // up waiting: start after it.
    let to_midnight = 86_400 - chrono::Utc::now().timestamp().rem_euclid(86_400);
    if to_midnight < 120 {
        tokio::time::sleep(std::time::Duration::from_secs(to_midnight as u64 + 1)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = common::database(dir.path());
    let hlc = format!("{:013}-000000-phone", chrono::Utc::now().timestamp_millis());
    let mutation = |key: &str, id: &str, text: usize| {
        serde_json::json!({"idempotency_key": key, "seq": 1,
            "collection": "handbook.note", "record_id": id, "op": "put",
            "payload": {"id": id, "document_id": "d", "text": "x".repeat(text), "updated_at": 1},
            "hlc": hlc})
    };
    let cost = |m: &serde_json::Value| {
        let m: thudo_core::sync::protocol::Mutation = serde_json::from_value(m.clone()).unwrap();
        push_cost(&m, &m.payload.to_string())
    };
    let entry_cost = |e: &OutboxEntry| {
        let m = thudo_core::sync::protocol::Mutation {
            idempotency_key: e.idempotency_key.clone(),
            seq: e.seq,
            collection: e.collection.clone(),
            record_id: e.record_id.clone(),
            op: e.op.clone(),
            payload: e.payload.clone(),
            hlc: e.hlc.clone(),
        };
        push_cost(&m, &m.payload.to_string())
    };
    // The phone's six notes of about 1.6 KB, written before it registers.
    let phone = vault(&dir.path().join("phone"));
    let book = MemberHandbook::new(&phone);
    for i in 0..6 {
        book.save_note(&note(&format!("n{i}"), 1_500, 1_790_000_000 + i))
            .unwrap();
    }
    let notes: Vec<u64> = phone
        .transaction(outbox::pending)
        .unwrap()
        .iter()
        .map(entry_cost)
        .collect();
    // The day's bytes: a first change by hand, two batches of two, and the fifth note with
    // 100 bytes to spare (less than the sixth).
    let early = mutation("early", "e1", 1);
    let left = notes[4] + 100;
    assert!(notes[5] > 100 && left >= 256);
    let budget = cost(&early) + notes[..4].iter().sum::<u64>() + left;
    let local = start_with_push_budget(&db, budget).await;
    let mut config = BackendConfig::new(&local.url);
    config.push_batch = 2;
    let c = BackendClient::new(config).unwrap();
    let idp = local.idp.clone();
    c.sign_in_and_register(phone.clone(), "phone", |n| {
        idp.id_token(CITIZEN, n).map_err(|e| e.to_string())
    })
    .await
    .unwrap();
    let token = BackendClient::registration(&phone).unwrap().unwrap().token;
    let push = |m: serde_json::Value| {
        let body = serde_json::json!({ "mutations": [m] });
        http_client()
            .post(format!("{}/v1/sync/push", local.url))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let outcome = |r: reqwest::Response| async move {
        assert_eq!(r.status().as_u16(), 200);
        let body: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        body["results"][0]["outcome"].as_str().unwrap().to_owned()
    };
    assert_eq!(outcome(push(early.clone()).await.unwrap()).await, "applied");
    let report = c
        .sync(phone.clone(), &common::collections(), None)
        .await
        .unwrap();
    assert_eq!(report.pushed, 4, "{report:?}");
    let waiting = phone.transaction(outbox::pending).unwrap();
    let ids: Vec<&str> = waiting.iter().map(|e| e.record_id.as_str()).collect();
    assert_eq!(ids, vec!["n4", "n5"], "the refused batch waits, whole");
    let push_after: i64 = String::from_utf8(phone.get("sync.state", "push_after").unwrap().body)
        .unwrap()
        .parse()
        .unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!(
        push_after > now && push_after <= now + 86_400,
        "{push_after}"
    );
    let account = BackendClient::registration(&phone)
        .unwrap()
        .unwrap()
        .account_id;
    let held = || {
        let (changes, _, _) = local
            .storage
            .pull(&format!("acct:{account}"), "handbook.note", 0, 100)
            .unwrap();
        changes.into_iter().map(|c| c.record_id).collect::<Vec<_>>()
    };
    assert_eq!(
        held(),
        vec!["e1", "n0", "n1", "n2", "n3"],
        "n4 not taken alone"
    );
    // What is left refuses a larger change, with the time to come back, and takes one of
    // exactly its size; then a key taken before is still answered, and a new one refused.
    let larger = mutation("larger", "m1", left as usize);
    assert!(cost(&larger) > left);
    let r = push(larger).await.unwrap();
    assert_eq!(r.status().as_u16(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&wait), "{wait}");
    let body: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"], "rate_limited");
    // A change's bytes grow one for one with its text, past the least a change counts.
    let bare = cost(&mutation("fill", "m2", 300)) - 300;
    let fill = mutation("fill", "m2", (left - bare) as usize);
    assert_eq!(cost(&fill), left);
    assert_eq!(outcome(push(fill).await.unwrap()).await, "applied");
    assert_eq!(outcome(push(early).await.unwrap()).await, "duplicate");
    assert_eq!(
        push(mutation("late", "m3", 1))
            .await
            .unwrap()
            .status()
            .as_u16(),
        429
    );
    assert_eq!(held().len(), 6);

    // Another citizen's account has its own day.
    let other = vault(&dir.path().join("other"));
    c.sign_in_and_register(other.clone(), "other", |n| {
        idp.id_token("001088054321", n).map_err(|e| e.to_string())
    })
    .await
    .unwrap();
    MemberHandbook::new(&other)
        .save_note(&note("o1", 100, 1_790_000_000))
        .unwrap();
    let report = c.sync(other, &common::collections(), None).await.unwrap();
    assert_eq!(report.pushed, 1, "{report:?}");
    local.running.stop().await;
}

/// A push that fails half-way (the database refuses its second change, as a full disk or a
/// killed connection would) leaves nothing: neither its first change, nor its key, nor its
/// bytes counted against the day. The same changes sent again are applied, within the day.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_that_fails_half_way_leaves_nothing_counted() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::database(dir.path());
    let local = start_with_push_budget(&db, 3_000).await;
    let phone = vault(&dir.path().join("phone"));
    let idp = local.idp.clone();
    local
        .client
        .sign_in_and_register(phone.clone(), "phone", |n| {
            idp.id_token(CITIZEN, n).map_err(|e| e.to_string())
        })
        .await
        .unwrap();
    let token = BackendClient::registration(&phone).unwrap().unwrap().token;
    let hlc = format!("{:013}-000000-phone", chrono::Utc::now().timestamp_millis());
    let mutation = |id: &str| {
        serde_json::json!({"idempotency_key": format!("key-{id}"), "seq": 1,
            "collection": "handbook.note", "record_id": id, "op": "put",
            "payload": {"id": id, "document_id": "d", "text": "x".repeat(1_000), "updated_at": 1},
            "hlc": hlc})
    };
    let push = |ids: &[&str]| {
        let body =
            serde_json::json!({"mutations": ids.iter().map(|id| mutation(id)).collect::<Vec<_>>()});
        http_client()
            .post(format!("{}/v1/sync/push", local.url))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let (fail, mend) = if db.starts_with("postgres") {
        (
            "CREATE FUNCTION fail_boom() RETURNS trigger AS $$ BEGIN
               IF NEW.record_id = 'boom' THEN RAISE EXCEPTION 'disk full'; END IF; RETURN NEW;
             END $$ LANGUAGE plpgsql;
             CREATE TRIGGER fail_boom BEFORE INSERT ON changes
               FOR EACH ROW EXECUTE FUNCTION fail_boom();",
            "DROP TRIGGER fail_boom ON changes; DROP FUNCTION fail_boom();",
        )
    } else {
        (
            "CREATE TRIGGER fail_boom BEFORE INSERT ON changes WHEN NEW.record_id = 'boom'
             BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
            "DROP TRIGGER fail_boom;",
        )
    };
    common::tamper(&db, fail);
    let r = push(&["a", "boom"]).await.unwrap();
    assert!(r.status().is_server_error(), "{}", r.status());
    common::tamper(&db, mend);
    // Were `a` or the failed push's bytes kept, `a` would come back `duplicate`, or the day's
    // 3,000 bytes would not take the two again (2,200 counted before, 2,200 now).
    let r = push(&["a", "boom"]).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let answer: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    let outcomes: Vec<&str> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, vec!["applied", "applied"], "{answer}");
    local.running.stop().await;
}
