//! A verdict: the reason, what is known of the ticket, the line for the driver and the
//! presentation (signal, beeps, lines) every validator app shows. The rules build it
//! (`rules`).

use crate::transit::reason::Reason;
use crate::transit::{Category, Product};

/// A verdict, with what the driver's screen shows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verdict {
    /// Whether to let the passenger in.
    pub accepted: bool,
    /// Why.
    pub reason: Reason,
    /// The card, when the QR was well formed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card_id: Option<u64>,
    /// The product, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<Product>,
    /// The category, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<Category>,
    /// One line for the driver, in Vietnamese.
    pub display: String,
    /// Validator time of the decision (unix seconds).
    pub at: u64,
    /// The colour, beeps and lines every validator app shows for it.
    pub presentation: crate::transit::presentation::Presentation,
}
