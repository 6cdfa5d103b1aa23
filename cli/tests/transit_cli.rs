//! `thudo transit` and `thudo validate` end to end, with an independent QR decoder (zbarimg).

#![allow(clippy::unwrap_used)] // tests fail by panicking

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn thudo(cwd: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_thudo"));
    cmd.current_dir(cwd).args(args);
    cmd.env("THUDO_PASSPHRASE", "test")
        .env("THUDO_KDF_ITERATIONS", "10000")
        .env_remove("THUDO_VAULT_DIR");
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn issue_show_decode_and_validate() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    ok(thudo(
        cwd,
        &[
            "transit",
            "keygen",
            "--key-id",
            "3",
            "--out",
            "issuer.json",
            "--trusted",
            "trusted.json",
        ],
        None,
    ));
    let key = ok(thudo(
        cwd,
        &["transit", "phone-key", "--dir", "phone"],
        None,
    ))
    .trim()
    .to_string();
    assert_eq!(key.len(), 66);
    let credential = ok(thudo(
        cwd,
        &[
            "transit",
            "issue",
            "--issuer",
            "issuer.json",
            "--device-key",
            &key,
            "--card",
            "77",
            "--product",
            "monthly-single-route",
            "--category",
            "priority",
            "--route",
            "32",
        ],
        None,
    ));
    ok(thudo(
        cwd,
        &["transit", "install", "--dir", "phone", credential.trim()],
        None,
    ));
    let shown = ok(thudo(
        cwd,
        &[
            "transit", "show", "--dir", "phone", "--png", "qr.png", "--svg", "qr.svg",
        ],
        None,
    ));
    let text = shown.lines().last().unwrap().to_string();
    assert!(text.starts_with("HNT1:"));
    assert!(std::fs::read_to_string(cwd.join("qr.svg"))
        .unwrap()
        .contains("<svg"));

    // An independent decoder reads the PNG back to exactly the payload text.
    let decoded = Command::new("zbarimg")
        .args(["--raw", "-q"])
        .arg(cwd.join("qr.png"))
        .output()
        .expect("zbarimg (Debian's zbar-tools) is needed; scripts/test-all.sh installs it");
    assert!(decoded.status.success());
    assert_eq!(
        String::from_utf8(decoded.stdout)
            .unwrap()
            .trim_end_matches('\n'),
        text
    );

    // The bus on route 32 reads a file of scans: good, replay, junk of every kind.
    let mut input = Vec::new();
    for line in [
        text.as_bytes(),
        text.as_bytes(),
        b"",
        b"HNT1:",
        "Nghị quyết".as_bytes(),
        &[0xff, 0xfe, b'A'][..],
    ] {
        input.extend_from_slice(line);
        input.push(b'\n');
    }
    input.extend_from_slice(&vec![b'A'; 1 << 20]);
    input.push(b'\n');
    input.extend_from_slice(&text.as_bytes()[..text.len() - 2]); // last line without newline
    let out = ok(thudo(
        cwd,
        &[
            "validate",
            "--trusted",
            "trusted.json",
            "--route",
            "32",
            "--dir",
            "bus",
        ],
        Some(&input),
    ));
    let verdicts: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let reasons: Vec<&str> = verdicts
        .iter()
        .map(|v| v["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "ok",
            "replayed",
            "bad_format",
            "bad_format",
            "bad_format",
            "bad_format",
            "bad_format",
            "bad_format"
        ]
    );
    assert_eq!(verdicts[0]["accepted"], true);
    assert_eq!(verdicts[0]["card_id"], 77);
    assert_eq!(verdicts[0]["category"], "priority");

    // The wrong route; and a restart of the validator still remembers the replay.
    let other = ok(thudo(
        cwd,
        &[
            "validate",
            "--trusted",
            "trusted.json",
            "--route",
            "18",
            "--dir",
            "bus2",
        ],
        Some(text.as_bytes()),
    ));
    assert!(other.contains("\"wrong_route\""));
    let again = ok(thudo(
        cwd,
        &[
            "validate",
            "--trusted",
            "trusted.json",
            "--route",
            "32",
            "--dir",
            "bus",
        ],
        Some(text.as_bytes()),
    ));
    assert!(again.contains("\"replayed\""), "{again}");

    // A metro exit gate lets the card out only with its entry in the feed it was given.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    std::fs::write(
        cwd.join("no-entries.json"),
        format!(r#"{{"entries":[],"cursor":0,"complete_until":{now}}}"#),
    )
    .unwrap();
    std::fs::write(
        cwd.join("entries.json"),
        format!(
            r#"{{"entries":[{{"card_id":77,"station":201,"at":{}}}],"cursor":1,"complete_until":{now}}}"#,
            now - 600
        ),
    )
    .unwrap();
    let gate = |entries: &str, dir: &str| {
        thudo(
            cwd,
            &[
                "validate",
                "--trusted",
                "trusted.json",
                "--route",
                "902",
                "--gate",
                "205:exit",
                "--entries",
                entries,
                "--dir",
                dir,
            ],
            Some(text.as_bytes()),
        )
    };
    let refused = ok(gate("no-entries.json", "gate1"));
    assert!(refused.contains("\"no_entry\""), "{refused}");
    let out = ok(gate("entries.json", "gate2"));
    assert!(out.contains("\"ok\"") && out.contains("Goodbye"), "{out}");
    let sideways = thudo(
        cwd,
        &[
            "validate",
            "--trusted",
            "trusted.json",
            "--gate",
            "205:sideways",
        ],
        Some(b""),
    );
    assert!(!sideways.status.success());

    // Bad issuance input.
    let bad = thudo(
        cwd,
        &[
            "transit",
            "issue",
            "--issuer",
            "issuer.json",
            "--device-key",
            "zz",
            "--card",
            "1",
            "--product",
            "pay-as-you-go",
        ],
        None,
    );
    assert!(!bad.status.success());
    let free_for_payer = thudo(
        cwd,
        &[
            "transit",
            "issue",
            "--issuer",
            "issuer.json",
            "--device-key",
            &key,
            "--card",
            "1",
            "--product",
            "free-pass",
        ],
        None,
    );
    assert!(String::from_utf8_lossy(&free_for_payer.stderr).contains("free pass"));
    let missing = thudo(cwd, &["validate", "--trusted", "nope.json"], Some(b""));
    assert!(!missing.status.success());
}

#[test]
fn the_scripted_day_charges_what_the_tariff_says_and_the_phone_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = thudo(dir.path(), &["day"], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 13,000 + 8,000 + 8,000 + 13,000 capped to 1,000; the child rides free.
    assert!(
        stdout.contains("backend: parent charged 30000 VND, child 0 VND"),
        "{stdout}"
    );
    assert!(stdout.contains("metro La Khê → La Thành                1000 VND (capped)"));
    assert!(stdout.contains("cap reached: true"));
    assert_eq!(stdout.matches("Goodbye").count(), 4, "{stdout}");
}
