//! Tap and inspection upload: every scan verified again here ([`check_evidence`]) before the
//! store judges and charges it; the rider's charges; the operator's fraud records and
//! inspection statistics.
//!
//! Who is trusted with what (docs/security.md): a validator is enrolled by the operator and
//! trusted to say *when and where* it saw a scan, never *what* it saw: the card, product and
//! validity come from the issuer-signed credential and the phone-signed QR.

use std::collections::HashMap;
use thudo_core::sync::protocol::ErrorBody;
use thudo_core::sync::protocol::ServerErrorCode;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use thudo_core::transit::backend::{
    InspectionReceipt, InspectionUpload, TapReceipt, TapUpload, INSPECTION_UPLOAD_CHUNK,
};
use thudo_core::transit::issuer::TrustedIssuerKey;
use thudo_core::transit::metro::GateDirection;
use thudo_core::transit::tariff::Mode;
use thudo_core::transit::validator::{self, Tap};

use super::fares::parse_gate;
use super::issuer::{current_issuer, trusted_for};
use super::rules::check_evidence;
use super::store::{CheckedInspection, CheckedTap, FraudRecord, InspectionStats};
use super::validators::validator_caller;
use super::TransitState;
use crate::devices::authenticate;
use crate::http::{blocking, query_params, ApiError, ApiResult, JsonBody};
use crate::operators::{Operator, Role};

/// `POST /v1/transit/inspections`: an enrolled inspector's inspections, each scan verified
/// again at the inspection's time. The inspector's outcome is stored as its observation; the
/// statistics count a finding as verified only when its scan says the same.
#[utoipa::path(
    post,
    path = "/v1/transit/inspections",
    summary = "Upload an inspector's inspections; each scan is verified again before it counts in the statistics",
    request_body(content = InspectionUpload, content_type = "application/json"),
    responses(
        (status = 200, description = "OK", body = InspectionReceipt),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
    ),
    security(("validator" = [])),
)]
pub(crate) async fn upload_inspections(
    State(state): State<TransitState>,
    headers: HeaderMap,
    JsonBody(upload): JsonBody<InspectionUpload>,
) -> ApiResult<InspectionReceipt> {
    let inspector = validator_caller(&state, &headers).await?;
    if upload.inspections.len() > INSPECTION_UPLOAD_CHUNK {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ServerErrorCode::TooLarge,
            "at most 1,000 inspections per upload",
        ));
    }
    let issuer = current_issuer(&state).await?;
    let storage = state.storage.clone();
    let receipt = blocking(move || {
        let trusted = trusted_for(
            &issuer,
            storage.as_ref(),
            upload.inspections.iter().map(|i| &i.qr),
        )?;
        let checked: Vec<CheckedInspection> = upload
            .inspections
            .into_iter()
            .map(|inspection| {
                // The scan judged as a tap at the inspection's time and place would be.
                let as_tap = Tap {
                    seq: inspection.seq,
                    at: inspection.at,
                    // A bound inspector's route wins (check_evidence applies it); else the
                    // paired vehicle's, as recorded.
                    route: inspection.route.unwrap_or(0),
                    accepted: true,
                    reason: validator::Reason::Ok,
                    card_id: None,
                    product: None,
                    qr_timestamp: None,
                    qr_counter: None,
                    qr: inspection.qr.clone(),
                    gate: None,
                };
                CheckedInspection {
                    evidence: check_evidence(
                        &as_tap,
                        &trusted,
                        inspector.route,
                        false,
                        &state.fares.tariff,
                        mode_of(&state.fares, inspector.route.unwrap_or(as_tap.route)),
                    ),
                    inspection,
                }
            })
            .collect();
        Ok(storage.record_inspections(&inspector, &checked)?)
    })
    .await?;
    Ok(Json(receipt))
}

/// `GET /v1/admin/transit/inspections`: inspection statistics for fraud work.
#[utoipa::path(
    get,
    path = "/v1/admin/transit/inspections",
    summary = "Inspection statistics: findings by outcome, not-tapped findings whose scan verified, disputed findings",
    responses(
        (status = 200, description = "OK", body = InspectionStats),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
    ),
    security(("operator" = [])),
)]
pub(crate) async fn admin_inspections(
    State(state): State<TransitState>,
    operator: Operator,
) -> ApiResult<InspectionStats> {
    operator.require(&[Role::TransitOperator, Role::Auditor])?;
    let storage = state.storage.clone();
    Ok(Json(
        blocking(move || Ok(storage.inspection_stats()?)).await?,
    ))
}

/// `POST /v1/transit/taps`: an enrolled validator's taps, each re-verified from its scan.
#[utoipa::path(
    post,
    path = "/v1/transit/taps",
    summary = "Upload a validator's taps; pay-as-you-go fares are charged under daily and monthly caps",
    request_body(content = TapUpload, content_type = "application/json"),
    responses(
        (status = 200, description = "OK", body = TapReceipt),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
    ),
    security(("validator" = [])),
)]
pub(crate) async fn upload_taps(
    State(state): State<TransitState>,
    headers: HeaderMap,
    JsonBody(upload): JsonBody<TapUpload>,
) -> ApiResult<TapReceipt> {
    let received = chrono::Utc::now().timestamp();
    let validator = validator_caller(&state, &headers).await?;
    if validator.inspector {
        // What an inspector scans is checked, never ridden: it is not a fare to charge.
        return Err(ApiError::forbidden(
            ServerErrorCode::InspectorDevice,
            "an inspector's device uploads inspections, not taps",
        ));
    }
    if upload.taps.len() > 10_000 {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ServerErrorCode::TooLarge,
            "at most 10,000 taps per upload",
        ));
    }
    let issuer = current_issuer(&state).await?;
    let storage = state.storage.clone();
    let fares = state.fares.clone();
    let totals = blocking(move || {
        // A gate's line is its route: a single-route pass for the line rides it.
        let gate = validator.gate.as_deref().and_then(parse_gate);
        let (today, _) = fares.local_day_and_month(chrono::Utc::now().timestamp() as u64);
        let bound_route = validator
            .route
            .or_else(|| gate.and_then(|g| fares.gate_route(&g, &today)));
        let exit = gate.is_some_and(|g| g.direction == GateDirection::Exit);
        // Signature checks run here, off the async workers: about 0.2 ms per tap.
        let mode = if gate.is_some() {
            Mode::Metro
        } else {
            Mode::Bus
        };
        let check = |trusted: &HashMap<u16, TrustedIssuerKey>, tap: &Tap| {
            check_evidence(tap, trusted, bound_route, exit, &fares.tariff, mode)
        };
        let trusted = trusted_for(&issuer, storage.as_ref(), upload.taps.iter().map(|t| &t.qr))?;
        let checked: Vec<CheckedTap> = upload
            .taps
            .into_iter()
            .map(|tap| CheckedTap {
                evidence: check(&trusted, &tap),
                tap,
            })
            .collect();
        // Complete up to the export, by this clock: the gate says how long it held the taps.
        let complete_at = upload
            .drained
            .then(|| received - upload.exported_secs_ago.min(3_600) as i64);
        let totals = storage.record_taps(&validator, &checked, &fares, complete_at)?;
        // Cards now owing more than their credit are denied on the next list. A failure
        // here loses nothing: the card's next charge or top-up checks again.
        let _ = storage.enforce_balances(&totals.paid_cards, fares.credit_limit_vnd, received);
        // What the operator's policy says follows this upload's fraud records (and any left
        // from before): the next upload or settlement retries what fails here.
        let _ = storage.act_on_fraud(&fares, received);
        Ok(totals)
    })
    .await?;
    Ok(Json(TapReceipt {
        stored: totals.stored,
        duplicates: totals.duplicates,
        acknowledged_seq: totals.highest_seq,
        charged_vnd: totals.charged_vnd,
        not_charged: totals.not_charged,
        stored_charged_vnd: totals.stored_charged_vnd,
        taps: totals.outcomes,
        reused: totals.reused,
        next_free_seq: totals.next_free_seq,
    }))
}

/// Fares charged to the caller's card, per day.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Charges {
    /// The card.
    pub card_id: u64,
    /// `(day, VND)`.
    #[schema(value_type = Vec<crate::schema::DayTotal>)]
    pub days: Vec<(String, u64)>,
}

/// `GET /v1/transit/charges`.
#[utoipa::path(
    get,
    path = "/v1/transit/charges",
    summary = "Fares charged to the caller's card, per day",
    responses(
        (status = 200, description = "OK", body = Charges),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
    ),
    security(("device" = [])),
)]
pub(crate) async fn charges(
    State(state): State<TransitState>,
    headers: HeaderMap,
) -> ApiResult<Charges> {
    let device = authenticate(&state.devices(), &headers).await?;
    let storage = state.storage.clone();
    let card_id = device.card_id;
    let days = blocking(move || Ok(storage.charges(card_id)?)).await?;
    Ok(Json(Charges { card_id, days }))
}

/// Most fraud records one page gives.
const FRAUD_PAGE: usize = 1_000;

/// `GET /v1/admin/transit/fraud[?after=ID&limit=N]`: suspected relays and forged evidence,
/// oldest first, a page at a time (a stolen validator's forged uploads can make many).
#[utoipa::path(
    get,
    path = "/v1/admin/transit/fraud",
    summary = "Suspected relays and forged evidence, oldest first, at most `limit` (1 to 1,000, default 1,000) numbered above `after` (default 0): ask again after the last one's `id` until a page comes back short",
    params(
        ("after" = Option<u64>, Query, description = "The last `id` of the page before (0: from the first)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Most records in the page"),
    ),
    responses(
        (status = 200, description = "OK", body = [FraudRecord]),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
    ),
    security(("operator" = [])),
)]
pub(crate) async fn admin_fraud(
    State(state): State<TransitState>,
    operator: Operator,
    RawQuery(query): RawQuery,
) -> ApiResult<Vec<FraudRecord>> {
    operator.require(&[Role::TransitOperator, Role::Auditor])?;
    let query = query_params(query);
    let after = match query.get("after") {
        None => 0,
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|a| *a <= i64::MAX as u64)
            .ok_or_else(|| ApiError::bad("after must be a record id"))?,
    };
    let limit = match query.get("limit") {
        None => FRAUD_PAGE,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=FRAUD_PAGE).contains(l))
            .ok_or_else(|| ApiError::bad(format!("limit is 1 to {FRAUD_PAGE}")))?,
    };
    let storage = state.storage.clone();
    Ok(Json(
        blocking(move || Ok(storage.fraud_records(after, limit)?)).await?,
    ))
}

/// The mode of an inspection on `route`: the metro on a metro line's route code, else a bus.
fn mode_of(fares: &super::fares::FarePolicy, route: u16) -> Mode {
    let (today, _) = fares.local_day_and_month(chrono::Utc::now().timestamp() as u64);
    match fares.metro.in_force(&today) {
        Some(t) if t.is_line(route) => Mode::Metro,
        _ => Mode::Bus,
    }
}
