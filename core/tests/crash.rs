//! Crash safety: a child process writes in a loop and is killed with SIGKILL at random moments.
//! After every kill the vault must open, pass SQLite's integrity check, and hold every write
//! whose call had returned (the child prints a line only after a call returns).
//!
//! The child is this same test binary, re-run with `THUDO_CRASH_DIR` set. Rounds default to 100;
//! `THUDO_CRASH_ROUNDS` changes that.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use thudo_core::vault::{Vault, WriteOp};

const PASSPHRASE: &str = "crash test passphrase";

fn body_for(id: &str) -> Vec<u8> {
    format!("body of {id} ").repeat(20).into_bytes()
}

#[test]
#[ignore = "runs only as the child process of kill_at_random_moments_loses_nothing"]
fn crash_child() {
    let Ok(dir) = std::env::var("THUDO_CRASH_DIR") else {
        return;
    };
    let round = std::env::var("THUDO_CRASH_ROUND").unwrap();
    let vault = common::open_pass(dir.as_ref(), PASSPHRASE).unwrap();
    let mut out = std::io::stdout().lock();
    // libtest has printed "test crash_child ... " without a newline: start a fresh line.
    writeln!(out, "\nopen").unwrap();
    out.flush().unwrap();
    for i in 0u64.. {
        let id = format!("r{round}-{i}");
        if i % 10 == 9 {
            // A multi-record transaction: all three ids or none.
            let ids: Vec<String> = (0..3).map(|k| format!("{id}-b{k}")).collect();
            let ops: Vec<WriteOp> = ids
                .iter()
                .map(|id| WriteOp::Put {
                    collection: "crash".into(),
                    id: id.clone(),
                    index: vec![("round".into(), round.clone())],
                    body: body_for(id),
                })
                .collect();
            vault.write_batch(&ops).unwrap();
            for id in ids {
                writeln!(out, "put {id}").unwrap();
            }
        } else {
            vault
                .put(
                    "crash",
                    &id,
                    &[("round".into(), round.clone())],
                    &body_for(&id),
                )
                .unwrap();
            writeln!(out, "put {id}").unwrap();
        }
        out.flush().unwrap();
        if i % 40 == 39 {
            vault.rotate_data_key().unwrap();
            writeln!(out, "rotated").unwrap();
            out.flush().unwrap();
        }
    }
}

/// A small xorshift generator seeded from the OS: kill times differ every run.
struct Jitter(u64);
impl Jitter {
    fn new() -> Self {
        let mut seed = [0u8; 8];
        thudo_core::crypto::fill_random(&mut seed).unwrap();
        Jitter(u64::from_le_bytes(seed) | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn kill_at_random_moments_loses_nothing() {
    let rounds: u32 = std::env::var("THUDO_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(100);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut jitter = Jitter::new();
    let mut acknowledged: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut rotations = 0;
    let mut kills_after_open = 0;
    for round in 0..rounds {
        let mut child = Command::new(&exe)
            .args([
                "crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("THUDO_CRASH_DIR", dir.path())
            .env("THUDO_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<_>>()
        });
        // Let the child open the vault and write for a random while, then kill it mid-flight.
        std::thread::sleep(Duration::from_millis(20 + jitter.below(120)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let lines = reader.join().unwrap();
        if lines.iter().any(|l| l == "open") {
            kills_after_open += 1;
        }
        for line in &lines {
            if let Some(id) = line.strip_prefix("put ") {
                acknowledged.insert(id.to_owned(), body_for(id));
            } else if line == "rotated" {
                rotations += 1;
            }
        }

        let conn =
            rusqlite::Connection::open(thudo_core::vault::database_path(dir.path())).unwrap();
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok", "round {round}");
        drop(conn);
        let vault: Vault = common::open_pass(dir.path(), PASSPHRASE)
            .unwrap_or_else(|e| panic!("round {round}: vault does not open: {e}"));
        let stored = vault.list("crash").unwrap();
        let stored: BTreeMap<_, _> = stored.into_iter().map(|r| (r.id, r.body)).collect();
        for (id, body) in &acknowledged {
            assert_eq!(
                stored.get(id),
                Some(body),
                "round {round}: acknowledged write {id} lost"
            );
        }
        // Batches are atomic: each batch's three records are all there or none.
        for id in stored.keys().filter(|id| id.ends_with("-b0")) {
            let base = id.trim_end_matches("-b0");
            for k in 1..3 {
                assert!(
                    stored.contains_key(&format!("{base}-b{k}")),
                    "half a batch: {base}"
                );
            }
        }
        vault.close();
    }
    eprintln!(
        "crash test: {rounds} kills ({kills_after_open} after open), {} acknowledged writes kept, \
         {rotations} key rotations",
        acknowledged.len()
    );
    assert!(
        kills_after_open > rounds / 2,
        "most kills must land while the child writes"
    );
    assert!(acknowledged.len() as u32 > rounds, "the children wrote");
}
