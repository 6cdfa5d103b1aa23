//! Helpers shared by the backend's integration tests.
#![allow(dead_code, clippy::unwrap_used, missing_docs)]

use std::path::Path;
use std::sync::Arc;

use thudo_core::sync::client::{SyncClient, SyncConfig};
use thudo_core::vault::{Unlock, Vault, VaultOptions};
use thudo_server::fares::FarePolicy;
use thudo_server::identity::LocalIdentityProvider;
pub use thudo_server::storage::Storage;
use thudo_server::{AppState, Running, ServerConfig};

pub const ADMIN: &str = "test-admin-token-0123456789";

/// A device vault with the cheapest key derivation allowed.
pub fn vault(dir: &Path) -> Arc<Vault> {
    Arc::new(
        Vault::open(
            dir,
            Unlock::passphrase("p"),
            &VaultOptions {
                kdf_iterations: thudo_core::vault::MIN_KDF_ITERATIONS,
                ..Default::default()
            },
        )
        .unwrap(),
    )
}

/// A plain client for the test's own calls (rustls set up as the library does).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(thudo_core::sync::client::tls_config(&[], &[]).unwrap())
        .build()
        .unwrap()
}

/// Where a test's backend keeps its data: a SQLite file in `dir`, or, when
/// `THUDO_TEST_POSTGRES` names a PostgreSQL server (a URL to its maintenance database), a new
/// database of its own there. The same tests run on both engines.
pub fn database(dir: &Path) -> String {
    match std::env::var("THUDO_TEST_POSTGRES") {
        Ok(admin) if !admin.is_empty() => {
            let mut suffix = [0u8; 6];
            thudo_core::crypto::fill_random(&mut suffix).unwrap();
            let name = format!("thudo_test_{}", thudo_core::hex::encode(&suffix));
            thudo_server::storage::create_database(&admin, &name).unwrap()
        }
        _ => dir.join("server.db").to_string_lossy().into_owned(),
    }
}

/// A backend on loopback with its own database and a local identity provider.
pub struct Local {
    pub storage: Arc<dyn Storage>,
    pub state: AppState,
    pub running: Running,
    pub idp: Arc<LocalIdentityProvider>,
    pub client: SyncClient,
    pub url: String,
}

pub async fn start_local(dir: &Path) -> Local {
    let storage = thudo_server::storage::open(&database(dir)).unwrap();
    let (config, idp) = ServerConfig::local(storage.clone(), ADMIN, FarePolicy::default()).unwrap();
    let state = AppState::new(config).unwrap();
    let running = thudo_server::start(state.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = format!("http://{}", running.addr);
    let client = SyncClient::new(SyncConfig::new(&url)).unwrap();
    Local {
        storage,
        state,
        running,
        idp,
        client,
        url,
    }
}

/// Every synced collection, stored in the vault only (no document library, no health-card trust).
pub fn collections() -> thudo_core::changes::Registry {
    thudo_core::collections::registry(Default::default())
}

/// Every synced collection, library documents into `library`.
pub fn collections_with(
    library: std::sync::Arc<thudo_core::handbook::library::Library>,
) -> thudo_core::changes::Registry {
    thudo_core::collections::registry(thudo_core::collections::Stores {
        library: Some(library),
        ..Default::default()
    })
}
