//! Operators hold only their own power. Every operator route is tried by every role and by no
//! credential; a clinic cannot make itself a stranger's guardian, nor publish as another
//! clinic; a party organisation acts on its own cells only; every action lands in a sealed
//! audit trail that shows an edited or removed row; citizen IDs cannot be read back from the
//! database file. Each runs against the real server, on SQLite and (with
//! `THUDO_TEST_POSTGRES`) on PostgreSQL.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::{call, citizen_key, http_client, operator, start_local, vault, Role};
use serde_json::{json, Value};
use thudo_server::devices::identity::LocalIdentityProvider;

const CITIZEN: &str = "001088012345";
const PARENT: &str = "001066000222";

/// Every operator route: method, path, body, and the roles that may call it.
fn routes() -> Vec<(&'static str, String, Value, Vec<Role>)> {
    use Role::*;
    let c = CITIZEN;
    let reads = |r: Role| vec![r, Auditor];
    vec![
        (
            "POST",
            "/v1/admin/transit/deny".into(),
            json!({"cards": [123]}),
            vec![TransitOperator],
        ),
        (
            "POST",
            "/v1/admin/transit/enrolments".into(),
            json!({"label": "bus", "route": 32}),
            vec![TransitOperator],
        ),
        (
            "GET",
            "/v1/admin/transit/validators".into(),
            Value::Null,
            reads(TransitOperator),
        ),
        (
            "POST",
            "/v1/admin/transit/validators/v-nope/decommission".into(),
            json!({}),
            vec![TransitOperator],
        ),
        (
            "GET",
            "/v1/admin/transit/fraud".into(),
            Value::Null,
            reads(TransitOperator),
        ),
        (
            "POST",
            "/v1/admin/transit/journeys/settle".into(),
            json!({}),
            vec![TransitOperator],
        ),
        (
            "GET",
            "/v1/admin/transit/inspections".into(),
            Value::Null,
            reads(TransitOperator),
        ),
        (
            "POST",
            "/v1/admin/transit/issuer/rotate".into(),
            json!({"starts_in_secs": 86_400}),
            vec![TransitOperator],
        ),
        (
            "GET",
            "/v1/admin/transit/reconciliation".into(),
            Value::Null,
            reads(TransitOperator),
        ),
        (
            "GET",
            "/v1/admin/transit/ledger".into(),
            Value::Null,
            reads(TransitOperator),
        ),
        (
            "POST",
            "/v1/admin/transit/orders/o-nope/refund".into(),
            json!({}),
            vec![TransitOperator],
        ),
        (
            "POST",
            format!("/v1/admin/citizens/{c}/entitlements"),
            json!({"category": "elderly", "valid_from": 0, "valid_until": 4_000_000_000i64,
                   "evidence_ref": "CCCD-60"}),
            vec![TransitOperator],
        ),
        (
            "GET",
            format!("/v1/admin/citizens/{c}/entitlements"),
            Value::Null,
            reads(TransitOperator),
        ),
        (
            "POST",
            format!("/v1/admin/citizens/{PARENT}/dependants"),
            json!({"dependant_citizen_id": c, "evidence_ref": "SHK-0142"}),
            vec![CivilRegistry],
        ),
        (
            "DELETE",
            format!("/v1/admin/citizens/{PARENT}/dependants/{c}?evidence_ref=QD-7"),
            Value::Null,
            vec![CivilRegistry],
        ),
        (
            "POST",
            format!("/v1/admin/citizens/{c}/health"),
            json!({"resources": [{"resourceType": "Immunization", "id": "imm-1"}]}),
            vec![HealthFacility],
        ),
        (
            "POST",
            format!("/v1/admin/citizens/{c}/cell"),
            json!({"cell": "hn.ba-dinh.chi-bo-1"}),
            vec![PartyOrganisation],
        ),
        (
            "POST",
            "/v1/admin/cells/hn.ba-dinh.chi-bo-1/handbook.documents".into(),
            json!({"items": [{"id": "nq-1", "title": "Nghị quyết"}]}),
            vec![PartyOrganisation],
        ),
        (
            "POST",
            "/v1/admin/cells/hn.ba-dinh.chi-bo-1/files".into(),
            json!({"name": "nq.pdf", "media_type": "application/pdf", "data": "JVBERi0="}),
            vec![PartyOrganisation],
        ),
        (
            "POST",
            "/v1/admin/cells/hn.ba-dinh.chi-bo-1/secretary".into(),
            json!({"citizen_id": c}),
            vec![PartyOrganisation],
        ),
        (
            "GET",
            "/v1/admin/cells/hn.ba-dinh.chi-bo-1/meetings/m-1/attendance".into(),
            Value::Null,
            vec![PartyOrganisation, Auditor],
        ),
        (
            "POST",
            "/v1/admin/devices/d-nope/revoke".into(),
            json!({}),
            vec![AccountSupport],
        ),
        (
            "POST",
            "/v1/admin/health/trust-bundle".into(),
            json!({"card_issuers": [], "passport_signers": [], "valid_days": 7}),
            vec![HealthAuthority],
        ),
        (
            "GET",
            "/v1/admin/health/trust-bundle".into(),
            Value::Null,
            reads(HealthAuthority),
        ),
        ("GET", "/v1/admin/audit".into(), Value::Null, vec![Auditor]),
        (
            "GET",
            "/v1/admin/audit/verify".into(),
            Value::Null,
            vec![Auditor],
        ),
    ]
}

/// The matrix holds every route the API document marks as an operator's: a new operator route
/// cannot ship without its row.
#[test]
fn the_matrix_holds_every_operator_route() {
    let doc: Value = serde_json::from_str(thudo_server::app::openapi_json()).unwrap();
    let mut documented = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let security = op["security"].as_array().cloned().unwrap_or_default();
            if security.iter().any(|s| s.get("operator").is_some()) {
                documented.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    // A row belongs to the documented route it matches with the most literal segments (a
    // `{param}` matches any one segment; the query is not part of the route).
    let literals = |template: &str| template.split('/').filter(|t| !t.starts_with('{')).count();
    let matches = |template: &str, path: &str| {
        let path = path.split('?').next().unwrap_or_default();
        let (t, p): (Vec<_>, Vec<_>) = (template.split('/').collect(), path.split('/').collect());
        t.len() == p.len()
            && t.iter()
                .zip(&p)
                .all(|(t, p)| t == p || (t.starts_with('{') && !p.is_empty()))
    };
    let mut covered = std::collections::BTreeSet::new();
    for (method, path, _, _) in routes() {
        let route = documented
            .iter()
            .filter(|(m, t)| m == method && matches(t, &path))
            .max_by_key(|(_, t)| literals(t));
        let Some(route) = route else {
            panic!("{method} {path} is not an operator route in the API document");
        };
        covered.insert(route.clone());
    }
    assert!(documented.len() >= 20, "{documented:?}");
    let missing: Vec<_> = documented
        .iter()
        .filter(|r| !covered.contains(*r))
        .collect();
    assert!(
        missing.is_empty(),
        "operator routes without a row: {missing:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_and_no_credential_on_every_operator_route() {
    let dir = tempfile::tempdir().unwrap();
    let local = start_local(dir.path()).await;
    let http = http_client();
    let mut matrix = Vec::new();
    for (method, path, body, allowed) in routes() {
        let (status, answer) = call(&http, &local.url, method, &path, &body, None).await;
        assert_eq!(
            status, 401,
            "{method} {path} without a credential: {answer}"
        );
        let mut row = format!("{method} {path}:");
        for role in Role::ALL {
            let token = operator(&local.idp, role);
            let (status, answer) =
                call(&http, &local.url, method, &path, &body, Some(&token)).await;
            if allowed.contains(&role) {
                assert!(
                    status == 200 || status == 404,
                    "{role:?} may {method} {path}: {status} {answer}"
                );
            } else {
                assert_eq!(status, 403, "{role:?} may not {method} {path}: {answer}");
                assert_eq!(answer["error"], "forbidden");
            }
            row.push_str(&format!(" {}={status}", role.code()));
        }
        matrix.push(row);
    }
    // The matrix, for the record (cargo test -- --nocapture).
    println!("{}", matrix.join("\n"));
    // Every refusal and every action is in the trail, and the trail holds together.
    let auditor = operator(&local.idp, Role::Auditor);
    let (_, verified) = call(
        &http,
        &local.url,
        "GET",
        "/v1/admin/audit/verify",
        &Value::Null,
        Some(&auditor),
    )
    .await;
    assert_eq!(verified["verified"], true, "{verified}");
    assert!(verified["entries"].as_u64().unwrap() > routes().len() as u64 * 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_that_are_not_an_operators_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let local = start_local(dir.path()).await;
    let http = http_client();
    let now = chrono::Utc::now().timestamp();
    let path = "/v1/admin/transit/fraud";
    let claims = |role: &str| {
        json!({"iss": "https://id.thudo.test", "aud": "thudo-operators", "sub": "clerk-7",
               "thudo_role": role, "thudo_org": "hanoi-metro", "iat": now, "exp": now + 600})
    };
    let forger = LocalIdentityProvider::generate("https://id.thudo.test", "thudo").unwrap();
    let mut cases: Vec<(&str, String)> = vec![
        (
            "another provider's key",
            forger.operator_token(Role::TransitOperator, "x").unwrap(),
        ),
        // A citizen's ID token is for registering a phone, not for the operator routes.
        (
            "a citizen's ID token",
            local.idp.id_token(CITIZEN, "n").unwrap(),
        ),
        (
            "an unknown role",
            local.idp.sign(&claims("superuser")).unwrap(),
        ),
        ("valid for a day", {
            let mut c = claims("transit_operator");
            c["exp"] = json!(now + 86_400);
            local.idp.sign(&c).unwrap()
        }),
        ("expired", {
            let mut c = claims("transit_operator");
            c["exp"] = json!(now - 600);
            c["iat"] = json!(now - 1200);
            local.idp.sign(&c).unwrap()
        }),
        ("an expiry written as a string", {
            let mut c = claims("transit_operator");
            c["exp"] = json!((now - 600).to_string());
            local.idp.sign(&c).unwrap()
        }),
        ("no organisation", {
            let mut c = claims("transit_operator");
            c.as_object_mut().unwrap().remove("thudo_org");
            local.idp.sign(&c).unwrap()
        }),
    ];
    cases.push(("not a token", "admin".into()));
    for (what, token) in cases {
        let (status, answer) =
            call(&http, &local.url, "GET", path, &Value::Null, Some(&token)).await;
        assert_eq!(status, 401, "{what}: {answer}");
    }
    let good = local.idp.sign(&claims("transit_operator")).unwrap();
    let (status, _) = call(&http, &local.url, "GET", path, &Value::Null, Some(&good)).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_act_only_within_their_organisation() {
    let dir = tempfile::tempdir().unwrap();
    let local = start_local(dir.path()).await;
    let http = http_client();
    let post = |token: String, path: String, body: Value| {
        let (http, base) = (http.clone(), local.url.clone());
        async move { call(&http, &base, "POST", &path, &body, Some(&token)).await }
    };
    // A clinic cannot record itself, or anyone, as a stranger's guardian.
    let clinic = operator(&local.idp, Role::HealthFacility);
    let (status, _) = post(
        clinic.clone(),
        format!("/v1/admin/citizens/{PARENT}/dependants"),
        json!({"dependant_citizen_id": CITIZEN, "evidence_ref": "forged"}),
    )
    .await;
    assert_eq!(status, 403);
    // A facility publishes as itself: its records say so, and naming another is refused.
    let health = format!("/v1/admin/citizens/{CITIZEN}/health");
    let record = |source: Option<&str>| {
        let mut r = json!({"resourceType": "Immunization", "id": "imm-9", "status": "completed"});
        if let Some(s) = source {
            r["meta"] = json!({"source": s});
        }
        json!({"resources": [r]})
    };
    let (status, answer) = post(
        clinic.clone(),
        health.clone(),
        record(Some("urn:thudo:facility:bv-viet-duc")),
    )
    .await;
    assert_eq!((status, answer["error"].as_str()), (403, Some("not_yours")));
    let (status, _) = post(clinic.clone(), health.clone(), record(None)).await;
    assert_eq!(status, 200);
    // Another facility cannot replace that record, not even under its own name.
    let other = local
        .idp
        .operator_token(Role::HealthFacility, "bv-viet-duc")
        .unwrap();
    let (status, answer) = post(other, health.clone(), record(None)).await;
    assert_eq!((status, answer["error"].as_str()), (403, Some("not_yours")));
    let (status, _) = post(clinic, health, record(None)).await;
    assert_eq!(status, 200, "the facility itself may correct it");
    // The citizen's phone sees the record as the first facility's.
    let v = vault(&dir.path().join("phone"));
    local
        .client
        .sign_in_and_register(v.clone(), "phone", |n| {
            local.idp.id_token(CITIZEN, n).map_err(|e| e.to_string())
        })
        .await
        .unwrap();
    local
        .client
        .sync(v.clone(), &common::collections(), None)
        .await
        .unwrap();
    let book = thudo_core::health::records::HealthBook::new(&v);
    let kept = book
        .get("Immunization/imm-9")
        .unwrap()
        .unwrap()
        .resource
        .to_string();
    assert!(kept.contains("urn:thudo:facility:bv-bach-mai"), "{kept}");
    assert!(!kept.contains("bv-viet-duc"), "{kept}");

    // A party organisation sets members and content in its own cells only.
    let ward = local
        .idp
        .operator_token(Role::PartyOrganisation, "hn.ba-dinh")
        .unwrap();
    let other_ward = local
        .idp
        .operator_token(Role::PartyOrganisation, "hn.hoan-kiem")
        .unwrap();
    let cell = format!("/v1/admin/citizens/{CITIZEN}/cell");
    let (status, _) = post(
        ward.clone(),
        cell.clone(),
        json!({"cell": "hn.ba-dinh.chi-bo-1"}),
    )
    .await;
    assert_eq!(status, 200);
    // `hn.ba-dinhx` is not below `hn.ba-dinh`.
    let (status, _) = post(
        ward.clone(),
        cell.clone(),
        json!({"cell": "hn.ba-dinhx.chi-bo-1"}),
    )
    .await;
    assert_eq!(status, 403);
    // Another ward can neither take the member nor publish to the member's cell.
    let (status, answer) = post(
        other_ward.clone(),
        cell.clone(),
        json!({"cell": "hn.hoan-kiem.chi-bo-2"}),
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (403, Some("not_governed"))
    );
    let (status, _) = post(
        other_ward,
        "/v1/admin/cells/hn.ba-dinh.chi-bo-1/handbook.documents".into(),
        json!({"items": [{"id": "fake", "title": "Thông báo giả"}]}),
    )
    .await;
    assert_eq!(status, 403);
    // The city's committee governs both: a transfer goes through it.
    let city = operator(&local.idp, Role::PartyOrganisation);
    let (status, _) = post(city, cell, json!({"cell": "hn.hoan-kiem.chi-bo-2"})).await;
    assert_eq!(status, 200);
}

/// Runs SQL on the test's database directly, as someone holding the database but not the
/// server's secrets would.
fn tamper(db: &str, sql: &str) {
    if db.starts_with("postgres") {
        let s = thudo_server::storage::PostgresStorage::connect(db, thudo_server::SCHEMA).unwrap();
        s.write(|tx| tx.batch(sql)).unwrap();
    } else {
        let s = thudo_server::storage::SqliteStorage::open(
            std::path::Path::new(db),
            thudo_server::SCHEMA,
        )
        .unwrap();
        s.write(|tx| tx.batch(sql)).unwrap();
    }
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
        async move {
            call(
                &http,
                &url,
                "GET",
                "/v1/admin/audit/verify",
                &Value::Null,
                Some(&auditor),
            )
            .await
            .1
        }
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
async fn the_database_alone_gives_no_citizen_id_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::database(dir.path());
    let local = common::start_on(dir.path(), &db).await;
    let v = vault(&dir.path().join("phone"));
    local
        .client
        .sign_in_and_register(v, "phone", |n| {
            local.idp.id_token(CITIZEN, n).map_err(|e| e.to_string())
        })
        .await
        .unwrap();
    // Operators name the citizen in a body and in a query: the trail keeps neither in clear.
    let http = http_client();
    let registry = operator(&local.idp, Role::CivilRegistry);
    let dependant = json!({"dependant_citizen_id": CITIZEN, "evidence_ref": "SHK-0142"});
    let path = format!("/v1/admin/citizens/{PARENT}/dependants");
    let (status, _) = call(
        &http,
        &local.url,
        "POST",
        &path,
        &dependant,
        Some(&registry),
    )
    .await;
    assert_eq!(status, 200);
    let auditor = operator(&local.idp, Role::Auditor);
    // In a query, its name written plainly or percent-encoded (read alike by the route), and in
    // a path no route takes.
    for path in [
        format!("/v1/admin/audit?citizen_id={CITIZEN}"),
        format!("/v1/admin/audit?citizen%5Fid={CITIZEN}"),
        format!("/v1/admin/citizens/{CITIZEN}/nope"),
    ] {
        let (status, page) = call(
            &http,
            &local.url,
            "GET",
            &path,
            &Value::Null,
            Some(&auditor),
        )
        .await;
        assert!(status == 200 || status == 404, "{path}: {status} {page}");
    }
    // The auditor finds the lookups of the citizen by the citizen.
    let path = format!("/v1/admin/audit?citizen_id={CITIZEN}");
    let (_, page) = call(
        &http,
        &local.url,
        "GET",
        &path,
        &Value::Null,
        Some(&auditor),
    )
    .await;
    let lookups = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "GET /v1/admin/audit")
        .count();
    assert_eq!(lookups, 2, "{page}");
    local.running.stop().await;
    let (stored, everything) = database_as_read_by_a_thief(&db);
    assert_eq!(stored.len(), 2, "the citizen and the guardian");
    // The attack that recovered an ID in under a second: hash every candidate of the
    // number's known structure (here the 100,000 around the real one, which contains it) and
    // look for it. Against the unkeyed hash it finds the ID; against the stored key, nothing.
    let unkeyed =
        |id: &str| thudo_server::storage::sha256(format!("thudo/citizen/{id}").as_bytes());
    let base: u64 = CITIZEN.parse().unwrap();
    let candidates = (base - 50_000..base + 50_000).map(|n| format!("{n:012}"));
    let mut found_unkeyed = 0;
    for id in candidates {
        let h = unkeyed(&id);
        assert!(!stored.iter().any(|s| s[..] == h[..]), "{id} recovered");
        found_unkeyed += usize::from(h == unkeyed(CITIZEN));
    }
    assert_eq!(found_unkeyed, 1, "the search space holds the ID");
    // Nor is either number anywhere in the database: rows, audit trail, logs of changes.
    assert!(
        everything.len() > 1_000,
        "the database was read: {}",
        everything.len()
    );
    for id in [CITIZEN, PARENT] {
        assert!(
            !everything.windows(12).any(|w| w == id.as_bytes()),
            "{id} in clear"
        );
    }
    // Nor is a small body naming a citizen found by hashing guesses of it.
    let guessed = thudo_core::hex::encode(&thudo_server::storage::sha256(
        dependant.to_string().as_bytes(),
    ));
    assert!(
        !everything.windows(64).any(|w| w == guessed.as_bytes()),
        "the body's plain hash is stored"
    );
    // The server, holding the secret, still finds the account.
    assert!(stored.contains(&citizen_key(CITIZEN).as_bytes().to_vec()));
}

/// What someone holding the database but not the server's secrets reads: the accounts' stored
/// citizen keys, and every byte of it (the SQLite file and its journal; every PostgreSQL
/// table's rows as text).
fn database_as_read_by_a_thief(db: &str) -> (Vec<Vec<u8>>, Vec<u8>) {
    use thudo_server::storage::engine::Engine;
    use thudo_server::storage::{PostgresStorage, SqlStorage, SqliteStorage};
    fn keys<E: Engine>(s: &SqlStorage<E>) -> Vec<Vec<u8>> {
        s.read(|tx| {
            tx.rows("SELECT citizen_hash FROM accounts", &[])?
                .iter()
                .map(|r| r.bytes(0))
                .collect()
        })
        .unwrap()
    }
    if db.starts_with("postgres") {
        let s = PostgresStorage::connect(db, thudo_server::SCHEMA).unwrap();
        let everything = s
            .read(|tx| {
                let mut out = Vec::new();
                let tables = tx.rows(
                    "SELECT table_name::text FROM information_schema.tables
                     WHERE table_schema = current_schema()",
                    &[],
                )?;
                for t in tables {
                    let sql = format!("SELECT t::text FROM {} t", t.text(0)?);
                    for row in tx.rows(&sql, &[])? {
                        out.extend_from_slice(row.text(0)?.as_bytes());
                    }
                }
                Ok(out)
            })
            .unwrap();
        (keys(&s), everything)
    } else {
        let mut everything = std::fs::read(db).unwrap();
        everything.extend(std::fs::read(format!("{db}-wal")).unwrap_or_default());
        (
            keys(&SqliteStorage::open(std::path::Path::new(db), thudo_server::SCHEMA).unwrap()),
            everything,
        )
    }
}

// Not on the async runtime: the storage is opened and used synchronously throughout.
#[test]
fn rows_from_before_keying_and_a_rotation_are_rekeyed_and_other_secrets_refused() {
    use thudo_server::secrets::ServerSecrets;
    let dir = tempfile::tempdir().unwrap();
    let db = common::database(dir.path());
    // A database from before keying: the account's key is the plain SHA-256.
    let legacy = thudo_server::storage::sha256(format!("thudo/citizen/{CITIZEN}").as_bytes());
    tamper(
        &db,
        &format!(
            "INSERT INTO accounts(id, citizen_hash, cell, card_id) \
             VALUES ('a-legacy', {}, NULL, 123456789012345)",
            if db.starts_with("postgres") {
                format!("'\\x{}'", thudo_core::hex::encode(&legacy))
            } else {
                format!("X'{}'", thudo_core::hex::encode(&legacy))
            }
        ),
    );
    let start = |secrets: ServerSecrets| {
        let storage = thudo_server::open_storage(&db).unwrap();
        let (config, _) = thudo_server::ServerConfig::local(
            storage.clone(),
            thudo_server::transit::fares::FarePolicy::default(),
        )
        .unwrap();
        thudo_server::AppState::new(thudo_server::ServerConfig {
            secrets: std::sync::Arc::new(secrets),
            ..config
        })
        .map(|_| storage)
    };
    let one = || ServerSecrets::from_file_text(&"11".repeat(32)).unwrap();
    let two = || {
        ServerSecrets::from_file_text(&format!("{}\n{}", "11".repeat(32), "22".repeat(32))).unwrap()
    };
    let storage = start(one()).unwrap();
    assert_eq!(
        storage
            .account_for_citizen(&one().citizen(CITIZEN))
            .unwrap(),
        "a-legacy",
        "migrated in place"
    );
    // A rotation adds a layer without knowing any ID.
    let storage = start(two()).unwrap();
    assert_eq!(
        storage
            .account_for_citizen(&two().citizen(CITIZEN))
            .unwrap(),
        "a-legacy"
    );
    // Other secrets, or the rotation undone, are refused at start.
    assert!(start(ServerSecrets::from_file_text(&"33".repeat(32)).unwrap()).is_err());
    assert!(start(one()).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_support_ends_a_stolen_phones_session_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let local = start_local(dir.path()).await;
    let stolen = vault(&dir.path().join("stolen"));
    let registered = local
        .client
        .sign_in_and_register(stolen.clone(), "stolen phone", |n| {
            local.idp.id_token(CITIZEN, n).map_err(|e| e.to_string())
        })
        .await
        .unwrap();
    local
        .client
        .sync(stolen.clone(), &common::collections(), None)
        .await
        .unwrap();
    let http = http_client();
    let path = format!("/v1/admin/devices/{}/revoke", registered.device_id);
    let support = operator(&local.idp, Role::AccountSupport);
    let (status, answer) = call(&http, &local.url, "POST", &path, &json!({}), Some(&support)).await;
    assert_eq!(
        (status, answer["revoked"].as_bool()),
        (200, Some(true)),
        "{answer}"
    );
    // Its token works no more: the thief's next sync is refused.
    let err = local
        .client
        .sync(stolen, &common::collections(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, thudo_core::sync::client::BackendError::Unauthorized),
        "{err:?}"
    );
    // Once is enough; a second time finds nothing to end.
    let (status, _) = call(&http, &local.url, "POST", &path, &json!({}), Some(&support)).await;
    assert_eq!(status, 404);
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
    let (_, verified) = call(
        &http,
        &local.url,
        "GET",
        "/v1/admin/audit/verify",
        &Value::Null,
        Some(&auditor),
    )
    .await;
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
    assert_eq!(check("?seq=1&mac=zz".into()).await["error"], "bad_request");
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
