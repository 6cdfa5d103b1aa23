//! The vault's lifecycle leaves nothing behind: after `close()` no file of the vault holds an old
//! key slot or a deleted record's envelope; a passphrase change or provider switch is on disk
//! at once, so a copy taken before close does not open with the old secret; key operations
//! running at once leave a vault that opens with the last secret set and no other; and a wipe
//! interrupted at any point leaves the old vault or nothing, never fresh keys over old rows.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{fast, open_pass, TestProvider};
use rusqlite::Connection;
use thudo_core::vault::{self, database_path, Unlock, Vault, VaultError};

/// The raw bytes of every key slot and record envelope, read past the vault.
fn raw_blobs(dir: &Path, sql: &str) -> Vec<Vec<u8>> {
    let conn = Connection::open(database_path(dir)).unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0)).unwrap();
    rows.map(Result::unwrap).collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

/// Whether any file in `dir` holds a 24-byte window of `secret`.
fn leaks(dir: &Path, secret: &[u8]) -> Option<PathBuf> {
    let probe = &secret[secret.len() / 2 - 12..secret.len() / 2 + 12];
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            std::fs::read(p)
                .unwrap()
                .windows(probe.len())
                .any(|w| w == probe)
        })
}

#[test]
fn close_leaves_no_old_key_slot_or_deleted_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let v = open_pass(dir.path(), "old secret").unwrap();
    for i in 0..50 {
        v.put(
            "notes",
            &format!("n{i}"),
            &[],
            format!("note {i}").as_bytes(),
        )
        .unwrap();
    }
    let old_slot = raw_blobs(dir.path(), "SELECT wrapped FROM key_slots").remove(0);
    let before = raw_blobs(dir.path(), "SELECT envelope FROM records");
    v.delete("notes", "n7").unwrap();
    let after = raw_blobs(dir.path(), "SELECT envelope FROM records");
    let deleted: Vec<u8> = before.into_iter().find(|e| !after.contains(e)).unwrap();

    // A passphrase change is on disk at once: a copy taken now (a crash, a backup tool) does
    // not open with the old secret, whichever of its files are copied.
    v.change_passphrase("old secret", "new secret").unwrap();
    let copy = dir.path().join("../copy-after-change");
    copy_dir(dir.path(), &copy);
    assert!(matches!(
        open_pass(&copy, "old secret"),
        Err(VaultError::WrongKey { .. })
    ));
    let db_only = dir.path().join("../copy-db-only");
    std::fs::create_dir_all(&db_only).unwrap();
    std::fs::copy(database_path(dir.path()), database_path(&db_only)).unwrap();
    assert!(matches!(
        open_pass(&db_only, "old secret"),
        Err(VaultError::WrongKey { .. })
    ));
    assert_eq!(leaks(dir.path(), &old_slot), None, "old slot while open");

    v.close();
    assert_eq!(leaks(dir.path(), &old_slot), None, "old slot after close");
    assert_eq!(
        leaks(dir.path(), &deleted),
        None,
        "deleted envelope after close"
    );
    let wal = PathBuf::from(format!("{}-wal", database_path(dir.path()).display()));
    assert!(
        !wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0,
        "the WAL is checkpointed and truncated"
    );
    let again = open_pass(dir.path(), "new secret").unwrap();
    assert_eq!(again.count("notes").unwrap(), 49);
    again.close();
    let _ = std::fs::remove_dir_all(copy);
    let _ = std::fs::remove_dir_all(db_only);
}

#[test]
fn a_close_interrupting_work_still_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let v = Arc::new(open_pass(dir.path(), "p").unwrap());
    for i in 0..200 {
        v.put("c", &format!("{i}"), &[], &[7u8; 512]).unwrap();
    }
    let old_slot = raw_blobs(dir.path(), "SELECT wrapped FROM key_slots").remove(0);
    v.change_passphrase("p", "q").unwrap();
    let worker = {
        let v = v.clone();
        std::thread::spawn(move || {
            // Rotations keep the vault busy until close interrupts one.
            while v.rotate_data_key().is_ok() {}
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(50));
    v.close();
    worker.join().unwrap();
    assert_eq!(leaks(dir.path(), &old_slot), None);
    let wal = PathBuf::from(format!("{}-wal", database_path(dir.path()).display()));
    assert!(!wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0);
    assert_eq!(open_pass(dir.path(), "q").unwrap().count("c").unwrap(), 200);
}

#[test]
fn a_provider_switch_is_on_disk_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let v = open_pass(dir.path(), "old secret").unwrap();
    v.put("c", "a", &[], b"x").unwrap();
    let provider = TestProvider::new("keystore-1");
    v.rotate_key_provider(provider.clone()).unwrap();
    let copy = dir.path().join("../copy-after-switch");
    copy_dir(dir.path(), &copy);
    assert!(matches!(
        open_pass(&copy, "old secret"),
        Err(VaultError::WrongKey { .. })
    ));
    let db_only = dir.path().join("../copy-switch-db-only");
    std::fs::create_dir_all(&db_only).unwrap();
    std::fs::copy(database_path(dir.path()), database_path(&db_only)).unwrap();
    assert!(matches!(
        open_pass(&db_only, "old secret"),
        Err(VaultError::WrongKey { .. })
    ));
    let _ = std::fs::remove_dir_all(db_only);
    let reopened = Vault::open(&copy, Unlock::Provider(provider), &fast()).unwrap();
    assert_eq!(reopened.get("c", "a").unwrap().body, b"x");
    reopened.close();
    v.close();
    let _ = std::fs::remove_dir_all(copy);
}

#[test]
fn concurrent_key_operations_leave_exactly_the_last_secret() {
    for round in 0..12 {
        let dir = tempfile::tempdir().unwrap();
        let v = Arc::new(open_pass(dir.path(), "p0").unwrap());
        v.put("c", "a", &[], b"kept").unwrap();
        let provider = TestProvider::new(&format!("k{round}"));
        let threads = vec![
            {
                let v = v.clone();
                std::thread::spawn(move || v.change_passphrase("p0", "p1").is_ok())
            },
            {
                let v = v.clone();
                let p = provider.clone();
                std::thread::spawn(move || v.rotate_key_provider(p).is_ok())
            },
            {
                let v = v.clone();
                std::thread::spawn(move || v.rotate_data_key().is_ok())
            },
        ];
        let ok: Vec<bool> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        // Whatever happened in memory is what is on disk: a later data key rotation is sealed
        // under the same secret the slot holds.
        v.rotate_data_key().unwrap();
        v.close();
        let opens_with_p0 = open_pass(dir.path(), "p0").map(|v| v.close()).is_ok();
        let opens_with_p1 = open_pass(dir.path(), "p1").map(|v| v.close()).is_ok();
        let opens_with_provider = Vault::open(dir.path(), Unlock::Provider(provider), &fast())
            .map(|v| {
                assert_eq!(v.get("c", "a").unwrap().body, b"kept");
                v.close()
            })
            .is_ok();
        let opening = [opens_with_p0, opens_with_p1, opens_with_provider];
        assert_eq!(
            opening.iter().filter(|o| **o).count(),
            1,
            "round {round}: ops {ok:?}, opens with p0/p1/provider {opening:?}"
        );
        assert!(
            ok[1],
            "the provider switch always applies (it needs no old secret)"
        );
    }
}

#[test]
fn a_wipe_cut_after_its_key_slots_went_leaves_nothing_openable() {
    // The first step of a wipe destroys the key slots; a crash right after it used to leave a
    // database that the next open filled with fresh keys, over rows nobody can read.
    let dir = tempfile::tempdir().unwrap();
    let v = open_pass(dir.path(), "p").unwrap();
    v.put("c", "a", &[], b"secret").unwrap();
    v.close();
    {
        let conn = Connection::open(database_path(dir.path())).unwrap();
        conn.execute_batch(&vault::wipe_first_step_sql()).unwrap();
    }
    // The next open finishes the wipe: a new, empty vault, never the old rows under new keys.
    let v = open_pass(dir.path(), "new").unwrap();
    assert_eq!(v.count("c").unwrap(), 0);
    assert!(raw_blobs(dir.path(), "SELECT envelope FROM records").is_empty());
    v.close();

    // Slots gone without a wipe (damage, tampering): refused, rows kept for recovery.
    let dir = tempfile::tempdir().unwrap();
    let v = open_pass(dir.path(), "p").unwrap();
    v.put("c", "a", &[], b"secret").unwrap();
    v.close();
    Connection::open(database_path(dir.path()))
        .unwrap()
        .execute_batch("DELETE FROM key_slots")
        .unwrap();
    assert!(matches!(
        open_pass(dir.path(), "p"),
        Err(VaultError::CorruptStore { .. })
    ));
    assert_eq!(
        raw_blobs(dir.path(), "SELECT envelope FROM records").len(),
        1
    );
}

/// A backup carries what a restore writes back and nothing else: a validator's tap log (riders'
/// cards) stays out, and a record damaged on disk is left out instead of stopping every
/// backup. A restore whose changes waiting to be synced would take the places of this device's
/// is refused. A document that does not parse is reported without its content.
#[test]
fn backups_carry_what_a_restore_writes_and_never_overwrite_unsent_changes() {
    use thudo_core::changes::outbox::OutboxEntry;
    use thudo_core::vault::Document;
    let dir = tempfile::tempdir().unwrap();
    let v = open_pass(dir.path(), "p").unwrap();
    v.put("handbook.note", "kept", &[], b"a note").unwrap();
    v.put("handbook.note", "damaged", &[], b"another").unwrap();
    v.put(
        "transit.tap",
        "0000000000000001",
        &[],
        b"card 9704000000123",
    )
    .unwrap();
    let change = |record: &str| OutboxEntry {
        idempotency_key: thudo_core::hex::random(16).unwrap(),
        seq: 1,
        collection: "handbook.note".into(),
        record_id: record.into(),
        op: "put".into(),
        payload: serde_json::json!({"text": record}),
        created_at: 1,
        hlc: String::new(),
    };
    // The backup's own change waiting to be synced, first in its outbox.
    v.put_doc(&change("theirs")).unwrap();
    let conn = Connection::open(database_path(dir.path())).unwrap();
    let envelopes: Vec<Vec<u8>> = raw_blobs(
        dir.path(),
        "SELECT envelope FROM records WHERE collection = 'handbook.note' ORDER BY id_hash",
    );
    // One note's envelope made to fail authentication (its last byte flipped).
    let mut bad = envelopes[0].clone();
    *bad.last_mut().unwrap() ^= 1;
    conn.execute(
        "UPDATE records SET envelope = ?1 WHERE envelope = ?2",
        (&bad, &envelopes[0]),
    )
    .unwrap();
    let file = dir.path().join("backup.thudo");
    assert_eq!(v.export_backup(&file, "backup pass").unwrap(), 2);
    assert!(std::fs::read_dir(dir.path()).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains("partial")));

    let other = tempfile::tempdir().unwrap();
    let phone = open_pass(other.path(), "p").unwrap();
    let unsent = change("mine");
    phone.put_doc(&unsent).unwrap();
    assert!(matches!(
        phone.import_backup(&file, "backup pass"),
        Err(VaultError::InvalidArgument { .. })
    ));
    assert_eq!(
        phone.get_doc::<OutboxEntry>(&unsent.id()).unwrap(),
        Some(unsent.clone())
    );
    assert_eq!(phone.count("handbook.note").unwrap(), 0);
    // Once synced (the outbox empty), the restore goes ahead.
    phone.delete(OutboxEntry::COLLECTION, &unsent.id()).unwrap();
    assert_eq!(phone.import_backup(&file, "backup pass").unwrap(), 2);

    // A document whose field holds the wrong type: the error names the collection, not the value.
    phone
        .put(
            OutboxEntry::COLLECTION,
            "00000000000000000009",
            &[],
            br#"{"seq": "Nguyen Van A"}"#,
        )
        .unwrap();
    let err = phone
        .get_doc::<OutboxEntry>("00000000000000000009")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sync.outbox") && !err.contains("Nguyen"),
        "{err}"
    );
}

/// A passphrase's PBKDF2 cost is bounded when set (above 10 million a phone derives for more
/// than a few seconds), and a vault set high still writes backups every import accepts.
#[test]
fn iteration_counts_are_bounded_and_backups_stay_restorable() {
    let dir = tempfile::tempdir().unwrap();
    let options = |kdf_iterations: u32| vault::VaultOptions {
        kdf_iterations,
        ..fast()
    };
    assert!(matches!(
        Vault::open(dir.path(), Unlock::passphrase("p"), &options(20_000_000)),
        Err(VaultError::InvalidArgument { .. })
    ));
    let v = Vault::open(dir.path(), Unlock::passphrase("p"), &options(2_500_000)).unwrap();
    v.put("handbook.note", "n", &[], b"a note").unwrap();
    let file = dir.path().join("backup.thudo");
    v.export_backup(&file, "backup pass").unwrap();
    let other = tempfile::tempdir().unwrap();
    let restored = open_pass(other.path(), "p").unwrap();
    assert_eq!(restored.import_backup(&file, "backup pass").unwrap(), 1);
}

/// An export removes the temporary files of exports to the same path that died an hour or more
/// ago, and leaves a recent one (an export still running) alone.
#[test]
fn an_export_removes_the_partial_files_of_dead_exports() {
    let dir = tempfile::tempdir().unwrap();
    let v = open_pass(dir.path(), "p").unwrap();
    v.put("handbook.note", "n", &[], b"a note").unwrap();
    let file = dir.path().join("backup.thudo");
    let partial = |name: &str, age_secs: u64| {
        let path = dir.path().join(name);
        let f = std::fs::File::create(&path).unwrap();
        f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(age_secs))
            .unwrap();
        path
    };
    let dead = partial("backup.thudo.partial-0123456789abcdef", 7_200);
    let older_version = partial("backup.thudo.partial", 7_200);
    let running = partial("backup.thudo.partial-fedcba9876543210", 60);
    // Another target's, or a name no export gives, however old, is not this export's to
    // remove.
    let other = partial("other.thudo.partial-0123456789abcdef", 7_200);
    let users = partial("backup.thudo.partial-notes.txt", 7_200);
    v.export_backup(&file, "backup pass").unwrap();
    assert!(!dead.exists() && !older_version.exists() && file.exists());
    assert!(running.exists() && other.exists() && users.exists());
}
