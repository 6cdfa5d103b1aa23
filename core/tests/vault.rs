//! Behaviour of the encrypted vault through its public API, good input and bad.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{fast, idx, open_pass, TestProvider};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use thudo_core::vault::{
    self, database_path, Document, KeyProvider, KeyProviderError, Unlock, Vault, VaultError,
    WriteOp,
};

fn raw(dir: &Path) -> Connection {
    Connection::open(database_path(dir)).unwrap()
}

#[test]
fn put_get_list_query_delete() {
    let dir = tempfile::tempdir().unwrap();
    let v = open_pass(dir.path(), "pass").unwrap();
    v.put("people", "b", &idx(&[("city", "Hà Nội")]), b"body b")
        .unwrap();
    v.put(
        "people",
        "a",
        &idx(&[("city", "Hà Nội"), ("kind", "x")]),
        b"body a",
    )
    .unwrap();
    v.put("people", "c", &idx(&[("city", "Huế")]), b"").unwrap();
    v.put("other", "a", &[], b"elsewhere").unwrap();

    assert_eq!(v.get("people", "a").unwrap().body, b"body a");
    assert_eq!(v.get("other", "a").unwrap().body, b"elsewhere");
    assert_eq!(v.get("people", "c").unwrap().body, b"");
    let ids: Vec<_> = v
        .list("people")
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["a", "b", "c"]);
    assert_eq!(v.count("people").unwrap(), 3);
    let hanoi: Vec<_> = v
        .query("people", "city", "Hà Nội")
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(hanoi, ["a", "b"]);
    assert!(v.query("people", "city", "Ha Noi").unwrap().is_empty());
    assert!(v.query("people", "kind", "x").unwrap().len() == 1);

    // Replacing a record replaces its index entries too.
    v.put("people", "a", &idx(&[("city", "Huế")]), b"moved")
        .unwrap();
    assert_eq!(v.query("people", "city", "Hà Nội").unwrap().len(), 1);
    assert_eq!(v.query("people", "city", "Huế").unwrap().len(), 2);
    assert!(v.query("people", "kind", "x").unwrap().is_empty());

    assert!(v.delete("people", "a").unwrap());
    assert!(!v.delete("people", "a").unwrap());
    assert!(matches!(
        v.get("people", "a"),
        Err(VaultError::NotFound { .. })
    ));
    assert_eq!(v.find("people", "a").unwrap(), None);
    assert_eq!(v.query("people", "city", "Huế").unwrap().len(), 1);
    let rows: i64 = raw(dir.path())
        .query_row(
            "SELECT count(*) FROM record_index WHERE collection='people'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows, 2, "deleting a record deletes its index rows");
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Vaccination {
    id: String,
    person: String,
    vaccine: String,
}

impl Document for Vaccination {
    const COLLECTION: &'static str = "health.immunization";
    fn id(&self) -> String {
        self.id.clone()
    }
    fn index(&self) -> Vec<(String, String)> {
        vec![("person".into(), self.person.clone())]
    }
}

#[test]
fn typed_documents() {
    let dir = tempfile::tempdir().unwrap();
    let v = open_pass(dir.path(), "pass").unwrap();
    let doc = |id: &str, person: &str| Vaccination {
        id: id.into(),
        person: person.into(),
        vaccine: "BCG".into(),
    };
    v.put_doc(&doc("1", "me")).unwrap();
    v.put_doc(&doc("2", "child")).unwrap();
    assert_eq!(v.get_doc::<Vaccination>("1").unwrap(), Some(doc("1", "me")));
    assert_eq!(v.list_docs::<Vaccination>().unwrap().len(), 2);
    assert_eq!(
        v.query_docs::<Vaccination>("person", "child").unwrap(),
        vec![doc("2", "child")]
    );
    // A body that is not this type's JSON is reported, not returned.
    v.put(Vaccination::COLLECTION, "3", &[], b"not json")
        .unwrap();
    assert!(matches!(
        v.get_doc::<Vaccination>("3"),
        Err(VaultError::CorruptRecord { .. })
    ));
}

#[test]
fn bad_arguments_are_typed_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let v = open_pass(dir.path(), "pass").unwrap();
    v.put("c", "keep", &[], b"kept").unwrap();
    let long_id = "x".repeat(513);
    let big = vec![0u8; vault::MAX_BODY_LEN + 1];
    let too_many: Vec<_> = (0..33)
        .map(|i| (format!("f{i}"), "v".to_string()))
        .collect();
    let long_value = idx(&[("f", &"v".repeat(4097))]);
    let bad: Vec<Box<dyn Fn() -> Result<(), VaultError>>> = vec![
        Box::new(|| v.put("", "id", &[], b"")),
        Box::new(|| v.put("Upper", "id", &[], b"")),
        Box::new(|| v.put("with space", "id", &[], b"")),
        Box::new(|| v.put("1digit", "id", &[], b"")),
        Box::new(|| v.put(&"c".repeat(65), "id", &[], b"")),
        Box::new(|| v.put("c", "", &[], b"")),
        Box::new(|| v.put("c", &long_id, &[], b"")),
        Box::new(|| v.put("c", "id", &[], &big)),
        Box::new(|| v.put("c", "id", &idx(&[("Bad Field", "v")]), b"")),
        Box::new(|| v.put("c", "id", &too_many, b"")),
        Box::new(|| v.put("c", "id", &long_value, b"")),
        Box::new(|| v.get("c", "").map(|_| ())),
        Box::new(|| v.query("c", "", "v").map(|_| ())),
        Box::new(|| v.list("NOPE").map(|_| ())),
        Box::new(|| v.delete("c", "").map(|_| ())),
    ];
    for (i, call) in bad.iter().enumerate() {
        assert!(
            matches!(call(), Err(VaultError::InvalidArgument { .. })),
            "bad input #{i} was not rejected as InvalidArgument"
        );
    }
    assert_eq!(v.list("c").unwrap().len(), 1);
    assert_eq!(v.get("c", "keep").unwrap().body, b"kept");
}

#[test]
fn write_batch_and_transactions_are_atomic() {
    let dir = tempfile::tempdir().unwrap();
    let v = open_pass(dir.path(), "pass").unwrap();
    v.put("c", "old", &[], b"old").unwrap();
    let put = |id: &str| WriteOp::Put {
        collection: "c".into(),
        id: id.into(),
        index: vec![],
        body: id.as_bytes().to_vec(),
    };
    v.write_batch(&[
        put("1"),
        put("2"),
        WriteOp::Delete {
            collection: "c".into(),
            id: "old".into(),
        },
    ])
    .unwrap();
    assert_eq!(v.count("c").unwrap(), 2);

    // The last op is invalid: none of the batch lands.
    let err = v.write_batch(&[
        put("3"),
        WriteOp::Delete {
            collection: "c".into(),
            id: "1".into(),
        },
        put(""),
    ]);
    assert!(matches!(err, Err(VaultError::InvalidArgument { .. })));
    let ids: Vec<_> = v.list("c").unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(ids, ["1", "2"]);

    // A closure transaction that fails rolls back everything it did.
    let err = v.transaction(|tx| {
        tx.put("c", "4", &[], b"4")?;
        tx.delete("c", "2")?;
        assert!(
            tx.get("c", "4")?.is_some(),
            "a transaction sees its own writes"
        );
        Err::<(), _>(VaultError::NotFound {
            collection: "c".into(),
        })
    });
    assert!(err.is_err());
    let ids: Vec<_> = v.list("c").unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(ids, ["1", "2"]);
}

#[test]
fn wrong_passphrase_fails_and_damages_nothing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let v = open_pass(dir.path(), "right").unwrap();
        v.put("c", "id", &[], b"data").unwrap();
        v.close();
    }
    for wrong in ["wrong", "", "right ", "Right"] {
        let err = open_pass(dir.path(), wrong).unwrap_err();
        assert!(
            matches!(err, VaultError::WrongKey { .. }),
            "{wrong:?}: {err:?}"
        );
    }
    let provider: Arc<dyn KeyProvider> = TestProvider::new("k");
    assert!(matches!(
        Vault::open(dir.path(), Unlock::Provider(provider), &fast()),
        Err(VaultError::WrongKey { .. })
    ));
    let v = open_pass(dir.path(), "right").unwrap();
    assert_eq!(v.get("c", "id").unwrap().body, b"data");
    let ok: String = raw(dir.path())
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}

#[test]
fn key_provider_unlocks_and_wrong_provider_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let provider = TestProvider::new("k1");
    {
        let v = Vault::open(dir.path(), Unlock::Provider(provider.clone()), &fast()).unwrap();
        v.put("c", "id", &[], b"data").unwrap();
    }
    let other: Arc<dyn KeyProvider> = TestProvider::new("k2");
    assert!(matches!(
        Vault::open(dir.path(), Unlock::Provider(other), &fast()),
        Err(VaultError::WrongKey { .. })
    ));
    let locked: Arc<dyn KeyProvider> = TestProvider::unavailable();
    assert!(matches!(
        Vault::open(dir.path(), Unlock::Provider(locked), &fast()),
        Err(VaultError::KeyUnavailable { .. })
    ));
    // A key gone for good (restored to a new phone) is told apart from a wrong or locked key,
    // and changes nothing: the right key still opens the vault.
    struct KeyGone;
    impl KeyProvider for KeyGone {
        fn key_id(&self) -> String {
            "k1".into()
        }
        fn wrap_key(&self, _: &[u8]) -> Result<Vec<u8>, KeyProviderError> {
            Err(KeyProviderError::Gone {
                reason: "no such key".into(),
            })
        }
        fn unwrap_key(&self, _: &[u8]) -> Result<Vec<u8>, KeyProviderError> {
            Err(KeyProviderError::Gone {
                reason: "no such key".into(),
            })
        }
    }
    assert!(matches!(
        Vault::open(dir.path(), Unlock::Provider(Arc::new(KeyGone)), &fast()),
        Err(VaultError::KeyLost { .. })
    ));
    let again = Vault::open(dir.path(), Unlock::Provider(provider.clone()), &fast()).unwrap();
    assert_eq!(again.get("c", "id").unwrap().body, b"data");
    drop(again);
    assert!(matches!(
        open_pass(dir.path(), "pass"),
        Err(VaultError::WrongKey { .. })
    ));

    /// Returns 32 bytes of garbage instead of failing: caught by the key check.
    struct Liar;
    impl KeyProvider for Liar {
        fn key_id(&self) -> String {
            "liar".into()
        }
        fn wrap_key(&self, k: &[u8]) -> Result<Vec<u8>, KeyProviderError> {
            Ok(k.to_vec())
        }
        fn unwrap_key(&self, w: &[u8]) -> Result<Vec<u8>, KeyProviderError> {
            Ok(w.iter().map(|b| b ^ 1).collect())
        }
    }
    assert!(matches!(
        Vault::open(dir.path(), Unlock::Provider(Arc::new(Liar)), &fast()),
        Err(VaultError::WrongKey { .. })
    ));
    // A provider that cannot round-trip cannot create a vault either.
    let fresh = tempfile::tempdir().unwrap();
    assert!(Vault::open(fresh.path(), Unlock::Provider(Arc::new(Liar)), &fast()).is_err());

    let v = Vault::open(dir.path(), Unlock::Provider(provider), &fast()).unwrap();
    assert_eq!(v.get("c", "id").unwrap().body, b"data");
}

#[test]
fn every_flipped_byte_is_a_typed_error_never_wrong_data() {
    let dir = tempfile::tempdir().unwrap();
    let v = open_pass(dir.path(), "pass").unwrap();
    v.put("c", "victim", &idx(&[("f", "v")]), b"the real body")
        .unwrap();
    let conn = raw(dir.path());
    let (id_hash, envelope): (Vec<u8>, Vec<u8>) = conn
        .query_row("SELECT id_hash, envelope FROM records", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    for at in 0..envelope.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut bad = envelope.clone();
            bad[at] ^= flip;
            conn.execute(
                "UPDATE records SET envelope = ?1 WHERE id_hash = ?2",
                (&bad, &id_hash),
            )
            .unwrap();
            match v.get("c", "victim") {
                Err(VaultError::CorruptRecord { collection, .. }) => assert_eq!(collection, "c"),
                other => panic!("byte {at} ^ {flip:#x}: {other:?}"),
            }
            assert!(matches!(v.list("c"), Err(VaultError::CorruptRecord { .. })));
            assert!(matches!(
                v.query("c", "f", "v"),
                Err(VaultError::CorruptRecord { .. })
            ));
        }
    }
    // Truncated and extended envelopes too.
    for bad in [
        envelope[..envelope.len() - 1].to_vec(),
        [envelope.clone(), vec![0]].concat(),
        vec![],
    ] {
        conn.execute("UPDATE records SET envelope = ?1", [&bad])
            .unwrap();
        assert!(matches!(
            v.get("c", "victim"),
            Err(VaultError::CorruptRecord { .. })
        ));
    }
    conn.execute("UPDATE records SET envelope = ?1", [&envelope])
        .unwrap();
    assert_eq!(v.get("c", "victim").unwrap().body, b"the real body");
}

#[test]
fn swapped_or_moved_ciphertexts_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let v = open_pass(dir.path(), "pass").unwrap();
    v.put("c", "alice", &[], b"alice's record").unwrap();
    v.put("c", "bob", &[], b"bob's record").unwrap();
    v.put("d", "alice", &[], b"in d").unwrap();
    let conn = raw(dir.path());
    let rows: Vec<(Vec<u8>, Vec<u8>)> = conn
        .prepare("SELECT id_hash, envelope FROM records WHERE collection = 'c'")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let set = |collection: &str, hash: &[u8], envelope: &[u8]| {
        conn.execute(
            "UPDATE records SET envelope = ?1 WHERE collection = ?2 AND id_hash = ?3",
            (envelope, collection, hash),
        )
        .unwrap();
    };
    // Swap the envelopes of alice and bob.
    let ((h0, e0), (h1, e1)) = (&rows[0], &rows[1]);
    set("c", h0, e1);
    set("c", h1, e0);
    assert!(matches!(
        v.get("c", "alice"),
        Err(VaultError::CorruptRecord { .. })
    ));
    assert!(matches!(
        v.get("c", "bob"),
        Err(VaultError::CorruptRecord { .. })
    ));
    set("c", h0, e0);
    set("c", h1, e1);
    assert_eq!(v.get("c", "alice").unwrap().body, b"alice's record");
    // Move either envelope of c onto d/alice: same id or not, another collection is rejected.
    for envelope in [e0, e1] {
        conn.execute(
            "UPDATE records SET envelope = ?1 WHERE collection = 'd'",
            [envelope],
        )
        .unwrap();
        assert!(matches!(
            v.get("d", "alice"),
            Err(VaultError::CorruptRecord { .. })
        ));
    }
    // Moving a whole row (hash and envelope) into another collection is rejected too.
    conn.execute("DELETE FROM records WHERE collection = 'd'", [])
        .unwrap();
    conn.execute(
        "INSERT INTO records (collection, id_hash, envelope)
         SELECT 'd', id_hash, envelope FROM records WHERE collection = 'c'",
        [],
    )
    .unwrap();
    assert!(matches!(v.list("d"), Err(VaultError::CorruptRecord { .. })));
}

fn files_in(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

fn assert_no_marker(dir: &Path, markers: &[&str]) {
    let files = files_in(dir);
    assert!(!files.is_empty());
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        for marker in markers {
            let found = bytes.windows(marker.len()).any(|w| w == marker.as_bytes());
            assert!(!found, "{marker} found in {}", file.display());
        }
    }
}

#[test]
fn no_plaintext_reaches_any_file() {
    let dir = tempfile::tempdir().unwrap();
    let markers = [
        "MARKER-ID-4242",
        "MARKER-BODY-Nguyễn",
        "MARKER-INDEX-001088012345",
        "MARKER-PASS-xyz",
    ];
    let v = open_pass(dir.path(), markers[3]).unwrap();
    for i in 0..200 {
        v.put(
            "health.visit",
            &format!("{}-{i}", markers[0]),
            &idx(&[("cccd", markers[2])]),
            format!("{} {i}", markers[1]).as_bytes(),
        )
        .unwrap();
    }
    v.delete("health.visit", &format!("{}-7", markers[0]))
        .unwrap();
    // While open: the WAL holds the recent pages.
    assert!(files_in(dir.path())
        .iter()
        .any(|f| f.to_string_lossy().ends_with("-wal")));
    assert_no_marker(dir.path(), &markers);
    v.rotate_data_key().unwrap();
    v.change_passphrase(markers[3], "MARKER-NEWPASS-abc")
        .unwrap();
    assert_no_marker(dir.path(), &markers);
    v.close();
    assert_no_marker(
        dir.path(),
        &[
            markers[0],
            markers[1],
            markers[2],
            markers[3],
            "MARKER-NEWPASS-abc",
        ],
    );
}

#[test]
fn newer_schema_is_refused_and_file_untouched() {
    let dir = tempfile::tempdir().unwrap();
    open_pass(dir.path(), "p")
        .unwrap()
        .put("c", "x", &[], b"y")
        .unwrap();
    {
        let conn = raw(dir.path());
        conn.pragma_update(None, "user_version", 99).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
    }
    let before = std::fs::read(database_path(dir.path())).unwrap();
    match open_pass(dir.path(), "p") {
        Err(VaultError::NewerSchema { found, supported }) => {
            assert_eq!(found, 99);
            assert_eq!(supported, vault::SCHEMA_VERSION);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(database_path(dir.path())).unwrap(), before);
}

#[test]
fn foreign_or_garbage_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(database_path(dir.path()), vec![0x42u8; 8192]).unwrap();
    assert!(matches!(
        open_pass(dir.path(), "p"),
        Err(VaultError::CorruptStore { .. })
    ));

    let dir = tempfile::tempdir().unwrap();
    raw(dir.path())
        .execute_batch("CREATE TABLE contacts (name TEXT)")
        .unwrap();
    assert!(matches!(
        open_pass(dir.path(), "p"),
        Err(VaultError::CorruptStore { .. })
    ));
    let tables: i64 = raw(dir.path())
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tables, 1, "a foreign database is not written into");
}

#[test]
fn too_few_kdf_iterations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let opts = vault::VaultOptions {
        kdf_iterations: 1000,
        ..Default::default()
    };
    assert!(matches!(
        Vault::open(dir.path(), Unlock::passphrase("p"), &opts),
        Err(VaultError::InvalidArgument { .. })
    ));
    assert_eq!(vault::VaultOptions::default().kdf_iterations, 600_000);
}

#[test]
fn change_passphrase_rewraps_only_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let v = open_pass(dir.path(), "old").unwrap();
    v.put("c", "id", &[], b"data").unwrap();
    let envelope_before: Vec<u8> = raw(dir.path())
        .query_row("SELECT envelope FROM records", [], |r| r.get(0))
        .unwrap();
    assert!(matches!(
        v.change_passphrase("nope", "new"),
        Err(VaultError::WrongKey { .. })
    ));
    v.change_passphrase("old", "new").unwrap();
    let envelope_after: Vec<u8> = raw(dir.path())
        .query_row("SELECT envelope FROM records", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        envelope_before, envelope_after,
        "records are not re-encrypted"
    );
    v.close();
    assert!(matches!(
        open_pass(dir.path(), "old"),
        Err(VaultError::WrongKey { .. })
    ));
    assert_eq!(
        open_pass(dir.path(), "new")
            .unwrap()
            .get("c", "id")
            .unwrap()
            .body,
        b"data"
    );
}

#[test]
fn rotate_key_provider_and_switch_from_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let v = open_pass(dir.path(), "pass").unwrap();
    v.put("c", "id", &[], b"data").unwrap();
    let first = TestProvider::new("k1");
    v.rotate_key_provider(first.clone()).unwrap();
    let second = TestProvider::new("k2");
    v.rotate_key_provider(second.clone()).unwrap();
    // A provider that cannot unwrap what it wrapped is refused and the old one stays.
    assert!(v.rotate_key_provider(TestProvider::unavailable()).is_err());
    v.close();
    assert!(matches!(
        open_pass(dir.path(), "pass"),
        Err(VaultError::WrongKey { .. })
    ));
    assert!(matches!(
        Vault::open(dir.path(), Unlock::Provider(first), &fast()),
        Err(VaultError::WrongKey { .. })
    ));
    let v = Vault::open(dir.path(), Unlock::Provider(second), &fast()).unwrap();
    assert_eq!(v.get("c", "id").unwrap().body, b"data");
    assert!(matches!(
        v.change_passphrase("pass", "x"),
        Err(VaultError::WrongKey { .. })
    ));
}

#[test]
fn rotate_data_key_re_encrypts_everything() {
    let dir = tempfile::tempdir().unwrap();
    let provider = TestProvider::new("k");
    let v = Vault::open(dir.path(), Unlock::Provider(provider.clone()), &fast()).unwrap();
    for i in 0..50 {
        v.put(
            "c",
            &format!("{i:02}"),
            &idx(&[("even", &(i % 2 == 0).to_string())]),
            &[i as u8; 40],
        )
        .unwrap();
    }
    let snapshot = |conn: &Connection| -> Vec<(Vec<u8>, Vec<u8>)> {
        conn.prepare("SELECT id_hash, envelope FROM records ORDER BY id_hash")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let before = snapshot(&raw(dir.path()));
    let in_order = || -> Vec<String> {
        let page = v.list_page("c", 0, 100).unwrap();
        page.into_iter().map(|(_, r)| r.id).collect()
    };
    // Written out of id order, so that storage order is not id order.
    v.delete("c", "03").unwrap();
    v.put("c", "03", &idx(&[("even", "false")]), &[3u8; 40])
        .unwrap();
    let order = in_order();
    assert_eq!(order.last().map(String::as_str), Some("03"));
    assert_eq!(v.rotate_data_key().unwrap(), 50);
    assert_eq!(in_order(), order, "storage order kept across batches");
    let after = snapshot(&raw(dir.path()));
    assert_eq!(after.len(), 50);
    for (old, new) in before.iter().zip(&after) {
        assert_ne!(old, new);
    }
    assert!(
        before
            .iter()
            .all(|(h, _)| after.iter().all(|(h2, _)| h != h2)),
        "new blind index"
    );
    assert_eq!(v.query("c", "even", "true").unwrap().len(), 25);
    assert_eq!(v.get("c", "07").unwrap().body, [7u8; 40]);
    v.close();
    let v = Vault::open(dir.path(), Unlock::Provider(provider), &fast()).unwrap();
    assert_eq!(v.list("c").unwrap().len(), 50);
}

#[test]
fn backup_round_trip_and_bad_backups() {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let v = open_pass(dir.path(), "pass").unwrap();
    for i in 0..300 {
        // ~1 KiB bodies: the backup spans several chunks.
        v.put(
            "c",
            &format!("r{i}"),
            &idx(&[("n", &i.to_string())]),
            &vec![i as u8; 1000],
        )
        .unwrap();
    }
    v.put("d", "x", &[], b"other collection").unwrap();
    let file = out.path().join("backup.thudo");
    assert!(matches!(
        v.export_backup(&file, ""),
        Err(VaultError::InvalidArgument { .. })
    ));
    assert_eq!(v.export_backup(&file, "backup pass").unwrap(), 301);
    let bytes = std::fs::read(&file).unwrap();
    assert!(
        !bytes.windows(4).any(|w| w == b"r299"),
        "backup is encrypted"
    );

    let target_dir = tempfile::tempdir().unwrap();
    let t = open_pass(target_dir.path(), "other").unwrap();
    t.put("c", "r5", &[], b"will be replaced").unwrap();
    t.put("keep", "k", &[], b"kept").unwrap();
    assert!(matches!(
        t.import_backup(&file, "wrong"),
        Err(VaultError::WrongKey { .. })
    ));
    assert_eq!(t.import_backup(&file, "backup pass").unwrap(), 301);
    assert_eq!(t.list("c").unwrap(), v.list("c").unwrap());
    assert_eq!(t.query("c", "n", "42").unwrap().len(), 1);
    assert_eq!(t.get("keep", "k").unwrap().body, b"kept");

    // Damaged backups: nothing is imported from them.
    let fresh_dir = tempfile::tempdir().unwrap();
    let f = open_pass(fresh_dir.path(), "p").unwrap();
    let bad_file = out.path().join("bad");
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), vec![]),
        ("magic only".into(), b"THUDOBK1".to_vec()),
        ("header only".into(), bytes[..61].to_vec()),
        (
            "missing final chunk".into(),
            bytes[..bytes.len() / 2].to_vec(),
        ),
        ("one byte short".into(), bytes[..bytes.len() - 1].to_vec()),
        ("trailing byte".into(), [bytes.clone(), vec![0]].concat()),
    ];
    for at in [
        0usize,
        8,
        9,
        20,
        40,
        61,
        62,
        70,
        100,
        bytes.len() / 2,
        bytes.len() - 1,
    ] {
        let mut b = bytes.clone();
        b[at] ^= 0x10;
        cases.push((format!("flip at {at}"), b));
    }
    for (what, content) in cases {
        std::fs::write(&bad_file, &content).unwrap();
        let err = f.import_backup(&bad_file, "backup pass").unwrap_err();
        assert!(
            matches!(
                err,
                VaultError::InvalidBackup { .. } | VaultError::WrongKey { .. }
            ),
            "{what}: {err:?}"
        );
        assert_eq!(f.count("c").unwrap(), 0, "{what}: nothing imported");
    }
    assert!(matches!(
        f.import_backup(&out.path().join("missing"), "x"),
        Err(VaultError::Io { .. })
    ));
    // An export to a directory that does not exist fails and leaves no partial file.
    assert!(v
        .export_backup(&out.path().join("no/such/dir/b"), "p")
        .is_err());
}

#[test]
fn close_stops_later_calls_and_interrupts_work_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let v = Arc::new(open_pass(dir.path(), "p").unwrap());
    let ops: Vec<_> = (0..3000)
        .map(|i| WriteOp::Put {
            collection: "c".into(),
            id: i.to_string(),
            index: vec![],
            body: vec![1; 512],
        })
        .collect();
    v.write_batch(&ops).unwrap();
    let worker = {
        let v = v.clone();
        std::thread::spawn(move || {
            let mut outcomes = Vec::new();
            for _ in 0..200 {
                match v.rotate_data_key() {
                    Ok(_) => outcomes.push(Ok(())),
                    Err(e) => {
                        outcomes.push(Err(e));
                        break;
                    }
                }
            }
            outcomes
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(50));
    let started = std::time::Instant::now();
    v.close();
    let close_took = started.elapsed();
    let outcomes = worker.join().unwrap();
    assert!(
        matches!(outcomes.last(), Some(Err(VaultError::Closed))),
        "{:?}",
        outcomes.last()
    );
    assert!(close_took < std::time::Duration::from_secs(5));
    assert!(matches!(v.get("c", "1"), Err(VaultError::Closed)));
    assert!(matches!(v.put("c", "1", &[], b""), Err(VaultError::Closed)));
    v.close(); // idempotent
               // The interrupted rotation rolled back: everything is readable with the same passphrase.
    let v = open_pass(dir.path(), "p").unwrap();
    assert_eq!(v.list("c").unwrap().len(), 3000);
}

#[test]
fn wipe_destroys_keys_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let vault_dir = dir.path().join("v");
    let v = open_pass(&vault_dir, "p").unwrap();
    v.put("c", "id", &[], b"secret").unwrap();
    v.wipe().unwrap();
    assert!(matches!(v.get("c", "id"), Err(VaultError::Closed)));
    assert!(!database_path(&vault_dir).exists());
    assert!(!vault_dir.exists());
    // Opening again makes a new, empty vault.
    let v = open_pass(&vault_dir, "new").unwrap();
    assert_eq!(v.count("c").unwrap(), 0);
    v.close();
    vault::destroy(&vault_dir).unwrap();
    vault::destroy(&vault_dir).unwrap(); // nothing left: still fine
}

#[test]
fn chacha_vault_works_and_keeps_its_cipher() {
    let dir = tempfile::tempdir().unwrap();
    let opts = vault::VaultOptions {
        cipher: thudo_core::crypto::Cipher::ChaCha20Poly1305,
        ..fast()
    };
    let v = Vault::open(dir.path(), Unlock::passphrase("p"), &opts).unwrap();
    v.put("c", "id", &[], b"data").unwrap();
    v.close();
    // Reopened with default options (AES): the stored cipher wins.
    let v = open_pass(dir.path(), "p").unwrap();
    assert_eq!(v.get("c", "id").unwrap().body, b"data");
    let envelope: Vec<u8> = raw(dir.path())
        .query_row("SELECT envelope FROM records", [], |r| r.get(0))
        .unwrap();
    assert_eq!(envelope[1], 2, "cipher id of ChaCha20-Poly1305");
}

#[test]
fn a_backup_asking_for_a_hanging_key_derivation_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let v = open_pass(&dir.path().join("v"), "p").unwrap();
    v.put("notes", "n", &[], b"x").unwrap();
    let file = dir.path().join("b.backup");
    v.export_backup(&file, "backup pass").unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    // The header's iteration count (after the 8-byte magic and the cipher byte).
    bytes[9..13].copy_from_slice(&10_000_000u32.to_be_bytes());
    std::fs::write(&file, &bytes).unwrap();
    // Refused from the header, before any key derivation (10 million rounds take seconds on a
    // phone), not after it as a wrong passphrase.
    assert!(matches!(
        v.import_backup(&file, "backup pass"),
        Err(VaultError::InvalidBackup { .. })
    ));
}

#[test]
fn a_stopped_rotation_or_backup_keeps_nothing_of_itself() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let v = open_pass(dir.path(), "pass").unwrap();
    for i in 0..200 {
        v.put(
            "notes",
            &format!("n{i}"),
            &[],
            format!("body {i}").as_bytes(),
        )
        .unwrap();
    }
    // Stopped at the 50th record: the rotation rolls back, every record reads as before.
    let seen = AtomicU32::new(0);
    let at_50 = || seen.fetch_add(1, Ordering::SeqCst) >= 50;
    assert!(matches!(
        v.rotate_data_key_cancellable(&at_50),
        Err(VaultError::Cancelled)
    ));
    assert_eq!(v.count("notes").unwrap(), 200);
    assert_eq!(v.get("notes", "n199").unwrap().body, b"body 199");
    assert_eq!(
        v.rotate_data_key().unwrap(),
        200,
        "and it runs again to the end"
    );
    // An export stopped halfway leaves no file, not even a partial one.
    let file = dir.path().join("backup.thudo");
    seen.store(0, Ordering::SeqCst);
    assert!(matches!(
        v.export_backup_cancellable(&file, "backup pass", &at_50),
        Err(VaultError::Cancelled)
    ));
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("backup"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // An import stopped halfway imports nothing.
    assert_eq!(v.export_backup(&file, "backup pass").unwrap(), 200);
    let other = open_pass(&dir.path().join("other"), "pass").unwrap();
    seen.store(0, Ordering::SeqCst);
    assert!(matches!(
        other.import_backup_cancellable(&file, "backup pass", &at_50),
        Err(VaultError::Cancelled)
    ));
    assert_eq!(other.count("notes").unwrap(), 0);
    assert_eq!(other.import_backup(&file, "backup pass").unwrap(), 200);
}

/// A key provider that goes wrong between the open and a data-key rotation (its key replaced
/// behind the app's back: what it wraps now, it cannot give back) fails the rotation before any
/// record is re-encrypted: the vault opens and reads as before, never left under a key slot
/// nobody can unwrap.
#[test]
fn a_rotation_whose_new_key_cannot_be_unwrapped_changes_nothing() {
    use std::sync::atomic::{AtomicBool, Ordering};
    struct Faulty {
        inner: Arc<TestProvider>,
        broken: AtomicBool,
    }
    impl KeyProvider for Faulty {
        fn key_id(&self) -> String {
            self.inner.key_id()
        }
        fn wrap_key(&self, data_key: &[u8]) -> Result<Vec<u8>, KeyProviderError> {
            if self.broken.load(Ordering::SeqCst) {
                // Wrapped under a key it no longer holds.
                return TestProvider::new("other").wrap_key(data_key);
            }
            self.inner.wrap_key(data_key)
        }
        fn unwrap_key(&self, wrapped: &[u8]) -> Result<Vec<u8>, KeyProviderError> {
            self.inner.unwrap_key(wrapped)
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let inner = TestProvider::new("k");
    let faulty = Arc::new(Faulty {
        inner: inner.clone(),
        broken: AtomicBool::new(false),
    });
    let v = Vault::open(dir.path(), Unlock::Provider(faulty.clone()), &fast()).unwrap();
    v.put("c", "id", &[], b"data").unwrap();
    faulty.broken.store(true, Ordering::SeqCst);
    assert!(v.rotate_data_key().is_err());
    assert_eq!(v.get("c", "id").unwrap().body, b"data");
    drop(v);
    let again = Vault::open(dir.path(), Unlock::Provider(inner), &fast()).unwrap();
    assert_eq!(again.get("c", "id").unwrap().body, b"data");
}

/// The largest record the vault takes (the longest collection name, id and index values, every
/// index entry, the largest body) goes into a backup that imports: the export never writes a
/// chunk its import would refuse as too long.
#[test]
fn the_largest_record_backs_up_and_restores() {
    let dir = tempfile::tempdir().unwrap();
    let v = open_pass(dir.path(), "pass").unwrap();
    // The vault's limits: names 64 bytes, ids 512, 32 index entries of 4,096-byte values.
    let collection = format!("c{}", "x".repeat(63));
    let id = "i".repeat(512);
    let index: Vec<(String, String)> = (0..32)
        .map(|n| (format!("f{n:02}{}", "y".repeat(61)), "v".repeat(4096)))
        .collect();
    let body: Vec<u8> = (0..vault::MAX_BODY_LEN).map(|n| (n % 251) as u8).collect();
    v.put(&collection, &id, &index, &body).unwrap();
    v.put("small", "s", &[], b"after it").unwrap();
    let file = dir.path().join("largest.thudo");
    assert_eq!(v.export_backup(&file, "backup pass").unwrap(), 2);
    let other = tempfile::tempdir().unwrap();
    let t = open_pass(other.path(), "pass").unwrap();
    assert_eq!(t.import_backup(&file, "backup pass").unwrap(), 2);
    let back = t.get(&collection, &id).unwrap();
    assert_eq!((back.index, back.body), (index, body));
    assert_eq!(t.get("small", "s").unwrap().body, b"after it");
}
