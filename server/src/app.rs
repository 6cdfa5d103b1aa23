//! The application: the state every concern's routes are built from, the router that puts
//! them together, and the server's lifecycle. The only module that knows every concern.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use thudo_core::sync::protocol::ServerErrorCode;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::{Json, Router};
use thudo_core::sync::protocol::SERVER_TIME_HEADER;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::attendance::store::AttendanceStore;
use crate::attendance::{self, AttendanceState};
use crate::devices::{self, identity, DevicesState};
use crate::files::store::FileStore;
use crate::files::{self, FilesState};
use crate::http::{blocking, ApiError, ApiResult};
use crate::operators::audit::{self, AuditState, AuditStore};
use crate::operators::Operators;
use crate::publishing::{self, PublishingState};
use crate::secrets::ServerSecrets;
use crate::storage::migrations::ConcernSchema;
use crate::storage::{PostgresStorage, SqliteStorage, StorageError};
use crate::sync::store::SyncStore;
use crate::sync::{self, SyncState};
use crate::transit::fares::FarePolicy;
use crate::transit::issuer::Issuer;
use crate::transit::sales::Payments;
use crate::transit::store::{deny_device_keys, return_device_orders, TransitStore};
use crate::transit::{self, TransitState};

/// The schema: every concern's steps, in the order their tables depend on each other.
pub const SCHEMA: &[ConcernSchema] = &[
    crate::storage::settings::SCHEMA,
    crate::devices::store::SCHEMA,
    crate::sync::store::SCHEMA,
    crate::transit::store::SCHEMA,
    crate::operators::audit::SCHEMA,
    crate::attendance::store::SCHEMA,
    crate::files::store::SCHEMA,
];

/// Every store the backend has: one value implements them all ([`crate::storage::SqlStorage`]
/// on either engine).
pub trait Storage: SyncStore + TransitStore + AuditStore + AttendanceStore + FileStore {}

impl<T: SyncStore + TransitStore + AuditStore + AttendanceStore + FileStore> Storage for T {}

/// Opens the storage `db` names ([`open_storage`]), waiting for a database that is not up yet:
/// tries again after 1, 2, 4 ... s (at most 30 s apart) for up to `patience`, telling each
/// failure on stderr. A database that refuses the schema (a newer one) is not waited for.
pub async fn open_storage_waiting(
    db: &str,
    patience: std::time::Duration,
) -> Result<Arc<dyn Storage>, StorageError> {
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_secs(1);
    loop {
        let target = db.to_owned();
        let opened = tokio::task::spawn_blocking(move || open_storage(&target))
            .await
            .map_err(|e| StorageError::Failed(e.to_string()))?;
        match opened {
            Ok(storage) => return Ok(storage),
            Err(e) if e.message().contains("newer") || started.elapsed() + pause > patience => {
                return Err(e)
            }
            Err(e) => {
                eprintln!(
                    "the database is not ready ({e}); trying again in {} s",
                    pause.as_secs()
                );
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(30));
            }
        }
    }
}

/// Opens the storage a `--db` value names: a `postgres://` or `postgresql://` URL is
/// PostgreSQL, anything else a SQLite file path.
pub fn open_storage(db: &str) -> Result<Arc<dyn Storage>, StorageError> {
    if db.starts_with("postgres://") || db.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStorage::connect(db, SCHEMA)?))
    } else {
        Ok(Arc::new(SqliteStorage::open(Path::new(db), SCHEMA)?))
    }
}

/// Everything the routes need, per concern.
#[derive(Clone)]
pub struct AppState {
    storage: Arc<dyn Storage>,
    devices: DevicesState,
    sync: SyncState,
    publishing: PublishingState,
    attendance: AttendanceState,
    files: FilesState,
    transit: TransitState,
    operators: Operators,
    limits: Arc<crate::gate::RateLimits>,
    min_client_version: Option<crate::gate::ClientVersion>,
}

/// Server settings.
pub struct ServerConfig {
    /// The storage.
    pub storage: Arc<dyn Storage>,
    /// The staff identity provider whose access tokens name operators and their roles.
    pub operators: Operators,
    /// Fare policy.
    pub fares: FarePolicy,
    /// The identity provider whose ID tokens register devices.
    pub identity: identity::IdentityConfig,
    /// A local provider whose tokens the server mints at `POST /test/identity/token` (tests and
    /// demos only; `None` in production, and the route is absent).
    pub test_identity: Option<Arc<identity::LocalIdentityProvider>>,
    /// The payment provider (a sandbox with its gateway for tests and demos).
    pub payments: Payments,
    /// Requests each caller may make, per instance.
    pub limits: crate::gate::RateLimits,
    /// The secrets kept outside the database (citizen-ID keys, the audit seal).
    pub secrets: Arc<ServerSecrets>,
    /// The oldest library version devices may call with; older ones get 426
    /// `upgrade_required` (`None`: any).
    pub min_client_version: Option<crate::gate::ClientVersion>,
    /// The most bytes of records one account may push on one UTC day
    /// ([`crate::sync::MAX_PUSH_BYTES_PER_DAY`]).
    pub push_bytes_per_day: u64,
    /// Where a published PDF's text is read (the server's executable sets a child process).
    pub pdf_reader: crate::files::PdfReader,
}

impl ServerConfig {
    /// A configuration with a fresh local identity provider, which also mints test tokens
    /// (citizens' ID tokens and operators' access tokens): for tests and demos on this machine.
    pub fn local(
        storage: Arc<dyn Storage>,
        fares: FarePolicy,
    ) -> anyhow::Result<(ServerConfig, Arc<identity::LocalIdentityProvider>)> {
        let idp = identity::LocalIdentityProvider::generate("https://id.thudo.test", "thudo")?;
        Ok((
            ServerConfig {
                storage,
                operators: idp.operators(),
                fares,
                identity: idp.config(),
                test_identity: Some(idp.clone()),
                payments: Payments::sandbox(false),
                // Tests and demos drive many devices from one address.
                limits: crate::gate::RateLimits::off(),
                secrets: Arc::new(ServerSecrets::local()),
                min_client_version: None,
                push_bytes_per_day: crate::sync::MAX_PUSH_BYTES_PER_DAY,
                pdf_reader: crate::files::PdfReader::InProcess,
            },
            idp,
        ))
    }
}

impl AppState {
    /// Builds the state; creates the transit issuer's first key on first start (the keyring is
    /// kept in storage; a deployment would keep it in an HSM).
    pub fn new(config: ServerConfig) -> anyhow::Result<AppState> {
        let storage = config.storage;
        let issuer = Issuer::load(storage.as_ref())?;
        let operators = config.operators;
        let secrets = config.secrets;
        // Rows from before keying (or from before a rotation) are brought up to the
        // configured secrets; a database keyed with other secrets is refused.
        let rekeyed = storage.rekey_citizens(&secrets)?;
        if rekeyed > 0 {
            eprintln!("keyed {rekeyed} citizen IDs with the configured secrets");
        }
        Ok(AppState {
            devices: DevicesState {
                storage: storage.clone(),
                identity: Arc::new(config.identity),
                test_identity: config.test_identity,
                on_revoke: {
                    let fares = config.fares.clone();
                    Arc::new(
                        move |tx: &mut dyn crate::storage::engine::Tx, device: &str, now: i64| {
                            crate::attendance::store::revoke_device_credentials(tx, device, now)?;
                            let denied = deny_device_keys(tx, device, now)?;
                            let day = fares.local_day_and_month(now.max(0) as u64).0;
                            return_device_orders(tx, device, now, &day)?;
                            Ok(denied)
                        },
                    )
                },
                secrets: secrets.clone(),
            },
            sync: SyncState {
                storage: storage.clone(),
                devices: storage.clone(),
                push_bytes_per_day: config.push_bytes_per_day,
            },
            attendance: AttendanceState {
                store: storage.clone(),
                devices: storage.clone(),
                settings: storage.clone(),
                secrets: secrets.clone(),
            },
            files: FilesState {
                store: storage.clone(),
                devices: storage.clone(),
                pdf_reader: config.pdf_reader,
            },
            publishing: PublishingState {
                sync: storage.clone(),
                devices: storage.clone(),
                secrets: secrets.clone(),
                settings: storage.clone(),
                files: storage.clone(),
            },
            transit: TransitState {
                storage: storage.clone(),
                issuer: Arc::new(issuer),
                fares: Arc::new(config.fares),
                payments: config.payments,
                secrets,
            },
            operators,
            limits: Arc::new(config.limits),
            min_client_version: config.min_client_version,
            storage,
        })
    }

    /// The storage.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The secrets citizen IDs are looked up under.
    pub fn secrets(&self) -> &Arc<ServerSecrets> {
        &self.transit.secrets
    }

    /// One round of asking the payment provider at `query_url` about the orders whose
    /// notification never came, as instance `me` at `now` ([`transit::follow_up`]); `None` when
    /// another instance has the round. The server runs one every few minutes when its
    /// provider has a query URL; tests and operators' tools call it at will.
    pub async fn follow_up_payments(
        &self,
        query_url: &str,
        me: &str,
        now: i64,
    ) -> Result<Option<transit::follow_up::FollowUp>, ApiError> {
        let http = crate::http::outbound_client(query_url, std::time::Duration::from_secs(10))
            .map_err(|e| ApiError::bad(e.to_string()))?;
        transit::follow_up::follow_up_payments(&self.transit, &http, query_url, me, now).await
    }

    /// Settles an order through the sandbox gateway (a test or demo server): it notifies this
    /// server as the provider would. `None` without a sandbox or such an order.
    pub async fn settle_in_sandbox(
        &self,
        order_id: &str,
        outcome: crate::payments::vnpay::SandboxOutcome,
    ) -> Result<Option<crate::payments::Acknowledgement>, ApiError> {
        transit::sales::settle_in_sandbox(&self.transit, order_id, outcome).await
    }
}

/// `GET /healthz`: 200 when this instance can write to its database, 503 otherwise (a load
/// balancer takes an instance that lost its database, or whose disk is full, out of rotation).
/// The write is one small setting, replaced each time.
#[utoipa::path(
    get,
    path = "/healthz",
    summary = "Health: 200 while this instance can write to its database, 503 otherwise",
    responses(
        (status = 200, description = "It can write", body = Health),
    ),
)]
async fn healthz(State(storage): State<Arc<dyn Storage>>) -> ApiResult<Health> {
    let now = chrono::Utc::now().timestamp().to_string();
    blocking(move || Ok(storage.set_setting("healthz", now.as_bytes())?)).await?;
    Ok(Json(Health {
        status: "ok".into(),
    }))
}

/// A healthy instance's answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct Health {
    /// `ok`.
    #[schema(pattern = "^ok$")]
    status: String,
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ServerErrorCode::NotFound,
        "no such endpoint",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ServerErrorCode::MethodNotAllowed,
        "wrong method for this endpoint",
    )
}

async fn stamp_time(mut response: Response) -> Response {
    if let Ok(v) = HeaderValue::from_str(&chrono::Utc::now().timestamp_millis().to_string()) {
        response.headers_mut().insert(SERVER_TIME_HEADER, v);
    }
    response
}

/// `/healthz` and `/openapi.json`.
fn own_routes() -> OpenApiRouter<Arc<dyn Storage>> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(serve_openapi))
}

/// Every concern's routes, each declared once with its documentation: [`app`] serves them and
/// [`openapi_json`] documents them. Both take them apart field by field (no `..`), so a
/// concern added here is served and documented, or neither compiles.
struct Concerns {
    own: OpenApiRouter<Arc<dyn Storage>>,
    devices: OpenApiRouter<DevicesState>,
    sync: OpenApiRouter<SyncState>,
    publishing: OpenApiRouter<PublishingState>,
    attendance: OpenApiRouter<AttendanceState>,
    files: OpenApiRouter<FilesState>,
    transit: OpenApiRouter<TransitState>,
    audit: OpenApiRouter<AuditState>,
}

fn concerns() -> Concerns {
    Concerns {
        own: own_routes(),
        devices: devices::routes(),
        sync: sync::routes(),
        publishing: publishing::routes(),
        attendance: attendance::routes(),
        files: files::routes(),
        transit: transit::routes(),
        audit: audit::routes(),
    }
}

/// The OpenAPI document of every route [`app`] serves ([`crate::openapi::render`]), as served at
/// `/openapi.json` and kept in `server/openapi.json`.
pub fn openapi_json() -> &'static str {
    static JSON: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let Concerns {
            own,
            devices,
            sync,
            publishing,
            attendance,
            files,
            transit,
            audit,
        } = concerns();
        crate::openapi::render([
            own.into_openapi(),
            devices.into_openapi(),
            sync.into_openapi(),
            publishing.into_openapi(),
            attendance.into_openapi(),
            files.into_openapi(),
            transit.into_openapi(),
            audit.into_openapi(),
        ])
    });
    &JSON
}

/// `GET /openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    summary = "This API's OpenAPI 3.1 document, generated from the server's own types",
    responses((status = 200, description = "The document", content_type = "application/json")),
)]
async fn serve_openapi() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        openapi_json(),
    )
}

/// The HTTP application: every concern's routes, and what applies to them all.
pub fn app(state: AppState) -> Router {
    let gate = crate::gate::GateState {
        tokens: state.transit.storage.clone(),
        operators: state.operators.clone(),
        limits: state.limits.clone(),
        min_client_version: state.min_client_version,
    };
    let audit = AuditState {
        store: state.storage.clone(),
        secrets: state.transit.secrets.clone(),
    };
    let Concerns {
        own,
        devices,
        sync,
        publishing,
        attendance,
        files,
        transit,
        audit: audit_routes,
    } = concerns();
    let (router, _) = OpenApiRouter::new()
        .merge(own.with_state(state.storage.clone()))
        .merge(devices.with_state(state.devices))
        .merge(sync.with_state(state.sync))
        .merge(publishing.with_state(state.publishing))
        .merge(attendance.with_state(state.attendance))
        .merge(files.with_state(state.files))
        .merge(transit.with_state(state.transit))
        .merge(audit_routes.with_state(audit.clone()))
        .split_for_parts();
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::gate::LARGE_BODY,
        ))
        // Every operator request in the trail (the gate, outside it, named the operator).
        .layer(axum::middleware::from_fn_with_state(audit, audit::audited))
        // Credentials before bodies, each route's body limit, and JSON for every refusal.
        .layer(axum::middleware::from_fn_with_state(
            gate,
            crate::gate::admit,
        ))
        .layer(axum::middleware::map_response(crate::gate::json_errors))
        .layer(axum::middleware::map_response(stamp_time))
        // Citizens pay for mobile data: answers go gzip-compressed to clients that accept it
        // (the sync client does; its size limit counts the decompressed bytes).
        .layer(tower_http::compression::CompressionLayer::new())
}

/// A running server.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting, finishes requests in flight, and waits.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Stops at once, dropping requests in flight (a crash, for tests).
    pub fn kill(self) {
        self.task.abort();
    }
}

/// Serves `state` on `addr` (port 0: any free port) in the current tokio runtime.
pub async fn start(state: AppState, addr: SocketAddr) -> anyhow::Result<Running> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // Metro journeys left without an exit (or an entry) are settled every minute, on every
    // instance (the card locks make it safe).
    let settler_state = state.clone();
    let settler = tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            every.tick().await;
            if let Err(e) = transit::journeys::settle_now(&settler_state.transit).await {
                eprintln!("warning: settling metro journeys failed: {}", e.message());
            }
        }
    });
    // Orders whose payment notification never came are asked about at the provider, by one
    // instance a round.
    let follow_up = state.transit.payments.query_url.clone().map(|url| {
        tokio::spawn(transit::follow_up::keep_following_up(
            state.transit.clone(),
            url,
        ))
    });
    let task = tokio::spawn(async move {
        let service = app(state).into_make_service_with_connect_info::<SocketAddr>();
        let _ = axum::serve(listener, service)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
        settler.abort();
        if let Some(follow_up) = follow_up {
            follow_up.abort();
        }
    });
    Ok(Running {
        addr,
        stop: Some(stop),
        task,
    })
}
