//! Fuzzes encrypted backup import: arbitrary bytes as a backup file. No input may panic or
//! store anything unless it is a whole, authentic backup (then it is imported in one
//! transaction). Every input runs one PBKDF2 of 10,000 iterations, so this target runs slower
//! than the others.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use thudo_core::vault::{Unlock, Vault, VaultOptions};

struct Setup {
    vault: Vault,
    file: std::path::PathBuf,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let dir = scratch().join(format!("thudo-fuzz-backup-{}", std::process::id()));
        let opts = VaultOptions {
            kdf_iterations: 10_000,
            ..Default::default()
        };
        let vault = Vault::open(dir.join("vault"), Unlock::passphrase("fuzz"), &opts).expect("vault");
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

/// Where the target's vault lives: memory-backed `/dev/shm` when there is one (no disk flush per
/// run), else the temporary directory.
fn scratch() -> std::path::PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    }
}
