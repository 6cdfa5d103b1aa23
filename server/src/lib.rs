//! # thudo-server
//!
//! The reference backend for thudo devices (docs/protocol/sync.md): device registration and
//! tokens; push and pull sync with idempotency keys, cursors and per-collection conflict
//! policies; health records published by facilities per citizen; handbook content per party
//! cell; transit credential issuance, the validator feed and tap upload with pay-as-you-go fares
//! under daily and monthly caps. Storage is SQLite behind the [`storage::Storage`] trait.
//!
//! Every bad request gets a 4xx with a JSON [`ErrorBody`]; nothing a client sends can panic a
//! handler.

pub mod fares;
pub mod identity;
pub mod seed;
pub mod storage;
pub mod transit;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use thudo_core::changes::hlc::Hlc;
use thudo_core::collections::spec as collection;
use thudo_core::sync::protocol::*;

use fares::FarePolicy;
use storage::{sha256, Device, Storage};
use thudo_core::hex;

/// The OpenAPI document served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// Everything a handler needs.
#[derive(Clone)]
pub struct AppState {
    storage: Arc<dyn Storage>,
    admin_token_hash: [u8; 32],
    issuer: Arc<transit::Issuer>,
    fares: Arc<FarePolicy>,
    identity: Arc<identity::IdentityConfig>,
    test_identity: Option<Arc<identity::LocalIdentityProvider>>,
}

/// Server settings.
pub struct ServerConfig {
    /// The storage.
    pub storage: Arc<dyn Storage>,
    /// Bearer token of the admin API (facilities, the party, the transit operator).
    pub admin_token: String,
    /// Fare policy.
    pub fares: FarePolicy,
    /// The identity provider whose ID tokens register devices.
    pub identity: identity::IdentityConfig,
    /// A local provider whose tokens the server mints at `POST /test/identity/token` (tests and
    /// demos only; `None` in production, and the route is absent).
    pub test_identity: Option<Arc<identity::LocalIdentityProvider>>,
}

impl ServerConfig {
    /// A configuration with a fresh local identity provider, which also mints test tokens:
    /// for tests and demos on this machine.
    pub fn local(
        storage: Arc<dyn Storage>,
        admin_token: &str,
        fares: FarePolicy,
    ) -> anyhow::Result<(ServerConfig, Arc<identity::LocalIdentityProvider>)> {
        let idp = identity::LocalIdentityProvider::generate("https://id.thudo.test", "thudo")?;
        Ok((
            ServerConfig {
                storage,
                admin_token: admin_token.to_owned(),
                fares,
                identity: idp.config(),
                test_identity: Some(idp.clone()),
            },
            idp,
        ))
    }
}

impl AppState {
    /// Builds the state; creates the transit issuer's first key on first start (the keyring is
    /// kept in storage; a deployment would keep it in an HSM).
    pub fn new(config: ServerConfig) -> anyhow::Result<AppState> {
        let issuer = transit::Issuer::load(config.storage.as_ref())?;
        Ok(AppState {
            storage: config.storage,
            admin_token_hash: sha256(config.admin_token.as_bytes()),
            issuer: Arc::new(issuer),
            fares: Arc::new(config.fares),
            identity: Arc::new(config.identity),
            test_identity: config.test_identity,
        })
    }

    /// The storage.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }
}

/// An error answer: status and JSON body.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, error: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody {
                error: error.to_owned(),
                message: message.into(),
            },
        }
    }

    pub(crate) fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

impl From<storage::StorageError> for ApiError {
    fn from(e: storage::StorageError) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage", e.to_string())
    }
}

pub(crate) type ApiResult<T> = Result<Json<T>, ApiError>;

/// A JSON body whose every rejection (size, syntax, shape) is a 4xx JSON error.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), "bad_body", e.body_text()))?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::bad(format!("invalid JSON body: {e}")))
    }
}

/// `GET /healthz`: 200 when this instance can read its database, 503 otherwise (a load
/// balancer takes an instance that lost its database out of rotation).
async fn healthz(State(state): State<AppState>) -> ApiResult<Value> {
    let storage = state.storage.clone();
    blocking(move || Ok(storage.get_setting("deny_version")?)).await?;
    Ok(Json(json!({"status": "ok"})))
}

/// Whether text holds a control character (NUL among them: PostgreSQL's text refuses it, so
/// such input is refused at the door on every engine alike).
pub(crate) fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the request failed inside the server",
        )
    })?
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

pub(crate) async fn device(state: &AppState, headers: &HeaderMap) -> Result<Device, ApiError> {
    let unauthorized = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or unknown token",
        )
    };
    let token = bearer(headers).ok_or_else(unauthorized)?;
    let hash = sha256(token.as_bytes());
    let storage = state.storage.clone();
    blocking(move || Ok(storage.device_by_token(&hash)?))
        .await?
        .ok_or_else(unauthorized)
}

pub(crate) fn admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let token = bearer(headers).unwrap_or("");
    if thudo_core::crypto::constant_time_eq(&sha256(token.as_bytes()), &state.admin_token_hash) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "admin token required",
        ))
    }
}

pub(crate) fn valid_citizen_id(id: &str) -> Result<(), ApiError> {
    if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(ApiError::bad("citizen_id must be 12 digits"))
    }
}

/// Published records obey the same cap as pushed ones: every device must be able to hold them.
fn record_fits(index: usize, record: &Value) -> Result<(), ApiError> {
    if record.to_string().len() > MAX_RECORD_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("record {index} is larger than {MAX_RECORD_BYTES} bytes"),
        ));
    }
    Ok(())
}

fn server_hlc() -> String {
    Hlc::tick(None, chrono::Utc::now().timestamp_millis() as u64, "server").to_string()
}

async fn registration_nonce(State(state): State<AppState>) -> ApiResult<NonceResponse> {
    let mut raw = [0u8; 16];
    thudo_core::crypto::fill_random(&mut raw)
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "internal", "no randomness"))?;
    let nonce = hex::encode(&raw);
    let hash = sha256(nonce.as_bytes());
    let expires_at = chrono::Utc::now().timestamp() + identity::NONCE_TTL_SECS;
    let storage = state.storage.clone();
    blocking(move || Ok(storage.create_nonce(&hash, expires_at)?)).await?;
    Ok(Json(NonceResponse { nonce, expires_at }))
}

async fn register(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<RegisterRequest>,
) -> ApiResult<RegisterResponse> {
    if req.device_name.trim().is_empty()
        || req.device_name.len() > 100
        || has_control(&req.device_name)
    {
        return Err(ApiError::bad(
            "device_name must be 1 to 100 bytes, no control characters",
        ));
    }
    if req.role == "validator" {
        // A validator is not a citizen's device: it enrols with an operator's code.
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "enrolment_required",
            "validators enrol with an operator's enrolment code (POST /v1/validators)",
        ));
    }
    if req.role != "phone" {
        return Err(ApiError::bad("role must be phone"));
    }
    let refused =
        |e: identity::IdentityError| ApiError::new(StatusCode::FORBIDDEN, e.code(), e.to_string());
    let assertion = identity::verify(&state.identity, &req.id_token).map_err(refused)?;
    let mut raw = [0u8; 32];
    thudo_core::crypto::fill_random(&mut raw)
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "internal", "no randomness"))?;
    let token = hex::encode(&raw);
    let hash = sha256(token.as_bytes());
    let storage = state.storage.clone();
    let nonce_hash = sha256(assertion.nonce.as_bytes());
    let registered = blocking(move || {
        // The nonce is spent first: an ID token registers one device, once.
        let outcome = storage.consume_nonce(&nonce_hash, chrono::Utc::now().timestamp())?;
        Ok(match outcome {
            storage::NonceOutcome::Consumed => Ok(storage.register_device(
                &assertion.citizen_id,
                req.device_name.trim(),
                "phone",
                &hash,
            )?),
            storage::NonceOutcome::Unknown => Err(identity::IdentityError::NonceUnknown),
            storage::NonceOutcome::Used => Err(identity::IdentityError::NonceUsed),
            storage::NonceOutcome::Expired => Err(identity::IdentityError::NonceExpired),
        })
    })
    .await?;
    let (device_id, account_id) = registered.map_err(refused)?;
    Ok(Json(RegisterResponse {
        device_id,
        account_id,
        token,
    }))
}

async fn list_devices(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Vec<DeviceInfo>> {
    let me = device(&state, &headers).await?;
    let storage = state.storage.clone();
    let account = me.account_id.clone();
    let devices = blocking(move || Ok(storage.devices_of(&account)?)).await?;
    Ok(Json(
        devices
            .into_iter()
            .map(|d| DeviceInfo {
                current: d.id == me.id,
                device_id: d.id,
                name: d.name,
                created_at: d.created_at,
            })
            .collect(),
    ))
}

/// Revokes one of the caller's account's devices: its token stops working at once, and every
/// transit key it bought credentials for goes on the deny list (a stolen phone rides no more).
async fn revoke_device(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(device_id): Path<String>,
) -> ApiResult<Value> {
    let me = device(&state, &headers).await?;
    let storage = state.storage.clone();
    let now = chrono::Utc::now().timestamp();
    let revoked =
        blocking(move || Ok(storage.revoke_device(&me.account_id, &device_id, now)?)).await?;
    match revoked {
        Some(keys) => Ok(Json(
            json!({ "revoked": true, "transit_keys_denied": keys }),
        )),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such device on this account",
        )),
    }
}

#[derive(Debug, Deserialize)]
struct TestTokenRequest {
    citizen_id: String,
    nonce: String,
}

/// `POST /test/identity/token` (only with a local test provider): an ID token for a citizen.
async fn test_identity_token(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<TestTokenRequest>,
) -> ApiResult<Value> {
    let idp = state
        .test_identity
        .clone()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint"))?;
    valid_citizen_id(&req.citizen_id)?;
    let token = idp
        .id_token(&req.citizen_id, &req.nonce)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    Ok(Json(json!({ "id_token": token })))
}

async fn push(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<PushRequest>,
) -> ApiResult<PushResponse> {
    let device = device(&state, &headers).await?;
    if req.mutations.len() > MAX_PUSH_BATCH {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("at most {MAX_PUSH_BATCH} mutations per push"),
        ));
    }
    let mut keys = std::collections::HashSet::new();
    for m in &req.mutations {
        if m.idempotency_key.is_empty()
            || m.idempotency_key.len() > 64
            || has_control(&m.idempotency_key)
        {
            return Err(ApiError::bad(
                "idempotency_key must be 1 to 64 characters, none a control character",
            ));
        }
        if !keys.insert(m.idempotency_key.as_str()) {
            return Err(ApiError::bad("an idempotency key repeats within the batch"));
        }
    }
    let storage = state.storage.clone();
    let results = blocking(move || Ok(storage.push(&device, &req.mutations)?)).await?;
    Ok(Json(PushResponse { results }))
}

pub(crate) fn query_params(raw: Option<String>) -> std::collections::HashMap<String, String> {
    let mut out = std::collections::HashMap::new();
    for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.insert(k.to_owned(), percent_decode(v));
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex_digit = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = match bytes[i] {
            b'%' if i + 2 < bytes.len() => hex_digit(bytes[i + 1])
                .zip(hex_digit(bytes[i + 2]))
                .map(|(h, l)| h * 16 + l),
            _ => None,
        };
        match (decoded, bytes[i]) {
            (Some(b), _) => {
                out.push(b);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, b) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Cursors are opaque to devices: `c1.<scope tag>.<position>`. The tag names the scope the
/// position belongs to: a member moved to another cell (or a vault registered to another
/// citizen) presents a cursor of the old scope, and starts the new one from the beginning.
fn scope_tag(scope: &str) -> String {
    hex::encode(&sha256(scope.as_bytes())[..6])
}

fn make_cursor(scope: &str, position: i64) -> String {
    format!("c1.{}.{position}", scope_tag(scope))
}

fn parse_cursor(cursor: &str, scope: &str) -> Result<i64, ApiError> {
    if cursor.is_empty() {
        return Ok(0);
    }
    let (tag, position) = cursor
        .strip_prefix("c1.")
        .and_then(|rest| rest.split_once('.'))
        .ok_or_else(|| ApiError::bad("unknown cursor"))?;
    let position = position
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| ApiError::bad("unknown cursor"))?;
    Ok(if tag == scope_tag(scope) { position } else { 0 })
}

async fn pull(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<PullResponse> {
    let device = device(&state, &headers).await?;
    let params = query_params(raw);
    let name = params
        .get("collection")
        .ok_or_else(|| ApiError::bad("collection is required"))?;
    let spec = collection(name)
        .filter(|c| c.pullable)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "unknown_collection", name.clone()))?;
    let limit = match params.get("limit") {
        None => 500,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=MAX_PULL_PAGE).contains(l))
            .ok_or_else(|| ApiError::bad(format!("limit must be 1 to {MAX_PULL_PAGE}")))?,
    };
    let scope = if spec.per_cell {
        match &device.cell {
            Some(cell) => format!("cell:{cell}"),
            None => {
                return Ok(Json(PullResponse {
                    changes: Vec::new(),
                    next_cursor: String::new(),
                    has_more: false,
                }))
            }
        }
    } else {
        format!("acct:{}", device.account_id)
    };
    let after = parse_cursor(
        params.get("cursor").map(String::as_str).unwrap_or(""),
        &scope,
    )?;
    let cursor_scope = scope.clone();
    let storage = state.storage.clone();
    let collection_name = spec.name;
    let (changes, last, more) =
        blocking(move || Ok(storage.pull(&scope, collection_name, after, limit)?)).await?;
    Ok(Json(PullResponse {
        changes,
        next_cursor: make_cursor(&cursor_scope, last),
        has_more: more,
    }))
}

/// Health records a facility publishes for a citizen.
#[derive(Debug, Deserialize)]
struct HealthPublish {
    resources: Vec<Value>,
}

async fn admin_health(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(citizen_id): Path<String>,
    JsonBody(body): JsonBody<HealthPublish>,
) -> ApiResult<Value> {
    admin(&state, &headers)?;
    valid_citizen_id(&citizen_id)?;
    let mut changes = Vec::with_capacity(body.resources.len());
    for (i, r) in body.resources.into_iter().enumerate() {
        let key = thudo_core::health::fhir::key_of(&r).ok_or_else(|| {
            ApiError::bad(format!("resource {i} needs resourceType and a valid id"))
        })?;
        record_fits(i, &r)?;
        changes.push(Change {
            collection: "health.records".into(),
            record_id: key,
            op: "put".into(),
            payload: r,
            hlc: server_hlc(),
        });
    }
    let storage = state.storage.clone();
    let published = blocking(move || {
        let account = storage.account_for_citizen(&citizen_id)?;
        Ok(storage.publish(&format!("acct:{account}"), &changes)?)
    })
    .await?;
    Ok(Json(json!({ "published": published })))
}

#[derive(Debug, Deserialize)]
struct CellMembership {
    cell: String,
}

async fn admin_cell_member(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(citizen_id): Path<String>,
    JsonBody(body): JsonBody<CellMembership>,
) -> ApiResult<Value> {
    admin(&state, &headers)?;
    valid_citizen_id(&citizen_id)?;
    if body.cell.trim().is_empty() || body.cell.len() > 100 {
        return Err(ApiError::bad("cell must be 1 to 100 bytes"));
    }
    let storage = state.storage.clone();
    blocking(move || Ok(storage.set_cell(&citizen_id, body.cell.trim())?)).await?;
    Ok(Json(json!({ "ok": true })))
}

#[derive(Debug, Deserialize)]
struct CellPublish {
    items: Vec<Value>,
}

async fn admin_cell_content(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((cell, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<CellPublish>,
) -> ApiResult<Value> {
    admin(&state, &headers)?;
    let spec = collection(&name)
        .filter(|c| c.per_cell)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "unknown_collection", name.clone()))?;
    let mut changes = Vec::with_capacity(body.items.len());
    for (i, item) in body.items.into_iter().enumerate() {
        let id = item
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty() && id.len() <= 256)
            .ok_or_else(|| ApiError::bad(format!("item {i} needs an id")))?
            .to_owned();
        record_fits(i, &item)?;
        changes.push(Change {
            collection: spec.name.into(),
            record_id: id,
            op: "put".into(),
            payload: item,
            hlc: server_hlc(),
        });
    }
    let storage = state.storage.clone();
    let published =
        blocking(move || Ok(storage.publish(&format!("cell:{cell}"), &changes)?)).await?;
    Ok(Json(json!({ "published": published })))
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "wrong method for this endpoint",
    )
}

async fn stamp_time(mut response: Response) -> Response {
    if let Ok(v) = HeaderValue::from_str(&chrono::Utc::now().timestamp_millis().to_string()) {
        response.headers_mut().insert(SERVER_TIME_HEADER, v);
    }
    response
}

/// The HTTP application.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route(
            "/openapi.json",
            get(|| async {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    OPENAPI,
                )
            }),
        )
        .route("/v1/identity/nonce", post(registration_nonce))
        .route("/v1/devices", post(register).get(list_devices))
        .route("/v1/devices/{device_id}/revoke", post(revoke_device))
        .route("/v1/sync/push", post(push))
        .route("/v1/sync/pull", get(pull))
        .route("/v1/validators", post(transit::enrol))
        .route("/v1/transit/credentials", post(transit::issue_credential))
        .route("/v1/transit/feed", get(transit::validator_feed))
        .route("/v1/transit/taps", post(transit::upload_taps))
        .route("/v1/transit/inspections", post(transit::upload_inspections))
        .route("/v1/transit/charges", get(transit::charges))
        .route("/v1/transit/entries", get(transit::entry_feed))
        .route("/v1/admin/citizens/{citizen_id}/health", post(admin_health))
        .route(
            "/v1/admin/citizens/{citizen_id}/cell",
            post(admin_cell_member),
        )
        .route(
            "/v1/admin/cells/{cell}/{collection}",
            post(admin_cell_content),
        )
        .route("/v1/admin/transit/deny", post(transit::admin_deny))
        .route(
            "/v1/admin/transit/enrolments",
            post(transit::admin_create_enrolment),
        )
        .route(
            "/v1/admin/transit/validators",
            get(transit::admin_validators),
        )
        .route(
            "/v1/admin/transit/validators/{id}/decommission",
            post(transit::admin_decommission),
        )
        .route("/v1/admin/transit/fraud", get(transit::admin_fraud))
        .route(
            "/v1/admin/transit/journeys/settle",
            post(transit::admin_settle_journeys),
        )
        .route(
            "/v1/admin/transit/inspections",
            get(transit::admin_inspections),
        )
        .route(
            "/v1/admin/transit/issuer/rotate",
            post(transit::admin_rotate_issuer),
        )
        .route(
            "/v1/admin/citizens/{citizen_id}/dependants",
            post(transit::admin_add_dependant),
        )
        .route(
            "/v1/admin/citizens/{citizen_id}/dependants/{dependant_citizen_id}",
            axum::routing::delete(transit::admin_remove_dependant),
        )
        .route(
            "/v1/admin/citizens/{citizen_id}/entitlements",
            post(transit::admin_grant_entitlement).get(transit::admin_entitlements),
        )
        .route("/test/identity/token", post(test_identity_token))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(16 << 20))
        .layer(axum::middleware::map_response(stamp_time))
        // Citizens pay for mobile data: answers go gzip-compressed to clients that accept it
        // (the sync client does; its size limit counts the decompressed bytes).
        .layer(tower_http::compression::CompressionLayer::new())
        .with_state(state)
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
            if let Err(e) = transit::settle_now(&settler_state).await {
                eprintln!(
                    "warning: settling metro journeys failed: {}",
                    e.body.message
                );
            }
        }
    });
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app(state))
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
        settler.abort();
    });
    Ok(Running {
        addr,
        stop: Some(stop),
        task,
    })
}
