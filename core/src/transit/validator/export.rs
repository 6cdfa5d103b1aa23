//! Export of the tap log for upload: the oldest taps not yet acknowledged, page by page, and
//! their acknowledgement (taps still inside the replay and passback windows stay on disk).

use super::tap_log::{Tap, TapLogStatus, TAP_EXPORT_LIMIT};
use super::{Validator, TAP_COLLECTION, TAP_PAGE};
use crate::transit::inspection::PAIRED_TAP_WINDOW_SECS;
use crate::transit::TransitError;
use crate::vault::WriteOp;

/// The writes that move `moving` (oldest first) of `collection` to the numbers from `start`,
/// for one batch: each deleted under its number and put under its new one (`moved` gives its
/// old number and its body under the new); returns them and the number after the last.
pub(super) fn renumbering<T>(
    collection: &str,
    moving: &[T],
    start: u64,
    moved: impl Fn(&T, u64) -> Result<(u64, Vec<u8>), TransitError>,
) -> Result<(Vec<WriteOp>, u64), TransitError> {
    // Room for every record logged afterwards: numbers are never reused.
    if start > u64::MAX - (1 << 32) {
        return Err(TransitError::InvalidRequest {
            reason: format!("no room to renumber {collection} from {start}"),
        });
    }
    let mut ops = Vec::with_capacity(moving.len() * 2 + 1);
    for (seq, item) in (start..).zip(moving) {
        let (old, body) = moved(item, seq)?;
        ops.push(WriteOp::Delete {
            collection: collection.into(),
            id: format!("{old:016}"),
        });
        ops.push(WriteOp::Put {
            collection: collection.into(),
            id: format!("{seq:016}"),
            index: Vec::new(),
            body,
        });
    }
    Ok((ops, start + moving.len() as u64))
}

impl Validator {
    /// The tap log's numbers and counters.
    pub fn tap_log_status(&self) -> TapLogStatus {
        self.log.clone()
    }

    /// The oldest taps not yet acknowledged, at most [`TAP_EXPORT_LIMIT`] (flushes first). The
    /// log is read page by page; upload, acknowledge, and call again until it is empty.
    pub fn export_taps(&mut self) -> Result<Vec<Tap>, TransitError> {
        self.export_taps_up_to(TAP_EXPORT_LIMIT)
    }

    /// Like [`Validator::export_taps`], at most `limit` taps.
    pub fn export_taps_up_to(&mut self, limit: usize) -> Result<Vec<Tap>, TransitError> {
        self.flush()?;
        let (acked, mut taps) = (self.log.acked_seq, Vec::new());
        if limit > 0 {
            self.taps_oldest_first(|tap| {
                if tap.seq > acked {
                    taps.push(tap);
                }
                taps.len() < limit
            })?;
        }
        Ok(taps)
    }

    /// Gives `visit` the logged taps oldest first, a page at a time, until it says `false`.
    fn taps_oldest_first(&self, mut visit: impl FnMut(Tap) -> bool) -> Result<(), TransitError> {
        let mut position = 0;
        loop {
            // A tap record damaged on disk is read past: the rest of the log still uploads.
            let page = self
                .vault
                .list_page_lossy(TAP_COLLECTION, position, TAP_PAGE, false)?;
            let Some((last, _)) = page.last() else {
                return Ok(());
            };
            position = *last;
            for tap in page
                .iter()
                .filter_map(|(_, r)| r.as_ref().and_then(|r| Tap::from_log_bytes(&r.body)))
            {
                if !visit(tap) {
                    return Ok(());
                }
            }
        }
    }

    /// Moves the logged taps numbered `reused` to fresh numbers: the backend holds other taps
    /// under those numbers (this validator was restored from a backup, or reinstalled with its
    /// token, and counted again from an old number), so it stored none of them
    /// ([`TapReceipt::reused`](crate::transit::backend::TapReceipt::reused)). The taps
    /// numbered above `sent_up_to` (logged after the upload was exported) move with them, after
    /// them, so the log stays in the order the taps were made. Numbers start at `from`, or at
    /// the log's next number when that is higher (a number the log holds is never taken).
    /// One commit; returns how many taps moved. Acknowledge the upload only after this.
    pub fn renumber_taps(
        &mut self,
        reused: &[u64],
        sent_up_to: u64,
        from: u64,
    ) -> Result<usize, TransitError> {
        self.flush()?;
        let wanted: std::collections::BTreeSet<u64> = reused.iter().copied().collect();
        let mut found = Vec::new();
        self.taps_oldest_first(|tap| {
            if wanted.contains(&tap.seq) || tap.seq > sent_up_to {
                found.push(tap);
            }
            true
        })?;
        if found.iter().all(|t| !wanted.contains(&t.seq)) {
            return Ok(0); // moved already (a receipt applied twice): nothing to do
        }
        found.sort_by_key(|t| t.seq);
        let start = from.max(self.log.next_seq);
        let (mut ops, next) = renumbering(TAP_COLLECTION, &found, start, |tap, seq| {
            let moved = Tap { seq, ..tap.clone() };
            Ok((tap.seq, moved.to_log_bytes()))
        })?;
        self.log.next_seq = self.log.next_seq.max(next);
        ops.push(self.log_state_op());
        self.vault.write_batch(&ops)?;
        self.stored_log = self.log.clone();
        Ok(found.len())
    }

    /// Records that the backend stored every tap up to and including `up_to_seq`; returns how
    /// many logged taps that newly acknowledges. Acknowledged taps are deleted, except those
    /// still inside the replay and passback windows: they stay on disk so that a reboot right
    /// after an upload still refuses a replayed QR.
    pub fn acknowledge_taps(&mut self, up_to_seq: u64) -> Result<usize, TransitError> {
        self.flush()?;
        let up_to = up_to_seq.min(self.log.next_seq.saturating_sub(1));
        let newest_at = self
            .vault
            .list_page_lossy(TAP_COLLECTION, i64::MAX, 1, true)?
            .first()
            .and_then(|(_, r)| r.as_ref().and_then(|r| Tap::from_log_bytes(&r.body)))
            .map_or(0, |t| t.at);
        // Acknowledged taps stay while they matter to replay and passback, and for an
        // inspector pairing with this vehicle (its recent taps).
        let window = self.window().max(PAIRED_TAP_WINDOW_SECS);
        let mut acknowledged = 0;
        let mut position = 0;
        loop {
            let page = self
                .vault
                .list_page_lossy(TAP_COLLECTION, position, TAP_PAGE, false)?;
            let Some((last, _)) = page.last() else {
                break;
            };
            position = *last;
            let mut ops = Vec::new();
            let mut done = false;
            for tap in page
                .iter()
                .filter_map(|(_, r)| r.as_ref().and_then(|r| Tap::from_log_bytes(&r.body)))
            {
                if tap.seq > up_to {
                    done = true;
                    break;
                }
                if tap.seq > self.log.acked_seq {
                    acknowledged += 1;
                }
                if tap.at + window < newest_at {
                    ops.push(WriteOp::Delete {
                        collection: TAP_COLLECTION.into(),
                        id: format!("{:016}", tap.seq),
                    });
                }
            }
            self.vault.write_batch(&ops)?;
            if done {
                break;
            }
        }
        if up_to > self.log.acked_seq {
            self.log.acked_seq = up_to;
            self.log.logged_rejected = 0;
        }
        self.flush()?;
        Ok(acknowledged)
    }
}
