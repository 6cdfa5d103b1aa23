//! Changes that travel between a device and the backend, as storage sees them: the durable
//! [`outbox`] a domain writes in the same vault transaction as its change, the [`hlc`] that
//! orders last-writer-wins writes, and the [`Collection`] declaration with which a domain says
//! how its records sync.
//!
//! This layer sits below the domains and knows none of them: a domain declares its collections
//! next to its types, `crate::collections` registers them in one place, and the sync engine
//! (`crate::sync`) moves changes for whatever is registered.

pub mod hlc;
pub mod outbox;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::vault::{VaultError, VaultTx};

/// How a collection resolves concurrent writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    /// The server's copy wins; devices replace theirs with what they pull.
    ServerAuthoritative,
    /// Last writer wins by hybrid logical clock.
    LastWriterWins,
}

/// What the protocol knows of a collection: its name, who writes it, and its policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectionSpec {
    /// Collection name, `domain.kind`.
    pub name: &'static str,
    /// Devices may push to it.
    pub pushable: bool,
    /// Devices pull it.
    pub pullable: bool,
    /// Whether it is shared by a party cell (else it is the citizen's own).
    pub per_cell: bool,
    /// Conflict policy.
    pub policy: ConflictPolicy,
}

impl CollectionSpec {
    /// A collection devices write and pull.
    pub const fn device(name: &'static str, policy: ConflictPolicy) -> CollectionSpec {
        CollectionSpec {
            name,
            pushable: true,
            pullable: true,
            per_cell: false,
            policy,
        }
    }

    /// A collection the backend publishes to the citizen's own account; devices only pull it.
    pub const fn published_to_account(name: &'static str) -> CollectionSpec {
        CollectionSpec {
            name,
            pushable: false,
            pullable: true,
            per_cell: false,
            policy: ConflictPolicy::ServerAuthoritative,
        }
    }

    /// A collection the backend publishes to a party cell; devices only pull it.
    pub const fn published_to_cell(name: &'static str) -> CollectionSpec {
        CollectionSpec {
            name,
            pushable: false,
            pullable: true,
            per_cell: true,
            policy: ConflictPolicy::ServerAuthoritative,
        }
    }
}

/// One pulled change, as the collection that stores it sees it.
#[derive(Debug, Clone, Copy)]
pub struct Pulled<'a> {
    /// The record's id in its collection.
    pub record_id: &'a str,
    /// True for a deletion (then `payload` is null).
    pub delete: bool,
    /// The record.
    pub payload: &'a Value,
}

/// Stores a pulled record inside the page's vault transaction; returns false (writing nothing)
/// for a payload it cannot read or refuses. `now` is unix seconds.
pub type VaultApply =
    dyn Fn(&VaultTx<'_>, &str, &Value, u64) -> Result<bool, VaultError> + Send + Sync;

/// A store of its own outside the vault (the public document library), applied a page at a
/// time; its writes must be idempotent, since a page is pulled again after a crash.
pub trait OutsideStore: Send + Sync {
    /// Applies the page in order; returns (applied, skipped).
    fn apply(&self, changes: &[Pulled<'_>]) -> Result<(u64, u64), String>;
}

/// How a collection stores what it pulls.
#[derive(Clone)]
pub enum Apply {
    /// In the vault, in the page's transaction; a deletion removes the record.
    Vault(Arc<VaultApply>),
    /// In a store of its own.
    Outside(Arc<dyn OutsideStore>),
    /// Not stored on this device (a store the app did not open): its pull is skipped.
    Nowhere,
}

/// A synced collection: its spec and how pulled changes are stored.
#[derive(Clone)]
pub struct Collection {
    /// What the protocol knows.
    pub spec: CollectionSpec,
    /// Where pulled changes go.
    pub apply: Apply,
}

impl Collection {
    /// A collection stored in the vault.
    pub fn in_vault(
        spec: CollectionSpec,
        apply: impl Fn(&VaultTx<'_>, &str, &Value, u64) -> Result<bool, VaultError>
            + Send
            + Sync
            + 'static,
    ) -> Collection {
        Collection {
            spec,
            apply: Apply::Vault(Arc::new(apply)),
        }
    }

    /// A collection whose records the vault stores as typed documents, written as they come.
    pub fn of_documents<D: crate::vault::Document + serde::de::DeserializeOwned>(
        spec: CollectionSpec,
    ) -> Collection {
        Collection::in_vault(spec, |tx, id, payload, _now| {
            match serde_json::from_value::<D>(payload.clone()) {
                // Stored under its own id only when that is the change's: the version the
                // conflict check read is the change's record's, so another id would let an
                // older record overwrite a newer one.
                Ok(doc) if doc.id() == id => {
                    tx.put_doc(&doc)?;
                    Ok(true)
                }
                _ => Ok(false),
            }
        })
    }
}

/// The synced collections of an app, each known by name.
#[derive(Clone, Default)]
pub struct Registry {
    collections: Vec<Collection>,
}

impl Registry {
    /// A registry of `collections` (names are unique; a later one replaces an earlier).
    pub fn new(collections: Vec<Collection>) -> Registry {
        let mut out: Vec<Collection> = Vec::with_capacity(collections.len());
        for c in collections {
            out.retain(|o| o.spec.name != c.spec.name);
            out.push(c);
        }
        Registry { collections: out }
    }

    /// The collection called `name`.
    pub fn get(&self, name: &str) -> Option<&Collection> {
        self.collections.iter().find(|c| c.spec.name == name)
    }

    /// Every collection, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = &Collection> {
        self.collections.iter()
    }
}
