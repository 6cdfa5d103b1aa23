//! Ticket inspection: an inspector's device checks a rider's QR without using it. Every rule
//! about the ticket applies (signatures, deny list, the pass's windows, the QR's age, the
//! route); replay and passback do not, and no tap is logged, so the rider's next tap is not
//! refused. Paired with the vehicle's validator (its recent taps), the inspector also sees
//! whether this card tapped on this vehicle. Each inspection is recorded for the operator's
//! fraud statistics and uploaded like taps.

use super::presentation::{self, Presentation, Signal};
use super::reason::Reason;
use super::{Category, Product};

/// A tap on the paired vehicle counts for this long before the inspection.
pub const PAIRED_TAP_WINDOW_SECS: u64 = 3 * 3600;

/// A vehicle's tap may be this far ahead of the inspector's clock and still count.
pub const PAIRED_CLOCK_SKEW_SECS: u64 = 300;

/// Most taps a vehicle hands an inspector (its newest).
pub const MAX_RECENT_TAPS: usize = 20_000;

/// Most inspections kept before an upload (a day of an inspector's work is a few hundred).
pub const MAX_STORED_INSPECTIONS: usize = 20_000;

/// What an inspection found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum InspectionOutcome {
    /// A valid ticket; tapped on this vehicle, when the inspector is paired with it.
    Valid,
    /// A valid ticket that did not tap on the paired vehicle: the ride was not paid.
    NotTapped,
    /// The ticket itself is not valid; `reason` says why.
    Invalid,
}

/// One inspection, as recorded and uploaded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Inspection {
    /// Number on this device, from 1, never reused; 0 when not recorded (an unreadable scan,
    /// or the log full).
    pub seq: u64,
    /// When (device time, unix seconds).
    pub at: u64,
    /// What it found.
    pub outcome: InspectionOutcome,
    /// The ticket rule's verdict (`ok` for a valid ticket).
    pub reason: Reason,
    /// The card, when the QR was readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_id: Option<u64>,
    /// The product, when readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<Product>,
    /// The rider category, when readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Category>,
    /// Last second of the pass, when readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass_valid_until: Option<u32>,
    /// Whether the inspector had the vehicle's taps.
    pub paired: bool,
    /// The card's last accepted tap on the paired vehicle within [`PAIRED_TAP_WINDOW_SECS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tapped_at: Option<u64>,
    /// The route the ticket was checked for (the paired vehicle's, else the device's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<u16>,
    /// The scanned text, when it decoded as a transit QR: the evidence the backend verifies
    /// again before it counts the inspection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 1024))]
    pub qr: Option<String>,
}

impl Inspection {
    /// What the inspector's screen shows: green for a valid ticket, amber for one that did not
    /// tap here, red with the reason for an invalid one.
    pub fn presentation(&self, now: u64) -> Presentation {
        match self.outcome {
            InspectionOutcome::Invalid => presentation::present(self.reason, None, now),
            InspectionOutcome::Valid => {
                Presentation::new(Signal::Go, "transit.inspection.valid", &[])
            }
            InspectionOutcome::NotTapped => {
                Presentation::new(Signal::Warn, "transit.inspection.not_tapped", &[])
            }
        }
    }
}
