//! Each concern's schema, in numbered steps per engine, and the ledger that applies them.
//!
//! A concern (devices, sync, transit, the settings here) declares a [`ConcernSchema`] beside
//! its store; the application lists them in dependency order and the engines apply what a
//! database lacks when they open it. Each step runs in its own transaction with its ledger row
//! (`schema_steps(concern, step)`), under the migrations lock, so instances starting at once
//! apply it once and a crash leaves a step applied or not, never half. A database whose ledger
//! names a concern or a step this build does not know is from a newer build: refused before
//! anything is written.
//!
//! Databases made before the concerns had ledgers went through one numbered list per engine
//! (`legacy/`, frozen): they are brought to its end, and each concern's first step, which
//! holds exactly the tables that list made, is then recorded as applied.

use super::engine::{params, Engine, Tx};
use super::locks::Lock;
use super::{Result, StorageError};

/// One concern's schema: its steps per engine, oldest first. Append only; never edit a
/// released step. Both engines have the same number of steps.
#[derive(Debug, Clone, Copy)]
pub struct ConcernSchema {
    /// The concern's name in the ledger.
    pub concern: &'static str,
    /// The steps on SQLite.
    pub sqlite: &'static [&'static str],
    /// The steps on PostgreSQL.
    pub postgres: &'static [&'static str],
}

/// Which SQL an engine speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// The concerns whose first step the legacy list made (a concern added since starts from its
/// own first step on a legacy database).
const LEGACY_CONCERNS: &[&str] = &["settings", "devices", "sync", "transit"];

const LEDGER: &str = "CREATE TABLE IF NOT EXISTS schema_steps(
    concern TEXT NOT NULL, step BIGINT NOT NULL, applied_at BIGINT NOT NULL,
    PRIMARY KEY(concern, step))";

/// Applies every step `schema` holds that the database lacks. `adopt`: the database was made
/// by the legacy list, whose tables are every concern's first step.
pub(crate) fn migrate<E: Engine>(
    engine: &E,
    schema: &[ConcernSchema],
    dialect: Dialect,
) -> Result<()> {
    engine.write(&mut |tx: &mut dyn Tx| {
        tx.lock(Lock::Migrations)?;
        tx.exec(LEDGER, &[])?;
        let applied = ledger(tx)?;
        for (concern, step) in &applied {
            let known = schema
                .iter()
                .find(|s| s.concern == concern)
                .map_or(0, |s| steps(s, dialect).len() as i64);
            if *step > known {
                return Err(StorageError::Failed(format!(
                    "the thudo backend database holds step {step} of {concern}, newer than this build's {known}"
                )));
            }
        }
        // A legacy database: its tables are every concern's first step.
        let legacy = applied.is_empty() && table_exists(tx, dialect, "accounts")?;
        if legacy {
            for s in schema.iter().filter(|s| LEGACY_CONCERNS.contains(&s.concern)) {
                record(tx, s.concern, 1)?;
            }
        }
        Ok(())
    })?;
    for s in schema {
        for (i, sql) in steps(s, dialect).iter().enumerate() {
            let step = i as i64 + 1;
            engine.write(&mut |tx: &mut dyn Tx| {
                tx.lock(Lock::Migrations)?;
                // Read under the lock: another instance may have applied it meanwhile.
                let done = tx
                    .row(
                        "SELECT 1 FROM schema_steps WHERE concern = ?1 AND step = ?2",
                        params![s.concern, step],
                    )?
                    .is_some();
                if !done {
                    tx.batch(sql)?;
                    record(tx, s.concern, step)?;
                }
                Ok(())
            })?;
        }
    }
    Ok(())
}

fn steps(s: &ConcernSchema, dialect: Dialect) -> &'static [&'static str] {
    match dialect {
        Dialect::Sqlite => s.sqlite,
        Dialect::Postgres => s.postgres,
    }
}

fn ledger(tx: &mut dyn Tx) -> Result<Vec<(String, i64)>> {
    tx.rows(
        "SELECT concern, CAST(MAX(step) AS BIGINT) FROM schema_steps GROUP BY concern",
        &[],
    )?
    .iter()
    .map(|r| Ok((r.text(0)?, r.int(1)?)))
    .collect()
}

fn record(tx: &mut dyn Tx, concern: &str, step: i64) -> Result<()> {
    tx.exec(
        "INSERT INTO schema_steps(concern, step, applied_at) VALUES (?1, ?2, ?3)",
        params![concern, step, chrono::Utc::now().timestamp()],
    )?;
    Ok(())
}

fn table_exists(tx: &mut dyn Tx, dialect: Dialect, table: &str) -> Result<bool> {
    let sql = match dialect {
        Dialect::Sqlite => "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        Dialect::Postgres => {
            "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?1"
        }
    };
    Ok(tx.row(sql, params![table])?.is_some())
}
