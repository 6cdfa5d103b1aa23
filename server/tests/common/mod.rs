//! Helpers shared by the backend's integration tests.
#![allow(dead_code, clippy::unwrap_used, missing_docs)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;

use thudo_core::sync::client::BackendError;
use thudo_core::sync::client::{BackendClient, BackendConfig};
use thudo_core::transit::backend::{CredentialOrder, CredentialResponse, TransitClient};
use thudo_core::vault::{Unlock, Vault, VaultOptions};
use thudo_server::devices::identity::LocalIdentityProvider;
pub use thudo_server::operators::Role;
pub use thudo_server::prelude::*;
use thudo_server::transit::fares::FarePolicy;
use thudo_server::transit::sales::Payments;
use thudo_server::{AppState, Running, ServerConfig};

/// The organisation each role acts for in tests (the party's city committee governs every
/// `hn.…` cell).
pub fn organisation_of(role: Role) -> &'static str {
    match role {
        Role::TransitOperator => "hanoi-metro",
        Role::HealthFacility => "bv-bach-mai",
        Role::PartyOrganisation => "hn",
        Role::CivilRegistry => "hn-ho-tich",
        Role::AccountSupport => "thudo-support",
        Role::Auditor => "hn-thanh-tra",
        Role::HealthAuthority => "byt",
    }
}

/// A citizen ID's lookup key under the test secrets.
pub fn citizen_key(citizen_id: &str) -> thudo_server::secrets::CitizenKey {
    thudo_server::secrets::ServerSecrets::local().citizen(citizen_id)
}

/// An operator's access token from the test provider: `role` for its test organisation.
pub fn operator(idp: &LocalIdentityProvider, role: Role) -> String {
    idp.operator_token(role, organisation_of(role)).unwrap()
}

/// A device vault with the cheapest key derivation allowed.
pub fn vault(dir: &Path) -> Arc<Vault> {
    Arc::new(
        Vault::open(
            dir,
            Unlock::passphrase("p"),
            &VaultOptions {
                kdf_iterations: thudo_core::vault::MIN_KDF_ITERATIONS,
                ..Default::default()
            },
        )
        .unwrap(),
    )
}

/// A plain client for the test's own calls (rustls set up as the library does).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(thudo_core::sync::client::tls_config(&[], &[]).unwrap())
        .build()
        .unwrap()
}

/// Where a test's backend keeps its data: a SQLite file in `dir`, or, when
/// `THUDO_TEST_POSTGRES` names a PostgreSQL server (a URL to its maintenance database), a new
/// database of its own there. The same tests run on both engines.
pub fn database(dir: &Path) -> String {
    match std::env::var("THUDO_TEST_POSTGRES") {
        Ok(admin) if !admin.is_empty() => postgres_database(),
        _ => dir.join("server.db").to_string_lossy().into_owned(),
    }
}

/// A new database on the test PostgreSQL server; fails when there is none (a test that needs
/// one is ignored unless asked for, and asked for only where the server runs).
pub fn postgres_database() -> String {
    let admin = std::env::var("THUDO_TEST_POSTGRES")
        .ok()
        .filter(|u| !u.is_empty())
        .expect("THUDO_TEST_POSTGRES must name a PostgreSQL server (scripts/with-postgres.sh)");
    let mut suffix = [0u8; 6];
    thudo_core::crypto::fill_random(&mut suffix).unwrap();
    let name = format!("thudo_test_{}", thudo_core::hex::encode(&suffix));
    thudo_server::storage::create_database(&admin, &name).unwrap()
}

/// A backend on loopback with its own database and a local identity provider.
pub struct Local {
    /// The database's path or URL (to read or alter it behind the server's back).
    pub db: String,
    pub storage: Arc<dyn Storage>,
    pub state: AppState,
    pub running: Running,
    pub idp: Arc<LocalIdentityProvider>,
    pub client: BackendClient,
    pub url: String,
}

/// A backend on a new database with a sandbox that pays every order as it is made (scenarios
/// about what a pass does, not how it is paid).
pub async fn start_local(dir: &Path) -> Local {
    start_on(dir, &database(dir)).await
}

/// [`start_local`] on a database the caller chose (to read it behind the server's back).
pub async fn start_on(_dir: &Path, db: &str) -> Local {
    start_configured(db, |config| config).await
}

/// A backend on `db` with the test configuration as `configure` changes it.
pub async fn start_configured(
    db: &str,
    configure: impl FnOnce(ServerConfig) -> ServerConfig,
) -> Local {
    let storage = thudo_server::open_storage(db).unwrap();
    let (config, idp) = ServerConfig::local(storage.clone(), FarePolicy::default()).unwrap();
    // PDFs are read in a child process, as the server's executable does.
    let pdf_reader =
        thudo_server::files::PdfReader::Child(env!("CARGO_BIN_EXE_thudo-server").into());
    // As the other helpers start it: a sandbox that pays every order as it is made.
    let state = AppState::new(configure(ServerConfig {
        pdf_reader,
        payments: Payments::sandbox(true),
        ..config
    }))
    .unwrap();
    let running = thudo_server::start(state.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = format!("http://{}", running.addr);
    let client = BackendClient::new(BackendConfig::new(&url)).unwrap();
    Local {
        db: db.to_owned(),
        storage,
        state,
        running,
        idp,
        client,
        url,
    }
}

/// Orders `order` and collects its credential (paid at once: a free product, or a server whose
/// sandbox pays every order).
#[allow(dead_code)]
pub async fn buy(
    c: &BackendClient,
    v: Arc<Vault>,
    order: &CredentialOrder,
) -> Result<CredentialResponse, BackendError> {
    let transit = TransitClient::new(c);
    let placed = transit.order(v.clone(), order).await?;
    transit.collect(v, &placed.order_id).await
}

/// Every synced collection, stored in the vault only (no document library, no health-card trust).
pub fn collections() -> thudo_core::changes::Registry {
    thudo_core::collections::registry(Default::default())
}

/// Every synced collection, library documents into `library`.
pub fn collections_with(
    library: std::sync::Arc<thudo_core::handbook::library::Library>,
) -> thudo_core::changes::Registry {
    thudo_core::collections::registry(thudo_core::collections::Stores {
        library: Some(library),
        ..Default::default()
    })
}

/// What the proxy does to the next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 500 without reaching the server.
    Error500,
    /// 429 with `Retry-After: 1`.
    TooMany,
    /// Reaches the server (which commits), then answers 500: the response is lost.
    LoseResponse,
    /// Reaches the server, then answers 200 with half the body.
    Truncate,
    /// Reaches the server, then answers 200 with a body that is not JSON.
    Garbage,
    /// Waits longer than the client's timeout, then reaches the server.
    Slow,
    /// Delivers the request to the server twice; answers with the second response.
    Twice,
    /// Delivers it untouched: lets a request through ahead of the faults queued after it.
    Pass,
}

/// A fault-injecting proxy in front of one or more backend instances (a load balancer that
/// picks an instance at random for each request).
#[derive(Clone)]
pub struct Proxy {
    upstreams: Vec<String>,
    /// Faults for the next requests, in order.
    pub faults: Arc<Mutex<VecDeque<Fault>>>,
    /// Every request seen, with its fault.
    pub seen: Arc<Mutex<Vec<String>>>,
    /// With the queue empty: one request in this many gets a random fault (0: none).
    pub random_fault_one_in: Arc<std::sync::atomic::AtomicU32>,
    rng: Arc<Mutex<u64>>,
    http: reqwest::Client,
}

impl Proxy {
    /// A number below `n` from the proxy's seeded generator (xorshift: reproducible runs).
    fn below(&self, n: u64) -> u64 {
        let mut x = self.rng.lock().unwrap();
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x % n.max(1)
    }

    fn upstream(&self) -> &str {
        &self.upstreams[self.below(self.upstreams.len() as u64) as usize]
    }

    fn next_fault(&self) -> Option<Fault> {
        if let Some(f) = self.faults.lock().unwrap().pop_front() {
            return Some(f);
        }
        let one_in = self
            .random_fault_one_in
            .load(std::sync::atomic::Ordering::Relaxed);
        if one_in == 0 || self.below(u64::from(one_in)) != 0 {
            return None;
        }
        const RANDOM: [Fault; 5] = [
            Fault::Error500,
            Fault::LoseResponse,
            Fault::Truncate,
            Fault::Garbage,
            Fault::Twice,
        ];
        Some(RANDOM[self.below(RANDOM.len() as u64) as usize])
    }
}

async fn forward(
    p: &Proxy,
    method: &axum::http::Method,
    uri: &str,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Option<(StatusCode, Vec<(String, String)>, Vec<u8>)> {
    let mut req = p
        .http
        .request(method.clone(), format!("{}{}", p.upstream(), uri));
    for (k, v) in headers {
        if k != "host" && k != "content-length" {
            req = req.header(k.as_str(), v.as_bytes());
        }
    }
    let r = req.body(body.to_vec()).send().await.ok()?;
    let status = StatusCode::from_u16(r.status().as_u16()).ok()?;
    let hs = r
        .headers()
        .iter()
        .filter(|(k, _)| k.as_str() != "content-length" && k.as_str() != "transfer-encoding")
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    Some((status, hs, r.bytes().await.ok()?.to_vec()))
}

fn respond(status: StatusCode, headers: Vec<(String, String)>, body: Vec<u8>) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            r.headers_mut().insert(k, v);
        }
    }
    r
}

async fn proxy_handler(State(p): State<Proxy>, req: Request) -> Response {
    let method = req.method().clone();
    let uri = req
        .uri()
        .path_and_query()
        .map(|x| x.to_string())
        .unwrap_or_default();
    let headers = req.headers().clone();
    let body = to_bytes(req.into_body(), 64 << 20)
        .await
        .unwrap_or_default();
    let fault = p.next_fault();
    p.seen.lock().unwrap().push(format!(
        "{method} {} {fault:?}",
        uri.split('?').next().unwrap_or("")
    ));
    let gateway = || respond(StatusCode::BAD_GATEWAY, vec![], b"{}".to_vec());
    match fault {
        Some(Fault::Error500) => respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            vec![],
            b"{\"error\":\"boom\",\"message\":\"\"}".to_vec(),
        ),
        Some(Fault::TooMany) => respond(
            StatusCode::TOO_MANY_REQUESTS,
            vec![("retry-after".into(), "1".into())],
            b"{\"error\":\"slow_down\",\"message\":\"\"}".to_vec(),
        ),
        Some(Fault::Slow) => {
            tokio::time::sleep(Duration::from_millis(900)).await;
            match forward(&p, &method, &uri, &headers, &body).await {
                Some((s, h, b)) => respond(s, h, b),
                None => gateway(),
            }
        }
        Some(f) => {
            let Some((s, h, b)) = forward(&p, &method, &uri, &headers, &body).await else {
                return gateway();
            };
            match f {
                Fault::LoseResponse => {
                    respond(StatusCode::INTERNAL_SERVER_ERROR, vec![], b"{}".to_vec())
                }
                Fault::Truncate => respond(s, h, b[..b.len() / 2].to_vec()),
                Fault::Garbage => respond(s, h, b"<html>proxy error</html>".to_vec()),
                Fault::Twice => match forward(&p, &method, &uri, &headers, &body).await {
                    Some((s2, h2, b2)) => respond(s2, h2, b2),
                    None => gateway(),
                },
                _ => respond(s, h, b),
            }
        }
        None => match forward(&p, &method, &uri, &headers, &body).await {
            Some((s, h, b)) => respond(s, h, b),
            None => gateway(),
        },
    }
}

/// A proxy in front of `upstreams`; its random generator starts from `seed`.
pub async fn start_proxy_to(upstreams: &[SocketAddr], seed: u64) -> (String, Proxy) {
    let proxy = Proxy {
        upstreams: upstreams.iter().map(|u| format!("http://{u}")).collect(),
        faults: Arc::new(Mutex::new(VecDeque::new())),
        seen: Arc::new(Mutex::new(Vec::new())),
        random_fault_one_in: Arc::new(std::sync::atomic::AtomicU32::new(0)),
        rng: Arc::new(Mutex::new(seed | 1)),
        http: http_client(),
    };
    let app = axum::Router::new()
        .fallback(proxy_handler)
        .with_state(proxy.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), proxy)
}

/// A proxy in front of one backend, faults only as queued.
pub async fn start_proxy(upstream: SocketAddr) -> (String, Proxy) {
    start_proxy_to(&[upstream], 1).await
}

/// A party organisation's request (the test organisation `hn`, governing every `hn.…` cell):
/// status and JSON answer.
#[allow(dead_code)]
pub async fn party(
    local: &Local,
    method: &str,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let r = http_client()
        .request(method.parse().unwrap(), format!("{}{path}", local.url))
        .bearer_auth(operator(&local.idp, Role::PartyOrganisation))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (
        status,
        serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or(serde_json::Value::Null),
    )
}

/// A citizen's phone, registered and made a member of `cell` by the party organisation.
#[allow(dead_code)]
pub async fn cell_member(local: &Local, dir: &Path, citizen: &str, cell: &str) -> Arc<Vault> {
    let v = vault(&dir.join(citizen));
    let id = citizen.to_owned();
    local
        .client
        .sign_in_and_register(v.clone(), "phone", |n| {
            local.idp.id_token(&id, n).map_err(|e| e.to_string())
        })
        .await
        .unwrap();
    let (status, _) = party(
        local,
        "POST",
        &format!("/v1/admin/citizens/{citizen}/cell"),
        serde_json::json!({ "cell": cell }),
    )
    .await;
    assert_eq!(status, 200);
    v
}

/// Calls `method path` with a JSON `body` (none when null) and an optional bearer token;
/// returns the status and the JSON answer (null when it is not JSON).
pub async fn call(
    http: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    body: &serde_json::Value,
    token: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut req = http.request(method.parse().unwrap(), format!("{base}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if !body.is_null() {
        req = req
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let body = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or(serde_json::Value::Null);
    (status, body)
}

/// Runs SQL on the test's database directly, as someone holding the database but not the
/// server's secrets would.
#[allow(dead_code)]
pub fn tamper(db: &str, sql: &str) {
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

/// The one number `sql` reads from the test's database, behind the server's back.
#[allow(dead_code)]
pub fn count(db: &str, sql: &str) -> i64 {
    let read = |tx: &mut dyn thudo_server::storage::engine::Tx| {
        tx.row(sql, &[])?.map_or(Ok(0), |r| r.int(0))
    };
    if db.starts_with("postgres") {
        thudo_server::storage::PostgresStorage::connect(db, thudo_server::SCHEMA)
            .unwrap()
            .write(read)
            .unwrap()
    } else {
        thudo_server::storage::SqliteStorage::open(std::path::Path::new(db), thudo_server::SCHEMA)
            .unwrap()
            .write(read)
            .unwrap()
    }
}

/// SQL that makes every insert into and update of `table` fail (a full disk at that
/// statement, or an instance dying there), and the SQL that mends it, on `db`'s engine.
pub fn failing_writes(db: &str, table: &str) -> (String, String) {
    if db.starts_with("postgres") {
        (
            format!(
                "CREATE FUNCTION fail_{table}() RETURNS trigger AS $$ BEGIN
                   RAISE EXCEPTION 'disk full'; END $$ LANGUAGE plpgsql;
                 CREATE TRIGGER fail_{table} BEFORE INSERT OR UPDATE ON {table}
                   FOR EACH ROW EXECUTE FUNCTION fail_{table}();"
            ),
            format!("DROP TRIGGER fail_{table} ON {table}; DROP FUNCTION fail_{table}();"),
        )
    } else {
        (
            format!(
                "CREATE TRIGGER fail_{table} BEFORE INSERT ON {table}
                 BEGIN SELECT RAISE(ABORT, 'disk full'); END;
                 CREATE TRIGGER fail_{table}_update BEFORE UPDATE ON {table}
                 BEGIN SELECT RAISE(ABORT, 'disk full'); END;"
            ),
            format!("DROP TRIGGER fail_{table}; DROP TRIGGER fail_{table}_update;"),
        )
    }
}
