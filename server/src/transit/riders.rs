//! The operator's rider records: the deny list, entitlements to reduced categories, and
//! guardians' dependants.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use thudo_core::crypto::p256;
use thudo_core::hex;
use thudo_core::sync::protocol::ServerErrorCode;
use thudo_core::transit::validator::DenyList;
use thudo_core::transit::Category;

use super::store::Entitlement;
use super::TransitState;
use crate::http::{blocking, valid_citizen_id, ApiError, ApiResult, JsonBody};
use crate::operators::{Operator, Role};

/// What the operator revokes: cards, phones' transit keys (SEC1 hex), or whole devices (every
/// transit key they bought credentials for).
#[derive(Debug, Deserialize)]
pub(crate) struct DenyRequest {
    #[serde(default)]
    cards: Vec<u64>,
    #[serde(default)]
    device_keys: Vec<String>,
    #[serde(default)]
    devices: Vec<String>,
}

/// `POST /v1/admin/transit/deny`: returns the new deny-list version.
pub(crate) async fn admin_deny(
    State(state): State<TransitState>,
    operator: Operator,
    JsonBody(body): JsonBody<DenyRequest>,
) -> ApiResult<Value> {
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
    let storage = state.storage.clone();
    let version = blocking(move || {
        for d in &body.devices {
            hashes.extend(storage.device_keys(d)?);
        }
        Ok(storage.deny(&body.cards, &hashes, chrono::Utc::now().timestamp())?)
    })
    .await?;
    Ok(Json(json!({ "version": version })))
}

/// `POST /v1/admin/citizens/{citizen_id}/entitlements`: grants a reduced or free category.
pub(crate) async fn admin_grant_entitlement(
    State(state): State<TransitState>,
    operator: Operator,
    Path(citizen_id): Path<String>,
    JsonBody(e): JsonBody<Entitlement>,
) -> ApiResult<Value> {
    operator.require(&[Role::TransitOperator])?;
    valid_citizen_id(&citizen_id)?;
    let citizen = state.secrets.citizen(&citizen_id);
    if e.category == Category::Standard {
        return Err(ApiError::bad("the standard category needs no entitlement"));
    }
    if e.valid_until <= e.valid_from {
        return Err(ApiError::bad("valid_until must be after valid_from"));
    }
    if e.evidence_ref.trim().is_empty() || e.evidence_ref.len() > 200 {
        return Err(ApiError::bad("evidence_ref must be 1 to 200 bytes"));
    }
    let storage = state.storage.clone();
    blocking(move || Ok(storage.grant_entitlement(&citizen, &e)?)).await?;
    Ok(Json(json!({ "granted": true })))
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
    if evidence_ref.is_empty() || evidence_ref.len() > 200 || crate::http::has_control(evidence_ref)
    {
        return Err(ApiError::bad("evidence_ref must be 1 to 200 bytes"));
    }
    Ok(evidence_ref.to_owned())
}

/// A dependant to record for a guardian.
#[derive(Debug, Deserialize)]
pub(crate) struct DependantRequest {
    dependant_citizen_id: String,
    /// The registry's reference for the guardianship (a household book entry, a court
    /// decision): kept in the audit trail.
    evidence_ref: String,
    /// The dependant may ride on the guardian's phone without the guardian (an older child
    /// going to school): their rides alone are not `dependant_alone` records.
    #[serde(default)]
    travels_alone: bool,
}

/// `POST /v1/admin/citizens/{citizen_id}/dependants`: the operator records (from the household
/// registry) that this citizen is the guardian of a child or an elderly parent: the guardian's
/// phones may buy and hold the dependant's passes and see their trips.
pub(crate) async fn admin_add_dependant(
    State(state): State<TransitState>,
    operator: Operator,
    Path(citizen_id): Path<String>,
    JsonBody(body): JsonBody<DependantRequest>,
) -> ApiResult<Value> {
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
    Ok(Json(
        json!({ "recorded": true, "evidence_ref": evidence_ref }),
    ))
}

/// `DELETE /v1/admin/citizens/{citizen_id}/dependants/{dependant_citizen_id}`: the guardianship
/// ends (a child came of age, custody changed). The guardian buys no more of the dependant's
/// passes and receives no more of their trips; passes already bought stop at their credential's
/// end (at most 72 h), as they are not renewed.
pub(crate) async fn admin_remove_dependant(
    State(state): State<TransitState>,
    operator: Operator,
    Path((citizen_id, dependant)): Path<(String, String)>,
    Query(evidence): Query<EvidenceQuery>,
) -> ApiResult<Value> {
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
    Ok(Json(
        json!({ "removed": true, "evidence_ref": evidence_ref }),
    ))
}

/// `GET /v1/admin/citizens/{citizen_id}/entitlements`.
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
