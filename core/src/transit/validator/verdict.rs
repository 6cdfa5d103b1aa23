//! A verdict and how the validator builds it: the reason, what is known of the ticket, the
//! line for the driver and the presentation (signal, beeps, lines) every validator app shows.

use super::Validator;
use crate::transit::metro::GateDirection;
use crate::transit::reason::Reason;
use crate::transit::wire::Payload;
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

impl Validator {
    pub(super) fn reject(&self, reason: Reason, payload: Option<&Payload>, now: u64) -> Verdict {
        let (card_id, product, category) = match payload {
            Some(p) => (
                Some(p.fields.card_id),
                Some(p.fields.product),
                Some(p.fields.category),
            ),
            None => (None, None, None),
        };
        let display = match reason {
            Reason::Ok => "Hợp lệ".to_string(),
            Reason::Replayed | Reason::Passback => "Mã đã được sử dụng".into(),
            Reason::Expired | Reason::CredentialExpired => "Mã đã hết hạn".into(),
            Reason::PassExpired => "Vé đã hết hạn".into(),
            Reason::NotYetValid => "Vé chưa có hiệu lực".into(),
            Reason::WrongRoute => "Vé không dùng cho tuyến này".into(),
            Reason::Revoked => "Vé đã bị khóa".into(),
            Reason::ClockSkew => "Giờ trên điện thoại không đúng".into(),
            Reason::DenyListStale => "Máy soát vé cần cập nhật".into(),
            _ => "Mã không hợp lệ".into(),
        };
        let mut presentation =
            crate::transit::presentation::present(reason, payload.map(|p| &p.fields), now);
        let capped = payload.is_some_and(|p| {
            p.fields.product == Product::PayAsYouGo
                && now < self.capped.1
                && self.capped.0.contains(&p.fields.card_id)
        });
        // At an exit the journey is charged, not the gate passage: the cap shows at entries.
        if capped
            && self
                .config
                .gate
                .is_none_or(|g| g.direction == GateDirection::Entry)
        {
            crate::transit::presentation::cap_reached(&mut presentation);
        }
        if let Some(gate) = self.config.gate {
            crate::transit::presentation::at_gate(&mut presentation, gate.direction);
        }
        Verdict {
            accepted: reason == Reason::Ok,
            reason,
            card_id,
            product,
            category,
            display,
            at: now,
            presentation,
        }
    }
}
