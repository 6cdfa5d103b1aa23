//! The small interface the storage logic is written against, so that one body of SQL and one
//! set of rules run on both engines. Statements use `?1`-style placeholders and the SQL both
//! SQLite and PostgreSQL accept (`ON CONFLICT … DO NOTHING`, `CAST(… AS BIGINT)`).

use std::borrow::Cow;

use super::locks::{Held, Lock};
use super::{Result, StorageError};

/// A value bound to a statement or read from a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val<'a> {
    /// SQL NULL.
    Null,
    /// An integer (BIGINT on PostgreSQL; booleans are 0 and 1).
    Int(i64),
    /// Text.
    Text(Cow<'a, str>),
    /// Bytes (BLOB, BYTEA).
    Bytes(Cow<'a, [u8]>),
}

impl From<i64> for Val<'_> {
    fn from(v: i64) -> Self {
        Val::Int(v)
    }
}
impl From<u32> for Val<'_> {
    fn from(v: u32) -> Self {
        Val::Int(i64::from(v))
    }
}
impl From<u16> for Val<'_> {
    fn from(v: u16) -> Self {
        Val::Int(i64::from(v))
    }
}
impl From<u8> for Val<'_> {
    fn from(v: u8) -> Self {
        Val::Int(i64::from(v))
    }
}
impl From<bool> for Val<'_> {
    fn from(v: bool) -> Self {
        Val::Int(i64::from(v))
    }
}
impl<'a> From<&'a str> for Val<'a> {
    fn from(v: &'a str) -> Self {
        Val::Text(Cow::Borrowed(v))
    }
}
impl<'a> From<&'a String> for Val<'a> {
    fn from(v: &'a String) -> Self {
        Val::Text(Cow::Borrowed(v))
    }
}
impl From<String> for Val<'_> {
    fn from(v: String) -> Self {
        Val::Text(Cow::Owned(v))
    }
}
impl<'a> From<&'a [u8]> for Val<'a> {
    fn from(v: &'a [u8]) -> Self {
        Val::Bytes(Cow::Borrowed(v))
    }
}
impl<'a> From<&'a [u8; 32]> for Val<'a> {
    fn from(v: &'a [u8; 32]) -> Self {
        Val::Bytes(Cow::Borrowed(&v[..]))
    }
}
impl From<Vec<u8>> for Val<'_> {
    fn from(v: Vec<u8>) -> Self {
        Val::Bytes(Cow::Owned(v))
    }
}
impl<'a, T: Into<Val<'a>>> From<Option<T>> for Val<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Val::Null, Into::into)
    }
}

/// Card numbers and sequences are u64 on the wire and BIGINT in storage: they are below 2^63
/// (card numbers have 15 digits; sequences count taps), so the cast keeps every value.
pub fn big(v: u64) -> Val<'static> {
    Val::Int(v as i64)
}

/// Statement parameters: `params![a, b]`.
macro_rules! params {
    ($($v:expr),* $(,)?) => {
        &[$($crate::storage::engine::Val::from($v)),*][..]
    };
}
pub(crate) use params;

/// One result row: its columns in order.
#[derive(Debug, Clone)]
pub struct Row(pub Vec<Val<'static>>);

impl Row {
    fn at(&self, i: usize) -> Result<&Val<'static>> {
        self.0
            .get(i)
            .ok_or_else(|| StorageError::Failed(format!("no column {i}")))
    }

    /// An integer column that may be null.
    pub fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        match self.at(i)? {
            Val::Null => Ok(None),
            Val::Int(v) => Ok(Some(*v)),
            other => Err(StorageError::Failed(format!(
                "column {i}: {other:?} is not an integer"
            ))),
        }
    }

    /// An integer column.
    pub fn int(&self, i: usize) -> Result<i64> {
        self.opt_int(i)?
            .ok_or_else(|| StorageError::Failed(format!("column {i} is null")))
    }

    /// A text column that may be null.
    pub fn opt_text(&self, i: usize) -> Result<Option<String>> {
        match self.at(i)? {
            Val::Null => Ok(None),
            Val::Text(v) => Ok(Some(v.to_string())),
            other => Err(StorageError::Failed(format!(
                "column {i}: {other:?} is not text"
            ))),
        }
    }

    /// A text column.
    pub fn text(&self, i: usize) -> Result<String> {
        self.opt_text(i)?
            .ok_or_else(|| StorageError::Failed(format!("column {i} is null")))
    }

    /// A bytes column.
    pub fn bytes(&self, i: usize) -> Result<Vec<u8>> {
        match self.at(i)? {
            Val::Bytes(v) => Ok(v.to_vec()),
            other => Err(StorageError::Failed(format!(
                "column {i}: {other:?} is not bytes"
            ))),
        }
    }

    /// A 32-byte hash column; `None` when it has another length.
    pub fn hash(&self, i: usize) -> Result<Option<[u8; 32]>> {
        Ok(<[u8; 32]>::try_from(self.bytes(i)?).ok())
    }
}

/// One transaction on either engine.
pub trait Tx {
    /// Runs a statement; returns the rows it changed.
    fn exec(&mut self, sql: &str, params: &[Val<'_>]) -> Result<u64>;
    /// Runs a query; returns every row.
    fn rows(&mut self, sql: &str, params: &[Val<'_>]) -> Result<Vec<Row>>;
    /// Runs several statements without parameters (a schema step).
    fn batch(&mut self, sql: &str) -> Result<()>;
    /// Takes the engine's locks on `keys` (ascending, none held yet) until the transaction
    /// ends. SQLite's writers are serial already, so there it does nothing. Stores call
    /// [`Tx::lock`], which checks the order first.
    fn acquire(&mut self, keys: &[i64]) -> Result<()>;
    /// The locks this transaction holds.
    fn held(&mut self) -> &mut Held;

    /// Holds `lock` until the transaction ends: another instance's transaction asking for the
    /// same lock waits. Refused when it ranks below a lock already held ([`Lock`]).
    fn lock(&mut self, lock: Lock<'_>) -> Result<()> {
        self.lock_all(&[lock])
    }
    /// Holds several locks, taken in rank and key order (so two transactions asking for
    /// overlapping sets never wait on each other in a cycle).
    fn lock_all(&mut self, locks: &[Lock<'_>]) -> Result<()> {
        let keys = self.held().admit(locks)?;
        if keys.is_empty() {
            return Ok(());
        }
        self.acquire(&keys)
    }

    /// The first row of a query, if any.
    fn row(&mut self, sql: &str, params: &[Val<'_>]) -> Result<Option<Row>> {
        Ok(self.rows(sql, params)?.into_iter().next())
    }
}

/// A database engine: runs closures as transactions.
pub trait Engine: Send + Sync + 'static {
    /// Runs `work` in one write transaction. On PostgreSQL the work may run more than once
    /// (after a serialization failure or deadlock, which roll everything back), so it must not
    /// have effects outside the transaction.
    fn write<T>(&self, work: &mut dyn FnMut(&mut dyn Tx) -> Result<T>) -> Result<T>;
    /// Runs `work` as reads only (each statement sees every change committed before it).
    fn read<T>(&self, work: &mut dyn FnMut(&mut dyn Tx) -> Result<T>) -> Result<T>;
    /// Runs `work` as reads that all see one snapshot (no writer waits on them).
    fn snapshot<T>(&self, work: &mut dyn FnMut(&mut dyn Tx) -> Result<T>) -> Result<T>;
}

/// `?1` placeholders as PostgreSQL's `$1` (outside string literals).
pub fn dollar_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut in_literal = false;
    while let Some(c) = chars.next() {
        if c == '\'' {
            in_literal = !in_literal;
        }
        if c == '?' && !in_literal && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_rewritten_and_nothing_else() {
        assert_eq!(
            dollar_placeholders("SELECT a FROM t WHERE b = ?1 AND c = ?12 AND d = '?3'"),
            "SELECT a FROM t WHERE b = $1 AND c = $12 AND d = '?3'"
        );
    }
}
