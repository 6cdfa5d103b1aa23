//! Reminders across the domains, offline: cell meetings, party-fee months due or unpaid, transit
//! passes ending and credentials to renew, children's vaccine doses due or overdue. Each has a
//! stable id, so an app can schedule local notifications and replace them when the list
//! changes, with no server push.
//!
//! This module sits above the domains, beside [`crate::collections`]: it reads each through its
//! public API and none of them knows it. Observe [`SOURCES`] in the vault to learn when the list
//! may have changed.
//!
//! Times are unix seconds. Dates without a time (a meeting day, a fee month, a dose's due day)
//! are reminded at 08:00 Hanoi time (UTC+7, no daylight saving).

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Offset, Utc};

use crate::handbook::fees::{FeeError, FeeLedger, YearMonth};
use crate::handbook::member::{MemberError, MemberHandbook};
use crate::health::fhir;
use crate::health::records::{HealthBook, HealthError};
use crate::health::schedule::{self, DoseState};
use crate::transit::phone::Phone;
use crate::transit::Product;
use crate::vault::{Vault, VaultError};

/// The vault collections reminders are read from: a committed change to any of them may change
/// the list.
pub const SOURCES: &[&str] = &[
    "handbook.profile",
    "handbook.meeting",
    "handbook.fee",
    "health.records",
    "transit.phone",
];

/// Children get vaccine reminders until this age in years: the programme's last dose is the
/// booster at 7, and an adult's missing childhood doses are not news.
pub const VACCINE_REMINDER_AGE_YEARS: u32 = 8;

/// Hanoi's offset from UTC, in seconds.
const HANOI_OFFSET_SECS: i32 = 7 * 3600;
/// The hour (local) at which date-only reminders fall.
const REMINDER_HOUR: u32 = 8;
/// How long before a monthly or free pass ends its reminder falls.
const PASS_LEAD_SECS: i64 = 3 * 86_400;
/// How long before a week pass ends its reminder falls.
const WEEK_PASS_LEAD_SECS: i64 = 86_400;
/// How long before a credential's last second the phone is reminded to go online.
const RENEWAL_LEAD_SECS: i64 = 86_400;

/// What a reminder is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReminderKind {
    /// A cell meeting (subject: the meeting id).
    Meeting,
    /// A fee month not yet fully paid (subject: `YYYY-MM`).
    FeeDue,
    /// A past fee month assessed and not fully paid (subject: `YYYY-MM`).
    FeeUnpaid,
    /// A monthly, week or free pass ending (subject: the card id).
    PassEnding,
    /// A credential to renew online before it lapses (subject: the card id).
    CredentialRenewal,
    /// A child's vaccine dose falling due (subject: `person/vaccine/dose`).
    VaccineDue,
    /// A child's vaccine dose past its due date and grace period (subject as above).
    VaccineOverdue,
}

impl ReminderKind {
    /// The kind's name in ids and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ReminderKind::Meeting => "meeting",
            ReminderKind::FeeDue => "fee_due",
            ReminderKind::FeeUnpaid => "fee_unpaid",
            ReminderKind::PassEnding => "pass_ending",
            ReminderKind::CredentialRenewal => "credential_renewal",
            ReminderKind::VaccineDue => "vaccine_due",
            ReminderKind::VaccineOverdue => "vaccine_overdue",
        }
    }
}

/// One reminder.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Reminder {
    /// Stable across calls while the thing reminded of is unchanged: `kind:subject[:version]`.
    pub id: String,
    /// What it is about.
    pub kind: ReminderKind,
    /// When to remind (unix seconds); earlier than the window for what is already overdue.
    pub at: i64,
    /// The thing reminded of, in machine form (see [`ReminderKind`]), for apps that write their
    /// own text.
    pub subject: String,
    /// The text to show, in Vietnamese.
    pub text: String,
}

/// Where reminders are read from.
pub struct ReminderSources<'a> {
    /// The vault of the handbook, the health book and the transit phone.
    pub vault: &'a Vault,
    /// The transit phone, when the app has opened one.
    pub phone: Option<&'a Phone>,
    /// Whether the family's province gives the rotavirus vaccine.
    pub rotavirus: bool,
}

/// Why reminders could not be listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReminderError {
    /// The window is empty or reversed.
    #[error("invalid: {reason}")]
    Invalid {
        /// What was wrong.
        reason: String,
    },
    /// The vault failed.
    #[error(transparent)]
    Vault(#[from] VaultError),
}

/// A domain's error, split into a vault fault (which stops the listing) and anything else
/// about one record (a meeting with a bad date, a person without a date of birth), which only
/// leaves that record out.
trait VaultFault: std::fmt::Display {
    fn vault_fault(self) -> Option<VaultError>;
}

impl VaultFault for MemberError {
    fn vault_fault(self) -> Option<VaultError> {
        match self {
            MemberError::Vault(v) => Some(v),
            _ => None,
        }
    }
}

impl VaultFault for HealthError {
    fn vault_fault(self) -> Option<VaultError> {
        match self {
            HealthError::Vault(v) => Some(v),
            _ => None,
        }
    }
}

impl VaultFault for FeeError {
    fn vault_fault(self) -> Option<VaultError> {
        match self {
            FeeError::Vault(v) => Some(v),
            _ => None,
        }
    }
}

fn vault_only<T, E: VaultFault>(result: Result<T, E>) -> Result<Option<T>, ReminderError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            let shown = e.to_string();
            match e.vault_fault() {
                Some(vault) => Err(vault.into()),
                None => {
                    log::debug!(reason = shown.as_str(); "a record left out of reminders");
                    Ok(None)
                }
            }
        }
    }
}

fn hanoi() -> FixedOffset {
    // The offset is a constant well inside chrono's range.
    FixedOffset::east_opt(HANOI_OFFSET_SECS).unwrap_or_else(|| Utc.fix())
}

/// The local day of a unix time in Hanoi.
fn day_of(secs: i64) -> Option<NaiveDate> {
    DateTime::from_timestamp(secs, 0).map(|t| t.with_timezone(&hanoi()).date_naive())
}

/// 08:00 Hanoi time on `day`, in unix seconds.
fn morning_of(day: NaiveDate) -> Option<i64> {
    day.and_hms_opt(REMINDER_HOUR, 0, 0)
        .and_then(|t| t.and_local_timezone(hanoi()).single())
        .map(|t| t.timestamp())
}

fn first_day(month: YearMonth) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(i32::from(month.year()), u32::from(month.month()), 1)
}

fn month_of(day: NaiveDate) -> Option<YearMonth> {
    YearMonth::new(
        u16::try_from(day.year()).ok()?,
        u8::try_from(day.month()).ok()?,
    )
    .ok()
}

fn shown_day(day: NaiveDate) -> String {
    day.format("%d/%m/%Y").to_string()
}

fn shown_vnd(vnd: u64) -> String {
    let digits = vnd.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push('.');
        }
        out.push(c);
    }
    out + " đ"
}

/// Reminders falling from `from` to `to` (unix seconds, both included), plus what is already
/// overdue on `now` (unpaid fee months, overdue doses, a pass or credential ending sooner than
/// its reminder lead), soonest first.
pub fn upcoming(
    sources: &ReminderSources<'_>,
    from: i64,
    to: i64,
    now: i64,
) -> Result<Vec<Reminder>, ReminderError> {
    if to < from {
        return Err(ReminderError::Invalid {
            reason: "the window ends before it starts".into(),
        });
    }
    let (Some(first), Some(today)) = (day_of(from), day_of(now)) else {
        return Err(ReminderError::Invalid {
            reason: "a time out of range".into(),
        });
    };
    let window = from..=to;
    let mut out = Vec::new();
    handbook(sources.vault, first, &window, today, &mut out)?;
    health(sources.vault, sources.rotavirus, &window, today, &mut out)?;
    if let Some(phone) = sources.phone {
        transit(phone, &window, now, &mut out);
    }
    out.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.id.cmp(&b.id)));
    Ok(out)
}

fn push(out: &mut Vec<Reminder>, kind: ReminderKind, subject: String, at: i64, text: String) {
    out.push(Reminder {
        id: format!("{}:{subject}", kind.as_str()),
        kind,
        at,
        subject,
        text,
    });
}

fn handbook(
    vault: &Vault,
    first: NaiveDate,
    window: &std::ops::RangeInclusive<i64>,
    today: NaiveDate,
    out: &mut Vec<Reminder>,
) -> Result<(), ReminderError> {
    let member = MemberHandbook::new(vault);
    let meetings = vault_only(member.meetings_from(&first.to_string()))?.unwrap_or_default();
    for meeting in meetings {
        let Some(at) = NaiveDate::parse_from_str(&meeting.date, "%Y-%m-%d")
            .ok()
            .and_then(morning_of)
        else {
            continue;
        };
        if window.contains(&at) {
            let text = format!("Sinh hoạt chi bộ hôm nay: {}", meeting.topic);
            push(out, ReminderKind::Meeting, meeting.id, at, text);
        }
    }

    // Fees only for a member: one with a profile in the handbook.
    if vault_only(member.profile())?.flatten().is_none() {
        return Ok(());
    }
    let entries = vault_only(FeeLedger::new(vault).entries())?.unwrap_or_default();
    let this_month = month_of(today);
    for entry in &entries {
        let month = entry.assessment.month;
        let owed = entry.assessment.due_vnd.saturating_sub(entry.paid_vnd);
        if owed == 0 || this_month.is_none_or(|m| month >= m) {
            continue;
        }
        let Some(at) = first_day(month.plus(1)).and_then(morning_of) else {
            continue;
        };
        let text = format!(
            "Chưa đóng đủ đảng phí tháng {:02}/{}: còn {}",
            month.month(),
            month.year(),
            shown_vnd(owed)
        );
        push(out, ReminderKind::FeeUnpaid, month.to_string(), at, text);
    }
    // Months due: this month (even if its first morning has passed) and each month whose first
    // morning falls in the window.
    let (Some(mut month), Some(last)) = (
        month_of(first.min(today)),
        DateTime::from_timestamp(*window.end(), 0)
            .and_then(|t| month_of(t.with_timezone(&hanoi()).date_naive())),
    ) else {
        return Ok(());
    };
    while month <= last {
        let entry = entries.iter().find(|e| e.assessment.month == month);
        let paid = entry.is_some_and(|e| e.paid_vnd >= e.assessment.due_vnd);
        if let Some(at) = first_day(month).and_then(morning_of) {
            if !paid && (window.contains(&at) || Some(month) == this_month) {
                let amount = entry
                    .map(|e| format!(": {}", shown_vnd(e.assessment.due_vnd)))
                    .unwrap_or_default();
                let text = format!(
                    "Đóng đảng phí tháng {:02}/{}{amount}",
                    month.month(),
                    month.year()
                );
                push(out, ReminderKind::FeeDue, month.to_string(), at, text);
            }
        }
        month = month.plus(1);
    }
    Ok(())
}

fn health(
    vault: &Vault,
    rotavirus: bool,
    window: &std::ops::RangeInclusive<i64>,
    today: NaiveDate,
    out: &mut Vec<Reminder>,
) -> Result<(), ReminderError> {
    let book = HealthBook::new(vault);
    let people = vault_only(book.people())?.unwrap_or_default();
    for person in people {
        let birth = person
            .resource
            .get("birthDate")
            .and_then(serde_json::Value::as_str)
            .and_then(fhir::day_of)
            .and_then(|d| schedule::parse_date(&d));
        let child = birth
            .and_then(|b| today.years_since(b))
            .is_some_and(|age| age < VACCINE_REMINDER_AGE_YEARS);
        if !child {
            continue;
        }
        let Some(doses) = vault_only(book.schedule(&person.person, today, rotavirus))? else {
            continue;
        };
        let name = fhir::patient_name(&person.resource);
        for dose in doses {
            let Some(due) = dose.due_on else { continue };
            let subject = format!("{}/{}/{}", person.person, dose.vaccine, dose.dose);
            match dose.state {
                DoseState::Done => {}
                DoseState::Overdue => {
                    if let Some(at) = dose.overdue_from.and_then(morning_of) {
                        let text = format!(
                            "{name}: quá hạn tiêm {} mũi {} (hẹn ngày {})",
                            dose.vaccine,
                            dose.dose,
                            shown_day(due)
                        );
                        push(out, ReminderKind::VaccineOverdue, subject, at, text);
                    }
                }
                // Due now, or falling due within the window.
                DoseState::Due | DoseState::Upcoming => {
                    let Some(at) = morning_of(due) else { continue };
                    if dose.state == DoseState::Due || window.contains(&at) {
                        let text = format!(
                            "{name}: đến lịch tiêm {} mũi {} ngày {}",
                            dose.vaccine,
                            dose.dose,
                            shown_day(due)
                        );
                        push(out, ReminderKind::VaccineDue, subject, at, text);
                    }
                }
            }
        }
    }
    Ok(())
}

fn transit(
    phone: &Phone,
    window: &std::ops::RangeInclusive<i64>,
    now: i64,
    out: &mut Vec<Reminder>,
) {
    for c in phone.credentials() {
        let until = i64::from(c.pass_valid_until);
        let not_after = i64::from(c.not_after);
        let lead = match c.product {
            Product::MonthlySingleRoute | Product::MonthlyAllRoutes | Product::FreePass => {
                Some(PASS_LEAD_SECS)
            }
            Product::WeekPass => Some(WEEK_PASS_LEAD_SECS),
            Product::DayPass | Product::PayAsYouGo => None,
        };
        let due = |at: i64, ends: i64| ends >= now && at <= *window.end();
        if let Some(lead) = lead {
            let at = until - lead;
            if due(at, until) {
                let ends = day_of(until).map(shown_day).unwrap_or_default();
                let what = match c.product {
                    Product::WeekPass => "Vé tuần",
                    Product::FreePass => "Vé miễn phí",
                    _ => "Vé tháng",
                };
                let subject = c.card_id.to_string();
                let text = format!("{what} hết hạn ngày {ends}: gia hạn để tiếp tục đi");
                let id_subject = format!("{subject}:{until}");
                out.push(Reminder {
                    id: format!("{}:{id_subject}", ReminderKind::PassEnding.as_str()),
                    kind: ReminderKind::PassEnding,
                    at,
                    subject,
                    text,
                });
            }
        }
        // A credential the pass outlives must be renewed online before it lapses.
        let outlived = c.product == Product::PayAsYouGo || not_after < until;
        let at = not_after - RENEWAL_LEAD_SECS;
        if c.product != Product::DayPass && outlived && due(at, not_after) {
            let by = day_of(not_after).map(shown_day).unwrap_or_default();
            let subject = c.card_id.to_string();
            out.push(Reminder {
                id: format!(
                    "{}:{subject}:{not_after}",
                    ReminderKind::CredentialRenewal.as_str()
                ),
                kind: ReminderKind::CredentialRenewal,
                at,
                subject,
                text: format!("Kết nối mạng trước ngày {by} để gia hạn vé trên máy"),
            });
        }
    }
}
