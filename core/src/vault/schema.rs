//! The vault's SQL schema and its numbered migrations.
//!
//! `PRAGMA user_version` holds the schema version. Each migration runs in its own transaction
//! together with its version bump, so a crash leaves the store at one version or the next, never
//! between. A store whose version is newer than [`LATEST`] is refused before anything is written.

use rusqlite::{Connection, TransactionBehavior};

use super::error::{Result, VaultError};

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

/// The schema version this library writes.
pub const LATEST: u32 = MIGRATIONS.len() as u32;

/// Reads the schema version without writing anything.
pub(crate) fn version(conn: &Connection) -> Result<u32> {
    Ok(conn.query_row("PRAGMA user_version", [], |row| row.get(0))?)
}

/// Refuses a store from a newer library; otherwise brings it up to [`LATEST`].
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    let found = version(conn)?;
    if found > LATEST {
        return Err(VaultError::NewerSchema {
            found,
            supported: LATEST,
        });
    }
    if found == 0 {
        // A fresh file is empty; an SQLite database of somebody else's is not ours to write into.
        let tables: u32 =
            conn.query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))?;
        if tables > 0 {
            return Err(VaultError::CorruptStore {
                reason: "the file is an SQLite database but not a thudo vault".into(),
            });
        }
    }
    for (step, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Re-read inside the write lock: another connection may have migrated meanwhile.
        if version(&tx)? > step as u32 {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", step as u32 + 1)?;
        tx.commit()?;
    }
    Ok(())
}
