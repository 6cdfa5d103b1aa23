//! The tap log in the vault: buffered taps committed with the log's counters (one
//! transaction), and the log read back newest first (for the replay memory at start-up, and for
//! an inspector pairing with this vehicle).

use super::entries::held_entry_op;
use super::tap_log::Tap;
use super::{Validator, STATE_COLLECTION, TAP_COLLECTION, TAP_LOG_STATE, TAP_PAGE};
use crate::transit::inspection::MAX_RECENT_TAPS;
use crate::transit::TransitError;
use crate::vault::WriteOp;

impl Validator {
    /// Commits buffered taps and the log's counters (one transaction).
    pub fn flush(&mut self) -> Result<(), TransitError> {
        if self.pending.is_empty() && self.log == self.stored_log {
            return Ok(());
        }
        let mut ops: Vec<WriteOp> = self
            .pending
            .iter()
            .map(|tap| WriteOp::Put {
                collection: TAP_COLLECTION.into(),
                id: format!("{:016}", tap.seq),
                index: Vec::new(),
                body: tap.to_log_bytes(),
            })
            .collect();
        // An exit's entry is marked used in the same commit as its tap.
        ops.extend(
            self.consumed
                .iter()
                .filter_map(|card| self.entries.get(card))
                .map(|held| held_entry_op(*held)),
        );
        ops.push(self.log_state_op());
        self.vault.write_batch(&ops)?;
        self.pending.clear();
        self.consumed.clear();
        self.stored_log = self.log.clone();
        Ok(())
    }

    pub(super) fn log_state_op(&self) -> WriteOp {
        WriteOp::Put {
            collection: STATE_COLLECTION.into(),
            id: TAP_LOG_STATE.into(),
            index: Vec::new(),
            body: serde_json::to_vec(&self.log).unwrap_or_default(),
        }
    }

    /// The taps logged at or after `since` (validator time), acknowledged or not, newest
    /// first, at most [`MAX_RECENT_TAPS`]: what an inspector pairing with this vehicle reads.
    /// Taps stay in the log for [`PAIRED_TAP_WINDOW_SECS`](crate::transit::inspection::PAIRED_TAP_WINDOW_SECS) after their upload.
    pub fn recent_taps(&mut self, since: u64) -> Result<Vec<Tap>, TransitError> {
        self.flush()?;
        let mut taken = 0;
        self.taps_newest_first(|tap| {
            taken += 1;
            tap.at >= since && taken <= MAX_RECENT_TAPS
        })
    }

    /// The logged taps newest first, a page at a time, while `wanted` says so (the first tap
    /// it refuses ends the reading).
    pub(super) fn taps_newest_first(
        &self,
        mut wanted: impl FnMut(&Tap) -> bool,
    ) -> Result<Vec<Tap>, TransitError> {
        let mut taps = Vec::new();
        let mut position = i64::MAX;
        loop {
            // A tap record damaged on disk is read past: it must not stop the validator.
            let page = self
                .vault
                .list_page_lossy(TAP_COLLECTION, position, TAP_PAGE, true)?;
            let Some((last, _)) = page.last() else {
                return Ok(taps);
            };
            position = *last;
            for (_, record) in &page {
                let Some(tap) = record.as_ref().and_then(|r| Tap::from_log_bytes(&r.body)) else {
                    continue;
                };
                if !wanted(&tap) {
                    return Ok(taps);
                }
                taps.push(tap);
            }
        }
    }
}
