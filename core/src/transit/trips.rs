//! A rider's trips and cap progress on the phone: what the backend charged for each ride and how
//! close the card is to today's and this month's caps. The backend publishes them to the
//! rider's account as it charges uploaded taps; sync stores them in the vault, so the phone
//! shows them offline.

use crate::changes::{Collection, CollectionSpec};
use crate::vault::{Document, Vault, VaultError, WriteOp};

use super::Product;

/// The collection of trips.
pub const TRIPS: &str = "transit.trip";
/// The collection of cap progress records.
pub const CAPS: &str = "transit.cap";
/// The collection of the operator's notices about a card's rides.
pub const NOTICES: &str = "transit.notice";

/// What the operator tells a rider about a ride its checks flagged (a shared ticket, a card let
/// in twice): a warning, or the penalty fare charged for it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TransitNotice {
    /// `fraud:N`, the operator's record of it.
    pub id: String,
    /// The card it is about.
    pub card_id: u64,
    /// What was found: `double_entry`, `repeated_exit`, `impossible_travel`,
    /// `dependant_alone`, ...
    pub kind: String,
    /// When it was found (unix seconds).
    pub at: u64,
    /// A penalty fare charged for it, VND (0 for a warning).
    pub penalty_vnd: u64,
    /// What the rider reads, in Vietnamese.
    pub message_vi: String,
    /// The same in English.
    pub message_en: String,
}

impl Document for TransitNotice {
    const COLLECTION: &'static str = NOTICES;
    fn id(&self) -> String {
        self.id.clone()
    }
}

/// One ride, as the backend charged it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Trip {
    /// `validator-id:seq` for a bus ride (one tap, one trip); `journey:N` for a metro journey.
    pub id: String,
    /// The card that rode.
    pub card_id: u64,
    /// `bus` (a validator on a route) or `metro` (a journey between two gates).
    pub mode: String,
    /// The route: a bus's, or the metro line's route code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<u16>,
    /// When (the phone's signed QR time at boarding or at the entry gate, unix seconds; at the
    /// exit gate for a journey with no entry).
    pub at: u64,
    /// The station entered, for a metro journey (`None` when no entry tap was found).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_station: Option<String>,
    /// The station left, for a metro journey (`None` when no exit tap was found).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_station: Option<String>,
    /// When the journey ended at the exit gate (unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_at: Option<u64>,
    /// A tap is missing (no exit within the journey time, or an exit with no entry): the
    /// journey was charged the line's maximum fare. A late tap corrects it.
    #[serde(default)]
    pub incomplete: bool,
    /// The local day `YYYY-MM-DD` the ride counts toward.
    pub day: String,
    /// The product used.
    pub product: Product,
    /// What was charged, VND (0 on a pass, or once a cap is reached).
    pub fare_vnd: u64,
    /// The fare before caps, VND (0 on a pass).
    pub full_fare_vnd: u64,
}

impl Trip {
    /// Whether a cap made this ride cheaper (or free).
    pub fn capped(&self) -> bool {
        self.fare_vnd < self.full_fare_vnd
    }
}

impl Document for Trip {
    const COLLECTION: &'static str = TRIPS;
    fn id(&self) -> String {
        self.id.clone()
    }
    fn index(&self) -> Vec<(String, String)> {
        vec![("day".into(), self.day.clone())]
    }
}

/// What a card paid toward one cap.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CapProgress {
    /// `day:YYYY-MM-DD` or `month:YYYY-MM` for the account's own card; prefixed with
    /// `card:CARD:` for a dependant's card on a guardian's phone.
    pub id: String,
    /// The card (absent in records from before dependants).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_id: Option<u64>,
    /// The day or the month.
    pub period: String,
    /// Paid in the period, VND.
    pub paid_vnd: u64,
    /// The cap, VND.
    pub cap_vnd: u64,
}

impl CapProgress {
    /// The record id of a day's (`YYYY-MM-DD`) or a month's (`YYYY-MM`) progress: of the
    /// account's own card (`None`), or of a dependant's card.
    pub fn record_id(period: &str, dependant_card: Option<u64>) -> String {
        let kind = if period.len() == 7 { "month" } else { "day" };
        match dependant_card {
            None => format!("{kind}:{period}"),
            Some(card) => format!("card:{card}:{kind}:{period}"),
        }
    }

    /// Whether further rides in the period are free.
    pub fn reached(&self) -> bool {
        self.paid_vnd >= self.cap_vnd
    }
}

impl Document for CapProgress {
    const COLLECTION: &'static str = CAPS;
    fn id(&self) -> String {
        self.id.clone()
    }
}

/// The synced collections of trips and caps: the backend's, pulled into the vault.
pub fn synced() -> Vec<Collection> {
    vec![
        Collection::of_documents::<Trip>(CollectionSpec::published_to_account(TRIPS)),
        Collection::of_documents::<CapProgress>(CollectionSpec::published_to_account(CAPS)),
        Collection::of_documents::<TransitNotice>(CollectionSpec::published_to_account(NOTICES)),
    ]
}

/// Trips and cap progress as the phone holds them (offline).
pub struct RiderHistory<'a> {
    vault: &'a Vault,
}

impl<'a> RiderHistory<'a> {
    /// Over `vault`.
    pub fn new(vault: &'a Vault) -> Self {
        RiderHistory { vault }
    }

    /// Trips from local day `from` (`YYYY-MM-DD`) on, newest first: every card's the phone
    /// sees (its own and its dependants'), or one card's.
    pub fn trips_from(&self, from: &str, card: Option<u64>) -> Result<Vec<Trip>, VaultError> {
        let mut trips: Vec<Trip> = self
            .vault
            .list(TRIPS)?
            .iter()
            .filter_map(|r| serde_json::from_slice::<Trip>(&r.body).ok())
            .filter(|t| t.day.as_str() >= from && card.is_none_or(|c| t.card_id == c))
            .collect();
        trips.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| b.id.cmp(&a.id)));
        Ok(trips)
    }

    /// The operator's notices about the cards the phone holds, newest first.
    pub fn notices(&self) -> Result<Vec<TransitNotice>, VaultError> {
        let mut notices: Vec<TransitNotice> = self
            .vault
            .list(NOTICES)?
            .iter()
            .filter_map(|r| serde_json::from_slice::<TransitNotice>(&r.body).ok())
            .collect();
        notices.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| b.id.cmp(&a.id)));
        Ok(notices)
    }

    /// Forgets, on this phone only, the trips of days before `day` (`YYYY-MM-DD`) and the cap
    /// progress of days and months that ended before it; returns how many records went. The
    /// app keeps what it shows (say, 90 days): the backend is not asked to delete anything, and
    /// sync does not bring forgotten records back.
    pub fn forget_before(&self, day: &str) -> Result<usize, VaultError> {
        let mut ops = Vec::new();
        for r in self.vault.list(TRIPS)? {
            if serde_json::from_slice::<Trip>(&r.body).is_ok_and(|t| t.day.as_str() < day) {
                ops.push(WriteOp::Delete {
                    collection: TRIPS.into(),
                    id: r.id,
                });
            }
        }
        let month = day.get(..7).unwrap_or(day);
        for r in self.vault.list(CAPS)? {
            let ended = serde_json::from_slice::<CapProgress>(&r.body).is_ok_and(|c| {
                if c.period.len() == 7 {
                    c.period.as_str() < month
                } else {
                    c.period.as_str() < day
                }
            });
            if ended {
                ops.push(WriteOp::Delete {
                    collection: CAPS.into(),
                    id: r.id,
                });
            }
        }
        if !ops.is_empty() {
            self.vault.write_batch(&ops)?;
        }
        Ok(ops.len())
    }

    /// Progress toward the cap of a day (`YYYY-MM-DD`) or a month (`YYYY-MM`) of the account's
    /// own card (`card` `None`) or of `card` (the own card's or a dependant's); `None` before
    /// the card paid anything in it.
    pub fn cap(&self, period: &str, card: Option<u64>) -> Result<Option<CapProgress>, VaultError> {
        if let Some(card) = card {
            let dependant = self
                .vault
                .get_doc::<CapProgress>(&CapProgress::record_id(period, Some(card)))?;
            if dependant.is_some() {
                return Ok(dependant);
            }
        }
        let own = self
            .vault
            .get_doc::<CapProgress>(&CapProgress::record_id(period, None))?;
        Ok(own.filter(|c| card.is_none() || c.card_id == card))
    }
}
