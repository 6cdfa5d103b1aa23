//! `thudo vault` end to end, as support staff would use it.

#![allow(clippy::unwrap_used)] // tests fail by panicking

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn thudo(dir: &Path, args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_thudo"));
    cmd.arg("vault").arg("--dir").arg(dir).args(args);
    cmd.env_remove("THUDO_PASSPHRASE")
        .env_remove("THUDO_NEW_PASSPHRASE");
    cmd.env_remove("THUDO_BACKUP_PASSPHRASE")
        .env("THUDO_KDF_ITERATIONS", "10000");
    for (k, v) in env {
        cmd.env(k, v);
    }
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

const PASS: (&str, &str) = ("THUDO_PASSPHRASE", "support passphrase");

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn init_put_get_list_query_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("v");
    ok(&thudo(&dir, &["init"], &[PASS], None));
    // A second init refuses to overwrite.
    assert_eq!(thudo(&dir, &["init"], &[PASS], None).status.code(), Some(1));

    ok(&thudo(
        &dir,
        &[
            "put",
            "notes",
            "n1",
            "--body",
            "Nghị quyết 57",
            "--index",
            "kind=nq",
        ],
        &[PASS],
        None,
    ));
    ok(&thudo(
        &dir,
        &["put", "notes", "n2", "--index", "kind=ct"],
        &[PASS],
        Some(b"from stdin"),
    ));
    assert_eq!(
        ok(&thudo(&dir, &["get", "notes", "n1"], &[PASS], None)),
        "Nghị quyết 57"
    );
    assert_eq!(
        ok(&thudo(&dir, &["get", "notes", "n2"], &[PASS], None)),
        "from stdin"
    );

    let list = ok(&thudo(&dir, &["list", "notes"], &[PASS], None));
    let lines: Vec<serde_json::Value> = list
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["id"], "n1");
    assert_eq!(lines[0]["index"]["kind"], "nq");
    let query = ok(&thudo(
        &dir,
        &["query", "notes", "kind", "ct"],
        &[PASS],
        None,
    ));
    assert_eq!(query.lines().count(), 1);
    assert!(query.contains("\"n2\""));

    ok(&thudo(&dir, &["delete", "notes", "n1"], &[PASS], None));
    assert_eq!(
        thudo(&dir, &["get", "notes", "n1"], &[PASS], None)
            .status
            .code(),
        Some(4)
    );
    assert_eq!(
        thudo(&dir, &["delete", "notes", "n1"], &[PASS], None)
            .status
            .code(),
        Some(4)
    );
}

#[test]
fn wrong_passphrase_bad_input_and_missing_vault() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("v");
    let missing = thudo(&dir, &["list", "notes"], &[PASS], None);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("thudo vault init"));
    assert!(!dir.exists(), "reading does not create a vault");

    ok(&thudo(&dir, &["init"], &[PASS], None));
    ok(&thudo(
        &dir,
        &["put", "c", "id", "--body", "x"],
        &[PASS],
        None,
    ));
    let wrong = thudo(
        &dir,
        &["get", "c", "id"],
        &[("THUDO_PASSPHRASE", "nope")],
        None,
    );
    assert_eq!(wrong.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("wrong key"));
    // No passphrase and no terminal: a clear error, not a hang.
    let none = thudo(&dir, &["get", "c", "id"], &[], None);
    assert!(!none.status.success());

    for bad in [
        vec!["put", "Bad Name", "id", "--body", "x"],
        vec!["put", "c", "id", "--body", "x", "--index", "novalue"],
        vec!["put", "c", "", "--body", "x"],
    ] {
        let out = thudo(&dir, &bad, &[PASS], None);
        assert_eq!(out.status.code(), Some(1), "{bad:?}");
    }
    assert_eq!(ok(&thudo(&dir, &["get", "c", "id"], &[PASS], None)), "x");
}

#[test]
fn passwd_export_import_wipe() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("v");
    let backup = tmp.path().join("b.thudo");
    let backup_s = backup.to_str().unwrap();
    ok(&thudo(&dir, &["init"], &[PASS], None));
    ok(&thudo(
        &dir,
        &["put", "c", "id", "--body", "kept"],
        &[PASS],
        None,
    ));
    ok(&thudo(
        &dir,
        &["passwd"],
        &[PASS, ("THUDO_NEW_PASSPHRASE", "second")],
        None,
    ));
    assert_eq!(
        thudo(&dir, &["get", "c", "id"], &[PASS], None)
            .status
            .code(),
        Some(3)
    );
    let second = ("THUDO_PASSPHRASE", "second");
    ok(&thudo(&dir, &["rotate-key"], &[second], None));
    ok(&thudo(
        &dir,
        &["export", backup_s],
        &[second, ("THUDO_BACKUP_PASSPHRASE", "bk")],
        None,
    ));

    let other = tmp.path().join("other");
    ok(&thudo(&other, &["init"], &[PASS], None));
    let wrong = thudo(
        &other,
        &["import", backup_s],
        &[PASS, ("THUDO_BACKUP_PASSPHRASE", "no")],
        None,
    );
    assert_eq!(wrong.status.code(), Some(3));
    ok(&thudo(
        &other,
        &["import", backup_s],
        &[PASS, ("THUDO_BACKUP_PASSPHRASE", "bk")],
        None,
    ));
    assert_eq!(
        ok(&thudo(&other, &["get", "c", "id"], &[PASS], None)),
        "kept"
    );

    assert_eq!(
        thudo(&dir, &["wipe"], &[second], None).status.code(),
        Some(1),
        "needs --yes"
    );
    assert!(vault_db(&dir).exists());
    ok(&thudo(&dir, &["wipe", "--yes"], &[second], None));
    assert!(!vault_db(&dir).exists());
    ok(&thudo(
        &other,
        &["wipe", "--yes", "--without-passphrase"],
        &[],
        None,
    ));
    assert!(!vault_db(&other).exists());
}

fn vault_db(dir: &Path) -> std::path::PathBuf {
    dir.join("vault.db")
}
