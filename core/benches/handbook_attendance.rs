//! Signed attendance: the secretary's phone signing a meeting QR, a member's phone checking and
//! countersigning it (the check-in kept in the vault, fsync'd), and the backend's check of a
//! check-in. Median and p95 over 300 rounds each.
//!
//! `cargo bench -p thudo-core --bench handbook_attendance`

#![allow(clippy::unwrap_used)] // a bench fails by panicking

use std::time::{Duration, Instant};

use thudo_core::handbook::attendance::{
    format_attendance_key, verify_check_in, CheckInStatus, CheckIns, MeetingIssuer,
    MeetingSecretary,
};
use thudo_core::handbook::member::{Meeting, MemberHandbook};
use thudo_core::vault::{Unlock, Vault, VaultOptions};

const ROUNDS: usize = 300;
const OPENS: u32 = 1_796_403_600;

fn vault(dir: &std::path::Path) -> Vault {
    let options = VaultOptions {
        kdf_iterations: thudo_core::vault::MIN_KDF_ITERATIONS,
        ..Default::default()
    };
    Vault::open(dir, Unlock::passphrase("p"), &options).unwrap()
}

fn report(what: &str, mut times: Vec<Duration>) {
    times.sort();
    let at = |p: f64| times[((times.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e6;
    println!("{what}: median {:.1} µs, p95 {:.1} µs", at(0.5), at(0.95));
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let (issuer, _) = MeetingIssuer::generate(1).unwrap();
    let secretary = vault(&dir.path().join("s"));
    let member = vault(&dir.path().join("m"));
    let meetings: Vec<Meeting> = (0..ROUNDS)
        .map(|i| Meeting {
            id: format!("m-{i}"),
            date: "2026-12-05".into(),
            topic: "Sinh hoạt chi bộ".into(),
            document_ids: vec![],
            cell: Some("hn.chi-bo-1".into()),
            attendance_key: Some(format_attendance_key(1, &issuer.public_key())),
            attachments: vec![],
        })
        .collect();
    MemberHandbook::new(&secretary)
        .upsert_meetings(&meetings)
        .unwrap();
    MemberHandbook::new(&member)
        .upsert_meetings(&meetings)
        .unwrap();
    let (key, _) = MeetingSecretary::new(&secretary)
        .key_and_proof("m-0")
        .unwrap();
    let now = OPENS + 3600;
    let (mut show, mut scan, mut verify) = (Vec::new(), Vec::new(), Vec::new());
    let public = issuer.public_key().to_vec();
    for m in &meetings {
        let credential = issuer
            .issue(&m.id, "hn.chi-bo-1", OPENS, OPENS + 86_399, &key)
            .unwrap();
        MeetingSecretary::new(&secretary)
            .install(&m.id, &credential)
            .unwrap();
        let started = Instant::now();
        let qr = MeetingSecretary::new(&secretary).qr(&m.id, now).unwrap();
        show.push(started.elapsed());
        let started = Instant::now();
        let check_in = CheckIns::new(&member).scan(&qr, now + 5).unwrap();
        scan.push(started.elapsed());
        assert_eq!(check_in.status, CheckInStatus::Pending);
        let evidence = thudo_core::hex::decode(&check_in.evidence).unwrap();
        let started = Instant::now();
        verify_check_in(&evidence, |_| Some(public.clone())).unwrap();
        verify.push(started.elapsed());
    }
    report("secretary's phone: sign a meeting QR", show);
    report(
        &format!("member's phone: check, countersign and keep a check-in ({ROUNDS} meetings held)"),
        scan,
    );
    report("backend: verify a check-in's three signatures", verify);
}
