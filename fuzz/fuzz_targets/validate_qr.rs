//! Fuzzes the validator's input path: arbitrary scanner text, and arbitrary 196-byte payloads
//! wrapped in a well-formed prefix and base45 (so the fuzzer reaches the signature and rule
//! checks, not only the parser). No input may panic or be accepted.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use thudo_core::transit::issuer::IssuerKey;
use thudo_core::transit::validator::{Validator, ValidatorConfig};
use thudo_core::transit::wire::{PAYLOAD_LEN, QR_PREFIX};

mod common;

struct Setup {
    validator: std::sync::Mutex<(Validator, u64)>,
    _dir: tempfile_dir::Dir,
}

mod tempfile_dir {
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let dir = common::scratch("validator");
        let vault = Arc::new(common::open_vault(&dir));
        let (issuer, _) = IssuerKey::generate(1, 0, u32::MAX).expect("issuer");
        let config = ValidatorConfig {
            tap_batch: 1024,
            ..Default::default()
        };
        let validator =
            Validator::open(vault, vec![issuer.trusted().clone()], config).expect("validator");
        Setup {
            validator: std::sync::Mutex::new((validator, 0)),
            _dir: tempfile_dir::Dir(dir),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let setup = setup();
    let mut guard = setup.validator.lock().unwrap_or_else(|e| e.into_inner());
    let (validator, runs) = &mut *guard;
    *runs += 1;
    if *runs % 1024 == 0 {
        // Keep the tap log (and the fuzzer's memory and disk) bounded.
        validator.acknowledge_taps(u64::MAX).expect("acknowledge");
    }
    // The clock moves on, so old taps leave the replay window and acknowledged ones the disk.
    let now = 1_790_000_000 + *runs;
    let text = String::from_utf8_lossy(data);
    // Deferred: the same decision as `validate` without an fsync per input.
    let verdict = validator
        .validate_deferred(&text, now)
        .expect("validate never fails on input");
    assert!(!verdict.accepted);
    if data.len() >= PAYLOAD_LEN {
        let wrapped = format!("{QR_PREFIX}{}", base45::encode(&data[..PAYLOAD_LEN]));
        let verdict = validator
            .validate_deferred(&wrapped, now)
            .expect("validate");
        assert!(!verdict.accepted, "a random payload was accepted");
    }
});
