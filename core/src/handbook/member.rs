//! The member's own handbook data, encrypted in the vault: profile, bookmarks and notes,
//! meetings and attendance, notices, and the four party procedures. Every change the member
//! makes is written together with its outbox entry, in one transaction.

use chrono::{Months, NaiveDate};

use crate::changes::outbox;
use crate::changes::{Collection, CollectionSpec, ConflictPolicy};
use crate::vault::{Document, Vault, VaultError, VaultTx};

/// Errors of the member service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemberError {
    /// A field was rejected; nothing was stored or queued.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field.
        field: String,
        /// Why.
        reason: String,
    },
    /// The meeting, notice or procedure does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was missing.
        what: String,
    },
    /// The procedure is not in a state that allows this.
    #[error("procedure is {state}, cannot {action}")]
    WrongState {
        /// Current state.
        state: String,
        /// Refused action.
        action: String,
    },
    /// The vault failed.
    #[error(transparent)]
    Vault(#[from] VaultError),
}

fn invalid(field: &str, reason: &str) -> MemberError {
    MemberError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(field: &str, text: &str) -> Result<NaiveDate, MemberError> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| invalid(field, "expected a date YYYY-MM-DD"))
}

fn required(field: &str, value: &str) -> Result<(), MemberError> {
    if value.trim().is_empty() {
        return Err(invalid(field, "is required"));
    }
    Ok(())
}

/// The member summary (Regulation 339-QĐ/TW).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemberProfile {
    /// Full name.
    pub full_name: String,
    /// `YYYY-MM-DD`.
    pub date_of_birth: String,
    /// Sex.
    pub sex: String,
    /// Date of joining, `YYYY-MM-DD`.
    pub joined_on: String,
    /// Date of becoming an official member, `YYYY-MM-DD` (empty while probationary).
    pub official_on: String,
    /// Party card number.
    pub party_card_number: String,
    /// The party cell (chi bộ).
    pub cell: String,
    /// The parent organisations, nearest first.
    pub parent_organisations: Vec<String>,
    /// Citizen ID (CCCD).
    pub citizen_id: String,
    /// Phone.
    pub phone: String,
}

impl Document for MemberProfile {
    const COLLECTION: &'static str = "handbook.profile";
    fn id(&self) -> String {
        "me".into()
    }
}

impl MemberProfile {
    fn validate(&self) -> Result<(), MemberError> {
        required("full_name", &self.full_name)?;
        required("cell", &self.cell)?;
        let born = parse_date("date_of_birth", &self.date_of_birth)?;
        let joined = parse_date("joined_on", &self.joined_on)?;
        if joined <= born {
            return Err(invalid("joined_on", "is before the date of birth"));
        }
        if !self.official_on.is_empty() && parse_date("official_on", &self.official_on)? < joined {
            return Err(invalid("official_on", "is before the date of joining"));
        }
        if !self.citizen_id.is_empty()
            && (self.citizen_id.len() != 12 || !self.citizen_id.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(invalid("citizen_id", "a CCCD number has 12 digits"));
        }
        Ok(())
    }
}

/// A personal note on a library document (or a bookmark when the text is empty).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DocumentNote {
    /// Note id.
    pub id: String,
    /// The library document.
    pub document_id: String,
    /// The note; empty for a plain bookmark.
    pub text: String,
    /// Device time of the last change (unix seconds).
    pub updated_at: i64,
}

impl Document for DocumentNote {
    const COLLECTION: &'static str = "handbook.note";
    fn id(&self) -> String {
        self.id.clone()
    }
    fn index(&self) -> Vec<(String, String)> {
        vec![("document".into(), self.document_id.clone())]
    }
}

/// A cell meeting, published by the backend.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Meeting {
    /// Meeting id.
    pub id: String,
    /// Date, `YYYY-MM-DD`.
    pub date: String,
    /// Topic.
    pub topic: String,
    /// Library documents to read beforehand.
    pub document_ids: Vec<String>,
    /// The cell it belongs to; set by the backend when it publishes the meeting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell: Option<String>,
    /// The backend's attendance key that signs the meeting's check-in credential (see
    /// [`super::attendance::format_attendance_key`]); set by the backend when it publishes the
    /// meeting. Without it the meeting takes only self-declared attendance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attendance_key: Option<String>,
    /// Meeting papers published with it, fetched when opened.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<crate::attachments::AttachmentRef>,
}

impl Document for Meeting {
    const COLLECTION: &'static str = "handbook.meeting";
    fn id(&self) -> String {
        self.id.clone()
    }
}

/// Attendance at a meeting.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum AttendanceStatus {
    /// Present.
    Present,
    /// Excused, with the reason.
    Excused {
        /// Why.
        reason: String,
    },
    /// Absent without excuse.
    Absent,
}

/// A recorded attendance.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Attendance {
    /// The meeting.
    pub meeting_id: String,
    /// The status.
    pub status: AttendanceStatus,
    /// Device time recorded (unix seconds).
    pub recorded_at: i64,
}

impl Document for Attendance {
    const COLLECTION: &'static str = "handbook.attendance";
    fn id(&self) -> String {
        self.meeting_id.clone()
    }
}

/// A notice from the cell.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Notice {
    /// Notice id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Text.
    pub body: String,
    /// `YYYY-MM-DD`.
    pub published_on: String,
    /// Whether the member has read it.
    pub read: bool,
}

impl Document for Notice {
    const COLLECTION: &'static str = "handbook.notice";
    fn id(&self) -> String {
        self.id.clone()
    }
}

/// The member read a notice: the member's own mark, synced to their other devices (notices
/// themselves belong to the cell and are read-only for devices).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NoticeRead {
    /// The notice.
    pub id: String,
    /// When (unix seconds).
    pub read_at: i64,
}

impl Document for NoticeRead {
    const COLLECTION: &'static str = "handbook.notice_read";
    fn id(&self) -> String {
        self.id.clone()
    }
}

/// Why a temporary transfer is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferPurpose {
    /// Work: 3 months to under 1 year.
    Work,
    /// Residence: 3 months to under 1 year.
    Residence,
    /// Study: 3 months to 2 years.
    Study,
}

/// The four procedures on the national public-service portal.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProcedureRequest {
    /// (1) Collecting and paying party fees.
    FeePayment {
        /// Months paid, `YYYY-MM`.
        months: Vec<String>,
        /// Amount (VND).
        amount_vnd: i64,
    },
    /// (2) Asking the residence-area cell for comments on conduct where the member lives.
    ResidenceComment {
        /// The residence-area cell.
        residence_cell: String,
        /// Address.
        address: String,
        /// Period commented on, `YYYY-MM-DD`.
        period_from: String,
        /// Period end, `YYYY-MM-DD`.
        period_to: String,
    },
    /// (3) Official transfer of party activity.
    OfficialTransfer {
        /// The receiving organisation.
        to_organisation: String,
        /// The member's self-review.
        self_review: String,
        /// Number of the decision on the new job or residence.
        decision_number: String,
        /// Its date, `YYYY-MM-DD`.
        decision_date: String,
    },
    /// (4) Temporary transfer of party activity.
    TemporaryTransfer {
        /// The receiving organisation.
        to_organisation: String,
        /// Why.
        purpose: TransferPurpose,
        /// First day, `YYYY-MM-DD`.
        from: String,
        /// Last day, `YYYY-MM-DD`.
        until: String,
    },
}

impl ProcedureRequest {
    /// Checks the request; every problem has its own field and reason.
    pub fn validate(&self) -> Result<(), MemberError> {
        match self {
            ProcedureRequest::FeePayment { months, amount_vnd } => {
                if months.is_empty() {
                    return Err(invalid("months", "name at least one month"));
                }
                let mut seen = std::collections::BTreeSet::new();
                for m in months {
                    let month = super::fees::YearMonth::parse(m)
                        .map_err(|_| invalid("months", "expected YYYY-MM"))?;
                    if !seen.insert(month) {
                        return Err(invalid("months", "names a month twice"));
                    }
                }
                if *amount_vnd <= 0 {
                    return Err(invalid("amount_vnd", "must be positive"));
                }
            }
            ProcedureRequest::ResidenceComment {
                residence_cell,
                address,
                period_from,
                period_to,
            } => {
                required("residence_cell", residence_cell)?;
                required("address", address)?;
                if parse_date("period_to", period_to)? <= parse_date("period_from", period_from)? {
                    return Err(invalid("period_to", "must be after period_from"));
                }
            }
            ProcedureRequest::OfficialTransfer {
                to_organisation,
                self_review,
                decision_number,
                decision_date,
            } => {
                required("to_organisation", to_organisation)?;
                if self_review.trim().chars().count() < 20 {
                    return Err(invalid(
                        "self_review",
                        "write the self-review (at least 20 characters)",
                    ));
                }
                required("decision_number", decision_number)?;
                parse_date("decision_date", decision_date)?;
            }
            ProcedureRequest::TemporaryTransfer {
                to_organisation,
                purpose,
                from,
                until,
            } => {
                required("to_organisation", to_organisation)?;
                let start = parse_date("from", from)?;
                // `until` is the last day: the transfer ends as the next day begins, so
                // 1 December to 28 February is three months, and to 30 November a full year.
                let end = parse_date("until", until)?
                    .succ_opt()
                    .ok_or_else(|| invalid("until", "out of range"))?;
                let at_least = start
                    .checked_add_months(Months::new(3))
                    .ok_or_else(|| invalid("from", "out of range"))?;
                if end < at_least {
                    return Err(invalid(
                        "until",
                        "a temporary transfer lasts at least 3 months",
                    ));
                }
                let (limit, inclusive, words) = match purpose {
                    TransferPurpose::Work | TransferPurpose::Residence => {
                        (12, false, "under 1 year for work or residence")
                    }
                    TransferPurpose::Study => (24, true, "at most 2 years for study"),
                };
                let cap = start
                    .checked_add_months(Months::new(limit))
                    .ok_or_else(|| invalid("from", "out of range"))?;
                if end > cap || (!inclusive && end == cap) {
                    return Err(invalid(
                        "until",
                        &format!("a temporary transfer lasts {words}"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Where a procedure stands.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ProcedureStatus {
    /// Being written; not sent.
    Draft,
    /// Validated and in the outbox, waiting for a network.
    Queued,
    /// Received by the portal.
    Submitted,
    /// Accepted.
    Accepted,
    /// Returned, with the reason.
    Returned {
        /// Why.
        reason: String,
    },
}

impl ProcedureStatus {
    /// A draft, or a procedure returned for correction: the member may edit and queue it.
    fn editable(&self) -> bool {
        matches!(
            self,
            ProcedureStatus::Draft | ProcedureStatus::Returned { .. }
        )
    }

    /// Whether a status the party organisation reports moves a procedure on from this one:
    /// queued to submitted, accepted or returned; submitted to accepted or returned; returned
    /// (not edited since) to submitted or accepted, which heals a returned state a stale
    /// report brought back after the procedure was sent again.
    pub fn reported_moves_to(&self, reported: &ProcedureStatus) -> bool {
        matches!(
            (self, reported),
            (
                ProcedureStatus::Queued,
                ProcedureStatus::Submitted
                    | ProcedureStatus::Accepted
                    | ProcedureStatus::Returned { .. }
            ) | (
                ProcedureStatus::Submitted,
                ProcedureStatus::Accepted | ProcedureStatus::Returned { .. }
            ) | (
                ProcedureStatus::Returned { .. },
                ProcedureStatus::Submitted | ProcedureStatus::Accepted
            )
        )
    }

    /// Whether a pulled copy of a procedure in status `pulled` replaces the one this phone holds
    /// (`None`: it holds none). The organisation's word moves it on as
    /// [`ProcedureStatus::reported_moves_to`] says; a queued copy (the member's own upload,
    /// from this phone or another) replaces only a draft, a returned or a queued one, never
    /// one already submitted or decided (a late echo of the upload); a draft never travels.
    pub fn pulled_replaces(held: Option<&ProcedureStatus>, pulled: &ProcedureStatus) -> bool {
        match (held, pulled) {
            (_, ProcedureStatus::Draft) => false,
            (None, _) => true,
            (Some(held), pulled) if held == pulled => true,
            (
                Some(
                    ProcedureStatus::Draft
                    | ProcedureStatus::Returned { .. }
                    | ProcedureStatus::Queued,
                ),
                ProcedureStatus::Queued,
            ) => true,
            (Some(held), pulled) => held.reported_moves_to(pulled),
        }
    }

    /// The status's name as it travels (`state`).
    pub fn name(&self) -> &'static str {
        match self {
            ProcedureStatus::Draft => "draft",
            ProcedureStatus::Queued => "queued",
            ProcedureStatus::Submitted => "submitted",
            ProcedureStatus::Accepted => "accepted",
            ProcedureStatus::Returned { .. } => "returned",
        }
    }
}

/// A procedure with its status.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Procedure {
    /// Id.
    pub id: String,
    /// The request.
    pub request: ProcedureRequest,
    /// Where it stands.
    pub status: ProcedureStatus,
    /// Device time of the last change.
    pub updated_at: i64,
}

impl Document for Procedure {
    const COLLECTION: &'static str = "handbook.procedure";
    fn id(&self) -> String {
        self.id.clone()
    }
}

fn queue_change<D: Document>(
    tx: &VaultTx<'_>,
    spec: &CollectionSpec,
    doc: &D,
    now: i64,
) -> Result<(), VaultError> {
    tx.put_doc(doc)?;
    let payload = serde_json::to_value(doc).map_err(|e| VaultError::InvalidArgument {
        reason: e.to_string(),
    })?;
    outbox::enqueue(tx, spec, &doc.id(), "put", payload, now.max(0) as u64)?;
    Ok(())
}

/// Notes: the member's own, edited on any device; the last writer wins.
const NOTES: CollectionSpec =
    CollectionSpec::device(DocumentNote::COLLECTION, ConflictPolicy::LastWriterWins);
/// Read marks of notices: the member's own; the last writer wins.
const NOTICE_READS: CollectionSpec =
    CollectionSpec::device(NoticeRead::COLLECTION, ConflictPolicy::LastWriterWins);
/// The profile: the cell's record of the member wins.
const PROFILES: CollectionSpec = CollectionSpec::device(
    MemberProfile::COLLECTION,
    ConflictPolicy::ServerAuthoritative,
);
/// Attendance as the member reports it; the cell's record wins.
const ATTENDANCE: CollectionSpec =
    CollectionSpec::device(Attendance::COLLECTION, ConflictPolicy::ServerAuthoritative);
/// Procedures the member files; the portal's status wins.
const PROCEDURES: CollectionSpec =
    CollectionSpec::device(Procedure::COLLECTION, ConflictPolicy::ServerAuthoritative);

/// The member's handbook over a vault.
pub struct MemberHandbook<'a> {
    vault: &'a Vault,
}

impl<'a> MemberHandbook<'a> {
    /// The handbook in `vault`.
    pub fn new(vault: &'a Vault) -> Self {
        MemberHandbook { vault }
    }

    /// Stores the profile (from the backend or edited by the member) after validation. It
    /// stays on this phone: it holds the member's citizen ID, which the backend keeps only
    /// keyed.
    pub fn set_profile(&self, profile: &MemberProfile) -> Result<(), MemberError> {
        profile.validate()?;
        Ok(self.vault.put_doc(profile)?)
    }

    /// The profile, if set.
    pub fn profile(&self) -> Result<Option<MemberProfile>, MemberError> {
        Ok(self.vault.get_doc("me")?)
    }

    /// Adds or edits a note (an empty text is a bookmark); queued for sync.
    pub fn save_note(&self, note: &DocumentNote) -> Result<(), MemberError> {
        required("id", &note.id)?;
        required("document_id", &note.document_id)?;
        Ok(self
            .vault
            .transaction(|tx| queue_change(tx, &NOTES, note, note.updated_at))?)
    }

    /// The notes on a document.
    pub fn notes_for(&self, document_id: &str) -> Result<Vec<DocumentNote>, MemberError> {
        Ok(self.vault.query_docs("document", document_id)?)
    }

    /// Stores meetings published by the backend.
    pub fn upsert_meetings(&self, meetings: &[Meeting]) -> Result<(), MemberError> {
        for m in meetings {
            required("meeting id", &m.id)?;
            parse_date("date", &m.date)?;
        }
        Ok(self
            .vault
            .transaction(|tx| meetings.iter().try_for_each(|m| tx.put_doc(m)))?)
    }

    /// Meetings on or after `from` (`YYYY-MM-DD`), soonest first.
    pub fn meetings_from(&self, from: &str) -> Result<Vec<Meeting>, MemberError> {
        let from = parse_date("from", from)?;
        let mut meetings: Vec<Meeting> = self.vault.list_docs()?;
        meetings.retain(|m| {
            parse_date("date", &m.date)
                .map(|d| d >= from)
                .unwrap_or(false)
        });
        meetings.sort_by(|a, b| a.date.cmp(&b.date));
        Ok(meetings)
    }

    /// Records attendance offline (queued for sync). An excuse needs a reason.
    pub fn record_attendance(
        &self,
        meeting_id: &str,
        status: AttendanceStatus,
        now: i64,
    ) -> Result<Attendance, MemberError> {
        if let AttendanceStatus::Excused { reason } = &status {
            required("reason", reason)?;
        }
        let attendance = Attendance {
            meeting_id: meeting_id.to_owned(),
            status,
            recorded_at: now,
        };
        self.vault
            .transaction(|tx| {
                if tx.get_doc::<Meeting>(meeting_id)?.is_none() {
                    return Err(VaultError::NotFound {
                        collection: Meeting::COLLECTION.into(),
                    });
                }
                queue_change(tx, &ATTENDANCE, &attendance, now)
            })
            .map_err(|e| match e {
                VaultError::NotFound { .. } => MemberError::NotFound {
                    what: format!("meeting {meeting_id}"),
                },
                other => other.into(),
            })?;
        Ok(attendance)
    }

    /// Stores notices from the backend (keeping the read state of ones already here).
    pub fn upsert_notices(&self, notices: &[Notice]) -> Result<(), MemberError> {
        self.vault.transaction(|tx| {
            for n in notices {
                let read = tx
                    .get_doc::<Notice>(&n.id)?
                    .map(|old| old.read)
                    .unwrap_or(false)
                    || n.read
                    || tx.get_doc::<NoticeRead>(&n.id)?.is_some();
                tx.put_doc(&Notice { read, ..n.clone() })?;
            }
            Ok(())
        })
    }

    /// Notices, newest first.
    pub fn notices(&self) -> Result<Vec<Notice>, MemberError> {
        let mut notices: Vec<Notice> = self.vault.list_docs()?;
        notices.sort_by(|a, b| b.published_on.cmp(&a.published_on).then(a.id.cmp(&b.id)));
        Ok(notices)
    }

    /// Marks a notice read (queued for sync).
    pub fn mark_notice_read(&self, id: &str, now: i64) -> Result<(), MemberError> {
        self.vault
            .transaction(|tx| {
                let mut notice = tx
                    .get_doc::<Notice>(id)?
                    .ok_or_else(|| VaultError::NotFound {
                        collection: Notice::COLLECTION.into(),
                    })?;
                notice.read = true;
                tx.put_doc(&notice)?;
                queue_change(
                    tx,
                    &NOTICE_READS,
                    &NoticeRead {
                        id: id.to_owned(),
                        read_at: now,
                    },
                    now,
                )
            })
            .map_err(|e| match e {
                VaultError::NotFound { .. } => MemberError::NotFound {
                    what: format!("notice {id}"),
                },
                other => other.into(),
            })
    }

    /// Saves a draft (not validated, not sent). A queued or later procedure cannot be edited.
    pub fn save_draft(
        &self,
        id: &str,
        request: ProcedureRequest,
        now: i64,
    ) -> Result<Procedure, MemberError> {
        required("id", id)?;
        let procedure = Procedure {
            id: id.to_owned(),
            request,
            status: ProcedureStatus::Draft,
            updated_at: now,
        };
        let mut state = None;
        self.vault.transaction(|tx| {
            if let Some(old) = tx.get_doc::<Procedure>(id)? {
                if !old.status.editable() {
                    state = Some(old.status.name());
                    return Ok(());
                }
            }
            tx.put_doc(&procedure)
        })?;
        if let Some(state) = state {
            return Err(MemberError::WrongState {
                state: state.into(),
                action: "edit it".into(),
            });
        }
        Ok(procedure)
    }

    /// Validates a draft and queues it for submission (outbox), in one transaction. A bad draft
    /// gets its specific reason and stays a draft.
    pub fn queue(&self, id: &str, now: i64) -> Result<Procedure, MemberError> {
        // Read, checked and queued in one transaction: two taps on "send" queue it once, and
        // an edit saved meanwhile is the one sent.
        self.vault.transaction(|tx| {
            let draft: Procedure = tx.get_doc(id)?.ok_or_else(|| MemberError::NotFound {
                what: format!("procedure {id}"),
            })?;
            if !draft.status.editable() {
                return Err(MemberError::WrongState {
                    state: draft.status.name().into(),
                    action: "queue it".into(),
                });
            }
            draft.request.validate()?;
            let queued = Procedure {
                status: ProcedureStatus::Queued,
                updated_at: now,
                ..draft
            };
            queue_change(tx, &PROCEDURES, &queued, now)?;
            Ok(queued)
        })
    }

    /// Applies a status reported by the backend (submitted, accepted, returned), in one
    /// transaction. Only a procedure on its way moves: queued to submitted, accepted or
    /// returned; submitted to accepted or returned; returned (not edited since) to submitted or
    /// accepted, which heals a returned state a stale report brought back after the procedure
    /// was sent again. The same status again changes nothing; a report for a procedure being
    /// edited, or decided, is refused with `WrongState` and leaves it as it is.
    pub fn apply_status(
        &self,
        id: &str,
        status: ProcedureStatus,
        now: i64,
    ) -> Result<Procedure, MemberError> {
        if matches!(status, ProcedureStatus::Draft | ProcedureStatus::Queued) {
            return Err(invalid(
                "status",
                "the backend reports submitted, accepted or returned",
            ));
        }
        self.vault.transaction(|tx| {
            let mut procedure: Procedure =
                tx.get_doc(id)?.ok_or_else(|| MemberError::NotFound {
                    what: format!("procedure {id}"),
                })?;
            if procedure.status == status {
                return Ok(procedure);
            }
            if !procedure.status.reported_moves_to(&status) {
                return Err(MemberError::WrongState {
                    state: procedure.status.name().into(),
                    action: format!("become {}", status.name()),
                });
            }
            procedure.status = status;
            procedure.updated_at = now;
            tx.put_doc(&procedure)?;
            Ok(procedure)
        })
    }

    /// Every procedure, most recently changed first.
    pub fn procedures(&self) -> Result<Vec<Procedure>, MemberError> {
        let mut all: Vec<Procedure> = self.vault.list_docs()?;
        all.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(a.id.cmp(&b.id)));
        Ok(all)
    }
}

/// Records the member present at `meeting_id` in `tx`, queued for sync (a verified check-in).
pub(crate) fn queue_present(
    tx: &crate::vault::VaultTx<'_>,
    meeting_id: &str,
    now: i64,
) -> Result<(), VaultError> {
    let attendance = Attendance {
        meeting_id: meeting_id.to_owned(),
        status: AttendanceStatus::Present,
        recorded_at: now,
    };
    queue_change(tx, &ATTENDANCE, &attendance, now)
}

/// The member handbook's synced collections, declared with their types (the library's
/// documents are declared in [`super::library`]).
pub fn synced() -> Vec<Collection> {
    vec![
        Collection::of_documents::<DocumentNote>(NOTES),
        Collection::of_documents::<MemberProfile>(PROFILES),
        Collection::of_documents::<Attendance>(ATTENDANCE),
        Collection::in_vault(PROCEDURES, |tx, id, payload, _now| {
            // Through the same rules as a reported status: a late echo of the member's own
            // upload never takes a decided procedure back to queued.
            let Some(pulled) = serde_json::from_value::<Procedure>(payload.clone())
                .ok()
                .filter(|p| p.id == id)
            else {
                return Ok(false);
            };
            let held = tx.get_doc::<Procedure>(id)?;
            if !ProcedureStatus::pulled_replaces(held.as_ref().map(|p| &p.status), &pulled.status) {
                return Ok(false);
            }
            tx.put_doc(&pulled)?;
            Ok(true)
        }),
        Collection::of_documents::<Meeting>(CollectionSpec::published_to_cell(Meeting::COLLECTION)),
        Collection::in_vault(NOTICE_READS, |tx, id, payload, _now| {
            // Under its change's id only (the version the conflict check read is that one's).
            let Some(mark) = serde_json::from_value::<NoticeRead>(payload.clone())
                .ok()
                .filter(|m| m.id == id)
            else {
                return Ok(false);
            };
            tx.put_doc(&mark)?;
            if let Some(mut notice) = tx.get_doc::<Notice>(id)? {
                notice.read = true;
                tx.put_doc(&notice)?;
            }
            Ok(true)
        }),
        Collection::in_vault(
            CollectionSpec::published_to_cell(Notice::COLLECTION),
            |tx, id, payload, _now| {
                // The read mark is the member's own: kept across the server's updates.
                let read = tx.get_doc::<Notice>(id)?.is_some_and(|n| n.read)
                    || tx.get_doc::<NoticeRead>(id)?.is_some();
                let mut payload = payload.clone();
                if let Some(fields) = payload.as_object_mut() {
                    let was = fields
                        .get("read")
                        .and_then(serde_json::Value::as_bool)
                        .unwrap_or(false);
                    fields.insert("read".into(), serde_json::Value::Bool(read || was));
                }
                let Ok(notice) = serde_json::from_value::<Notice>(payload) else {
                    return Ok(false);
                };
                tx.put_doc(&notice)?;
                Ok(true)
            },
        ),
    ]
}
