//! A citizen ID number alone opens nothing: registration needs an ID token of the configured
//! OpenID Connect provider, verified against its keys, for this backend, unexpired, carrying a
//! nonce the backend issued and that no earlier registration spent. The citizen lists their
//! devices and revokes one; a revoked device's token stops working at once and its transit keys
//! are denied. Each forgery below is tried against the real server on loopback.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::{http_client, start_local, vault};
use serde_json::{json, Value};
use thudo_core::sync::client::{BackendClient, BackendError};
use thudo_core::sync::protocol::RegisterRequest;
use thudo_core::transit::backend::CredentialOrder;
use thudo_core::transit::phone::{Phone, PhoneOptions};
use thudo_core::transit::validator::DenyList;
use thudo_core::transit::{Category, Product};
use thudo_server::devices::identity::LocalIdentityProvider;

const CITIZEN: &str = "001088012345";
const OTHER: &str = "001099000111";

fn refused_with(r: Result<impl std::fmt::Debug, BackendError>, code: &str) {
    match r {
        Err(BackendError::Refused {
            status: 403,
            code: c,
            ..
        }) if c.as_str() == code => {}
        other => panic!("expected 403 {code}, got {other:?}"),
    }
}

fn request(id_token: String) -> RegisterRequest {
    RegisterRequest {
        id_token,
        device_name: "phone".into(),
        role: "phone".into(),
        account_id: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_fresh_verified_assertion_registers_a_device() {
    let dir = tempfile::tempdir().unwrap();
    let common::Local {
        running,
        idp,
        client: c,
        url: base,
        ..
    } = start_local(dir.path()).await;
    let v = vault(&dir.path().join("v"));
    let now = chrono::Utc::now().timestamp();
    let nonce = || async { c.registration_nonce().await.unwrap().nonce };
    let claims = |nonce: &str| {
        json!({"iss": "https://id.thudo.test", "aud": "thudo", "sub": "s", "citizen_id": CITIZEN,
               "nonce": nonce, "iat": now, "exp": now + 300, "auth_time": now})
    };

    // The old way, a citizen ID alone, is not even a valid request any more.
    let http = http_client();
    let r = http
        .post(format!("{base}/v1/devices"))
        .header("content-type", "application/json")
        .body(json!({"citizen_id": CITIZEN, "device_name": "x", "role": "phone"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);

    // Forgeries: another provider's key, an altered payload, wrong issuer, wrong audience,
    // expired, `alg: none`, a symmetric algorithm under the provider's key id.
    let forger = LocalIdentityProvider::generate("https://id.thudo.test", "thudo").unwrap();
    refused_with(
        c.register(
            v.clone(),
            &request(forger.id_token(CITIZEN, &nonce().await).unwrap()),
        )
        .await,
        "identity_invalid",
    );
    let genuine = idp.id_token(CITIZEN, &nonce().await).unwrap();
    let parts: Vec<&str> = genuine.split('.').collect();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut payload: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    payload["citizen_id"] = json!(OTHER);
    let altered = format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(payload.to_string()),
        parts[2]
    );
    refused_with(
        c.register(v.clone(), &request(altered)).await,
        "identity_invalid",
    );
    for (field, value) in [
        ("iss", json!("https://evil.example")),
        ("aud", json!("another-app")),
        ("exp", json!(now - 3600)),
        ("iat", json!(now + 3600)),
        // A time claim written as a string must not be taken as absent (CVE-2026-25537 in
        // jsonwebtoken before 10.3): an expired token, and one not valid for an hour yet.
        ("exp", json!((now - 3600).to_string())),
        ("nbf", json!((now + 3600).to_string())),
        ("nbf", json!(now + 3600)),
        ("iat", json!(now.to_string())),
    ] {
        let mut forged = claims(&nonce().await);
        forged[field] = value;
        refused_with(
            c.register(v.clone(), &request(idp.sign(&forged).unwrap()))
                .await,
            "identity_invalid",
        );
    }
    let header: Value = serde_json::from_slice(&b64.decode(parts[0]).unwrap()).unwrap();
    for alg in ["none", "HS256"] {
        let mut h = header.clone();
        h["alg"] = json!(alg);
        let token = format!("{}.{}.{}", b64.encode(h.to_string()), parts[1], parts[2]);
        refused_with(
            c.register(v.clone(), &request(token)).await,
            "identity_invalid",
        );
    }

    // Nonces: missing, never issued, expired, and spent by a first registration (a replayed
    // token cannot add a second device).
    let mut no_nonce = claims("");
    no_nonce.as_object_mut().unwrap().remove("nonce");
    refused_with(
        c.register(v.clone(), &request(idp.sign(&no_nonce).unwrap()))
            .await,
        "nonce_unknown",
    );
    refused_with(
        c.register(
            v.clone(),
            &request(idp.id_token(CITIZEN, "made-up").unwrap()),
        )
        .await,
        "nonce_unknown",
    );
    // Nonces are signed, not stored: one signed here but past its expiry is expired; one
    // altered (its expiry pushed back, its MAC) or signed with another deployment's secret
    // was never issued.
    let secrets = thudo_server::secrets::ServerSecrets::local();
    let stale = secrets.registration_nonce(now - 1).unwrap();
    refused_with(
        c.register(v.clone(), &request(idp.id_token(CITIZEN, &stale).unwrap()))
            .await,
        "nonce_expired",
    );
    let issued = thudo_core::hex::decode(&nonce().await).unwrap();
    let elsewhere = thudo_server::secrets::ServerSecrets::from_file_text(&"07".repeat(32))
        .unwrap()
        .registration_nonce(now + 600)
        .unwrap();
    for forged in [
        {
            let mut b = issued.clone();
            b[22] ^= 1;
            thudo_core::hex::encode(&b)
        },
        {
            let mut b = issued.clone();
            b[40] ^= 1;
            thudo_core::hex::encode(&b)
        },
        elsewhere,
        thudo_core::hex::encode(&issued[..24]),
    ] {
        refused_with(
            c.register(v.clone(), &request(idp.id_token(CITIZEN, &forged).unwrap()))
                .await,
            "nonce_unknown",
        );
    }
    // No citizen ID in the token, or not 12 digits.
    let mut anonymous = claims(&nonce().await);
    anonymous.as_object_mut().unwrap().remove("citizen_id");
    refused_with(
        c.register(v.clone(), &request(idp.sign(&anonymous).unwrap()))
            .await,
        "identity_no_citizen",
    );
    let mut short = claims(&nonce().await);
    short["citizen_id"] = json!("12");
    refused_with(
        c.register(v.clone(), &request(idp.sign(&short).unwrap()))
            .await,
        "identity_no_citizen",
    );
    // The provider's session kept on an unlocked phone signs for a new nonce without the
    // citizen: it says they authenticated long ago, or does not say when. Neither registers
    // a device (a thief's, which would pull the citizen's records).
    for auth_time in [json!(now - 3_600), Value::Null] {
        let mut session = claims(&nonce().await);
        session["auth_time"] = auth_time;
        refused_with(
            c.register(v.clone(), &request(idp.sign(&session).unwrap()))
                .await,
            "sign_in_not_fresh",
        );
    }
    assert!(
        BackendClient::registration(&v).unwrap().is_none(),
        "nothing stored"
    );

    let token = idp.id_token(CITIZEN, &nonce().await).unwrap();
    c.register(v.clone(), &request(token.clone()))
        .await
        .unwrap();
    let second = vault(&dir.path().join("second"));
    refused_with(
        c.register(second.clone(), &request(token)).await,
        "nonce_used",
    );
    assert!(BackendClient::registration(&second).unwrap().is_none());
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_citizen_lists_devices_and_a_revoked_one_stops_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let common::Local {
        storage,
        running,
        idp,
        client: c,
        ..
    } = start_local(dir.path()).await;
    let phone = vault(&dir.path().join("phone"));
    let stolen = vault(&dir.path().join("stolen"));
    let stranger = vault(&dir.path().join("stranger"));
    c.sign_in_and_register(phone.clone(), "Minh's phone", |n| {
        idp.id_token(CITIZEN, n).map_err(|e| e.to_string())
    })
    .await
    .unwrap();
    let stolen_id = c
        .sign_in_and_register(stolen.clone(), "old phone", |n| {
            idp.id_token(CITIZEN, n).map_err(|e| e.to_string())
        })
        .await
        .unwrap()
        .device_id;
    // A fresh sign-in of the citizen, as revoking a device takes.
    let fresh = || async {
        idp.id_token(CITIZEN, &c.registration_nonce().await.unwrap().nonce)
            .unwrap()
    };
    let stranger_id = c
        .sign_in_and_register(stranger.clone(), "someone else", |n| {
            idp.id_token(OTHER, n).map_err(|e| e.to_string())
        })
        .await
        .unwrap()
        .device_id;
    // The soon-stolen phone holds a pay-as-you-go credential.
    let transit = Phone::open(stolen.clone(), None, PhoneOptions::default()).unwrap();
    common::buy(
        &c,
        stolen.clone(),
        &CredentialOrder::new(Product::PayAsYouGo, Category::Standard)
            .signed_by(&transit, chrono::Utc::now().timestamp() as u64)
            .unwrap(),
    )
    .await
    .unwrap();

    let devices = c.devices(phone.clone()).await.unwrap();
    let names: Vec<(&str, bool)> = devices
        .iter()
        .map(|d| (d.name.as_str(), d.current))
        .collect();
    assert_eq!(names, [("Minh's phone", true), ("old phone", false)]);
    // Another citizen's device is not this citizen's to revoke, nor an unknown id.
    for id in [stranger_id.as_str(), "d-0000000000000000"] {
        assert!(matches!(
            c.revoke_device(phone.clone(), id, &fresh().await).await,
            Err(BackendError::Refused { status: 404, .. })
        ));
    }
    c.sync(stranger.clone(), &common::collections(), None)
        .await
        .unwrap();

    // The session alone revokes nothing (a thief with the unlocked phone has it): a fresh
    // sign-in is needed, of this account's citizen, its nonce spent once.
    refused_with(
        c.revoke_device(phone.clone(), &stolen_id, "not.a.token")
            .await,
        "identity_invalid",
    );
    let strangers = idp
        .id_token(OTHER, &c.registration_nonce().await.unwrap().nonce)
        .unwrap();
    refused_with(
        c.revoke_device(phone.clone(), &stolen_id, &strangers).await,
        "identity_mismatch",
    );
    // A citizen with no account is refused the same, and is given none by the attempt.
    let nobody = "001077000222";
    let theirs = idp
        .id_token(nobody, &c.registration_nonce().await.unwrap().nonce)
        .unwrap();
    refused_with(
        c.revoke_device(phone.clone(), &stolen_id, &theirs).await,
        "identity_mismatch",
    );
    assert_eq!(storage.member(&common::citizen_key(nobody)).unwrap(), None);
    // The provider's session kept on the phone signs a token for a new nonce without the
    // citizen: it says they authenticated long ago, or does not say when. Neither revokes.
    let now = chrono::Utc::now().timestamp();
    for auth_time in [json!(now - 3_600), Value::Null] {
        let nonce = c.registration_nonce().await.unwrap().nonce;
        let session = idp
            .sign(&json!({
                "iss": "https://id.thudo.test", "aud": "thudo", "sub": format!("local-{CITIZEN}"),
                "citizen_id": CITIZEN, "nonce": nonce, "iat": now, "exp": now + 300,
                "auth_time": auth_time,
            }))
            .unwrap();
        refused_with(
            c.revoke_device(phone.clone(), &stolen_id, &session).await,
            "sign_in_not_fresh",
        );
    }
    let proof = fresh().await;
    c.revoke_device(phone.clone(), &stolen_id, &proof)
        .await
        .unwrap();
    assert!(matches!(
        c.sync(stolen.clone(), &common::collections(), None).await,
        Err(BackendError::Unauthorized)
    ));
    refused_with(
        c.revoke_device(phone.clone(), &stolen_id, &proof).await,
        "nonce_used",
    );
    assert!(matches!(
        c.revoke_device(phone.clone(), &stolen_id, &fresh().await)
            .await,
        Err(BackendError::Refused { status: 404, .. })
    ));
    // The account's other devices are told.
    c.sync(phone.clone(), &common::collections(), None)
        .await
        .unwrap();
    let notices = thudo_core::transit::trips::RiderHistory::new(&phone)
        .notices()
        .unwrap();
    assert!(
        notices
            .iter()
            .any(|n| n.kind == "device_revoked" && n.message_en.contains("old phone")),
        "{notices:?}"
    );
    assert_eq!(c.devices(phone.clone()).await.unwrap().len(), 1);
    // Its transit key is on the deny list validators get.
    let (version, _, devices) = storage.deny_list(chrono::Utc::now().timestamp()).unwrap();
    assert_eq!(version, 2);
    assert_eq!(
        devices,
        [DenyList::device_hash(&transit.device_public_key())]
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_key_rotation_is_picked_up_from_its_jwks_uri() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use thudo_server::devices::identity::IdentityConfig;
    let issuer = "https://id.thudo.test";
    let first = LocalIdentityProvider::generate(issuer, "thudo").unwrap();
    let second = LocalIdentityProvider::generate(issuer, "thudo").unwrap();
    // The provider's jwks_uri, serving the keys it holds now, to be kept for an hour.
    let served = Arc::new(Mutex::new(first.jwks_json()));
    let fetches = Arc::new(AtomicUsize::new(0));
    let jwks = {
        let (served, fetches) = (served.clone(), fetches.clone());
        axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                fetches.fetch_add(1, Ordering::SeqCst);
                let body = served.lock().unwrap().clone();
                async move { ([("cache-control", "public, max-age=3600")], body) }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}/jwks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, jwks).await });

    let dir = tempfile::tempdir().unwrap();
    let storage = thudo_server::open_storage(&common::database(dir.path())).unwrap();
    let (config, _) = thudo_server::ServerConfig::local(
        storage,
        thudo_server::transit::fares::FarePolicy::default(),
    )
    .unwrap();
    let identity = IdentityConfig::from_jwks_uri(issuer, "thudo", &uri, "citizen_id")
        .await
        .unwrap();
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "fetched at start");
    let state = thudo_server::AppState::new(thudo_server::ServerConfig {
        identity,
        test_identity: None,
        ..config
    })
    .unwrap();
    let running = thudo_server::start(state, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let c = Arc::new(
        BackendClient::new(thudo_core::sync::client::BackendConfig::new(&format!(
            "http://{}",
            running.addr
        )))
        .unwrap(),
    );
    let register = |idp: &Arc<LocalIdentityProvider>, name: &str| {
        let (c, idp, v) = (c.clone(), idp.clone(), vault(&dir.path().join(name)));
        async move {
            c.sign_in_and_register(v, "phone", |n| {
                idp.id_token(CITIZEN, n).map_err(|e| e.to_string())
            })
            .await
        }
    };
    register(&first, "a").await.unwrap();
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "known keys are not fetched again"
    );
    // The provider rotates: its new key signs, and the backend learns it from the jwks_uri at
    // the first token that names it.
    *served.lock().unwrap() = second.jwks_json();
    register(&second, "b").await.unwrap();
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    // Made-up key ids do not make the backend hammer the provider: within the minute, no
    // fetch, and the token is refused.
    let forger = LocalIdentityProvider::generate(issuer, "thudo").unwrap();
    refused_with(register(&forger, "c").await, "identity_invalid");
    // The retired key is no longer trusted either.
    refused_with(register(&first, "d").await, "identity_invalid");
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    running.stop().await;
}

/// One vault, one citizen: a vault registered for a citizen (holding their notes, waiting to be
/// pushed) is not registered again for another, whose account would receive them; the same
/// citizen signs in again at will, and a wiped vault takes anyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vault_holding_one_citizens_data_is_not_registered_for_another() {
    use thudo_core::handbook::member::{DocumentNote, MemberHandbook};
    let dir = tempfile::tempdir().unwrap();
    let common::Local {
        storage,
        running,
        idp,
        client: c,
        ..
    } = start_local(dir.path()).await;
    let shared = vault(&dir.path().join("shared"));
    let sign_in_with = |v: std::sync::Arc<thudo_core::vault::Vault>, who: &'static str| {
        let (c, idp) = (&c, idp.clone());
        async move {
            c.sign_in_and_register(v, "family phone", |n| {
                idp.id_token(who, n).map_err(|e| e.to_string())
            })
            .await
        }
    };
    let sign_in = |who| sign_in_with(shared.clone(), who);
    let first = sign_in(CITIZEN).await.unwrap();
    MemberHandbook::new(&shared)
        .save_note(&DocumentNote {
            id: "n1".into(),
            document_id: "nq57".into(),
            text: "ghi chú riêng".into(),
            updated_at: 1,
        })
        .unwrap();
    assert_eq!(
        sign_in(OTHER).await.unwrap_err(),
        BackendError::OtherAccount
    );
    // Nor is it made a validator's, which would drop the citizen's registration.
    let code = thudo_server::transit::validators::create_enrolment(
        storage.as_ref(),
        "bus 32",
        thudo_server::transit::validators::Binding::Bus(32),
        3600,
    )
    .unwrap()
    .0;
    let enrol = c
        .enrol_validator(
            shared.clone(),
            &thudo_core::sync::protocol::ValidatorEnrolmentRequest {
                enrolment_code: code.clone(),
                device_name: "bus".into(),
            },
        )
        .await;
    assert_eq!(enrol.unwrap_err(), BackendError::OtherAccount);
    // Refused before the single-use code was spent: the bus's own vault enrols with it.
    c.enrol_validator(
        vault(&dir.path().join("bus")),
        &thudo_core::sync::protocol::ValidatorEnrolmentRequest {
            enrolment_code: code,
            device_name: "bus".into(),
        },
    )
    .await
    .unwrap();
    // Still the first citizen's, token and all.
    let held = BackendClient::registration(&shared).unwrap().unwrap();
    assert_eq!(
        (held.account_id, held.token),
        (first.account_id.clone(), first.token)
    );
    let again = sign_in(CITIZEN).await.unwrap();
    assert_eq!(again.account_id, first.account_id);
    shared.wipe().unwrap();
    let wiped = vault(&dir.path().join("shared"));
    let other = sign_in_with(wiped, OTHER).await.unwrap();
    assert_ne!(other.account_id, first.account_id);
    // The refused sign-in made no device on the other citizen's account.
    assert_eq!(storage.devices_of(&other.account_id).unwrap().len(), 1);
    running.stop().await;
}
