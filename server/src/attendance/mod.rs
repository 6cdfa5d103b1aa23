//! Attendance that proves itself (docs/protocol/meeting-qr.md): the party organisation names a
//! cell's secretary; the secretary's phone asks for a meeting's credential (proving it holds
//! the key it names); members' phones upload the check-ins they countersigned, which are
//! verified here (signatures, the right meeting of the member's own cell, shown within the
//! meeting's window, scanned soon after, once per member) and counted apart from
//! self-declared attendance.

pub mod store;

use std::sync::Arc;
use thudo_core::sync::protocol::ErrorBody;
use thudo_core::sync::protocol::ServerErrorCode;
use utoipa_axum::{router::OpenApiRouter, routes};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use thudo_core::crypto::p256;
use thudo_core::handbook::attendance::{
    self as rules, cell_hash, format_attendance_key, meeting_hash, AttendanceError, MeetingIssuer,
    MAX_SCAN_SKEW_SECS,
};
use thudo_core::handbook::backend::{
    CheckInItem, CheckInReceipt, CheckInResult, CheckInUpload, MeetingCredentialRequest,
    MeetingCredentialResponse, CHECK_IN_UPLOAD_CHUNK,
};
use thudo_core::hex;

use crate::devices::authenticate;
use crate::devices::store::DeviceStore;
use crate::http::{
    blocking, valid_cell, valid_citizen_id, valid_record_id, ApiError, ApiResult, JsonBody,
};
use crate::operators::{Operator, Role};
use crate::secrets::ServerSecrets;
use crate::storage::settings::SettingsStore;
use store::{AttendanceStore, CredentialRecorded, NewCheckIn, Stored};

/// Where the attendance key is kept (PKCS#8, hex; a deployment keeps it in an HSM).
const KEY_SETTING: &str = "attendance_key";
/// The attendance key's id (a rotation would add the next).
const KEY_ID: u16 = 1;
/// Check-ins per upload.
pub const MAX_CHECK_INS: usize = CHECK_IN_UPLOAD_CHUNK;
/// Hanoi's offset from UTC: a meeting's day runs from 00:00 to 24:00 there.
const HANOI_OFFSET_SECS: i64 = 7 * 3600;

/// What the attendance routes need.
#[derive(Clone)]
pub struct AttendanceState {
    /// Secretaries and check-ins.
    pub store: Arc<dyn AttendanceStore>,
    /// Devices, to authenticate phones.
    pub devices: Arc<dyn DeviceStore>,
    /// The attendance key.
    pub settings: Arc<dyn SettingsStore>,
    /// The keys citizen IDs are looked up under.
    pub secrets: Arc<ServerSecrets>,
}

/// The routes.
pub fn routes() -> OpenApiRouter<AttendanceState> {
    OpenApiRouter::new()
        .routes(routes!(set_secretary))
        .routes(routes!(meeting_attendance))
        .routes(routes!(meeting_credential))
        .routes(routes!(upload_check_ins))
}

/// The attendance key, made on first use (every instance goes on with the first stored).
pub fn issuer<S: SettingsStore + ?Sized>(settings: &S) -> Result<MeetingIssuer, ApiError> {
    let internal = |what: String| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ServerErrorCode::Internal,
            format!("attendance key: {what}"),
        )
    };
    let key = crate::storage::settings::p256_key(settings, KEY_SETTING).map_err(internal)?;
    Ok(MeetingIssuer::from_key(KEY_ID, key))
}

/// The attendance key as meetings carry it ([`format_attendance_key`]).
pub fn published_key<S: SettingsStore + ?Sized>(settings: &S) -> Result<String, ApiError> {
    let key = issuer(settings)?;
    Ok(format_attendance_key(key.key_id(), &key.public_key()))
}

/// Stamps a meeting published to `cell` with the cell and the attendance key (`key`, from
/// [`published_key`]), so members' phones can check its QR offline. Whatever the publisher
/// put there is replaced.
pub fn stamp_meeting(cell: &str, key: &str, meeting: &mut Value) {
    if let Some(object) = meeting.as_object_mut() {
        object.insert("cell".into(), json!(cell));
        object.insert("attendance_key".into(), json!(key));
    }
}

/// A meeting's window: its day in Hanoi, 00:00:00 to 23:59:59.
fn window(meeting: &Value) -> Option<(u32, u32)> {
    let date = chrono::NaiveDate::parse_from_str(meeting["date"].as_str()?, "%Y-%m-%d").ok()?;
    let midnight = date.and_hms_opt(0, 0, 0)?.and_utc().timestamp() - HANOI_OFFSET_SECS;
    let opens = u32::try_from(midnight).ok()?;
    Some((opens, opens.checked_add(86_399)?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Secretary {
    /// The member who signs the cell's meeting QRs.
    #[schema(pattern = "^[0-9]{12}$")]
    citizen_id: String,
}

#[utoipa::path(
    post,
    path = "/v1/admin/cells/{cell}/secretary",
    summary = "Name a cell's secretary (issued meetings' check-in credentials)",
    params(
        ("cell" = String, Path, pattern = "^[a-z0-9._-]{1,100}$"),
    ),
    request_body(content = Secretary, content_type = "application/json"),
    responses(
        (status = 200, description = "OK", body = crate::http::Done),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
    ),
    security(("operator" = [])),
)]
async fn set_secretary(
    State(state): State<AttendanceState>,
    operator: Operator,
    Path(cell): Path<String>,
    JsonBody(body): JsonBody<Secretary>,
) -> ApiResult<crate::http::Done> {
    operator.require(&[Role::PartyOrganisation])?;
    let cell = valid_cell(&cell)?;
    if !operator.governs_cell(&cell) {
        return Err(ApiError::forbidden(
            ServerErrorCode::NotGoverned,
            &format!("cell {cell} is not one of this organisation's"),
        ));
    }
    valid_citizen_id(&body.citizen_id)?;
    let citizen = state.secrets.citizen(&body.citizen_id);
    let store = state.store.clone();
    let now = chrono::Utc::now().timestamp();
    blocking(move || Ok(store.set_secretary(&cell, &citizen, now)?)).await?;
    Ok(Json(crate::http::Done { ok: true }))
}

#[utoipa::path(
    post,
    path = "/v1/handbook/meeting-credentials",
    summary = "As a cell's secretary, get a meeting's check-in credential for this phone's key",
    request_body(content = MeetingCredentialRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "OK", body = MeetingCredentialResponse),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
        (status = 404, description = "No such resource", body = ErrorBody),
        (status = 410, description = "The meeting's day is over (meeting_over)", body = ErrorBody),
    ),
    security(("device" = [])),
)]
async fn meeting_credential(
    State(state): State<AttendanceState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<MeetingCredentialRequest>,
) -> ApiResult<MeetingCredentialResponse> {
    let device = authenticate(&state.devices, &headers).await?;
    let meeting_id = body.meeting_id;
    if !valid_record_id(&meeting_id) {
        return Err(ApiError::bad(
            "meeting_id is 1 to 440 bytes (UTF-8), none a control character",
        ));
    }
    let cell = device.cell.clone().ok_or_else(|| {
        ApiError::forbidden(
            ServerErrorCode::NotSecretary,
            "only a cell's secretary is issued this",
        )
    })?;
    let key = hex::decode(&body.device_public_key)
        .and_then(|k| p256::decompress(&k))
        .ok_or_else(|| ApiError::bad("device_public_key is not a P-256 key"))?;
    let proof = hex::decode(&body.proof)
        .and_then(|p| p256::to_raw_signature(&p))
        .ok_or_else(|| ApiError::bad("proof is not a signature"))?;
    let compressed = p256::compress(&key).ok_or_else(|| ApiError::bad("not a P-256 key"))?;
    if !p256::verify(
        &key,
        &rules::key_proof_message(&meeting_id, &compressed),
        &proof,
    ) {
        return Err(ApiError::forbidden(
            ServerErrorCode::BadProof,
            "the proof does not verify with the key",
        ));
    }
    let (store, settings) = (state.store.clone(), state.settings.clone());
    blocking(move || {
        if store.secretary_of(&cell)?.as_deref() != Some(device.account_id.as_str()) {
            return Err(ApiError::forbidden(
                ServerErrorCode::NotSecretary,
                "only the cell's secretary is issued a meeting's credential",
            ));
        }
        let meeting = store
            .published_meeting(&cell, &meeting_id)?
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    ServerErrorCode::UnknownMeeting,
                    meeting_id.clone(),
                )
            })?;
        let (opens, closes) =
            window(&meeting).ok_or_else(|| ApiError::bad("the meeting has no valid date"))?;
        // A credential for a day gone by would let its QRs be signed afterwards, and the
        // check-ins of an absent cell counted as verified.
        if chrono::Utc::now().timestamp() > i64::from(closes) {
            return Err(ApiError::new(
                StatusCode::GONE,
                ServerErrorCode::MeetingOver,
                "the meeting's day is over",
            ));
        }
        let credential = issuer(settings.as_ref())?
            .issue(&meeting_id, &cell, opens, closes, &compressed)
            .map_err(|e| ApiError::bad(e.to_string()))?;
        // Recorded before it is handed out: a secretary replaced since revokes it, and a
        // check-in under a credential this backend has no record of is not counted.
        let now = chrono::Utc::now().timestamp();
        match store.record_meeting_credential(
            &cell,
            &meeting_id,
            &compressed,
            &device.account_id,
            &device.id,
            now,
        )? {
            CredentialRecorded::Recorded => {}
            CredentialRecorded::NotSecretary => {
                return Err(ApiError::forbidden(
                    ServerErrorCode::NotSecretary,
                    "only the cell's secretary is issued a meeting's credential",
                ))
            }
            CredentialRecorded::DeviceRevoked => {
                return Err(ApiError::forbidden(
                    ServerErrorCode::DeviceRevoked,
                    "this device was revoked",
                ))
            }
        }
        Ok(Json(MeetingCredentialResponse {
            credential: hex::encode(&credential),
            opens,
            closes,
        }))
    })
    .await
}

#[utoipa::path(
    post,
    path = "/v1/handbook/check-ins",
    summary = "Upload signed check-ins; each is verified and counted once per member",
    request_body(content = CheckInUpload, content_type = "application/json"),
    responses(
        (status = 200, description = "OK", body = CheckInReceipt),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
    ),
    security(("device" = [])),
)]
async fn upload_check_ins(
    State(state): State<AttendanceState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CheckInUpload>,
) -> ApiResult<CheckInReceipt> {
    let device = authenticate(&state.devices, &headers).await?;
    if body.check_ins.len() > MAX_CHECK_INS {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ServerErrorCode::TooLarge,
            format!("at most {MAX_CHECK_INS} check-ins per upload"),
        ));
    }
    let (store, settings) = (state.store.clone(), state.settings.clone());
    blocking(move || {
        let key = issuer(settings.as_ref())?;
        let now = chrono::Utc::now().timestamp();
        let mut results = Vec::with_capacity(body.check_ins.len());
        for item in body.check_ins {
            let verdict = judge(store.as_ref(), &key, &device, &item, now)?;
            results.push(CheckInResult {
                meeting_id: item.meeting_id,
                outcome: if verdict.is_empty() {
                    "accepted"
                } else {
                    "refused"
                }
                .into(),
                reason: verdict.into(),
            });
        }
        Ok(Json(CheckInReceipt { results }))
    })
    .await
}

/// How long after its meeting's day a check-in is still counted: a phone offline for days
/// uploads it late, but evidence turned up weeks later (a photo of the QR scanned with the
/// clock set back) is not counted.
pub const UPLOAD_GRACE_SECS: i64 = 72 * 3600;

/// Whether a check-in received at `now` for a meeting whose day closed at `closes` comes too
/// late to count.
fn uploaded_too_late(closes: u32, now: i64) -> bool {
    now > i64::from(closes) + UPLOAD_GRACE_SECS
}

/// The rules for one check-in: "" when counted (now or before), else the refusal's code.
fn judge(
    store: &dyn AttendanceStore,
    key: &MeetingIssuer,
    device: &crate::devices::store::Device,
    item: &CheckInItem,
    now: i64,
) -> Result<&'static str, ApiError> {
    let Some(cell) = device.cell.as_deref() else {
        return Ok("no_cell");
    };
    let Some(evidence) = hex::decode(&item.evidence) else {
        return Ok("bad_evidence");
    };
    let public = key.public_key();
    let checked = rules::verify_check_in(&evidence, |id| {
        (id == key.key_id()).then(|| public.to_vec())
    });
    let verified = match checked {
        Ok(v) => v,
        Err(AttendanceError::BadQr { .. }) => return Ok("bad_evidence"),
        Err(AttendanceError::NotOpen) => return Ok("late"),
        Err(AttendanceError::Stale { .. }) => return Ok("stale"),
        Err(_) => return Ok("forged"),
    };
    let credential = &verified.qr.credential;
    if credential.meeting != meeting_hash(&item.meeting_id) {
        return Ok("wrong_meeting");
    }
    let record = |cell: &str, evidence: Vec<u8>| -> Result<&'static str, ApiError> {
        let stored = store.record_check_in(&NewCheckIn {
            cell: cell.to_owned(),
            meeting_id: item.meeting_id.clone(),
            account_id: device.account_id.clone(),
            device_id: device.id.clone(),
            member_key: verified.member_key.to_vec(),
            shown_at: i64::from(verified.qr.shown_at),
            scanned_at: i64::from(verified.scanned_at),
            received_at: now,
            evidence,
        })?;
        Ok(match stored {
            Stored::Counted | Stored::AlreadyCounted => "",
            Stored::KeyMismatch => "key_mismatch",
        })
    };
    // The same evidence counted before (its answer lost, the phone asking again): a repeat is
    // accepted whatever changed since (the member moved, the meeting moved, the grace ran
    // out), once its key is checked against the device as any check-in's is.
    if let Some(counted_in) = store.counted_in(&item.meeting_id, &device.account_id, &evidence)? {
        return record(&counted_in, evidence);
    }
    // The member's cell when the QR was shown: the first cell left after the showing (a
    // transfer the day after the meeting), else the cell now.
    let shown_at = i64::from(verified.qr.shown_at);
    let cell_then = store
        .first_cell_left_after(&device.account_id, shown_at)?
        .unwrap_or_else(|| cell.to_owned());
    if credential.cell != cell_hash(&cell_then) {
        return Ok("wrong_cell");
    }
    let cell = cell_then.as_str();
    if i64::from(verified.scanned_at) > now + MAX_SCAN_SKEW_SECS
        || i64::from(verified.qr.shown_at) > now + MAX_SCAN_SKEW_SECS
    {
        return Ok("from_future");
    }
    let Some(meeting) = store.published_meeting(cell, &item.meeting_id)? else {
        return Ok("unknown_meeting");
    };
    // The meeting's day as published now: a credential for the day it had before it was
    // moved signs QRs of no meeting.
    if window(&meeting) != Some((credential.opens, credential.closes)) {
        return Ok("late");
    }
    if uploaded_too_late(credential.closes, now) {
        return Ok("uploaded_late");
    }
    // Issued to the secretary of the time, and shown before a replacement revoked it.
    let revoked =
        store.meeting_credential_revoked_at(cell, &item.meeting_id, &credential.secretary_key)?;
    match revoked {
        // Issued before credentials were recorded: counted for a QR shown before then only.
        None if shown_at < store.credentials_recorded_since()? => {}
        None => return Ok("revoked_credential"),
        Some(Some(at)) if i64::from(verified.qr.shown_at) >= at => return Ok("revoked_credential"),
        Some(_) => {}
    }
    record(cell, evidence)
}

#[utoipa::path(
    get,
    path = "/v1/admin/cells/{cell}/meetings/{meeting}/attendance",
    summary = "A meeting's attendance: verified check-ins apart from self-declared attendance",
    params(
        ("cell" = String, Path, pattern = "^[a-z0-9._-]{1,100}$"),
        ("meeting" = String, Path, pattern = r"^[^\u0000-\u001f\u007f-\u009f]{1,256}$"),
    ),
    responses(
        (status = 200, description = "OK", body = store::AttendanceCounts),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
    ),
    security(("operator" = [])),
)]
async fn meeting_attendance(
    State(state): State<AttendanceState>,
    operator: Operator,
    Path((cell, meeting_id)): Path<(String, String)>,
) -> ApiResult<store::AttendanceCounts> {
    operator.require(&[Role::PartyOrganisation, Role::Auditor])?;
    if !(operator.governs_cell(&cell) || operator.role == Role::Auditor) {
        return Err(ApiError::forbidden(
            ServerErrorCode::NotGoverned,
            &format!("cell {cell} is not one of this organisation's"),
        ));
    }
    let store = state.store.clone();
    blocking(move || Ok(Json(store.attendance(&cell, &meeting_id)?))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_in_counts_until_three_days_after_its_meeting() {
        let closes = 1_800_000_000u32;
        assert!(!uploaded_too_late(closes, i64::from(closes)));
        assert!(!uploaded_too_late(
            closes,
            i64::from(closes) + UPLOAD_GRACE_SECS
        ));
        assert!(uploaded_too_late(
            closes,
            i64::from(closes) + UPLOAD_GRACE_SECS + 1
        ));
    }
}
