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
