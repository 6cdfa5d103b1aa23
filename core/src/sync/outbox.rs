//! The durable outbox: one encrypted record per local mutation, written in the same vault
//! transaction as the mutation, with an idempotency key so the server applies it exactly once.

use crate::crypto;
use crate::vault::{Document, Result, VaultError, VaultTx};

const STATE_COLLECTION: &str = "sync.state";

/// One pending mutation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OutboxEntry {
    /// Random 128-bit key, hex: the server ignores a second delivery with the same key.
    pub idempotency_key: String,
    /// Monotonic position in this device's outbox (zero-padded in the record id, so listing
    /// returns entries in order).
    pub seq: u64,
    /// The collection the change belongs to, such as `handbook.attendance`.
    pub collection: String,
    /// The record id.
    pub record_id: String,
    /// `put` or `delete`.
    pub op: String,
    /// The record as JSON (for `put`).
    pub payload: serde_json::Value,
    /// Device time of the change (unix seconds).
    pub created_at: u64,
}

impl Document for OutboxEntry {
    const COLLECTION: &'static str = "sync.outbox";
    fn id(&self) -> String {
        format!("{:020}", self.seq)
    }
}

/// Appends a mutation to the outbox inside the caller's transaction; returns its entry.
pub fn enqueue(
    tx: &VaultTx<'_>,
    collection: &str,
    record_id: &str,
    op: &str,
    payload: serde_json::Value,
    now: u64,
) -> Result<OutboxEntry> {
    // The next position is kept in its own record: no need to read the whole outbox.
    let next: u64 = match tx.get(STATE_COLLECTION, "next_seq")? {
        Some(r) => String::from_utf8_lossy(&r.body).parse().unwrap_or(1),
        None => 1,
    };
    tx.put(
        STATE_COLLECTION,
        "next_seq",
        &[],
        (next + 1).to_string().as_bytes(),
    )?;
    let mut key = [0u8; 16];
    crypto::fill_random(&mut key).map_err(|_| VaultError::Io {
        reason: "system random source failed".into(),
    })?;
    let entry = OutboxEntry {
        idempotency_key: key.iter().map(|b| format!("{b:02x}")).collect(),
        seq: next,
        collection: collection.to_owned(),
        record_id: record_id.to_owned(),
        op: op.to_owned(),
        payload,
        created_at: now,
    };
    tx.put_doc(&entry)?;
    Ok(entry)
}

/// Every pending mutation, oldest first.
pub fn pending(tx: &VaultTx<'_>) -> Result<Vec<OutboxEntry>> {
    let mut entries = tx.list_docs::<OutboxEntry>()?;
    entries.sort_by_key(|e| e.seq);
    Ok(entries)
}
