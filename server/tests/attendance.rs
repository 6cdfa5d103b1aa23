//! Attendance that proves itself, against the real server (SQLite, and PostgreSQL with
//! `THUDO_TEST_POSTGRES`): a secretary's phone gets a meeting credential, members' phones
//! check in offline and upload; forged, truncated, replayed, late, stale, wrong-meeting and
//! wrong-cell check-ins are refused; the cell's counts keep verified check-ins apart from
//! self-declared attendance.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::sync::Arc;

use common::{cell_member, http_client, party, start_local, Local, Role};
use serde_json::{json, Value};
use thudo_core::handbook::attendance::{
    self, AttendanceError, CheckInStatus, CheckIns, MeetingSecretary, ShownQr, CREDENTIAL_LEN,
};
use thudo_core::handbook::backend::HandbookClient;
use thudo_core::handbook::member::{AttendanceStatus, MemberHandbook};
use thudo_core::sync::client::BackendError;
use thudo_core::vault::Vault;

const CELL: &str = "hn.ba-dinh.chi-bo-1";
const OTHER_CELL: &str = "hn.ba-dinh.chi-bo-2";
const SECRETARY: &str = "001080000001";
const MEMBER_A: &str = "001080000002";
const MEMBER_B: &str = "001080000003";
const MEMBER_E: &str = "001080000004";
const OUTSIDER: &str = "001080000005";

fn today_in_hanoi() -> String {
    (chrono::Utc::now() + chrono::Duration::hours(7))
        .date_naive()
        .to_string()
}

fn token(v: &Vault) -> String {
    thudo_core::sync::client::BackendClient::registration(v)
        .unwrap()
        .unwrap()
        .token
}

async fn upload(local: &Local, v: &Vault, items: Value) -> (u16, Value) {
    let r = http_client()
        .post(format!("{}/v1/handbook/check-ins", local.url))
        .bearer_auth(token(v))
        .header("content-type", "application/json")
        .body(json!({ "check_ins": items }).to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (
        status,
        serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or(Value::Null),
    )
}

fn evidence_of(v: &Vault, meeting: &str) -> String {
    CheckIns::new(v)
        .all()
        .unwrap()
        .into_iter()
        .find(|c| c.meeting_id == meeting)
        .unwrap()
        .evidence
}

/// A QR the secretary's phone signs for `shown_at`, whatever its own code would allow.
fn signed_qr(secretary: &Vault, meeting: &str, shown_at: u32) -> ShownQr {
    let held: attendance::HeldMeetingCredential = secretary.get_doc(meeting).unwrap().unwrap();
    let mut payload = thudo_core::hex::decode(&held.credential).unwrap();
    assert_eq!(payload.len(), CREDENTIAL_LEN);
    payload.extend_from_slice(&shown_at.to_be_bytes());
    payload.extend_from_slice(&[0, 0, 0, 7]);
    let key = attendance::device_key(secretary).unwrap();
    let signature = key
        .sign(&[attendance::QR_TAG, &payload[..]].concat())
        .unwrap();
    payload.extend_from_slice(&signature);
    ShownQr {
        credential: attendance::MeetingCredential::decode(&payload).unwrap(),
        shown_at,
        payload,
    }
}

/// The party organisation names [`SECRETARY`] the secretary of [`CELL`].
async fn name_secretary(local: &Local) {
    let (status, _) = party(
        local,
        "POST",
        &format!("/v1/admin/cells/{CELL}/secretary"),
        json!({ "citizen_id": SECRETARY }),
    )
    .await;
    assert_eq!(status, 200);
}

/// Meeting `m-1` published to [`CELL`] for today, [`SECRETARY`] named, the phones synced and
/// the secretary's credential fetched; returns a time within today's meeting that leaves a
/// minute before its end, and that end (unix seconds).
async fn todays_meeting(
    local: &Local,
    secretary: &Arc<Vault>,
    members: &[&Arc<Vault>],
) -> (u32, i64) {
    let (status, _) = party(
        local,
        "POST",
        &format!("/v1/admin/cells/{CELL}/handbook.meeting"),
        json!({"items": [{"id": "m-1", "date": today_in_hanoi(), "topic": "Sinh hoạt chi bộ",
                          "document_ids": []}]}),
    )
    .await;
    assert_eq!(status, 200);
    name_secretary(local).await;
    for v in std::iter::once(secretary).chain(members.iter().copied()) {
        local
            .client
            .sync(v.clone(), &common::collections(), None)
            .await
            .unwrap();
    }
    HandbookClient::new(&local.client)
        .fetch_meeting_credential(secretary.clone(), "m-1")
        .await
        .unwrap();
    let day_end = {
        let t = chrono::Utc::now().timestamp() + 7 * 3600;
        (t / 86_400 + 1) * 86_400 - 7 * 3600
    };
    let now = chrono::Utc::now().timestamp().min(day_end - 60) as u32;
    (now, day_end)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_ins_prove_attendance_and_every_forgery_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let local = start_local(dir.path()).await;
    let secretary = cell_member(&local, dir.path(), SECRETARY, CELL).await;
    let a = cell_member(&local, dir.path(), MEMBER_A, CELL).await;
    let b = cell_member(&local, dir.path(), MEMBER_B, CELL).await;
    let e = cell_member(&local, dir.path(), MEMBER_E, CELL).await;
    let outsider = cell_member(&local, dir.path(), OUTSIDER, OTHER_CELL).await;
    let today = today_in_hanoi();
    // The meeting is today's: the phones' clock below stays within its day, even when the
    // test runs across Hanoi's midnight (1,300 s before its end leaves room for a stale scan).
    let day_end = {
        let t = chrono::Utc::now().timestamp() + 7 * 3600;
        (t / 86_400 + 1) * 86_400 - 7 * 3600
    };
    for (cell, id) in [(CELL, "m-1"), (OTHER_CELL, "m-9")] {
        let (status, _) = party(
            &local,
            "POST",
            &format!("/v1/admin/cells/{cell}/handbook.meeting"),
            json!({"items": [{"id": id, "date": today, "topic": "Sinh hoạt chi bộ", "document_ids": [],
                              "attendance_key": "a forged key the server replaces"}]}),
        )
        .await;
        assert_eq!(status, 200);
    }
    for v in [&secretary, &a, &b, &e, &outsider] {
        local
            .client
            .sync(v.clone(), &common::collections(), None)
            .await
            .unwrap();
    }
    let meeting = &MemberHandbook::new(&a).meetings_from(&today).unwrap()[0];
    assert_eq!(
        meeting.cell.as_deref(),
        Some(CELL),
        "the server stamps the cell"
    );
    assert_eq!(meeting.attendance_key.as_ref().map(String::len), Some(70));

    // Only the cell's secretary is issued the credential.
    let refused = HandbookClient::new(&local.client)
        .fetch_meeting_credential(a.clone(), "m-1")
        .await;
    assert!(
        matches!(&refused, Err(BackendError::Refused { code, .. }) if code.as_str() == "not_secretary"),
        "{refused:?}"
    );
    name_secretary(&local).await;
    let window = HandbookClient::new(&local.client)
        .fetch_meeting_credential(secretary.clone(), "m-1")
        .await
        .unwrap();
    assert_eq!(window.closes - window.opens, 86_399);
    // Another cell's meeting is not the secretary's to ask for.
    let other = HandbookClient::new(&local.client)
        .fetch_meeting_credential(secretary.clone(), "m-9")
        .await;
    assert!(
        matches!(&other, Err(BackendError::Refused { code, .. }) if code.as_str() == "unknown_meeting"),
        "{other:?}"
    );

    // Offline: the secretary's phone shows the QR, two members' phones scan it.
    let now = chrono::Utc::now().timestamp().min(day_end - 1_300) as u32;
    let qr = MeetingSecretary::new(&secretary).qr("m-1", now).unwrap();
    CheckIns::new(&a).scan(&qr, now + 3).unwrap();
    CheckIns::new(&b).scan(&qr, now + 5).unwrap();
    assert!(matches!(
        CheckIns::new(&a).scan(&qr, now + 6),
        Err(AttendanceError::AlreadyCheckedIn { .. })
    ));
    // The outsider's phone holds no such meeting.
    assert!(matches!(
        CheckIns::new(&outsider).scan(&qr, now + 6),
        Err(AttendanceError::UnknownMeeting)
    ));
    // A member who only declares themselves present.
    MemberHandbook::new(&e)
        .record_attendance("m-1", AttendanceStatus::Present, now as i64)
        .unwrap();

    // Online again: uploads are verified and counted once.
    for v in [&a, &b] {
        let report = HandbookClient::new(&local.client)
            .upload_check_ins(v.clone())
            .await
            .unwrap();
        assert_eq!((report.accepted, report.refused.len()), (1, 0));
        assert_eq!(
            CheckIns::new(v).all().unwrap()[0].status,
            CheckInStatus::Accepted
        );
    }
    for v in [&a, &b, &e] {
        local
            .client
            .sync(v.clone(), &common::collections(), None)
            .await
            .unwrap();
    }
    let evidence = evidence_of(&a, "m-1");
    let item = |meeting: &str, evidence: &str| json!({"meeting_id": meeting, "evidence": evidence});
    // Delivered twice (the first answer lost): accepted, counted once.
    let (_, again) = upload(&local, &a, json!([item("m-1", &evidence)])).await;
    assert_eq!(again["results"][0]["outcome"], "accepted");

    let reason = |answer: &Value| {
        answer["results"][0]["reason"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    // Forged: any byte altered breaks a signature.
    let mut bytes = thudo_core::hex::decode(&evidence).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let (_, forged) = upload(
        &local,
        &a,
        json!([item("m-1", &thudo_core::hex::encode(&bytes))]),
    )
    .await;
    assert_eq!(reason(&forged), "forged");
    bytes[last] ^= 1;
    bytes[40] ^= 1; // the window, under the backend's signature
    let (_, forged) = upload(
        &local,
        &a,
        json!([item("m-1", &thudo_core::hex::encode(&bytes))]),
    )
    .await;
    assert_eq!(reason(&forged), "forged");
    // Truncated, or not hex.
    let (_, short) = upload(
        &local,
        &a,
        json!([item("m-1", &evidence[..evidence.len() - 2])]),
    )
    .await;
    assert_eq!(reason(&short), "bad_evidence");
    let (_, junk) = upload(&local, &a, json!([item("m-1", "zz")])).await;
    assert_eq!(reason(&junk), "bad_evidence");
    // Named as another meeting.
    let (_, wrong) = upload(&local, &a, json!([item("m-9", &evidence)])).await;
    assert_eq!(reason(&wrong), "wrong_meeting");
    // Replayed by another member (B's phone has its own key) or from another cell.
    let (_, replayed) = upload(&local, &b, json!([item("m-1", &evidence)])).await;
    assert_eq!(reason(&replayed), "key_mismatch");
    // Even from a device of B's with no key yet (B signed in again): A's key is A's.
    let idp = local.idp.clone();
    local
        .client
        .sign_in_and_register(b.clone(), "b-again", |n| {
            idp.id_token(MEMBER_B, n).map_err(|e| e.to_string())
        })
        .await
        .unwrap();
    let (_, replayed) = upload(&local, &b, json!([item("m-1", &evidence)])).await;
    assert_eq!(reason(&replayed), "key_mismatch");
    let (_, wrong_cell) = upload(&local, &outsider, json!([item("m-1", &evidence)])).await;
    assert_eq!(reason(&wrong_cell), "wrong_cell");
    // Late: a QR shown after the meeting's window closed (the secretary's phone signing
    // whatever it is told), and stale: scanned twenty minutes after it was shown.
    let late = signed_qr(&secretary, "m-1", window.closes + 60);
    let late = attendance::countersign(&e, &late, window.closes + 61).unwrap();
    let (_, answer) = upload(
        &local,
        &e,
        json!([item("m-1", &thudo_core::hex::encode(&late))]),
    )
    .await;
    assert_eq!(reason(&answer), "late");
    let shown = signed_qr(&secretary, "m-1", now);
    let stale = attendance::countersign(&e, &shown, now + 1_200).unwrap();
    let (_, answer) = upload(
        &local,
        &e,
        json!([item("m-1", &thudo_core::hex::encode(&stale))]),
    )
    .await;
    assert_eq!(reason(&answer), "stale");
    // The member's phone signs in again (a new device, the same handbook key): its evidence
    // still counts, once.
    local
        .client
        .sign_in_and_register(a.clone(), "a-again", |n| {
            idp.id_token(MEMBER_A, n).map_err(|e| e.to_string())
        })
        .await
        .unwrap();
    let (_, again) = upload(&local, &a, json!([item("m-1", &evidence)])).await;
    assert_eq!(again["results"][0]["outcome"], "accepted", "{again}");
    // Too many at once.
    let many: Vec<Value> = (0..51).map(|_| item("m-1", &evidence)).collect();
    let (status, _) = upload(&local, &a, Value::Array(many)).await;
    assert_eq!(status, 413);

    // The cell's counts: two verified; three declared present, one of them unverified.
    let (status, counts) = party(
        &local,
        "GET",
        &format!("/v1/admin/cells/{CELL}/meetings/m-1/attendance"),
        Value::Null,
    )
    .await;
    assert_eq!(status, 200, "{counts}");
    assert_eq!(counts["verified"], 2, "{counts}");
    assert_eq!(counts["declared_present"], 3, "{counts}");
    assert_eq!(counts["declared_present_unverified"], 1, "{counts}");
    // Another organisation's operator may not read them.
    let stranger = local
        .idp
        .operator_token(Role::PartyOrganisation, "hn.hoan-kiem")
        .unwrap();
    let r = http_client()
        .get(format!(
            "{}/v1/admin/cells/{CELL}/meetings/m-1/attendance",
            local.url
        ))
        .bearer_auth(stranger)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);

    // A phone that checked in brings another phone's fresh key (a modified app signing for an
    // absent friend): refused, and nothing bound, so the key's own phone still counts it.
    let shown = signed_qr(&secretary, "m-1", now);
    let friends = attendance::countersign(&e, &shown, now + 10).unwrap();
    let friends = thudo_core::hex::encode(&friends);
    let (_, brought) = upload(&local, &a, json!([item("m-1", &friends)])).await;
    assert_eq!(reason(&brought), "key_mismatch", "{brought}");
    let (_, own) = upload(&local, &e, json!([item("m-1", &friends)])).await;
    assert_eq!(own["results"][0]["outcome"], "accepted", "{own}");

    // The meeting moved to yesterday: the credential for today signs QRs of no meeting, and
    // no credential is issued for a day gone by.
    let yesterday = (chrono::Utc::now() + chrono::Duration::hours(7) - chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let (status, _) = party(
        &local,
        "POST",
        &format!("/v1/admin/cells/{CELL}/handbook.meeting"),
        json!({"items": [{"id": "m-1", "date": yesterday, "topic": "Sinh hoạt chi bộ",
                          "document_ids": []}]}),
    )
    .await;
    assert_eq!(status, 200);
    let fresh = attendance::countersign(&b, &signed_qr(&secretary, "m-1", now), now + 20).unwrap();
    let fresh = thudo_core::hex::encode(&fresh);
    let (_, moved) = upload(&local, &b, json!([item("m-1", &fresh)])).await;
    assert_eq!(reason(&moved), "late", "{moved}");
    // A check-in counted before the move, uploaded again (its answer lost): still accepted, as
    // counted, never refused after the fact.
    for (v, evidence) in [(&a, evidence.clone()), (&b, evidence_of(&b, "m-1"))] {
        let (_, counted) = upload(&local, v, json!([item("m-1", &evidence)])).await;
        assert_eq!(counted["results"][0]["outcome"], "accepted", "{counted}");
    }
    let over = HandbookClient::new(&local.client)
        .fetch_meeting_credential(secretary.clone(), "m-1")
        .await;
    assert!(
        matches!(&over, Err(BackendError::Refused { code, .. }) if code.as_str() == "meeting_over"),
        "{over:?}"
    );
}

/// The database fails while a check-in is being counted, after the member's key was checked
/// and bound (a full disk, an instance dying mid-transaction): nothing is kept, not even the
/// key's bindings, and the same upload retried counts once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_in_cut_short_binds_nothing_and_counts_once_when_retried() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::database(dir.path());
    let local = common::start_on(dir.path(), &db).await;
    let secretary = cell_member(&local, dir.path(), SECRETARY, CELL).await;
    let a = cell_member(&local, dir.path(), MEMBER_A, CELL).await;
    let (now, _) = todays_meeting(&local, &secretary, &[&a]).await;
    let qr = MeetingSecretary::new(&secretary).qr("m-1", now).unwrap();
    CheckIns::new(&a).scan(&qr, now + 3).unwrap();
    let items = json!([{"meeting_id": "m-1", "evidence": evidence_of(&a, "m-1")}]);
    let (fail, mend) = common::failing_writes(&db, "check_ins");
    let kept = || {
        ["check_ins", "check_in_keys", "check_in_member_keys"]
            .map(|table| common::count(&db, &format!("SELECT COUNT(*) FROM {table}")))
    };
    common::tamper(&db, &fail);
    let (status, body) = upload(&local, &a, items.clone()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("storage")),
        "{body}"
    );
    assert_eq!(kept(), [0, 0, 0]);
    common::tamper(&db, &mend);
    for _ in 0..2 {
        let (status, body) = upload(&local, &a, items.clone()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["results"][0]["outcome"], "accepted", "{body}");
    }
    assert_eq!(kept(), [1, 1, 1]);
    local.running.stop().await;
}

/// After the secretary's credentials were revoked: member `b`'s check-in of a QR shown from
/// now on is refused `revoked_credential`, while member `a`'s of one shown `before` counts.
async fn revoked_from_now(
    local: &Local,
    secretary: &Vault,
    (a, b): (&Vault, &Vault),
    before: &[u8],
    day_end: i64,
) {
    let after = (chrono::Utc::now().timestamp() + 1).min(day_end - 1) as u32;
    let shown_after =
        attendance::countersign(b, &signed_qr(secretary, "m-1", after), after + 1).unwrap();
    let item = |evidence: &[u8]| json!([{"meeting_id": "m-1", "evidence": thudo_core::hex::encode(evidence)}]);
    let (_, refused) = upload(local, b, item(&shown_after)).await;
    assert_eq!(
        refused["results"][0]["reason"], "revoked_credential",
        "{refused}"
    );
    let (_, counted) = upload(local, a, item(before)).await;
    assert_eq!(counted["results"][0]["outcome"], "accepted", "{counted}");
}

/// The party organisation replaces the secretary: the credentials the outgoing one was issued
/// (a phone may hold next month's already) sign no QR from that moment. A QR it showed before
/// still counts; one shown after is refused, and the outgoing secretary is issued no more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_secretarys_credentials_sign_no_more_check_ins() {
    let dir = tempfile::tempdir().unwrap();
    let local = start_local(dir.path()).await;
    let secretary = cell_member(&local, dir.path(), SECRETARY, CELL).await;
    let a = cell_member(&local, dir.path(), MEMBER_A, CELL).await;
    let b = cell_member(&local, dir.path(), MEMBER_B, CELL).await;
    let (now, day_end) = todays_meeting(&local, &secretary, &[&a, &b]).await;
    // Shown and scanned before the replacement.
    let before =
        attendance::countersign(&a, &signed_qr(&secretary, "m-1", now - 30), now - 25).unwrap();
    let (status, _) = party(
        &local,
        "POST",
        &format!("/v1/admin/cells/{CELL}/secretary"),
        json!({ "citizen_id": MEMBER_B }),
    )
    .await;
    assert_eq!(status, 200);
    revoked_from_now(&local, &secretary, (&a, &b), &before, day_end).await;
    // The outgoing secretary is issued nothing more; the new one is.
    let over = HandbookClient::new(&local.client)
        .fetch_meeting_credential(secretary.clone(), "m-1")
        .await;
    assert!(
        matches!(&over, Err(BackendError::Refused { code, .. }) if code.as_str() == "not_secretary"),
        "{over:?}"
    );
    HandbookClient::new(&local.client)
        .fetch_meeting_credential(b.clone(), "m-1")
        .await
        .unwrap();
}

/// The secretary's phone is stolen and revoked: the credentials it was issued (it may hold
/// next month's already) sign no QR that counts from that moment; a QR it showed before still
/// counts, and the secretary's new phone is issued its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_secretary_phones_credentials_sign_no_more_check_ins() {
    let dir = tempfile::tempdir().unwrap();
    let local = start_local(dir.path()).await;
    let secretary = cell_member(&local, dir.path(), SECRETARY, CELL).await;
    let a = cell_member(&local, dir.path(), MEMBER_A, CELL).await;
    let b = cell_member(&local, dir.path(), MEMBER_B, CELL).await;
    let (now, day_end) = todays_meeting(&local, &secretary, &[&a, &b]).await;
    let before =
        attendance::countersign(&a, &signed_qr(&secretary, "m-1", now - 30), now - 25).unwrap();
    let stolen = thudo_core::sync::client::BackendClient::registration(&secretary)
        .unwrap()
        .unwrap()
        .device_id;
    let support = common::operator(&local.idp, Role::AccountSupport);
    let (status, answer) = common::call(
        &http_client(),
        &local.url,
        "POST",
        &format!("/v1/admin/devices/{stolen}/revoke"),
        &json!({}),
        Some(&support),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    revoked_from_now(&local, &secretary, (&a, &b), &before, day_end).await;
    // The secretary signs in on a new phone, still the cell's secretary.
    let new_phone = common::vault(&dir.path().join("new-phone"));
    local
        .client
        .sign_in_and_register(new_phone.clone(), "new phone", |n| {
            local.idp.id_token(SECRETARY, n).map_err(|e| e.to_string())
        })
        .await
        .unwrap();
    HandbookClient::new(&local.client)
        .fetch_meeting_credential(new_phone.clone(), "m-1")
        .await
        .unwrap();
}

/// A member checks in offline and is moved to another cell before the phone uploads (a
/// transfer the day after the meeting): the check-in counts in the cell attended. A QR of the
/// old cell shown after the move counts nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_in_counts_in_the_cell_attended_after_a_move() {
    let dir = tempfile::tempdir().unwrap();
    let local = start_local(dir.path()).await;
    let secretary = cell_member(&local, dir.path(), SECRETARY, CELL).await;
    let a = cell_member(&local, dir.path(), MEMBER_A, CELL).await;
    let b = cell_member(&local, dir.path(), MEMBER_B, CELL).await;
    let (now, day_end) = todays_meeting(&local, &secretary, &[&a, &b]).await;
    let attended =
        attendance::countersign(&a, &signed_qr(&secretary, "m-1", now - 30), now - 25).unwrap();
    // Both moved to another cell.
    for member in [MEMBER_A, MEMBER_B] {
        let (status, _) = party(
            &local,
            "POST",
            &format!("/v1/admin/citizens/{member}/cell"),
            json!({ "cell": OTHER_CELL }),
        )
        .await;
        assert_eq!(status, 200);
    }
    let after = (chrono::Utc::now().timestamp() + 1).min(day_end - 1) as u32;
    let too_late =
        attendance::countersign(&b, &signed_qr(&secretary, "m-1", after), after + 1).unwrap();
    let item = |evidence: &[u8]| json!([{"meeting_id": "m-1", "evidence": thudo_core::hex::encode(evidence)}]);
    let (_, counted) = upload(&local, &a, item(&attended)).await;
    assert_eq!(counted["results"][0]["outcome"], "accepted", "{counted}");
    let (_, refused) = upload(&local, &b, item(&too_late)).await;
    assert_eq!(refused["results"][0]["reason"], "wrong_cell", "{refused}");
    // A member who joined the cell after the showing does not count at it.
    let joined = cell_member(&local, dir.path(), MEMBER_E, OTHER_CELL).await;
    let before_joining =
        attendance::countersign(&joined, &signed_qr(&secretary, "m-1", now - 30), now - 20)
            .unwrap();
    let (status, _) = party(
        &local,
        "POST",
        &format!("/v1/admin/citizens/{MEMBER_E}/cell"),
        json!({ "cell": CELL }),
    )
    .await;
    assert_eq!(status, 200);
    let (_, refused) = upload(&local, &joined, item(&before_joining)).await;
    assert_eq!(refused["results"][0]["reason"], "wrong_cell", "{refused}");
    let (_, counts) = party(
        &local,
        "GET",
        &format!("/v1/admin/cells/{CELL}/meetings/m-1/attendance"),
        Value::Null,
    )
    .await;
    assert_eq!(counts["verified"], 1, "{counts}");
}

/// A credential issued by a version that recorded none (before the upgrade): a QR it showed
/// before the backend began recording still counts; one shown after does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrecorded_credential_counts_only_for_a_qr_shown_before_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::database(dir.path());
    let local = common::start_on(dir.path(), &db).await;
    let secretary = cell_member(&local, dir.path(), SECRETARY, CELL).await;
    let a = cell_member(&local, dir.path(), MEMBER_A, CELL).await;
    let b = cell_member(&local, dir.path(), MEMBER_B, CELL).await;
    let (now, _) = todays_meeting(&local, &secretary, &[&a, &b]).await;
    let before =
        attendance::countersign(&a, &signed_qr(&secretary, "m-1", now - 30), now - 25).unwrap();
    let after =
        attendance::countersign(&b, &signed_qr(&secretary, "m-1", now - 5), now - 4).unwrap();
    // As an older version left it: no record of the credential, recording from `now - 10`.
    common::tamper(&db, "DELETE FROM meeting_credentials");
    common::tamper(
        &db,
        &format!("UPDATE meeting_credentials_since SET at = {}", now - 10),
    );
    let item = |evidence: &[u8]| json!([{"meeting_id": "m-1", "evidence": thudo_core::hex::encode(evidence)}]);
    let (_, counted) = upload(&local, &a, item(&before)).await;
    assert_eq!(counted["results"][0]["outcome"], "accepted", "{counted}");
    let (_, refused) = upload(&local, &b, item(&after)).await;
    assert_eq!(
        refused["results"][0]["reason"], "revoked_credential",
        "{refused}"
    );
    local.running.stop().await;
}
