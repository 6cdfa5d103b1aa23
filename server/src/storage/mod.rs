//! The storage engine seam, below every concern. [`SqlStorage`] runs transactions over two
//! engines: [`SqliteStorage`] on one embedded SQLite file (nothing to install; the default) and
//! [`PostgresStorage`] for a deployment of several instances on one PostgreSQL. The SQL is
//! written once against [`engine::Tx`]; each concern (sync, devices, transit) declares its own
//! store trait and implements it for [`SqlStorage`] in its own folder, so this module knows no
//! concern. It holds what they share: the engines, the named [`locks`] and their order, the
//! key-value [`settings`], and the schema's migrations. docs/deployment.md says how the rules
//! stay exact with several instances.

pub mod engine;
pub mod locks;
mod postgres;
pub mod settings;
mod sqlite;

use std::path::Path;

use ring::digest;

use engine::{Engine, Tx};

pub use postgres::{create_database, PostgresEngine, DEFAULT_POOL_SIZE};
pub use sqlite::SqliteEngine;

/// A storage failure (a 503 for the client, which retries).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("storage: {0}")]
pub struct StorageError(pub String);

/// Result of storage calls.
pub type Result<T> = std::result::Result<T, StorageError>;

/// SHA-256, for tokens and citizen IDs (neither is stored in clear).
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, data).as_ref());
    out
}

/// `N` random bytes from the system's generator.
pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    thudo_core::crypto::fill_random(&mut b).map_err(|_| StorageError("no randomness".into()))?;
    Ok(b)
}

/// A wire enum's snake_case code (`not_tapped`, `pay_as_you_go`), as stored.
pub fn code_of(value: &impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Storage on one SQLite file: the embedded default.
pub type SqliteStorage = SqlStorage<SqliteEngine>;
/// Storage on PostgreSQL: for several instances.
pub type PostgresStorage = SqlStorage<PostgresEngine>;

impl SqliteStorage {
    /// Opens (creating) the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteStorage> {
        Ok(SqlStorage {
            engine: SqliteEngine::open(path)?,
        })
    }
}

impl PostgresStorage {
    /// Connects to the database at `url` and brings its schema up to date.
    pub fn connect(url: &str) -> Result<PostgresStorage> {
        Ok(SqlStorage {
            engine: PostgresEngine::open(url)?,
        })
    }
}

/// The stores' rules, written once over an [`Engine`]: every store method is one transaction.
pub struct SqlStorage<E> {
    engine: E,
}

impl<E: Engine> SqlStorage<E> {
    /// Runs `work` as one write transaction (on PostgreSQL perhaps more than once: it must
    /// have no effect outside the transaction).
    pub fn write<T>(&self, mut work: impl FnMut(&mut dyn Tx) -> Result<T>) -> Result<T> {
        self.engine.write(&mut work)
    }

    /// Runs `work` as reads, each seeing every change committed before it.
    pub fn read<T>(&self, mut work: impl FnMut(&mut dyn Tx) -> Result<T>) -> Result<T> {
        self.engine.read(&mut work)
    }

    /// Runs `work` as reads that all see one snapshot.
    pub fn snapshot<T>(&self, mut work: impl FnMut(&mut dyn Tx) -> Result<T>) -> Result<T> {
        self.engine.snapshot(&mut work)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail by panicking
mod migration_tests {
    use super::settings::SettingsStore;
    use super::*;
    use rusqlite::Connection;

    /// A database file as an earlier server left it: base tables only (made before versioning)
    /// or at version 2, with one account in it.
    fn earlier(path: &Path, steps: &[&str], version: u32) {
        let conn = Connection::open(path).unwrap();
        for step in steps {
            conn.execute_batch(step).unwrap();
        }
        conn.execute(
            "INSERT INTO accounts(id, citizen_hash, cell, card_id) VALUES ('a1', x'01', NULL, 7)",
            [],
        )
        .unwrap();
        conn.pragma_update(None, "user_version", version).unwrap();
    }

    #[test]
    fn each_earlier_version_is_brought_up_to_date_with_its_data() {
        let steps = sqlite::SCHEMA.steps;
        for (steps, version) in [(&steps[..1], 0u32), (&steps[..2], 2)] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("server.db");
            earlier(&path, steps, version);
            let storage = SqliteStorage::open(&path).unwrap();
            // The data is there and the newest tables work.
            let deny_version = storage.get_setting("deny_version").unwrap();
            assert_eq!(deny_version.as_deref(), Some(&b"1"[..]), "from {version}");
            storage
                .write(|tx| {
                    tx.exec(
                        "INSERT INTO nonces(hash, expires_at, used_at) VALUES (?1, 1, NULL)",
                        &[engine::Val::Bytes(vec![9; 32].into())],
                    )
                })
                .unwrap();
            drop(storage);
            let conn = Connection::open(&path).unwrap();
            let kept: String = conn
                .query_row("SELECT id FROM accounts", [], |r| r.get(0))
                .unwrap();
            assert_eq!(kept, "a1");
            assert_eq!(
                thudo_core::schema::version(&conn).unwrap(),
                sqlite::SCHEMA.latest()
            );
        }
    }

    #[test]
    fn a_database_from_a_newer_server_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.db");
        drop(SqliteStorage::open(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 9)
            .unwrap();
        let err = SqliteStorage::open(&path).err().unwrap();
        assert!(err.0.contains("newer"), "{err:?}");
    }
}
