//! A member's party procedures, against the real server (SQLite, and PostgreSQL with
//! `THUDO_TEST_POSTGRES`): the member's phone files one queued; the party organisation
//! governing the member's cell reads it and says where it stands; every phone of the member
//! follows, and no phone can decide its own.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::{cell_member, http_client, party, start_local, vault};
use serde_json::{json, Value};
use thudo_core::handbook::member::{MemberHandbook, ProcedureRequest, ProcedureStatus};

const CELL: &str = "hn.ba-dinh.chi-bo-1";
const MEMBER: &str = "001080000002";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_party_decides_a_members_procedure_and_every_phone_follows() {
    let dir = tempfile::tempdir().unwrap();
    let local = start_local(dir.path()).await;
    let phone = cell_member(&local, dir.path(), MEMBER, CELL).await;
    let tablet = vault(&dir.path().join("tablet"));
    local
        .client
        .sign_in_and_register(tablet.clone(), "tablet", |n| {
            local.idp.id_token(MEMBER, n).map_err(|e| e.to_string())
        })
        .await
        .unwrap();
    let sync = |v: &std::sync::Arc<thudo_core::vault::Vault>| {
        let v = v.clone();
        let client = &local.client;
        async move { client.sync(v, &common::collections(), None).await.unwrap() }
    };
    let member = MemberHandbook::new(&phone);
    member
        .save_draft(
            "ct-1",
            ProcedureRequest::OfficialTransfer {
                to_organisation: "Đảng bộ phường Hoàn Kiếm".into(),
                self_review: "Hoàn thành tốt nhiệm vụ, giữ gìn phẩm chất đạo đức.".into(),
                decision_number: "123/QĐ-UBND".into(),
                decision_date: "2026-11-30".into(),
            },
            1_800_000_000,
        )
        .unwrap();
    member.queue("ct-1", 1_800_000_001).unwrap();
    sync(&phone).await;

    let path = format!("/v1/admin/citizens/{MEMBER}/procedures");
    let (status, listed) = party(&local, "GET", &path, Value::Null).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["procedures"][0]["id"], "ct-1");
    assert_eq!(listed["procedures"][0]["status"]["state"], "queued");
    assert_eq!(
        listed["procedures"][0]["request"]["kind"],
        "official_transfer"
    );

    let one = format!("{path}/ct-1");
    let decide = |state: &str, reason: Option<&str>| {
        let mut body = json!({ "state": state });
        if let Some(r) = reason {
            body["reason"] = json!(r);
        }
        party(&local, "POST", &one, body)
    };
    // A returned procedure says why; an unknown one is 404.
    assert_eq!(decide("returned", None).await.0, 400);
    assert_eq!(
        party(
            &local,
            "POST",
            &format!("{path}/ct-9"),
            json!({"state": "accepted"})
        )
        .await
        .0,
        404
    );
    let (status, submitted) = decide("submitted", None).await;
    assert_eq!(
        (status, &submitted["status"]["state"]),
        (200, &json!("submitted"))
    );
    // Said twice (the answer lost): the same.
    assert_eq!(decide("submitted", None).await.0, 200);
    sync(&phone).await;
    assert_eq!(
        member.procedures().unwrap()[0].status,
        ProcedureStatus::Submitted
    );
    assert_eq!(decide("accepted", None).await.0, 200);
    // Decided is decided.
    let (status, answer) = decide("returned", Some("Thiếu quyết định")).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("wrong_state")),
        "{answer}"
    );
    for v in [&phone, &tablet] {
        sync(v).await;
        let held = MemberHandbook::new(v).procedures().unwrap();
        assert_eq!(held[0].status, ProcedureStatus::Accepted);
    }

    // A phone cannot decide its own: an upload in any status but queued is refused, and the
    // organisation's word stands on every phone.
    let token = thudo_core::sync::client::BackendClient::registration(&tablet)
        .unwrap()
        .unwrap()
        .token;
    let mut forged = serde_json::to_value(&member.procedures().unwrap()[0]).unwrap();
    forged["id"] = json!("ct-2");
    let push = json!({"mutations": [{
        "idempotency_key": "00112233445566778899aabbccddeeff", "seq": 1,
        "collection": "handbook.procedure", "record_id": "ct-2", "op": "put",
        "payload": forged, "hlc": "1800000000000-000000-tablet"}]});
    let r = http_client()
        .post(format!("{}/v1/sync/push", local.url))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(push.to_string())
        .send()
        .await
        .unwrap();
    let answer: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(
        answer["results"][0]["reason"], "procedure_not_queued",
        "{answer}"
    );
    // Nor undo the decision: queued again, or deleted, over an accepted procedure.
    let mut requeued = serde_json::to_value(&member.procedures().unwrap()[0]).unwrap();
    requeued["status"] = json!({"state": "queued"});
    for (key, op, payload) in [
        ("00112233445566778899aabbccddee01", "put", requeued),
        ("00112233445566778899aabbccddee02", "delete", Value::Null),
    ] {
        let push = json!({"mutations": [{
            "idempotency_key": key, "seq": 1, "collection": "handbook.procedure",
            "record_id": "ct-1", "op": op, "payload": payload,
            "hlc": "1800000000001-000000-tablet"}]});
        let r = http_client()
            .post(format!("{}/v1/sync/push", local.url))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(push.to_string())
            .send()
            .await
            .unwrap();
        let answer: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        assert_eq!(
            answer["results"][0]["reason"], "procedure_decided",
            "{op}: {answer}"
        );
    }
    let (_, listed) = party(&local, "GET", &path, Value::Null).await;
    assert_eq!(
        listed["procedures"].as_array().unwrap().len(),
        1,
        "{listed}"
    );

    // Another ward's organisation neither reads nor decides it.
    let other = local
        .idp
        .operator_token(common::Role::PartyOrganisation, "hn.hoan-kiem")
        .unwrap();
    let (status, answer) = common::call(
        &http_client(),
        &local.url,
        "GET",
        &path,
        &Value::Null,
        Some(&other),
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (403, Some("not_governed"))
    );
}
