//! Every SQLite file opens on one path (`thudo_core::schema`): earlier versions are brought up
//! to date with their data, newer ones are refused untouched. The vault's cases are in
//! `vault.rs`; the backend's in `server/src/storage.rs`.

#![allow(clippy::unwrap_used)] // tests fail by panicking

use rusqlite::Connection;
use thudo_core::handbook::library::{Library, LibraryDocument, LibraryError};
use thudo_core::schema::{self, Schema, SchemaError};

fn doc(id: &str) -> LibraryDocument {
    LibraryDocument {
        id: id.into(),
        number: "21-NQ/TW".into(),
        issuer: "Ban Chấp hành Trung ương".into(),
        issued_on: "2022-06-16".into(),
        kind: "Nghị quyết".into(),
        title: "Nghị quyết về tăng cường củng cố tổ chức cơ sở đảng".into(),
        body: "Nâng cao năng lực lãnh đạo và sức chiến đấu.".into(),
        attachments: vec![],
    }
}

/// A library file holding one document, in a directory that lives as long as the guard.
fn library_with_a_document() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("library.db");
    Library::open(&path)
        .unwrap()
        .upsert(&[doc("nq21")])
        .unwrap();
    (dir, path)
}

#[test]
fn a_library_made_before_versioning_is_adopted_with_its_documents() {
    let (_dir, path) = library_with_a_document();
    // Files made before versioning hold step 1's tables at version 0.
    Connection::open(&path)
        .unwrap()
        .execute_batch(
            "ALTER TABLE documents DROP COLUMN attachments; DROP TABLE vocabulary; DROP TABLE recompose_pending;
             PRAGMA user_version = 0;",
        )
        .unwrap();
    let library = Library::open(&path).unwrap();
    assert!(library.get("nq21").unwrap().is_some());
    assert!(!library.search("cung co to chuc", 5).unwrap().is_empty());
    drop(library);
    let conn = Connection::open(&path).unwrap();
    assert_eq!(schema::version(&conn).unwrap(), 5);
}

#[test]
fn a_library_from_before_typo_correction_gets_its_vocabulary() {
    let (_dir, path) = library_with_a_document();
    {
        // Version 1: no vocabulary table, no attachments.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "ALTER TABLE documents DROP COLUMN attachments; DROP TABLE vocabulary; DROP TABLE recompose_pending;
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let library = Library::open(&path).unwrap();
    assert_eq!(
        library.vocabulary_size().unwrap(),
        23,
        "3 in the number, 11 in the title, 9 more in the body"
    );
    let hits = library.search("cung co to chuk", 5).unwrap();
    assert_eq!(hits.first().map(|h| h.id.as_str()), Some("nq21"));
    assert!(hits[0].score < 0.0, "a corrected match");
    drop(library);
    let conn = Connection::open(&path).unwrap();
    assert_eq!(schema::version(&conn).unwrap(), 5);
}

#[test]
fn a_library_from_a_newer_build_is_refused_untouched() {
    let (_dir, path) = library_with_a_document();
    {
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 7).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    match Library::open(&path) {
        Err(LibraryError::NewerSchema { found, supported }) => {
            assert_eq!((found, supported), (7, 5));
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("a newer library was opened"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

/// The shared path itself: each step in its own transaction, a failing step leaves the file at
/// the version before it, a foreign database is refused.
#[test]
fn each_step_commits_alone_and_a_failing_step_keeps_the_version_before_it() {
    const STEPS: &[&str] = &[
        "CREATE TABLE a(x INTEGER);",
        "INSERT INTO a VALUES (1);",
        "INSERT INTO a VALUES (2); INSERT INTO nowhere VALUES (3);",
    ];
    let failing = Schema {
        name: "test file",
        steps: STEPS,
        adopt_unversioned: false,
    };
    let mut conn = Connection::open_in_memory().unwrap();
    assert!(matches!(
        failing.migrate(&mut conn),
        Err(SchemaError::Sqlite(_))
    ));
    assert_eq!(schema::version(&conn).unwrap(), 2);
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM a", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        rows, 1,
        "the failing step's first statement was rolled back"
    );
    // Fixed, the same file goes on from version 2.
    const FIXED: &[&str] = &[
        "CREATE TABLE a(x INTEGER);",
        "INSERT INTO a VALUES (1);",
        "INSERT INTO a VALUES (2);",
    ];
    let fixed = Schema {
        steps: FIXED,
        ..failing
    };
    assert_eq!(fixed.migrate(&mut conn).unwrap(), 2);
    assert_eq!(schema::version(&conn).unwrap(), 3);

    let mut foreign = Connection::open_in_memory().unwrap();
    foreign.execute_batch("CREATE TABLE theirs(y);").unwrap();
    assert_eq!(
        fixed.migrate(&mut foreign),
        Err(SchemaError::Foreign { name: "test file" })
    );
}
