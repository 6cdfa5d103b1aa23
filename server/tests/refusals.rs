//! Refused early: a request's credential is checked before its body is read, a body over its
//! route's limit is refused before it is parsed, an array is never read as an object, and every
//! refusal, the framework's own included, is the JSON error shape.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::Duration;

use common::{http_client, operator, start_local, vault, Role};
use serde_json::{json, Value};
use thudo_core::sync::client::BackendClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CITIZEN: &str = "001088012345";

/// Sends headers announcing `length` body bytes and only a few of them; returns the status line
/// the server answers with, if it answers within 3 s without the rest.
async fn status_before_body(
    addr: std::net::SocketAddr,
    head: &str,
    length: usize,
) -> Option<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{head}\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n\r\n{{\"mut"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut answer))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&answer[..read]).into_owned();
    text.lines().next().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_checked_before_bodies_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let local = start_local(dir.path()).await;
    let addr = local.running.addr;
    // 16 MiB announced, a few bytes sent: anonymous and forged callers are refused at once.
    for head in [
        "POST /v1/sync/push HTTP/1.1".to_owned(),
        "POST /v1/transit/taps HTTP/1.1\r\nauthorization: Bearer forged".to_owned(),
        "POST /v1/admin/citizens/001088012345/health HTTP/1.1\r\nauthorization: Bearer forged"
            .to_owned(),
    ] {
        let status = status_before_body(addr, &head, 16 << 20).await;
        assert_eq!(
            status.as_deref(),
            Some("HTTP/1.1 401 Unauthorized"),
            "{head}"
        );
    }
    // A registered device announcing more than a small route takes: refused before reading.
    let phone = vault(&dir.path().join("phone"));
    local
        .client
        .sign_in_and_register(phone.clone(), "phone", |n| {
            local.idp.id_token(CITIZEN, n).map_err(|e| e.to_string())
        })
        .await
        .unwrap();
    let token = BackendClient::registration(&phone).unwrap().unwrap().token;
    let head = format!("POST /v1/transit/orders HTTP/1.1\r\nauthorization: Bearer {token}");
    let status = status_before_body(addr, &head, 1 << 20).await;
    assert_eq!(status.as_deref(), Some("HTTP/1.1 413 Payload Too Large"));
    // The same sent without a length (chunked) is cut at the limit, and so is an anonymous
    // registration announcing more than a small body.
    let chunk = "x".repeat(100 << 10);
    let chunked = format!(
        "POST /v1/transit/orders HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    assert_eq!(
        raw_status(addr, chunked.into_bytes()).await.as_deref(),
        Some("HTTP/1.1 413 Payload Too Large")
    );
    let status = status_before_body(addr, "POST /v1/devices HTTP/1.1", 100 << 10).await;
    assert_eq!(status.as_deref(), Some("HTTP/1.1 413 Payload Too Large"));
}

/// Writes `request` (the server may close before it is all written) and returns the status
/// line of the answer, within 3 s.
async fn raw_status(addr: std::net::SocketAddr, request: Vec<u8>) -> Option<String> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    tokio::spawn(async move {
        let _ = writer.write_all(&request).await;
    });
    let mut answer = vec![0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(3), reader.read(&mut answer))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&answer[..read]).into_owned();
    text.lines().next().map(str::to_owned)
}

async fn common_error(r: reqwest::Response) -> String {
    let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).expect("a JSON error body");
    v["error"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrays_are_not_objects_and_every_refusal_is_json() {
    let dir = tempfile::tempdir().unwrap();
    let local = start_local(dir.path()).await;
    let http = http_client();
    let (transit, party) = (
        operator(&local.idp, Role::TransitOperator),
        operator(&local.idp, Role::PartyOrganisation),
    );
    let post = |path: &str, body: String| {
        let token = if path.ends_with("/cell") {
            &party
        } else {
            &transit
        };
        http.post(format!("{}{path}", local.url))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let version = local.storage.deny_list(0).unwrap().0;
    // An array where an object is expected: refused, nothing published.
    let r = post("/v1/admin/transit/deny", json!([[1], [], []]).to_string())
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(common_error(r).await, "bad_request");
    assert_eq!(local.storage.deny_list(0).unwrap().0, version);
    let r = post(
        &format!("/v1/admin/citizens/{CITIZEN}/cell"),
        json!(["c1"]).to_string(),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // A path that does not decode: a JSON error all the same.
    let r = post("/v1/admin/citizens/%FF%FE/entitlements", "{}".into())
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(common_error(r).await, "bad_request");
}

/// An id with a control character is refused with 400 on either engine (PostgreSQL cannot
/// store a NUL in text: it was a 503, "retry later", for ever), and nothing is published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_with_control_characters_are_refused_on_either_engine() {
    let dir = tempfile::tempdir().unwrap();
    let local = start_local(dir.path()).await;
    let (http, party) = (http_client(), operator(&local.idp, Role::PartyOrganisation));
    let publish = |id: &str| {
        http.post(format!(
            "{}/v1/admin/cells/hn.c1/handbook.documents",
            local.url
        ))
        .bearer_auth(&party)
        .header("content-type", "application/json")
        .body(json!({"items": [{"id": id, "title": "Điều lệ Đảng"}]}).to_string())
        .send()
    };
    // An id over 440 bytes of UTF-8 too: 150 Vietnamese letters of 3 bytes each are 150
    // characters, and 450 bytes a device could not store with the collection's name.
    let long = "ệ".repeat(150);
    for id in ["a\u{0}b", "\u{0}", "tab\there", "del\u{7f}", long.as_str()] {
        let r = publish(id).await.unwrap();
        assert_eq!(r.status().as_u16(), 400, "{id:?}");
        assert_eq!(common_error(r).await, "bad_request");
    }
    assert_eq!(
        publish(&"ệ".repeat(85)).await.unwrap().status().as_u16(),
        200
    );
    let r = publish("dieu-le").await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let published: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(published["published"], 1, "each good id published alone");
    // A file's name and media type, likewise (a NUL media type was a 503 on PostgreSQL).
    let upload = |name: &str, media_type: &str| {
        http.post(format!("{}/v1/admin/cells/hn.c1/files", local.url))
            .bearer_auth(&party)
            .header("content-type", "application/json")
            .body(json!({"name": name, "media_type": media_type, "data": "25wwBA=="}).to_string())
            .send()
    };
    for (name, media_type) in [
        ("a.pdf", "\u{0}C/p"),
        ("a.pdf", "application/p\u{0}df"),
        ("a\u{0}.pdf", "application/pdf"),
        ("a.pdf", "text/\u{85}plain"),
    ] {
        let r = upload(name, media_type).await.unwrap();
        assert_eq!(r.status().as_u16(), 400, "{name:?} {media_type:?}");
        assert_eq!(common_error(r).await, "bad_request");
    }
    let r = upload("a.pdf", "application/pdf").await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

/// A control character in a path or query is refused by the gate, after the credential and
/// before any route reads it, so a route's parameters never carry one to the database (they
/// did to the audit trail, before the role was even checked: a 400 on PostgreSQL, stored on
/// SQLite). Body fields that name ids are refused alike, and a cell must be one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_in_paths_queries_and_body_ids_are_refused_on_either_engine() {
    let dir = tempfile::tempdir().unwrap();
    let local = start_local(dir.path()).await;
    let http = http_client();
    let send = |role: Option<Role>, method: &str, path: &str, body: Value| {
        let mut req = http.request(method.parse().unwrap(), format!("{}{path}", local.url));
        if let Some(role) = role {
            req = req.bearer_auth(operator(&local.idp, role));
        }
        if !body.is_null() {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        req.send()
    };
    let file = json!({"name": "a.pdf", "media_type": "application/pdf", "data": "25wwBA=="});
    let secretary = json!({"citizen_id": CITIZEN});
    use Role::*;
    let refused = [
        (
            PartyOrganisation,
            "POST",
            "/v1/admin/cells/hn.c1%00/files",
            file.clone(),
        ),
        (
            PartyOrganisation,
            "POST",
            "/v1/admin/cells/hn.C1/files",
            file.clone(),
        ),
        (
            PartyOrganisation,
            "POST",
            "/v1/admin/cells/hn.c1%C2%85/secretary",
            secretary.clone(),
        ),
        (
            PartyOrganisation,
            "POST",
            "/v1/admin/cells/hn.c%201/secretary",
            secretary.clone(),
        ),
        (
            AccountSupport,
            "POST",
            "/v1/admin/devices/d-%00/revoke",
            json!({}),
        ),
        (
            Auditor,
            "GET",
            "/v1/admin/cells/hn.c1/meetings/m%1F/attendance",
            Value::Null,
        ),
        (
            TransitOperator,
            "POST",
            "/v1/admin/transit/orders/o%7F/refund",
            json!({}),
        ),
        (
            TransitOperator,
            "GET",
            "/v1/admin/transit/ledger?day=%00",
            Value::Null,
        ),
        (
            TransitOperator,
            "POST",
            "/v1/admin/transit/deny",
            json!({"devices": ["d-\u{0}"]}),
        ),
        (
            TransitOperator,
            "POST",
            "/v1/admin/transit/deny",
            json!({"devices": ["d-\u{85}"]}),
        ),
    ];
    for (role, method, path, body) in refused {
        let r = send(Some(role), method, path, body).await.unwrap();
        assert_eq!(r.status().as_u16(), 400, "{role:?} {method} {path}");
        assert_eq!(common_error(r).await, "bad_request", "{path}");
    }
    // The credential comes first: without one, the same path is a 401.
    let r = send(None, "POST", "/v1/admin/devices/d-%00/revoke", json!({}))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // The same routes with clean parameters go on to their rules.
    let r = send(
        Some(AccountSupport),
        "POST",
        "/v1/admin/devices/d-nope/revoke",
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r = send(
        Some(PartyOrganisation),
        "POST",
        "/v1/admin/cells/hn.c1/files",
        file,
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = send(
        Some(TransitOperator),
        "POST",
        "/v1/admin/transit/deny",
        json!({"devices": ["d-nope"]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

/// The gate refuses a control character in any path or query, so every string parameter the
/// API document lists says what it takes (a pattern, an enum or a format): a client or a fuzzer
/// reading the document never sends, as valid, what the gate refuses.
#[test]
fn every_string_parameter_states_what_it_takes() {
    let doc: Value = serde_json::from_str(thudo_server::app::openapi_json()).unwrap();
    let resolve = |schema: &Value| -> Value {
        let mut s = schema.clone();
        while let Some(name) = s["$ref"].as_str().and_then(|r| r.rsplit('/').next()) {
            s = doc["components"]["schemas"][name].clone();
        }
        s
    };
    let (mut checked, mut open) = (0, Vec::new());
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                let s = resolve(&p["schema"]);
                let string = s["type"] == "string"
                    || s["type"]
                        .as_array()
                        .is_some_and(|t| t.contains(&json!("string")));
                if !string {
                    continue;
                }
                checked += 1;
                if s.get("pattern").is_none()
                    && s.get("enum").is_none()
                    && s.get("format").is_none()
                {
                    open.push(format!("{method} {path} {}", p["name"]));
                }
            }
        }
    }
    assert!(checked > 20, "{checked}");
    assert!(
        open.is_empty(),
        "string parameters that take anything: {open:?}"
    );
}

/// A backend on this machine under `limits`: it runs until dropped; its identity provider and
/// its URL.
async fn start_with_limits(
    dir: &std::path::Path,
    limits: thudo_server::gate::RateLimits,
) -> (
    thudo_server::Running,
    std::sync::Arc<thudo_server::devices::identity::LocalIdentityProvider>,
    String,
) {
    use thudo_server::transit::fares::FarePolicy;
    use thudo_server::{AppState, ServerConfig};
    let storage = thudo_server::open_storage(&common::database(dir)).unwrap();
    let (config, idp) = ServerConfig::local(storage, FarePolicy::default()).unwrap();
    let running = thudo_server::start(
        AppState::new(ServerConfig { limits, ..config }).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let url = format!("http://{}", running.addr);
    (running, idp, url)
}

/// Registers a phone of the citizen named `name` at `url`; its device token.
async fn phone_token(
    dir: &std::path::Path,
    url: &str,
    idp: &thudo_server::devices::identity::LocalIdentityProvider,
    name: &str,
) -> String {
    let phone = vault(&dir.join(name));
    BackendClient::new(thudo_core::sync::client::BackendConfig::new(url))
        .unwrap()
        .sign_in_and_register(phone.clone(), name, |n| {
            idp.id_token(CITIZEN, n).map_err(|e| e.to_string())
        })
        .await
        .unwrap();
    BackendClient::registration(&phone).unwrap().unwrap().token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_past_their_rate_are_told_when_to_come_back() {
    use thudo_server::gate::{Rate, RateLimits};
    let dir = tempfile::tempdir().unwrap();
    let rate = |per_second, burst| Rate { per_second, burst };
    let limits = RateLimits::new(rate(1, 6), rate(1, 5), rate(1, 2));
    let (_running, idp, url) = start_with_limits(dir.path(), limits).await;
    let http = http_client();
    // Anonymous: nonces from one address, a burst of 6, then 429 with a time to come back.
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..8 {
        let r = http
            .post(format!("{url}/v1/identity/nonce"))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        if r.status().as_u16() == 429 {
            retry_after = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            assert_eq!(common_error(r).await, "rate_limited");
        }
    }
    assert_eq!(&statuses[..6], &[200; 6]);
    assert_eq!(statuses[7], 429);
    assert!(retry_after.unwrap().parse::<u64>().unwrap() >= 1);
    // The payment provider's notifications from the same address are not limited: their
    // signature is checked first, and a sale must not wait.
    for _ in 0..10 {
        let r = http
            .get(format!("{url}/v1/payments/vnpay/notify?vnp_TxnRef=o-1"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    // Once the address's allowance refills, a device registers; then its token has its rate,
    // and orders a tighter one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let phone = vault(&dir.path().join("phone"));
    let client = thudo_core::sync::client::BackendClient::new(
        thudo_core::sync::client::BackendConfig::new(&url),
    )
    .unwrap();
    client
        .sign_in_and_register(phone.clone(), "phone", |n| {
            idp.id_token(CITIZEN, n).map_err(|e| e.to_string())
        })
        .await
        .unwrap();
    let token = BackendClient::registration(&phone).unwrap().unwrap().token;
    let order = |key: &str| {
        http.post(format!("{url}/v1/transit/topups"))
            .bearer_auth(&token)
            .header("idempotency-key", key)
            .header("content-type", "application/json")
            .body("{\"amount_vnd\":50000}")
            .send()
    };
    let mut codes = Vec::new();
    for i in 0..4 {
        codes.push(order(&format!("k{i}")).await.unwrap().status().as_u16());
    }
    assert_eq!(
        codes,
        [200, 200, 429, 429],
        "two orders at once, then one a second"
    );
    // An operator is counted as a person in an organisation: a fresh token each time starts
    // no new allowance (a burst of 5 here); another operator has their own.
    let console = |role: Role| {
        http.get(format!("{url}/v1/admin/transit/validators"))
            .bearer_auth(operator(&idp, role))
            .send()
    };
    let mut statuses = Vec::new();
    while statuses.len() < 20 && statuses.last() != Some(&429) {
        let r = console(Role::TransitOperator).await.unwrap();
        if r.status().as_u16() == 429 {
            assert!(r.headers().contains_key("retry-after"));
        }
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses[..5], [200; 5], "{statuses:?}");
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    let r = console(Role::Auditor).await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    // An auditor working from the same address as the sender below.
    let auditor = operator(&idp, Role::Auditor);
    let audit = |token: String| {
        http.get(format!("{url}/v1/admin/transit/validators"))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(audit(auditor.clone()).await.unwrap().status().as_u16(), 200);
    // Made-up tokens each look new: their address pays for them.
    let mut forged = Vec::new();
    for i in 0..10 {
        let r = http
            .get(format!("{url}/v1/sync/pull?collection=handbook.note"))
            .bearer_auth(format!("forged-{i}"))
            .send()
            .await
            .unwrap();
        forged.push(r.status().as_u16());
    }
    assert!(
        forged.contains(&401) && forged.ends_with(&[429]),
        "{forged:?}"
    );
    // The device beside them (a carrier's shared address) is still served: its token was
    // found held lately. A token not seen lately waits, without a lookup.
    let pull = |token: String| {
        http.get(format!("{url}/v1/sync/pull?collection=handbook.note"))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(pull(token.clone()).await.unwrap().status().as_u16(), 200);
    assert_eq!(
        pull("forged-again".into()).await.unwrap().status().as_u16(),
        429
    );
    // So is the auditor, whose token verified lately; a token never seen waits.
    assert_eq!(audit(auditor).await.unwrap().status().as_u16(), 200);
    let new_token = operator(&idp, Role::AccountSupport);
    assert_eq!(audit(new_token).await.unwrap().status().as_u16(), 429);
    // Past the wait, the device orders again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(order("k9").await.unwrap().status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_balancer_each_client_has_its_own_rate_and_none_can_forge_one() {
    use thudo_server::gate::{Rate, RateLimits};
    use thudo_server::transit::fares::FarePolicy;
    use thudo_server::{AppState, ServerConfig};
    let dir = tempfile::tempdir().unwrap();
    let rate = |per_second, burst| Rate { per_second, burst };
    let start = |proxies: Vec<std::net::IpAddr>, name: &str| {
        let storage =
            thudo_server::open_storage(&common::database(&dir.path().join(name))).unwrap();
        let (config, _) = ServerConfig::local(storage, FarePolicy::default()).unwrap();
        let limits = RateLimits::new(rate(1, 2), rate(1, 5), rate(1, 2)).behind(proxies);
        AppState::new(ServerConfig { limits, ..config }).unwrap()
    };
    std::fs::create_dir_all(dir.path().join("a")).unwrap();
    std::fs::create_dir_all(dir.path().join("b")).unwrap();
    let http = http_client();
    let nonce = |url: String, forwarded: &'static str| {
        let http = http.clone();
        async move {
            http.post(format!("{url}/v1/identity/nonce"))
                .header("x-forwarded-for", forwarded)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // Behind a balancer on loopback: each client address it names has its own allowance.
    let behind = thudo_server::start(
        start(vec!["127.0.0.1".parse().unwrap()], "a"),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let url = format!("http://{}", behind.addr);
    let mut first = Vec::new();
    for _ in 0..3 {
        first.push(nonce(url.clone(), "10.0.0.1").await);
    }
    assert_eq!(first, [200, 200, 429]);
    assert_eq!(nonce(url.clone(), "10.0.0.2").await, 200, "another client");
    // A client that writes its own header gets nothing for it: the balancer's appended
    // address (the rightmost) is the one counted.
    assert_eq!(nonce(url.clone(), "10.0.0.7, 10.0.0.1").await, 429);
    // Garbage stops the reading: counted against the balancer (its own allowance).
    assert_eq!(nonce(url.clone(), "not-an-address").await, 200);

    // Without a trusted balancer the header is nobody's word: every request is the peer's.
    let direct = thudo_server::start(start(Vec::new(), "b"), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = format!("http://{}", direct.addr);
    let mut spoofed = Vec::new();
    for forwarded in ["10.1.0.1", "10.1.0.2", "10.1.0.3"] {
        spoofed.push(nonce(url.clone(), forwarded).await);
    }
    assert_eq!(spoofed, [200, 200, 429]);
}

/// A route's body limit fits what it promises: the deny list takes up to 10,000 entries a
/// request, and 10,000 phones' keys (1.3 MB of hex) are taken; one entry more is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deny_list_takes_ten_thousand_phones_keys_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let local = start_local(dir.path()).await;
    let http = http_client();
    let transit = operator(&local.idp, Role::TransitOperator);
    let (key, _) = thudo_core::crypto::p256::SoftwareKey::generate().unwrap();
    let keys = vec![thudo_core::hex::encode(key.public_key()); 10_000];
    let deny = |body: Value| {
        http.post(format!("{}/v1/admin/transit/deny", local.url))
            .bearer_auth(&transit)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let r = deny(json!({ "device_keys": keys })).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = deny(json!({ "device_keys": keys, "cards": [1] }))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(common_error(r).await, "bad_request");
}

/// A body over 1 MiB waits its turn to be parsed and handled (a 16 MiB push can take hundreds
/// of MB as parsed JSON): past the instance's turns and the wait, 429 with `Retry-After`, and
/// nothing applied. Small bodies never wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_bodies_wait_their_turn_and_small_ones_never_do() {
    use thudo_server::gate::{RateLimits, BIG_BODY};
    let dir = tempfile::tempdir().unwrap();
    // No turn at all: every big body waits out its 200 ms.
    let limits = RateLimits::off().big_bodies(0, Duration::from_millis(200));
    let (_running, idp, url) = start_with_limits(dir.path(), limits).await;
    let token = phone_token(dir.path(), &url, &idp, "phone").await;
    let push = |text: String| {
        let body = json!({"mutations": [{
            "idempotency_key": "k-big", "seq": 1, "collection": "handbook.note",
            "record_id": "n1", "op": "put", "payload": {"id": "n1", "text": text},
            "hlc": "1790000000000-000000-phone"
        }]})
        .to_string();
        http_client()
            .post(format!("{url}/v1/sync/push"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let r = push("x".repeat(BIG_BODY)).await.unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(common_error(r).await, "rate_limited");
    // Nothing was applied: the same key is new to a small push.
    let r = push("small".into()).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let answer: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(
        answer["results"][0]["outcome"],
        json!("applied"),
        "{answer}"
    );
    // A route that takes big bodies, asked without one (an auditor's GET), never waits.
    let r = http_client()
        .get(format!("{url}/v1/admin/health/trust-bundle"))
        .bearer_auth(operator(&idp, Role::Auditor))
        .send()
        .await
        .unwrap();
    assert_ne!(r.status().as_u16(), 429);
}

/// One big body per caller at a time: a caller's slow upload holds one turn, its second big
/// body is told to come back at once, and another caller takes the turn left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_holds_one_big_body_turn_at_a_time() {
    use thudo_server::gate::{RateLimits, BIG_BODY};
    let dir = tempfile::tempdir().unwrap();
    let limits = RateLimits::off().big_bodies(2, Duration::from_secs(5));
    let (running, idp, url) = start_with_limits(dir.path(), limits).await;
    let mut tokens = Vec::new();
    for name in ["slow", "other"] {
        tokens.push(phone_token(dir.path(), &url, &idp, name).await);
    }
    // The slow caller announces a big push and sends a few bytes of it.
    let mut slow = tokio::net::TcpStream::connect(running.addr).await.unwrap();
    let head = format!(
        "POST /v1/sync/push HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{{\"mut",
        tokens[0],
        2 * BIG_BODY
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let push = |token: String| {
        let body = json!({"mutations": [{
            "idempotency_key": format!("k-{}", &token[..8]), "seq": 1,
            "collection": "handbook.note", "record_id": "n1", "op": "put",
            "payload": {"id": "n1", "text": "x".repeat(BIG_BODY)},
            "hlc": "1790000000000-000000-phone"
        }]})
        .to_string();
        http_client()
            .post(format!("{url}/v1/sync/push"))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let started = std::time::Instant::now();
    let r = push(tokens[0].clone()).await.unwrap();
    assert_eq!(r.status().as_u16(), 429, "its second big body");
    assert!(started.elapsed() < Duration::from_secs(3), "told at once");
    assert_eq!(
        push(tokens[1].clone()).await.unwrap().status().as_u16(),
        200
    );
    drop(slow);
}

/// A big body's time to arrive, its turn taken, is scaled to its length: a slow sender of a
/// 2 MiB push is cut (408) well before one of 8 MiB, and neither holds its turn for the
/// longest body's time. A body that arrives at pace is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_body_has_a_time_to_arrive_scaled_to_its_length() {
    use thudo_server::gate::{RateLimits, BIG_BODY};
    let dir = tempfile::tempdir().unwrap();
    // 0.3 s, plus its length at 4 MB/s: 2 MiB in about 0.8 s, 8 MiB in about 2.4 s.
    let limits = RateLimits::off()
        .big_bodies(3, Duration::from_secs(5))
        .big_body_pace(Duration::from_millis(300), 4_000_000);
    let (running, idp, url) = start_with_limits(dir.path(), limits).await;
    let mut tokens = Vec::new();
    for name in ["small", "large", "paced"] {
        tokens.push(phone_token(dir.path(), &url, &idp, name).await);
    }
    // Announces `length` bytes, sends a few, and waits for the answer: its status and when.
    let addr = running.addr;
    let stall = |token: String, length: usize| async move {
        let started = std::time::Instant::now();
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST /v1/sync/push HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {token}\r\n\
             content-type: application/json\r\ncontent-length: {length}\r\n\r\n{{\"mut"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let mut chunk = [0u8; 512];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut chunk))
                .await
                .expect("an answer within 20 s")
                .unwrap();
            assert!(n > 0, "closed without an answer");
            answer.extend_from_slice(&chunk[..n]);
        }
        let status: u16 = String::from_utf8_lossy(&answer)
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        (status, started.elapsed())
    };
    let ((small, small_after), (large, large_after)) = tokio::join!(
        stall(tokens[0].clone(), 2 * BIG_BODY),
        stall(tokens[1].clone(), 8 * BIG_BODY)
    );
    assert_eq!((small, large), (408, 408));
    assert!(
        small_after < Duration::from_millis(2_000),
        "{small_after:?}"
    );
    assert!(
        large_after > Duration::from_millis(2_000),
        "{large_after:?}"
    );
    assert!(large_after < Duration::from_secs(8), "{large_after:?}");
    // A 2 MiB push sent at once arrives in time and is taken.
    let body = json!({"mutations": [{
        "idempotency_key": "k-paced", "seq": 1, "collection": "handbook.note",
        "record_id": "n1", "op": "put", "payload": {"id": "n1", "text": "x".repeat(2 * BIG_BODY)},
        "hlc": "1790000000000-000000-phone"
    }]})
    .to_string();
    let r = http_client()
        .post(format!("{url}/v1/sync/push"))
        .bearer_auth(&tokens[2])
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}
