//! Verifying the public example SMART Health Card (QR decode, ES256, inflate, checks), per card;
//! then verifying and importing it into an encrypted vault (one transaction, fsync), per card;
//! then EU DCC vaccine passports from the official test data (ES256 and PS256), per passport;
//! then loading a large trust bundle (one issuer's 80,000 revocations, 14,000 issuers more).
//!
//! `cargo bench -p thudo-core --bench health_shc`

#![allow(clippy::unwrap_used, missing_docs)] // a benchmark: failing loudly is right

use std::path::PathBuf;
use std::time::Instant;

use thudo_core::health::records::HealthBook;
use thudo_core::health::shc::{self, TrustStore};
use thudo_core::vault::{Unlock, Vault, VaultOptions};

fn main() {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/shc");
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

    // Verify and import, each card a distinct person so every import writes new records.
    let tmp = std::env::temp_dir().join(format!("thudo-bench-shc-{}", std::process::id()));
    let vault = Vault::open(
        &tmp,
        Unlock::passphrase("bench"),
        &VaultOptions {
            kdf_iterations: thudo_core::vault::MIN_KDF_ITERATIONS,
            ..Default::default()
        },
    )
    .unwrap();
    let book = HealthBook::new(&vault);
    let n = 500;
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let person = book
            .save_person(
                &thudo_core::health::records::Person {
                    id: None,
                    full_name: format!("Người {i}"),
                    birth_date: "2000-01-01".into(),
                    gender: thudo_core::health::records::Gender::Other,
                    citizen_id: None,
                    insurance: None,
                },
                1,
            )
            .unwrap();
        let started = Instant::now();
        let jws = shc::jws_from_qr(&[qr.trim()]).unwrap();
        let summary = book
            .verify_and_import_card(&jws, &trust, 1_790_000_000, Some(&person))
            .unwrap();
        times.push(started.elapsed());
        assert_eq!(summary.stored, 4);
    }
    times.sort();
    println!(
        "verify + import example 00 into the vault (4 records, 1 transaction): median {:.1} µs, p95 {:.1} µs per card ({n} runs)",
        times[n / 2].as_secs_f64() * 1e6,
        times[n * 95 / 100].as_secs_f64() * 1e6
    );
    drop(vault);
    let _ = std::fs::remove_dir_all(&tmp);
    vaccine_passports();
    large_bundle();
}

/// A bundle near the 2 MB a device takes: one issuer with 80,000 revoked cards first, then
/// 14,000 issuers with no keys. Each issuer used to be tried on a copy of everything loaded
/// before it.
fn large_bundle() {
    use thudo_core::health::trust_bundle::{CardIssuer, TrustBundle};
    let jwks: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/shc/issuer/jwks.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let rids: Vec<String> = (0..80_000).map(|i| format!("rid{i:07}")).collect();
    let mut card_issuers = vec![CardIssuer {
        iss: "https://spec.smarthealth.cards/examples/issuer".into(),
        crls: vec![serde_json::json!({
            "kid": "3Kfdg-XwP-7gXyywtUfUADwBumDOPKMQx-iELL11W9s", "method": "rid", "ctr": 1,
            "rids": rids,
        })],
        jwks,
    }];
    card_issuers.extend((0..14_000).map(|i| CardIssuer {
        iss: format!("https://issuer-{i}.example"),
        jwks: serde_json::json!({ "keys": [] }),
        crls: Vec::new(),
    }));
    let bundle = TrustBundle {
        version: 1,
        issued_at: 0,
        expires_at: i64::MAX,
        card_issuers,
        passport_signers: Vec::new(),
        passport_revocations: Vec::new(),
        passport_revocation_hashes: Vec::new(),
        content_published_at: None,
    };
    let size = serde_json::to_vec(&bundle).unwrap().len();
    let started = Instant::now();
    let (store, left_out) = bundle.device_trust_store().unwrap();
    println!(
        "trust bundle of {size} bytes (80,000 revocations, 14,001 issuers) loaded in {:.0} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    assert!(left_out.is_empty());
    assert!(store
        .issuer_of("3Kfdg-XwP-7gXyywtUfUADwBumDOPKMQx-iELL11W9s")
        .is_some());
}

/// A DCC test case's QR text, signer and validation clock.
fn dcc_case(folder: &str, file: &str) -> (String, String, i64) {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/dcc/{folder}.json"));
    let cases: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let c = cases.iter().find(|c| c["FILE"] == file).unwrap();
    let clock =
        chrono::DateTime::parse_from_rfc3339(c["TESTCTX"]["VALIDATIONCLOCK"].as_str().unwrap())
            .unwrap()
            .timestamp();
    (
        c["PREFIX"].as_str().unwrap().to_owned(),
        c["TESTCTX"]["CERTIFICATE"].as_str().unwrap().to_owned(),
        clock,
    )
}

fn vaccine_passports() {
    use thudo_core::health::dcc::{self, SignerList};
    for (label, folder, file) in [
        ("ES256 (Germany, vaccination)", "DE", "DE/2DCode/raw/1.json"),
        ("PS256 (Switzerland, RSA)", "CH", "CH/2DCode/raw/1.json"),
    ] {
        let (qr, cert, clock) = dcc_case(folder, file);
        let mut signers = SignerList::new();
        signers.add_base64(&cert, None).unwrap();
        let n = 2000;
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let started = Instant::now();
            let c = dcc::verify(&qr, &signers, clock).unwrap();
            times.push(started.elapsed());
            assert!(!c.certificate_id.is_empty());
        }
        times.sort();
        println!(
            "EU DCC {label}, {} characters, from QR text: median {:.1} µs, p95 {:.1} µs per passport ({n} runs)",
            qr.len(),
            times[n / 2].as_secs_f64() * 1e6,
            times[n * 95 / 100].as_secs_f64() * 1e6
        );
    }
}
