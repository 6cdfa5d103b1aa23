//! `thudo health verify-shc` on the public SMART Health Card examples.

#![allow(clippy::unwrap_used)] // tests fail by panicking

use std::path::PathBuf;
use std::process::Command;

fn fixtures() -> PathBuf {
    // The public examples kept beside thudo-core's tests.
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../core/tests/data/shc")
}

#[test]
fn verifies_examples_and_reports_a_tampered_card() {
    let f = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let jws = std::fs::read_to_string(f.join("example-00-d-jws.txt")).unwrap();
    // Change one character in the middle of the signature.
    let mut tampered = jws.trim().as_bytes().to_vec();
    let at = tampered.len() - 10;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    std::fs::write(tmp.path().join("tampered.jws"), &tampered).unwrap();
    let jwks = format!(
        "https://spec.smarthealth.cards/examples/issuer={}",
        f.join("issuer/jwks.json").display()
    );
    let out = Command::new(env!("CARGO_BIN_EXE_thudo"))
        .args([
            "health",
            "verify-shc",
            "--jwks",
            &jwks,
            "--at",
            "1790000000",
        ])
        .arg(f.join("example-00-f-qr-code-numeric-value-0.txt"))
        .arg(f.join("example-00-e-file.smart-health-card"))
        .arg(tmp.path().join("tampered.jws"))
        .args((0..3).map(|i| f.join(format!("example-02-f-qr-code-numeric-value-{i}.txt"))))
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a failed card makes the exit code non-zero"
    );
    let verdicts: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(verdicts.len(), 4);
    assert_eq!(verdicts[0]["verified"], true);
    assert_eq!(verdicts[0]["resources"].as_array().unwrap().len(), 4);
    assert_eq!(verdicts[1]["verified"], true);
    assert_eq!(verdicts[2]["verified"], false);
    assert_eq!(verdicts[2]["reason"], "bad_signature");
    assert_eq!(
        verdicts[3]["verified"], true,
        "the three chunks form one card"
    );
    // Not yet valid at an earlier time.
    let early = Command::new(env!("CARGO_BIN_EXE_thudo"))
        .args([
            "health",
            "verify-shc",
            "--jwks",
            &jwks,
            "--at",
            "1600000000",
        ])
        .arg(f.join("example-00-d-jws.txt"))
        .output()
        .unwrap();
    assert!(String::from_utf8(early.stdout)
        .unwrap()
        .contains("\"not_yet_valid\""));
}

/// A case of the EU DCC test data: its QR text and signer certificate (base64 DER).
fn dcc_case(folder: &str, file: &str) -> (String, String) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../core/tests/data/dcc/{folder}.json"));
    let cases: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let c = cases.iter().find(|c| c["FILE"] == file).unwrap();
    (
        c["PREFIX"].as_str().unwrap().to_owned(),
        c["TESTCTX"]["CERTIFICATE"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn verify_dcc_reports_each_passport_and_keeps_expired_ones_only_as_history() {
    let tmp = tempfile::tempdir().unwrap();
    let (german, signer) = dcc_case("DE", "DE/2DCode/raw/1.json");
    let (forged, forged_signer) = dcc_case("common", "common/2DCode/raw/CO5.json");
    // A PEM file and a base64 file.
    let pem = format!("-----BEGIN CERTIFICATE-----\n{signer}\n-----END CERTIFICATE-----\n");
    std::fs::write(tmp.path().join("de.pem"), pem).unwrap();
    std::fs::write(tmp.path().join("other.b64"), forged_signer).unwrap();
    std::fs::write(
        tmp.path().join("qr.txt"),
        format!("{german}\n{forged}\nHC2:X\n"),
    )
    .unwrap();
    let run = |at: &str, historic: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_thudo"));
        cmd.args(["health", "verify-dcc", "--at", at])
            .arg("--dsc")
            .arg(tmp.path().join("de.pem"))
            .arg("--dsc")
            .arg(tmp.path().join("other.b64"))
            .arg(tmp.path().join("qr.txt"));
        if historic {
            cmd.arg("--historic");
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success(), "a refused passport fails the run");
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .collect::<Vec<_>>()
    };
    let v = run("1622570400", false);
    assert_eq!(v.len(), 3);
    assert_eq!(v[0]["verified"], true);
    assert_eq!(v[0]["kind"], "vaccination");
    assert_eq!(v[0]["country"], "DE");
    assert_eq!(v[1]["reason"], "bad_signature");
    assert_eq!(v[2]["reason"], "bad_prefix");
    // Five years on: refused at a border, authentic as history.
    let later = (1_622_570_400i64 + 5 * 365 * 86_400).to_string();
    assert_eq!(run(&later, false)[0]["verified"], false);
    let history = run(&later, true);
    assert_eq!(history[0]["verified"], true);
    assert_eq!(history[0]["expired"], true);
}

#[test]
fn both_verifiers_take_their_trust_from_a_signed_bundle() {
    use base64::Engine;
    use thudo_core::health::trust_bundle::{CardIssuer, PassportSigner, TrustBundle};
    let tmp = tempfile::tempdir().unwrap();
    let (german, signer) = dcc_case("DE", "DE/2DCode/raw/1.json");
    let bundle = TrustBundle {
        version: 3,
        issued_at: 1_600_000_000,
        expires_at: 1_900_000_000,
        card_issuers: vec![CardIssuer {
            iss: "https://spec.smarthealth.cards/examples/issuer".into(),
            jwks: serde_json::from_str(
                &std::fs::read_to_string(fixtures().join("issuer/jwks.json")).unwrap(),
            )
            .unwrap(),
            // Its key announces revocation list version 1: the bundle carries it.
            crls: vec![serde_json::from_str(
                &std::fs::read_to_string(
                    fixtures().join("issuer/crl/3Kfdg-XwP-7gXyywtUfUADwBumDOPKMQx-iELL11W9s.json"),
                )
                .unwrap(),
            )
            .unwrap()],
        }],
        passport_signers: vec![PassportSigner {
            country: "DE".into(),
            certificate: signer,
        }],
        passport_revocations: Vec::new(),
        passport_revocation_hashes: Vec::new(),
        content_published_at: None,
    };
    let key = thudo_core::crypto::p256::SoftwareKey::generate().unwrap().0;
    let b64 = |k: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(k);
    std::fs::write(tmp.path().join("trust.jws"), bundle.sign(&key).unwrap()).unwrap();
    std::fs::write(tmp.path().join("qr.txt"), &german).unwrap();
    let run = |command: &str, at: &str, input: PathBuf, trust_key: &str| {
        Command::new(env!("CARGO_BIN_EXE_thudo"))
            .args(["health", command, "--at", at, "--trust-bundle"])
            .arg(tmp.path().join("trust.jws"))
            .args(["--trust-key", trust_key])
            .arg(input)
            .output()
            .unwrap()
    };
    let good = b64(key.public_key());
    let card = run(
        "verify-shc",
        "1790000000",
        fixtures().join("example-00-d-jws.txt"),
        &good,
    );
    assert!(
        card.status.success(),
        "{}",
        String::from_utf8_lossy(&card.stderr)
    );
    let passport = run("verify-dcc", "1622570400", tmp.path().join("qr.txt"), &good);
    assert!(
        passport.status.success(),
        "{}",
        String::from_utf8_lossy(&passport.stderr)
    );
    // A bundle not signed by the configured key is refused before any verification.
    let other = thudo_core::crypto::p256::SoftwareKey::generate().unwrap().0;
    let forged = run(
        "verify-dcc",
        "1622570400",
        tmp.path().join("qr.txt"),
        &b64(other.public_key()),
    );
    assert!(!forged.status.success());
    assert!(String::from_utf8_lossy(&forged.stderr).contains("not signed"));
    // A stale bundle is used, with a warning.
    let stale = run(
        "verify-shc",
        "1950000000",
        fixtures().join("example-00-d-jws.txt"),
        &good,
    );
    assert!(String::from_utf8_lossy(&stale.stderr).contains("out of date"));
}
