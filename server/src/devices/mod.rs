//! Devices and identity: a citizen's phone registers with an OpenID Connect ID token and a
//! single-use nonce ([`identity`]), receives a token, lists and revokes the account's devices.
//! Every other concern authenticates a citizen's device here ([`authenticate`]).

pub mod identity;
pub mod store;

use std::sync::Arc;
use thudo_core::sync::protocol::ErrorBody;
use thudo_core::sync::protocol::ServerErrorCode;
use utoipa_axum::{router::OpenApiRouter, routes};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use thudo_core::hex;
use thudo_core::sync::protocol::{DeviceInfo, NonceResponse, RegisterRequest, RegisterResponse};

use crate::http::{bearer, blocking, valid_citizen_id, valid_text, ApiError, ApiResult, JsonBody};
use crate::operators::{Operator, Role};
use crate::secrets::CitizenKey;
use crate::storage::sha256;
use store::{Device, DeviceStore, RevocationHook};

/// What the devices routes need.
#[derive(Clone)]
pub struct DevicesState {
    /// Accounts and devices.
    pub storage: Arc<dyn DeviceStore>,
    /// The identity provider whose ID tokens register devices.
    pub identity: Arc<identity::IdentityConfig>,
    /// A local provider minting test tokens (tests and demos only).
    pub test_identity: Option<Arc<identity::LocalIdentityProvider>>,
    /// What a revocation also does (transit denies the device's keys and returns the passes
    /// it can no longer collect).
    pub on_revoke: Arc<RevocationHook>,
    /// The keys citizen IDs are looked up under.
    pub secrets: Arc<crate::secrets::ServerSecrets>,
}

/// The routes: `/v1/identity/nonce`, `/v1/devices`, `/v1/devices/{id}/revoke`, and
/// `/test/identity/token` when a local test provider is configured.
pub fn routes() -> OpenApiRouter<DevicesState> {
    OpenApiRouter::new()
        .routes(routes!(registration_nonce))
        .routes(routes!(register, list_devices))
        .routes(routes!(revoke_device))
        .routes(routes!(support_revokes_device))
        .routes(routes!(test_identity_token))
        .routes(routes!(test_operator_token))
}

/// The citizen's device presenting the request's bearer token (401 otherwise).
pub async fn authenticate(
    storage: &Arc<dyn DeviceStore>,
    headers: &HeaderMap,
) -> Result<Device, ApiError> {
    let unauthorized = || ApiError::unauthorized("missing or unknown token");
    let token = bearer(headers).ok_or_else(unauthorized)?;
    let hash = sha256(token.as_bytes());
    let storage = storage.clone();
    blocking(move || Ok(storage.device_by_token(&hash)?))
        .await?
        .ok_or_else(unauthorized)
}

#[utoipa::path(
    post,
    path = "/v1/identity/nonce",
    summary = "A single-use nonce (10 minutes) for the identity provider's sign-in",
    responses(
        (status = 200, description = "OK", body = NonceResponse),
    ),
)]
async fn registration_nonce(State(state): State<DevicesState>) -> ApiResult<NonceResponse> {
    // Signed, not stored: an anonymous caller asking for nonces costs no database write.
    let expires_at = chrono::Utc::now().timestamp() + identity::NONCE_TTL_SECS;
    let nonce = state
        .secrets
        .registration_nonce(expires_at)
        .ok_or_else(|| ApiError::unavailable(ServerErrorCode::Internal, "no randomness"))?;
    Ok(Json(NonceResponse { nonce, expires_at }))
}

/// Verifies a sign-in: an ID token of the configured provider carrying a nonce this backend
/// issued, which it spends (one token, one use); with `fresh`, the citizen must also have
/// authenticated just now ([`identity::Assertion::is_fresh`]). The citizen it proves, keyed.
async fn prove_identity(
    state: &DevicesState,
    id_token: &str,
    fresh: bool,
) -> Result<CitizenKey, ApiError> {
    let refused =
        |e: identity::IdentityError| ApiError::new(StatusCode::FORBIDDEN, e.code(), e.to_string());
    let assertion = identity::verify(&state.identity, id_token)
        .await
        .map_err(refused)?;
    if fresh && !assertion.is_fresh(chrono::Utc::now().timestamp()) {
        return Err(refused(identity::IdentityError::NotFresh));
    }
    let Some(expires_at) = state.secrets.nonce_expiry(&assertion.nonce) else {
        return Err(refused(identity::IdentityError::NonceUnknown));
    };
    let now = chrono::Utc::now().timestamp();
    if now > expires_at {
        return Err(refused(identity::IdentityError::NonceExpired));
    }
    let storage = state.storage.clone();
    let nonce_hash = sha256(assertion.nonce.as_bytes());
    let spent = blocking(move || Ok(storage.spend_nonce(&nonce_hash, expires_at, now)?)).await?;
    if !spent {
        return Err(refused(identity::IdentityError::NonceUsed));
    }
    Ok(state.secrets.citizen(&assertion.citizen_id))
}

#[utoipa::path(
    post,
    path = "/v1/devices",
    summary = "Register a device of a citizen; returns its bearer token (shown once). Takes a fresh sign-in: an ID token for a nonce from POST /v1/identity/nonce whose citizen authenticated within 5 minutes (auth_time; 403 sign_in_not_fresh otherwise).",
    request_body(content = RegisterRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "OK", body = RegisterResponse),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
    ),
)]
async fn register(
    State(state): State<DevicesState>,
    JsonBody(req): JsonBody<RegisterRequest>,
) -> ApiResult<RegisterResponse> {
    if !valid_text(&req.device_name, 100) {
        return Err(ApiError::bad(
            "device_name must be 1 to 100 characters, not blank, no control character",
        ));
    }
    if req.role == "validator" {
        // A validator is not a citizen's device: it enrols with an operator's code.
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ServerErrorCode::EnrolmentRequired,
            "validators enrol with an operator's enrolment code (POST /v1/validators)",
        ));
    }
    if req.role != "phone" {
        return Err(ApiError::bad("role must be phone"));
    }
    if req.account_id.as_ref().is_some_and(|a| {
        a.is_empty() || a.len() > 64 || !a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    }) {
        return Err(ApiError::bad(
            "account_id must be 1 to 64 letters, digits or '-'",
        ));
    }
    // The nonce is spent first: an ID token registers one device, once. Fresh, as for a
    // revocation: the provider's session kept on an unlocked phone must not add a thief's
    // device, which would pull the citizen's records.
    let citizen = prove_identity(&state, &req.id_token, true).await?;
    let mut raw = [0u8; 32];
    thudo_core::crypto::fill_random(&mut raw)
        .map_err(|_| ApiError::unavailable(ServerErrorCode::Internal, "no randomness"))?;
    let token = hex::encode(&raw);
    let hash = sha256(token.as_bytes());
    let storage = state.storage.clone();
    let registered = blocking(move || {
        Ok(storage.register_device(
            &citizen,
            req.device_name.trim(),
            "phone",
            &hash,
            req.account_id.as_deref(),
        )?)
    })
    .await?;
    // A vault of one citizen signed in as another: refused before any device is made.
    let Some((device_id, account_id)) = registered else {
        return Err(ApiError::forbidden(
            ServerErrorCode::IdentityMismatch,
            "the sign-in is another citizen's, not the account this device's data belongs to",
        ));
    };
    Ok(Json(RegisterResponse {
        device_id,
        account_id,
        token,
    }))
}

#[utoipa::path(
    get,
    path = "/v1/devices",
    summary = "The citizen's active devices (the caller marked current)",
    responses(
        (status = 200, description = "OK", body = [DeviceInfo]),
    ),
    security(("device" = [])),
)]
async fn list_devices(
    State(state): State<DevicesState>,
    headers: HeaderMap,
) -> ApiResult<Vec<DeviceInfo>> {
    let me = authenticate(&state.storage, &headers).await?;
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

/// What revoking a device takes: a fresh sign-in of the account's citizen.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct RevokeRequest {
    /// An ID token for a nonce from `POST /v1/identity/nonce` (at most 16 KiB; 16,000
    /// characters fit the route's 64 KiB body however encoded).
    #[schema(max_length = 16000)]
    id_token: String,
}

/// A device revoked.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct Revoked {
    /// Always true (a device that is not there is a 404).
    revoked: bool,
    /// How many of its transit keys went on the deny list.
    transit_keys_denied: u64,
}

/// Revokes one of the caller's account's devices: its token stops working at once, and every
/// transit key it bought credentials for goes on the deny list (a stolen phone rides no more).
/// A session alone is not enough (a thief holding an unlocked phone has one): the citizen signs
/// in again at the identity provider, with a nonce from this backend.
#[utoipa::path(
    post,
    path = "/v1/devices/{device_id}/revoke",
    summary = "Revokes one of the account's devices (its token stops, its transit keys are denied, the other devices get a device_revoked notice). Takes a fresh sign-in: an ID token for a nonce from POST /v1/identity/nonce, of the account's citizen, who authenticated within 5 minutes (auth_time; 403 identity_invalid, nonce_used, identity_mismatch, sign_in_not_fresh otherwise).",
    params(
        ("device_id" = String, Path, pattern = r"^[^\u0000-\u001f\u007f-\u009f]{1,64}$"),
    ),
    request_body(content = RevokeRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "OK", body = Revoked),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
        (status = 404, description = "No such resource", body = ErrorBody),
    ),
    security(("device" = [])),
)]
async fn revoke_device(
    State(state): State<DevicesState>,
    headers: HeaderMap,
    Path(device_id): Path<String>,
    JsonBody(req): JsonBody<RevokeRequest>,
) -> ApiResult<Revoked> {
    let me = authenticate(&state.storage, &headers).await?;
    let citizen = prove_identity(&state, &req.id_token, true).await?;
    let (storage, account) = (state.storage.clone(), me.account_id.clone());
    // Read only: a sign-in as a citizen with no account creates none here.
    let same = blocking(move || {
        Ok(storage.member(&citizen)?.map(|(id, _)| id).as_deref() == Some(account.as_str()))
    })
    .await?;
    if !same {
        return Err(ApiError::forbidden(
            ServerErrorCode::IdentityMismatch,
            "the sign-in is another citizen's, not this account's",
        ));
    }
    let (storage, also) = (state.storage.clone(), state.on_revoke.clone());
    let now = chrono::Utc::now().timestamp();
    let revoked =
        blocking(move || Ok(storage.revoke_device(&me.account_id, &device_id, now, &*also)?))
            .await?;
    match revoked {
        Some(keys) => Ok(Json(Revoked {
            revoked: true,
            transit_keys_denied: keys as u64,
        })),
        None => Err(ApiError::not_found("no such device on this account")),
    }
}

/// `POST /v1/admin/devices/{device_id}/revoke` (account support, at a citizen's request made
/// in person or through the identity provider): ends a lost or stolen phone's session at once,
/// as the citizen could from another of their devices: its token stops working and its transit
/// keys are denied.
#[utoipa::path(
    post,
    path = "/v1/admin/devices/{device_id}/revoke",
    summary = "Account support: ends a lost or stolen phone's session at once (its token stops working, its transit keys are denied)",
    params(
        ("device_id" = String, Path, pattern = r"^[^\u0000-\u001f\u007f-\u009f]{1,64}$"),
    ),
    responses(
        (status = 200, description = "OK", body = Revoked),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
        (status = 404, description = "No such resource", body = ErrorBody),
    ),
    security(("operator" = [])),
)]
async fn support_revokes_device(
    State(state): State<DevicesState>,
    operator: Operator,
    Path(device_id): Path<String>,
) -> ApiResult<Revoked> {
    operator.require(&[Role::AccountSupport])?;
    if device_id.is_empty() || device_id.chars().count() > 64 {
        return Err(ApiError::bad("device_id must be 1 to 64 characters"));
    }
    let (storage, also) = (state.storage.clone(), state.on_revoke.clone());
    let now = chrono::Utc::now().timestamp();
    let revoked = blocking(move || {
        let Some(account) = storage.account_of_device(&device_id)? else {
            return Ok(None);
        };
        Ok(storage.revoke_device(&account, &device_id, now, &*also)?)
    })
    .await?;
    match revoked {
        Some(keys) => Ok(Json(Revoked {
            revoked: true,
            transit_keys_denied: keys as u64,
        })),
        None => Err(ApiError::not_found("no such device, or revoked already")),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct TestTokenRequest {
    /// The citizen signing in.
    #[schema(pattern = "^[0-9]{12}$")]
    citizen_id: String,
    /// A nonce from `POST /v1/identity/nonce`.
    #[schema(max_length = 128)]
    nonce: String,
}

/// A test provider's ID token.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct IdToken {
    /// Compact JWS (ES256).
    id_token: String,
}

/// `POST /test/identity/token` (only with a local test provider): an ID token for a citizen.
#[utoipa::path(
    post,
    path = "/test/identity/token",
    summary = "Only on servers started with a local test identity provider (tests, demos): an ID token for {citizen_id, nonce}. Absent (404) in production.",
    request_body(content = TestTokenRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "OK", body = IdToken),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 404, description = "No such resource", body = ErrorBody),
    ),
)]
async fn test_identity_token(
    State(state): State<DevicesState>,
    JsonBody(req): JsonBody<TestTokenRequest>,
) -> ApiResult<IdToken> {
    let idp = state
        .test_identity
        .clone()
        .ok_or_else(|| ApiError::not_found("no such endpoint"))?;
    valid_citizen_id(&req.citizen_id)?;
    let token = idp.id_token(&req.citizen_id, &req.nonce).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ServerErrorCode::Internal,
            e.to_string(),
        )
    })?;
    Ok(Json(IdToken { id_token: token }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct TestOperatorRequest {
    /// The operator's role.
    role: crate::operators::Role,
    /// Its organisation (a party organisation's governs its cells by prefix).
    #[schema(min_length = 1, max_length = 100)]
    organisation: String,
}

/// A test provider's operator access token.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct AccessToken {
    /// Compact JWS (ES256).
    access_token: String,
}

/// `POST /test/identity/operator-token` (only with a local test provider): an operator's
/// access token for a role and organisation.
#[utoipa::path(
    post,
    path = "/test/identity/operator-token",
    summary = "Only on servers started with a local test identity provider (tests, demos): an operator's access token for {role, organisation}. Absent (404) in production.",
    request_body(content = TestOperatorRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "OK", body = AccessToken),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 404, description = "No such resource", body = ErrorBody),
    ),
)]
async fn test_operator_token(
    State(state): State<DevicesState>,
    JsonBody(req): JsonBody<TestOperatorRequest>,
) -> ApiResult<AccessToken> {
    let idp = state
        .test_identity
        .clone()
        .ok_or_else(|| ApiError::not_found("no such endpoint"))?;
    let token = idp
        .operator_token(req.role, &req.organisation)
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ServerErrorCode::Internal,
                e.to_string(),
            )
        })?;
    Ok(Json(AccessToken {
        access_token: token,
    }))
}
