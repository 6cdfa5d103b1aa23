//! What organisations publish to citizens and cells, against the real server (SQLite, and
//! PostgreSQL with `THUDO_TEST_POSTGRES`): a record published in error is withdrawn by its
//! publisher alone; a meeting's id is one cell's; a member's party procedures, filed queued by
//! the member's phone, are decided by the organisation governing the member's cell, every
//! phone of the member follows, and no phone can decide its own.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::{call, cell_member, http_client, operator, party, start_local, vault, Role};
use serde_json::{json, Value};
use thudo_core::handbook::member::{MemberHandbook, ProcedureRequest, ProcedureStatus};

const CELL: &str = "hn.ba-dinh.chi-bo-1";
const MEMBER: &str = "001080000002";
const CITIZEN: &str = "001088012345";

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
    let held = serde_json::to_value(&member.procedures().unwrap()[0]).unwrap();
    let mut forged = held.clone();
    forged["id"] = json!("ct-2");
    // Nor undo the decision: queued again, or deleted, over an accepted procedure.
    let mut requeued = held;
    requeued["status"] = json!({"state": "queued"});
    for (key, record, op, payload, refusal) in [
        ("01", "ct-2", "put", forged, "procedure_not_queued"),
        ("02", "ct-1", "put", requeued, "procedure_decided"),
        ("03", "ct-1", "delete", Value::Null, "procedure_decided"),
    ] {
        let push = json!({"mutations": [{
            "idempotency_key": format!("00112233445566778899aabbccddee{key}"), "seq": 1,
            "collection": "handbook.procedure", "record_id": record, "op": op,
            "payload": payload, "hlc": "1800000000001-000000-tablet"}]});
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
            answer["results"][0]["reason"], refusal,
            "{op} {record}: {answer}"
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
        .operator_token(Role::PartyOrganisation, "hn.hoan-kiem")
        .unwrap();
    let (status, answer) = call(
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

/// A record published in error (to the wrong citizen, the wrong cell) is withdrawn by its
/// publisher, or an organisation above it: every device deletes it at its next sync. Nobody
/// else can withdraw it, a record of the citizen's own is nobody's to withdraw, and the same
/// withdrawal delivered twice publishes one delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_published_in_error_is_withdrawn_by_its_publisher_alone() {
    let dir = tempfile::tempdir().unwrap();
    let local = start_local(dir.path()).await;
    let http = http_client();
    let send = |method: &'static str, token: String, path: String, body: Value| {
        let (http, base) = (http.clone(), local.url.clone());
        async move { call(&http, &base, method, &path, &body, Some(&token)).await }
    };
    let clinic = operator(&local.idp, Role::HealthFacility);
    let other_clinic = local
        .idp
        .operator_token(Role::HealthFacility, "bv-viet-duc")
        .unwrap();
    let health = format!("/v1/admin/citizens/{CITIZEN}/health");
    let diagnosis = json!({"resources": [
        {"resourceType": "Condition", "id": "dx-1", "code": {"text": "Lao phổi"}},
        {"resourceType": "Immunization", "id": "imm-1", "status": "completed"}]});
    let (status, _) = send("POST", clinic.clone(), health.clone(), diagnosis).await;
    assert_eq!(status, 200);
    let v = vault(&dir.path().join("phone"));
    local
        .client
        .sign_in_and_register(v.clone(), "phone", |n| {
            local.idp.id_token(CITIZEN, n).map_err(|e| e.to_string())
        })
        .await
        .unwrap();
    let sync = || async {
        local
            .client
            .sync(v.clone(), &common::collections(), None)
            .await
            .unwrap();
    };
    sync().await;
    let book = thudo_core::health::records::HealthBook::new(&v);
    assert!(book.get("Condition/dx-1").unwrap().is_some());
    // The citizen's own record, entered on the phone and pushed.
    let me = book
        .save_person(
            &thudo_core::health::records::Person {
                id: None,
                full_name: "Nguyễn Văn A".into(),
                birth_date: "1980-01-01".into(),
                gender: thudo_core::health::records::Gender::Male,
                citizen_id: None,
                insurance: None,
            },
            1_800_000_000,
        )
        .unwrap();
    let allergy = json!({"resourceType": "AllergyIntolerance", "id": "al-1",
        "code": {"text": "Penicillin"}, "patient": {"reference": format!("Patient/{me}")}});
    book.put_resource(&allergy.to_string(), 1_800_000_000)
        .unwrap();
    sync().await;

    let withdraw =
        |token: String, key: &str| send("DELETE", token, format!("{health}/{key}"), Value::Null);
    let (status, answer) = withdraw(other_clinic.clone(), "Condition/dx-1").await;
    assert_eq!((status, answer["error"].as_str()), (403, Some("not_yours")));
    let (status, answer) = withdraw(clinic.clone(), "AllergyIntolerance/al-1").await;
    assert_eq!((status, answer["error"].as_str()), (404, Some("not_found")));
    // Nor replaced by a facility publishing the same key: it stays as the citizen entered it.
    let replacing = json!({"resources": [{"resourceType": "AllergyIntolerance", "id": "al-1",
        "code": {"text": "Không dị ứng"}, "patient": {"reference": format!("Patient/{me}")}}]});
    let (status, answer) = send("POST", clinic.clone(), health.clone(), replacing).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (403, Some("not_yours")),
        "{answer}"
    );
    let (status, answer) = withdraw(clinic.clone(), "Condition/dx-1").await;
    assert_eq!((status, answer["withdrawn"].as_bool()), (200, Some(true)));
    let (status, answer) = withdraw(clinic.clone(), "Condition/dx-1").await;
    assert_eq!((status, answer["withdrawn"].as_bool()), (200, Some(false)));
    let (status, _) = withdraw(clinic.clone(), "Condition/dx_1").await;
    assert_eq!(status, 404, "no resource has that id");
    sync().await;
    assert!(book.get("Condition/dx-1").unwrap().is_none());
    assert!(book.get("Immunization/imm-1").unwrap().is_some());
    let own = book.get("AllergyIntolerance/al-1").unwrap().unwrap();
    assert!(own.resource.to_string().contains("Penicillin"));
    // The citizen's own version of a record the facility published (pushed from the phone
    // since) is the citizen's: the facility neither publishes over it nor withdraws it.
    let theirs = json!({"resourceType": "Immunization", "id": "imm-2", "status": "completed",
        "patient": {"reference": format!("Patient/{me}")}});
    let (status, _) = send(
        "POST",
        clinic.clone(),
        health.clone(),
        json!({ "resources": [theirs] }),
    )
    .await;
    assert_eq!(status, 200);
    sync().await;
    let mut mine = theirs.clone();
    mine["note"] = json!([{"text": "tiêm ở Hà Nam"}]);
    book.put_resource(&mine.to_string(), 1_800_000_100).unwrap();
    sync().await;
    let (status, answer) = withdraw(clinic.clone(), "Immunization/imm-2").await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (403, Some("not_yours")),
        "{answer}"
    );
    let over = json!({ "resources": [theirs] });
    let (status, answer) = send("POST", clinic.clone(), health.clone(), over).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (403, Some("not_yours")),
        "{answer}"
    );
    // One the citizen deleted on the phone may be published again by its facility.
    assert!(book.delete("Immunization/imm-1", 1_800_000_200).unwrap());
    sync().await;
    let again = json!({"resources": [{"resourceType": "Immunization", "id": "imm-1"}]});
    let (status, answer) = send("POST", clinic.clone(), health.clone(), again).await;
    assert_eq!(status, 200, "{answer}");
    // Published again afterwards, it is back.
    let again = json!({"resources": [{"resourceType": "Condition", "id": "dx-1"}]});
    let (status, _) = send("POST", clinic.clone(), health.clone(), again).await;
    assert_eq!(status, 200);
    sync().await;
    assert!(book.get("Condition/dx-1").unwrap().is_some());

    // A cell's document: withdrawn by its ward or the city above it, not by another ward.
    let ward = local
        .idp
        .operator_token(Role::PartyOrganisation, "hn.ba-dinh")
        .unwrap();
    let other_ward = local
        .idp
        .operator_token(Role::PartyOrganisation, "hn.hoan-kiem")
        .unwrap();
    let city = operator(&local.idp, Role::PartyOrganisation);
    let docs = "/v1/admin/cells/hn.ba-dinh.chi-bo-1/handbook.documents".to_owned();
    let items = json!({"items": [
        {"id": "tb-1", "title": "Thông báo nhầm"}, {"id": "tb-2", "title": "Thông báo"}]});
    let (status, _) = send("POST", ward.clone(), docs.clone(), items).await;
    assert_eq!(status, 200);
    let (status, answer) = send("DELETE", other_ward, format!("{docs}/tb-1"), Value::Null).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (403, Some("not_governed"))
    );
    for token in [ward.clone(), city] {
        let (status, answer) = send("DELETE", token, format!("{docs}/tb-1"), Value::Null).await;
        assert_eq!(status, 200, "{answer}");
    }
    let (status, _) = send("DELETE", ward.clone(), format!("{docs}/nope"), Value::Null).await;
    assert_eq!(status, 404);
    let (status, _) = send(
        "DELETE",
        ward,
        "/v1/admin/cells/hn.ba-dinh.chi-bo-1/health.records/tb-2".into(),
        Value::Null,
    )
    .await;
    assert_eq!(status, 404, "not a cell's collection");
}

/// Phones key a meeting and a notice by its id, and so does the attendance count: one id in two
/// cells would merge a moved member's December meetings. An id another cell holds is refused
/// (all of the publish); a document, the same resolution in every cell, is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meetings_id_is_one_cells() {
    let dir = tempfile::tempdir().unwrap();
    let local = start_local(dir.path()).await;
    let http = http_client();
    let city = operator(&local.idp, Role::PartyOrganisation);
    let publish = |cell: &str, collection: &str, items: Value| {
        let (http, base, token) = (http.clone(), local.url.clone(), city.clone());
        let path = format!("/v1/admin/cells/{cell}/{collection}");
        async move {
            call(
                &http,
                &base,
                "POST",
                &path,
                &json!({"items": items}),
                Some(&token),
            )
            .await
        }
    };
    let meeting = |id: &str| json!({"id": id, "date": "2026-12-05", "topic": "Sinh hoạt chi bộ"});
    let (status, _) = publish(
        "hn.ba-dinh.chi-bo-1",
        "handbook.meeting",
        json!([meeting("sh-2026-12")]),
    )
    .await;
    assert_eq!(status, 200);
    // Published again to its own cell: a correction.
    let (status, _) = publish(
        "hn.ba-dinh.chi-bo-1",
        "handbook.meeting",
        json!([meeting("sh-2026-12")]),
    )
    .await;
    assert_eq!(status, 200);
    let (status, answer) = publish(
        "hn.ba-dinh.chi-bo-2",
        "handbook.meeting",
        json!([meeting("cb2-sh-2026-12"), meeting("sh-2026-12")]),
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (403, Some("not_yours")),
        "{answer}"
    );
    let (status, _) = publish(
        "hn.ba-dinh.chi-bo-2",
        "handbook.meeting",
        json!([meeting("cb2-sh-2026-12")]),
    )
    .await;
    assert_eq!(status, 200, "its own id alone is published");
    // Withdrawn from the cell it was published to by mistake, the id is free for the right one.
    let (status, _) = call(
        &http,
        &local.url,
        "DELETE",
        "/v1/admin/cells/hn.ba-dinh.chi-bo-1/handbook.meeting/sh-2026-12",
        &Value::Null,
        Some(&city),
    )
    .await;
    assert_eq!(status, 200);
    let (status, answer) = publish(
        "hn.ba-dinh.chi-bo-2",
        "handbook.meeting",
        json!([meeting("sh-2026-12")]),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let notice = json!([{"id": "tb-1", "title": "Thông báo"}]);
    assert_eq!(
        publish("hn.ba-dinh.chi-bo-1", "handbook.notice", notice.clone())
            .await
            .0,
        200
    );
    assert_eq!(
        publish("hn.ba-dinh.chi-bo-2", "handbook.notice", notice)
            .await
            .0,
        403
    );
    let document = json!([{"id": "nq-57", "title": "Nghị quyết 57"}]);
    for cell in ["hn.ba-dinh.chi-bo-1", "hn.ba-dinh.chi-bo-2"] {
        assert_eq!(
            publish(cell, "handbook.documents", document.clone())
                .await
                .0,
            200
        );
    }
}
