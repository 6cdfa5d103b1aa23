//! An old app is told to update: a backend started with a minimum library version answers a
//! device calling with an older one (or with none, as apps before versions were sent) 426
//! `upgrade_required`, typed on the device; operators, health checks and current apps pass.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::{http_client, operator, Role};
use thudo_core::sync::client::{BackendClient, BackendConfig, BackendError};
use thudo_core::sync::protocol::{
    CLIENT_VERSION, CLIENT_VERSION_HEADER, MIN_CLIENT_VERSION_HEADER,
};
use thudo_server::gate::ClientVersion;
use thudo_server::transit::fares::FarePolicy;
use thudo_server::{AppState, ServerConfig};

async fn server_needing(
    dir: &std::path::Path,
    minimum: ClientVersion,
) -> (
    String,
    std::sync::Arc<thudo_server::devices::identity::LocalIdentityProvider>,
    thudo_server::Running,
) {
    let storage = thudo_server::open_storage(&common::database(dir)).unwrap();
    let (config, idp) = ServerConfig::local(storage, FarePolicy::default()).unwrap();
    let state = AppState::new(ServerConfig {
        min_client_version: Some(minimum),
        ..config
    })
    .unwrap();
    let running = thudo_server::start(state, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    (format!("http://{}", running.addr), idp, running)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_older_than_the_backend_serves_is_told_to_update() {
    let dir = tempfile::tempdir().unwrap();
    let (url, idp, running) = server_needing(dir.path(), ClientVersion(99, 0, 0)).await;
    let client = BackendClient::new(BackendConfig::new(&url)).unwrap();
    // The library's own call: typed, not retried.
    match client.registration_nonce().await {
        Err(BackendError::UpgradeRequired { minimum }) => assert_eq!(minimum, "99.0.0"),
        other => panic!("{other:?}"),
    }
    // An app from before versions were sent, and one naming an older version.
    let http = http_client();
    for version in [None, Some("0.1.0"), Some("98.9.9"), Some("not a version")] {
        let mut req = http.post(format!("{url}/v1/identity/nonce")).body("{}");
        if let Some(v) = version {
            req = req.header(CLIENT_VERSION_HEADER, v);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), 426, "{version:?}");
        assert_eq!(r.headers()[MIN_CLIENT_VERSION_HEADER], "99.0.0");
        let body: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        assert_eq!(body["error"], "upgrade_required");
    }
    // A current one passes; so do the health check and operators (who use no app).
    let r = http
        .post(format!("{url}/v1/identity/nonce"))
        .header(CLIENT_VERSION_HEADER, "99.0.1")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        http.get(format!("{url}/healthz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let r = http
        .get(format!("{url}/v1/admin/audit"))
        .bearer_auth(operator(&idp, Role::Auditor))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    running.stop().await;

    // A backend that serves this library's version lets it in.
    let dir = tempfile::tempdir().unwrap();
    let (url, _, running) =
        server_needing(dir.path(), ClientVersion::parse(CLIENT_VERSION).unwrap()).await;
    let client = BackendClient::new(BackendConfig::new(&url)).unwrap();
    assert!(client.registration_nonce().await.is_ok());
    running.stop().await;
}

#[test]
fn versions_read_as_numbers() {
    assert_eq!(ClientVersion::parse("1.2.3"), Some(ClientVersion(1, 2, 3)));
    assert_eq!(
        ClientVersion::parse("1.10.0-beta.1"),
        Some(ClientVersion(1, 10, 0))
    );
    assert!(ClientVersion(1, 10, 0) > ClientVersion(1, 9, 9));
    for bad in ["", "1", "1.2", "1.2.3.4", "a.b.c", "1.2.-3"] {
        assert_eq!(ClientVersion::parse(bad), None, "{bad}");
    }
}
