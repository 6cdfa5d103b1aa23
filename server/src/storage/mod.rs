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
pub mod migrations;
mod postgres;
pub mod settings;
mod sqlite;

use std::path::Path;

use ring::digest;

use engine::{Engine, Tx};
use migrations::{ConcernSchema, Dialect};

pub use postgres::{create_database, PostgresEngine, DEFAULT_POOL_SIZE};
pub use sqlite::SqliteEngine;

/// A storage failure. Most are the engine's (a 503 for the client, which retries); text the
/// engine cannot hold is the request's, and the same request would fail again (a 400).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// The engine failed, is unreachable, or holds what it should not: a retry may succeed.
    #[error("storage: {0}")]
    Failed(String),
    /// The engine cannot hold a text the request carried (PostgreSQL: a NUL, or a character
    /// outside the database's encoding; SQLite holds any): retrying the same request cannot
    /// help. Inputs are checked before they reach the engine; this is the net under them.
    #[error("storage refused a value: {0}")]
    ValueRefused(String),
}

impl StorageError {
    /// The engine's own words, for the operator's log.
    pub fn message(&self) -> &str {
        match self {
            StorageError::Failed(m) | StorageError::ValueRefused(m) => m,
        }
    }
}

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
    thudo_core::crypto::fill_random(&mut b)
        .map_err(|_| StorageError::Failed("no randomness".into()))?;
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
    /// Opens (creating) the database at `path` and brings it up to `schema` (the
    /// application's: `thudo_server::SCHEMA`).
    pub fn open(path: &Path, schema: &[ConcernSchema]) -> Result<SqliteStorage> {
        let engine = SqliteEngine::open(path)?;
        migrations::migrate(&engine, schema, Dialect::Sqlite)?;
        Ok(SqlStorage { engine })
    }
}

impl PostgresStorage {
    /// Connects to the database at `url` and brings it up to `schema`.
    pub fn connect(url: &str, schema: &[ConcernSchema]) -> Result<PostgresStorage> {
        let engine = PostgresEngine::open(url)?;
        migrations::migrate(&engine, schema, Dialect::Postgres)?;
        Ok(SqlStorage { engine })
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
