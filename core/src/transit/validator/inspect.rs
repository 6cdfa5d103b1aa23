//! Inspecting a ticket with the validator's rules, without using it (no replay, no passback,
//! no tap): paired with a vehicle's recent taps when given, recorded durably, then exported and
//! acknowledged like taps. The inspection record itself is in [`crate::transit::inspection`].

use super::tap_log::Tap;
use super::{Validator, STATE_COLLECTION};
use crate::transit::inspection::{
    Inspection, InspectionOutcome, MAX_STORED_INSPECTIONS, PAIRED_CLOCK_SKEW_SECS,
    PAIRED_TAP_WINDOW_SECS,
};
use crate::transit::reason::Reason;
use crate::transit::wire::Payload;
use crate::transit::TransitError;
use crate::vault::WriteOp;

const INSPECTION_COLLECTION: &str = "transit.inspection";

/// The next inspection number, in the state collection.
const INSPECTION_SEQ: &str = "inspection_seq";

impl Validator {
    /// Inspects a scanned text at device time `now` without using the ticket: every rule about
    /// the ticket, but not replay or passback, and no tap is logged. With `vehicle_taps` (the
    /// vehicle's validator's [`Validator::recent_taps`], when the inspector is paired with it)
    /// the route is the vehicle's, and a valid ticket that did not tap there within
    /// [`PAIRED_TAP_WINDOW_SECS`] (allowing [`PAIRED_CLOCK_SKEW_SECS`] between the two clocks)
    /// is `NotTapped`. A readable scan's inspection is recorded durably before it is returned
    /// (`seq` from 1); an unreadable scan's, or one made while the log is full, is not
    /// (`seq` 0).
    pub fn inspect(
        &mut self,
        text: &str,
        now: u64,
        vehicle_taps: Option<&[Tap]>,
    ) -> Result<Inspection, TransitError> {
        let text = text.trim_end_matches(['\r', '\n']);
        let payload = Payload::from_qr_text(text).ok();
        let route = vehicle_taps
            .and_then(|taps| taps.iter().max_by_key(|t| t.at).map(|t| t.route))
            .unwrap_or(self.config.route);
        let reason = match &payload {
            Some(p) => self.check_ticket(p, now, route),
            None => Reason::BadFormat,
        };
        let fields = payload.as_ref().map(|p| &p.fields);
        let card_id = fields.map(|f| f.card_id);
        let tapped_at = vehicle_taps.and_then(|taps| {
            taps.iter()
                .filter(|t| t.accepted && t.card_id.is_some() && t.card_id == card_id)
                .filter(|t| {
                    t.at <= now.saturating_add(PAIRED_CLOCK_SKEW_SECS)
                        && now.saturating_sub(t.at) <= PAIRED_TAP_WINDOW_SECS
                })
                .map(|t| t.at)
                .max()
        });
        let outcome = match (reason, vehicle_taps.is_some(), tapped_at) {
            (Reason::Ok, true, None) => InspectionOutcome::NotTapped,
            (Reason::Ok, _, _) => InspectionOutcome::Valid,
            _ => InspectionOutcome::Invalid,
        };
        let mut inspection = Inspection {
            seq: 0,
            at: now,
            outcome,
            reason,
            card_id,
            product: fields.map(|f| f.product),
            category: fields.map(|f| f.category),
            pass_valid_until: fields.map(|f| f.pass_valid_until),
            paired: vehicle_taps.is_some(),
            tapped_at,
            route: Some(route),
            qr: payload.as_ref().map(|_| text.to_owned()),
        };
        // Junk is shown, never stored (it cannot fill the log); a full log still shows the
        // result and says so in the logs.
        if payload.is_none() {
            return Ok(inspection);
        }
        if self.vault.count(INSPECTION_COLLECTION)? >= MAX_STORED_INSPECTIONS as u64 {
            log::warn!("inspection log full: not recorded until an upload");
            return Ok(inspection);
        }
        let seq = self
            .vault
            .find(STATE_COLLECTION, INSPECTION_SEQ)?
            .and_then(|r| serde_json::from_slice::<u64>(&r.body).ok())
            .unwrap_or(1);
        inspection.seq = seq;
        let body =
            serde_json::to_vec(&inspection).map_err(|e| crate::transit::invalid(e.to_string()))?;
        self.vault.write_batch(&[
            WriteOp::Put {
                collection: INSPECTION_COLLECTION.into(),
                id: format!("{seq:016}"),
                index: Vec::new(),
                body,
            },
            WriteOp::Put {
                collection: STATE_COLLECTION.into(),
                id: INSPECTION_SEQ.into(),
                index: Vec::new(),
                body: (seq + 1).to_string().into_bytes(),
            },
        ])?;
        Ok(inspection)
    }

    /// The inspections recorded and not yet acknowledged, oldest first.
    pub fn export_inspections(&self) -> Result<Vec<Inspection>, TransitError> {
        let mut out: Vec<Inspection> = self
            .vault
            .list(INSPECTION_COLLECTION)?
            .iter()
            .filter_map(|r| serde_json::from_slice(&r.body).ok())
            .collect();
        out.sort_by_key(|i| i.seq);
        Ok(out)
    }

    /// Moves the recorded inspections numbered `reused` to fresh numbers, as
    /// [`Validator::renumber_taps`] does for taps: the backend holds other inspections under
    /// those numbers ([`InspectionReceipt::reused`](crate::transit::backend::InspectionReceipt::reused)).
    /// Those numbered above `sent_up_to` move with them, after them; numbers start at `from`
    /// or at the next number to record, whichever is higher. One commit; returns how many moved.
    pub fn renumber_inspections(
        &mut self,
        reused: &[u64],
        sent_up_to: u64,
        from: u64,
    ) -> Result<usize, TransitError> {
        let recorded = self.export_inspections()?;
        let moving: Vec<&Inspection> = recorded
            .iter()
            .filter(|i| reused.contains(&i.seq) || i.seq > sent_up_to)
            .collect();
        if !moving.iter().any(|i| reused.contains(&i.seq)) {
            return Ok(0); // moved already (a receipt applied twice)
        }
        let next_recorded = self
            .vault
            .find(STATE_COLLECTION, INSPECTION_SEQ)?
            .and_then(|r| serde_json::from_slice::<u64>(&r.body).ok())
            .unwrap_or(1);
        let start = from.max(next_recorded);
        let (mut ops, next) =
            super::export::renumbering(INSPECTION_COLLECTION, &moving, start, |i, seq| {
                let moved = Inspection {
                    seq,
                    ..(*i).clone()
                };
                let body = serde_json::to_vec(&moved)
                    .map_err(|e| crate::transit::invalid(e.to_string()))?;
                Ok((i.seq, body))
            })?;
        ops.push(WriteOp::Put {
            collection: STATE_COLLECTION.into(),
            id: INSPECTION_SEQ.into(),
            index: Vec::new(),
            body: next.to_string().into_bytes(),
        });
        self.vault.write_batch(&ops)?;
        Ok(moving.len())
    }

    /// Deletes the recorded inspections up to and including `up_to_seq` (the backend stored
    /// them); returns how many.
    pub fn acknowledge_inspections(&mut self, up_to_seq: u64) -> Result<usize, TransitError> {
        // Record ids are the zero-padded numbers: nothing needs decrypting to choose.
        let ops: Vec<WriteOp> = self
            .vault
            .list(INSPECTION_COLLECTION)?
            .iter()
            .filter(|r| r.id.parse::<u64>().is_ok_and(|seq| seq <= up_to_seq))
            .map(|r| WriteOp::Delete {
                collection: INSPECTION_COLLECTION.into(),
                id: r.id.clone(),
            })
            .collect();
        if !ops.is_empty() {
            self.vault.write_batch(&ops)?;
        }
        Ok(ops.len())
    }
}
