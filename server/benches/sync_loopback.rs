//! Sync on loopback, client and reference backend in one process: pulling 10,000 and then
//! 20,000 health records page by page (memory should not grow with the count), and pushing
//! 1,000 and 10,000 queued mutations; fetching a published 10 MiB file (40 chunks, each kept in the vault
//! as it arrives, the whole checked against its SHA-256).
//!
//! `cargo bench -p thudo-server --bench sync_loopback`

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use thudo_core::handbook::member::{DocumentNote, MemberHandbook};
use thudo_core::sync::client::{BackendClient, BackendConfig};
use thudo_core::sync::protocol::Change;
use thudo_core::vault::{Unlock, Vault, VaultOptions};
use thudo_server::prelude::*;
use thudo_server::storage::SqliteStorage;
use thudo_server::transit::fares::FarePolicy;
use thudo_server::{AppState, ServerConfig};

/// Peak resident memory of this process so far, KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn vault(dir: &std::path::Path) -> Arc<Vault> {
    Arc::new(
        Vault::open(
            dir,
            Unlock::passphrase("bench"),
            &VaultOptions {
                kdf_iterations: thudo_core::vault::MIN_KDF_ITERATIONS,
                ..Default::default()
            },
        )
        .unwrap(),
    )
}

/// Publishes `n` Observations for a citizen, 500 at a time (so that publishing does not raise
/// the process's peak memory above what the pull needs).
fn observations(storage: &SqliteStorage, citizen: &str, n: usize) {
    let account = storage
        .account_for_citizen(&thudo_server::secrets::ServerSecrets::local().citizen(citizen))
        .unwrap();
    for start in (0..n).step_by(500) {
        let changes: Vec<Change> = (start..(start + 500).min(n))
            .map(|i| {
                let r = json!({"resourceType": "Observation", "id": format!("obs-{i}"), "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7", "display": "Glucose"}]},
                    "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2026-10-02",
                    "valueQuantity": {"value": 5.4, "unit": "mmol/L"},
                    "referenceRange": [{"low": {"value": 3.9}, "high": {"value": 6.4}}]});
                Change {
                    collection: "health.records".into(),
                    record_id: format!("Observation/obs-{i}"),
                    op: "put".into(),
                    payload: r,
                    hlc: String::new(),
                }
            })
            .collect();
        storage
            .publish(&format!("acct:{account}"), &changes)
            .unwrap();
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let storage = Arc::new(SqliteStorage::open(&dir.path().join("server.db"), thudo_server::SCHEMA).unwrap());
        let (config, idp) =
            ServerConfig::local(storage.clone(), FarePolicy::default())
                .unwrap();
        let state = AppState::new(config).unwrap();
        let server = thudo_server::start(state, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let url = format!("http://{}", server.addr);
        let client = BackendClient::new(BackendConfig::new(&url)).unwrap();
        for (run, total) in [(1, 10_000usize), (2, 20_000)] {
            let citizen = format!("00100000000{run}");
            observations(&storage, &citizen, total);
            let v = vault(&dir.path().join(format!("pull-{run}")));
            client.sign_in_and_register(v.clone(), "bench", |n| idp.id_token(&citizen, n).map_err(|e| e.to_string()))
                .await
                .unwrap();
            let before = peak_rss_kib();
            let t = Instant::now();
            let report = client.sync(v.clone(), &thudo_core::collections::registry(Default::default()), None).await.unwrap();
            let took = t.elapsed();
            assert_eq!(report.applied, total as i64);
            println!(
                "pull {total} health records (pages of 500, each applied in one vault transaction): {:.2} s, {:.0} records/s, peak RSS {} -> {} KiB",
                took.as_secs_f64(),
                total as f64 / took.as_secs_f64(),
                before,
                peak_rss_kib()
            );
        }

        // A day's changes, then an offline month's: the push reads the outbox's positions once
        // and each batch's entries alone, so the time per change should not grow with the count.
        let mut pushed = None;
        for (run, count) in [(8, 1_000i64), (9, 10_000)] {
            let v = vault(&dir.path().join(format!("push-{run}")));
            let citizen = format!("00100000000{run}");
            client.sign_in_and_register(v.clone(), "bench", |n| idp.id_token(&citizen, n).map_err(|e| e.to_string()))
                .await
                .unwrap();
            let book = MemberHandbook::new(&v);
            for i in 0..count {
                book.save_note(&DocumentNote {
                    id: format!("n{i}"),
                    document_id: "nq-57-2024".into(),
                    text: format!("ghi chú số {i} về nghị quyết"),
                    updated_at: 1_790_000_000 + i,
                })
                .unwrap();
            }
            let t = Instant::now();
            let report = client.sync(v.clone(), &thudo_core::collections::registry(Default::default()), None).await.unwrap();
            let took = t.elapsed();
            assert_eq!(report.pushed, count);
            println!(
                "push {count} queued mutations (batches of 200) and pull them back: {:.2} s, {:.0} mutations/s",
                took.as_secs_f64(),
                count as f64 / took.as_secs_f64()
            );
            pushed = Some(v);
        }
        // The last pusher's vault fetches the file below.
        let v = pushed.unwrap();

        // A published 10 MiB file, fetched by a member of its cell.
        let file: Vec<u8> = (0..thudo_core::attachments::MAX_FILE_BYTES as usize)
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let id = thudo_core::attachments::file_id(&file);
        storage
            .put_file(&thudo_server::files::store::NewFile {
                sha256: id.clone(),
                media_type: "application/pdf".into(),
                scope: "cell:hn.bench".into(),
                publisher: "hn".into(),
                chunks: file
                    .chunks(thudo_core::attachments::CHUNK_BYTES)
                    .map(<[u8]>::to_vec)
                    .collect(),
                size: file.len() as i64,
                text: String::new(),
                now: 0,
            })
            .unwrap();
        storage
            .set_cell(&thudo_server::secrets::ServerSecrets::local().citizen("001000000009"), "hn.bench")
            .unwrap();
        let reference = thudo_core::attachments::AttachmentRef {
            id: id.clone(),
            name: "nghi-quyet.pdf".into(),
            media_type: "application/pdf".into(),
            size: file.len() as i64,
        };
        let t = Instant::now();
        let state = thudo_core::attachments::fetch(&client, v.clone(), "handbook.documents/nq", &reference)
            .await
            .unwrap();
        let took = t.elapsed();
        assert!(state.complete);
        let t = Instant::now();
        let back = thudo_core::attachments::Attachments::new(&v).read(&id).unwrap();
        let read = t.elapsed();
        assert_eq!(back.len(), file.len());
        println!(
            "fetch a 10 MiB file (40 chunks of 256 KiB, base64 in JSON, each kept in the vault, hash checked): {:.2} s, {:.1} MB/s; read back and checked: {:.0} ms",
            took.as_secs_f64(),
            file.len() as f64 / 1e6 / took.as_secs_f64(),
            read.as_secs_f64() * 1e3
        );
        server.stop().await;
    });
}
