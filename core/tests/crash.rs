//! Crash safety: a child process works in a loop and is killed with SIGKILL at a random moment.
//! The child prints a line only after a call returned (an acknowledged write); after every kill
//! the parent checks that nothing acknowledged is lost. Rounds cycle through five kinds of work:
//!
//! - `vault`: single writes, three-record batches (all or none), data key rotations;
//! - `passphrase`: a chain of passphrase changes between writes: the vault opens with the last
//!   acknowledged passphrase or the one being set, never an older one, and with exactly one;
//! - `wipe`: a wipe right after writing: the old vault or nothing, never fresh keys over old rows;
//! - `taps`: a validator accepting QRs, each verdict printed after `validate` returned: every
//!   printed tap is in the log, numbers never repeat, and the last QR is refused as a replay;
//! - `sync`: pulled pages applied as the sync client does (records and cursor in one
//!   transaction): a page is there whole with its cursor, or not at all;
//! - `passes`: a phone riding pass after pass, each bought ahead while the one before rides,
//!   then put in place when it starts: the phone opens holding the newest pass put in place
//!   (or a later one), every pass bought is held or waiting, and none waits twice.
//!
//! The child is this same test binary, re-run with `THUDO_CRASH_DIR` set. Rounds default to 100;
//! `THUDO_CRASH_ROUNDS` changes that (`scripts/crash-rounds.sh` runs 1,000).

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use thudo_core::crypto::p256::SoftwareKey;
use thudo_core::transit::issuer::{CredentialRequest, IssuerKey};
use thudo_core::transit::phone::{Phone, PhoneOptions};
use thudo_core::transit::validator::{Reason, Validator, ValidatorConfig};
use thudo_core::transit::{wire, Category, Product};
use thudo_core::vault::{Vault, WriteOp};

const PASSPHRASE: &str = "crash test passphrase";
const MODES: [&str; 6] = ["vault", "passphrase", "wipe", "taps", "sync", "passes"];
const T0: u32 = 1_790_000_000;
/// A pass's length in the `passes` mode: short, so a thousand rounds stay in the issuer's year
/// (each round puts a few hundred passes in place).
const PASS_SECS: u64 = 300;
const CARD: u64 = 7;

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Pass `k` of the `passes` mode for `phone`: `PASS_SECS` long, the `k`-th from `base`.
fn pass(issuer: &IssuerKey, phone: &Phone, base: u64, k: u64) -> Vec<u8> {
    let from = base + k * PASS_SECS;
    let request = CredentialRequest {
        card_id: CARD,
        product: Product::MonthlyAllRoutes,
        category: Category::Standard,
        route: 0,
        pass_valid_from: from as u32,
        pass_valid_until: (from + PASS_SECS - 1) as u32,
        device_public_key: phone.device_public_key().to_vec(),
        lifetime_secs: 72 * 3600,
        with_holder: false,
    };
    issuer.issue(&request, from as u32).unwrap().to_vec()
}

fn pass_index(base: u64, f: &wire::CredentialFields) -> u64 {
    (u64::from(f.pass_valid_from) - base) / PASS_SECS
}

fn open_phone(dir: &Path) -> Phone {
    let vault = Arc::new(common::open_pass(dir, PASSPHRASE).unwrap());
    Phone::open(vault, None, PhoneOptions::default()).unwrap()
}

fn body_for(id: &str) -> Vec<u8> {
    format!("body of {id} ").repeat(20).into_bytes()
}

fn secret(i: u64) -> String {
    format!("passphrase number {i}")
}

fn issuer(dir: &Path) -> IssuerKey {
    let pkcs8 = std::fs::read(dir.join("issuer.pk8")).unwrap();
    IssuerKey::from_pkcs8(&pkcs8, 1, T0 - 86_400, T0 + 400 * 86_400).unwrap()
}

/// The QR of scan `i`: a fresh device and credential each time, a distinct time.
fn scan(issuer: &IssuerKey, i: u64) -> (String, u64) {
    let at = T0 + (i as u32) * 200;
    let (device, _) = SoftwareKey::generate().unwrap();
    let request = CredentialRequest {
        card_id: 1_000 + i,
        product: Product::MonthlyAllRoutes,
        category: Category::Standard,
        route: 0,
        pass_valid_from: T0 - 86_400,
        pass_valid_until: T0 + 400 * 86_400,
        device_public_key: device.compressed_public_key().to_vec(),
        lifetime_secs: 72 * 3600,
        with_holder: false,
    };
    let credential = issuer.issue(&request, at).unwrap();
    let sig = device.sign(&wire::tap_message(&credential, at, 1)).unwrap();
    (wire::qr_text(&credential, at, 1, &sig), u64::from(at))
}

fn validator(dir: &Path, vault: Vault) -> Validator {
    Validator::open(
        Arc::new(vault),
        vec![issuer(dir).trusted().clone()],
        ValidatorConfig::default(),
    )
    .unwrap()
}

fn observation(page: u64, k: u64) -> serde_json::Value {
    json!({"resourceType": "Observation", "id": format!("obs-{page}-{k}"), "status": "final",
           "code": {"text": "glucose"}, "subject": {"reference": "Patient/p1"},
           "effectiveDateTime": "2026-11-27", "valueQuantity": {"value": page, "unit": "mmol/L"}})
}

#[test]
#[ignore = "runs only as the child process of kill_at_random_moments_loses_nothing"]
fn crash_child() {
    let Ok(root) = std::env::var("THUDO_CRASH_DIR") else {
        return;
    };
    let mode = std::env::var("THUDO_CRASH_MODE").unwrap();
    let round = std::env::var("THUDO_CRASH_ROUND").unwrap();
    let root = Path::new(&root);
    let dir = root.join(&mode);
    let mut out = std::io::stdout().lock();
    let mut say = |line: String| {
        // libtest printed "test crash_child ... " without a newline: each line starts fresh.
        writeln!(out, "\n{line}").unwrap();
        out.flush().unwrap();
    };
    match mode.as_str() {
        "vault" => {
            let vault = common::open_pass(&dir, PASSPHRASE).unwrap();
            say("open".into());
            for i in 0u64.. {
                let id = format!("r{round}-{i}");
                if i % 10 == 9 {
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
                        say(format!("put {id}"));
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
                    say(format!("put {id}"));
                }
                if i % 40 == 39 {
                    vault.rotate_data_key().unwrap();
                    say("rotated".into());
                }
            }
        }
        "passphrase" => {
            let mut current: u64 = std::env::var("THUDO_CRASH_SECRET")
                .unwrap()
                .parse()
                .unwrap();
            let vault = common::open_pass(&dir, &secret(current)).unwrap();
            say("open".into());
            for i in 0u64.. {
                let id = format!("r{round}-{i}");
                vault.put("crash", &id, &[], &body_for(&id)).unwrap();
                say(format!("put {id}"));
                vault
                    .change_passphrase(&secret(current), &secret(current + 1))
                    .unwrap();
                current += 1;
                say(format!("secret {current}"));
            }
        }
        "wipe" => {
            // Vault after vault, each written then wiped: kills land inside wipes too.
            for k in 0u64.. {
                let dir = dir.join(format!("r{round}-{k}"));
                let vault = common::open_pass(&dir, PASSPHRASE).unwrap();
                vault.put("crash", "kept", &[], b"until wiped").unwrap();
                say(format!("open {k}"));
                vault.wipe().unwrap();
                say(format!("wiped {k}"));
            }
        }
        "taps" => {
            let issuer = issuer(root);
            let mut v = validator(root, common::open_pass(&dir, PASSPHRASE).unwrap());
            say("open".into());
            let first = v.tap_log_status().next_seq;
            for i in first.. {
                let (qr, at) = scan(&issuer, i);
                let verdict = v.validate(&qr, at).unwrap();
                assert!(verdict.accepted, "{:?}", verdict.reason);
                say(format!("tap {} {at} {qr}", v.tap_log_status().next_seq - 1));
            }
        }
        "sync" => {
            let vault = common::open_pass(&dir, PASSPHRASE).unwrap();
            say("open".into());
            let start = vault.find("sync.state", "cursor").unwrap().map_or(0, |r| {
                String::from_utf8_lossy(&r.body).parse::<u64>().unwrap()
            });
            for page in start + 1.. {
                let changes: Vec<_> = (0..5)
                    .map(|k| thudo_core::sync::protocol::Change {
                        collection: "health.records".into(),
                        record_id: format!("Observation/obs-{page}-{k}"),
                        op: "put".into(),
                        payload: observation(page, k),
                        hlc: String::new(),
                    })
                    .collect();
                vault
                    .transaction(|tx| {
                        let collections = thudo_core::collections::registry(Default::default());
                        thudo_core::sync::apply::apply_page(tx, &collections, &changes, 1)?;
                        tx.put("sync.state", "cursor", &[], page.to_string().as_bytes())
                    })
                    .unwrap();
                say(format!("page {page}"));
            }
        }
        "passes" => {
            let issuer = issuer(root);
            let base: u64 = std::env::var("THUDO_CRASH_BASE").unwrap().parse().unwrap();
            let phone = open_phone(&dir);
            say("open".into());
            let mut k = match phone.credential() {
                Some(held) => pass_index(base, &held),
                None => {
                    phone
                        .install_credential(&pass(&issuer, &phone, base, 0))
                        .unwrap();
                    say("started 0".into());
                    0
                }
            };
            // The phone's clock in the middle of pass `k`, whatever the wall clock says.
            let inside = |k: u64| (base + k * PASS_SECS + PASS_SECS / 2) as i64 - now_secs() as i64;
            loop {
                let next = k + 1;
                let waiting = |p: &Phone| {
                    p.upcoming_credentials()
                        .iter()
                        .any(|u| pass_index(base, u) == next)
                };
                if !waiting(&phone) {
                    phone.set_clock_offset(inside(k)).unwrap();
                    phone
                        .install_credential(&pass(&issuer, &phone, base, next))
                        .unwrap();
                    assert!(waiting(&phone), "pass {next} was not kept waiting");
                    say(format!("bought {next}"));
                }
                phone.set_clock_offset(inside(next)).unwrap();
                phone.start_due_passes(now_secs()).unwrap();
                assert_eq!(phone.credential().map(|h| pass_index(base, &h)), Some(next));
                say(format!("started {next}"));
                k = next;
            }
        }
        other => panic!("unknown mode {other}"),
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

fn integrity_ok(dir: &Path) {
    let conn = rusqlite::Connection::open(thudo_core::vault::database_path(dir)).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

#[derive(Default)]
struct Tally {
    kills_after_open: u32,
    writes: BTreeMap<String, Vec<u8>>,
    rotations: u32,
    secret: u64,
    secret_changes: u32,
    wipes_done: u32,
    wipes_cut: u32,
    taps: u64,
    last_tap_seq: u64,
    pages: u64,
    /// The newest pass acknowledged in place, and bought.
    pass_started: Option<u64>,
    pass_bought: Option<u64>,
    passes_started: u64,
    lost: u64,
}

#[test]
fn kill_at_random_moments_loses_nothing() {
    let rounds: u32 = std::env::var("THUDO_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(100);
    let root = tempfile::tempdir().unwrap();
    let (_, pkcs8) = IssuerKey::generate(1, T0 - 86_400, T0 + 400 * 86_400).unwrap();
    std::fs::write(root.path().join("issuer.pk8"), pkcs8).unwrap();
    let exe = std::env::current_exe().unwrap();
    // Passes start from a fixed day inside the issuer key's window; the phone's clock offset
    // carries it there, whatever the date of the run.
    let base = u64::from(T0) + 86_400;
    let mut jitter = Jitter::new();
    let mut t = Tally::default();
    for round in 0..rounds {
        let mode = MODES[round as usize % MODES.len()];
        let mut child = Command::new(&exe)
            .args([
                "crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("THUDO_CRASH_DIR", root.path())
            .env("THUDO_CRASH_MODE", mode)
            .env("THUDO_CRASH_ROUND", round.to_string())
            .env("THUDO_CRASH_SECRET", t.secret.to_string())
            .env("THUDO_CRASH_BASE", base.to_string())
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
        // Let the child open its vault and work for a random while, then kill it mid-flight.
        std::thread::sleep(Duration::from_millis(20 + jitter.below(120)));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        // Killed, never ended on its own: a child's failed assertion would otherwise go unseen.
        {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(status.signal(), Some(9), "round {round} ({mode}): {status}");
        }
        let lines = reader.join().unwrap();
        if lines.iter().any(|l| l == "open") {
            t.kills_after_open += 1;
        }
        let dir = root.path().join(mode);
        let context = format!("round {round} ({mode})");
        match mode {
            "vault" | "passphrase" => {
                for line in &lines {
                    if let Some(id) = line.strip_prefix("put ") {
                        t.writes.insert(id.to_owned(), body_for(id));
                    } else if line == "rotated" {
                        t.rotations += 1;
                    } else if let Some(n) = line.strip_prefix("secret ") {
                        t.secret = n.parse().unwrap();
                        t.secret_changes += 1;
                    }
                }
                if !dir.exists() {
                    continue; // killed before the first open
                }
                integrity_ok(&dir);
                let passphrase = if mode == "vault" {
                    PASSPHRASE.to_owned()
                } else {
                    // The last acknowledged passphrase, or the one whose change was cut after
                    // its commit; never an older one, and never both.
                    let now = common::open_pass(&dir, &secret(t.secret)).map(|v| v.close());
                    let next = common::open_pass(&dir, &secret(t.secret + 1)).map(|v| v.close());
                    assert!(
                        now.is_ok() != next.is_ok(),
                        "{context}: opens with the acknowledged passphrase {} and the next {}",
                        now.is_ok(),
                        next.is_ok()
                    );
                    if t.secret > 0 {
                        assert!(
                            common::open_pass(&dir, &secret(t.secret - 1)).is_err(),
                            "{context}: an older passphrase still opens"
                        );
                    }
                    if next.is_ok() {
                        t.secret += 1;
                    }
                    secret(t.secret)
                };
                let vault = common::open_pass(&dir, &passphrase)
                    .unwrap_or_else(|e| panic!("{context}: vault does not open: {e}"));
                let stored: BTreeMap<_, _> = vault
                    .list("crash")
                    .unwrap()
                    .into_iter()
                    .map(|r| (r.id, r.body))
                    .collect();
                for (id, body) in t.writes.iter().filter(|(id, _)| {
                    // Each mode's vault holds its own rounds' writes.
                    let r: u32 = id[1..id.find('-').unwrap()].parse().unwrap();
                    MODES[r as usize % MODES.len()] == mode
                }) {
                    if stored.get(id) != Some(body) {
                        t.lost += 1;
                        panic!("{context}: acknowledged write {id} lost");
                    }
                }
                for id in stored.keys().filter(|id| id.ends_with("-b0")) {
                    let base = id.trim_end_matches("-b0");
                    for k in 1..3 {
                        assert!(
                            stored.contains_key(&format!("{base}-b{k}")),
                            "{context}: half a batch {base}"
                        );
                    }
                }
                vault.close();
            }
            "wipe" => {
                if lines.iter().any(|l| l.starts_with("open ")) {
                    t.kills_after_open += 1;
                }
                // A finished wipe leaves no directory behind: count them from what was shown.
                t.wipes_done += lines.iter().filter(|l| l.starts_with("wiped ")).count() as u32;
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    continue;
                };
                for entry in entries {
                    let vault_dir = entry.unwrap().path();
                    let k = vault_dir.file_name().unwrap().to_string_lossy().to_string();
                    let Some(k) = k.strip_prefix(&format!("r{round}-")) else {
                        continue;
                    };
                    let opened = lines.iter().any(|l| *l == format!("open {k}"));
                    let wiped = lines.iter().any(|l| *l == format!("wiped {k}"));
                    // The old vault or nothing: it opens with its passphrase (never
                    // CorruptStore or WrongKey), and holds the record or nothing, with no
                    // unreadable rows.
                    match common::open_pass(&vault_dir, PASSPHRASE) {
                        Ok(v) => {
                            // Decrypting every row: an unreadable one fails here.
                            let kept = v
                                .list("crash")
                                .unwrap_or_else(|e| panic!("{context}: unreadable rows: {e}"))
                                .len() as u64;
                            assert!(!(wiped && kept > 0), "{context}: a finished wipe left data");
                            let rows: i64 = rusqlite::Connection::open(
                                thudo_core::vault::database_path(&vault_dir),
                            )
                            .unwrap()
                            .query_row("SELECT count(*) FROM records", [], |r| r.get(0))
                            .unwrap();
                            assert_eq!(rows as u64, kept, "{context}: rows nobody can read");
                            if opened && !wiped && kept == 0 {
                                t.wipes_cut += 1;
                            }
                            v.close();
                        }
                        Err(e) => panic!("{context}: vault {k} does not open: {e}"),
                    }
                    let _ = std::fs::remove_dir_all(&vault_dir);
                }
            }
            "taps" => {
                let printed: Vec<(u64, u64, String)> = lines
                    .iter()
                    .filter_map(|l| {
                        let mut parts = l.strip_prefix("tap ")?.splitn(3, ' ');
                        Some((
                            parts.next()?.parse().ok()?,
                            parts.next()?.parse().ok()?,
                            parts.next()?.to_owned(),
                        ))
                    })
                    .collect();
                if !dir.exists() {
                    continue;
                }
                integrity_ok(&dir);
                let mut v = validator(root.path(), common::open_pass(&dir, PASSPHRASE).unwrap());
                let logged = v.export_taps_up_to(usize::MAX).unwrap();
                let seqs: Vec<u64> = logged.iter().map(|t| t.seq).collect();
                assert!(
                    seqs.windows(2).all(|w| w[0] < w[1]),
                    "{context}: tap numbers repeat or go back"
                );
                for (seq, _, qr) in &printed {
                    let found = logged
                        .iter()
                        .any(|tap| tap.seq == *seq && tap.qr.as_ref() == Some(qr));
                    if !found {
                        t.lost += 1;
                        panic!("{context}: shown tap {seq} not in the log");
                    }
                    t.taps += 1;
                    assert!(*seq > t.last_tap_seq, "{context}: tap number {seq} reused");
                    t.last_tap_seq = *seq;
                }
                // The newest QR accepted (shown, or accepted just before the kill), scanned again
                // moments later: a replay, even after SIGKILL.
                if let Some(newest) = logged.iter().rev().find(|tap| tap.accepted) {
                    let qr = newest.qr.clone().unwrap();
                    assert_eq!(
                        v.validate(&qr, newest.at + 1).unwrap().reason,
                        Reason::Replayed,
                        "{context}"
                    );
                    t.last_tap_seq = v.tap_log_status().next_seq - 1;
                }
            }
            "sync" => {
                let acknowledged = lines
                    .iter()
                    .filter_map(|l| l.strip_prefix("page ")?.parse::<u64>().ok())
                    .max();
                if !dir.exists() {
                    continue;
                }
                integrity_ok(&dir);
                let vault = common::open_pass(&dir, PASSPHRASE).unwrap();
                let cursor = vault.find("sync.state", "cursor").unwrap().map_or(0, |r| {
                    String::from_utf8_lossy(&r.body).parse::<u64>().unwrap()
                });
                if let Some(acked) = acknowledged {
                    if cursor < acked {
                        t.lost += 1;
                        panic!("{context}: page {acked} acknowledged, cursor at {cursor}");
                    }
                }
                // Every page up to the cursor is there whole; nothing past it.
                let records = vault.count("health.records").unwrap();
                assert_eq!(records, cursor * 5, "{context}: a page applied in part");
                t.pages = cursor;
                vault.close();
            }
            "passes" => {
                let acked = |prefix: &str| {
                    lines
                        .iter()
                        .filter_map(|l| l.strip_prefix(prefix)?.parse::<u64>().ok())
                        .max()
                };
                let (started, bought) = (acked("started "), acked("bought "));
                t.passes_started +=
                    lines.iter().filter(|l| l.starts_with("started ")).count() as u64;
                t.pass_started = t.pass_started.max(started);
                t.pass_bought = t.pass_bought.max(bought);
                if !dir.exists() {
                    continue;
                }
                integrity_ok(&dir);
                let phone = open_phone(&dir);
                let Some(held) = phone.credential() else {
                    assert_eq!(t.pass_started, None, "{context}: the pass in place is lost");
                    continue;
                };
                let held = pass_index(base, &held);
                let waiting: Vec<u64> = phone
                    .upcoming_credentials()
                    .iter()
                    .map(|u| pass_index(base, u))
                    .collect();
                if t.pass_started.is_some_and(|s| held < s) {
                    t.lost += 1;
                    panic!(
                        "{context}: pass {} was in place, {held} is",
                        t.pass_started.unwrap()
                    );
                }
                if let Some(b) = t.pass_bought {
                    if held < b && !waiting.contains(&b) {
                        t.lost += 1;
                        panic!("{context}: pass {b} bought, neither held ({held}) nor waiting");
                    }
                }
                assert!(
                    waiting.iter().all(|w| *w == held + 1) && waiting.len() <= 1,
                    "{context}: {held} held, {waiting:?} waiting"
                );
                // What the phone holds now is the next child's start.
                t.pass_started = Some(held);
                t.pass_bought = waiting.first().copied().or(Some(held));
            }
            _ => unreachable!(),
        }
    }
    eprintln!(
        "crash test: {rounds} SIGKILLs ({} after open); acknowledged and kept: {} vault writes, \
         {} data key rotations, {} passphrase changes, {} taps shown, {} sync pages, {} passes put in place; \
         wipes: {} finished, {} cut and finished at the next open; lost: {}",
        t.kills_after_open,
        t.writes.len(),
        t.rotations,
        t.secret_changes,
        t.taps,
        t.pages,
        t.passes_started,
        t.wipes_done,
        t.wipes_cut,
        t.lost
    );
    assert_eq!(t.lost, 0);
    assert!(
        t.kills_after_open > rounds / 2,
        "most kills must land while the child works"
    );
    assert!(t.writes.len() as u32 > rounds / 5, "the children wrote");
    assert!(t.passes_started > 0, "the phones rode");
}
