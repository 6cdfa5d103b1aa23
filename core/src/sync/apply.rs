//! Applies pulled changes on the device, per collection and its conflict policy: the server's
//! copy replaces the local one for server-authoritative collections; for last-writer-wins
//! collections a change is applied only if its clock is newer than the local version. How a
//! record is stored is the collection's own (see [`crate::changes::Collection`]).

use crate::changes::hlc::Hlc;
use crate::changes::outbox::{self, VERSIONS_COLLECTION};
use crate::changes::{Apply, Collection, ConflictPolicy, Pulled};
use crate::vault::{VaultError, VaultTx};

use super::protocol::Change;

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

/// Applies one page of `collection` to a store outside the vault (see
/// [`crate::changes::OutsideStore`]), in page order.
pub fn apply_outside(collection: &Collection, changes: &[Change]) -> Result<Applied, String> {
    let Apply::Outside(store) = &collection.apply else {
        return Ok(Applied::default());
    };
    let page: Vec<Pulled<'_>> = changes.iter().map(pulled).collect();
    let (applied, skipped) = store.apply(&page)?;
    Ok(Applied {
        applied,
        skipped,
        superseded: 0,
    })
}

fn pulled(c: &Change) -> Pulled<'_> {
    Pulled {
        record_id: &c.record_id,
        delete: c.op == "delete",
        payload: &c.payload,
    }
}

/// Applies one page of `collection`, stored in the vault, inside `tx`.
pub fn apply_changes(
    tx: &VaultTx<'_>,
    collection: &Collection,
    changes: &[Change],
    now: u64,
) -> Result<Applied, VaultError> {
    let mut out = Applied::default();
    let Apply::Vault(store) = &collection.apply else {
        return Ok(out);
    };
    let policy = collection.spec.policy;
    for c in changes {
        if c.collection != collection.spec.name {
            out.skipped += 1;
            continue;
        }
        let incoming = Hlc::parse(&c.hlc);
        if policy == ConflictPolicy::LastWriterWins {
            let Some(incoming) = &incoming else {
                out.skipped += 1;
                continue;
            };
            // An id too long for the vault's version record (from a backend that does not
            // enforce the protocol's limit) is skipped like any change the vault cannot hold,
            // rather than stop the pull at it for good.
            let local = match tx.get(
                VERSIONS_COLLECTION,
                &outbox::version_id(&c.collection, &c.record_id),
            ) {
                Ok(r) => r.and_then(|r| Hlc::parse(&String::from_utf8_lossy(&r.body))),
                Err(VaultError::InvalidArgument { .. }) => {
                    out.skipped += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            // A local version more than a day ahead of this device's clock and of the change
            // was stamped by a clock once set far ahead: it stands against nothing.
            let stamped_ahead = |l: &Hlc| {
                l.wall_ms
                    > now
                        .saturating_mul(1000)
                        .max(incoming.wall_ms)
                        .saturating_add(crate::changes::hlc::MAX_AHEAD_MS)
            };
            if local
                .as_ref()
                .is_some_and(|l| l >= incoming && !stamped_ahead(l))
            {
                out.superseded += 1;
                continue;
            }
        }
        let change = pulled(c);
        let written = if change.delete {
            tx.delete(&c.collection, &c.record_id).map(|_| true)
        } else {
            store(tx, change.record_id, change.payload, now)
        };
        // A change the vault cannot hold (an empty or overlong id, an overlong index value: a
        // hostile device of the same account can push one) is skipped, not an error: an error
        // would stop this page, and every sync after, at the same change for good. The vault
        // refuses such a write before writing anything.
        let written = match written {
            Err(VaultError::InvalidArgument { .. }) => false,
            other => other?,
        };
        if !written {
            out.skipped += 1;
            continue;
        }
        if let (Some(h), ConflictPolicy::LastWriterWins) = (&incoming, policy) {
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

/// Applies a page that may hold changes of several collections, each by its registered
/// collection, inside `tx` (changes of unknown collections, or of stores outside the vault,
/// are skipped).
pub fn apply_page(
    tx: &VaultTx<'_>,
    registry: &crate::changes::Registry,
    changes: &[Change],
    now: u64,
) -> Result<Applied, VaultError> {
    let mut out = Applied::default();
    for c in changes {
        let one = match registry.get(&c.collection) {
            Some(collection) => apply_changes(tx, collection, std::slice::from_ref(c), now)?,
            None => Applied {
                skipped: 1,
                ..Applied::default()
            },
        };
        out.applied += one.applied;
        out.superseded += one.superseded;
        out.skipped += one.skipped;
    }
    Ok(out)
}
