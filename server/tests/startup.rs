//! The server refuses a configuration that would weaken who is trusted with what, before it
//! serves anything.

#![allow(clippy::unwrap_used, missing_docs)]

/// The operators' provider named the same as the citizens' (issuer and audience): a citizen's
/// ID token would pass as a staff member's access token, so the server does not start.
#[test]
fn the_operator_provider_must_differ_from_the_citizens() {
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, r#"{"keys":[]}"#).unwrap();
    let secret = dir.path().join("vnpay.secret");
    std::fs::write(&secret, "a".repeat(32)).unwrap();
    let run = |operator_audience: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_thudo-server"))
            .args(["--listen", "127.0.0.1:0", "--vnpay-tmn-code", "THUDO001"])
            .args(["--vnpay-pay-url", "https://pay.example.vn/vpcpay.html"])
            .arg("--vnpay-secret-file")
            .arg(&secret)
            .arg("--db")
            .arg(dir.path().join("server.db"))
            .args([
                "--oidc-issuer",
                "https://id.example.vn",
                "--oidc-audience",
                "thudo",
            ])
            .arg("--oidc-jwks")
            .arg(&jwks)
            .args(["--operator-issuer", "https://id.example.vn"])
            .args(["--operator-audience", operator_audience])
            .arg("--operator-jwks")
            .arg(&jwks)
            .output()
            .unwrap()
    };
    let same = run("thudo");
    assert!(!same.status.success());
    let said = String::from_utf8_lossy(&same.stderr);
    assert!(said.contains("must differ"), "{said}");
    // Another audience passes this check (and stops later, at the missing secrets file).
    let other = run("thudo-staff");
    assert!(!other.status.success());
    let said = String::from_utf8_lossy(&other.stderr);
    assert!(
        !said.contains("must differ") && said.contains("secrets"),
        "{said}"
    );
}

/// A blank (or short) payment secret would let anyone sign a "paid" notification: the server
/// does not start with one.
#[test]
fn a_blank_payment_secret_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let run = |secret: &str| {
        let file = dir.path().join("vnpay.secret");
        std::fs::write(&file, secret).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_thudo-server"))
            .args(["--listen", "127.0.0.1:0", "--vnpay-tmn-code", "THUDO001"])
            .args(["--vnpay-pay-url", "https://pay.example.vn/vpcpay.html"])
            .arg("--vnpay-secret-file")
            .arg(&file)
            .arg("--db")
            .arg(dir.path().join("server.db"))
            .output()
            .unwrap()
    };
    for blank in ["", "  \n", "short-secret"] {
        let out = run(blank);
        assert!(!out.status.success());
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains("shorter than 16"), "{said}");
    }
    // A merchant's secret passes this check (and stops later, at the missing identity provider).
    let out = run("0123456789ABCDEF0123456789ABCDEF\n");
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!said.contains("shorter than 16"), "{said}");
}

/// The sandbox gateway pays every order without money: beside real citizens' sign-in it would
/// give every pass away, so it starts only with the test identity provider.
/// The seeding options likewise: demo records for a real citizen, or enrolment codes printed
/// where logs are collected, are for test servers only, and never outside the trail on a real one.
#[test]
fn sandbox_payments_and_seeding_only_with_the_test_identity_provider() {
    for option in [
        &["--sandbox-payments"][..],
        &["--seed-citizen", "001088012345"],
        &["--seed-enrolments", "1"],
        &["--seed-inspectors", "1"],
        &["--seed-gate", "201:entry"],
    ] {
        refused_without_the_test_provider(option);
    }
}

fn refused_without_the_test_provider(option: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, r#"{"keys":[]}"#).unwrap();
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_thudo-server"))
        .args(["--listen", "127.0.0.1:0"])
        .args(option)
        .arg("--db")
        .arg(dir.path().join("server.db"))
        .args([
            "--oidc-issuer",
            "https://id.example.vn",
            "--oidc-audience",
            "thudo",
        ])
        .arg("--oidc-jwks")
        .arg(&jwks)
        .output()
        .unwrap();
    assert!(!refused.status.success(), "{option:?}");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains(&format!(
            "{} is for test servers only: it needs --test-identity-provider",
            option[0]
        )),
        "{option:?}: {said}"
    );
}
