//! The validator's tap log: what per-tap durability costs, and a week offline.
//!
//! 1. Taps per second with every verdict durable before it returns (`validate`: one commit per
//!    tap) and with group commit of 64 (`validate_deferred` + `flush`, as `thudo validate` does,
//!    showing verdicts only after the flush).
//! 2. A validator offline for `THUDO_BENCH_DAYS` days (default 7) at one scan per second, every
//!    scan an accepted tap (the worst case for the log: nothing is rejected or junk): the vault's
//!    size on disk and the process's peak memory, then the upload path read page by page.
//!
//! `cargo bench -p thudo-core --bench tap_log`

#![allow(clippy::unwrap_used, missing_docs)] // a benchmark: failing loudly is right

use std::sync::Arc;
use std::time::Instant;

use thudo_core::crypto::p256::SoftwareKey;
use thudo_core::transit::issuer::{CredentialRequest, IssuerKey};
use thudo_core::transit::validator::{Validator, ValidatorConfig};
use thudo_core::transit::{wire, Category, Product};
use thudo_core::vault::{Unlock, Vault, VaultOptions};

const START: u32 = 1_790_000_000;

struct Rider {
    credential: [u8; wire::CREDENTIAL_LEN],
    key: SoftwareKey,
    counter: u32,
}

/// `n` riders with passes covering the run, credentials issued at `issued_at` (72 h).
fn riders(issuer: &IssuerKey, n: usize, days: u32, issued_at: u32) -> Vec<Rider> {
    (0..n)
        .map(|i| {
            let (key, _) = SoftwareKey::generate().unwrap();
            let request = CredentialRequest {
                card_id: 7_000_000 + i as u64,
                product: Product::MonthlyAllRoutes,
                category: Category::Standard,
                route: 0,
                pass_valid_from: START - 86_400,
                pass_valid_until: START + (days + 1) * 86_400,
                device_public_key: key.compressed_public_key().to_vec(),
                lifetime_secs: 72 * 3600,
                with_holder: false,
            };
            Rider {
                credential: issuer.issue(&request, issued_at).unwrap(),
                key,
                counter: 0,
            }
        })
        .collect()
}

impl Rider {
    fn qr(&mut self, at: u32) -> String {
        self.counter += 1;
        let sig = self
            .key
            .sign(&wire::tap_message(&self.credential, at, self.counter))
            .unwrap();
        wire::qr_text(&self.credential, at, self.counter, &sig)
    }
}

fn vault(dir: &std::path::Path) -> Arc<Vault> {
    let opts = VaultOptions {
        kdf_iterations: 10_000,
        ..Default::default()
    };
    Arc::new(Vault::open(dir, Unlock::passphrase("bench"), &opts).unwrap())
}

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

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

fn main() {
    let days: u32 = std::env::var("THUDO_BENCH_DAYS")
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(7);
    // The issuer key must outlive the simulated week (credentials are re-issued each day).
    let (issuer, _) = IssuerKey::generate(1, START - 86_400, START + 400 * 86_400).unwrap();

    // 1. Durability cost: 2,000 distinct accepted taps each way, same machine, same vault setup.
    let n = 2_000;
    let mut pool = riders(&issuer, n, 1, START);
    for (label, group) in [
        ("durable per tap (validate)", false),
        ("group commit of 64", true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut v = Validator::open(
            vault(dir.path()),
            vec![issuer.trusted().clone()],
            ValidatorConfig::default(),
        )
        .unwrap();
        let qrs: Vec<String> = pool.iter_mut().map(|r| r.qr(START)).collect();
        let t = Instant::now();
        for qr in &qrs {
            let verdict = if group {
                v.validate_deferred(qr, u64::from(START)).unwrap()
            } else {
                v.validate(qr, u64::from(START)).unwrap()
            };
            assert!(verdict.accepted);
        }
        v.flush().unwrap();
        let took = t.elapsed();
        println!(
            "tap log, {label}: {n} accepted taps in {:.2} s = {:.0} taps/s ({:.2} ms per tap)",
            took.as_secs_f64(),
            n as f64 / took.as_secs_f64(),
            took.as_secs_f64() * 1e3 / n as f64
        );
    }

    // 2. A week offline at one scan per second, every scan accepted. 2,000 riders cycle (a card
    // comes back every 2,000 s, past passback); credentials are refreshed each day.
    let dir = tempfile::tempdir().unwrap();
    let rss_before = peak_rss_kib();
    let mut v = Validator::open(
        vault(dir.path()),
        vec![issuer.trusted().clone()],
        ValidatorConfig::default(),
    )
    .unwrap();
    let scans = u64::from(days) * 86_400;
    let t = Instant::now();
    let mut riders_today = riders(&issuer, 2_000, days, START);
    for s in 0..scans {
        let at = START + s as u32;
        if s % 86_400 == 0 && s > 0 {
            // Phones refresh their credentials online each day.
            riders_today = riders(&issuer, 2_000, days, at);
        }
        let rider = &mut riders_today[(s % 2_000) as usize];
        let qr = rider.qr(at);
        let verdict = v.validate_deferred(&qr, u64::from(at)).unwrap();
        assert!(verdict.accepted, "scan {s}: {:?}", verdict.reason);
    }
    v.flush().unwrap();
    let took = t.elapsed();
    let logged = v.tap_log_status().next_seq - 1;
    let open_rss = peak_rss_kib();
    drop(v);
    let vault_now = vault(dir.path());
    vault_now.close();
    let disk = dir_bytes(dir.path());
    println!(
        "{days} days offline at 1 scan/s, all accepted: {logged} taps logged in {:.0} s; vault on \
         disk {:.1} MB ({:.0} bytes per tap); peak RSS {} -> {} KiB while validating",
        took.as_secs_f64(),
        disk as f64 / 1e6,
        disk as f64 / logged as f64,
        rss_before,
        open_rss
    );
    // A reboot after the week: the log is read backwards only as far as the replay window.
    let t = Instant::now();
    let mut v = Validator::open(
        vault(dir.path()),
        vec![issuer.trusted().clone()],
        ValidatorConfig::default(),
    )
    .unwrap();
    let reopen = t.elapsed();
    let t = Instant::now();
    let mut pages = 0;
    loop {
        let page = v.export_taps().unwrap();
        let Some(last) = page.last().map(|t| t.seq) else {
            break;
        };
        v.acknowledge_taps(last).unwrap();
        pages += 1;
    }
    println!(
        "reopen after the week: {:.0} ms; upload path: {pages} pages of 5,000 exported and \
         acknowledged in {:.1} s; peak RSS {} KiB",
        reopen.as_secs_f64() * 1e3,
        t.elapsed().as_secs_f64(),
        peak_rss_kib()
    );
}
