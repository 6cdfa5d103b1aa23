//! Uploads of a validator's taps and an inspector's inspections (docs/protocol/sync.md,
//! "Transit"): in chunks, each acknowledged on the device once the backend stored it, with
//! the taps under numbers the backend holds for others (a restored device) moved past them
//! first.

use std::sync::{Arc, Mutex};

use http::Method;

use super::backend::{
    device_side, InspectionReceipt, InspectionUpload, TapReceipt, TapUpload, TransitClient,
    INSPECTION_UPLOAD_CHUNK, TAP_UPLOAD_CHUNK,
};
use super::validator::Validator;
use crate::net::protocol::API_PREFIX;
use crate::net::{blocking, BackendError};
use crate::vault::Vault;

/// What a receipt's `reused` numbers ask of the device: the numbers to move and the first
/// free one, or nothing. With no free number left (the backend holds the last one) they cannot
/// move, and stay in the log unacknowledged: an error.
fn to_move(
    reused: &[u64],
    next_free: Option<u64>,
) -> Result<Option<(Vec<u64>, u64)>, BackendError> {
    match (reused.is_empty(), next_free) {
        (true, _) => Ok(None),
        (false, Some(from)) => Ok(Some((reused.to_vec(), from))),
        (false, None) => Err(BackendError::Protocol {
            detail: "the backend holds every sequence number this device could use".into(),
        }),
    }
}

impl TransitClient<'_> {
    /// Uploads the inspections `inspector` recorded (the device must be enrolled like a
    /// validator) and acknowledges what the backend stored, until none is left; returns the
    /// sum of the receipts. A failure midway loses nothing.
    pub async fn upload_inspections(
        self,
        vault: Arc<Vault>,
        inspector: Arc<Mutex<Validator>>,
    ) -> Result<InspectionReceipt, BackendError> {
        let mut total = InspectionReceipt::default();
        // A second round only when the first moved inspections under reused numbers (a
        // restored inspector): they go up again under their new numbers.
        for _ in 0..2 {
            let v = inspector.clone();
            let all = blocking(move || {
                v.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .export_inspections()
                    .map_err(device_side)
            })
            .await?;
            let mut moved_any = false;
            for chunk in all.chunks(INSPECTION_UPLOAD_CHUNK) {
                let body = serde_json::to_vec(&InspectionUpload {
                    inspections: chunk.to_vec(),
                })
                .map_err(|e| BackendError::Protocol {
                    detail: e.to_string(),
                })?;
                let receipt: InspectionReceipt = self
                    .backend
                    .request(
                        vault.clone(),
                        Method::POST,
                        &format!("{API_PREFIX}/transit/inspections"),
                        Some(body),
                    )
                    .await?;
                let v = inspector.clone();
                // Never more than was sent: a confused server cannot delete what it did not get.
                let sent = chunk.last().map_or(0, |i| i.seq);
                let up_to = receipt.acknowledged_seq.min(sent);
                let moved = to_move(&receipt.reused, receipt.next_free_seq)?;
                moved_any |= moved.is_some();
                blocking(move || {
                    let mut v = v.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some((reused, from)) = moved {
                        v.renumber_inspections(&reused, sent, from)
                            .map_err(device_side)?;
                    }
                    v.acknowledge_inspections(up_to).map_err(device_side)
                })
                .await?;
                total.stored = total.stored.saturating_add(receipt.stored);
                total.duplicates = total.duplicates.saturating_add(receipt.duplicates);
                total.acknowledged_seq = total.acknowledged_seq.max(up_to);
                total.reused.extend(receipt.reused);
                if sent > up_to || moved_any {
                    break; // the rest (and what moved) goes in the next round or call
                }
            }
            if !moved_any {
                break;
            }
        }
        Ok(total)
    }
    /// Uploads a validator's taps (the device must be registered as a validator), in uploads of
    /// at most [`TAP_UPLOAD_CHUNK`]; the receipt adds them up and says up to which sequence the
    /// validator may acknowledge. A failure midway loses nothing: what was stored comes back as
    /// duplicates next time. An empty list is sent as one empty upload (a gate's heartbeat).
    pub async fn upload_taps(
        self,
        vault: Arc<Vault>,
        taps: Vec<super::validator::Tap>,
    ) -> Result<TapReceipt, BackendError> {
        self.upload_tap_list(vault, taps, None).await
    }
    /// [`TransitClient::upload_taps`]; with `drained_at` (when the taps were exported from a log
    /// that held nothing more), the last upload says so.
    async fn upload_tap_list(
        self,
        vault: Arc<Vault>,
        taps: Vec<super::validator::Tap>,
        drained_at: Option<std::time::Instant>,
    ) -> Result<TapReceipt, BackendError> {
        let mut total = TapReceipt::default();
        // No taps still makes one (empty) upload: a gate's heartbeat.
        let chunks: Vec<&[super::validator::Tap]> = if taps.is_empty() {
            vec![&[]]
        } else {
            taps.chunks(TAP_UPLOAD_CHUNK).collect()
        };
        let last = chunks.len().saturating_sub(1);
        for (i, chunk) in chunks.into_iter().enumerate() {
            let body = serde_json::to_vec(&TapUpload {
                taps: chunk.to_vec(),
                drained: drained_at.is_some() && i == last,
                exported_secs_ago: drained_at.map_or(0, |t| t.elapsed().as_secs()),
            })
            .map_err(|e| BackendError::Protocol {
                detail: e.to_string(),
            })?;
            let r: TapReceipt = self
                .backend
                .request(
                    vault.clone(),
                    Method::POST,
                    &format!("{API_PREFIX}/transit/taps"),
                    Some(body),
                )
                .await?;
            total.absorb(&r);
        }
        Ok(total)
    }
    /// Uploads `validator`'s tap log an upload at a time (read page by page, never whole) and
    /// acknowledges what the backend stored after each, until the log is empty; returns the
    /// sum of the receipts. A failure midway loses nothing: the rest goes next time.
    pub async fn upload_and_acknowledge(
        self,
        vault: Arc<Vault>,
        validator: Arc<Mutex<Validator>>,
    ) -> Result<TapReceipt, BackendError> {
        let mut total = TapReceipt::default();
        let lock = |v: &Mutex<Validator>| {
            v.lock()
                .unwrap_or_else(|e| e.into_inner())
                .export_taps()
                .map_err(device_side)
        };
        // A gate's upload that leaves its log empty tells exit gates that every entry up to
        // now is known (the entry feed's completeness): a gate sends one even with nothing to
        // send.
        let gate = validator
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .gate()
            .is_some();
        let (mut drained_sent, mut renumbered_rounds) = (false, 0);
        loop {
            let v = validator.clone();
            let taps = blocking(move || lock(&v)).await?;
            let exported = std::time::Instant::now();
            let Some(last) = taps.last().map(|t| t.seq) else {
                if gate && !drained_sent {
                    let heartbeat = self.upload_tap_list(vault.clone(), Vec::new(), Some(exported));
                    total.absorb(&heartbeat.await?);
                }
                break;
            };
            let drained = taps.len() < super::validator::TAP_EXPORT_LIMIT;
            drained_sent = drained;
            let receipt = self
                .upload_tap_list(vault.clone(), taps, drained.then_some(exported))
                .await?;
            let v = validator.clone();
            // Never past what this upload sent: taps logged since are not stored yet, whatever
            // a confused backend answers.
            let up_to = receipt.acknowledged_seq.min(last);
            // The sum keeps the totals only: a log drained after days offline holds many taps.
            let receipt = TapReceipt {
                taps: Vec::new(),
                ..receipt
            };
            // Taps under numbers the backend holds for others move past them before the
            // acknowledgement, which would otherwise take them for stored.
            let moved = to_move(&receipt.reused, receipt.next_free_seq)?;
            // At most two rounds of moving per call: a backend that names the same taps again
            // and again is not followed for ever (they go up next time).
            renumbered_rounds += usize::from(moved.is_some());
            blocking(move || {
                let mut v = v.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((reused, from)) = moved {
                    v.renumber_taps(&reused, last, from).map_err(device_side)?;
                }
                v.acknowledge_taps(up_to).map_err(device_side)
            })
            .await?;
            total.absorb(&receipt);
            if up_to < last || renumbered_rounds >= 2 {
                break; // the backend took less than it was sent: the rest goes next time
            }
        }
        Ok(total)
    }
}
