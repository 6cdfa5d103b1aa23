//! One open-and-migrate path for every SQLite file of the project: the vault, the document
//! library, and the reference backend's SQLite storage.
//!
//! `PRAGMA user_version` holds a file's schema version. Step `n` (1-based) takes a file from
//! version `n - 1` to `n`; each step runs in its own immediate transaction together with its
//! version bump, so a crash leaves the file at one version or the next, never between. A file
//! whose version is newer than the build's is refused before anything is written.

use rusqlite::{Connection, TransactionBehavior};

/// A file's schema: its numbered steps. Append only; never edit a released step.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    /// What the file is, for errors ("thudo vault").
    pub name: &'static str,
    /// The steps, oldest first.
    pub steps: &'static [&'static str],
    /// Files made before versioning (version 0, tables present) are brought up from step 1,
    /// whose statements must then be idempotent (`IF NOT EXISTS`). Without it such a file is
    /// somebody else's database and is refused.
    pub adopt_unversioned: bool,
}

/// Why a file cannot be opened at this build's schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// The file was written by a newer build.
    #[error("the {name} is at schema version {found}, newer than this build's {supported}")]
    Newer {
        /// What the file is.
        name: &'static str,
        /// Its version.
        found: u32,
        /// The newest this build knows.
        supported: u32,
    },
    /// An SQLite database that is not one of ours.
    #[error("the file is an SQLite database but not a {name}")]
    Foreign {
        /// What it should have been.
        name: &'static str,
    },
    /// SQLite failed.
    #[error("{0}")]
    Sqlite(String),
}

impl From<rusqlite::Error> for SchemaError {
    fn from(e: rusqlite::Error) -> Self {
        SchemaError::Sqlite(e.to_string())
    }
}

/// A file's schema version, read without writing.
pub fn version(conn: &Connection) -> Result<u32, SchemaError> {
    Ok(conn.query_row("PRAGMA user_version", [], |row| row.get(0))?)
}

impl Schema {
    /// The version this build writes.
    pub const fn latest(&self) -> u32 {
        self.steps.len() as u32
    }

    /// Refuses a file from a newer build, writing nothing: call it before anything that writes
    /// the file's header (`PRAGMA journal_mode = WAL`). Returns the version found.
    pub fn refuse_newer(&self, conn: &Connection) -> Result<u32, SchemaError> {
        let found = version(conn)?;
        if found > self.latest() {
            return Err(SchemaError::Newer {
                name: self.name,
                found,
                supported: self.latest(),
            });
        }
        Ok(found)
    }

    /// Refuses a file from a newer build (or somebody else's); otherwise brings it up to
    /// [`Schema::latest`]. Returns the version found.
    pub fn migrate(&self, conn: &mut Connection) -> Result<u32, SchemaError> {
        let found = self.refuse_newer(conn)?;
        if found == 0 && !self.adopt_unversioned {
            let tables: u32 =
                conn.query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))?;
            if tables > 0 {
                return Err(SchemaError::Foreign { name: self.name });
            }
        }
        for (step, sql) in self.steps.iter().enumerate().skip(found as usize) {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Re-read inside the write lock: another connection may have migrated meanwhile.
            if version(&tx)? > step as u32 {
                continue;
            }
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", step as u32 + 1)?;
            tx.commit()?;
        }
        Ok(found)
    }
}
