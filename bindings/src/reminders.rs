//! Reminders across the domains for Kotlin and Swift: meetings, fee months, passes and
//! credentials ending, children's vaccine doses, for an app to schedule as local notifications.

use std::sync::Arc;

use thudo_core::reminders::{self as core, ReminderKind};

use crate::transit::TransitPhone;
use crate::vault::{ChangeListener, ChangeSubscription, Vault, VaultError};
use crate::{blocking, now};

/// What a reminder is about (core's type, carried as it is).
#[uniffi::remote(Enum)]
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
    /// A child's vaccine dose overdue (subject as above).
    VaccineOverdue,
}

/// One reminder: schedule a local notification with `id` at `atSecs` (replacing one with the
/// same id), showing `text` or the app's own text for `kind` and `subject`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Reminder {
    /// Stable while the thing reminded of is unchanged.
    pub id: String,
    /// What it is about.
    pub kind: ReminderKind,
    /// When to remind (unix seconds); earlier than the window for what is already overdue.
    pub at_secs: i64,
    /// The thing reminded of, in machine form (see `ReminderKind`).
    pub subject: String,
    /// The text to show, in Vietnamese.
    pub text: String,
}

/// Reminders falling from `from_secs` to `to_secs` (unix seconds), plus what is already
/// overdue (unpaid fee months, overdue doses), soonest first: cell meetings and fee months from
/// the member handbook (fees only once a profile is set), children's vaccine doses from the
/// health book (children under 8; `rotavirus` where the province gives it), passes ending and
/// credentials to renew from `phone` when given. `now_secs` defaults to the device clock.
/// Fails only for a bad window (`InvalidArgument`) or a vault fault; a record it cannot read is
/// left out.
#[uniffi::export(async_runtime = "tokio", default(now_secs = None, rotavirus = false))]
pub async fn upcoming_reminders(
    vault: Arc<Vault>,
    phone: Option<Arc<TransitPhone>>,
    from_secs: i64,
    to_secs: i64,
    now_secs: Option<i64>,
    rotavirus: bool,
) -> Result<Vec<Reminder>, VaultError> {
    let store = vault.inner.clone();
    blocking(move || {
        let sources = core::ReminderSources {
            vault: &store,
            phone: phone.as_ref().map(|p| p.inner.as_ref()),
            rotavirus,
        };
        let list = core::upcoming(&sources, from_secs, to_secs, now_secs.unwrap_or_else(now))
            .map_err(|e| match e {
                core::ReminderError::Invalid { reason } => VaultError::InvalidArgument { reason },
                core::ReminderError::Vault(v) => v.into(),
            })?;
        Ok(list
            .into_iter()
            .map(|r| Reminder {
                id: r.id,
                kind: r.kind,
                at_secs: r.at,
                subject: r.subject,
                text: r.text,
            })
            .collect())
    })
    .await
}

/// Tells `listener` with `["reminders"]` after every committed change that may change the
/// reminders (a meeting, a fee payment, a person or immunization, a transit credential), on
/// the vault's notifier thread: call `upcomingReminders` again and reschedule. Until `cancel()`
/// is called on the subscription (or it is freed).
#[uniffi::export]
pub fn observe_reminders(
    vault: Arc<Vault>,
    listener: Arc<dyn ChangeListener>,
) -> Arc<ChangeSubscription> {
    let sources: Vec<String> = core::SOURCES.iter().map(|s| (*s).to_owned()).collect();
    let relay: Arc<dyn ChangeListener> = Arc::new(AsReminders(listener));
    vault.observe(sources, relay)
}

/// Passes any change of a source on as a change of `reminders`.
struct AsReminders(Arc<dyn ChangeListener>);

impl ChangeListener for AsReminders {
    fn on_change(&self, _collections: Vec<String>) {
        self.0.on_change(vec!["reminders".to_owned()]);
    }
}
