//! Operators hold only their own power. Every operator route is tried by every role and by no
//! credential; a clinic cannot make itself a stranger's guardian, nor publish as another
//! clinic; a party organisation acts on its own cells only (the trail of their actions:
//! audit.rs); citizen IDs cannot be read back from the database file. Each runs against the real server, on SQLite and (with
//! `THUDO_TEST_POSTGRES`) on PostgreSQL.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::{call, citizen_key, http_client, operator, start_local, tamper, vault, Role};
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
            "/v1/admin/transit/orders/o-nope/review".into(),
            json!({"provider_ref": "14000001", "outcome": "returned"}),
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
            "DELETE",
            format!("/v1/admin/citizens/{c}/health/Immunization/imm-nope"),
            Value::Null,
            vec![HealthFacility],
        ),
        (
            "POST",
            format!("/v1/admin/citizens/{c}/cell"),
            json!({"cell": "hn.ba-dinh.chi-bo-1"}),
            vec![PartyOrganisation],
        ),
        (
            "GET",
            format!("/v1/admin/citizens/{c}/procedures"),
            Value::Null,
            vec![PartyOrganisation],
        ),
        (
            "POST",
            format!("/v1/admin/citizens/{c}/procedures/p-nope"),
            json!({"state": "submitted"}),
            vec![PartyOrganisation],
        ),
        (
            "POST",
            "/v1/admin/cells/hn.ba-dinh.chi-bo-1/handbook.documents".into(),
            json!({"items": [{"id": "nq-1", "title": "Nghị quyết"}]}),
            vec![PartyOrganisation],
        ),
        (
            "DELETE",
            "/v1/admin/cells/hn.ba-dinh.chi-bo-1/handbook.documents/nq-nope".into(),
            Value::Null,
            vec![PartyOrganisation],
        ),
        (
            "POST",
            "/v1/admin/cells/hn.ba-dinh.chi-bo-1/files".into(),
            json!({"name": "nq.pdf", "media_type": "application/pdf", "data": "JVBERi0="}),
            vec![PartyOrganisation],
        ),
        (
            "DELETE",
            format!(
                "/v1/admin/cells/hn.ba-dinh.chi-bo-1/files/{}",
                "ab".repeat(32)
            ),
            Value::Null,
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
    // At most 1,000 resources a publish: what every device of the citizen pulls.
    let many = |n: usize| {
        let resources: Vec<Value> = (0..n)
            .map(|i| json!({"resourceType": "Observation", "id": format!("o-{i}"), "status": "final"}))
            .collect();
        json!({ "resources": resources })
    };
    let (status, answer) = post(clinic.clone(), health.clone(), many(1_001)).await;
    assert_eq!((status, answer["error"].as_str()), (413, Some("too_large")));
    let (status, answer) = post(clinic.clone(), health.clone(), many(1_000)).await;
    assert_eq!((status, answer["published"].as_u64()), (200, Some(1_000)));
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
        other_ward.clone(),
        "/v1/admin/cells/hn.ba-dinh.chi-bo-1/handbook.documents".into(),
        json!({"items": [{"id": "fake", "title": "Thông báo giả"}]}),
    )
    .await;
    assert_eq!(status, 403);
    // Nor upload the cell's papers, name its secretary or read its attendance; its own ward
    // can.
    let own_cell = "/v1/admin/cells/hn.ba-dinh.chi-bo-1";
    for (path, body) in [
        (
            format!("{own_cell}/files"),
            json!({"name": "nghi-quyet.pdf", "media_type": "application/pdf", "data": "JVBERi0xLjQK"}),
        ),
        (
            format!("{own_cell}/secretary"),
            json!({"citizen_id": CITIZEN}),
        ),
    ] {
        let (status, answer) = post(other_ward.clone(), path.clone(), body.clone()).await;
        assert_eq!(status, 403, "{path}: {answer}");
        let (status, answer) = post(ward.clone(), path.clone(), body).await;
        assert_eq!(status, 200, "{path}: {answer}");
    }
    let attendance = format!("{own_cell}/meetings/m-1/attendance");
    for (token, expected) in [(&other_ward, 403), (&ward, 200)] {
        let (status, answer) = call(
            &http,
            &local.url,
            "GET",
            &attendance,
            &Value::Null,
            Some(token),
        )
        .await;
        assert_eq!(status, expected, "{answer}");
    }
    // The city's committee governs both: a transfer goes through it.
    let city = operator(&local.idp, Role::PartyOrganisation);
    let (status, _) = post(city, cell, json!({"cell": "hn.hoan-kiem.chi-bo-2"})).await;
    assert_eq!(status, 200);
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

/// A role pinned to its organisation: a token the staff provider gives it for another
/// organisation (a contractor, a second transit company) holds none of the city's power,
/// while the pinned organisation's, and the unpinned roles', work as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_role_is_held_only_for_its_organisation() {
    let dir = tempfile::tempdir().unwrap();
    let storage = thudo_server::open_storage(&common::database(dir.path())).unwrap();
    let (config, idp) = thudo_server::ServerConfig::local(
        storage,
        thudo_server::transit::fares::FarePolicy::default(),
    )
    .unwrap();
    let state = thudo_server::AppState::new(thudo_server::ServerConfig {
        operators: idp
            .operators()
            .pinned(Role::TransitOperator, "hanoi-metro")
            .pinned(Role::TransitOperator, "hanoi-bus"),
        ..config
    })
    .unwrap();
    let running = thudo_server::start(state, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let http = http_client();
    let status = |role: Role, organisation: &'static str, path: &'static str| {
        let http = http.clone();
        let url = format!("http://{}{path}", running.addr);
        let token = idp.operator_token(role, organisation).unwrap();
        async move {
            let r = http.get(&url).bearer_auth(token).send().await.unwrap();
            let status = r.status().as_u16();
            let body: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or_default();
            (
                status,
                body["error"].as_str().unwrap_or_default().to_owned(),
            )
        }
    };
    let fraud = "/v1/admin/transit/fraud";
    assert_eq!(
        status(Role::TransitOperator, "hanoi-metro", fraud).await.0,
        200
    );
    assert_eq!(
        status(Role::TransitOperator, "hanoi-bus", fraud).await.0,
        200
    );
    assert_eq!(
        status(Role::TransitOperator, "a-contractor", fraud).await,
        (403, "forbidden".to_owned())
    );
    // An unpinned role, for any organisation the provider gives it.
    assert_eq!(
        status(Role::Auditor, "any-inspectorate", "/v1/admin/audit/verify")
            .await
            .0,
        200
    );
    running.stop().await;
}

/// A cell's record is its publisher's: the ward that governs the cell cannot overwrite the
/// city committee's resolution there, the committee may replace the ward's (and it is then the
/// committee's), and a ward beside it governs none of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cells_record_is_replaced_only_by_its_publisher_or_one_above() {
    let dir = tempfile::tempdir().unwrap();
    let local = start_local(dir.path()).await;
    let http = http_client();
    let cell = "hn.ba-dinh.chi-bo-1";
    let publish = |organisation: &'static str, id: &'static str, title: &'static str| {
        let (http, base) = (http.clone(), local.url.clone());
        let token = local
            .idp
            .operator_token(Role::PartyOrganisation, organisation)
            .unwrap();
        async move {
            let body = json!({"items": [{"id": id, "number": "57-NQ/TW", "issuer": "BCH",
                "issued_on": "2024-12-22", "kind": "resolution", "title": title, "body": "..."}]});
            let path = format!("/v1/admin/cells/{cell}/handbook.documents");
            let (status, answer) = call(&http, &base, "POST", &path, &body, Some(&token)).await;
            (
                status,
                answer["error"].as_str().unwrap_or_default().to_owned(),
            )
        }
    };
    assert_eq!(publish("hn", "nq-57", "the committee's").await.0, 200);
    assert_eq!(
        publish("hn.ba-dinh", "nq-57", "the ward's rewrite").await,
        (403, "not_yours".to_owned())
    );
    assert_eq!(publish("hn", "nq-57", "the committee's again").await.0, 200);
    assert_eq!(publish("hn.ba-dinh", "ward-1", "the ward's").await.0, 200);
    assert_eq!(
        publish("hn.ba-dinh", "ward-1", "the ward's, edited")
            .await
            .0,
        200
    );
    assert_eq!(publish("hn", "ward-1", "taken over").await.0, 200);
    assert_eq!(
        publish("hn.ba-dinh", "ward-1", "the ward's once more").await,
        (403, "not_yours".to_owned())
    );
    // A ward beside it governs none of the cell.
    assert_eq!(
        publish("hn.hoan-kiem", "nq-57", "a stranger's").await.0,
        403
    );
    // Nothing refused was published: the phones see the committee's words.
    let phone = common::cell_member(&local, dir.path(), CITIZEN, cell).await;
    let library = std::sync::Arc::new(
        thudo_core::handbook::library::Library::open(&dir.path().join("library.db")).unwrap(),
    );
    local
        .client
        .sync(
            phone.clone(),
            &common::collections_with(library.clone()),
            None,
        )
        .await
        .unwrap();
    let titles: Vec<String> = ["nq-57", "ward-1"]
        .iter()
        .map(|id| library.get(id).unwrap().unwrap().title)
        .collect();
    assert_eq!(titles, vec!["the committee's again", "taken over"]);
}
