//! Fuzzes what a device does with a server's answers: a pull page applied to the vault as the
//! sync client does (every collection, every conflict policy), and a push answer parsed. No
//! input may panic. Each page is rolled back, so the vault stays small.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use thudo_core::sync::apply::apply_page;
use thudo_core::sync::protocol::{PullResponse, PushResponse};
use thudo_core::vault::{Vault, VaultError};

mod common;

fn vault() -> &'static Vault {
    static VAULT: OnceLock<Vault> = OnceLock::new();
    VAULT.get_or_init(|| common::open_vault(&common::scratch("sync")))
}

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<PushResponse>(data);
    let Ok(page) = serde_json::from_slice::<PullResponse>(data) else {
        return;
    };
    let outcome: Result<(), VaultError> = vault().transaction(|tx| {
        let collections = thudo_core::collections::registry(Default::default());
        apply_page(tx, &collections, &page.changes, 1_790_000_000)?;
        // Roll back: the next input starts from the same vault.
        Err(VaultError::InvalidArgument {
            reason: "rollback".into(),
        })
    });
    assert!(outcome.is_err());
});
