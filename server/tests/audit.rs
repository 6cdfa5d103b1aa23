//! The audit trail: every operator action lands in a sealed trail that shows an edited,
//! inserted or removed entry, and an end cut off against a head the auditor kept; a change's
//! intent is entered before it runs and its outcome after; secrets in an answer are entered as
//! their hash. Each runs against the real server, on SQLite and (with `THUDO_TEST_POSTGRES`)
//! on PostgreSQL.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::{call, http_client, operator, start_local, tamper, vault, Role};
use serde_json::{json, Value};

const CITIZEN: &str = "001088012345";
const PARENT: &str = "001066000222";

/// What `GET /v1/admin/audit/verify` says of the trail, asked by `auditor`'s token.
async fn verify_trail(http: &reqwest::Client, url: &str, auditor: &str) -> Value {
    call(
        http,
        url,
        "GET",
        "/v1/admin/audit/verify",
        &Value::Null,
        Some(auditor),
    )
    .await
    .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_trail_shows_who_did_what_and_any_edit() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::database(dir.path());
    let local = common::start_on(dir.path(), &db).await;
    let http = http_client();
    let registry = operator(&local.idp, Role::CivilRegistry);
    let auditor = operator(&local.idp, Role::Auditor);
    // The adult dependant (an elderly parent) has a phone of their own.
    let parent_phone = vault(&dir.path().join("parent"));
    local
        .client
        .sign_in_and_register(parent_phone.clone(), "phone", |n| {
            local.idp.id_token(CITIZEN, n).map_err(|e| e.to_string())
        })
        .await
        .unwrap();
    let (status, answer) = call(
        &http,
        &local.url,
        "POST",
        &format!("/v1/admin/citizens/{PARENT}/dependants"),
        &json!({"dependant_citizen_id": CITIZEN, "evidence_ref": "SHK-0142"}),
        Some(&registry),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    // A refusal is entered too.
    let transit = operator(&local.idp, Role::TransitOperator);
    let (status, _) = call(
        &http,
        &local.url,
        "POST",
        &format!("/v1/admin/citizens/{PARENT}/dependants"),
        &json!({"dependant_citizen_id": CITIZEN, "evidence_ref": "x"}),
        Some(&transit),
    )
    .await;
    assert_eq!(status, 403);

    // The dependant's own phone is told.
    let told = |kind: &'static str| {
        let (client, phone) = (&local.client, parent_phone.clone());
        async move {
            client
                .sync(phone.clone(), &common::collections(), None)
                .await
                .unwrap();
            let notices = thudo_core::transit::trips::RiderHistory::new(&phone)
                .notices()
                .unwrap();
            assert!(
                notices.iter().any(|n| n.kind == kind),
                "{kind}: {notices:?}"
            );
        }
    };
    told("guardian_added").await;
    // And told when the registry ends it.
    let (status, answer) = call(
        &http,
        &local.url,
        "DELETE",
        &format!("/v1/admin/citizens/{PARENT}/dependants/{CITIZEN}?evidence_ref=QD-7"),
        &Value::Null,
        Some(&registry),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    told("guardian_removed").await;

    let (_, page) = call(
        &http,
        &local.url,
        "GET",
        &format!("/v1/admin/audit?citizen_id={CITIZEN}"),
        &Value::Null,
        Some(&auditor),
    )
    .await;
    assert_eq!(page["verified"], true, "{page}");
    for bad in ["limit=0", "limit=1001", "citizen_id=12", "after=-1"] {
        let (status, _) = call(
            &http,
            &local.url,
            "GET",
            &format!("/v1/admin/audit?{bad}"),
            &Value::Null,
            Some(&auditor),
        )
        .await;
        assert_eq!(status, 400, "{bad}");
    }
    let entries = page["entries"].as_array().unwrap();
    // Intent and outcome of the guardianship, the refused attempt's two, and the ending's two.
    assert_eq!(entries.len(), 6, "{page}");
    let outcome = &entries[1];
    assert_eq!(outcome["role"], "civil_registry");
    assert_eq!(outcome["organisation"], "hn-ho-tich");
    assert_eq!(
        outcome["action"],
        "POST /v1/admin/citizens/{citizen_id}/dependants"
    );
    assert_eq!(outcome["refers_to"], entries[0]["seq"]);
    let detail: Value = serde_json::from_str(outcome["detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["status"], 200);
    assert_eq!(detail["effect"]["evidence_ref"], "SHK-0142");
    let refused: Value = serde_json::from_str(entries[3]["detail"].as_str().unwrap()).unwrap();
    assert_eq!(
        (refused["status"].as_u64(), entries[3]["role"].as_str()),
        (Some(403), Some("transit_operator"))
    );
    // No citizen ID in the trail: keyed, as in every table.
    let raw = page.to_string();
    assert!(!raw.contains(CITIZEN) && !raw.contains(PARENT), "{raw}");

    // Someone with the database but not the secrets edits who did it: the chain breaks there.
    let verify = || {
        let (http, url, auditor) = (http.clone(), local.url.clone(), auditor.clone());
        async move { verify_trail(&http, &url, &auditor).await }
    };
    let before = verify().await;
    assert_eq!(before["verified"], true, "{before}");
    let seq = entries[1]["seq"].as_u64().unwrap();
    tamper(
        &db,
        &format!("UPDATE audit_log SET organisation = 'bv-bach-mai' WHERE seq = {seq}"),
    );
    let after = verify().await;
    assert_eq!(
        (after["verified"].as_bool(), after["broken_at"].as_u64()),
        (Some(false), Some(seq))
    );
    // Put back, the chain holds again; a removed row breaks it at the next place.
    tamper(
        &db,
        &format!("UPDATE audit_log SET organisation = 'hn-ho-tich' WHERE seq = {seq}"),
    );
    assert_eq!(verify().await["verified"], true);
    tamper(&db, &format!("DELETE FROM audit_log WHERE seq = {seq}"));
    let after = verify().await;
    assert_eq!(after["broken_at"].as_u64(), Some(seq + 1), "{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_cut_short_shows_as_an_intent_without_an_outcome() {
    use thudo_server::operators::audit::NewEntry;
    let dir = tempfile::tempdir().unwrap();
    let local = start_local(dir.path()).await;
    let http = http_client();
    let transit = operator(&local.idp, Role::TransitOperator);
    let auditor = operator(&local.idp, Role::Auditor);
    let deny = |token: String| {
        let (http, url) = (http.clone(), local.url.clone());
        async move {
            call(
                &http,
                &url,
                "POST",
                "/v1/admin/transit/deny",
                &json!({"cards": [123]}),
                Some(&token),
            )
            .await
        }
    };
    assert_eq!(deny(transit.clone()).await.0, 200);
    // The process dies after the gate entered a change's intent and before its outcome: what
    // the trail holds then is the intent alone (entered as the middleware enters it).
    let storage = local.storage.clone();
    let cut = tokio::task::spawn_blocking(move || {
        storage
            .append_audit(
                &NewEntry {
                    subject: "clerk-9".into(),
                    role: "transit_operator".into(),
                    organisation: "hanoi-metro".into(),
                    action: "POST /v1/admin/transit/deny".into(),
                    target: String::new(),
                    refers_to: None,
                    detail: json!({"body_mac": "00", "body_bytes": 2, "query": ""}),
                },
                &thudo_server::secrets::ServerSecrets::local(),
            )
            .unwrap()
    })
    .await
    .unwrap();
    // The server goes on (restarted, as it were): the next action chains on after it.
    assert_eq!(deny(transit).await.0, 200);
    let verified = verify_trail(&http, &local.url, &auditor).await;
    assert_eq!(verified["verified"], true, "{verified}");
    assert_eq!(verified["unfinished"], json!([cut]), "{verified}");
    assert_eq!(
        verified["entries"], 5,
        "two changes of two entries each, and the cut one"
    );
}

/// A change's answer is entered as its effect, but never a secret in it: a validator's
/// enrolment code is entered as its SHA-256 (what the store keeps), so an auditor or a copy of
/// the database cannot enrol a validator with it. The code still enrols.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrolment_code_is_entered_only_as_its_hash() {
    let dir = tempfile::tempdir().unwrap();
    let local = start_local(dir.path()).await;
    let http = http_client();
    let transit = operator(&local.idp, Role::TransitOperator);
    let (status, enrolment) = call(
        &http,
        &local.url,
        "POST",
        "/v1/admin/transit/enrolments",
        &json!({"label": "bus 32 front door", "route": 32}),
        Some(&transit),
    )
    .await;
    assert_eq!(status, 200, "{enrolment}");
    let code = enrolment["code"].as_str().unwrap().to_owned();
    let auditor = operator(&local.idp, Role::Auditor);
    let (_, trail) = call(
        &http,
        &local.url,
        "GET",
        "/v1/admin/audit",
        &Value::Null,
        Some(&auditor),
    )
    .await;
    let text = trail.to_string();
    assert!(!text.contains(&code), "the code is in the trail: {text}");
    let hash = thudo_core::hex::encode(&thudo_server::storage::sha256(code.as_bytes()));
    let entered = trail["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "POST /v1/admin/transit/enrolments" && e["refers_to"].is_u64())
        .unwrap_or_else(|| panic!("no outcome entered: {trail}"));
    let detail: Value = serde_json::from_str(entered["detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["effect"]["code"]["sha256"], hash, "{entered}");
    assert_eq!(detail["effect"]["route"], 32);
    let enrolled = local
        .client
        .enrol_validator(
            vault(&dir.path().join("bus")),
            &thudo_core::sync::protocol::ValidatorEnrolmentRequest {
                enrolment_code: code,
                device_name: "bus".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(enrolled.route, Some(32));
}

/// The newest entries cut off and written again make a valid chain of their own; an auditor
/// who kept a head from an earlier check sees it (the head gone, or its seal changed), on the
/// check of the whole trail and on a page read from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_cut_off_and_written_again_shows_against_a_kept_head() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::database(dir.path());
    let local = common::start_on(dir.path(), &db).await;
    let http = http_client();
    let transit = operator(&local.idp, Role::TransitOperator);
    let auditor = operator(&local.idp, Role::Auditor);
    let act = |label: &'static str| {
        let (http, url, token) = (&http, &local.url, &transit);
        async move {
            let (status, _) = call(
                http,
                url,
                "POST",
                "/v1/admin/transit/enrolments",
                &json!({"label": label, "route": 32}),
                Some(token),
            )
            .await;
            assert_eq!(status, 200);
        }
    };
    let check = |query: String| {
        let (http, url, token) = (&http, &local.url, &auditor);
        async move {
            call(
                http,
                url,
                "GET",
                &format!("/v1/admin/audit/verify{query}"),
                &Value::Null,
                Some(token),
            )
            .await
            .1
        }
    };
    act("bus 1").await;
    act("bus 2").await;
    let first = check(String::new()).await;
    assert_eq!(first["verified"], true, "{first}");
    let (seq, mac) = (
        first["head"]["seq"].as_u64().unwrap(),
        first["head"]["mac"].as_str().unwrap().to_owned(),
    );
    let kept = format!("?seq={seq}&mac={mac}");
    assert_eq!(check(kept.clone()).await["verified"], true);
    // A seal is checked or refused, never ignored: malformed, without its place, or place 0.
    for bad in [
        "?seq=1&mac=zz".to_owned(),
        format!("?mac={mac}"),
        format!("?seq=0&mac={mac}"),
    ] {
        assert_eq!(check(bad.clone()).await["error"], "bad_request", "{bad}");
    }
    // An insider removes the last change (its intent and outcome) and what came after...
    tamper(
        &db,
        &format!("DELETE FROM audit_log WHERE seq >= {}", seq - 1),
    );
    let cut = check(String::new()).await;
    assert_eq!(
        cut["verified"], true,
        "a shorter chain is valid on its own: {cut}"
    );
    let against = check(kept.clone()).await;
    assert_eq!(
        (against["verified"].as_bool(), against["broken_at"].as_u64()),
        (Some(false), Some(seq)),
        "{against}"
    );
    // ... and the numbers are taken again by new entries: the head's seal no longer matches.
    act("bus 3").await;
    act("bus 4").await;
    let rewritten = check(kept).await;
    assert_eq!(
        (
            rewritten["verified"].as_bool(),
            rewritten["broken_at"].as_u64()
        ),
        (Some(false), Some(seq)),
        "{rewritten}"
    );
    let (_, page) = call(
        &http,
        &local.url,
        "GET",
        &format!("/v1/admin/audit?after={seq}&mac={mac}"),
        &Value::Null,
        Some(&auditor),
    )
    .await;
    assert_eq!(
        (page["verified"].as_bool(), page["broken_at"].as_u64()),
        (Some(false), Some(seq)),
        "{page}"
    );
    local.running.stop().await;
}

/// A body the trail cannot read could hide the citizen it names: a registry clerk's
/// guardianship request with a lone surrogate, or a byte that is not UTF-8, in a field the
/// handler skips unread is refused and entered as refused, never done unseen. A HEAD is a read:
/// its answer is not entered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_the_trail_cannot_read_is_refused_and_a_head_is_a_read() {
    let dir = tempfile::tempdir().unwrap();
    let local = start_local(dir.path()).await;
    let http = http_client();
    let registry = operator(&local.idp, Role::CivilRegistry);
    let auditor = operator(&local.idp, Role::Auditor);
    let url = format!("{}/v1/admin/citizens/{PARENT}/dependants", local.url);
    let start = format!(r#"{{"dependant_citizen_id":"{CITIZEN}","evidence_ref":"X","z":""#);
    // Declared as JSON, or not at all (the handler reads it as JSON either way).
    for (tail, content_type) in [
        (&b"\\udc00\"}"[..], Some("application/json; charset=utf-8")),
        (&b"\xff\"}"[..], Some("application/json")),
        (&b"\\udc00\"}"[..], None),
        (&b"\\udc00\"}"[..], Some("text/plain")),
    ] {
        let body = [start.as_bytes(), tail].concat();
        let mut request = http.post(&url).bearer_auth(&registry).body(body);
        if let Some(t) = content_type {
            request = request.header("content-type", t);
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status().as_u16(), 400, "{content_type:?}");
    }
    let trail = |citizen: &'static str| {
        let (http, url, auditor) = (http.clone(), local.url.clone(), auditor.clone());
        async move {
            let (status, page) = call(
                &http,
                &url,
                "GET",
                &format!("/v1/admin/audit?citizen_id={citizen}"),
                &Value::Null,
                Some(&auditor),
            )
            .await;
            assert_eq!(status, 200, "{page}");
            page["entries"].as_array().unwrap().clone()
        }
    };
    // Entered under the guardian the path names, each an intent (with the body's size) and
    // its refusal; nothing was done to the child.
    let refused = trail(PARENT).await;
    assert_eq!(refused.len(), 8, "{refused:?}");
    for pair in refused.chunks(2) {
        let intent: Value = serde_json::from_str(pair[0]["detail"].as_str().unwrap()).unwrap();
        assert!(intent["body_bytes"].as_u64().unwrap() > 0, "{intent}");
        let outcome: Value = serde_json::from_str(pair[1]["detail"].as_str().unwrap()).unwrap();
        assert_eq!(outcome["status"], 400, "{outcome}");
        assert_eq!(pair[1]["refers_to"], pair[0]["seq"]);
    }
    assert!(trail(CITIZEN).await.is_empty());
    // The same request readable is done, and found by the child.
    let (status, answer) = call(
        &http,
        &local.url,
        "POST",
        &format!("/v1/admin/citizens/{PARENT}/dependants"),
        &json!({"dependant_citizen_id": CITIZEN, "evidence_ref": "X"}),
        Some(&registry),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    // (The auditor's own lookup of the child is entered too.)
    let done = trail(CITIZEN).await;
    let posts = done
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("POST"));
    assert_eq!(posts.count(), 2, "{done:?}");

    // A HEAD of a read: entered with its size only, as a GET is.
    let r = http
        .head(format!(
            "{}/v1/admin/citizens/{PARENT}/entitlements",
            local.url
        ))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let entries = trail(PARENT).await;
    let head = entries.last().unwrap();
    assert_eq!(
        head["action"],
        "HEAD /v1/admin/citizens/{citizen_id}/entitlements"
    );
    let detail: Value = serde_json::from_str(head["detail"].as_str().unwrap()).unwrap();
    assert!(detail.get("effect").is_none(), "{detail}");
    assert_eq!(detail["status"], 200);
    assert!(head["refers_to"].is_null(), "{head}");
    // A HEAD, with a body or without, is no change left unfinished.
    let r = http
        .head(format!(
            "{}/v1/admin/citizens/{PARENT}/entitlements",
            local.url
        ))
        .bearer_auth(&auditor)
        .body(&b"\xff"[..])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let verified = verify_trail(&http, &local.url, &auditor).await;
    assert_eq!(verified["verified"], true, "{verified}");
    assert_eq!(verified["unfinished"], json!([]), "{verified}");
    // A malformed change's refusal is entered by its code alone: a parser's message quotes
    // what was sent, a citizen ID among it, and the sealed trail can never be purged of it.
    let (status, _) = call(
        &http,
        &local.url,
        "POST",
        &format!("/v1/admin/citizens/{PARENT}/dependants"),
        &json!({"dependant_citizen_id": 1_088_012_345u64, "evidence_ref": "X"}),
        Some(&registry),
    )
    .await;
    assert_eq!(status, 400);
    let entries = trail(PARENT).await;
    let refusal = entries
        .iter()
        .rev()
        .find(|e| e["action"].as_str().unwrap().starts_with("POST"))
        .unwrap();
    let text = refusal["detail"].as_str().unwrap();
    assert!(!text.contains("1088012345"), "{text}");
    let detail: Value = serde_json::from_str(text).unwrap();
    assert_eq!(detail["status"], 400, "{detail}");
    assert_eq!(detail["effect"]["error"], "bad_request", "{detail}");
}
