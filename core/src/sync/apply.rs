//! Applies pulled changes on the device, per collection and its conflict policy: the server's
//! copy replaces the local one for server-authoritative collections; for last-writer-wins
//! collections a change is applied only if its clock is newer than the local version.

use serde_json::Value;

use super::hlc::Hlc;
use super::outbox::{self, VERSIONS_COLLECTION};
use super::protocol::{self, Change, ConflictPolicy};
use crate::handbook::library::{Library, LibraryDocument};
use crate::handbook::member::{
    Attendance, DocumentNote, Meeting, MemberProfile, Notice, NoticeRead, Procedure,
};
use crate::health::records;
use crate::health::shc::TrustStore;
use crate::vault::{Document, VaultError, VaultTx};

/// What applying a page did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Changes written (or deleted).
    pub applied: u64,
    /// Changes older than the local copy (last-writer-wins).
    pub superseded: u64,
    /// Changes of collections this version does not know, or with payloads it cannot read.
    pub skipped: u64,
}

/// Public library documents go to the library's own file, outside the vault transaction;
/// upserts are idempotent, so a page re-pulled after a crash is harmless. Changes apply in page
/// order (a put then a delete of the same document leaves it deleted); a document this version
/// cannot read or that the library refuses is skipped, never blocking the page.
pub fn apply_documents(library: &Library, changes: &[Change]) -> Result<Applied, String> {
    let mut out = Applied::default();
    let mut pending: Vec<LibraryDocument> = Vec::new();
    let flush = |pending: &mut Vec<LibraryDocument>, out: &mut Applied| -> Result<(), String> {
        if !pending.is_empty() {
            library.upsert(pending).map_err(|e| e.to_string())?;
            out.applied += pending.len() as u64;
            pending.clear();
        }
        Ok(())
    };
    for c in changes
        .iter()
        .filter(|c| c.collection == "handbook.documents")
    {
        if c.op == "delete" {
            flush(&mut pending, &mut out)?;
            library.remove(&c.record_id).map_err(|e| e.to_string())?;
            out.applied += 1;
            continue;
        }
        match serde_json::from_value::<LibraryDocument>(c.payload.clone()) {
            Ok(d) if d.validate().is_ok() => pending.push(d),
            _ => out.skipped += 1,
        }
    }
    flush(&mut pending, &mut out)?;
    Ok(out)
}

fn put_typed<D: Document>(tx: &VaultTx<'_>, payload: &Value) -> Result<bool, VaultError> {
    match serde_json::from_value::<D>(payload.clone()) {
        Ok(doc) => {
            tx.put_doc(&doc)?;
            Ok(true)
        }
        Err(_) => Ok(false),
    }
}

/// Applies vault collections' changes of one page inside `tx`. Library documents are counted
/// by [`apply_documents`] and ignored here.
pub fn apply_changes(
    tx: &VaultTx<'_>,
    changes: &[Change],
    health_trust: Option<&TrustStore>,
    now: u64,
) -> Result<Applied, VaultError> {
    let mut out = Applied::default();
    for c in changes {
        if c.collection == "handbook.documents" {
            continue;
        }
        let Some(spec) = protocol::collection(&c.collection) else {
            out.skipped += 1;
            continue;
        };
        let incoming = Hlc::parse(&c.hlc);
        if spec.policy == ConflictPolicy::LastWriterWins {
            let Some(incoming) = &incoming else {
                out.skipped += 1;
                continue;
            };
            let local = tx
                .get(
                    VERSIONS_COLLECTION,
                    &outbox::version_id(&c.collection, &c.record_id),
                )?
                .and_then(|r| Hlc::parse(&String::from_utf8_lossy(&r.body)));
            if local.as_ref().is_some_and(|l| l >= incoming) {
                out.superseded += 1;
                continue;
            }
        }
        let written = if c.op == "delete" {
            tx.delete(&c.collection, &c.record_id)?;
            true
        } else {
            match c.collection.as_str() {
                "health.records" => {
                    match records::store_pulled(tx, &c.payload, health_trust, now) {
                        Ok(stored) => stored,
                        Err(records::HealthError::Vault(e)) => return Err(e),
                        Err(_) => false,
                    }
                }
                "handbook.note" => put_typed::<DocumentNote>(tx, &c.payload)?,
                "handbook.meeting" => put_typed::<Meeting>(tx, &c.payload)?,
                "handbook.profile" => put_typed::<MemberProfile>(tx, &c.payload)?,
                "handbook.attendance" => put_typed::<Attendance>(tx, &c.payload)?,
                "handbook.procedure" => put_typed::<Procedure>(tx, &c.payload)?,
                "handbook.notice_read" => {
                    let written = put_typed::<NoticeRead>(tx, &c.payload)?;
                    if let Some(mut notice) = tx.get_doc::<Notice>(&c.record_id)? {
                        notice.read = true;
                        tx.put_doc(&notice)?;
                    }
                    written
                }
                "handbook.notice" => {
                    // The read mark is the member's own: keep it across server updates.
                    let read = tx.get_doc::<Notice>(&c.record_id)?.is_some_and(|n| n.read)
                        || tx.get_doc::<NoticeRead>(&c.record_id)?.is_some();
                    let mut payload = c.payload.clone();
                    if let Some(obj) = payload.as_object_mut() {
                        let was = obj.get("read").and_then(Value::as_bool).unwrap_or(false);
                        obj.insert("read".into(), Value::Bool(read || was));
                    }
                    put_typed::<Notice>(tx, &payload)?
                }
                _ => false,
            }
        };
        if !written {
            out.skipped += 1;
            continue;
        }
        if let (Some(h), ConflictPolicy::LastWriterWins) = (&incoming, spec.policy) {
            tx.put(
                VERSIONS_COLLECTION,
                &outbox::version_id(&c.collection, &c.record_id),
                &[],
                c.hlc.as_bytes(),
            )?;
            outbox::observe_hlc(tx, h, now.saturating_mul(1000))?;
        }
        out.applied += 1;
    }
    Ok(out)
}
