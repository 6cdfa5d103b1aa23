//! The durable outbox: one encrypted record per local mutation, written in the same vault
//! transaction as the mutation, with an idempotency key so the server applies it exactly once.

use super::hlc::Hlc;
use super::{CollectionSpec, ConflictPolicy};
use crate::vault::{Document, Result, Vault, VaultError, VaultTx};

pub(crate) const STATE_COLLECTION: &str = "sync.state";
/// The hybrid-logical-clock version of each record last written here or pulled.
pub(crate) const VERSIONS_COLLECTION: &str = "sync.versions";

pub(crate) fn version_id(collection: &str, record_id: &str) -> String {
    format!("{collection}\u{1f}{record_id}")
}

fn state_text(tx: &VaultTx<'_>, key: &str) -> Result<Option<String>> {
    Ok(tx
        .get(STATE_COLLECTION, key)?
        .map(|r| String::from_utf8_lossy(&r.body).into_owned()))
}

/// This device's node name in clocks: random, made once.
pub(crate) fn node_id(tx: &VaultTx<'_>) -> Result<String> {
    if let Some(node) = state_text(tx, "node")? {
        return Ok(node);
    }
    let node = crate::hex::random(6).map_err(|_| VaultError::Io {
        reason: "system random source failed".into(),
    })?;
    tx.put(STATE_COLLECTION, "node", &[], node.as_bytes())?;
    Ok(node)
}

/// Advances the device's clock past `seen` (a clock read from the server), unless `seen` is
/// more than a day ahead of `now_ms` (another device's wrong clock).
pub(crate) fn observe_hlc(tx: &VaultTx<'_>, seen: &Hlc, now_ms: u64) -> Result<()> {
    if seen.wall_ms > now_ms.saturating_add(super::hlc::MAX_AHEAD_MS) {
        return Ok(());
    }
    let kept = state_text(tx, "hlc")?.is_some();
    let last = last_reading(tx, now_ms)?;
    // Saved when none was kept even if not newer (its version was just stored, so the scan
    // found it): the next change of a first pull then reads one record, not every version.
    match last {
        Some(l) if &l >= seen && kept => {}
        Some(l) if &l >= seen => tx.put(STATE_COLLECTION, "hlc", &[], l.to_string().as_bytes())?,
        _ => tx.put(STATE_COLLECTION, "hlc", &[], seen.to_string().as_bytes())?,
    }
    Ok(())
}

/// The clock's last reading, unless more than a day ahead of `limit_ms` (a clock once set far
/// ahead). None kept yet (a new device, or a backup restored onto one: a backup holds no
/// clock): the newest version the vault holds within that limit, so the first change goes after
/// every version, as the clock it replaces did. Read a page at a time, once per vault.
fn last_reading(tx: &VaultTx<'_>, limit_ms: u64) -> Result<Option<Hlc>> {
    let within = |h: &Hlc| h.wall_ms <= limit_ms.saturating_add(super::hlc::MAX_AHEAD_MS);
    if let Some(text) = state_text(tx, "hlc")? {
        return Ok(Hlc::parse(&text).filter(within));
    }
    let (mut after, mut newest) = (0i64, None::<Hlc>);
    loop {
        let page = tx.list_page(VERSIONS_COLLECTION, after, 256, false)?;
        let Some(&(last, _)) = page.last() else {
            return Ok(newest);
        };
        after = last;
        for (_, r) in &page {
            if let Some(h) = Hlc::parse(&String::from_utf8_lossy(&r.body)).filter(within) {
                if newest.as_ref().is_none_or(|n| *n < h) {
                    newest = Some(h);
                }
            }
        }
    }
}

/// This device's clock in milliseconds, corrected by the offset to the backend's clock that
/// the last sync measured (none yet: as it is).
fn corrected_now_ms(tx: &VaultTx<'_>) -> Result<u64> {
    let offset: i64 = state_text(tx, "clock_offset_ms")?
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let device_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Ok(device_ms.saturating_add(offset).max(0) as u64)
}

/// The next clock reading for a change made at `at_ms`. The reading before is kept (clocks
/// never go back) unless it is more than a day ahead of both `at_ms` and `now_ms`: a clock once
/// set far ahead, since put right, must not stamp every later change with its future, which
/// the backend refuses.
fn tick_at(tx: &VaultTx<'_>, at_ms: u64, now_ms: u64) -> Result<String> {
    let last = last_reading(tx, at_ms.max(now_ms))?;
    let node = node_id(tx)?;
    let next = Hlc::tick(last.as_ref(), at_ms, &node).to_string();
    tx.put(STATE_COLLECTION, "hlc", &[], next.as_bytes())?;
    Ok(next)
}

fn next_hlc(tx: &VaultTx<'_>, now_secs: u64) -> Result<String> {
    let now_ms = corrected_now_ms(tx)?;
    tick_at(tx, now_secs.saturating_mul(1000), now_ms)
}

/// What became of a change the backend refused for a clock far ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Restamped {
    /// Stamped again: sent again.
    Again,
    /// A later edit of its record on this device waits to be sent: dropped, as the backend
    /// would find it superseded by that edit.
    Superseded,
    /// A pulled change replaced its record here since: left to the caller to set aside (the
    /// record shows the pulled change; sending this one now would part the two for good).
    Replaced,
    /// Gone or changed meanwhile (another sync of this vault): left alone.
    Gone,
}

/// Stamps a pending last-writer-wins change afresh, with a clock reading at `now_ms` (this
/// device's clock corrected by the backend's) and a new idempotency key, after the backend
/// refused its clock as too far ahead (a device clock that was wrong when the change was
/// made): the change is sent again instead of being lost. Not when its record changed since (a
/// later edit here, or a pulled change): stamped now, the older edit would beat it.
pub(crate) fn restamp(tx: &VaultTx<'_>, entry: &OutboxEntry, now_ms: u64) -> Result<Restamped> {
    let waiting = tx.get_doc::<OutboxEntry>(&entry.id())?;
    if waiting.is_none_or(|w| w.idempotency_key != entry.idempotency_key) {
        return Ok(Restamped::Gone);
    }
    // The record's version says what came after this change: nothing (still its own), a later
    // edit here (stamped with this device's node), or a pulled change (another node's).
    let version = version_id(&entry.collection, &entry.record_id);
    let current = tx
        .get(VERSIONS_COLLECTION, &version)?
        .map(|r| String::from_utf8_lossy(&r.body).into_owned());
    if let Some(current) = current.filter(|c| *c != entry.hlc) {
        tx.delete(OutboxEntry::COLLECTION, &entry.id())?;
        let node = node_id(tx)?;
        let here = Hlc::parse(&current).is_some_and(|h| h.node == node);
        return Ok(if here {
            Restamped::Superseded
        } else {
            Restamped::Replaced
        });
    }
    let hlc = tick_at(tx, now_ms, now_ms)?;
    tx.put(VERSIONS_COLLECTION, &version, &[], hlc.as_bytes())?;
    let idempotency_key = crate::hex::random(16).map_err(|_| VaultError::Io {
        reason: "system random source failed".into(),
    })?;
    tx.put_doc(&OutboxEntry {
        idempotency_key,
        hlc,
        ..entry.clone()
    })?;
    Ok(Restamped::Again)
}

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
    /// Hybrid logical clock of the change (orders last-writer-wins collections).
    #[serde(default)]
    pub hlc: String,
}

impl Document for OutboxEntry {
    const COLLECTION: &'static str = "sync.outbox";
    fn id(&self) -> String {
        format!("{:020}", self.seq)
    }
}

/// Appends a mutation of `spec`'s collection to the outbox inside the caller's transaction;
/// returns its entry.
pub fn enqueue(
    tx: &VaultTx<'_>,
    spec: &CollectionSpec,
    record_id: &str,
    op: &str,
    payload: serde_json::Value,
    now: u64,
) -> Result<OutboxEntry> {
    // The next position is kept in its own record: no need to read the whole outbox.
    let mut next: u64 = match tx.get(STATE_COLLECTION, "next_seq")? {
        Some(r) => String::from_utf8_lossy(&r.body).parse().unwrap_or(1),
        None => 1,
    };
    // A position still taken (a backup restored over newer entries brings back an older
    // counter): the change goes after every entry waiting, which keeps the outbox's order and
    // overwrites none of them. Only then is the outbox read whole.
    if tx
        .get(OutboxEntry::COLLECTION, &format!("{next:020}"))?
        .is_some()
    {
        let last = tx.list_docs::<OutboxEntry>()?.iter().map(|e| e.seq).max();
        next = last.map_or(next, |last| last.saturating_add(1)).max(next);
    }
    tx.put(
        STATE_COLLECTION,
        "next_seq",
        &[],
        (next + 1).to_string().as_bytes(),
    )?;
    let idempotency_key = crate::hex::random(16).map_err(|_| VaultError::Io {
        reason: "system random source failed".into(),
    })?;
    let hlc = next_hlc(tx, now)?;
    // Only last-writer-wins collections compare versions on pull; others need no record of it.
    let collection = spec.name;
    if spec.policy == ConflictPolicy::LastWriterWins {
        tx.put(
            VERSIONS_COLLECTION,
            &version_id(collection, record_id),
            &[],
            hlc.as_bytes(),
        )?;
    }
    let entry = OutboxEntry {
        idempotency_key,
        seq: next,
        collection: collection.to_owned(),
        record_id: record_id.to_owned(),
        op: op.to_owned(),
        payload,
        created_at: now,
        hlc,
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

/// The positions of every pending mutation, oldest first. The outbox is read a page at a time
/// and only the numbers kept (an offline month may hold thousands of changes, some of a
/// megabyte), so a push reads each entry whole once, when its batch goes.
pub fn pending_seqs(vault: &Vault) -> Result<Vec<u64>> {
    let (mut after, mut seqs) = (0i64, Vec::new());
    loop {
        let page = vault.list_page(OutboxEntry::COLLECTION, after, 64)?;
        let Some(&(last, _)) = page.last() else {
            break;
        };
        after = last;
        // The record id is the zero-padded position: no need to parse the entry.
        seqs.extend(page.iter().filter_map(|(_, r)| r.id.parse::<u64>().ok()));
    }
    // Storage order is the order entries were written, which a restored backup may not keep;
    // a data-key rotation committed between two pages moves every entry past the cursor, so
    // they come round again.
    seqs.sort_unstable();
    seqs.dedup();
    Ok(seqs)
}

/// The entries at `seqs` still pending, in that order.
pub fn entries_at(tx: &VaultTx<'_>, seqs: &[u64]) -> Result<Vec<OutboxEntry>> {
    let mut entries = Vec::with_capacity(seqs.len());
    for seq in seqs {
        entries.extend(tx.get_doc::<OutboxEntry>(&format!("{seq:020}"))?);
    }
    Ok(entries)
}

/// Removes delivered entries (by sequence number).
pub fn remove(tx: &VaultTx<'_>, seqs: &[u64]) -> Result<usize> {
    let mut removed = 0;
    for seq in seqs {
        if tx.delete(OutboxEntry::COLLECTION, &format!("{seq:020}"))? {
            removed += 1;
        }
    }
    Ok(removed)
}
