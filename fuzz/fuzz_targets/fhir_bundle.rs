//! Fuzzes FHIR bundle import into the health book: arbitrary JSON as a bundle, imported all or
//! nothing, entry by entry, and into a chosen person. No input may panic; a refused import
//! stores nothing; an accepted one accounts for every entry of the bundle, once.
#![no_main]

use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use thudo_core::health::records::{EntryStatus, Gender, HealthBook, ImportMode, Person};
use thudo_core::vault::Vault;

mod common;

struct Setup {
    vault: Vault,
    person: String,
    runs: u64,
    dir: std::path::PathBuf,
}

fn open(dir: &std::path::Path) -> (Vault, String) {
    let _ = std::fs::remove_dir_all(dir);
    let vault = common::open_vault(dir);
    let person = HealthBook::new(&vault)
        .save_person(
            &Person {
                id: None,
                full_name: "Nguyễn Fuzz".into(),
                birth_date: "2020-01-01".into(),
                gender: Gender::Female,
                citizen_id: None,
                insurance: None,
            },
            1,
        )
        .expect("person");
    (vault, person)
}

fn setup() -> &'static Mutex<Setup> {
    static SETUP: OnceLock<Mutex<Setup>> = OnceLock::new();
    SETUP.get_or_init(|| {
        let dir = common::scratch("fhir");
        let (vault, person) = open(&dir);
        Mutex::new(Setup {
            vault,
            person,
            runs: 0,
            dir,
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut s = setup().lock().unwrap_or_else(|e| e.into_inner());
    s.runs += 1;
    if s.runs % 1_000 == 0 {
        // A fresh book now and then keeps the store (and each import's lookups) small.
        let dir = s.dir.clone();
        s.vault.close();
        let (vault, person) = open(&dir);
        s.vault = vault;
        s.person = person;
    }
    let book = HealthBook::new(&s.vault);
    let before = s.vault.count("health.records").expect("count");
    if book
        .import_bundle_with(text, None, ImportMode::AllOrNothing, 1)
        .is_err()
    {
        assert_eq!(s.vault.count("health.records").expect("count"), before);
    }
    let entries = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.get("entry")?.as_array().map(Vec::len));
    for into in [None, Some(s.person.as_str())] {
        let before = s.vault.count("health.records").expect("count");
        match book.import_bundle(text, into, 1) {
            Ok(summary) => {
                let indexes: Vec<usize> = summary.entries.iter().map(|e| e.index).collect();
                let all: Vec<usize> = (0..entries.unwrap_or(0)).collect();
                // A merged second Patient is reported too, so every index appears once.
                assert_eq!(indexes, all, "every entry accounted for once");
                let stored = summary
                    .entries
                    .iter()
                    .filter(|e| matches!(e.status, EntryStatus::Stored | EntryStatus::Shared))
                    .count();
                assert!(summary.stored <= stored);
            }
            Err(_) => assert_eq!(s.vault.count("health.records").expect("count"), before),
        }
    }
});
