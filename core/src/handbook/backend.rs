//! The handbook's calls to the backend for signed attendance (docs/protocol/meeting-qr.md):
//! the secretary's phone fetches a meeting's credential, members' phones upload their
//! check-ins. Built on the device's backend transport (`crate::net`).

use std::sync::Arc;

use http::Method;
use serde::{Deserialize, Serialize};

use super::attendance::{AttendanceError, CheckInStatus, CheckIns, MeetingSecretary};
use crate::net::protocol::API_PREFIX;
use crate::net::{blocking, BackendClient, BackendError};
use crate::vault::Vault;

/// Check-ins per upload (the backend takes at most this many): 50 of 626 hex characters stay
/// well inside a small request body (64 KiB).
pub const CHECK_IN_UPLOAD_CHUNK: usize = 50;

/// `POST /v1/handbook/meeting-credentials`: the secretary's phone asks for a meeting's
/// credential for its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MeetingCredentialRequest {
    /// The meeting: 1 to 256 characters, none a control character.
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 256, pattern = r"^[^\u0000-\u001f\u007f-\u009f]{1,256}$")
    )]
    pub meeting_id: String,
    /// The phone's P-256 key, hex (SEC1).
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^(0[23][0-9a-fA-F]{64}|04[0-9a-fA-F]{128})$")
    )]
    pub device_public_key: String,
    /// Its signature (raw r||s, hex) over
    /// `key_proof_message(meeting_id, key)` ([`super::attendance::key_proof_message`]).
    #[cfg_attr(feature = "openapi", schema(pattern = "^[0-9a-fA-F]{128}$"))]
    pub proof: String,
}

/// The backend's answer: the credential and the window it is open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MeetingCredentialResponse {
    /// The credential, hex.
    pub credential: String,
    /// First second it may be shown (unix).
    pub opens: u32,
    /// Last second it may be shown (unix).
    pub closes: u32,
}

/// `POST /v1/handbook/check-ins`: a member's check-ins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CheckInUpload {
    /// The check-ins.
    #[cfg_attr(feature = "openapi", schema(max_items = 50))]
    pub check_ins: Vec<CheckInItem>,
}

/// One check-in as uploaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CheckInItem {
    /// The meeting.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 256))]
    pub meeting_id: String,
    /// The evidence ([`super::attendance::CHECK_IN_LEN`] bytes), hex.
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 626, pattern = "^[0-9a-fA-F]*$")
    )]
    pub evidence: String,
}

/// What became of each check-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckInReceipt {
    /// One per check-in, in order.
    pub results: Vec<CheckInResult>,
}

/// What became of one check-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckInResult {
    /// The meeting.
    pub meeting_id: String,
    /// `accepted` (counted, now or on an earlier upload) or `refused`.
    pub outcome: String,
    /// Why it was refused: `bad_evidence`, `forged`, `wrong_meeting`, `wrong_cell`,
    /// `unknown_meeting`, `late`, `stale`, `from_future`, `key_mismatch`, `no_cell`, `uploaded_late`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// What an upload settled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckInReport {
    /// Check-ins the backend counted.
    pub accepted: u64,
    /// Check-ins it refused, with the meeting and the reason.
    pub refused: Vec<(String, String)>,
}

/// The handbook's calls over a backend client.
pub struct HandbookClient<'a> {
    backend: &'a BackendClient,
}

fn device_side(e: AttendanceError) -> BackendError {
    match e {
        AttendanceError::Vault(v) => BackendError::Vault(v),
        other => BackendError::Protocol {
            detail: other.to_string(),
        },
    }
}

impl<'a> HandbookClient<'a> {
    /// The handbook's calls over `backend`.
    pub fn new(backend: &'a BackendClient) -> HandbookClient<'a> {
        HandbookClient { backend }
    }

    /// As the cell's secretary: fetches the credential of `meeting_id` for this phone's key
    /// and keeps it, so the phone can show the meeting's QR offline. Returns the window.
    pub async fn fetch_meeting_credential(
        self,
        vault: Arc<Vault>,
        meeting_id: &str,
    ) -> Result<MeetingCredentialResponse, BackendError> {
        let (v, id) = (vault.clone(), meeting_id.to_owned());
        let (key, proof) = blocking(move || {
            MeetingSecretary::new(&v)
                .key_and_proof(&id)
                .map_err(device_side)
        })
        .await?;
        let body = serde_json::to_vec(&MeetingCredentialRequest {
            meeting_id: meeting_id.to_owned(),
            device_public_key: crate::hex::encode(&key),
            proof: crate::hex::encode(&proof),
        })
        .map_err(|e| BackendError::Protocol {
            detail: e.to_string(),
        })?;
        let answer: MeetingCredentialResponse = self
            .backend
            .request(
                vault.clone(),
                Method::POST,
                &format!("{API_PREFIX}/handbook/meeting-credentials"),
                Some(body),
            )
            .await?;
        let credential =
            crate::hex::decode(&answer.credential).ok_or_else(|| BackendError::Protocol {
                detail: "the credential is not hex".into(),
            })?;
        let id = meeting_id.to_owned();
        blocking(move || {
            MeetingSecretary::new(&vault)
                .install(&id, &credential)
                .map_err(device_side)
        })
        .await?;
        Ok(answer)
    }

    /// Uploads the check-ins the backend has not answered and records each answer. A failure
    /// midway loses nothing: what was not answered stays pending, and a repeat is accepted.
    pub async fn upload_check_ins(self, vault: Arc<Vault>) -> Result<CheckInReport, BackendError> {
        let v = vault.clone();
        let pending = blocking(move || CheckIns::new(&v).pending().map_err(device_side)).await?;
        let mut report = CheckInReport::default();
        for chunk in pending.chunks(CHECK_IN_UPLOAD_CHUNK) {
            let body = serde_json::to_vec(&CheckInUpload {
                check_ins: chunk
                    .iter()
                    .map(|c| CheckInItem {
                        meeting_id: c.meeting_id.clone(),
                        evidence: c.evidence.clone(),
                    })
                    .collect(),
            })
            .map_err(|e| BackendError::Protocol {
                detail: e.to_string(),
            })?;
            let receipt: CheckInReceipt = self
                .backend
                .request(
                    vault.clone(),
                    Method::POST,
                    &format!("{API_PREFIX}/handbook/check-ins"),
                    Some(body),
                )
                .await?;
            let v = vault.clone();
            let settled = blocking(move || {
                let check_ins = CheckIns::new(&v);
                let mut report = CheckInReport::default();
                for r in receipt.results {
                    let status = if r.outcome == "accepted" {
                        report.accepted += 1;
                        CheckInStatus::Accepted
                    } else {
                        report
                            .refused
                            .push((r.meeting_id.clone(), r.reason.clone()));
                        CheckInStatus::Refused { reason: r.reason }
                    };
                    check_ins
                        .settle(&r.meeting_id, status)
                        .map_err(device_side)?;
                }
                Ok(report)
            })
            .await?;
            report.accepted += settled.accepted;
            report.refused.extend(settled.refused);
        }
        Ok(report)
    }
}
