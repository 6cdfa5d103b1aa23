//! What a screen shows about sync while offline: how many changes wait to upload, how many the
//! server refused for good, when a sync last finished and when one was last tried. Read from
//! the vault alone (no network), and observable: every collection it reads from is in
//! [`STATUS_COLLECTIONS`], so a change observer on those hears of every change to it.

use crate::changes::outbox::{OutboxEntry, STATE_COLLECTION};
use serde::{Deserialize, Serialize};

use crate::vault::{Document, Vault, VaultError, VaultTx};

/// A rejected mutation, kept for support.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectedMutation {
    /// The entry.
    pub entry: OutboxEntry,
    /// Why the server refused it.
    pub reason: String,
}

impl Document for RejectedMutation {
    const COLLECTION: &'static str = "sync.rejected";
    fn id(&self) -> String {
        format!("{:020}", self.entry.seq)
    }
}

const LAST_ATTEMPT: &str = "last_attempt_at";
const LAST_SUCCESS: &str = "last_success_at";

/// The collections the status is read from: observe them to hear of every change to it.
pub const STATUS_COLLECTIONS: [&str; 3] = [
    OutboxEntry::COLLECTION,
    RejectedMutation::COLLECTION,
    STATE_COLLECTION,
];

/// Sync as the device sees it, offline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStatus {
    /// Local changes not yet acknowledged by the server (the outbox).
    pub pending_uploads: u64,
    /// Changes the server refused for good (kept for support; they will not be sent again).
    pub rejected: u64,
    /// When a sync last finished, unix seconds (device clock); `None` before the first.
    pub last_success_at: Option<u64>,
    /// When a sync was last started, unix seconds (device clock). Later than
    /// `last_success_at`: the last one failed, was cancelled or is running.
    pub last_attempt_at: Option<u64>,
}

/// The status now.
pub fn status(vault: &Vault) -> Result<SyncStatus, VaultError> {
    vault.transaction(|tx| {
        Ok(SyncStatus {
            pending_uploads: tx.count(OutboxEntry::COLLECTION)?,
            rejected: tx.count(RejectedMutation::COLLECTION)?,
            last_success_at: time(tx, LAST_SUCCESS)?,
            last_attempt_at: time(tx, LAST_ATTEMPT)?,
        })
    })
}

fn time(tx: &VaultTx<'_>, key: &str) -> Result<Option<u64>, VaultError> {
    Ok(tx
        .get(STATE_COLLECTION, key)?
        .and_then(|r| std::str::from_utf8(&r.body).ok()?.parse().ok()))
}

/// Notes that a sync starts at `now` (unix seconds).
pub(crate) fn started(vault: &Vault, now: u64) -> Result<(), VaultError> {
    vault.put(
        STATE_COLLECTION,
        LAST_ATTEMPT,
        &[],
        now.to_string().as_bytes(),
    )
}

/// Notes that a sync finished at `now` (unix seconds).
pub(crate) fn finished(tx: &VaultTx<'_>, now: u64) -> Result<(), VaultError> {
    tx.put(
        STATE_COLLECTION,
        LAST_SUCCESS,
        &[],
        now.to_string().as_bytes(),
    )
}
