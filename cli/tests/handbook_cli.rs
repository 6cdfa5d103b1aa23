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
    // Any month since April 2011, with the regulation, basis and rule named; a range is
    // assessed month by month across the 2026 change, then totalled.
    let old = thudo(
        tmp.path(),
        &[
            "handbook", "fee", "--basis", "student", "--month", "2020-01",
        ],
    );
    let old: serde_json::Value = serde_json::from_slice(&old.stdout).unwrap();
    assert_eq!(old["due_vnd"], 2_000);
    assert_eq!(old["regulation"], "342-QĐ/TW");
    assert_eq!(old["basis"], "student");
    let range = thudo(
        tmp.path(),
        &[
            "handbook",
            "fee",
            "--basis",
            "other",
            "--region",
            "i",
            "--set-amount",
            "10000",
            "--month",
            "2026-01",
            "--to",
            "2026-02",
        ],
    );
    assert!(range.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(range.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["due_vnd"], 10_000);
    assert_eq!(lines[1]["due_vnd"], 15_930);
    assert!(lines[1]["rule"]
        .as_str()
        .unwrap()
        .contains("293/2025/NĐ-CP"));
    assert_eq!(lines[2]["total_due_vnd"], 25_930);
    assert_eq!(lines[2]["complete"], true);
    // A run that starts before 342-QĐ/TW names the month it cannot price and goes on.
    let across = thudo(
        tmp.path(),
        &[
            "handbook", "fee", "--basis", "student", "--month", "2011-03", "--to", "2011-04",
        ],
    );
    assert!(across.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(across.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0]["month"], "2011-04");
    assert_eq!(lines[1]["unpriced"]["month"], "2011-03");
    assert_eq!(lines[2]["total_due_vnd"], 2_000);
    assert_eq!(lines[2]["complete"], false);
    for bad in [
        vec![
            "handbook", "fee", "--basis", "student", "--month", "2026-13",
        ],
        // Before Decision 342-QĐ/TW was in force (April 2011).
        vec![
            "handbook", "fee", "--basis", "student", "--month", "2011-03",
        ],
        // A share of the minimum wage needs the cell's region.
        vec!["handbook", "fee", "--basis", "other", "--month", "2026-03"],
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
