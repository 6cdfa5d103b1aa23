//! Fuzzes encrypted backup import. No input may panic or store anything unless it is a whole,
//! authentic backup (then it is imported in one transaction).
//!
//! A mutated ciphertext never passes authentication, so the first input byte picks what is
//! fuzzed:
//! - even: the bytes are the file itself, behind one fixed authentic header (chunk framing:
//!   flags, lengths, truncation, forged and reordered chunks, data after the end); inputs
//!   starting with the magic are taken whole instead, asking for the cheapest key derivation
//!   (header parsing);
//! - odd: the bytes, split at each `0xFF 0xFE`, are the plaintexts of authentic chunks (what a
//!   backup made by someone who knows the passphrase may hold: the entry parser, the record
//!   codec and the vault's checks on every field).
//!
//! Fuzzing builds of core remember the last key derivation, so every run pays for PBKDF2 once.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use thudo_core::vault::{fuzz_write_raw_backup, Vault};

mod common;

const PASSPHRASE: &str = "fuzz";

struct Setup {
    vault: Vault,
    file: std::path::PathBuf,
    /// The authentic header every raw-stream input is put behind.
    header: Vec<u8>,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let dir = common::scratch("backup");
        let vault = common::open_vault(&dir.join("vault"));
        let file = dir.join("input.backup");
        fuzz_write_raw_backup(&file, PASSPHRASE, &[]).expect("empty backup");
        let header = std::fs::read(&file).expect("read header");
        Setup {
            vault,
            file,
            header,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let s = setup();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    // The collections the input may write to, counted before and after a refused import.
    let mut collections = vec!["notes".to_owned()];
    if mode % 2 == 0 {
        let file = if rest.starts_with(b"THUDOBK1") {
            // The cheapest derivation allowed: the parser, not PBKDF2, is under test.
            let mut file = rest.to_vec();
            if let Some(iterations) = file.get_mut(9..13) {
                iterations.copy_from_slice(&10_000u32.to_be_bytes());
            }
            file
        } else {
            [s.header.as_slice(), rest].concat()
        };
        std::fs::write(&s.file, file).expect("write input");
    } else {
        let chunks: Vec<&[u8]> = split(rest, b"\xFF\xFE");
        chunks.iter().for_each(|c| collections.extend(collection_names(c)));
        fuzz_write_raw_backup(&s.file, PASSPHRASE, &chunks).expect("write input");
    }
    let counts = |vault: &Vault| -> Vec<Option<u64>> {
        collections.iter().map(|c| vault.count(c).ok()).collect()
    };
    let before = counts(&s.vault);
    if s.vault.import_backup(&s.file, PASSPHRASE).is_err() {
        assert_eq!(counts(&s.vault), before, "a refused backup stored something");
    }
});

/// The collection names in a chunk's plaintext, read the way the format lays entries out
/// (u16 name length, name, u32 payload length, payload), as far as the bytes allow.
fn collection_names(mut chunk: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    while chunk.len() >= 2 {
        let len = u16::from_be_bytes([chunk[0], chunk[1]]) as usize;
        let Some(name) = chunk.get(2..2 + len) else {
            break;
        };
        names.push(String::from_utf8_lossy(name).into_owned());
        let Some(payload) = chunk.get(2 + len..2 + len + 4) else {
            break;
        };
        let payload_len = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
        chunk = chunk.get(2 + len + 4 + payload_len as usize..).unwrap_or_default();
    }
    names
}

fn split<'a>(mut data: &'a [u8], separator: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    while let Some(at) = data.windows(separator.len()).position(|w| w == separator) {
        parts.push(&data[..at]);
        data = &data[at + separator.len()..];
    }
    parts.push(data);
    parts
}
