//! Fuzzes encrypted backup import: arbitrary bytes as a backup file. No input may panic or
//! store anything unless it is a whole, authentic backup (then it is imported in one
//! transaction). Every input runs one PBKDF2 of 10,000 iterations, so this target runs slower
//! than the others.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use thudo_core::vault::Vault;

mod common;

struct Setup {
    vault: Vault,
    file: std::path::PathBuf,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let dir = common::scratch("backup");
        let vault = common::open_vault(&dir.join("vault"));
        Setup {
            vault,
            file: dir.join("input.backup"),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let s = setup();
    // Ask every header for the cheapest key derivation allowed (10,000 iterations), so the runs
    // spend their time in the parser and the authenticated chunks, not in PBKDF2.
    let mut data = data.to_vec();
    if data.len() >= 13 {
        data[9..13].copy_from_slice(&10_000u32.to_be_bytes());
    }
    std::fs::write(&s.file, &data).expect("write input");
    let before = s.vault.count("notes").expect("count");
    if s.vault.import_backup(&s.file, "fuzz").is_err() {
        assert_eq!(s.vault.count("notes").expect("count"), before);
    }
});
