//! Attendance that proves itself (docs/protocol/meeting-qr.md): the two-level scheme of the
//! transit QR, for a cell meeting.
//!
//! 1. The backend issues the cell secretary's phone a **meeting credential**: the meeting, the
//!    cell, the window it is open and the phone's key, signed with the backend's attendance
//!    key.
//! 2. The secretary's phone shows a **meeting QR** that changes every few seconds: the
//!    credential, the time and a nonce, signed with the phone's key. No network.
//! 3. Each member's phone scans it, checks both signatures against the meeting it holds (the
//!    backend stamped each meeting with its cell and attendance key when publishing it),
//!    checks the time, and **countersigns**: the QR, the scan time and its own key, signed with
//!    that key. The check-in is kept in the vault and uploaded when online; the backend checks
//!    it again (right meeting, right cell, in time, once per member) and counts it apart from
//!    self-declared attendance.
//!
//! ```text
//! credential, 140 bytes               meeting QR = credential, then    check-in = QR, then
//!   0  1 version (1)                  140  4 shown at (unix s)         212  4 scanned at
//!   1  2 key id                       144  4 nonce                     216 33 member key
//!   3 16 meeting hash                 148 64 secretary's signature     249 64 member's signature
//!  19 16 cell hash                           over the tag and 0..148          over the tag and 0..249
//!  35  4 opens, 39 4 closes (unix s)
//!  43 33 secretary key (SEC1 compressed)
//!  76 64 backend's signature over "thudo/handbook/meeting/v1" || 0..76
//! QR text: "HNM1:" + base45(212 bytes) = 323 characters, alphanumeric mode
//! ```

use ring::digest;
use serde::{Deserialize, Serialize};

use crate::crypto::p256::{self, SoftwareKey, COMPRESSED_KEY_LEN, SIGNATURE_LEN};
use crate::vault::{Document, Vault, VaultError};

/// Prefix of a meeting QR's text.
pub const QR_PREFIX: &str = "HNM1:";
/// Format version in byte 0.
pub const FORMAT_VERSION: u8 = 1;
/// Domain tag of the backend's signature on a credential.
pub const CREDENTIAL_TAG: &[u8] = b"thudo/handbook/meeting/v1";
/// Domain tag of the secretary's signature on a QR.
pub const QR_TAG: &[u8] = b"thudo/handbook/meeting-qr/v1";
/// Domain tag of the member's signature on a check-in.
pub const CHECK_IN_TAG: &[u8] = b"thudo/handbook/check-in/v1";
/// Domain tag of the secretary's proof that it holds the key it asks a credential for.
pub const KEY_PROOF_TAG: &[u8] = b"thudo/handbook/meeting-key/v1";
/// Bytes of a credential's signed part.
pub const CREDENTIAL_BODY_LEN: usize = 76;
/// Bytes of a credential.
pub const CREDENTIAL_LEN: usize = CREDENTIAL_BODY_LEN + SIGNATURE_LEN;
/// Bytes of a meeting QR's payload.
pub const QR_LEN: usize = CREDENTIAL_LEN + 8 + SIGNATURE_LEN;
/// Bytes of a check-in.
pub const CHECK_IN_LEN: usize = QR_LEN + 4 + COMPRESSED_KEY_LEN + SIGNATURE_LEN;
/// How far apart the time the secretary's phone showed a QR and the time a member's phone
/// scanned it may be: two offline clocks, and a screenshot sent away goes stale.
pub const MAX_SCAN_SKEW_SECS: i64 = 300;
/// The vault collection of the phone's handbook key.
const KEYS: &str = "handbook.keys";

/// Why a meeting QR or check-in is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttendanceError {
    /// Not a meeting QR (prefix, base45, length, version).
    #[error("not a meeting QR: {reason}")]
    BadQr {
        /// What was wrong.
        reason: String,
    },
    /// A signature does not verify: forged or altered.
    #[error("forged: {what} does not verify")]
    Forged {
        /// Which signature.
        what: String,
    },
    /// The QR names no meeting this phone holds (another cell's, or not yet synced).
    #[error("the QR is for a meeting this phone does not hold")]
    UnknownMeeting,
    /// The meeting belongs to another cell.
    #[error("the meeting belongs to another cell")]
    WrongCell,
    /// The meeting carries no attendance key (published before check-ins existed).
    #[error("meeting {meeting_id} takes no signed check-ins")]
    NotVerifiable {
        /// The meeting.
        meeting_id: String,
    },
    /// Outside the meeting's window.
    #[error("the meeting is not open for check-in at that time")]
    NotOpen,
    /// Shown and scanned too far apart (a stale screenshot, or a clock far off).
    #[error("the QR was shown {seconds} s from the scan (at most {MAX_SCAN_SKEW_SECS})")]
    Stale {
        /// Seconds between showing and scanning.
        seconds: i64,
    },
    /// This member already checked in to the meeting.
    #[error("already checked in to meeting {meeting_id}")]
    AlreadyCheckedIn {
        /// The meeting.
        meeting_id: String,
    },
    /// A credential that is not this phone's, or for another meeting.
    #[error("invalid credential: {reason}")]
    InvalidCredential {
        /// What was wrong.
        reason: String,
    },
    /// The vault failed.
    #[error(transparent)]
    Vault(#[from] VaultError),
}

fn truncated_hash(tag: &[u8], value: &str) -> [u8; 16] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(tag);
    ctx.update(value.as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&ctx.finish().as_ref()[..16]);
    out
}

/// The 16 bytes a credential names a meeting by.
pub fn meeting_hash(meeting_id: &str) -> [u8; 16] {
    truncated_hash(b"thudo/handbook/meeting-id/v1", meeting_id)
}

/// The 16 bytes a credential names a cell by.
pub fn cell_hash(cell: &str) -> [u8; 16] {
    truncated_hash(b"thudo/handbook/cell/v1", cell)
}

/// The fields of a meeting credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingCredential {
    /// The backend key that signs it.
    pub key_id: u16,
    /// [`meeting_hash`] of the meeting.
    pub meeting: [u8; 16],
    /// [`cell_hash`] of the cell.
    pub cell: [u8; 16],
    /// First second a QR may be shown (unix).
    pub opens: u32,
    /// Last second a QR may be shown (unix).
    pub closes: u32,
    /// The secretary phone's P-256 key, compressed.
    pub secretary_key: [u8; COMPRESSED_KEY_LEN],
}

fn be_u16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl MeetingCredential {
    /// The signed part.
    pub fn encode_body(&self) -> [u8; CREDENTIAL_BODY_LEN] {
        let mut b = [0u8; CREDENTIAL_BODY_LEN];
        b[0] = FORMAT_VERSION;
        b[1..3].copy_from_slice(&self.key_id.to_be_bytes());
        b[3..19].copy_from_slice(&self.meeting);
        b[19..35].copy_from_slice(&self.cell);
        b[35..39].copy_from_slice(&self.opens.to_be_bytes());
        b[39..43].copy_from_slice(&self.closes.to_be_bytes());
        b[43..76].copy_from_slice(&self.secretary_key);
        b
    }

    /// The fields of a credential's first [`CREDENTIAL_LEN`] bytes (no signature checked).
    pub fn decode(bytes: &[u8]) -> Result<MeetingCredential, AttendanceError> {
        if bytes.len() < CREDENTIAL_LEN {
            return Err(bad("too short for a credential"));
        }
        if bytes[0] != FORMAT_VERSION {
            return Err(bad(&format!("unknown version {}", bytes[0])));
        }
        let mut meeting = [0u8; 16];
        meeting.copy_from_slice(&bytes[3..19]);
        let mut cell = [0u8; 16];
        cell.copy_from_slice(&bytes[19..35]);
        let mut secretary_key = [0u8; COMPRESSED_KEY_LEN];
        secretary_key.copy_from_slice(&bytes[43..76]);
        Ok(MeetingCredential {
            key_id: be_u16(&bytes[1..3]),
            meeting,
            cell,
            opens: be_u32(&bytes[35..39]),
            closes: be_u32(&bytes[39..43]),
            secretary_key,
        })
    }
}

fn bad(reason: &str) -> AttendanceError {
    AttendanceError::BadQr {
        reason: reason.to_owned(),
    }
}

fn forged(what: &str) -> AttendanceError {
    AttendanceError::Forged {
        what: what.to_owned(),
    }
}

fn signed_message(tag: &[u8], body: &[u8]) -> Vec<u8> {
    [tag, body].concat()
}

/// Verifies `signature` by the compressed key `key` over `tag || body`.
fn verifies(key: &[u8], tag: &[u8], body: &[u8], signature: &[u8]) -> bool {
    p256::decompress(key)
        .is_some_and(|full| p256::verify(&full, &signed_message(tag, body), signature))
}

/// The backend's attendance key: issues meeting credentials.
pub struct MeetingIssuer {
    key_id: u16,
    key: SoftwareKey,
}

impl MeetingIssuer {
    /// A new key; returns it with its PKCS#8 form to keep.
    pub fn generate(key_id: u16) -> Option<(MeetingIssuer, Vec<u8>)> {
        let (key, pkcs8) = SoftwareKey::generate()?;
        Some((MeetingIssuer { key_id, key }, pkcs8))
    }

    /// A key held elsewhere (the backend's settings, an HSM's software stand-in).
    pub fn from_key(key_id: u16, key: SoftwareKey) -> MeetingIssuer {
        MeetingIssuer { key_id, key }
    }

    /// The key's id.
    pub fn key_id(&self) -> u16 {
        self.key_id
    }

    /// The public key, SEC1 compressed (what meetings carry for phones to check).
    pub fn public_key(&self) -> [u8; COMPRESSED_KEY_LEN] {
        self.key.compressed_public_key()
    }

    /// A credential for `meeting_id` of `cell`, open from `opens` to `closes`, for the
    /// secretary phone's key (SEC1, compressed or not).
    pub fn issue(
        &self,
        meeting_id: &str,
        cell: &str,
        opens: u32,
        closes: u32,
        secretary_key: &[u8],
    ) -> Result<Vec<u8>, AttendanceError> {
        let invalid = |reason: &str| AttendanceError::InvalidCredential {
            reason: reason.to_owned(),
        };
        if closes <= opens {
            return Err(invalid("the window closes before it opens"));
        }
        let full = p256::decompress(secretary_key).ok_or_else(|| invalid("not a P-256 key"))?;
        let secretary_key = p256::compress(&full).ok_or_else(|| invalid("not a P-256 key"))?;
        let fields = MeetingCredential {
            key_id: self.key_id,
            meeting: meeting_hash(meeting_id),
            cell: cell_hash(cell),
            opens,
            closes,
            secretary_key,
        };
        let body = fields.encode_body();
        let signature = self
            .key
            .sign(&signed_message(CREDENTIAL_TAG, &body))
            .ok_or_else(|| invalid("signing failed"))?;
        Ok([&body[..], &signature[..]].concat())
    }
}

/// A meeting QR's content, its signatures checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShownQr {
    /// The credential it carries.
    pub credential: MeetingCredential,
    /// When the secretary's phone showed it (its clock).
    pub shown_at: u32,
    /// The QR's payload, as signed.
    pub payload: Vec<u8>,
}

/// Reads a meeting QR's text and checks it: the credential under `issuer_key` (compressed;
/// the key id must be `issuer_key_id`), the secretary's signature, the meeting's window.
pub fn read_qr(
    text: &str,
    issuer_key_id: u16,
    issuer_key: &[u8],
) -> Result<ShownQr, AttendanceError> {
    let body = text
        .trim()
        .strip_prefix(QR_PREFIX)
        .ok_or_else(|| bad("no HNM1: prefix"))?;
    if body.len() > QR_LEN * 2 {
        return Err(bad("too long"));
    }
    let payload = base45::decode(body).map_err(|_| bad("not base45"))?;
    check_qr(&payload, issuer_key_id, issuer_key)
}

fn check_qr(
    payload: &[u8],
    issuer_key_id: u16,
    issuer_key: &[u8],
) -> Result<ShownQr, AttendanceError> {
    if payload.len() != QR_LEN {
        return Err(bad(&format!("{} bytes, not {QR_LEN}", payload.len())));
    }
    let credential = MeetingCredential::decode(payload)?;
    if credential.key_id != issuer_key_id
        || !verifies(
            issuer_key,
            CREDENTIAL_TAG,
            &payload[..CREDENTIAL_BODY_LEN],
            &payload[CREDENTIAL_BODY_LEN..CREDENTIAL_LEN],
        )
    {
        return Err(forged("the backend's signature on the meeting credential"));
    }
    if !verifies(
        &credential.secretary_key,
        QR_TAG,
        &payload[..CREDENTIAL_LEN + 8],
        &payload[CREDENTIAL_LEN + 8..],
    ) {
        return Err(forged("the secretary's signature"));
    }
    let shown_at = be_u32(&payload[CREDENTIAL_LEN..]);
    if shown_at < credential.opens || shown_at > credential.closes {
        return Err(AttendanceError::NotOpen);
    }
    Ok(ShownQr {
        credential,
        shown_at,
        payload: payload.to_vec(),
    })
}

/// A check-in, its three signatures and its times checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCheckIn {
    /// The QR the member scanned.
    pub qr: ShownQr,
    /// When the member's phone scanned it (its clock).
    pub scanned_at: u32,
    /// The member phone's key, compressed.
    pub member_key: [u8; COMPRESSED_KEY_LEN],
}

/// Checks a check-in's bytes (what the backend does): the QR as [`read_qr`] does with the key
/// `issuer_key_for` gives for the credential's key id, the member's signature, and that
/// showing and scanning are at most [`MAX_SCAN_SKEW_SECS`] apart.
pub fn verify_check_in(
    evidence: &[u8],
    issuer_key_for: impl Fn(u16) -> Option<Vec<u8>>,
) -> Result<VerifiedCheckIn, AttendanceError> {
    if evidence.len() != CHECK_IN_LEN {
        return Err(bad(&format!(
            "a check-in is {CHECK_IN_LEN} bytes, not {}",
            evidence.len()
        )));
    }
    let credential = MeetingCredential::decode(evidence)?;
    let issuer_key =
        issuer_key_for(credential.key_id).ok_or_else(|| forged("an unknown backend key"))?;
    let qr = check_qr(&evidence[..QR_LEN], credential.key_id, &issuer_key)?;
    let scanned_at = be_u32(&evidence[QR_LEN..]);
    let mut member_key = [0u8; COMPRESSED_KEY_LEN];
    member_key.copy_from_slice(&evidence[QR_LEN + 4..QR_LEN + 4 + COMPRESSED_KEY_LEN]);
    let signed = QR_LEN + 4 + COMPRESSED_KEY_LEN;
    if !verifies(
        &member_key,
        CHECK_IN_TAG,
        &evidence[..signed],
        &evidence[signed..],
    ) {
        return Err(forged("the member's signature"));
    }
    let skew = i64::from(scanned_at) - i64::from(qr.shown_at);
    if skew.abs() > MAX_SCAN_SKEW_SECS {
        return Err(AttendanceError::Stale { seconds: skew });
    }
    Ok(VerifiedCheckIn {
        qr,
        scanned_at,
        member_key,
    })
}

/// The phone's handbook key (one per vault), made on first use: it signs the meeting QRs a
/// secretary shows and the check-ins a member makes.
pub fn device_key(vault: &Vault) -> Result<SoftwareKey, AttendanceError> {
    let unreadable = || AttendanceError::InvalidCredential {
        reason: "the stored handbook key is unreadable".into(),
    };
    if let Some(record) = vault.find(KEYS, "device")? {
        return SoftwareKey::from_pkcs8(&record.body).ok_or_else(unreadable);
    }
    let (_, pkcs8) = SoftwareKey::generate().ok_or_else(unreadable)?;
    // Two callers at once keep whichever key was stored first.
    let stored = vault.transaction(|tx| -> Result<Vec<u8>, VaultError> {
        Ok(match tx.get(KEYS, "device")? {
            Some(existing) => existing.body,
            None => {
                tx.put(KEYS, "device", &[], &pkcs8)?;
                pkcs8.clone()
            }
        })
    })?;
    SoftwareKey::from_pkcs8(&stored).ok_or_else(unreadable)
}

/// A meeting credential this phone holds as the cell's secretary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldMeetingCredential {
    /// The meeting.
    pub meeting_id: String,
    /// The credential's bytes, hex.
    pub credential: String,
}

impl Document for HeldMeetingCredential {
    const COLLECTION: &'static str = "handbook.meeting_credential";
    fn id(&self) -> String {
        self.meeting_id.clone()
    }
}

/// The secretary's side: the proof that asks for a credential, the credential kept, the QR
/// shown.
pub struct MeetingSecretary<'a> {
    vault: &'a Vault,
}

impl<'a> MeetingSecretary<'a> {
    /// The secretary's side over `vault`.
    pub fn new(vault: &'a Vault) -> Self {
        MeetingSecretary { vault }
    }

    /// The phone's key, compressed, and its signature over [`KEY_PROOF_TAG`], the meeting id
    /// and the key: what the backend asks before it issues a credential for the key.
    pub fn key_and_proof(
        &self,
        meeting_id: &str,
    ) -> Result<([u8; COMPRESSED_KEY_LEN], [u8; SIGNATURE_LEN]), AttendanceError> {
        let key = device_key(self.vault)?;
        let public = key.compressed_public_key();
        let proof = key
            .sign(&key_proof_message(meeting_id, &public))
            .ok_or_else(|| forged("signing failed"))?;
        Ok((public, proof))
    }

    /// Keeps a credential the backend issued for `meeting_id`: it must name that meeting and
    /// this phone's key.
    pub fn install(&self, meeting_id: &str, credential: &[u8]) -> Result<(), AttendanceError> {
        let invalid = |reason: &str| AttendanceError::InvalidCredential {
            reason: reason.to_owned(),
        };
        if credential.len() != CREDENTIAL_LEN {
            return Err(invalid("wrong length"));
        }
        let fields = MeetingCredential::decode(credential)?;
        if fields.meeting != meeting_hash(meeting_id) {
            return Err(invalid("it is for another meeting"));
        }
        if fields.secretary_key != device_key(self.vault)?.compressed_public_key() {
            return Err(invalid("it binds another phone's key"));
        }
        Ok(self.vault.put_doc(&HeldMeetingCredential {
            meeting_id: meeting_id.to_owned(),
            credential: crate::hex::encode(credential),
        })?)
    }

    /// The QR text to show for `meeting_id` at `now` (unix seconds, this phone's clock):
    /// a fresh one each call.
    pub fn qr(&self, meeting_id: &str, now: u32) -> Result<String, AttendanceError> {
        let held: HeldMeetingCredential =
            self.vault
                .get_doc(meeting_id)?
                .ok_or_else(|| AttendanceError::InvalidCredential {
                    reason: format!("no credential held for meeting {meeting_id}"),
                })?;
        let credential = crate::hex::decode(&held.credential)
            .filter(|c| c.len() == CREDENTIAL_LEN)
            .ok_or_else(|| AttendanceError::InvalidCredential {
                reason: "the stored credential is unreadable".into(),
            })?;
        let fields = MeetingCredential::decode(&credential)?;
        if now < fields.opens || now > fields.closes {
            return Err(AttendanceError::NotOpen);
        }
        let nonce = crate::hex::random(4)
            .ok()
            .and_then(|h| crate::hex::decode(&h))
            .ok_or_else(|| forged("no randomness"))?;
        let mut signed = credential;
        signed.extend_from_slice(&now.to_be_bytes());
        signed.extend_from_slice(&nonce);
        let signature = device_key(self.vault)?
            .sign(&signed_message(QR_TAG, &signed))
            .ok_or_else(|| forged("signing failed"))?;
        signed.extend_from_slice(&signature);
        Ok(format!("{QR_PREFIX}{}", base45::encode(&signed)))
    }
}

/// What the secretary's phone signs to prove it holds `key`.
pub fn key_proof_message(meeting_id: &str, key: &[u8]) -> Vec<u8> {
    [KEY_PROOF_TAG, meeting_id.as_bytes(), b"\0", key].concat()
}

/// The member's countersignature over a scanned QR: the check-in's bytes.
pub fn countersign(
    vault: &Vault,
    qr: &ShownQr,
    scanned_at: u32,
) -> Result<Vec<u8>, AttendanceError> {
    let key = device_key(vault)?;
    let mut evidence = qr.payload.clone();
    evidence.extend_from_slice(&scanned_at.to_be_bytes());
    evidence.extend_from_slice(&key.compressed_public_key());
    let signature = key
        .sign(&signed_message(CHECK_IN_TAG, &evidence))
        .ok_or_else(|| forged("signing failed"))?;
    evidence.extend_from_slice(&signature);
    Ok(evidence)
}

/// Where a check-in stands with the backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CheckInStatus {
    /// Not uploaded yet (or the upload's answer was lost).
    Pending,
    /// The backend verified and counted it (a repeat upload is accepted again).
    Accepted,
    /// The backend refused it, with its code (`forged`, `wrong_cell`, `late`, ...).
    Refused {
        /// The backend's code.
        reason: String,
    },
}

/// A member's signed check-in to a meeting, kept in the vault until the backend has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckIn {
    /// The meeting.
    pub meeting_id: String,
    /// The evidence ([`CHECK_IN_LEN`] bytes), hex.
    pub evidence: String,
    /// When the secretary's phone showed the QR (its clock, unix seconds).
    pub shown_at: u32,
    /// When this phone scanned it (its clock, unix seconds).
    pub scanned_at: u32,
    /// Where it stands with the backend.
    pub status: CheckInStatus,
}

impl Document for CheckIn {
    const COLLECTION: &'static str = "handbook.check_in";
    fn id(&self) -> String {
        self.meeting_id.clone()
    }
    fn index(&self) -> Vec<(String, String)> {
        let pending = matches!(self.status, CheckInStatus::Pending);
        vec![("pending".into(), pending.to_string())]
    }
}

/// The member's side: scan a meeting QR into a signed check-in, list and settle them.
pub struct CheckIns<'a> {
    vault: &'a Vault,
}

impl<'a> CheckIns<'a> {
    /// The member's check-ins in `vault`.
    pub fn new(vault: &'a Vault) -> Self {
        CheckIns { vault }
    }

    /// Checks the scanned `qr_text` against the meetings this phone holds (the meeting named,
    /// its cell, the backend's attendance key it carries), then countersigns it at `now` (this
    /// phone's clock) and keeps the check-in, with attendance recorded as present, in one
    /// transaction. Works offline; upload with the handbook client.
    pub fn scan(&self, qr_text: &str, now: u32) -> Result<CheckIn, AttendanceError> {
        let payload = qr_text
            .trim()
            .strip_prefix(QR_PREFIX)
            .filter(|b| b.len() <= QR_LEN * 2)
            .ok_or_else(|| bad("no HNM1: prefix, or too long"))
            .and_then(|b| base45::decode(b).map_err(|_| bad("not base45")))?;
        let named = MeetingCredential::decode(&payload)?;
        let meetings: Vec<super::member::Meeting> = self.vault.list_docs()?;
        let meeting = meetings
            .into_iter()
            .find(|m| meeting_hash(&m.id) == named.meeting)
            .ok_or(AttendanceError::UnknownMeeting)?;
        let not_verifiable = || AttendanceError::NotVerifiable {
            meeting_id: meeting.id.clone(),
        };
        let cell = meeting.cell.as_deref().ok_or_else(not_verifiable)?;
        let (key_id, key) = meeting
            .attendance_key
            .as_deref()
            .and_then(parse_attendance_key)
            .ok_or_else(not_verifiable)?;
        if cell_hash(cell) != named.cell {
            return Err(AttendanceError::WrongCell);
        }
        let qr = check_qr(&payload, key_id, &key)?;
        let skew = i64::from(now) - i64::from(qr.shown_at);
        if skew.abs() > MAX_SCAN_SKEW_SECS {
            return Err(AttendanceError::Stale { seconds: skew });
        }
        // Once per meeting; a check-in the backend refused may be made again.
        if let Some(existing) = self.vault.get_doc::<CheckIn>(&meeting.id)? {
            if !matches!(existing.status, CheckInStatus::Refused { .. }) {
                return Err(AttendanceError::AlreadyCheckedIn {
                    meeting_id: meeting.id,
                });
            }
        }
        let evidence = countersign(self.vault, &qr, now)?;
        let check_in = CheckIn {
            meeting_id: meeting.id.clone(),
            evidence: crate::hex::encode(&evidence),
            shown_at: qr.shown_at,
            scanned_at: now,
            status: CheckInStatus::Pending,
        };
        self.vault.transaction(|tx| {
            // Checked again where it is written: two scans at once make one check-in.
            if let Some(existing) = tx.get_doc::<CheckIn>(&meeting.id)? {
                if !matches!(existing.status, CheckInStatus::Refused { .. }) {
                    return Err(AttendanceError::AlreadyCheckedIn {
                        meeting_id: meeting.id.clone(),
                    });
                }
            }
            tx.put_doc(&check_in)?;
            super::member::queue_present(tx, &meeting.id, i64::from(now))?;
            Ok(())
        })?;
        Ok(check_in)
    }

    /// Every check-in, by meeting id.
    pub fn all(&self) -> Result<Vec<CheckIn>, AttendanceError> {
        let mut all: Vec<CheckIn> = self.vault.list_docs()?;
        all.sort_by(|a, b| a.meeting_id.cmp(&b.meeting_id));
        Ok(all)
    }

    /// Check-ins the backend has not answered.
    pub fn pending(&self) -> Result<Vec<CheckIn>, AttendanceError> {
        Ok(self.vault.query_docs("pending", "true")?)
    }

    /// Records the backend's answer for `meeting_id`'s check-in.
    pub fn settle(&self, meeting_id: &str, status: CheckInStatus) -> Result<(), AttendanceError> {
        self.vault.transaction(|tx| -> Result<(), VaultError> {
            if let Some(mut c) = tx.get_doc::<CheckIn>(meeting_id)? {
                c.status = status.clone();
                tx.put_doc(&c)?;
            }
            Ok(())
        })?;
        Ok(())
    }
}

/// A meeting's `attendance_key`: the key id (2 bytes) then the SEC1 compressed key, hex.
pub fn format_attendance_key(key_id: u16, public_key: &[u8]) -> String {
    crate::hex::encode(&[&key_id.to_be_bytes()[..], public_key].concat())
}

/// The key id and key of a meeting's `attendance_key`.
pub fn parse_attendance_key(text: &str) -> Option<(u16, Vec<u8>)> {
    let bytes = crate::hex::decode(text)?;
    (bytes.len() == 2 + COMPRESSED_KEY_LEN).then(|| (be_u16(&bytes), bytes[2..].to_vec()))
}
