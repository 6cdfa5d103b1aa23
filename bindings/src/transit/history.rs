//! The rider's trips, caps and notices as synced: `RiderHistory`.

use std::sync::Arc;

use thudo_core::transit as core;
use thudo_core::transit::Product as TransitProduct;

use super::TransitError;
use crate::vault::Vault;
use crate::{blocking, signed};

/// How a trip was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum TripMode {
    /// A validator on a bus route.
    Bus,
    /// A metro journey between two gates.
    Metro,
    /// A mode this library version does not know (a newer backend's).
    Other,
}

impl TripMode {
    fn from_wire(mode: &str) -> TripMode {
        match mode {
            "bus" => TripMode::Bus,
            "metro" => TripMode::Metro,
            _ => TripMode::Other,
        }
    }
}

/// One ride as the backend charged it, kept on the phone.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TransitTrip {
    /// `validator-id:seq` for a bus ride, `journey:N` for a metro journey.
    pub id: String,
    /// The card that rode.
    pub card_id: i64,
    /// Bus or metro.
    pub mode: TripMode,
    /// The route: a bus's, or the metro line's route code.
    pub route: Option<i32>,
    /// When (unix seconds): boarding, or the entry gate (the exit gate when no entry was
    /// found).
    pub at: i64,
    /// The station entered, for a metro journey (null when no entry tap was found).
    pub from_station: Option<String>,
    /// The station left, for a metro journey (null when no exit tap was found).
    pub to_station: Option<String>,
    /// When the journey ended at the exit gate (unix seconds).
    pub exit_at: Option<i64>,
    /// A tap is missing, so the journey was charged the line's maximum fare (a late tap
    /// corrects it).
    pub incomplete: bool,
    /// The local day `YYYY-MM-DD` it counts toward.
    pub day: String,
    /// The product used.
    pub product: TransitProduct,
    /// Charged, VND (0 on a pass, or once a cap is reached).
    pub fare_vnd: i64,
    /// The fare before caps, VND (0 on a pass).
    pub full_fare_vnd: i64,
    /// Whether a cap made this ride cheaper or free.
    pub capped: bool,
}

/// Progress toward one cap.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TransitCap {
    /// The card (null in records from before dependants).
    pub card_id: Option<i64>,
    /// The day `YYYY-MM-DD` or the month `YYYY-MM`.
    pub period: String,
    /// Paid in it, VND.
    pub paid_vnd: i64,
    /// The cap, VND.
    pub cap_vnd: i64,
    /// Further rides in the period are free.
    pub reached: bool,
}

/// What the operator told the rider about a flagged ride (a shared ticket, a card let in
/// twice, a dependant's ticket ridden without its holder).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TransitNotice {
    /// The operator's record of it (`fraud:N`).
    pub id: String,
    /// The card it is about.
    pub card_id: i64,
    /// What was found: `double_entry`, `repeated_exit`, `impossible_travel`,
    /// `dependant_alone`, ...
    pub kind: String,
    /// When (unix seconds).
    pub at: i64,
    /// A penalty fare charged for it, VND (0 for a warning).
    pub penalty_vnd: i64,
    /// What the rider reads, in Vietnamese.
    pub message_vi: String,
    /// The same in English.
    pub message_en: String,
}

/// The rider's trips and cap progress, as sync brought them (available offline).
#[derive(uniffi::Object)]
pub struct RiderHistory {
    vault: Arc<thudo_core::vault::Vault>,
}

#[uniffi::export(async_runtime = "tokio")]
impl RiderHistory {
    /// The history stored in `vault`.
    #[uniffi::constructor]
    pub fn new(vault: Arc<Vault>) -> Arc<Self> {
        Arc::new(RiderHistory {
            vault: vault.core(),
        })
    }

    /// Trips from local day `from_day` (`YYYY-MM-DD`) on, newest first: of every card this
    /// phone sees (its own and its dependants'), or of `card_id` only.
    #[uniffi::method(default(card_id = None))]
    pub async fn trips_from(
        &self,
        from_day: String,
        card_id: Option<i64>,
    ) -> Result<Vec<TransitTrip>, TransitError> {
        let vault = self.vault.clone();
        let card = card_id.map(crate::card_id_from_host);
        blocking(move || {
            Ok(core::trips::RiderHistory::new(&vault)
                .trips_from(&from_day, card)?
                .into_iter()
                .map(|t| TransitTrip {
                    capped: t.capped(),
                    id: t.id,
                    card_id: crate::card_id_to_host(t.card_id),
                    mode: TripMode::from_wire(&t.mode),
                    route: t.route.map(i32::from),
                    at: signed(t.at),
                    from_station: t.from_station,
                    to_station: t.to_station,
                    exit_at: t.exit_at.map(signed),
                    incomplete: t.incomplete,
                    day: t.day,
                    product: t.product,
                    fare_vnd: signed(t.fare_vnd),
                    full_fare_vnd: signed(t.full_fare_vnd),
                })
                .collect())
        })
        .await
    }

    /// The operator's notices about the cards this phone holds (warnings, penalty fares),
    /// newest first.
    pub async fn notices(&self) -> Result<Vec<TransitNotice>, TransitError> {
        let vault = self.vault.clone();
        blocking(move || {
            Ok(core::trips::RiderHistory::new(&vault)
                .notices()?
                .into_iter()
                .map(|n| TransitNotice {
                    id: n.id,
                    card_id: crate::card_id_to_host(n.card_id),
                    kind: n.kind,
                    at: signed(n.at),
                    penalty_vnd: signed(n.penalty_vnd),
                    message_vi: n.message_vi,
                    message_en: n.message_en,
                })
                .collect())
        })
        .await
    }

    /// Forgets, on this phone only, the trips of days before `before_day` (`YYYY-MM-DD`) and
    /// the caps of periods that ended before it; returns how many records went. Keep what the
    /// app shows (say, 90 days); sync does not bring them back.
    pub async fn forget_before(&self, before_day: String) -> Result<i64, TransitError> {
        let vault = self.vault.clone();
        blocking(move || {
            Ok(core::trips::RiderHistory::new(&vault).forget_before(&before_day)? as i64)
        })
        .await
    }

    /// Progress toward the cap of a day (`YYYY-MM-DD`) or a month (`YYYY-MM`) of the phone
    /// owner's card, or of `card_id` (a dependant's); null before anything was paid in it.
    #[uniffi::method(default(card_id = None))]
    pub async fn cap(
        &self,
        period: String,
        card_id: Option<i64>,
    ) -> Result<Option<TransitCap>, TransitError> {
        let vault = self.vault.clone();
        let card = card_id.map(crate::card_id_from_host);
        blocking(move || {
            Ok(core::trips::RiderHistory::new(&vault)
                .cap(&period, card)?
                .map(|c| TransitCap {
                    card_id: c.card_id.map(crate::card_id_to_host),
                    reached: c.reached(),
                    period: c.period,
                    paid_vnd: signed(c.paid_vnd),
                    cap_vnd: signed(c.cap_vnd),
                }))
        })
        .await
    }
}
