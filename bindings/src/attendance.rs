//! Signed attendance for Kotlin and Swift (docs/protocol/meeting-qr.md): the secretary's phone
//! shows a meeting's rotating QR, members' phones scan and countersign it offline, and the
//! check-ins go to the backend when online.

use std::sync::Arc;

use thudo_core::handbook::attendance::{
    self as core, AttendanceError, CheckInStatus, CheckIns, MeetingSecretary,
};
use thudo_core::handbook::backend::HandbookClient as CoreHandbook;

use crate::cancel::{guard, CancelToken};
use crate::handbook::{CheckInRefusal, HandbookError, MemberHandbook};
use crate::sync::{SyncClient, SyncError};
use crate::{blocking, now};

impl From<AttendanceError> for HandbookError {
    fn from(e: AttendanceError) -> Self {
        let reason = e.to_string();
        let refusal = match e {
            AttendanceError::Vault(v) => return v.into(),
            AttendanceError::BadQr { .. } => CheckInRefusal::BadQr,
            AttendanceError::Forged { .. } => CheckInRefusal::Forged,
            AttendanceError::UnknownMeeting => CheckInRefusal::UnknownMeeting,
            AttendanceError::WrongCell => CheckInRefusal::WrongCell,
            AttendanceError::NotVerifiable { .. } => CheckInRefusal::NotVerifiable,
            AttendanceError::NotOpen => CheckInRefusal::NotOpen,
            AttendanceError::Stale { .. } => CheckInRefusal::Stale,
            AttendanceError::AlreadyCheckedIn { .. } => CheckInRefusal::AlreadyCheckedIn,
            AttendanceError::InvalidCredential { .. } => CheckInRefusal::InvalidCredential,
        };
        HandbookError::CheckInRefused { refusal, reason }
    }
}

/// Where a check-in stands with the backend (core's type, carried as it is).
#[uniffi::remote(Enum)]
pub enum CheckInStatus {
    /// Not uploaded yet.
    Pending,
    /// Verified and counted by the backend.
    Accepted,
    /// Refused by the backend, with its code (`forged`, `wrong_cell`, `late`, `stale`, ...).
    Refused {
        /// The backend's code.
        reason: String,
    },
}

/// A member's signed check-in to a meeting.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct MeetingCheckIn {
    /// The meeting.
    pub meeting_id: String,
    /// When the secretary's phone showed the QR (its clock, unix seconds).
    pub shown_at_secs: i64,
    /// When this phone scanned it (its clock, unix seconds).
    pub scanned_at_secs: i64,
    /// Where it stands with the backend.
    pub status: CheckInStatus,
}

impl From<core::CheckIn> for MeetingCheckIn {
    fn from(c: core::CheckIn) -> Self {
        MeetingCheckIn {
            meeting_id: c.meeting_id,
            shown_at_secs: c.shown_at.into(),
            scanned_at_secs: c.scanned_at.into(),
            status: c.status,
        }
    }
}

/// A time for the wire format (unix seconds in 32 bits), or `Invalid`.
fn secs(value: Option<i64>) -> Result<u32, HandbookError> {
    u32::try_from(value.unwrap_or_else(now)).map_err(|_| HandbookError::Invalid {
        reason: "a time outside 1970-2106".into(),
    })
}

#[uniffi::export(async_runtime = "tokio")]
impl MemberHandbook {
    /// Scans a meeting's QR (`HNM1:…`) shown by the cell secretary's phone: checks it against
    /// the meeting this phone holds (its cell, the backend's key, the meeting's day, shown at
    /// most five minutes from `now_secs`, default the device clock), countersigns it and keeps
    /// the check-in, with attendance recorded present. Offline; `HandbookClient.uploadCheckIns`
    /// sends it. `CheckInRefused` says why a QR is refused.
    #[uniffi::method(default(now_secs = None))]
    pub async fn check_in(
        &self,
        qr_text: String,
        now_secs: Option<i64>,
    ) -> Result<MeetingCheckIn, HandbookError> {
        let now = secs(now_secs)?;
        let vault = self.vault.clone();
        blocking(move || Ok(CheckIns::new(&vault).scan(&qr_text, now)?.into())).await
    }

    /// Every check-in this phone made, with where it stands.
    pub async fn check_ins(&self) -> Result<Vec<MeetingCheckIn>, HandbookError> {
        let vault = self.vault.clone();
        blocking(move || {
            Ok(CheckIns::new(&vault)
                .all()?
                .into_iter()
                .map(MeetingCheckIn::from)
                .collect())
        })
        .await
    }

    /// As the cell's secretary: the QR text to show for `meeting_id` now (`now_secs`, default
    /// the device clock); call it again every few seconds. Needs the meeting's credential
    /// (`HandbookClient.fetchMeetingCredential`); `CheckInRefused(NotOpen)` outside its day.
    #[uniffi::method(default(now_secs = None))]
    pub async fn meeting_qr(
        &self,
        meeting_id: String,
        now_secs: Option<i64>,
    ) -> Result<String, HandbookError> {
        let now = secs(now_secs)?;
        let vault = self.vault.clone();
        blocking(move || Ok(MeetingSecretary::new(&vault).qr(&meeting_id, now)?)).await
    }

    /// This phone's handbook key (P-256, SEC1 compressed): what a meeting credential binds.
    pub async fn handbook_public_key(&self) -> Result<Vec<u8>, HandbookError> {
        let vault = self.vault.clone();
        blocking(move || Ok(core::device_key(&vault)?.compressed_public_key().to_vec())).await
    }

    /// Keeps a meeting credential issued for this phone's key (what
    /// `HandbookClient.fetchMeetingCredential` does with the backend's answer; for a
    /// deployment that provisions credentials another way).
    pub async fn install_meeting_credential(
        &self,
        meeting_id: String,
        credential: Vec<u8>,
    ) -> Result<(), HandbookError> {
        let vault = self.vault.clone();
        blocking(move || Ok(MeetingSecretary::new(&vault).install(&meeting_id, &credential)?)).await
    }
}

/// A meeting's check-in window, unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct MeetingWindow {
    /// First second a QR may be shown.
    pub opens_secs: i64,
    /// Last second a QR may be shown.
    pub closes_secs: i64,
}

/// A check-in the backend refused.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RefusedCheckIn {
    /// The meeting.
    pub meeting_id: String,
    /// The backend's code.
    pub reason: String,
}

/// What an upload settled.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CheckInUploadReport {
    /// Check-ins counted.
    pub accepted: i64,
    /// Check-ins refused.
    pub refused: Vec<RefusedCheckIn>,
}

/// The handbook's calls to the backend, over a `SyncClient`'s connection.
#[derive(uniffi::Object)]
pub struct HandbookClient {
    inner: Arc<thudo_core::sync::client::BackendClient>,
}

#[uniffi::export(async_runtime = "tokio")]
impl HandbookClient {
    /// The handbook's calls over `client`'s connection (its shutdown stops them too).
    #[uniffi::constructor]
    pub fn new(client: Arc<SyncClient>) -> Arc<Self> {
        Arc::new(HandbookClient {
            inner: client.inner.clone(),
        })
    }

    /// As the cell's secretary (named by the party organisation): fetches `meeting_id`'s
    /// credential for this phone's key and keeps it, so `MemberHandbook.meetingQr` works
    /// offline. `Refused` with `not_secretary` or `unknown_meeting` otherwise.
    #[uniffi::method(default(cancel = None))]
    pub async fn fetch_meeting_credential(
        &self,
        vault: Arc<crate::vault::Vault>,
        meeting_id: String,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<MeetingWindow, SyncError> {
        let fetch =
            CoreHandbook::new(&self.inner).fetch_meeting_credential(vault.core(), &meeting_id);
        let w = guard(cancel).run(fetch).await?;
        Ok(MeetingWindow {
            opens_secs: w.opens.into(),
            closes_secs: w.closes.into(),
        })
    }

    /// Uploads the check-ins the backend has not answered and records each answer
    /// (`MemberHandbook.checkIns`). Safe to repeat: a check-in is counted once.
    #[uniffi::method(default(cancel = None))]
    pub async fn upload_check_ins(
        &self,
        vault: Arc<crate::vault::Vault>,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<CheckInUploadReport, SyncError> {
        let upload = CoreHandbook::new(&self.inner).upload_check_ins(vault.core());
        let report = guard(cancel).run(upload).await?;
        Ok(CheckInUploadReport {
            accepted: crate::signed(report.accepted),
            refused: report
                .refused
                .into_iter()
                .map(|(meeting_id, reason)| RefusedCheckIn { meeting_id, reason })
                .collect(),
        })
    }
}

/// The backend's attendance key, for tests and demos that issue meeting credentials without a
/// backend. Phones never hold one.
#[derive(uniffi::Object)]
pub struct MeetingIssuer {
    inner: core::MeetingIssuer,
}

#[uniffi::export]
impl MeetingIssuer {
    /// A new random key with id `key_id`.
    #[uniffi::constructor]
    pub fn generate(key_id: i32) -> Result<Arc<Self>, HandbookError> {
        let key_id = u16::try_from(key_id).map_err(|_| HandbookError::Invalid {
            reason: "key_id is 0 to 65535".into(),
        })?;
        let (inner, _) =
            core::MeetingIssuer::generate(key_id).ok_or_else(|| HandbookError::Internal {
                reason: "key generation failed".into(),
            })?;
        Ok(Arc::new(MeetingIssuer { inner }))
    }

    /// The key as a meeting carries it (`Meeting.attendanceKey`).
    pub fn attendance_key(&self) -> String {
        core::format_attendance_key(self.inner.key_id(), &self.inner.public_key())
    }

    /// A credential for `meeting_id` of `cell`, open from `opens_secs` to `closes_secs`, for
    /// the secretary phone's key (`MemberHandbook.handbookPublicKey`).
    pub fn issue(
        &self,
        meeting_id: String,
        cell: String,
        opens_secs: i64,
        closes_secs: i64,
        secretary_key: Vec<u8>,
    ) -> Result<Vec<u8>, HandbookError> {
        let opens = secs(Some(opens_secs))?;
        let closes = secs(Some(closes_secs))?;
        Ok(self
            .inner
            .issue(&meeting_id, &cell, opens, closes, &secretary_key)?)
    }
}
