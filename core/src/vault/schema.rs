//! The vault's SQL schema and its numbered migrations.
//!
//! Opened and migrated on the path every SQLite file of the project shares ([`crate::schema`]).

use rusqlite::Connection;

use super::error::{Result, VaultError};
use crate::schema::{Schema, SchemaError};

/// Migration `n` (1-based) takes the store from version `n - 1` to `n`. Append only; never edit
/// a released step.
const MIGRATIONS: &[&str] = &[
    // 1: records, blind index, key slots, metadata.
    r#"
    -- Rowid table: envelopes append in insertion order; only the small unique index on the
    -- (random-looking) id hash takes random inserts. Keying the table by id hash made bulk
    -- writes 7x slower than plain SQLite (docs/performance.md).
    CREATE TABLE records (
        record_id  INTEGER PRIMARY KEY,
        collection TEXT NOT NULL,
        id_hash    BLOB NOT NULL,   -- HMAC of the record id under the collection's id key
        envelope   BLOB NOT NULL,   -- AEAD envelope of (id, index values, body)
        UNIQUE (collection, id_hash)
    );
    CREATE TABLE record_index (
        collection TEXT NOT NULL,
        field      TEXT NOT NULL,
        value_hash BLOB NOT NULL,   -- HMAC of (field, value) under the collection's index key
        record_id  INTEGER NOT NULL,
        PRIMARY KEY (collection, field, value_hash, record_id)
    ) WITHOUT ROWID;
    CREATE INDEX record_index_by_record ON record_index (record_id);
    CREATE TABLE key_slots (
        slot    TEXT PRIMARY KEY,   -- 'passphrase' or 'provider'
        key_id  TEXT NOT NULL,      -- the provider's key id, or 'pbkdf2-sha256'
        params  BLOB NOT NULL,      -- salt and iterations for a passphrase slot
        wrapped BLOB NOT NULL       -- the data key, wrapped
    );
    CREATE TABLE vault_meta (
        name  TEXT PRIMARY KEY,
        value BLOB NOT NULL
    );
    "#,
];

/// The vault's schema (see [`crate::schema`]).
const SCHEMA: Schema = Schema {
    name: "thudo vault",
    steps: MIGRATIONS,
    adopt_unversioned: false,
};

/// The schema version this library writes.
pub const LATEST: u32 = SCHEMA.latest();

/// Reads the schema version without writing anything.
pub(crate) fn version(conn: &Connection) -> Result<u32> {
    Ok(conn.query_row("PRAGMA user_version", [], |row| row.get(0))?)
}

/// Refuses a store from a newer library; otherwise brings it up to [`LATEST`].
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    SCHEMA.migrate(conn).map_err(|e| match e {
        SchemaError::Newer {
            found, supported, ..
        } => VaultError::NewerSchema { found, supported },
        SchemaError::Foreign { .. } => VaultError::CorruptStore {
            reason: "the file is an SQLite database but not a thudo vault".into(),
        },
        SchemaError::Sqlite(reason) => VaultError::Io { reason },
    })?;
    Ok(())
}
