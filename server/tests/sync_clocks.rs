//! A phone whose clock was once far ahead, against the real server: the change it made then is
//! stamped again and arrives instead of being refused for good, the changes after it are not
//! stamped with that future, and another device's later edit still reaches it. On SQLite and
//! (with `THUDO_TEST_POSTGRES`) on PostgreSQL.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::{start_local, vault};
use thudo_core::changes::outbox;
use thudo_core::handbook::member::{DocumentNote, MemberHandbook};

const CITIZEN: &str = "001088012345";

fn note(id: &str, text: &str, at: i64) -> DocumentNote {
    DocumentNote {
        id: id.into(),
        document_id: "nq-57-2024".into(),
        text: text.into(),
        updated_at: at,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_once_far_ahead_loses_no_change_and_no_later_edit() {
    let dir = tempfile::tempdir().unwrap();
    let local = start_local(dir.path()).await;
    let (phone, tablet) = (
        vault(&dir.path().join("phone")),
        vault(&dir.path().join("tablet")),
    );
    for (v, name) in [(&phone, "phone"), (&tablet, "tablet")] {
        local
            .client
            .sign_in_and_register(v.clone(), name, |n| {
                local.idp.id_token(CITIZEN, n).map_err(|e| e.to_string())
            })
            .await
            .unwrap();
    }
    let sync = |v: &std::sync::Arc<thudo_core::vault::Vault>| {
        let (client, v) = (&local.client, v.clone());
        async move { client.sync(v, &common::collections(), None).await.unwrap() }
    };
    let now = chrono::Utc::now().timestamp();
    let book = MemberHandbook::new(&phone);
    // Written while the phone's clock read two years ahead: refused by the backend for its
    // clock, stamped again by the backend's clock and sent again, not dropped.
    let ahead = now + 2 * 365 * 86_400;
    book.save_note(&note("n1", "from the phone", ahead))
        .unwrap();
    // And a note edited then, and again once the clock was put right: the later edit stands.
    book.save_note(&note("n0", "first, ahead", ahead)).unwrap();
    let stamped = |v: &std::sync::Arc<thudo_core::vault::Vault>| {
        v.transaction(outbox::pending)
            .unwrap()
            .iter()
            .map(|e| e.hlc[..10].parse::<i64>().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(stamped(&phone), [ahead, ahead]);
    // The clock put right: the next changes are not stamped with that future.
    book.save_note(&note("n0", "then, on time", now)).unwrap();
    book.save_note(&note("n2", "a later note", now)).unwrap();
    let times = stamped(&phone);
    assert!(times[2..].iter().all(|t| *t <= now + 60), "{times:?}");
    let first = sync(&phone).await;
    // n1 stamped again and applied; n0's first edit dropped for its later one; n0 and n2.
    assert_eq!((first.pushed, first.rejected), (3, 0), "{first:?}");
    assert!(phone.transaction(outbox::pending).unwrap().is_empty());
    // The tablet edits the phone's note afterwards: the phone takes the edit.
    sync(&tablet).await;
    MemberHandbook::new(&tablet)
        .save_note(&note("n1", "from the tablet", now + 60))
        .unwrap();
    assert_eq!(sync(&tablet).await.pushed, 1);
    sync(&phone).await;
    let texts: Vec<(String, String)> = book
        .notes_for("nq-57-2024")
        .unwrap()
        .into_iter()
        .map(|n| (n.id, n.text))
        .collect();
    assert!(
        texts.contains(&("n1".into(), "from the tablet".into())),
        "{texts:?}"
    );
    assert!(texts.contains(&("n2".into(), "a later note".into())));
    let on_tablet: Vec<(String, String)> = MemberHandbook::new(&tablet)
        .notes_for("nq-57-2024")
        .unwrap()
        .into_iter()
        .map(|n| (n.id, n.text))
        .collect();
    assert!(
        on_tablet.contains(&("n0".into(), "then, on time".into())),
        "{on_tablet:?}"
    );
}

/// A backup restored on another phone brings the notes and the changes waiting, not the
/// device: no bearer token (it signs in again) and not its clock (the two never share a node,
/// whose equal readings would tie).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_backup_signs_in_again_with_a_clock_of_its_own() {
    use thudo_core::sync::client::{BackendClient, BackendError};
    let dir = tempfile::tempdir().unwrap();
    let local = start_local(dir.path()).await;
    let phone = vault(&dir.path().join("phone"));
    let sign_in = |v: std::sync::Arc<thudo_core::vault::Vault>, name: &'static str| {
        let local = &local;
        async move {
            local
                .client
                .sign_in_and_register(v, name, |n| {
                    local.idp.id_token(CITIZEN, n).map_err(|e| e.to_string())
                })
                .await
                .unwrap()
        }
    };
    sign_in(phone.clone(), "phone").await;
    let now = chrono::Utc::now().timestamp();
    let book = MemberHandbook::new(&phone);
    book.save_note(&note("n1", "synced", now)).unwrap();
    // The old phone's clock ran ten minutes fast: its version of n5 is ahead of now.
    book.save_note(&note("n5", "ten minutes fast", now + 600))
        .unwrap();
    local
        .client
        .sync(phone.clone(), &common::collections(), None)
        .await
        .unwrap();
    book.save_note(&note("n2", "waiting", now)).unwrap();
    let node = |v: &std::sync::Arc<thudo_core::vault::Vault>| {
        v.transaction(outbox::pending).unwrap()[0]
            .hlc
            .rsplit('-')
            .next()
            .unwrap()
            .to_owned()
    };
    let phone_node = node(&phone);
    let backup = dir.path().join("backup.thudo");
    phone.export_backup(&backup, "backup secret").unwrap();

    let other = vault(&dir.path().join("other"));
    other.import_backup(&backup, "backup secret").unwrap();
    assert!(BackendClient::registration(&other).unwrap().is_none());
    assert!(matches!(
        local
            .client
            .sync(other.clone(), &common::collections(), None)
            .await,
        Err(BackendError::NotRegistered)
    ));
    // Still this citizen's data: another citizen cannot sign in with it (their account would
    // get the waiting changes), and nothing is made on their account.
    let stranger = local
        .client
        .sign_in_and_register(other.clone(), "other", |n| {
            local
                .idp
                .id_token("001099000111", n)
                .map_err(|e| e.to_string())
        })
        .await;
    assert!(
        matches!(stranger, Err(BackendError::OtherAccount)),
        "{stranger:?}"
    );
    assert!(BackendClient::registration(&other).unwrap().is_none());
    // Signed in, it sends what waited and edits under a node of its own.
    sign_in(other.clone(), "other").await;
    let report = local
        .client
        .sync(other.clone(), &common::collections(), None)
        .await
        .unwrap();
    assert_eq!(report.pushed + report.duplicates, 1, "{report:?}");
    MemberHandbook::new(&other)
        .save_note(&note("n3", "on the other phone", now + 1))
        .unwrap();
    assert_ne!(node(&other), phone_node);
    // Its clock starts after every version it restored: an edit of n5 now is newer than the
    // old phone's fast one, and the backend takes it.
    MemberHandbook::new(&other)
        .save_note(&note("n5", "edited on the new phone", now))
        .unwrap();
    let edited = local
        .client
        .sync(other.clone(), &common::collections(), None)
        .await
        .unwrap();
    assert_eq!(
        (edited.pushed, edited.superseded_on_server),
        (2, 0),
        "{edited:?}"
    );
    // The same backup restored onto a phone signed in as another citizen: its waiting changes
    // would reach that citizen's account, so the sync is refused.
    let theirs = vault(&dir.path().join("theirs"));
    local
        .client
        .sign_in_and_register(theirs.clone(), "theirs", |n| {
            local
                .idp
                .id_token("001099000111", n)
                .map_err(|e| e.to_string())
        })
        .await
        .unwrap();
    theirs.import_backup(&backup, "backup secret").unwrap();
    assert!(matches!(
        local
            .client
            .sync(theirs.clone(), &common::collections(), None)
            .await,
        Err(BackendError::OtherAccount)
    ));
}

/// What a client written by someone else may send: the scheme `bearer` in any case is read; a
/// health record filed under an id that is not its resource's (`Type/id`) is refused, so it can
/// never replace another record (a facility's) on the account's devices; a clock whose counter
/// is not six digits is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_partys_push_is_read_as_the_protocol_says() {
    use serde_json::{json, Value};
    let dir = tempfile::tempdir().unwrap();
    let local = start_local(dir.path()).await;
    let phone = vault(&dir.path().join("phone"));
    local
        .client
        .sign_in_and_register(phone.clone(), "phone", |n| {
            local.idp.id_token(CITIZEN, n).map_err(|e| e.to_string())
        })
        .await
        .unwrap();
    let token = thudo_core::sync::client::BackendClient::registration(&phone)
        .unwrap()
        .unwrap()
        .token;
    let http = common::http_client();
    let clock = format!("{:013}-000000-third", chrono::Utc::now().timestamp_millis());
    let push = |scheme: &str, mutation: Value| {
        let (http, url, auth) = (http.clone(), local.url.clone(), format!("{scheme} {token}"));
        async move {
            let r = http
                .post(format!("{url}/v1/sync/push"))
                .header("authorization", auth)
                .header("content-type", "application/json")
                .body(json!({ "mutations": [mutation] }).to_string())
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
            (status, body["results"][0].clone())
        }
    };
    let record = |record_id: &str, key: &str| {
        json!({
            "idempotency_key": format!("k-{record_id}-{key}"), "seq": 1,
            "collection": "health.records", "record_id": record_id, "op": "put",
            "payload": {"resource": {"resourceType": "Immunization", "id": key, "status": "completed"}},
            "hlc": clock,
        })
    };
    let (status, outcome) = push("bearer", record("Immunization/imm-1", "imm-1")).await;
    assert_eq!(
        (status, &outcome["outcome"]),
        (200, &json!("applied")),
        "{outcome}"
    );
    let (_, outcome) = push("Bearer", record("Immunization/imm-9", "imm-1")).await;
    assert_eq!(
        (&outcome["outcome"], &outcome["reason"]),
        (&json!("rejected"), &json!("record_id_mismatch")),
        "{outcome}"
    );
    let note = json!({
        "idempotency_key": "k-note", "seq": 2, "collection": "handbook.note",
        "record_id": "n1", "op": "put",
        "payload": {"id": "n1", "document_id": "d", "text": "t", "updated_at": 1},
        "hlc": "1700000000000-+99999-third",
    });
    let (_, outcome) = push("BEARER", note).await;
    assert_eq!(
        (&outcome["outcome"], &outcome["reason"]),
        (&json!("rejected"), &json!("missing_clock")),
        "{outcome}"
    );
}
