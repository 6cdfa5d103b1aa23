//! `thudo validate` throughput: a file of distinct QRs piped through the real binary, pinned to
//! one core (taskset), tap log durable. Prints QRs per second.
//!
//! `cargo bench -p thudo-cli --bench validate_throughput` (`THUDO_BENCH_QRS` to change the count)

#![allow(clippy::unwrap_used, missing_docs)] // a benchmark: failing loudly is right

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use thudo_core::crypto::p256::SoftwareKey;
use thudo_core::transit::issuer::{CredentialRequest, IssuerKey};
use thudo_core::transit::{wire, Category, Product};

fn main() {
    let n: usize = std::env::var("THUDO_BENCH_QRS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    let dir = tempfile::tempdir().unwrap();
    let (issuer, _) = IssuerKey::generate(1, now - 86_400, now + 86_400).unwrap();
    std::fs::write(
        dir.path().join("trusted.json"),
        serde_json::to_vec(&vec![issuer.trusted().clone()]).unwrap(),
    )
    .unwrap();
    let mut input = Vec::with_capacity(n * 300);
    for i in 0..n {
        let (device, _) = SoftwareKey::generate().unwrap();
        let request = CredentialRequest {
            card_id: 5_000_000 + i as u64,
            product: Product::PayAsYouGo,
            category: Category::Standard,
            route: 0,
            pass_valid_from: now - 86_400,
            pass_valid_until: now + 86_400,
            device_public_key: device.compressed_public_key().to_vec(),
            lifetime_secs: 72 * 3600,
            with_holder: false,
        };
        let credential = issuer.issue(&request, now).unwrap();
        let sig = device
            .sign(&wire::tap_message(&credential, now, 1))
            .unwrap();
        input.extend_from_slice(wire::qr_text(&credential, now, 1, &sig).as_bytes());
        input.push(b'\n');
    }
    let first_line = input.iter().position(|&b| b == b'\n').unwrap() + 1;
    let (startup, _) = run(dir.path(), "bus-startup", &input[..first_line], now);
    let (took, accepted) = run(dir.path(), "bus", &input, now);
    assert_eq!(accepted, n, "every distinct QR is accepted");
    let steady = (n - 1) as f64 / (took - startup).as_secs_f64();
    println!(
        "thudo validate: {n} distinct QRs in {:.2} s = {:.0} QRs/s end to end, {steady:.0} QRs/s \
         after start-up ({:.2} s: process start, PBKDF2 600,000); one core; tap log durable",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        startup.as_secs_f64(),
    );
}

/// Pipes `input` through `thudo validate` pinned to core 0; returns the time and accept count.
fn run(
    cwd: &std::path::Path,
    vault_dir: &str,
    input: &[u8],
    now: u32,
) -> (std::time::Duration, usize) {
    let exe = env!("CARGO_BIN_EXE_thudo");
    let mut cmd = Command::new("taskset");
    cmd.args([
        "-c",
        "0",
        exe,
        "validate",
        "--trusted",
        "trusted.json",
        "--dir",
        vault_dir,
    ])
    .args(["--at", &(now + 1).to_string()])
    .current_dir(cwd)
    .env("THUDO_PASSPHRASE", "bench")
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    let input = input.to_vec();
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .expect("taskset (util-linux) pins the validator to one core");
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let took = started.elapsed();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    (
        took,
        text.lines()
            .filter(|l| l.contains("\"accepted\":true"))
            .count(),
    )
}
