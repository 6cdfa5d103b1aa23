//! Transit latency: validating a QR (decode, two P-256 verifications, rules, tap log) and
//! refreshing a QR on the phone (sign + QR matrix).
//!
//! `cargo bench -p thudo-core --bench transit`

#![allow(clippy::unwrap_used, missing_docs)] // a benchmark: failing loudly is right

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use thudo_core::crypto::p256::SoftwareKey;
use thudo_core::transit::issuer::{CredentialRequest, IssuerKey};
use thudo_core::transit::phone::{Phone, PhoneOptions};
use thudo_core::transit::qr;
use thudo_core::transit::validator::{Validator, ValidatorConfig};
use thudo_core::transit::wire;
use thudo_core::transit::{Category, Product};
use thudo_core::vault::{Unlock, Vault, VaultOptions};

const NOW: u32 = 1_790_000_000;

fn vault(dir: &std::path::Path) -> Arc<Vault> {
    let opts = VaultOptions {
        kdf_iterations: 10_000,
        ..Default::default()
    };
    Arc::new(Vault::open(dir, Unlock::passphrase("bench"), &opts).unwrap())
}

/// `n` valid QR texts from `n` different cards and devices.
fn qr_pool(issuer: &IssuerKey, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let (device, _) = SoftwareKey::generate().unwrap();
            let request = CredentialRequest {
                card_id: 1_000_000 + i as u64,
                product: Product::MonthlyAllRoutes,
                category: Category::Standard,
                route: 0,
                pass_valid_from: NOW - 86_400,
                pass_valid_until: NOW + 86_400,
                device_public_key: device.compressed_public_key().to_vec(),
                lifetime_secs: 72 * 3600,
                with_holder: false,
            };
            let credential = issuer.issue(&request, NOW).unwrap();
            let sig = device
                .sign(&wire::tap_message(&credential, NOW, 1))
                .unwrap();
            wire::qr_text(&credential, NOW, 1, &sig)
        })
        .collect()
}

fn validation(c: &mut Criterion) {
    let (issuer, _) = IssuerKey::generate(1, NOW - 86_400, NOW + 365 * 86_400).unwrap();
    let pool = qr_pool(&issuer, 4000);
    let mut group = c.benchmark_group("transit");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(8));
    group.bench_function("validate (decode, 2 verifications, rules, tap log)", |b| {
        b.iter_custom(|iters| {
            let mut dirs = vec![tempfile::tempdir().unwrap()];
            let mut validator = Validator::open(
                vault(dirs[0].path()),
                vec![issuer.trusted().clone()],
                ValidatorConfig::default(),
            )
            .unwrap();
            let mut total = Duration::ZERO;
            for i in 0..iters as usize {
                let text = &pool[i % pool.len()];
                if i > 0 && i % pool.len() == 0 {
                    // Pool exhausted: a fresh validator, so nothing is a replay (untimed).
                    dirs.push(tempfile::tempdir().unwrap());
                    let fresh = vault(dirs[dirs.len() - 1].path());
                    validator = Validator::open(
                        fresh,
                        vec![issuer.trusted().clone()],
                        ValidatorConfig::default(),
                    )
                    .unwrap();
                }
                let started = Instant::now();
                let verdict = validator.validate(text, u64::from(NOW) + 1).unwrap();
                total += started.elapsed();
                assert!(verdict.accepted);
            }
            total
        })
    });

    let (device, _) = SoftwareKey::generate().unwrap();
    let credential = issuer
        .issue(
            &CredentialRequest {
                card_id: 1,
                product: Product::PayAsYouGo,
                category: Category::Standard,
                route: 0,
                pass_valid_from: NOW,
                pass_valid_until: NOW + 1000,
                device_public_key: device.compressed_public_key().to_vec(),
                lifetime_secs: 3600,
                with_holder: false,
            },
            NOW,
        )
        .unwrap();
    let mut counter = 0u32;
    group.bench_function("QR refresh: sign + base45 + QR matrix", |b| {
        b.iter(|| {
            counter += 1;
            let sig = device
                .sign(&wire::tap_message(&credential, NOW, counter))
                .unwrap();
            let text = wire::qr_text(&credential, NOW, counter, &sig);
            qr::render(&text).unwrap()
        })
    });

    let dir = tempfile::tempdir().unwrap();
    let phone = Phone::open(
        vault(dir.path()),
        None,
        PhoneOptions {
            refresh_secs: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let request = CredentialRequest {
        card_id: 2,
        product: Product::PayAsYouGo,
        category: Category::Standard,
        route: 0,
        pass_valid_from: NOW,
        pass_valid_until: NOW + 100_000,
        device_public_key: phone.device_public_key().to_vec(),
        lifetime_secs: 72 * 3600,
        with_holder: false,
    };
    phone
        .install_credential(&issuer.issue(&request, NOW).unwrap())
        .unwrap();
    let mut t = u64::from(NOW);
    group.bench_function(
        "Phone::current_qr (sign + matrix + counter saved, fsync)",
        |b| {
            b.iter(|| {
                t += 1;
                phone.current_qr(t).unwrap()
            })
        },
    );
    group.finish();
}

criterion_group!(benches, validation);
criterion_main!(benches);
