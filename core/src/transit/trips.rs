//! A rider's trips and cap progress on the phone: what the backend charged for each ride and how
//! close the card is to today's and this month's caps. The backend publishes them to the
//! rider's account as it charges uploaded taps; sync stores them in the vault, so the phone
//! shows them offline.

use crate::changes::{Collection, CollectionSpec};
use crate::vault::{Document, Vault, VaultError};

use super::Product;

/// The collection of trips.
pub const TRIPS: &str = "transit.trip";
/// The collection of cap progress records.
pub const CAPS: &str = "transit.cap";

/// One ride, as the backend charged it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Trip {
    /// `validator-id:seq`: one tap, one trip.
    pub id: String,
    /// The card that rode.
    pub card_id: u64,
    /// `bus` (a validator on a route).
    pub mode: String,
    /// The route, for a bus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<u16>,
    /// When (the phone's signed QR time, unix seconds).
    pub at: u64,
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
    /// `day:YYYY-MM-DD` or `month:YYYY-MM` (one card per account).
    pub id: String,
    /// The day or the month.
    pub period: String,
    /// Paid in the period, VND.
    pub paid_vnd: u64,
    /// The cap, VND.
    pub cap_vnd: u64,
}

impl CapProgress {
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

    /// Trips from local day `from` (`YYYY-MM-DD`) on, newest first.
    pub fn trips_from(&self, from: &str) -> Result<Vec<Trip>, VaultError> {
        let mut trips: Vec<Trip> = self
            .vault
            .list(TRIPS)?
            .iter()
            .filter_map(|r| serde_json::from_slice::<Trip>(&r.body).ok())
            .filter(|t| t.day.as_str() >= from)
            .collect();
        trips.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| b.id.cmp(&a.id)));
        Ok(trips)
    }

    /// Progress toward the cap of a day (`YYYY-MM-DD`) or a month (`YYYY-MM`); `None` before
    /// the card paid anything in it.
    pub fn cap(&self, period: &str) -> Result<Option<CapProgress>, VaultError> {
        let id = if period.len() == 7 {
            format!("month:{period}")
        } else {
            format!("day:{period}")
        };
        self.vault.get_doc::<CapProgress>(&id)
    }
}
