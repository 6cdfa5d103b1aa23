//! The storage engines under concurrency: instances starting at once on a new database, values
//! claimed by several writers, a change committed late by another instance, and a database
//! from a newer build. On SQLite by default; on PostgreSQL with `THUDO_TEST_POSTGRES`.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::Storage;
use serde_json::json;
use thudo_core::sync::protocol::Change;

fn note(id: &str) -> Change {
    Change {
        collection: "handbook.note".into(),
        record_id: id.into(),
        op: "put".into(),
        payload: json!({"id": id}),
        hlc: String::new(),
    }
}

#[test]
fn instances_starting_at_once_migrate_once_and_agree_on_first_values() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::database(dir.path());
    // Eight instances open one new database at the same moment.
    let opened: Vec<Arc<dyn Storage>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| thudo_server::open_storage(&db).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // Each claims a value for one key; every one goes on with the same, first value.
    let claimed: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = opened
            .iter()
            .enumerate()
            .map(|(i, storage)| {
                s.spawn(move || {
                    storage
                        .claim_setting("first", format!("instance {i}").as_bytes())
                        .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(claimed.windows(2).all(|w| w[0] == w[1]), "{claimed:?}");
    assert_eq!(
        opened[0].get_setting("first").unwrap(),
        Some(claimed[0].clone())
    );
    // Read-modify-write from every instance at once: no update is lost.
    std::thread::scope(|s| {
        for storage in &opened {
            s.spawn(move || {
                for _ in 0..10 {
                    storage
                        .update_setting("counter", &mut |v| {
                            let n: u32 = v
                                .and_then(|v| String::from_utf8(v).ok()?.parse().ok())
                                .unwrap_or(0);
                            Ok((n + 1).to_string().into_bytes())
                        })
                        .unwrap();
                }
            });
        }
    });
    assert_eq!(
        opened[0].get_setting("counter").unwrap().as_deref(),
        Some(&b"80"[..])
    );
    // Deny-list versions strictly increase across instances.
    let versions: Vec<u32> = std::thread::scope(|s| {
        let handles: Vec<_> = opened
            .iter()
            .enumerate()
            .map(|(i, storage)| s.spawn(move || storage.deny(&[i as u64 + 1], &[], 1).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut sorted = versions.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 8, "{versions:?}");
    let (version, cards, _) = opened[0].deny_list(0).unwrap();
    assert_eq!((version, cards.len()), (*sorted.last().unwrap(), 8));
}

/// PostgreSQL only: SQLite's writers are serial, so a change cannot commit out of order there.
#[test]
#[ignore = "needs PostgreSQL: scripts/with-postgres.sh cargo test -- --include-ignored"]
fn a_cursor_never_passes_a_change_another_instance_commits_late() {
    let db = common::postgres_database();
    let storage = thudo_server::open_storage(&db).unwrap();
    let scope = "acct:a-late";
    // "Another instance" is in the middle of appending to the scope: it holds the scope's lock
    // (as every append does) and has inserted its change, not yet committed.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (client, connection) = rt
        .block_on(tokio_postgres::connect(&db, tokio_postgres::NoTls))
        .unwrap();
    rt.spawn(connection);
    let key = thudo_server::storage::locks::Lock::Scope(scope).key();
    rt.block_on(async {
        client.batch_execute("BEGIN").await.unwrap();
        client
            .execute("SELECT pg_advisory_xact_lock($1)", &[&key])
            .await
            .unwrap();
        client
            .execute(
                "INSERT INTO changes(scope, collection, record_id, op, payload, hlc)
                 VALUES ($1, 'handbook.note', 'late', 'put', '{\"id\":\"late\"}', '')",
                &[&scope],
            )
            .await
            .unwrap();
    });
    // This instance publishes to the same scope meanwhile: it waits for the lock.
    let publisher = {
        let storage = storage.clone();
        std::thread::spawn(move || storage.publish(scope, &[note("early")]).unwrap())
    };
    std::thread::sleep(Duration::from_millis(300));
    let (seen, cursor, _) = storage.pull(scope, "handbook.note", 0, 100).unwrap();
    assert!(
        seen.is_empty(),
        "a page shows a later change before an earlier one commits: {seen:?}"
    );
    assert!(!publisher.is_finished());
    rt.block_on(client.batch_execute("COMMIT")).unwrap();
    publisher.join().unwrap();
    let (seen, _, _) = storage.pull(scope, "handbook.note", cursor, 100).unwrap();
    let ids: Vec<&str> = seen.iter().map(|c| c.record_id.as_str()).collect();
    assert_eq!(ids, ["late", "early"], "in commit order, none skipped");
}

/// PostgreSQL's ledger (SQLite's case is in the conformance suite).
#[test]
#[ignore = "needs PostgreSQL: scripts/with-postgres.sh cargo test -- --include-ignored"]
fn a_database_from_a_newer_build_is_refused() {
    let db = common::postgres_database();
    drop(thudo_server::open_storage(&db).unwrap());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (client, connection) = tokio_postgres::connect(&db, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .execute(
                "INSERT INTO schema_migrations(version, applied_at) VALUES (99, 0)",
                &[],
            )
            .await
            .unwrap();
    });
    let err = thudo_server::open_storage(&db).err().unwrap();
    assert!(err.to_string().contains("newer"), "{err}");
}

#[test]
#[ignore = "needs PostgreSQL: scripts/with-postgres.sh cargo test -- --include-ignored"]
fn postgres_over_tls_verifies_the_servers_certificate() {
    let ca = std::env::var("THUDO_TEST_POSTGRES_CA")
        .expect("THUDO_TEST_POSTGRES_CA must name the test server's CA (scripts/with-postgres.sh)");
    let db = common::postgres_database();
    // Verified against the server's CA: the whole storage works over TLS.
    let tls = format!("{db}?sslmode=verify-full&sslrootcert={ca}");
    let storage = thudo_server::open_storage(&tls).unwrap();
    storage.set_setting("over_tls", b"yes").unwrap();
    assert_eq!(
        storage.get_setting("over_tls").unwrap().as_deref(),
        Some(&b"yes"[..])
    );
    // The same server with the public roots: its certificate is not trusted, nothing connects.
    let err = thudo_server::open_storage(&format!("{db}?sslmode=require"))
        .err()
        .unwrap();
    assert!(err.to_string().contains("connection"), "{err}");
}
