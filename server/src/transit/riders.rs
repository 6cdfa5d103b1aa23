//! The operator's rider records: the deny list, entitlements to reduced categories, and
//! guardians' dependants.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use thudo_core::crypto::p256;
use thudo_core::hex;
use thudo_core::sync::protocol::ErrorBody;
use thudo_core::sync::protocol::ServerErrorCode;
use thudo_core::transit::validator::DenyList;
use thudo_core::transit::Category;

use super::store::Entitlement;
use super::TransitState;
use crate::http::{blocking, valid_citizen_id, valid_id, ApiError, ApiResult, JsonBody};
use crate::operators::{Operator, Role};
use crate::storage::StorageError;

/// What the operator revokes: cards, phones' transit keys (SEC1 hex), or whole devices (every
/// transit key they bought credentials for).
/// At most 10,000 entries in all.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct DenyRequest {
    /// Card ids.
    #[serde(default)]
    #[schema(max_items = 10000)]
    cards: Vec<u64>,
    /// Phones' transit keys: SEC1 P-256 points, hex.
    #[serde(default)]
    #[schema(max_items = 10000, inline, value_type = Vec<P256Hex>)]
    device_keys: Vec<String>,
    /// Device ids: every transit key they bought credentials for.
    #[serde(default)]
    #[schema(max_items = 10000, inline, value_type = Vec<DeviceIdText>)]
    devices: Vec<String>,
}

/// A device id: 1 to 64 characters, none a control character.
#[derive(utoipa::ToSchema)]
#[schema(pattern = r"^[^\u0000-\u001f\u007f-\u009f]{1,64}$")]
#[allow(dead_code)]
struct DeviceIdText(String);

/// A SEC1 P-256 point, hex (compressed or not).
#[derive(utoipa::ToSchema)]
#[schema(pattern = "^(0[23][0-9a-fA-F]{64}|04[0-9a-fA-F]{128})$")]
#[allow(dead_code)]
struct P256Hex(String);

/// The deny list's new version.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct DenyListVersion {
    /// Validators holding an older one fetch it.
    version: u32,
}

/// Done (doing it again changes nothing).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Granted {
    /// Always true.
    granted: bool,
}

/// A guardianship recorded or ended, with the registry's reference.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Guardianship {
    /// Recorded (absent when ended).
    #[serde(skip_serializing_if = "Option::is_none")]
    recorded: Option<bool>,
    /// Ended (absent when recorded).
    #[serde(skip_serializing_if = "Option::is_none")]
    removed: Option<bool>,
    /// The registry's reference, as kept in the audit trail.
    evidence_ref: String,
}

/// `POST /v1/admin/transit/deny`: returns the new deny-list version.
#[utoipa::path(
    post,
    path = "/v1/admin/transit/deny",
    summary = "Revoke cards, phones' transit keys or whole devices (a new, higher deny-list version)",
    request_body(content = DenyRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The new version", body = DenyListVersion),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
        (status = 413, description = "More than 100 entries that would take the list past 200,000 (too_large): more than every validator's feed can carry", body = ErrorBody),
    ),
    security(("operator" = [])),
)]
pub(crate) async fn admin_deny(
    State(state): State<TransitState>,
    operator: Operator,
    JsonBody(body): JsonBody<DenyRequest>,
) -> ApiResult<DenyListVersion> {
    operator.require(&[Role::TransitOperator])?;
    if body.cards.len() + body.device_keys.len() + body.devices.len() > 10_000 {
        return Err(ApiError::bad("at most 10,000 entries per request"));
    }
    let mut hashes = Vec::new();
    for k in &body.device_keys {
        let compressed = hex::decode(k)
            .filter(|k| k.len() <= 65)
            .and_then(|k| p256::decompress(&k))
            .and_then(|k| p256::compress(&k))
            .ok_or_else(|| ApiError::bad(format!("device key {k} is not a P-256 point")))?;
        hashes.push(DenyList::device_hash(&compressed));
    }
    if !body.devices.iter().all(|d| valid_id(d, 64)) {
        return Err(ApiError::bad(
            "a device id is 1 to 64 characters, none a control character",
        ));
    }
    let storage = state.storage.clone();
    let version = blocking(move || {
        for d in &body.devices {
            hashes.extend(storage.device_keys(d)?);
        }
        match storage.deny(&body.cards, &hashes, chrono::Utc::now().timestamp()) {
            // The list would outgrow what every validator's feed can carry.
            Err(StorageError::ValueRefused(why)) => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ServerErrorCode::TooLarge,
                why,
            )),
            other => Ok(other?),
        }
    })
    .await?;
    Ok(Json(DenyListVersion { version }))
}

/// `POST /v1/admin/citizens/{citizen_id}/entitlements`: grants a reduced or free category.
#[utoipa::path(
    post,
    path = "/v1/admin/citizens/{citizen_id}/entitlements",
    summary = "Grant a reduced or free passenger category",
    params(
        ("citizen_id" = String, Path, pattern = "^[0-9]{12}$"),
    ),
    request_body(content = Entitlement, content_type = "application/json"),
    responses(
        (status = 200, description = "OK", body = Granted),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
    ),
    security(("operator" = [])),
)]
pub(crate) async fn admin_grant_entitlement(
    State(state): State<TransitState>,
    operator: Operator,
    Path(citizen_id): Path<String>,
    JsonBody(e): JsonBody<Entitlement>,
) -> ApiResult<Granted> {
    operator.require(&[Role::TransitOperator])?;
    valid_citizen_id(&citizen_id)?;
    let citizen = state.secrets.citizen(&citizen_id);
    if e.category == Category::Standard {
        return Err(ApiError::bad("the standard category needs no entitlement"));
    }
    if e.valid_until <= e.valid_from {
        return Err(ApiError::bad("valid_until must be after valid_from"));
    }
    if !crate::http::valid_text(&e.evidence_ref, 200) {
        return Err(ApiError::bad(
            "evidence_ref must be 1 to 200 characters, not blank, no control character",
        ));
    }
    let storage = state.storage.clone();
    blocking(move || Ok(storage.grant_entitlement(&citizen, &e)?)).await?;
    Ok(Json(Granted { granted: true }))
}

/// The registry's reference for a guardianship's end.
#[derive(Debug, Deserialize)]
pub(crate) struct EvidenceQuery {
    #[serde(default)]
    evidence_ref: String,
}

/// An evidence reference: 1 to 200 bytes, no control characters.
fn valid_evidence(evidence_ref: &str) -> Result<String, ApiError> {
    let evidence_ref = evidence_ref.trim();
    if !crate::http::valid_text(evidence_ref, 200) {
        return Err(ApiError::bad(
            "evidence_ref must be 1 to 200 characters, not blank, no control character",
        ));
    }
    Ok(evidence_ref.to_owned())
}

/// A dependant to record for a guardian.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct DependantRequest {
    /// The dependant's citizen ID.
    #[schema(pattern = "^[0-9]{12}$")]
    dependant_citizen_id: String,
    /// The registry's reference for the guardianship (a household book entry, a court
    /// decision): kept in the audit trail.
    #[schema(
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    evidence_ref: String,
    /// The dependant may ride on the guardian's phone without the guardian (an older child
    /// going to school): their rides alone are not `dependant_alone` records.
    #[serde(default)]
    travels_alone: bool,
}

/// `POST /v1/admin/citizens/{citizen_id}/dependants`: the operator records (from the household
/// registry) that this citizen is the guardian of a child or an elderly parent: the guardian's
/// phones may buy and hold the dependant's passes and see their trips.
#[utoipa::path(
    post,
    path = "/v1/admin/citizens/{citizen_id}/dependants",
    summary = "Records (from the household registry) that this citizen is the guardian of a child or an elderly parent: the guardian's phones may buy and hold the dependant's passes (their own card, their entitlements) and see their trips and caps",
    params(
        ("citizen_id" = String, Path, pattern = "^[0-9]{12}$"),
    ),
    request_body(content = DependantRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Recorded (recording it again changes nothing)", body = Guardianship),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
    ),
    security(("operator" = [])),
)]
pub(crate) async fn admin_add_dependant(
    State(state): State<TransitState>,
    operator: Operator,
    Path(citizen_id): Path<String>,
    JsonBody(body): JsonBody<DependantRequest>,
) -> ApiResult<Guardianship> {
    operator.require(&[Role::CivilRegistry])?;
    valid_citizen_id(&citizen_id)?;
    valid_citizen_id(&body.dependant_citizen_id)?;
    if body.dependant_citizen_id == citizen_id {
        return Err(ApiError::bad("a citizen is not their own dependant"));
    }
    let evidence_ref = valid_evidence(&body.evidence_ref)?;
    let (guardian, dependant) = (
        state.secrets.citizen(&citizen_id),
        state.secrets.citizen(&body.dependant_citizen_id),
    );
    let storage = state.storage.clone();
    blocking(move || Ok(storage.add_dependant(&guardian, &dependant, body.travels_alone)?)).await?;
    Ok(Json(Guardianship {
        recorded: Some(true),
        removed: None,
        evidence_ref,
    }))
}

/// `DELETE /v1/admin/citizens/{citizen_id}/dependants/{dependant_citizen_id}`: the guardianship
/// ends (a child came of age, custody changed). The guardian buys no more of the dependant's
/// passes and receives no more of their trips; passes already bought stop at their credential's
/// end (at most 72 h), as they are not renewed.
#[utoipa::path(
    delete,
    path = "/v1/admin/citizens/{citizen_id}/dependants/{dependant_citizen_id}",
    summary = "Ends a guardianship: the guardian buys no more of the dependant's passes and receives no more of their trips; passes already bought end with their credential (at most 72 h)",
    params(
        ("citizen_id" = String, Path, pattern = "^[0-9]{12}$"),
        ("dependant_citizen_id" = String, Path, pattern = "^[0-9]{12}$"),
        ("evidence_ref" = String, Query, max_length = 200, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$", description = "The registry's reference for the guardianship's end"),
    ),
    responses(
        (status = 200, description = "Removed", body = Guardianship),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
        (status = 404, description = "No such resource", body = ErrorBody),
    ),
    security(("operator" = [])),
)]
pub(crate) async fn admin_remove_dependant(
    State(state): State<TransitState>,
    operator: Operator,
    Path((citizen_id, dependant)): Path<(String, String)>,
    Query(evidence): Query<EvidenceQuery>,
) -> ApiResult<Guardianship> {
    operator.require(&[Role::CivilRegistry])?;
    valid_citizen_id(&citizen_id)?;
    valid_citizen_id(&dependant)?;
    let evidence_ref = valid_evidence(&evidence.evidence_ref)?;
    let (guardian, dependant) = (
        state.secrets.citizen(&citizen_id),
        state.secrets.citizen(&dependant),
    );
    let storage = state.storage.clone();
    let removed = blocking(move || Ok(storage.remove_dependant(&guardian, &dependant)?)).await?;
    if !removed {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ServerErrorCode::NotFound,
            "no such guardianship",
        ));
    }
    Ok(Json(Guardianship {
        recorded: None,
        removed: Some(true),
        evidence_ref,
    }))
}

/// `GET /v1/admin/citizens/{citizen_id}/entitlements`.
#[utoipa::path(
    get,
    path = "/v1/admin/citizens/{citizen_id}/entitlements",
    summary = "A citizen's entitlements",
    params(
        ("citizen_id" = String, Path, pattern = "^[0-9]{12}$"),
    ),
    responses(
        (status = 200, description = "OK", body = [Entitlement]),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
    ),
    security(("operator" = [])),
)]
pub(crate) async fn admin_entitlements(
    State(state): State<TransitState>,
    operator: Operator,
    Path(citizen_id): Path<String>,
) -> ApiResult<Vec<Entitlement>> {
    operator.require(&[Role::TransitOperator, Role::Auditor])?;
    valid_citizen_id(&citizen_id)?;
    let citizen = state.secrets.citizen(&citizen_id);
    let storage = state.storage.clone();
    Ok(Json(
        blocking(move || Ok(storage.entitlements(&citizen)?)).await?,
    ))
}
