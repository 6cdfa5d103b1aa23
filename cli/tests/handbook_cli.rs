//! `thudo handbook` end to end.

#![allow(clippy::unwrap_used)] // tests fail by panicking

use std::process::Command;

fn thudo(cwd: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_thudo"))
        .current_dir(cwd)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn import_search_and_fee() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = serde_json::json!([
        {"id": "nq57", "number": "57-NQ/TW", "issuer": "Bộ Chính trị", "issued_on": "2024-12-22", "kind": "nghị quyết",
         "title": "Nghị quyết số 57-NQ/TW về đột phá phát triển khoa học, công nghệ", "body": "Khoa học, công nghệ là đột phá."},
        {"id": "qd01", "number": "01-QĐ/TW", "issuer": "BCH TW", "issued_on": "2026-02-03", "kind": "quy định",
         "title": "Quy định về chế độ đảng phí", "body": "Đảng viên đóng đảng phí hằng tháng."}
    ]);
    std::fs::write(tmp.path().join("docs.json"), docs.to_string()).unwrap();
    assert!(thudo(tmp.path(), &["handbook", "import", "docs.json"])
        .status
        .success());
    let out = thudo(tmp.path(), &["handbook", "search", "nghi", "quyet", "57"]);
    let first: serde_json::Value = serde_json::from_str(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(first["id"], "nq57");
    let out = thudo(tmp.path(), &["handbook", "search", "dang phi"]);
    assert!(String::from_utf8(out.stdout).unwrap().contains("\"qd01\""));

    let fee = thudo(
        tmp.path(),
        &[
            "handbook", "fee", "--basis", "pension", "--income", "7000000", "--month", "2026-03",
        ],
    );
    let fee: serde_json::Value = serde_json::from_slice(&fee.stdout).unwrap();
    assert_eq!(fee["due_vnd"], 35_000);
    let cut = thudo(
        tmp.path(),
        &[
            "handbook",
            "fee",
            "--basis",
            "salary",
            "--income",
            "10000000",
            "--month",
            "2026-06",
            "--reduction",
            "50:2026-05:6",
        ],
    );
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&cut.stdout).unwrap()["due_vnd"],
        50_000
    );
    for bad in [
        vec![
            "handbook", "fee", "--basis", "student", "--month", "2026-13",
        ],
        vec![
            "handbook", "fee", "--basis", "student", "--month", "2020-01",
        ],
        vec![
            "handbook",
            "fee",
            "--basis",
            "salary",
            "--income",
            "1",
            "--month",
            "2026-06",
            "--reduction",
            "45:2026-05:6",
        ],
        vec![
            "handbook",
            "fee",
            "--basis",
            "salary",
            "--income",
            "1",
            "--month",
            "2026-06",
            "--reduction",
            "nonsense",
        ],
    ] {
        assert!(!thudo(tmp.path(), &bad).status.success(), "{bad:?}");
    }
}
