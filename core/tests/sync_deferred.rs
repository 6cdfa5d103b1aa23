//! A backend that defers a device's pushes (its account's day of pushes spent: 429 with a
//! `Retry-After` longer than the client waits between tries): the push is not tried again
//! sooner than asked, the changes wait in the outbox, and the pulls still bring everyone
//! else's changes.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};

use serde_json::json;
use thudo_core::changes::outbox;
use thudo_core::handbook::member::{DocumentNote, MemberHandbook};
use thudo_core::sync::client::{
    BackendClient, BackendConfig, HttpFailure, HttpFuture, HttpRequest, HttpResponse,
    HttpTransport, Registration,
};

/// Answers pushes 429 (come back in a day) and pulls of notes with the tablet's note; counts
/// the pushes.
struct Deferring {
    pushes: Mutex<u32>,
}

impl HttpTransport for Deferring {
    fn send(&self, request: HttpRequest, _max_body: usize) -> HttpFuture<'_> {
        Box::pin(async move {
            let (status, headers, body) = if request.url.ends_with("/v1/sync/push") {
                *self.pushes.lock().unwrap() += 1;
                (
                    429,
                    vec![("retry-after".to_owned(), "86400".to_owned())],
                    json!({"error": "rate_limited", "message": "push again tomorrow"}),
                )
            } else if request.url.contains("collection=handbook.note&") {
                let note = json!({"id": "t1", "document_id": "d", "text": "from the tablet",
                                  "updated_at": 1_790_000_000});
                let change = json!({"collection": "handbook.note", "record_id": "t1",
                                    "op": "put", "payload": note,
                                    "hlc": "1790000000000-000000-tablet"});
                (
                    200,
                    Vec::new(),
                    json!({"changes": [change], "next_cursor": "c", "has_more": false}),
                )
            } else {
                (
                    200,
                    Vec::new(),
                    json!({"changes": [], "next_cursor": "", "has_more": false}),
                )
            };
            Ok::<_, HttpFailure>(HttpResponse {
                status,
                headers,
                body: serde_json::to_vec(&body).unwrap(),
            })
        })
    }
}

#[test]
fn deferred_pushes_wait_and_the_pulls_go_on() {
    deferred_pushes_wait_with(None);
}

/// A client that tries once (or whose last try is told to come back tomorrow) keeps the time
/// it was given too, and its sync still pulls.
#[test]
fn a_deferral_on_the_last_attempt_is_kept() {
    deferred_pushes_wait_with(Some(1));
}

fn deferred_pushes_wait_with(max_attempts: Option<u32>) {
    let (_dir, vault) = common::vault();
    let vault = Arc::new(vault);
    vault
        .put_doc(&Registration {
            device_id: "d-1".into(),
            account_id: "a-1".into(),
            token: "t".repeat(64),
            token_expires_at: None,
        })
        .unwrap();
    MemberHandbook::new(&vault)
        .save_note(&DocumentNote {
            id: "n1".into(),
            document_id: "d".into(),
            text: "mine".into(),
            updated_at: 1_790_000_000,
        })
        .unwrap();
    let transport = Arc::new(Deferring {
        pushes: Mutex::new(0),
    });
    let mut config = BackendConfig::new("https://api.example.vn");
    config.max_attempts = max_attempts.unwrap_or(config.max_attempts);
    let client = BackendClient::with_transport(config, transport.clone()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sync = || {
        runtime
            .block_on(client.sync(
                vault.clone(),
                &thudo_core::collections::registry(Default::default()),
                None,
            ))
            .unwrap()
    };
    let report = sync();
    assert_eq!(
        *transport.pushes.lock().unwrap(),
        1,
        "not tried again sooner than asked"
    );
    assert_eq!((report.pushed, report.applied), (0, 1), "{report:?}");
    assert_eq!(vault.transaction(outbox::pending).unwrap().len(), 1);
    let notes = MemberHandbook::new(&vault).notes_for("d").unwrap();
    assert!(
        notes.iter().any(|n| n.text == "from the tablet"),
        "{notes:?}"
    );
    // The next sync, before the time the backend gave, sends nothing and still pulls.
    sync();
    assert_eq!(
        *transport.pushes.lock().unwrap(),
        1,
        "the deferral is remembered"
    );
    assert_eq!(vault.transaction(outbox::pending).unwrap().len(), 1);
}

/// Refuses every push for its clock (`clock_in_future`) and pulls nothing; counts the pushes.
struct RefusingClocks {
    pushes: Mutex<u32>,
}

impl HttpTransport for RefusingClocks {
    fn send(&self, request: HttpRequest, _max_body: usize) -> HttpFuture<'_> {
        Box::pin(async move {
            let body = if request.url.ends_with("/v1/sync/push") {
                *self.pushes.lock().unwrap() += 1;
                let sent: serde_json::Value =
                    serde_json::from_slice(request.body.as_deref().unwrap()).unwrap();
                let results: Vec<_> = sent["mutations"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| {
                        json!({"idempotency_key": m["idempotency_key"], "outcome": "rejected",
                               "reason": "clock_in_future"})
                    })
                    .collect();
                json!({ "results": results })
            } else {
                json!({"changes": [], "next_cursor": "", "has_more": false})
            };
            Ok::<_, HttpFailure>(HttpResponse {
                status: 200,
                headers: Vec::new(),
                body: serde_json::to_vec(&body).unwrap(),
            })
        })
    }
}

/// A note edited while the clock read two years ahead, then replaced here by another
/// device's pulled edit: refused for its clock, it is not stamped again (it would beat the
/// edit this phone shows, and the two would part for good) but set aside in `sync.rejected`,
/// where the app can see it.
#[test]
fn a_refused_change_whose_record_a_pull_replaced_is_set_aside() {
    let (_dir, vault) = common::vault();
    let vault = Arc::new(vault);
    vault
        .put_doc(&Registration {
            device_id: "d-1".into(),
            account_id: "a-1".into(),
            token: "t".repeat(64),
            token_expires_at: None,
        })
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let note = |text: &str, at: i64| DocumentNote {
        id: "r".into(),
        document_id: "d".into(),
        text: text.into(),
        updated_at: at,
    };
    let book = MemberHandbook::new(&vault);
    book.save_note(&note("mine, clock ahead", now + 2 * 365 * 86_400))
        .unwrap();
    let notes = thudo_core::handbook::member::synced()
        .into_iter()
        .find(|c| c.spec.name == "handbook.note")
        .unwrap();
    let pulled = thudo_core::sync::protocol::Change {
        collection: "handbook.note".into(),
        record_id: "r".into(),
        op: "put".into(),
        payload: serde_json::to_value(note("the tablet's", now)).unwrap(),
        hlc: format!("{:013}-000000-tablet", now * 1000),
    };
    vault
        .transaction(|tx| {
            thudo_core::sync::apply::apply_changes(
                tx,
                &notes,
                std::slice::from_ref(&pulled),
                now as u64,
            )
        })
        .unwrap();
    let transport = Arc::new(RefusingClocks {
        pushes: Mutex::new(0),
    });
    let client = BackendClient::with_transport(
        BackendConfig::new("https://api.example.vn"),
        transport.clone(),
    )
    .unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(client.sync(
            vault.clone(),
            &thudo_core::collections::registry(Default::default()),
            None,
        ))
        .unwrap();
    assert_eq!(*transport.pushes.lock().unwrap(), 1, "not sent again");
    assert!(vault.transaction(outbox::pending).unwrap().is_empty());
    let status = thudo_core::sync::status::status(&vault).unwrap();
    assert_eq!(status.rejected, 1, "{status:?}");
    let shown = book.notes_for("d").unwrap();
    assert_eq!(shown[0].text, "the tablet's");
}
