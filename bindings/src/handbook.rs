//! The party-member handbook for Kotlin and Swift: the document library with Vietnamese search,
//! and party fees.

use std::path::PathBuf;
use std::sync::Arc;

use thudo_core::handbook::fees::{self, FeeBasis, WageRegion};
use thudo_core::handbook::library::{
    self, LibraryDocument as PartyDocument, SearchHit as DocumentHit,
};

use crate::{blocking, fit, now, signed};

/// Errors of handbook calls.
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[uniffi::export(Display)]
pub enum HandbookError {
    /// Bad input (query too long, document without title, unknown month, ...).
    #[error("invalid: {reason}")]
    Invalid {
        /// What was wrong.
        reason: String,
    },
    /// No fee rule covers the month or the basis.
    #[error("no fee rule: {reason}")]
    NoRule {
        /// What had no rule.
        reason: String,
    },
    /// The meeting, notice or procedure does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was missing.
        what: String,
    },
    /// The procedure's state does not allow this.
    #[error("procedure is {state}, cannot {action}")]
    WrongState {
        /// Current state.
        state: String,
        /// Refused action.
        action: String,
    },
    /// The vault under the call failed (closed, locked, its key lost, its disk): the same
    /// faults in every domain's error.
    #[error("{fault}")]
    Vault {
        /// What failed.
        fault: crate::VaultFault,
    },
    /// A meeting QR or check-in was refused (see `CheckInRefusal`).
    #[error("check-in refused ({refusal:?}): {reason}")]
    CheckInRefused {
        /// Why, for the app to say.
        refusal: CheckInRefusal,
        /// In words.
        reason: String,
    },
    /// A bug in the library.
    #[error("internal error: {reason}")]
    Internal {
        /// What happened.
        reason: String,
    },
}

/// Why a meeting QR or a check-in was refused on the phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum CheckInRefusal {
    /// Not a meeting QR (another code, truncated, altered text).
    BadQr,
    /// A signature does not verify: forged or altered.
    Forged,
    /// A meeting this phone does not hold (another cell's, or not synced yet).
    UnknownMeeting,
    /// The meeting is another cell's.
    WrongCell,
    /// The meeting takes no signed check-ins (published without an attendance key).
    NotVerifiable,
    /// Outside the meeting's day.
    NotOpen,
    /// Shown and scanned more than five minutes apart (a stale screenshot, a clock far off).
    Stale,
    /// This member already checked in to the meeting.
    AlreadyCheckedIn,
    /// A credential that is not this phone's or not the meeting's.
    InvalidCredential,
}

impl From<library::LibraryError> for HandbookError {
    fn from(e: library::LibraryError) -> Self {
        match e {
            library::LibraryError::Invalid { reason } => HandbookError::Invalid { reason },
            library::LibraryError::Storage { reason } => HandbookError::Vault {
                fault: crate::VaultFault::Storage { reason },
            },
            library::LibraryError::NewerSchema { found, supported } => HandbookError::Vault {
                fault: crate::VaultFault::NewerSchema {
                    found: found.into(),
                    supported: supported.into(),
                },
            },
        }
    }
}

impl From<fees::FeeError> for HandbookError {
    fn from(e: fees::FeeError) -> Self {
        match e {
            fees::FeeError::Invalid { reason } => HandbookError::Invalid { reason },
            fees::FeeError::NoRule { what } => HandbookError::NoRule { reason: what },
            fees::FeeError::NotAssessed { month } => HandbookError::NotFound {
                what: format!("fee assessment for {month}"),
            },
            fees::FeeError::Vault(v) => v.into(),
        }
    }
}

/// A published party document (core's type, carried as it is).
#[uniffi::remote(Record)]
pub struct PartyDocument {
    /// Stable id.
    pub id: String,
    /// Number, such as `57-NQ/TW`.
    pub number: String,
    /// Issuing body.
    pub issuer: String,
    /// `YYYY-MM-DD`.
    pub issued_on: String,
    /// Kind (resolution, directive, ...).
    pub kind: String,
    /// Title.
    pub title: String,
    /// Full text.
    pub body: String,
    /// Files published with it (fetch with `AttachmentStore.fetch`).
    #[uniffi(default = [])]
    pub attachments: Vec<thudo_core::attachments::AttachmentRef>,
}

/// A search result (core's type, carried as it is).
#[uniffi::remote(Record)]
pub struct DocumentHit {
    /// Document id.
    pub id: String,
    /// Number.
    pub number: String,
    /// Title.
    pub title: String,
    /// Kind.
    pub kind: String,
    /// Date issued.
    pub issued_on: String,
    /// A passage with matches in `<mark>`…`</mark>` (other HTML escaped).
    pub snippet: String,
    /// Higher is better.
    pub score: f64,
}

/// The offline document library (public content; personal notes live in the vault).
#[derive(uniffi::Object)]
pub struct HandbookLibrary {
    pub(crate) inner: Arc<library::Library>,
}

#[uniffi::export(async_runtime = "tokio")]
impl HandbookLibrary {
    /// Opens (or creates) the library file at `path`.
    #[uniffi::constructor]
    pub async fn open(path: String) -> Result<Arc<Self>, HandbookError> {
        blocking(move || library::Library::open(&PathBuf::from(path)).map_err(HandbookError::from))
            .await
            .map(|l| Arc::new(HandbookLibrary { inner: Arc::new(l) }))
    }

    /// Inserts or replaces documents (all or none).
    pub async fn upsert(&self, documents: Vec<PartyDocument>) -> Result<(), HandbookError> {
        let inner = self.inner.clone();
        blocking(move || inner.upsert(&documents).map_err(HandbookError::from)).await
    }

    /// Accent- and case-insensitive search; exact accents, numbers and titles rank first.
    pub async fn search(
        &self,
        query: String,
        limit: i32,
    ) -> Result<Vec<DocumentHit>, HandbookError> {
        let inner = self.inner.clone();
        let limit = fit("limit", limit.into()).map_err(invalid)?;
        blocking(move || Ok(inner.search(&query, limit)?)).await
    }

    /// A document by id.
    pub async fn get(&self, id: String) -> Result<Option<PartyDocument>, HandbookError> {
        let inner = self.inner.clone();
        blocking(move || Ok(inner.get(&id)?)).await
    }

    /// Tells `listener` of every committed change to the documents (`["handbook.documents"]`):
    /// upserts, removals and documents applied by sync. See `Vault.observe`.
    pub fn observe(
        &self,
        listener: Arc<dyn crate::vault::ChangeListener>,
    ) -> Arc<crate::vault::ChangeSubscription> {
        let id = self
            .inner
            .observe(crate::vault::filtered(Vec::new(), listener));
        let library = Arc::downgrade(&self.inner);
        crate::vault::ChangeSubscription::new(move || {
            if let Some(library) = library.upgrade() {
                library.unobserve(id);
            }
        })
    }

    /// Removes a document; returns whether it was there.
    pub async fn remove(&self, id: String) -> Result<bool, HandbookError> {
        let inner = self.inner.clone();
        blocking(move || inner.remove(&id).map_err(HandbookError::from)).await
    }
}

/// What a member's fee is computed from (core's type, carried as it is).
#[uniffi::remote(Enum)]
pub enum FeeBasis {
    /// Public body or armed forces: salary plus allowances (342-QĐ/TW), social-insurance
    /// salary (01-QĐ/TW); 1%.
    SocialInsuranceSalary,
    /// Enterprise: payroll wages (342-QĐ/TW), social-insurance salary (01-QĐ/TW); 1%.
    EnterpriseWage,
    /// Sick or maternity benefit (1%, 01-QĐ/TW only).
    SickOrMaternityBenefit,
    /// Pension (0.5%).
    Pension,
    /// Student (fixed).
    Student,
    /// Neither social insurance nor a pension: an amount the cell set (342-QĐ/TW), a share of
    /// the regional minimum wage (01-QĐ/TW).
    OtherIncome,
    /// Abroad: a share of the living allowance, or a fixed amount.
    Abroad,
}

/// A regional minimum-wage region (core's type, carried as it is).
#[uniffi::remote(Enum)]
pub enum WageRegion {
    /// Region I (Hanoi's inner districts).
    I,
    /// Region II.
    II,
    /// Region III.
    III,
    /// Region IV.
    IV,
}

/// An exemption or reduction.
#[derive(Debug, Clone, uniffi::Enum)]
pub enum FeeRelief {
    /// Exempt.
    Exempt,
    /// 30, 50 or 70% off for 1-12 months from `from_month` (`YYYY-MM`).
    Reduction {
        /// 30, 50 or 70.
        percent: i32,
        /// First month, `YYYY-MM`.
        from_month: String,
        /// 1-12.
        months: i32,
    },
}

/// A member's situation for fee purposes. Only `basis` is always needed; the rest is what the
/// basis names.
#[derive(Debug, Clone, uniffi::Record)]
pub struct FeeSituation {
    /// The basis.
    pub basis: FeeBasis,
    /// Salary, wage, benefit, pension or living allowance (VND); 0 for bases without one.
    #[uniffi(default = 0)]
    pub income_vnd: i64,
    /// Past working age (changes the other-income rate).
    #[uniffi(default = false)]
    pub past_working_age: bool,
    /// Where the cell sits (for a share of the regional minimum wage).
    #[uniffi(default = None)]
    pub region: Option<WageRegion>,
    /// The monthly amount the cell set, for bases that take one (VND).
    #[uniffi(default = None)]
    pub set_amount_vnd: Option<i64>,
    /// An exemption or reduction.
    #[uniffi(default = None)]
    pub relief: Option<FeeRelief>,
}

/// A member's situation from a month on, for a statement over many months.
#[derive(Debug, Clone, uniffi::Record)]
pub struct FeePeriod {
    /// First month, `YYYY-MM`.
    pub since_month: String,
    /// The situation.
    pub situation: FeeSituation,
}

/// A computed monthly fee.
#[derive(Debug, Clone, uniffi::Record)]
pub struct FeeAssessment {
    /// `YYYY-MM`.
    pub month: String,
    /// Regulation applied.
    pub regulation: String,
    /// The basis charged (absent for entries recorded before bases were named).
    #[uniffi(default = None)]
    pub basis: Option<FeeBasis>,
    /// The rule applied, in words (with the minimum wage and its decree where one is used).
    #[uniffi(default = "")]
    pub rule: String,
    /// Whether the rule is confirmed against the official text (false: an assumption).
    #[uniffi(default = false)]
    pub rule_confirmed: bool,
    /// Before relief (VND).
    pub base_vnd: i64,
    /// Percent taken off.
    pub relief_percent: i32,
    /// Due (VND).
    pub due_vnd: i64,
}

/// Fees month by month over a run of months.
#[derive(Debug, Clone, uniffi::Record)]
pub struct FeeStatement {
    /// One assessment a month, in order.
    pub months: Vec<FeeAssessment>,
    /// Sum due over `months` (VND).
    pub total_due_vnd: i64,
    /// The months no modelled rule prices (sick leave under 342-QĐ/TW, a month before April
    /// 2011), in order: the cell sets them by hand; they are not in the total.
    pub unpriced: Vec<FeeUnpricedMonth>,
}

/// A month of a statement that no modelled rule prices.
#[derive(Debug, Clone, uniffi::Record)]
pub struct FeeUnpricedMonth {
    /// `YYYY-MM`.
    pub month: String,
    /// What had no rule, in words.
    pub reason: String,
}

fn core_situation(s: FeeSituation) -> Result<fees::FeeSituation, HandbookError> {
    let relief = match s.relief {
        None => None,
        Some(FeeRelief::Exempt) => Some(fees::Relief::Exempt),
        Some(FeeRelief::Reduction {
            percent,
            from_month,
            months,
        }) => Some(fees::Relief::Reduction {
            percent: fit("percent", percent.into()).map_err(invalid)?,
            from: fees::YearMonth::parse(&from_month)?,
            months: fit("months", months.into()).map_err(invalid)?,
        }),
    };
    Ok(fees::FeeSituation {
        basis: s.basis,
        income_vnd: fit("income_vnd", s.income_vnd).map_err(invalid)?,
        relief,
        past_working_age: s.past_working_age,
        region: s.region,
        set_amount_vnd: s
            .set_amount_vnd
            .map(|v| fit("set_amount_vnd", v))
            .transpose()
            .map_err(invalid)?,
    })
}

fn ffi_assessment(a: fees::Assessment) -> FeeAssessment {
    FeeAssessment {
        month: a.month.to_string(),
        regulation: a.regulation,
        basis: a.basis,
        rule: a.rule,
        rule_confirmed: a.rule_confirmed,
        base_vnd: signed(a.base_vnd),
        relief_percent: a.relief_percent.into(),
        due_vnd: signed(a.due_vnd),
    }
}

/// The party fee for `month` (`YYYY-MM`) under the regulation in force that month: Decision
/// 342-QĐ/TW from April 2011, Regulation 01-QĐ/TW from February 2026 (its minimum-wage shares
/// step up in January 2028).
#[uniffi::export]
pub fn compute_party_fee(
    situation: FeeSituation,
    month: String,
) -> Result<FeeAssessment, HandbookError> {
    let situation = core_situation(situation)?;
    let rules = fees::FeeRules::official()?;
    Ok(ffi_assessment(
        rules.assess(&situation, fees::YearMonth::parse(&month)?)?,
    ))
}

/// The party fee for every month from `from_month` to `to_month` (`YYYY-MM`, both included),
/// each month under its regulation and the period of `periods` it falls in: arrears, or a
/// member's history across the 2026 change of regulation. At most 1,200 months.
#[uniffi::export]
pub fn compute_party_fee_statement(
    periods: Vec<FeePeriod>,
    from_month: String,
    to_month: String,
) -> Result<FeeStatement, HandbookError> {
    let periods = periods
        .into_iter()
        .map(|p| {
            Ok(fees::FeePeriod {
                since: fees::YearMonth::parse(&p.since_month)?,
                situation: core_situation(p.situation)?,
            })
        })
        .collect::<Result<Vec<_>, HandbookError>>()?;
    let statement = fees::FeeRules::official()?.statement(
        &periods,
        fees::YearMonth::parse(&from_month)?,
        fees::YearMonth::parse(&to_month)?,
    )?;
    Ok(FeeStatement {
        months: statement.months.into_iter().map(ffi_assessment).collect(),
        total_due_vnd: signed(statement.total_due_vnd),
        unpriced: statement
            .unpriced
            .into_iter()
            .map(|u| FeeUnpricedMonth {
                month: u.month.to_string(),
                reason: u.reason,
            })
            .collect(),
    })
}

use thudo_core::handbook::member::{
    self, AttendanceStatus, DocumentNote, Meeting, MemberProfile, Notice,
    Procedure as ProcedureInfo, ProcedureRequest, ProcedureStatus, TransferPurpose,
};

impl From<member::MemberError> for HandbookError {
    fn from(e: member::MemberError) -> Self {
        match e {
            member::MemberError::Invalid { field, reason } => HandbookError::Invalid {
                reason: format!("{field}: {reason}"),
            },
            member::MemberError::NotFound { what } => HandbookError::NotFound { what },
            member::MemberError::WrongState { state, action } => {
                HandbookError::WrongState { state, action }
            }
            member::MemberError::Vault(v) => v.into(),
        }
    }
}

/// A personal note or bookmark on a library document (core's type, carried as it is).
#[uniffi::remote(Record)]
pub struct DocumentNote {
    /// Note id.
    pub id: String,
    /// The library document.
    pub document_id: String,
    /// The text; empty for a bookmark.
    pub text: String,
    /// Last change (unix seconds).
    pub updated_at: i64,
}

/// The member summary (core's type, carried as it is).
#[uniffi::remote(Record)]
pub struct MemberProfile {
    /// Full name.
    pub full_name: String,
    /// `YYYY-MM-DD`.
    pub date_of_birth: String,
    /// Sex.
    pub sex: String,
    /// `YYYY-MM-DD`.
    pub joined_on: String,
    /// `YYYY-MM-DD`, empty while probationary.
    pub official_on: String,
    /// Party card number.
    pub party_card_number: String,
    /// Party cell.
    pub cell: String,
    /// Parent organisations, nearest first.
    pub parent_organisations: Vec<String>,
    /// CCCD (12 digits) or empty.
    pub citizen_id: String,
    /// Phone.
    pub phone: String,
}

/// A cell meeting (core's type, carried as it is).
#[uniffi::remote(Record)]
pub struct Meeting {
    /// Id.
    pub id: String,
    /// `YYYY-MM-DD`.
    pub date: String,
    /// Topic.
    pub topic: String,
    /// Documents to read beforehand.
    pub document_ids: Vec<String>,
    /// The cell it belongs to (set by the backend when it publishes it).
    #[uniffi(default = None)]
    pub cell: Option<String>,
    /// The backend's attendance key for signed check-ins (set by the backend when it
    /// publishes it; opaque to apps).
    #[uniffi(default = None)]
    pub attendance_key: Option<String>,
    /// Meeting papers published with it (fetch with `AttachmentStore.fetch`).
    #[uniffi(default = [])]
    pub attachments: Vec<thudo_core::attachments::AttachmentRef>,
}

/// Attendance at a meeting (core's type, carried as it is).
#[uniffi::remote(Enum)]
pub enum AttendanceStatus {
    /// Present.
    Present,
    /// Excused, with a reason.
    Excused {
        /// Why.
        reason: String,
    },
    /// Absent.
    Absent,
}

/// A notice from the cell (core's type, carried as it is).
#[uniffi::remote(Record)]
pub struct Notice {
    /// Id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Text.
    pub body: String,
    /// `YYYY-MM-DD`.
    pub published_on: String,
    /// Read?
    pub read: bool,
}

/// Why a temporary transfer is asked for (core's type, carried as it is).
#[uniffi::remote(Enum)]
pub enum TransferPurpose {
    /// Work: 3 months to under 1 year.
    Work,
    /// Residence: 3 months to under 1 year.
    Residence,
    /// Study: 3 months to 2 years.
    Study,
}

/// One of the four party procedures (core's type, carried as it is).
#[uniffi::remote(Enum)]
pub enum ProcedureRequest {
    /// Paying party fees.
    FeePayment {
        /// Months, `YYYY-MM`.
        months: Vec<String>,
        /// VND.
        amount_vnd: i64,
    },
    /// Comments from the residence-area cell.
    ResidenceComment {
        /// The residence cell.
        residence_cell: String,
        /// Address.
        address: String,
        /// `YYYY-MM-DD`.
        period_from: String,
        /// `YYYY-MM-DD`.
        period_to: String,
    },
    /// Official transfer of party activity.
    OfficialTransfer {
        /// Receiving organisation.
        to_organisation: String,
        /// Self-review.
        self_review: String,
        /// Decision number.
        decision_number: String,
        /// `YYYY-MM-DD`.
        decision_date: String,
    },
    /// Temporary transfer of party activity.
    TemporaryTransfer {
        /// Receiving organisation.
        to_organisation: String,
        /// Why.
        purpose: TransferPurpose,
        /// `YYYY-MM-DD`.
        from: String,
        /// `YYYY-MM-DD`.
        until: String,
    },
}

/// Where a procedure stands (core's type, carried as it is).
#[uniffi::remote(Enum)]
pub enum ProcedureStatus {
    /// Being written.
    Draft,
    /// Validated, in the outbox.
    Queued,
    /// Received by the portal.
    Submitted,
    /// Accepted.
    Accepted,
    /// Returned with a reason.
    Returned {
        /// Why.
        reason: String,
    },
}

/// The fee ledger's standing for a year.
#[derive(Debug, Clone, uniffi::Record)]
pub struct FeeStanding {
    /// Months assessed, `YYYY-MM`.
    pub assessed: Vec<String>,
    /// Months not fully paid.
    pub unpaid: Vec<String>,
    /// Three or more unpaid months (can lead to removal).
    pub serious: bool,
}

/// A procedure, what it asks and its status (core's type, carried as it is).
#[uniffi::remote(Record)]
pub struct ProcedureInfo {
    /// Id.
    pub id: String,
    /// What it asks.
    pub request: ProcedureRequest,
    /// Where it stands.
    pub status: ProcedureStatus,
    /// Device time of the last change.
    pub updated_at: i64,
}

/// The member's own handbook data, encrypted in the vault; every change the member makes is
/// queued for sync in the same transaction.
#[derive(uniffi::Object)]
pub struct MemberHandbook {
    pub(crate) vault: Arc<thudo_core::vault::Vault>,
}

impl MemberHandbook {
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(member::MemberHandbook<'_>) -> Result<T, member::MemberError> + Send + 'static,
    ) -> Result<T, HandbookError> {
        let vault = self.vault.clone();
        blocking(move || work(member::MemberHandbook::new(&vault)).map_err(HandbookError::from))
            .await
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl MemberHandbook {
    /// The handbook stored in `vault`.
    #[uniffi::constructor]
    pub fn new(vault: Arc<crate::vault::Vault>) -> Arc<Self> {
        Arc::new(MemberHandbook {
            vault: vault.core(),
        })
    }

    /// Stores the profile after validation.
    pub async fn set_profile(&self, profile: MemberProfile) -> Result<(), HandbookError> {
        self.run(move |h| h.set_profile(&profile)).await
    }

    /// The profile, if set.
    pub async fn profile(&self) -> Result<Option<MemberProfile>, HandbookError> {
        self.run(|h| h.profile()).await
    }

    /// Saves a personal note (empty text: a bookmark) on a library document, stamped now; it
    /// syncs to the member's other devices (last writer wins).
    pub async fn save_note(
        &self,
        id: String,
        document_id: String,
        text: String,
    ) -> Result<DocumentNote, HandbookError> {
        self.run(move |h| {
            let note = member::DocumentNote {
                id,
                document_id,
                text,
                updated_at: now(),
            };
            h.save_note(&note).map(|()| note)
        })
        .await
    }

    /// The notes and bookmarks on a document.
    pub async fn notes_for(&self, document_id: String) -> Result<Vec<DocumentNote>, HandbookError> {
        self.run(move |h| h.notes_for(&document_id)).await
    }

    /// Stores meetings from the backend.
    pub async fn upsert_meetings(&self, meetings: Vec<Meeting>) -> Result<(), HandbookError> {
        self.run(move |h| h.upsert_meetings(&meetings)).await
    }

    /// Meetings on or after `from` (`YYYY-MM-DD`).
    pub async fn meetings_from(&self, from: String) -> Result<Vec<Meeting>, HandbookError> {
        self.run(move |h| h.meetings_from(&from)).await
    }

    /// Records attendance offline (queued for sync); an excuse needs a reason.
    pub async fn record_attendance(
        &self,
        meeting_id: String,
        status: AttendanceStatus,
    ) -> Result<(), HandbookError> {
        self.run(move |h| h.record_attendance(&meeting_id, status, now()).map(|_| ()))
            .await
    }

    /// Stores notices from the backend, keeping read state.
    pub async fn upsert_notices(&self, notices: Vec<Notice>) -> Result<(), HandbookError> {
        self.run(move |h| h.upsert_notices(&notices)).await
    }

    /// Notices, newest first.
    pub async fn notices(&self) -> Result<Vec<Notice>, HandbookError> {
        self.run(|h| h.notices()).await
    }

    /// Marks a notice read (queued for sync).
    pub async fn mark_notice_read(&self, id: String) -> Result<(), HandbookError> {
        self.run(move |h| h.mark_notice_read(&id, now())).await
    }

    /// Saves a procedure draft (not validated yet).
    pub async fn save_draft(
        &self,
        id: String,
        request: ProcedureRequest,
    ) -> Result<ProcedureInfo, HandbookError> {
        self.run(move |h| h.save_draft(&id, request, now())).await
    }

    /// Validates a draft and queues it for submission; a bad draft stays a draft.
    pub async fn queue_procedure(&self, id: String) -> Result<ProcedureInfo, HandbookError> {
        self.run(move |h| h.queue(&id, now())).await
    }

    /// Applies a status reported by the backend.
    pub async fn apply_procedure_status(
        &self,
        id: String,
        status: ProcedureStatus,
    ) -> Result<ProcedureInfo, HandbookError> {
        self.run(move |h| h.apply_status(&id, status, now())).await
    }

    /// Records a month's assessment in the fee ledger (keeps what was paid).
    pub async fn record_fee_assessment(
        &self,
        assessment: FeeAssessment,
    ) -> Result<(), HandbookError> {
        let vault = self.vault.clone();
        blocking(move || {
            let a = fees::Assessment {
                month: fees::YearMonth::parse(&assessment.month)?,
                regulation: assessment.regulation,
                basis: assessment.basis,
                rule: assessment.rule,
                rule_confirmed: assessment.rule_confirmed,
                base_vnd: fit("base_vnd", assessment.base_vnd).map_err(invalid)?,
                relief_percent: fit("relief_percent", assessment.relief_percent.into())
                    .map_err(invalid)?,
                due_vnd: fit("due_vnd", assessment.due_vnd).map_err(invalid)?,
            };
            Ok(fees::FeeLedger::new(&vault).record_assessment(a)?)
        })
        .await
    }

    /// Records a payment for an assessed month (`YYYY-MM`).
    pub async fn record_fee_payment(
        &self,
        month: String,
        amount_vnd: i64,
    ) -> Result<(), HandbookError> {
        let vault = self.vault.clone();
        let amount_vnd = fit("amount_vnd", amount_vnd).map_err(invalid)?;
        blocking(move || {
            fees::FeeLedger::new(&vault)
                .record_payment(fees::YearMonth::parse(&month)?, amount_vnd)?;
            Ok(())
        })
        .await
    }

    /// The year's fee standing today: the months before this one (in Hanoi) not paid in full,
    /// and whether three or more are.
    pub async fn fee_standing(&self, year: i32) -> Result<FeeStanding, HandbookError> {
        let vault = self.vault.clone();
        let year = fit("year", year.into()).map_err(invalid)?;
        let this_month =
            fees::YearMonth::in_hanoi(now()).ok_or_else(|| HandbookError::Internal {
                reason: "the clock is outside the calendar".into(),
            })?;
        blocking(move || {
            let s = fees::FeeLedger::new(&vault).standing(year, this_month)?;
            Ok(FeeStanding {
                assessed: s.assessed.iter().map(ToString::to_string).collect(),
                unpaid: s.unpaid.iter().map(ToString::to_string).collect(),
                serious: s.serious,
            })
        })
        .await
    }

    /// Every procedure, most recent first.
    pub async fn procedures(&self) -> Result<Vec<ProcedureInfo>, HandbookError> {
        self.run(|h| h.procedures()).await
    }
}

crate::error_api!(HandbookError, vault: "handbook", internal: Internal, {
        Invalid => ("handbook.invalid", false),
        NoRule => ("handbook.no_rule", false),
        NotFound => ("handbook.not_found", false),
        WrongState => ("handbook.wrong_state", false),
        CheckInRefused => ("handbook.check_in_refused", false),
        Internal => ("handbook.internal", false),
});

fn invalid(reason: String) -> HandbookError {
    HandbookError::Invalid { reason }
}
