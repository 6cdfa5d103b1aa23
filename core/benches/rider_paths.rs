//! The two paths a rider waits for, measured side by side in one run:
//!
//! - **At the gate**: a validator deciding on a first-time rider (both signatures checked) and
//!   on a repeat rider (credential remembered: the phone's signature only). The decision is
//!   timed (decode, signatures, rules, the tap queued); the tap log's commit is the same for
//!   both and is timed apart.
//! - **At a metro exit gate**: taking in the network's entry feed, and deciding on a rider
//!   with their entry looked up among every open entry held.
//! - **On the phone**: app start to the first QR on screen: open the vault with a key provider
//!   (as the Android Keystore or the iOS Keychain unwrap it), load the credential, sign, encode
//!   and render the QR matrix.
//!
//! `cargo bench -p thudo-core --bench rider_paths`

#![allow(clippy::unwrap_used, missing_docs)] // a benchmark: failing loudly is right

use std::sync::Arc;
use std::time::{Duration, Instant};

use thudo_core::crypto::p256::SoftwareKey;
use thudo_core::crypto::{self, AeadKey, Cipher, SecretKey, NONCE_LEN};
use thudo_core::transit::issuer::{CredentialRequest, IssuerKey};
use thudo_core::transit::metro::{EntryFeed, Gate, GateDirection, GateEntry};
use thudo_core::transit::phone::{Phone, PhoneOptions};
use thudo_core::transit::validator::{Validator, ValidatorConfig};
use thudo_core::transit::{wire, Category, Product};
use thudo_core::vault::{KeyProvider, KeyProviderError, Unlock, Vault, VaultOptions};

const NOW: u32 = 1_790_000_000;
const RIDERS: usize = 2_000;
const ROUNDS: usize = 7;

/// Wraps the vault's key with AES-GCM under a key of its own, as a platform keystore does.
struct Keystore(SecretKey);

impl KeyProvider for Keystore {
    fn key_id(&self) -> String {
        "bench".into()
    }
    fn wrap_key(&self, data_key: &[u8]) -> Result<Vec<u8>, KeyProviderError> {
        let mut buf = data_key.to_vec();
        let nonce = AeadKey::new(Cipher::Aes256Gcm, &self.0)
            .seal(b"", &mut buf)
            .unwrap();
        Ok([nonce.to_vec(), buf].concat())
    }
    fn unwrap_key(&self, wrapped: &[u8]) -> Result<Vec<u8>, KeyProviderError> {
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&wrapped[..NONCE_LEN]);
        let mut buf = wrapped[NONCE_LEN..].to_vec();
        let plain = AeadKey::new(Cipher::Aes256Gcm, &self.0)
            .open(nonce, b"", &mut buf)
            .map_err(|_| KeyProviderError::WrongKey)?;
        Ok(plain.to_vec())
    }
}

/// One decision, timed alone; it must let the rider in.
fn decide(validator: &mut Validator, qr: &str, at: u32, times: &mut Vec<Duration>) {
    let t = Instant::now();
    let accepted = validator
        .validate_deferred(qr, u64::from(at))
        .unwrap()
        .accepted;
    times.push(t.elapsed());
    assert!(accepted);
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let (issuer, _) = IssuerKey::generate(1, NOW - 86_400, NOW + 365 * 86_400).unwrap();
    // Each rider's credential, a first QR and a later one (a new counter: not a replay).
    let riders: Vec<(String, String)> = (0..RIDERS)
        .map(|i| {
            let (device, _) = SoftwareKey::generate().unwrap();
            let credential = issuer
                .issue(
                    &CredentialRequest {
                        card_id: 1_000_000 + i as u64,
                        product: Product::MonthlyAllRoutes,
                        category: Category::Standard,
                        route: 0,
                        pass_valid_from: NOW - 86_400,
                        pass_valid_until: NOW + 86_400,
                        device_public_key: device.compressed_public_key().to_vec(),
                        lifetime_secs: 72 * 3600,
                        with_holder: false,
                    },
                    NOW,
                )
                .unwrap();
            let qr = |at: u32, counter: u32| {
                let sig = device
                    .sign(&wire::tap_message(&credential, at, counter))
                    .unwrap();
                wire::qr_text(&credential, at, counter, &sig)
            };
            (qr(NOW, 1), qr(NOW + 60, 2))
        })
        .collect();
    let config = ValidatorConfig {
        passback_secs: 0,
        tap_batch: RIDERS * 4,
        ..ValidatorConfig::default()
    };
    let opts = VaultOptions {
        kdf_iterations: 10_000,
        ..Default::default()
    };

    // At the gate: per round, a fresh validator sees every rider once (first time), then
    // every rider again (repeat), decisions timed one by one.
    let (mut first, mut repeat, mut commit) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let dir = tempfile::tempdir().unwrap();
        let vault = Arc::new(Vault::open(dir.path(), Unlock::passphrase("b"), &opts).unwrap());
        let mut validator =
            Validator::open(vault, vec![issuer.trusted().clone()], config.clone()).unwrap();
        for (qr, _) in &riders {
            decide(&mut validator, qr, NOW + 1, &mut first);
        }
        let t = Instant::now();
        validator.flush().unwrap();
        commit.push(t.elapsed() / RIDERS as u32);
        for (_, qr) in &riders {
            decide(&mut validator, qr, NOW + 61, &mut repeat);
        }
        validator.flush().unwrap();
    }
    let (first, repeat, commit) = (median(first), median(repeat), median(commit));
    println!(
        "validator decision, first-time rider (decode, 2 signature checks, rules): {:.1} µs",
        us(first)
    );
    println!(
        "validator decision, repeat rider (decode, 1 signature check, rules):      {:.1} µs  ({:.2}x)",
        us(repeat),
        repeat.as_secs_f64() / first.as_secs_f64()
    );
    println!(
        "tap log commit (group commit of {RIDERS}), per tap, the same for both:        {:.1} µs",
        us(commit)
    );
    println!(
        "whole tap, group commit: first {:.1} µs, repeat {:.1} µs ({:.2}x)",
        us(first + commit),
        us(repeat + commit),
        (repeat + commit).as_secs_f64() / (first + commit).as_secs_f64()
    );

    // At a metro exit gate: the feed of every rider's entry taken in, then each rider let out
    // (first time at this gate: both signatures, and the entry looked up and marked used).
    let exit_config = ValidatorConfig {
        gate: Some(Gate {
            station: 212,
            direction: GateDirection::Exit,
        }),
        ..config.clone()
    };
    let feed = EntryFeed {
        entries: (0..RIDERS)
            .map(|i| GateEntry {
                card_id: 1_000_000 + i as u64,
                station: 201,
                at: u64::from(NOW) - 600,
            })
            .collect(),
        cursor: RIDERS as u64,
        complete_until: u64::from(NOW),
        now: u64::from(NOW),
    };
    let (mut take_in, mut exits) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let dir = tempfile::tempdir().unwrap();
        let vault = Arc::new(Vault::open(dir.path(), Unlock::passphrase("b"), &opts).unwrap());
        let mut gate =
            Validator::open(vault, vec![issuer.trusted().clone()], exit_config.clone()).unwrap();
        let t = Instant::now();
        assert_eq!(
            gate.apply_entry_feed(&feed, u64::from(NOW)).unwrap(),
            RIDERS
        );
        take_in.push(t.elapsed() / RIDERS as u32);
        for (qr, _) in &riders {
            decide(&mut gate, qr, NOW + 1, &mut exits);
        }
        gate.flush().unwrap();
    }
    let (take_in, exit) = (median(take_in), median(exits));
    println!(
        "exit gate: entry feed taken in ({RIDERS} entries, one commit), per entry:   {:.1} µs",
        us(take_in)
    );
    println!(
        "exit gate decision, first-time rider, entry found among {RIDERS}:         {:.1} µs  ({:.2}x a bus)",
        us(exit),
        exit.as_secs_f64() / first.as_secs_f64()
    );

    // On the phone: the first QR after the app starts.
    let dir = tempfile::tempdir().unwrap();
    let keystore = Arc::new(Keystore(crypto::random_key().unwrap()));
    // As the app opens its vault: the platform keystore unwraps the vault's key.
    let open = || {
        Arc::new(
            Vault::open(
                dir.path(),
                Unlock::Provider(keystore.clone()),
                &VaultOptions::default(),
            )
            .unwrap(),
        )
    };
    {
        let vault = open();
        let phone = Phone::open(vault, None, PhoneOptions::default()).unwrap();
        let credential = issuer
            .issue(
                &CredentialRequest {
                    card_id: 42,
                    product: Product::PayAsYouGo,
                    category: Category::Standard,
                    route: 0,
                    pass_valid_from: NOW - 60,
                    pass_valid_until: NOW + 86_400,
                    device_public_key: phone.device_public_key().to_vec(),
                    lifetime_secs: 72 * 3600,
                    with_holder: false,
                },
                NOW,
            )
            .unwrap();
        phone.install_credential(&credential).unwrap();
    }
    let mut starts = Vec::new();
    let mut parts = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..30u64 {
        let t = Instant::now();
        let vault = open();
        let opened = t.elapsed();
        let phone = Phone::open(vault, None, PhoneOptions::default()).unwrap();
        let loaded = t.elapsed();
        let qr = phone.current_qr(u64::from(NOW) + i * 30).unwrap();
        let shown = t.elapsed();
        assert!(qr.image.size > 0);
        starts.push(shown);
        parts.0.push(opened);
        parts.1.push(loaded - opened);
        parts.2.push(shown - loaded);
    }
    let max = *starts.iter().max().unwrap();
    println!(
        "app start to first QR (vault open with a key provider, credential loaded, sign, encode, \
         QR matrix; counter saved): median {:.2} ms, worst of 30 {:.2} ms",
        us(median(starts)) / 1000.0,
        us(max) / 1000.0
    );
    println!(
        "  of which: vault open {:.2} ms, phone and credential loaded {:.2} ms, QR {:.2} ms",
        us(median(parts.0)) / 1000.0,
        us(median(parts.1)) / 1000.0,
        us(median(parts.2)) / 1000.0
    );
}
