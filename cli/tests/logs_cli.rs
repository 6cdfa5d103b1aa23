//! The library logs what an app team needs to debug (operations, counts, reasons) and never
//! personal data: a whole `thudo demo` run at the most verbose level is scanned for every
//! personal datum and secret the demo uses.

use std::process::Command;

#[test]
fn a_demo_run_logs_no_personal_data() {
    let out = Command::new(env!("CARGO_BIN_EXE_thudo"))
        .args(["demo", "--no-qr"])
        .env("THUDO_LOG", "trace")
        .output()
        .expect("run thudo demo");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let logs: Vec<&str> = stderr.lines().filter(|l| l.starts_with("thudo[")).collect();
    // The run is logged: vaults, sync, the validator's scans.
    for expected in ["vault opened", "sync done", "scan decided"] {
        assert!(
            logs.iter().any(|l| l.contains(expected)),
            "no '{expected}' in {} log lines",
            logs.len()
        );
    }
    // Citizen IDs, the citizen's name, the vaults' passphrases, a bearer token.
    for secret in [
        "001088012345",
        "001090054321",
        "001075011111",
        "Nguyễn Văn Minh",
        "mật khẩu của Minh",
        "mật khẩu của bí thư",
        "bus 32 validator key",
        "Bearer",
    ] {
        for line in &logs {
            assert!(!line.contains(secret), "{secret} logged: {line}");
        }
    }
}
