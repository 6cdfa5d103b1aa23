//! Every synced collection, registered in one place. Each is declared next to its domain type
//! (name, conflict policy, how a pulled change is stored); this list is the only code that
//! names them all, and the sync engine moves changes for whatever it holds. To add a synced
//! collection: declare it beside its type (see `handbook::member::synced`) and list it here.

use std::sync::{Arc, OnceLock};

use crate::changes::{CollectionSpec, Registry};
use crate::handbook::library::{self, Library};
use crate::handbook::member;
use crate::health::records;
use crate::health::shc::TrustStore;

/// The stores and trust a device brings to a sync.
#[derive(Clone, Default)]
pub struct Stores {
    /// The document library, when the app opened one (else its documents are not pulled).
    pub library: Option<Arc<Library>>,
    /// The health-card trust store that pulled health-card records are verified against
    /// (without one, none is shown as verified).
    pub health_trust: Option<Arc<TrustStore>>,
}

/// The registry of every synced collection, storing into `stores`.
pub fn registry(stores: Stores) -> Registry {
    let mut all = vec![
        records::synced(stores.health_trust),
        library::synced(stores.library),
    ];
    all.extend(member::synced());
    all.extend(crate::transit::trips::synced());
    Registry::new(all)
}

/// What the protocol knows of every synced collection (for the backend).
pub fn specs() -> &'static [CollectionSpec] {
    static SPECS: OnceLock<Vec<CollectionSpec>> = OnceLock::new();
    SPECS.get_or_init(|| registry(Stores::default()).iter().map(|c| c.spec).collect())
}

/// The spec of the collection called `name`.
pub fn spec(name: &str) -> Option<&'static CollectionSpec> {
    specs().iter().find(|c| c.name == name)
}
