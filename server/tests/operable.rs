//! Operable through faults: an instance started before its database waits for it, the health
//! check proves a write, and a database failure is a 503 that says when to retry and nothing of
//! the database's own words.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::{Duration, Instant};

use common::http_client;
use thudo_server::transit::fares::FarePolicy;
use thudo_server::{AppState, ServerConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_cannot_write_is_a_503_with_a_retry_time_and_no_driver_text() {
    // A SQLite file whatever the suite's engine: the fault is its file lock.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("server.db");
    let storage = thudo_server::open_storage(&file.to_string_lossy()).unwrap();
    let (config, _) = ServerConfig::local(storage, FarePolicy::default()).unwrap();
    let running = thudo_server::start(
        AppState::new(config).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let http = http_client();
    let health = format!("http://{}/healthz", running.addr);
    assert_eq!(
        http.get(&health).send().await.unwrap().status().as_u16(),
        200
    );
    // Another process holds the file's write lock (a stuck backup, a full disk's effect).
    let blocker = rusqlite::Connection::open(&file).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let r = http.get(&health).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 503, "the health check writes");
    assert_eq!(
        r.headers().get("retry-after").unwrap().to_str().unwrap(),
        "2"
    );
    let body = String::from_utf8(r.bytes().await.unwrap().to_vec()).unwrap();
    assert!(
        body.contains("\"storage\"") && !body.to_lowercase().contains("lock"),
        "{body}"
    );
    blocker.execute_batch("COMMIT").unwrap();
    assert_eq!(
        http.get(&health).send().await.unwrap().status().as_u16(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_started_before_its_database_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let later = dir.path().join("mounted-later");
    let db = later.join("server.db").to_string_lossy().into_owned();
    // Gives up after its patience.
    let started = Instant::now();
    let e = thudo_server::app::open_storage_waiting(&db, Duration::from_millis(1_500)).await;
    assert!(e.is_err());
    assert!(started.elapsed() >= Duration::from_secs(1));
    // Comes up once the volume does.
    let mount = later.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        std::fs::create_dir_all(mount).unwrap();
    });
    let started = Instant::now();
    let storage = thudo_server::app::open_storage_waiting(&db, Duration::from_secs(20))
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(1_500));
    assert_eq!(storage.get_setting("nothing").unwrap(), None);
}
