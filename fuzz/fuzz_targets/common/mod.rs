//! What the fuzz targets share: where their vaults live and how they are opened.

use std::path::{Path, PathBuf};

use thudo_core::vault::{Unlock, Vault, VaultOptions};

/// A directory for this fuzzing process's files: under memory-backed `/dev/shm` when there is
/// one (no disk flush per run), else under the temporary directory.
pub fn scratch(name: &str) -> PathBuf {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    };
    base.join(format!("thudo-fuzz-{name}-{}", std::process::id()))
}

/// A vault at `dir` with the cheapest key derivation allowed.
pub fn open_vault(dir: &Path) -> Vault {
    let opts = VaultOptions {
        kdf_iterations: 10_000,
        ..Default::default()
    };
    Vault::open(dir, Unlock::passphrase("fuzz"), &opts).expect("vault")
}
