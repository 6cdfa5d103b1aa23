//! Credential sales: a product for the caller's card (or a dependant's), in a category the
//! rider is entitled to, bound to the phone's transit key.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use thudo_core::crypto::p256;
use thudo_core::hex;
use thudo_core::sync::protocol::IDEMPOTENCY_KEY_HEADER;
use thudo_core::transit::backend::{CredentialOrder, CredentialResponse, ORDER_PROOF_WINDOW_SECS};
use thudo_core::transit::issuer::CredentialRequest;
use thudo_core::transit::validator::DenyList;
use thudo_core::transit::{Category, Product};

use super::issuer::{current_issuer, no_signing_key};
use super::store::{IssueOutcome, IssuedCredential};
use super::TransitState;
use crate::devices::authenticate;
use crate::http::{blocking, valid_citizen_id, ApiError, ApiResult, JsonBody};

fn month_window(month: &str, utc_offset: i64) -> Option<(u32, u32)> {
    let first = chrono::NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").ok()?;
    let next = first.checked_add_months(chrono::Months::new(1))?;
    let start = first.and_hms_opt(0, 0, 0)?.and_utc().timestamp() - utc_offset;
    let end = next.and_hms_opt(0, 0, 0)?.and_utc().timestamp() - utc_offset - 1;
    Some((u32::try_from(start).ok()?, u32::try_from(end).ok()?))
}

/// The local day (Hanoi) holding unix time `now`: its first and last second.
fn day_window(now: u32, utc_offset: i64) -> Option<(u32, u32)> {
    let local = i64::from(now) + utc_offset;
    let start = local - local.rem_euclid(86_400) - utc_offset;
    Some((
        u32::try_from(start).ok()?,
        u32::try_from(start + 86_399).ok()?,
    ))
}

/// `POST /v1/transit/credentials`: sells a product to the caller's card. A category other than
/// standard needs an entitlement in force now; the credential then lasts no longer than it.
pub(crate) async fn issue_credential(
    State(state): State<TransitState>,
    headers: HeaderMap,
    JsonBody(order): JsonBody<CredentialOrder>,
) -> ApiResult<CredentialResponse> {
    let device = authenticate(&state.devices(), &headers).await?;
    // A retried purchase (its first answer lost) gets the first answer again.
    let replay_key = match headers
        .get(IDEMPOTENCY_KEY_HEADER)
        .map(|v| v.to_str().unwrap_or(""))
    {
        None => None,
        Some(k)
            if (1..=64).contains(&k.len())
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
        {
            Some(format!("idem:credential:{}:{k}", device.id))
        }
        Some(_) => {
            return Err(ApiError::bad(
                "idempotency-key must be 1 to 64 letters, digits or '-'",
            ))
        }
    };
    if let Some(k) = replay_key.clone() {
        let storage = state.storage.clone();
        if let Some(stored) = blocking(move || Ok(storage.get_setting(&k)?)).await? {
            let earlier: CredentialResponse = serde_json::from_slice(&stored).map_err(|e| {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage", e.to_string())
            })?;
            return Ok(Json(earlier));
        }
    }
    let key = hex::decode(&order.device_public_key)
        .filter(|k| k.len() <= 65)
        .ok_or_else(|| ApiError::bad("device_public_key must be hex"))?;
    let uncompressed = p256::decompress(&key)
        .ok_or_else(|| ApiError::bad("device_public_key is not a P-256 point"))?;
    let compressed = p256::compress(&uncompressed)
        .ok_or_else(|| ApiError::bad("device_public_key is not a P-256 point"))?;
    check_proof(&order, &uncompressed, chrono::Utc::now().timestamp())?;
    // The rider: the buyer, or a dependant the operator recorded as theirs.
    let (rider_account, card_id) = match order.dependant.clone() {
        None => (device.account_id.clone(), device.card_id),
        Some(citizen) => {
            valid_citizen_id(&citizen)?;
            let storage = state.storage.clone();
            let guardian = device.account_id.clone();
            blocking(move || Ok(storage.dependant_of(&guardian, &citizen)?))
                .await?
                .ok_or_else(|| {
                    ApiError::forbidden(
                        "not_guardian",
                        "the operator holds no guardianship of this citizen for this account",
                    )
                })?
        }
    };
    let now = chrono::Utc::now().timestamp() as u32;
    let mut lifetime_secs = 72 * 3600;
    if order.category != Category::Standard {
        let storage = state.storage.clone();
        let (account, category) = (rider_account.clone(), order.category);
        let entitlement = blocking(move || {
            Ok(storage.entitlement_at(&account, category, i64::from(now))?)
        })
        .await?
        .ok_or_else(|| {
            ApiError::forbidden(
                "not_entitled",
                &format!(
                    "the {} category needs an entitlement the operator holds for this citizen; none is in force",
                    order.category.label()
                ),
            )
        })?;
        // The credential ends with the entitlement: an expired entitlement stops renewing.
        let left = entitlement.valid_until.saturating_sub(i64::from(now));
        lifetime_secs = lifetime_secs.min(u32::try_from(left).unwrap_or(u32::MAX).max(1));
    }
    let (from, until) = match order.product {
        Product::MonthlySingleRoute | Product::MonthlyAllRoutes => {
            month_window(&order.month, state.fares.utc_offset_secs)
                .ok_or_else(|| ApiError::bad("month must be YYYY-MM"))?
        }
        Product::PayAsYouGo | Product::FreePass => (now - 60, now + 365 * 86_400),
        Product::DayPass => day_window(now, state.fares.utc_offset_secs)
            .ok_or_else(|| ApiError::bad("no day pass can be sold at this time"))?,
    };
    let price = state
        .fares
        .price(order.product, order.category, order.route, now)
        .ok_or_else(|| ApiError::bad("this product is not sold to this category"))?;
    let request = CredentialRequest {
        card_id,
        product: order.product,
        category: order.category,
        route: order.route,
        pass_valid_from: from,
        pass_valid_until: until,
        device_public_key: key,
        lifetime_secs,
    };
    let issuer = current_issuer(&state).await?;
    let credential = {
        let ring = issuer.ring();
        ring.signing_key(now)
            .ok_or_else(no_signing_key)?
            .issue(&request, now)
            .map_err(|e| ApiError::bad(e.to_string()))?
    };
    // Remember which transit key this device holds and until when (revoking the device
    // revokes the key; the deny list keeps it while this credential lasts), within the limits.
    let issued = IssuedCredential {
        key_hash: DenyList::device_hash(&compressed),
        card_id,
        product: order.product,
        pass_until: i64::from(until),
        not_after: i64::from(now.saturating_add(lifetime_secs)),
    };
    let storage = state.storage.clone();
    let holder = device.clone();
    let outcome =
        blocking(move || Ok(storage.record_credential(&holder, &issued, i64::from(now))?)).await?;
    refuse_unless_recorded(outcome)?;
    let response = CredentialResponse {
        credential: hex::encode(&credential),
        card_id,
        price_vnd: price,
        pass_valid_from: from,
        pass_valid_until: until,
    };
    if let Some(k) = replay_key {
        // Two instances serving one purchase's retries at once: both answer with the first
        // answer stored (the other credential is never handed out).
        let storage = state.storage.clone();
        let body = serde_json::to_vec(&response).unwrap_or_default();
        let stored = blocking(move || Ok(storage.claim_setting(&k, &body)?)).await?;
        let first: CredentialResponse = serde_json::from_slice(&stored).map_err(|e| {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage", e.to_string())
        })?;
        return Ok(Json(first));
    }
    Ok(Json(response))
}

/// Checks the order's proof that the buyer holds the key it names: the key's signature over
/// the order, made within [`ORDER_PROOF_WINDOW_SECS`] of `now`.
fn check_proof(order: &CredentialOrder, key: &[u8], now: i64) -> Result<(), ApiError> {
    if order.proof.is_empty() {
        return Err(ApiError::forbidden(
            "proof_required",
            "an order carries the phone key's signature over it (proof)",
        ));
    }
    let fresh = (now - order.signed_at.min(i64::MAX as u64) as i64).unsigned_abs()
        <= ORDER_PROOF_WINDOW_SECS;
    if !fresh {
        return Err(ApiError::forbidden(
            "stale_proof",
            "the order's proof was signed too far from the backend's time",
        ));
    }
    let signature = hex::decode(&order.proof).filter(|s| s.len() == 64);
    match signature {
        Some(sig) if p256::verify(key, &order.proof_message(), &sig) => Ok(()),
        _ => Err(ApiError::forbidden(
            "bad_proof",
            "the order's proof is not the named key's signature over it",
        )),
    }
}

/// Refuses a credential the store did not record (it is then never handed out).
fn refuse_unless_recorded(outcome: IssueOutcome) -> Result<(), ApiError> {
    let (code, message) = match outcome {
        IssueOutcome::Recorded => return Ok(()),
        IssueOutcome::DeviceRevoked => ("device_revoked", "this device was revoked"),
        IssueOutcome::KeyTaken => (
            "device_key_taken",
            "this transit key belongs to another account's phone",
        ),
        IssueOutcome::KeyDenied => ("device_key_denied", "this transit key is denied"),
        IssueOutcome::CardDenied => ("card_denied", "this card is denied"),
        IssueOutcome::TooManyKeys => (
            "too_many_keys",
            "this device holds the most transit keys with live credentials a device may",
        ),
        IssueOutcome::TooManyOrders => {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_orders",
                "too many credentials ordered in the last hour",
            )
            .retry_after(600))
        }
    };
    Err(ApiError::forbidden(code, message))
}
