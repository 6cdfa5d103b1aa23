//! The tap log's format: one [`Tap`] per readable scan, as uploaded to the backend, the log's
//! numbers and counters ([`TapLogStatus`]), and the compact record a tap is stored as (with
//! JSON from earlier versions still read).

use crate::transit::metro::{Gate, GateDirection};
use crate::transit::reason::{Reason, REASON_CODES};
use crate::transit::wire::{self, Payload};
use crate::transit::Product;

/// The state of the tap log, stored with every commit.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TapLogStatus {
    /// The sequence number of the next tap: never reused, across reboots and acknowledgements.
    pub next_seq: u64,
    /// Every tap up to this one is stored at the backend.
    pub acked_seq: u64,
    /// Scans that were not a transit QR at all: counted, not logged.
    pub unreadable_scans: u64,
    /// Rejected scans beyond [`MAX_LOGGED_REJECTED`] since the last upload: counted, not logged.
    pub rejected_not_logged: u64,
    /// Rejected taps logged since the last acknowledgement.
    pub logged_rejected: u64,
}

/// Most rejected (readable) taps logged between two uploads; further ones are only counted, so
/// the log stays bounded whatever is shown to the scanner. Accepted taps are always logged.
pub const MAX_LOGGED_REJECTED: u64 = 10_000;
/// Most taps [`Validator::export_taps`](super::Validator::export_taps) returns at once (an upload's worth).
pub const TAP_EXPORT_LIMIT: usize = 5_000;

/// One entry of the tap log, as uploaded to the backend.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tap {
    /// Sequence number on this validator.
    pub seq: u64,
    /// Validator time (unix seconds).
    pub at: u64,
    /// Route served.
    pub route: u16,
    /// Whether it was accepted.
    pub accepted: bool,
    /// Why.
    pub reason: Reason,
    /// The card, when known.
    pub card_id: Option<u64>,
    /// The product, when known.
    pub product: Option<Product>,
    /// The QR's timestamp, when known.
    pub qr_timestamp: Option<u32>,
    /// The QR's counter, when known.
    pub qr_counter: Option<u32>,
    /// The scanned text itself, when it decoded as a transit QR: the evidence the backend
    /// re-verifies (both signatures, validity at the QR's time) before it charges anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 1024))]
    pub qr: Option<String>,
    /// The metro gate that took it (station and direction); `None` on a bus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<Gate>,
}

/// Format tag of a compact tap record.
const TAP_RECORD_V1: u8 = 1;
/// Format tag of a gate's tap record: version 1's fields, then `station u16 | direction u8`.
const TAP_RECORD_V2: u8 = 2;

impl Tap {
    /// The tap as the log stores it: `1 | seq u64 | at u64 | route u16 | accepted u8 | reason
    /// u8 | payload` (the 196 scanned bytes), 217 bytes instead of some 470 of JSON with the
    /// base45 text. Everything else (card, product, QR time and counter, the text) is derived
    /// from the payload when read. A gate's tap is version 2: the same with the station and the
    /// direction after the reason.
    pub(super) fn to_log_bytes(&self) -> Vec<u8> {
        let payload = self
            .qr
            .as_deref()
            .and_then(|t| Payload::from_qr_text(t).ok());
        let reason = REASON_CODES
            .iter()
            .position(|r| *r == self.reason)
            .unwrap_or(0) as u8;
        let mut b = Vec::with_capacity(24 + wire::PAYLOAD_LEN);
        b.push(if self.gate.is_some() {
            TAP_RECORD_V2
        } else {
            TAP_RECORD_V1
        });
        b.extend_from_slice(&self.seq.to_be_bytes());
        b.extend_from_slice(&self.at.to_be_bytes());
        b.extend_from_slice(&self.route.to_be_bytes());
        b.push(u8::from(self.accepted));
        b.push(reason);
        if let Some(gate) = self.gate {
            b.extend_from_slice(&gate.station.to_be_bytes());
            b.push(gate.direction as u8);
        }
        if let Some(p) = payload {
            b.extend_from_slice(&p.to_bytes());
        }
        b
    }

    /// Reads a stored tap: the compact form, or JSON as earlier versions wrote it.
    pub(super) fn from_log_bytes(b: &[u8]) -> Option<Tap> {
        let version = *b.first()?;
        if version != TAP_RECORD_V1 && version != TAP_RECORD_V2 {
            return serde_json::from_slice(b).ok();
        }
        let seq = u64::from_be_bytes(b.get(1..9)?.try_into().ok()?);
        let at = u64::from_be_bytes(b.get(9..17)?.try_into().ok()?);
        let route = u16::from_be_bytes(b.get(17..19)?.try_into().ok()?);
        let accepted = *b.get(19)? == 1;
        let reason = *REASON_CODES.get(usize::from(*b.get(20)?))?;
        let (gate, rest) = if version == TAP_RECORD_V2 {
            let gate = Gate {
                station: u16::from_be_bytes(b.get(21..23)?.try_into().ok()?),
                direction: GateDirection::from_code(*b.get(23)?)?,
            };
            (Some(gate), 24)
        } else {
            (None, 21)
        };
        let payload = match b.get(rest..) {
            Some([]) | None => None,
            Some(bytes) => Some(Payload::decode(bytes).ok()?),
        };
        Some(Tap {
            seq,
            at,
            route,
            accepted,
            reason,
            card_id: payload.as_ref().map(|p| p.fields.card_id),
            product: payload.as_ref().map(|p| p.fields.product),
            qr_timestamp: payload.as_ref().map(|p| p.timestamp),
            qr_counter: payload.as_ref().map(|p| p.counter),
            qr: payload.as_ref().map(Payload::qr_text),
            gate,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_tap_records_round_trip_and_old_json_still_reads() {
        for (i, reason) in REASON_CODES.iter().enumerate() {
            let tap = Tap {
                seq: 1 << 40 | i as u64,
                at: 1_790_000_000,
                route: 32,
                accepted: *reason == Reason::Ok,
                reason: *reason,
                card_id: None,
                product: None,
                qr_timestamp: None,
                qr_counter: None,
                qr: None,
                gate: None,
            };
            let bytes = tap.to_log_bytes();
            assert_eq!(bytes.len(), 21);
            assert_eq!(Tap::from_log_bytes(&bytes), Some(tap.clone()));
            let json = serde_json::to_vec(&tap).unwrap_or_default();
            assert_eq!(Tap::from_log_bytes(&json), Some(tap));
        }
        // Cut or foreign bytes are no tap, never a panic.
        for junk in [&[1u8][..], &[1, 2, 3], &[9; 40], &[1; 30]] {
            assert_eq!(Tap::from_log_bytes(junk), None);
        }
    }
}
