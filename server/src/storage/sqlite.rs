//! The embedded engine: one SQLite file (WAL, full sync) behind one lock. Writers are serial,
//! so every transaction sees every earlier one and named locks are not needed.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Mutex;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, TransactionBehavior};
use thudo_core::schema::Schema;

use super::engine::{Engine, Row, Tx, Val};
use super::locks::Held;
use super::{Result, StorageError};

impl From<rusqlite::Error> for StorageError {
    fn from(e: rusqlite::Error) -> Self {
        // SQLite stores any text a request can carry: its errors are its own.
        StorageError::Failed(e.to_string())
    }
}

/// The backend's legacy SQLite list, on the path every SQLite file of the project shares
/// (`thudo_core::schema`), frozen: files made before the concerns kept their own steps are
/// brought to its end; its last step makes the concerns' ledger ([`super::migrations`]), and
/// a new file starts there. Step 1 (the base tables) is idempotent: files made before
/// versioning hold exactly those tables.
pub(crate) const LEGACY: Schema = Schema {
    name: "thudo backend database",
    steps: &[
        include_str!("legacy/sqlite/0001_base.sql"),
        include_str!("legacy/sqlite/0002_trust.sql"),
        include_str!("legacy/sqlite/0003_nonces.sql"),
        include_str!("legacy/sqlite/0004_inspections.sql"),
        include_str!("legacy/sqlite/0005_journeys.sql"),
        include_str!("legacy/sqlite/0006_concern_ledgers.sql"),
    ],
    adopt_unversioned: true,
};

/// SQLite behind one lock.
pub struct SqliteEngine {
    conn: Mutex<Connection>,
}

impl SqliteEngine {
    /// Opens (creating) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<SqliteEngine> {
        // Processes opening one new file at once can meet SQLite's deadlock guard (a lock
        // refused at once, the busy handler not asked): the opening is tried again.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::open_once(path) {
                Err(e) if attempt < 50 && e.message().contains("locked") => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    fn open_once(path: &Path) -> Result<SqliteEngine> {
        let mut conn = Connection::open(path)?;
        // Before anything that locks: other processes may be opening the same file.
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        LEGACY
            .refuse_newer(&conn)
            .map_err(|e| StorageError::Failed(e.to_string()))?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;",
        )?;
        {
            // A new file skips the legacy list: the concerns' steps make its tables.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let tables: u32 =
                tx.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?;
            if tables == 0 && thudo_core::schema::version(&tx).ok() == Some(0) {
                tx.execute_batch(LEGACY.steps[LEGACY.steps.len() - 1])?;
                tx.pragma_update(None, "user_version", LEGACY.latest())?;
            }
            tx.commit()?;
        }
        LEGACY
            .migrate(&mut conn)
            .map_err(|e| StorageError::Failed(e.to_string()))?;
        Ok(SqliteEngine {
            conn: Mutex::new(conn),
        })
    }
}

impl rusqlite::ToSql for Val<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Val::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Val::Int(v) => ToSqlOutput::Borrowed(ValueRef::Integer(*v)),
            Val::Text(v) => ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes())),
            Val::Bytes(v) => ToSqlOutput::Borrowed(ValueRef::Blob(v)),
        })
    }
}

struct SqliteTx<'c>(&'c Connection, Held);

impl Tx for SqliteTx<'_> {
    fn exec(&mut self, sql: &str, params: &[Val<'_>]) -> Result<u64> {
        let mut stmt = self.0.prepare_cached(sql)?;
        Ok(stmt.execute(rusqlite::params_from_iter(params))? as u64)
    }

    fn rows(&mut self, sql: &str, params: &[Val<'_>]) -> Result<Vec<Row>> {
        let mut stmt = self.0.prepare_cached(sql)?;
        let width = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut row = Vec::with_capacity(width);
            for i in 0..width {
                row.push(match r.get_ref(i)? {
                    ValueRef::Null => Val::Null,
                    ValueRef::Integer(v) => Val::Int(v),
                    ValueRef::Real(v) => Val::Int(v as i64),
                    ValueRef::Text(v) => {
                        Val::Text(Cow::Owned(String::from_utf8_lossy(v).into_owned()))
                    }
                    ValueRef::Blob(v) => Val::Bytes(Cow::Owned(v.to_vec())),
                });
            }
            out.push(Row(row));
        }
        Ok(out)
    }

    fn batch(&mut self, sql: &str) -> Result<()> {
        Ok(self.0.execute_batch(sql)?)
    }

    fn acquire(&mut self, _keys: &[i64]) -> Result<()> {
        Ok(())
    }

    fn held(&mut self) -> &mut Held {
        &mut self.1
    }
}

impl Engine for SqliteEngine {
    fn write<T>(&self, work: &mut dyn FnMut(&mut dyn Tx) -> Result<T>) -> Result<T> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = work(&mut SqliteTx(&tx, Held::default()))?;
        tx.commit()?;
        Ok(out)
    }

    fn read<T>(&self, work: &mut dyn FnMut(&mut dyn Tx) -> Result<T>) -> Result<T> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        work(&mut SqliteTx(&conn, Held::default()))
    }

    fn snapshot<T>(&self, work: &mut dyn FnMut(&mut dyn Tx) -> Result<T>) -> Result<T> {
        // One connection behind one lock; another process's writers wait for the WAL, not
        // for this read transaction.
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
        let out = work(&mut SqliteTx(&tx, Held::default()))?;
        tx.commit()?;
        Ok(out)
    }
}
