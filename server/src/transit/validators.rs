//! Validators: enrolment with an operator's single-use code, the caller check every
//! validator route makes, the feed (issuer keys, the signed deny list, capped cards), and the
//! operator's view of them.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use thudo_core::hex;
use thudo_core::sync::protocol::ErrorBody;
use thudo_core::sync::protocol::ServerErrorCode;
use thudo_core::sync::protocol::{
    ValidatorEnrolmentRequest, ValidatorEnrolmentResponse, ValidatorTokenResponse,
};
use thudo_core::transit::backend::ValidatorFeed;
use thudo_core::transit::validator::DenyList;

use super::fares::parse_gate;
use super::issuer::{current_issuer, no_signing_key};
use super::store::{
    EnrolOutcome, NewEnrolment, ValidatorRecord, ValidatorStore, VALIDATOR_TOKEN_SECS,
};
use super::TransitState;
use crate::http::{bearer, blocking, random_token, valid_text, ApiError, ApiResult, JsonBody};
use crate::operators::{Operator, Role};
use crate::storage::sha256;

/// Longest an enrolment code may stay usable.
pub const MAX_ENROLMENT_TTL_SECS: i64 = 30 * 86_400;
/// Enrolment codes last this long unless the operator says otherwise.
pub const DEFAULT_ENROLMENT_TTL_SECS: i64 = 86_400;

/// The enrolled, active validator presenting the request's token. A citizen's device token is
/// refused (403): only enrolled validators read the feed and upload taps.
pub(super) async fn validator_caller(
    state: &TransitState,
    headers: &HeaderMap,
) -> Result<ValidatorRecord, ApiError> {
    let unauthorized = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            ServerErrorCode::Unauthorized,
            "missing or unknown token",
        )
    };
    let token = bearer(headers).ok_or_else(unauthorized)?;
    let hash = sha256(token.as_bytes());
    let storage = state.storage.clone();
    let (validator, is_device) = blocking(move || {
        Ok(
            match storage.validator_by_token(&hash, chrono::Utc::now().timestamp())? {
                Some(v) => (Some(v), false),
                None => (None, storage.device_by_token(&hash)?.is_some()),
            },
        )
    })
    .await?;
    match validator {
        Some(v) if v.decommissioned_at.is_none() => Ok(v),
        Some(_) => Err(ApiError::forbidden(
            ServerErrorCode::Decommissioned,
            "this validator was decommissioned by the operator",
        )),
        None if is_device => Err(ApiError::forbidden(
            ServerErrorCode::ValidatorsOnly,
            "only enrolled validators read the feed and upload taps",
        )),
        None => Err(unauthorized()),
    }
}

/// `POST /v1/validators`: a validator enrols with an operator's single-use code.
#[utoipa::path(
    post,
    path = "/v1/validators",
    summary = "Enrol a validator with an operator's single-use code",
    request_body(content = ValidatorEnrolmentRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "OK", body = ValidatorEnrolmentResponse),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
    ),
)]
pub(crate) async fn enrol(
    State(state): State<TransitState>,
    JsonBody(req): JsonBody<ValidatorEnrolmentRequest>,
) -> ApiResult<ValidatorEnrolmentResponse> {
    if !valid_text(&req.device_name, 100) {
        return Err(ApiError::bad(
            "device_name must be 1 to 100 characters, not blank, no control character",
        ));
    }
    if req.enrolment_code.is_empty() || req.enrolment_code.len() > 128 {
        return Err(ApiError::forbidden(
            ServerErrorCode::EnrolmentUnknown,
            "no such enrolment code",
        ));
    }
    let token = random_token()?;
    let (code_hash, token_hash) = (
        sha256(req.enrolment_code.as_bytes()),
        sha256(token.as_bytes()),
    );
    let storage = state.storage.clone();
    let name = req.device_name.trim().to_owned();
    let now = chrono::Utc::now().timestamp();
    let outcome =
        blocking(move || Ok(storage.enrol_validator(&code_hash, &name, &token_hash, now)?)).await?;
    match outcome {
        EnrolOutcome::Enrolled(v) => Ok(Json(ValidatorEnrolmentResponse {
            validator_id: v.id,
            token,
            label: v.label,
            route: v.route,
            gate: v.gate,
            inspector: v.inspector,
            token_expires_at: Some((now + VALIDATOR_TOKEN_SECS).max(0) as u64),
        })),
        EnrolOutcome::Unknown => Err(ApiError::forbidden(
            ServerErrorCode::EnrolmentUnknown,
            "no such enrolment code",
        )),
        EnrolOutcome::Used => Err(ApiError::forbidden(
            ServerErrorCode::EnrolmentUsed,
            "this enrolment code was used already; ask the operator for a new one",
        )),
        EnrolOutcome::Expired => Err(ApiError::forbidden(
            ServerErrorCode::EnrolmentExpired,
            "this enrolment code expired; ask the operator for a new one",
        )),
    }
}

/// `POST /v1/transit/validators/token`: an enrolled validator exchanges its token for a new
/// one, valid [`VALIDATOR_TOKEN_SECS`]; the one presented stays honoured a while (see
/// [`ValidatorStore::renew_validator_token`]). A stolen validator token thus lapses on its own.
#[utoipa::path(
    post,
    path = "/v1/transit/validators/token",
    summary = "An enrolled validator exchanges its token for a new one valid 30 days; the one presented stays honoured 7 days (a lost answer is no lock-out). Validators renew within a week of the end, at their feed fetch.",
    responses(
        (status = 200, description = "OK", body = ValidatorTokenResponse),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
    ),
    security(("validator" = [])),
)]
pub(crate) async fn renew_token(
    State(state): State<TransitState>,
    headers: HeaderMap,
) -> ApiResult<ValidatorTokenResponse> {
    validator_caller(&state, &headers).await?;
    let presented = sha256(bearer(&headers).unwrap_or_default().as_bytes());
    let token = random_token()?;
    let new = sha256(token.as_bytes());
    let now = chrono::Utc::now().timestamp();
    let expires_at = now + VALIDATOR_TOKEN_SECS;
    let storage = state.storage.clone();
    let renewed =
        blocking(move || Ok(storage.renew_validator_token(&presented, &new, expires_at, now)?))
            .await?;
    if !renewed {
        return Err(ApiError::unauthorized("missing or unknown token"));
    }
    Ok(Json(ValidatorTokenResponse {
        token,
        expires_at: expires_at.max(0) as u64,
    }))
}

/// `GET /v1/transit/feed`: issuer keys and the signed deny list, for enrolled validators.
#[utoipa::path(
    get,
    path = "/v1/transit/feed",
    summary = "Issuer keys and the signed deny list, for offline validators",
    responses(
        (status = 200, description = "OK", body = ValidatorFeed),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
    ),
    security(("validator" = [])),
)]
pub(crate) async fn validator_feed(
    State(state): State<TransitState>,
    headers: HeaderMap,
) -> ApiResult<ValidatorFeed> {
    validator_caller(&state, &headers).await?;
    let storage = state.storage.clone();
    let fares = state.fares.clone();
    let now = chrono::Utc::now().timestamp().max(0) as u64;
    let (today, _) = fares.local_day_and_month(now);
    let ((version, cards, devices), capped_cards) = blocking(move || {
        Ok((
            storage.deny_list(now as i64)?,
            storage.capped_cards(&today, fares.daily_cap_vnd)?,
        ))
    })
    .await?;
    // The end of today in Hanoi.
    let local = now as i64 + state.fares.utc_offset_secs;
    let capped_until =
        (local - local.rem_euclid(86_400) + 86_400 - state.fares.utc_offset_secs) as u64;
    let list = DenyList {
        version,
        issued_at: chrono::Utc::now().timestamp() as u32,
        cards,
        devices,
    };
    let issuer = current_issuer(&state).await?;
    let ring = issuer.ring();
    let signed = ring
        .signing_key(list.issued_at)
        .ok_or_else(no_signing_key)?
        .sign_deny_list(&list)
        .map_err(|e| {
            eprintln!("deny list not signed: {e}");
            ApiError::unavailable(
                ServerErrorCode::Signing,
                "the deny list could not be signed; retry later",
            )
        })?;
    // Previous, current and next keys with their windows: a validator learns the next key
    // before the first credential it signs, and keeps the previous one while its credentials
    // are still out there.
    Ok(Json(ValidatorFeed {
        issuer_keys: ring.trusted_keys(list.issued_at),
        deny_list: hex::encode(&signed),
        capped_cards,
        capped_until,
    }))
}

/// An enrolment the operator creates for one device: a bus validator's, a metro gate's or an
/// inspector's.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(crate) enum EnrolmentOrder {
    /// A bus validator, bound to its route.
    Bus(BusEnrolment),
    /// A metro gate, bound to its station and direction.
    Gate(GateEnrolment),
    /// An inspector's device.
    Inspector(InspectorEnrolment),
}

/// An inspector's device: it reads the feed and uploads inspections, and is refused when it
/// uploads taps (a QR it only checked is never charged as a ride).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct InspectorEnrolment {
    /// Its label ("inspector team 4"): 1 to 100 characters, not blank, no control character.
    #[schema(
        max_length = 100,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    label: String,
    /// Always `true`: this is an inspector's enrolment.
    #[schema(value_type = crate::schema::True)]
    inspector: bool,
    /// The bus route it inspects, when it works one line (its inspections are judged on it).
    #[serde(default)]
    #[schema(minimum = 1)]
    route: Option<u16>,
    /// No gate (absent or null).
    #[serde(default)]
    #[schema(value_type = crate::schema::Null, inline)]
    #[allow(dead_code)]
    gate: Option<()>,
    /// How long the code may be used, seconds (default a day).
    #[serde(default)]
    #[schema(minimum = 60, maximum = 2592000)]
    ttl_secs: Option<i64>,
}

/// What an enrolment binds its device to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    /// A bus validator on this route.
    Bus(u16),
    /// A metro gate: the fare table's station code and the direction, `201:entry`.
    Gate(String),
    /// An inspector's device, on this bus route when it works one line.
    Inspector(Option<u16>),
}

/// A bus validator's enrolment.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BusEnrolment {
    /// The validator's label ("bus 32 front door"): 1 to 100 characters, not blank, no control
    /// character.
    #[schema(
        max_length = 100,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    label: String,
    /// The bus route it serves.
    #[schema(minimum = 1)]
    route: u16,
    /// No gate (absent or null).
    #[serde(default)]
    #[schema(value_type = crate::schema::Null, inline)]
    #[allow(dead_code)]
    gate: Option<()>,
    /// How long the code may be used, seconds (default a day).
    #[serde(default)]
    #[schema(minimum = 60, maximum = 2592000)]
    ttl_secs: Option<i64>,
}

/// A metro gate's enrolment.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GateEnrolment {
    /// The gate's label ("Cát Linh gate 3"): 1 to 100 characters, not blank, no control
    /// character.
    #[schema(
        max_length = 100,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    label: String,
    /// The gate: the fare table's station code and the direction, `201:entry`.
    #[schema(pattern = "^[0-9]{1,4}:(entry|exit)$")]
    gate: String,
    /// No route (absent or null).
    #[serde(default)]
    #[schema(value_type = crate::schema::Null, inline)]
    #[allow(dead_code)]
    route: Option<()>,
    /// How long the code may be used, seconds (default a day).
    #[serde(default)]
    #[schema(minimum = 60, maximum = 2592000)]
    ttl_secs: Option<i64>,
}

/// A single-use enrolment code: shown once, stored hashed.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Enrolment {
    /// The code the validator enrols with.
    code: String,
    /// Its label.
    label: String,
    /// The route it binds, if a bus.
    route: Option<u16>,
    /// The gate it binds, if a metro gate.
    gate: Option<String>,
    /// Whether it enrols an inspector's device.
    inspector: bool,
    /// When the code expires (unix seconds).
    expires_at: i64,
}

/// A validator decommissioned.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Decommissioned {
    /// Always true (an unknown validator is a 404).
    decommissioned: bool,
}

/// `POST /v1/admin/transit/enrolments`: a single-use code for a bus, a metro gate or an
/// inspector's device.
#[utoipa::path(
    post,
    path = "/v1/admin/transit/enrolments",
    summary = "Create a single-use enrolment code for a bus validator, a metro gate or an inspector's device",
    request_body(content = EnrolmentOrder, content_type = "application/json"),
    responses(
        (status = 200, description = "OK", body = Enrolment),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
    ),
    security(("operator" = [])),
)]
pub(crate) async fn admin_create_enrolment(
    State(state): State<TransitState>,
    operator: Operator,
    JsonBody(order): JsonBody<EnrolmentOrder>,
) -> ApiResult<Enrolment> {
    operator.require(&[Role::TransitOperator])?;
    let storage = state.storage.clone();
    let (label, binding, ttl) = match order {
        EnrolmentOrder::Bus(b) => (b.label, Binding::Bus(b.route), b.ttl_secs),
        EnrolmentOrder::Gate(g) => (g.label, Binding::Gate(g.gate), g.ttl_secs),
        EnrolmentOrder::Inspector(i) if i.inspector => {
            (i.label, Binding::Inspector(i.route), i.ttl_secs)
        }
        EnrolmentOrder::Inspector(_) => {
            return Err(ApiError::bad("inspector must be true"));
        }
    };
    let ttl = ttl.unwrap_or(DEFAULT_ENROLMENT_TTL_SECS);
    let (bound, named) = (binding.clone(), label.clone());
    let (code, expires_at) =
        blocking(move || create_enrolment(storage.as_ref(), &named, bound, ttl)).await?;
    let (route, gate, inspector) = match binding {
        Binding::Bus(route) => (Some(route), None, false),
        Binding::Gate(gate) => (None, Some(gate.trim().to_owned()), false),
        Binding::Inspector(route) => (route, None, true),
    };
    Ok(Json(Enrolment {
        code,
        label: label.trim().to_owned(),
        route,
        gate,
        inspector,
        expires_at,
    }))
}

/// Creates a single-use enrolment code for the device `binding` says, usable for `ttl_secs`;
/// returns the code (shown once, stored hashed) and its expiry. What the operator's console
/// calls; `thudo demo` and test servers call it directly.
pub fn create_enrolment(
    storage: &dyn ValidatorStore,
    label: &str,
    binding: Binding,
    ttl_secs: i64,
) -> Result<(String, i64), ApiError> {
    let label = label.trim().to_owned();
    if !valid_text(&label, 100) {
        return Err(ApiError::bad(
            "label must be 1 to 100 characters, not blank, no control character",
        ));
    }
    let (route, gate, inspector) = match binding {
        Binding::Bus(0) | Binding::Inspector(Some(0)) => {
            return Err(ApiError::bad("route must be 1 or more"))
        }
        Binding::Bus(route) => (Some(route), None, false),
        Binding::Inspector(route) => (route, None, true),
        Binding::Gate(gate) => match parse_gate(gate.trim()) {
            Some(_) => (None, Some(gate.trim().to_owned()), false),
            None => return Err(ApiError::bad(
                "a gate is bound as STATION:entry or STATION:exit (the fare table's station code)",
            )),
        },
    };
    if !(60..=MAX_ENROLMENT_TTL_SECS).contains(&ttl_secs) {
        return Err(ApiError::bad("ttl_secs must be 60 s to 30 days"));
    }
    let code = random_token()?;
    let expires_at = chrono::Utc::now().timestamp() + ttl_secs;
    storage.create_enrolment(&NewEnrolment {
        code_hash: sha256(code.as_bytes()),
        label,
        route,
        gate,
        inspector,
        expires_at,
    })?;
    Ok((code, expires_at))
}

/// `GET /v1/admin/transit/validators`.
#[utoipa::path(
    get,
    path = "/v1/admin/transit/validators",
    summary = "Every enrolled validator",
    responses(
        (status = 200, description = "OK", body = [ValidatorRecord]),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
    ),
    security(("operator" = [])),
)]
pub(crate) async fn admin_validators(
    State(state): State<TransitState>,
    operator: Operator,
) -> ApiResult<Vec<ValidatorRecord>> {
    operator.require(&[Role::TransitOperator, Role::Auditor])?;
    let storage = state.storage.clone();
    Ok(Json(blocking(move || Ok(storage.validators()?)).await?))
}

/// `POST /v1/admin/transit/validators/{id}/decommission`: its token stops working at once.
#[utoipa::path(
    post,
    path = "/v1/admin/transit/validators/{id}/decommission",
    summary = "Decommission a validator: its token stops working at once",
    params(
        ("id" = String, Path, pattern = r"^[^\u0000-\u001f\u007f-\u009f]{1,128}$"),
    ),
    responses(
        (status = 200, description = "OK", body = Decommissioned),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
        (status = 404, description = "No such resource", body = ErrorBody),
    ),
    security(("operator" = [])),
)]
pub(crate) async fn admin_decommission(
    State(state): State<TransitState>,
    operator: Operator,
    Path(id): Path<String>,
) -> ApiResult<Decommissioned> {
    operator.require(&[Role::TransitOperator])?;
    let storage = state.storage.clone();
    let now = chrono::Utc::now().timestamp();
    let found = blocking(move || Ok(storage.decommission_validator(&id, now)?)).await?;
    if !found {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ServerErrorCode::NotFound,
            "no such validator",
        ));
    }
    Ok(Json(Decommissioned {
        decommissioned: true,
    }))
}
