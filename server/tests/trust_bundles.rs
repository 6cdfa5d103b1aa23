//! The health authority's trust bundle: published by the authority alone, installed by devices,
//! never rolled back, and distinct versions when published at once. Against the real server, on
//! SQLite and (with `THUDO_TEST_POSTGRES`) on PostgreSQL.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::{call, http_client, operator, start_local, tamper, vault, Role};
use serde_json::{json, Value};

const CITIZEN: &str = "001088012345";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_authority_publishes_trust_that_devices_install_and_never_roll_back() {
    use thudo_core::health::trust_bundle;
    let dir = tempfile::tempdir().unwrap();
    let local = start_local(dir.path()).await;
    let http = http_client();
    let authority = operator(&local.idp, Role::HealthAuthority);
    let jwks: Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../core/tests/data/shc/issuer/jwks.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let crl: Value = serde_json::from_str(
        &std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(
            "../core/tests/data/shc/issuer/crl/3Kfdg-XwP-7gXyywtUfUADwBumDOPKMQx-iELL11W9s.json",
        ))
        .unwrap(),
    )
    .unwrap();
    // Its key announces revocation list version 1: published only with it.
    let bare = json!({"iss": "https://spec.smarthealth.cards/examples/issuer", "jwks": jwks});
    let issuer = json!({"iss": bare["iss"], "jwks": jwks, "crls": [crl]});
    let publish = |body: Value| {
        let (http, url, token) = (http.clone(), local.url.clone(), authority.clone());
        async move {
            call(
                &http,
                &url,
                "POST",
                "/v1/admin/health/trust-bundle",
                &body,
                Some(&token),
            )
            .await
        }
    };
    // Content that does not load is refused and nothing is published.
    let mut bad = issuer.clone();
    bad["jwks"]["keys"][0]["kid"] = json!("forged");
    let (status, answer) = publish(json!({"card_issuers": [bad]})).await;
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = publish(json!({"card_issuers": [], "valid_days": 365})).await;
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = publish(json!({"card_issuers": [bare]})).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("announces revocation list version 1"),
        "{answer}"
    );
    // A device asks before anything is published: nothing, not an error.
    let phone = vault(&dir.path().join("phone"));
    local
        .client
        .sign_in_and_register(phone.clone(), "phone", |n| {
            local.idp.id_token(CITIZEN, n).map_err(|e| e.to_string())
        })
        .await
        .unwrap();
    let (_, published) = call(
        &http,
        &local.url,
        "GET",
        "/v1/admin/health/trust-bundle",
        &Value::Null,
        Some(&authority),
    )
    .await;
    let key = trust_bundle::parse_anchor(published["public_key"].as_str().unwrap()).unwrap();
    assert!(trust_bundle::refresh(
        &local.client,
        phone.clone(),
        key,
        chrono::Utc::now().timestamp()
    )
    .await
    .unwrap()
    .is_none());
    // Published with the issuer, then without it: the device follows.
    let (status, first) = publish(json!({"card_issuers": [issuer], "valid_days": 7})).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["card_issuers"], 1);
    let (_, with_issuer) = call(
        &http,
        &local.url,
        "GET",
        "/v1/admin/health/trust-bundle",
        &Value::Null,
        Some(&authority),
    )
    .await;
    let now = chrono::Utc::now().timestamp();
    let s = trust_bundle::refresh(&local.client, phone.clone(), key, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.version, first["version"].as_u64().unwrap());
    assert!(!s.stale);
    let trust = trust_bundle::installed_trust(&phone).unwrap().unwrap();
    assert!(trust
        .issuer_of("3Kfdg-XwP-7gXyywtUfUADwBumDOPKMQx-iELL11W9s")
        .is_some());
    let (status, second) = publish(json!({"card_issuers": []})).await;
    assert_eq!(status, 200, "{second}");
    assert!(second["version"].as_u64() > first["version"].as_u64());
    trust_bundle::refresh(&local.client, phone.clone(), key, now)
        .await
        .unwrap();
    let trust = trust_bundle::installed_trust(&phone).unwrap().unwrap();
    assert!(trust
        .issuer_of("3Kfdg-XwP-7gXyywtUfUADwBumDOPKMQx-iELL11W9s")
        .is_none());
    // The older bundle, replayed to the device, is refused.
    let old = with_issuer["bundle"].as_str().unwrap();
    assert!(matches!(
        trust_bundle::install(&phone, old, &key, now),
        Err(trust_bundle::TrustBundleError::Rollback { .. })
    ));
    // A phone that holds the current version names it and is not sent the bundle again.
    let token = thudo_core::sync::client::BackendClient::registration(&phone)
        .unwrap()
        .unwrap()
        .token;
    let fetch = |query: String| {
        let (http, url, token) = (http.clone(), local.url.clone(), token.clone());
        async move {
            let r = http
                .get(format!("{url}/v1/health/trust-bundle{query}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (
                status,
                serde_json::from_slice::<Value>(&r.bytes().await.unwrap()).unwrap(),
            )
        }
    };
    let held = second["version"].as_u64().unwrap();
    assert_eq!(
        fetch(format!("?have={held}")).await,
        (200, json!({"unchanged": true}))
    );
    let (status, older) = fetch(format!("?have={}", held - 1)).await;
    assert_eq!(status, 200);
    assert!(older["bundle"].is_string() && older.get("unchanged").is_none());
    assert_eq!(fetch("?have=latest".into()).await.0, 400);
    // The library's refresh names it too: with the stored bundle made unreadable behind the
    // server's back, it still answers from what the phone holds, as it never reads the bundle.
    let stored = local
        .storage
        .get_setting("health_trust_bundle")
        .unwrap()
        .unwrap();
    local
        .storage
        .set_setting("health_trust_bundle", b"not a bundle")
        .unwrap();
    let again = trust_bundle::refresh(&local.client, phone.clone(), key, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.version, held);
    local
        .storage
        .set_setting("health_trust_bundle", &stored)
        .unwrap();

    // The installed version offered again after it expired changes nothing (no error).
    let installed = trust_bundle::status(&phone, now).unwrap().unwrap();
    let current = call(
        &http,
        &local.url,
        "GET",
        "/v1/admin/health/trust-bundle",
        &Value::Null,
        Some(&authority),
    )
    .await
    .1["bundle"]
        .as_str()
        .unwrap()
        .to_owned();
    let after = installed.expires_at + 1;
    let again = trust_bundle::install(&phone, &current, &key, after).unwrap();
    assert_eq!((again.version, again.stale), (installed.version, true));

    // Nobody publishes for longer than the bundle's validity: the backend signs the same
    // content afresh once half of it has passed, so a new phone can still install it.
    let storage: std::sync::Arc<dyn thudo_server::storage::settings::SettingsStore> =
        local.storage.clone();
    let span = installed.expires_at - installed.issued_at;
    let halfway = installed.issued_at + span / 2;
    let served =
        |at: i64| match thudo_server::publishing::current_trust_bundle(storage.as_ref(), None, at)
            .unwrap()
        {
            Some(thudo_server::publishing::TrustBundleAnswer::Bundle(jws)) => jws,
            _ => panic!("no bundle served"),
        };
    assert_eq!(served(halfway - 1), current, "not before half its validity");
    let fresh_phone = vault(&dir.path().join("new-phone"));
    assert!(matches!(
        trust_bundle::install(&fresh_phone, &current, &key, after),
        Err(trust_bundle::TrustBundleError::Expired { .. })
    ));
    let renewed = served(after);
    assert_ne!(renewed, current);
    // Asked again (another instance, another device), the same renewal.
    assert_eq!(served(after + 60), renewed);
    // Signed again it keeps when the authority published it; past 90 days the content is no
    // longer renewed (revocations nobody vouched for lately), so devices see it go stale.
    let content = |jws: &str| -> Value {
        let payload = base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            jws.split('.').nth(1).unwrap(),
        )
        .unwrap();
        serde_json::from_slice(&payload).unwrap()
    };
    let published = content(&current)["content_published_at"].as_i64().unwrap();
    assert_eq!(
        content(&renewed)["content_published_at"].as_i64(),
        Some(published)
    );
    {
        let scratch = tempfile::tempdir().unwrap();
        let copy = thudo_server::storage::SqliteStorage::open(
            &scratch.path().join("copy.db"),
            thudo_server::SCHEMA,
        )
        .unwrap();
        let copy: std::sync::Arc<dyn thudo_server::storage::settings::SettingsStore> =
            std::sync::Arc::new(copy);
        for setting in [
            "health_trust_key",
            "health_trust_bundle",
            "health_trust_bundle_meta",
        ] {
            if let Some(value) = local.storage.get_setting(setting).unwrap() {
                copy.set_setting(setting, &value).unwrap();
            }
        }
        let served_copy =
            |at: i64| match thudo_server::publishing::current_trust_bundle(copy.as_ref(), None, at)
                .unwrap()
            {
                Some(thudo_server::publishing::TrustBundleAnswer::Bundle(jws)) => jws,
                _ => panic!("no bundle served"),
            };
        let limit = published + 90 * 86_400;
        let last = served_copy(limit - 10);
        assert_ne!(last, renewed);
        assert_eq!(
            content(&last)["content_published_at"].as_i64(),
            Some(published)
        );
        let beyond = served_copy(limit + span);
        assert_eq!(beyond, last, "not renewed past 90 days");
        assert!(content(&beyond)["expires_at"].as_i64().unwrap() < limit + span);
    }
    let s = trust_bundle::install(&fresh_phone, &renewed, &key, after).unwrap();
    assert!(s.version > installed.version);
    assert_eq!(
        (s.issued_at, s.expires_at, s.stale),
        (after, after + span, false)
    );
    // The phone that held the old one moves to it too; the content is the same.
    let moved = trust_bundle::install(&phone, &renewed, &key, after).unwrap();
    assert_eq!(moved.version, s.version);
    assert!(trust_bundle::installed_trust(&phone)
        .unwrap()
        .unwrap()
        .issuer_of("3Kfdg-XwP-7gXyywtUfUADwBumDOPKMQx-iELL11W9s")
        .is_none());

    // The trust-list key lost (a migration that left it behind): never made again, or every
    // device would refuse every bundle while its list went stale. Publishing and renewing fail
    // until it is restored.
    tamper(
        &local.db,
        "DELETE FROM settings WHERE key = 'health_trust_key'",
    );
    let (status, answer) = publish(json!({"card_issuers": []})).await;
    assert_eq!(status, 500, "{answer}");
    // A renewal due is not made: the bundle published stays served until its expiry.
    assert_eq!(served(after + span), renewed);
    assert!(local
        .storage
        .get_setting("health_trust_key")
        .unwrap()
        .is_none());

    // Only a registered device fetches it.
    let (status, _) = call(
        &http,
        &local.url,
        "GET",
        "/v1/health/trust-bundle",
        &Value::Null,
        None,
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_bundles_published_at_once_get_distinct_versions_and_none_outgrows_devices() {
    let dir = tempfile::tempdir().unwrap();
    let local = start_local(dir.path()).await;
    let http = http_client();
    let authority = operator(&local.idp, Role::HealthAuthority);
    let mut calls = Vec::new();
    for _ in 0..6 {
        let (http, url, token) = (http.clone(), local.url.clone(), authority.clone());
        calls.push(tokio::spawn(async move {
            call(
                &http,
                &url,
                "POST",
                "/v1/admin/health/trust-bundle",
                &json!({}),
                Some(&token),
            )
            .await
        }));
    }
    let mut versions = Vec::new();
    for c in calls {
        let (status, answer) = c.await.unwrap();
        assert_eq!(status, 200, "{answer}");
        versions.push(answer["version"].as_u64().unwrap());
    }
    let mut distinct = versions.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), versions.len(), "{versions:?}");
    let (_, published) = call(
        &http,
        &local.url,
        "GET",
        "/v1/admin/health/trust-bundle",
        &Value::Null,
        Some(&authority),
    )
    .await;
    let bundle = published["bundle"].as_str().unwrap();
    let payload = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        bundle.split('.').nth(1).unwrap(),
    )
    .unwrap();
    let stored: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(
        stored["version"].as_u64(),
        distinct.last().copied(),
        "the last is the highest"
    );
    // A bundle larger than devices accept is refused, and the published one stays.
    let hashes: Vec<String> = (0..30_000u32)
        .map(|i| thudo_core::hex::encode(&thudo_core::health::dcc::uvci_hash(&i.to_string())))
        .collect();
    let (status, answer) = call(
        &http,
        &local.url,
        "POST",
        "/v1/admin/health/trust-bundle",
        &json!({"passport_revocations": hashes}),
        Some(&authority),
    )
    .await;
    assert_eq!(status, 413, "{answer}");
    let (_, after) = call(
        &http,
        &local.url,
        "GET",
        "/v1/admin/health/trust-bundle",
        &Value::Null,
        Some(&authority),
    )
    .await;
    assert_eq!(after["bundle"], published["bundle"]);
}
