//! Verifying the public example SMART Health Card (QR decode, ES256, inflate, checks), per card.
//!
//! `cargo bench -p thudo-core --bench health_shc`

#![allow(clippy::unwrap_used, missing_docs)] // a benchmark: failing loudly is right

use std::path::PathBuf;
use std::time::Instant;

use thudo_core::health::shc::{self, TrustStore};

fn main() {
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let fixtures = loop {
        if dir.join("shared/fixtures/shc").is_dir() {
            break dir.join("shared/fixtures/shc");
        }
        assert!(dir.pop(), "shared/fixtures/shc not found");
    };
    let read = |n: &str| std::fs::read_to_string(fixtures.join(n)).unwrap();
    let mut trust = TrustStore::new();
    trust
        .add_jwks(
            "https://spec.smarthealth.cards/examples/issuer",
            &read("issuer/jwks.json"),
        )
        .unwrap();
    let qr = read("example-00-f-qr-code-numeric-value-0.txt");
    let n = 2000;
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let jws = shc::jws_from_qr(&[qr.trim()]).unwrap();
        let card = shc::verify(&jws, &trust, 1_790_000_000).unwrap();
        times.push(started.elapsed());
        assert_eq!(card.fhir_bundle["entry"].as_array().unwrap().len(), 4);
    }
    times.sort();
    println!(
        "SMART Health Card example 00 from QR text: median {:.1} µs, p95 {:.1} µs per card ({n} runs)",
        times[n / 2].as_secs_f64() * 1e6,
        times[n * 95 / 100].as_secs_f64() * 1e6
    );
}
