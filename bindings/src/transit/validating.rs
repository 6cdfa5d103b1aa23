//! The validator on the bus or at the gate: `TransitValidator`, its settings, tap log, deny
//! list and ticket inspection.

use std::sync::{Arc, Mutex};

use thudo_core::transit as core;
use thudo_core::transit::inspection::InspectionOutcome;
use thudo_core::transit::validator::{self, Reason as VerdictReason};
use thudo_core::transit::{Category as PassengerCategory, Product as TransitProduct};

use super::{
    arg, trusted_keys, EntryFeedStatus, MetroGate, TransitError, TrustedIssuerKey, Verdict,
    VerdictPresentation,
};
use crate::vault::Vault;
use crate::{blocking, signed, unix_now};

/// Validator settings.
#[derive(Debug, Clone, uniffi::Record)]
pub struct ValidatorConfig {
    /// The route this bus serves.
    pub route: i32,
    /// Oldest QR accepted (seconds before the validator's clock).
    #[uniffi(default = 45)]
    pub max_age_secs: i64,
    /// Newest QR accepted (seconds after the validator's clock).
    #[uniffi(default = 15)]
    pub max_future_secs: i64,
    /// Same card refused for this long after an accept.
    #[uniffi(default = 120)]
    pub passback_secs: i64,
    /// A deny list issued longer ago than this is stale (0: never).
    #[uniffi(default = 86400)]
    pub max_deny_list_age_secs: i64,
    /// With a stale or missing deny list, refuse every scan (fail closed) instead of deciding
    /// with the list held (fail open, the default).
    #[uniffi(default = false)]
    pub fail_closed_when_stale: bool,
    /// The metro gate this validator is (`route` is then its line's route code: 902 for line
    /// 2A, 903 for line 3); null for a bus.
    #[uniffi(default = None)]
    pub gate: Option<MetroGate>,
    /// An exit gate refuses a card with no known entry only while its entry feed is complete
    /// up to at most this long ago (keep it below the shortest ride between two stations).
    #[uniffi(default = 60)]
    pub max_entry_feed_age_secs: i64,
    /// How long an exit gate honours an entry (a day: past the fare table's journey time the
    /// backend charges the maximum fare, but a slow rider is never kept in).
    #[uniffi(default = 86400)]
    pub entry_honoured_secs: i64,
}

/// A validator's tap log: numbers are never reused; junk is counted, not logged.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TapLogStatus {
    /// The next tap's sequence number.
    pub next_seq: i64,
    /// Every tap up to this one is stored at the backend.
    pub acked_seq: i64,
    /// Scans that were no transit QR at all (counted only).
    pub unreadable_scans: i64,
    /// Rejected scans beyond the log's bound between uploads (counted only).
    pub rejected_not_logged: i64,
    /// Rejected scans logged since the last upload (bounded; beyond it they are counted only).
    pub logged_rejected: i64,
}

impl From<validator::TapLogStatus> for TapLogStatus {
    fn from(s: validator::TapLogStatus) -> Self {
        TapLogStatus {
            next_seq: signed(s.next_seq),
            acked_seq: signed(s.acked_seq),
            unreadable_scans: signed(s.unreadable_scans),
            rejected_not_logged: signed(s.rejected_not_logged),
            logged_rejected: signed(s.logged_rejected),
        }
    }
}

/// How current a validator's deny list is.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct DenyListStatus {
    /// Version in force (0: none yet).
    pub version: i64,
    /// When the backend issued it (unix seconds).
    pub issued_at: i64,
    /// Seconds since then.
    pub age_secs: i64,
    /// Older than the configured age, or none installed: fetch the feed.
    pub stale: bool,
    /// Signed by a key no longer trusted (the issuer rotated keys): still enforced; fetch the
    /// feed.
    pub needs_refresh: bool,
}

impl From<validator::DenyListStatus> for DenyListStatus {
    fn from(s: validator::DenyListStatus) -> Self {
        DenyListStatus {
            version: s.version.into(),
            issued_at: s.issued_at.into(),
            age_secs: signed(s.age_secs),
            stale: s.stale,
            needs_refresh: s.needs_refresh,
        }
    }
}

/// One tap of the log, for upload.
#[derive(Debug, Clone, uniffi::Record)]
pub struct TapRecord {
    /// Sequence number on this validator.
    pub seq: i64,
    /// Validator time (unix seconds).
    pub at: i64,
    /// Route.
    pub route: i32,
    /// Accepted?
    pub accepted: bool,
    /// Why.
    pub reason: VerdictReason,
    /// Card, when known.
    pub card_id: Option<i64>,
    /// The metro gate that took it; null on a bus.
    #[uniffi(default = None)]
    pub gate: Option<MetroGate>,
}

/// What an inspection found (core's type, carried as it is).
#[uniffi::remote(Enum)]
pub enum InspectionOutcome {
    /// A valid ticket; tapped on the vehicle, when the inspector is paired with it.
    Valid,
    /// A valid ticket that did not tap on the paired vehicle.
    NotTapped,
    /// The ticket itself is not valid (`reason` says why).
    Invalid,
}

/// One ticket inspection, as the inspector's screen shows it and as it is uploaded.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TicketInspection {
    /// Number on this device, from 1, never reused; 0 when not recorded (an unreadable scan,
    /// or the log full).
    pub seq: i64,
    /// When (unix seconds).
    pub at: i64,
    /// What it found.
    pub outcome: InspectionOutcome,
    /// The ticket rule's verdict (`OK` for a valid ticket).
    pub reason: VerdictReason,
    /// The card, when the QR was readable.
    pub card_id: Option<i64>,
    /// The product, when readable.
    pub product: Option<TransitProduct>,
    /// The rider category, when readable.
    pub category: Option<PassengerCategory>,
    /// Last second of the pass (unix), when readable.
    pub pass_valid_until: Option<i64>,
    /// Whether the inspector had the vehicle's taps.
    pub paired: bool,
    /// The card's last tap on the paired vehicle within 3 hours (unix seconds).
    pub tapped_at: Option<i64>,
    /// The route the ticket was checked for (the paired vehicle's, else the device's).
    pub route: Option<i32>,
    /// Colour, beeps and lines for the inspector's screen.
    pub presentation: VerdictPresentation,
}

impl TicketInspection {
    fn from_core(i: core::inspection::Inspection, now: u64) -> Self {
        TicketInspection {
            presentation: i.presentation(now).into(),
            seq: signed(i.seq),
            at: signed(i.at),
            outcome: i.outcome,
            reason: i.reason,
            card_id: i.card_id.map(crate::card_id_to_host),
            product: i.product,
            category: i.category,
            pass_valid_until: i.pass_valid_until.map(i64::from),
            paired: i.paired,
            tapped_at: i.tapped_at.map(signed),
            route: i.route.map(i32::from),
        }
    }
}

fn tap_record(t: validator::Tap) -> TapRecord {
    TapRecord {
        seq: signed(t.seq),
        at: signed(t.at),
        route: t.route.into(),
        accepted: t.accepted,
        reason: t.reason,
        card_id: t.card_id.map(crate::card_id_to_host),
        gate: t.gate.map(|g| MetroGate {
            station: g.station.into(),
            direction: g.direction,
        }),
    }
}

/// The validator on a bus: decides offline, logs every tap durably.
#[derive(uniffi::Object)]
pub struct TransitValidator {
    pub(crate) inner: Arc<Mutex<validator::Validator>>,
}

impl TransitValidator {
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut validator::Validator) -> Result<T, core::TransitError> + Send + 'static,
    ) -> Result<T, TransitError> {
        let inner = self.inner.clone();
        blocking(move || {
            let mut v = inner.lock().unwrap_or_else(|e| e.into_inner());
            work(&mut v).map_err(TransitError::from)
        })
        .await
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl TransitValidator {
    /// Opens a validator over `vault` (restoring its deny list and replay memory).
    #[uniffi::constructor]
    pub async fn open(
        vault: Arc<Vault>,
        trusted_keys: Vec<TrustedIssuerKey>,
        config: ValidatorConfig,
    ) -> Result<Arc<Self>, TransitError> {
        let core_vault = vault.core();
        let trusted_keys = self::trusted_keys(trusted_keys)?;
        let config = validator::ValidatorConfig {
            route: arg("route", config.route.into())?,
            max_age_secs: arg("max_age_secs", config.max_age_secs)?,
            max_future_secs: arg("max_future_secs", config.max_future_secs)?,
            passback_secs: arg("passback_secs", config.passback_secs)?,
            max_deny_list_age_secs: arg("max_deny_list_age_secs", config.max_deny_list_age_secs)?,
            fail_closed_when_stale: config.fail_closed_when_stale,
            gate: config.gate.map(MetroGate::to_core).transpose()?,
            max_entry_feed_age_secs: arg(
                "max_entry_feed_age_secs",
                config.max_entry_feed_age_secs,
            )?,
            entry_honoured_secs: arg("entry_honoured_secs", config.entry_honoured_secs)?,
            ..Default::default()
        };
        blocking(move || {
            validator::Validator::open(core_vault, trusted_keys, config).map_err(TransitError::from)
        })
        .await
        .map(|v| {
            Arc::new(TransitValidator {
                inner: Arc::new(Mutex::new(v)),
            })
        })
    }

    /// Decides on one scanned text at validator time `now_unix`. Synchronous, for the scanner's
    /// thread (never the UI thread): it returns once the tap is durable in the log (one commit,
    /// a few ms with fsync), so a power cut never loses a shown verdict. Worst case: it also
    /// waits for another call on this validator to finish its vault step (an upload reads or
    /// acknowledges at most 5,000 taps at a time, tens of ms; the network is never waited on
    /// under the lock).
    pub fn validate_at(&self, text: String, now_unix: i64) -> Result<Verdict, TransitError> {
        let now_unix = arg("now_unix", now_unix)?;
        let mut v = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Ok(v.validate(&text, now_unix)?.into())
    }

    /// Decides on one scanned text now (system clock).
    pub fn validate(&self, text: String) -> Result<Verdict, TransitError> {
        self.validate_at(text, crate::now())
    }

    /// Inspects a scanned text at `now_unix` without using the ticket (an inspector's check):
    /// every rule about the ticket, no replay or passback, no tap logged. With `vehicle_taps`
    /// (the vehicle's `recentTaps`) the route is the vehicle's and a valid ticket that did not
    /// tap there in the last 3 hours is `NOT_TAPPED`. A readable scan's inspection is recorded
    /// durably for `TransitClient.uploadInspections` before it returns.
    pub async fn inspect_at(
        &self,
        text: String,
        now_unix: i64,
        vehicle_taps: Option<Vec<TapRecord>>,
    ) -> Result<TicketInspection, TransitError> {
        let now: u64 = arg("now_unix", now_unix)?;
        let taps: Option<Vec<validator::Tap>> = match vehicle_taps {
            None => None,
            Some(taps) => Some(
                taps.into_iter()
                    .map(|t| {
                        Ok(validator::Tap {
                            seq: arg("seq", t.seq)?,
                            at: arg("at", t.at)?,
                            route: arg("route", i64::from(t.route))?,
                            accepted: t.accepted,
                            reason: t.reason,
                            card_id: t.card_id.map(crate::card_id_from_host),
                            product: None,
                            qr_timestamp: None,
                            qr_counter: None,
                            qr: None,
                            gate: t.gate.map(MetroGate::to_core).transpose()?,
                        })
                    })
                    .collect::<Result<_, TransitError>>()?,
            ),
        };
        self.run(move |v| {
            let i = v.inspect(&text, now, taps.as_deref())?;
            Ok(TicketInspection::from_core(i, now))
        })
        .await
    }

    /// Inspects a scanned text now (system clock); see `inspectAt`.
    pub async fn inspect(
        &self,
        text: String,
        vehicle_taps: Option<Vec<TapRecord>>,
    ) -> Result<TicketInspection, TransitError> {
        self.inspect_at(text, crate::now(), vehicle_taps).await
    }

    /// The taps logged at or after `since_unix`, acknowledged or not, newest first (at most
    /// 20,000): what this vehicle hands an inspector pairing with it. Taps stay 3 hours after
    /// their upload.
    pub async fn recent_taps(&self, since_unix: i64) -> Result<Vec<TapRecord>, TransitError> {
        let since: u64 = arg("since_unix", since_unix.max(0))?;
        self.run(move |v| Ok(v.recent_taps(since)?.into_iter().map(tap_record).collect()))
            .await
    }

    /// The inspections recorded and not yet uploaded, oldest first.
    pub async fn export_inspections(&self) -> Result<Vec<TicketInspection>, TransitError> {
        let now = crate::unix_now();
        self.run(move |v| {
            Ok(v.export_inspections()?
                .into_iter()
                .map(|i| TicketInspection::from_core(i, now))
                .collect())
        })
        .await
    }

    /// Commits anything pending (the log's counters).
    pub async fn flush(&self) -> Result<(), TransitError> {
        self.run(|v| v.flush()).await
    }

    /// Installs a signed deny list of a newer version, or of the same version issued later
    /// (which keeps the list fresh on a day with no revocation); returns its version.
    pub async fn update_deny_list(&self, signed_list: Vec<u8>) -> Result<i64, TransitError> {
        // Not `signed`: the C header generated for Swift would not compile.
        self.run(move |v| v.update_deny_list(&signed_list).map(i64::from))
            .await
    }

    /// Takes the feed's pay-as-you-go cards that reached today's cap (`ValidatorFeed.cappedCards`
    /// until `cappedUntil`): their rides are let through in amber, "Cap reached today: this
    /// ride is free". Informational; call it with every feed.
    pub async fn set_capped_cards(
        &self,
        cards: Vec<i64>,
        until_unix: i64,
    ) -> Result<(), TransitError> {
        let cards: Vec<u64> = cards.into_iter().map(crate::card_id_from_host).collect();
        let until = arg("until_unix", until_unix.max(0))?;
        self.run(move |v| {
            v.set_capped_cards(&cards, until);
            Ok(())
        })
        .await
    }

    /// The deny list version in force.
    pub async fn deny_list_version(&self) -> Result<i64, TransitError> {
        self.run(|v| Ok(v.deny_list_version().into())).await
    }

    /// Replaces the trusted issuer keys with the feed's (previous, current and next keys with
    /// their windows): call it with every feed, before `updateDenyList`.
    pub async fn set_trusted_keys(&self, keys: Vec<TrustedIssuerKey>) -> Result<(), TransitError> {
        let keys = trusted_keys(keys)?;
        self.run(move |v| v.set_trusted_keys(keys)).await
    }

    /// How current the deny list is now (system clock): show it to the operator, fetch the
    /// feed when `stale` or `needs_refresh`.
    pub async fn deny_list_status(&self) -> Result<DenyListStatus, TransitError> {
        self.run(|v| Ok(v.deny_list_status(unix_now()).into()))
            .await
    }

    /// How current this gate's feed is now (system clock): an exit gate's entries, an entry
    /// gate's cards inside; keep it current with `TransitClient.refreshEntries`.
    pub async fn entry_feed_status(&self) -> Result<EntryFeedStatus, TransitError> {
        self.run(|v| {
            let s = v.entry_feed_status(unix_now());
            Ok(EntryFeedStatus {
                cursor: signed(s.cursor),
                complete_until: signed(s.complete_until),
                open_entries: signed(s.open_entries as u64),
                refusing_unknown_exits: s.refusing_unknown_exits,
                refusing_cards_inside: s.refusing_cards_inside,
            })
        })
        .await
    }

    /// The tap log's numbers and counters.
    pub async fn tap_log_status(&self) -> Result<TapLogStatus, TransitError> {
        self.run(|v| Ok(v.tap_log_status().into())).await
    }

    /// Taps not yet acknowledged, oldest first, at most 5,000 (the log is read page by page).
    pub async fn export_taps(&self) -> Result<Vec<TapRecord>, TransitError> {
        self.run(|v| Ok(v.export_taps()?.into_iter().map(tap_record).collect()))
            .await
    }

    /// Acknowledges taps up to `seq` after the backend stored them (deleted once outside the
    /// replay and passback windows); returns how many were newly acknowledged.
    /// `TransitClient.uploadTaps` uploads and acknowledges, and first moves any tap whose
    /// number the backend holds for another (a validator restored from a backup): prefer it,
    /// since acknowledging such a receipt here would drop those taps.
    pub async fn acknowledge_taps(&self, up_to_seq: i64) -> Result<i64, TransitError> {
        let up_to_seq = arg("up_to_seq", up_to_seq)?;
        self.run(move |v| v.acknowledge_taps(up_to_seq).map(signed))
            .await
    }
}
