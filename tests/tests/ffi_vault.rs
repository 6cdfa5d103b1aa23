//! The vault's FFI facade, driven from Rust the way Kotlin and Swift drive it: async calls on
//! several tasks at once, a host key provider, shutdown while work is in flight.

#![allow(clippy::unwrap_used)] // tests fail by panicking

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use thudo_ffi::{KeyProvider, KeyProviderError, Vault, VaultError, VaultOptions, WriteOp};

fn options() -> Option<VaultOptions> {
    Some(VaultOptions {
        kdf_iterations: 10_000,
        cipher: None,
    })
}

/// XOR "wrapping": enough to exercise the trait; the key check catches a wrong pad.
struct XorProvider {
    pad: u8,
    calls: AtomicUsize,
}

impl KeyProvider for XorProvider {
    fn key_id(&self) -> String {
        format!("xor-{}", self.pad)
    }
    fn wrap_key(&self, data_key: Vec<u8>) -> Result<Vec<u8>, KeyProviderError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(data_key.iter().map(|b| b ^ self.pad).collect())
    }
    fn unwrap_key(&self, wrapped: Vec<u8>) -> Result<Vec<u8>, KeyProviderError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(wrapped.iter().map(|b| b ^ self.pad).collect())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_async_calls_share_one_vault() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v").to_string_lossy().into_owned();
    let provider = Arc::new(XorProvider {
        pad: 0x5a,
        calls: AtomicUsize::new(0),
    });
    let vault = Vault::open_with_key_provider(path.clone(), provider.clone(), options())
        .await
        .unwrap();
    assert!(
        provider.calls.load(Ordering::SeqCst) >= 2,
        "wrapped and checked"
    );

    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let vault = vault.clone();
            tokio::spawn(async move {
                let index = HashMap::from([("parity".to_string(), (i % 2).to_string())]);
                vault
                    .put("c".into(), format!("id{i:02}"), vec![i as u8; 64], index)
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(vault.count("c".into()).await.unwrap(), 40);
    assert_eq!(
        vault
            .query("c".into(), "parity".into(), "1".into())
            .await
            .unwrap()
            .len(),
        20
    );
    let record = vault.get("c".into(), "id07".into()).await.unwrap();
    assert_eq!(record.body, thudo_ffi::Bytes(vec![7u8; 64]));
    assert_eq!(record.index["parity"], "1");
    vault.shutdown().await;

    let wrong = Arc::new(XorProvider {
        pad: 0x11,
        calls: AtomicUsize::new(0),
    });
    assert!(matches!(
        Vault::open_with_key_provider(path, wrong, options()).await,
        Err(VaultError::WrongKey { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_interrupts_work_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v").to_string_lossy().into_owned();
    let vault = Vault::open_with_passphrase(path, "p".into(), options())
        .await
        .unwrap();
    let ops: Vec<WriteOp> = (0..5000)
        .map(|i| WriteOp::Put {
            collection: "c".into(),
            id: i.to_string(),
            body: thudo_ffi::Bytes(vec![0; 256]),
            index: HashMap::new(),
        })
        .collect();
    vault.write_batch(ops).await.unwrap();
    let worker = {
        let vault = vault.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = vault.rotate_data_key(None).await {
                    return e;
                }
            }
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    vault.shutdown().await;
    let err = tokio::time::timeout(std::time::Duration::from_secs(10), worker)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(err, VaultError::Closed), "{err:?}");
    assert!(vault.is_closed());
    assert!(matches!(
        vault.list("c".into()).await,
        Err(VaultError::Closed)
    ));
}

#[tokio::test]
async fn errors_cross_the_boundary_typed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v").to_string_lossy().into_owned();
    let vault = Vault::open_with_passphrase(path.clone(), "p".into(), options())
        .await
        .unwrap();
    assert!(matches!(
        vault.get("c".into(), "missing".into()).await,
        Err(VaultError::NotFound { .. })
    ));
    assert!(matches!(
        vault
            .put("C".into(), "x".into(), vec![], HashMap::new())
            .await,
        Err(VaultError::InvalidArgument { .. })
    ));
    assert!(matches!(
        vault
            .import_backup(
                dir.path().join("none").to_string_lossy().into_owned(),
                "x".into(),
                None
            )
            .await,
        Err(VaultError::Io { .. })
    ));
    vault.shutdown().await;
    assert!(matches!(
        Vault::open_with_passphrase(path, "wrong".into(), options()).await,
        Err(VaultError::WrongKey { .. })
    ));
    assert_eq!(thudo_ffi::vault_schema_version(), 1);
}
