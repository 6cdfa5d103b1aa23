//! Credentials: issuing one for a pass (bound to the phone's transit key, proven by its
//! signature) within the limits, and, while the pass holds, renewing it, free. Passes are
//! sold in [`super::sales`].

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use thudo_core::crypto::p256;
use thudo_core::hex;
use thudo_core::sync::protocol::ErrorBody;
use thudo_core::sync::protocol::{ServerErrorCode, CREDENTIAL_FORMATS_HEADER};
use thudo_core::transit::backend::{CredentialResponse, RenewalRequest, ORDER_PROOF_WINDOW_SECS};
use thudo_core::transit::issuer::{CredentialRequest, TrustedIssuerKey};
use thudo_core::transit::validator::DenyList;
use thudo_core::transit::wire::{
    credential_message, CredentialFields, CREDENTIAL_BODY_LEN, CREDENTIAL_LEN,
};
use thudo_core::transit::Category;

use super::issuer::{current_issuer, no_signing_key};
use super::rules::renewal_refusal;
use super::store::{IssueOutcome, IssuedCredential, Pass};
use super::TransitState;
use crate::devices::authenticate;
use crate::devices::store::Device;
use crate::http::{blocking, ApiError, ApiResult, JsonBody};

pub(super) fn month_window(month: &str, utc_offset: i64) -> Option<(u32, u32)> {
    let first = chrono::NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").ok()?;
    let next = first.checked_add_months(chrono::Months::new(1))?;
    let start = first.and_hms_opt(0, 0, 0)?.and_utc().timestamp() - utc_offset;
    let end = next.and_hms_opt(0, 0, 0)?.and_utc().timestamp() - utc_offset - 1;
    Some((u32::try_from(start).ok()?, u32::try_from(end).ok()?))
}

/// The local day (Hanoi) holding unix time `now`: its first and last second.
pub(super) fn day_window(now: u32, utc_offset: i64) -> Option<(u32, u32)> {
    let local = i64::from(now) + utc_offset;
    let start = local - local.rem_euclid(86_400) - utc_offset;
    Some((
        u32::try_from(start).ok()?,
        u32::try_from(start + 86_399).ok()?,
    ))
}

/// Checks a request's proof that the caller holds `key`: its signature (`proof`, hex) over
/// `message`, made (`signed_at`) within [`ORDER_PROOF_WINDOW_SECS`] of `now`.
pub(super) fn check_signed(
    proof: &str,
    signed_at: u64,
    key: &[u8],
    message: &[u8],
    now: i64,
) -> Result<(), ApiError> {
    if proof.is_empty() {
        return Err(ApiError::forbidden(
            ServerErrorCode::ProofRequired,
            "the request carries the phone key's signature over it (proof)",
        ));
    }
    let fresh =
        (now - signed_at.min(i64::MAX as u64) as i64).unsigned_abs() <= ORDER_PROOF_WINDOW_SECS;
    if !fresh {
        return Err(ApiError::forbidden(
            ServerErrorCode::StaleProof,
            "the proof was signed too far from the backend's time",
        ));
    }
    match hex::decode(proof).filter(|s| s.len() == 64) {
        Some(sig) if p256::verify(key, message, &sig) => Ok(()),
        _ => Err(ApiError::forbidden(
            ServerErrorCode::BadProof,
            "the proof is not the key's signature over the request",
        )),
    }
}

/// The fields of a credential the issuer signed (any key of the keyring: renewing needs its
/// authenticity, not its window), or `None`.
fn verified_credential(
    bytes: &[u8],
    trusted: &std::collections::HashMap<u16, TrustedIssuerKey>,
) -> Option<CredentialFields> {
    if bytes.len() != CREDENTIAL_LEN {
        return None;
    }
    let (body, signature) = bytes.split_at(CREDENTIAL_BODY_LEN);
    let fields = CredentialFields::decode(body).ok()?;
    let key = trusted.get(&fields.issuer_key_id)?;
    p256::verify(&key.public_key, &credential_message(body), signature).then_some(fields)
}

/// Whether the calling app's phones install credential format version 2 (it says so in
/// [`CREDENTIAL_FORMATS_HEADER`]): older apps get a dependant's credential as version 1, which
/// their phones install, and the backend's `dependant_alone` records remain the check.
pub(super) fn installs_holder_format(headers: &HeaderMap) -> bool {
    headers
        .get(CREDENTIAL_FORMATS_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|f| f.trim() == "2"))
}

/// Refuses a credential the store did not record (it is then never handed out).
fn refuse_unless_recorded(outcome: IssueOutcome) -> Result<(), ApiError> {
    let (code, message) = match outcome {
        IssueOutcome::Recorded => return Ok(()),
        IssueOutcome::DeviceRevoked => (ServerErrorCode::DeviceRevoked, "this device was revoked"),
        IssueOutcome::KeyTaken => (
            ServerErrorCode::DeviceKeyTaken,
            "this transit key belongs to another account's phone",
        ),
        IssueOutcome::KeyDenied => (
            ServerErrorCode::DeviceKeyDenied,
            "this transit key is denied",
        ),
        IssueOutcome::CardDenied => (ServerErrorCode::CardDenied, "this card is denied"),
        IssueOutcome::TooManyKeys => (
            ServerErrorCode::TooManyKeys,
            "this device holds the most transit keys with live credentials a device may",
        ),
        IssueOutcome::TooManyOrders => {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ServerErrorCode::TooManyOrders,
                "too many credentials ordered in the last hour",
            )
            .retry_after(600))
        }
    };
    Err(ApiError::forbidden(code, message))
}

/// How long a credential for `category` may last from `now`: 72 h, and no longer than the
/// rider's entitlement to a category other than standard (403 `not_entitled` without one), so
/// an expired entitlement stops renewing.
pub(super) async fn lifetime(
    state: &TransitState,
    rider_account: &str,
    category: Category,
    now: u32,
) -> Result<u32, ApiError> {
    let lifetime_secs = thudo_core::transit::issuer::MAX_CREDENTIAL_LIFETIME_SECS;
    if category == Category::Standard {
        return Ok(lifetime_secs);
    }
    let storage = state.storage.clone();
    let account = rider_account.to_owned();
    let entitlement =
        blocking(move || Ok(storage.entitlement_at(&account, category, i64::from(now))?))
            .await?
            .ok_or_else(|| {
                ApiError::forbidden(
                    ServerErrorCode::NotEntitled,
                    &format!(
                        "the {} category needs an entitlement the operator holds for this citizen; none is in force",
                        category.label()
                    ),
                )
            })?;
    let left = entitlement.valid_until.saturating_sub(i64::from(now));
    Ok(lifetime_secs.min(u32::try_from(left).unwrap_or(u32::MAX).max(1)))
}

/// Signs the credential `request` asks for and records it (opening `new_pass` with it) within
/// the limits; returns it. A credential the store refuses is never handed out.
pub(super) async fn issue_and_record(
    state: &TransitState,
    device: &Device,
    request: &CredentialRequest,
    new_pass: Option<Pass>,
    now: u32,
) -> Result<Vec<u8>, ApiError> {
    let issuer = current_issuer(state).await?;
    let credential = {
        let ring = issuer.ring();
        ring.signing_key(now)
            .ok_or_else(no_signing_key)?
            .issue(request, now)
            .map_err(|e| ApiError::bad(e.to_string()))?
    };
    let compressed = p256::decompress(&request.device_public_key)
        .and_then(|k| p256::compress(&k))
        .ok_or_else(|| ApiError::bad("device_public_key is not a P-256 point"))?;
    // Which transit key this device holds and until when (revoking the device revokes the
    // key; the deny list keeps it while this credential lasts).
    let issued = IssuedCredential {
        key_hash: DenyList::device_hash(&compressed),
        card_id: request.card_id,
        product: request.product,
        pass_until: i64::from(request.pass_valid_until),
        not_after: i64::from(now.saturating_add(request.lifetime_secs)),
    };
    let storage = state.storage.clone();
    let holder = device.clone();
    let outcome = blocking(move || {
        Ok(storage.record_credential(&holder, &issued, new_pass.as_ref(), i64::from(now))?)
    })
    .await?;
    refuse_unless_recorded(outcome)?;
    Ok(credential.to_vec())
}

/// `POST /v1/transit/credentials/renew`: a fresh credential for a pass the phone holds, free,
/// while the pass holds. The phone presents its credential (expired or not: it is the issuer's
/// statement of the pass) and proves it still holds its key; the pass must have been sold, be
/// neither ended nor cancelled, be the caller's card or a dependant's, and its category's
/// entitlement must still be in force.
#[utoipa::path(
    post,
    path = "/v1/transit/credentials/renew",
    summary = "Renew, free, a credential of a pass the phone holds",
    request_body(content = RenewalRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "OK", body = CredentialResponse),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
        (status = 404, description = "No such resource", body = ErrorBody),
    ),
    security(("device" = [])),
)]
pub(crate) async fn renew_credential(
    State(state): State<TransitState>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<RenewalRequest>,
) -> ApiResult<CredentialResponse> {
    let device = authenticate(&state.devices(), &headers).await?;
    let now = chrono::Utc::now().timestamp();
    let issuer = current_issuer(&state).await?;
    let fields = hex::decode(&req.credential)
        .and_then(|bytes| verified_credential(&bytes, &issuer.trusted()))
        .ok_or_else(|| {
            ApiError::forbidden(
                ServerErrorCode::BadCredential,
                "the credential is not one the issuer signed",
            )
        })?;
    let key = p256::decompress(&fields.device_public_key).ok_or_else(|| {
        ApiError::forbidden(
            ServerErrorCode::BadCredential,
            "the credential's key is not a point",
        )
    })?;
    check_signed(&req.proof, req.signed_at, &key, &req.proof_message(), now)?;
    let storage = state.storage.clone();
    let (account, card) = (device.account_id.clone(), fields.card_id);
    let rider = blocking(move || Ok(storage.rider_of_card(&account, card)?))
        .await?
        .ok_or_else(|| {
            ApiError::forbidden(
                ServerErrorCode::NotGuardian,
                "this card is neither the account's nor a dependant's it holds",
            )
        })?;
    let terms = Pass {
        card_id: fields.card_id,
        product: fields.product,
        category: fields.category,
        route: fields.route,
        valid_from: i64::from(fields.pass_valid_from),
        valid_until: i64::from(fields.pass_valid_until),
    };
    let storage = state.storage.clone();
    let lookup = terms.clone();
    let pass = blocking(move || Ok(storage.pass_for(&lookup)?))
        .await?
        .ok_or_else(|| ApiError::not_found("no such pass was sold"))?;
    if let Some(refusal) = renewal_refusal(terms.valid_until, pass.cancelled_at, now) {
        return Err(ApiError::forbidden(refusal.code(), refusal.message()));
    }
    let now = now as u32;
    let request = CredentialRequest {
        card_id: fields.card_id,
        product: fields.product,
        category: fields.category,
        route: fields.route,
        pass_valid_from: fields.pass_valid_from,
        pass_valid_until: fields.pass_valid_until,
        device_public_key: key.to_vec(),
        lifetime_secs: lifetime(&state, &rider.account_id, fields.category, now).await?,
        // Renewed as the guardianship stands now (the operator may have recorded since that
        // the dependant travels alone, or withdrawn that), in a format the phone installs.
        with_holder: rider.with_holder && installs_holder_format(&headers),
    };
    let credential = issue_and_record(&state, &device, &request, None, now).await?;
    Ok(Json(CredentialResponse {
        credential: hex::encode(&credential),
        card_id: fields.card_id,
        price_vnd: 0,
        pass_valid_from: fields.pass_valid_from,
        pass_valid_until: fields.pass_valid_until,
        dependant: rider.account_id != device.account_id,
    }))
}
