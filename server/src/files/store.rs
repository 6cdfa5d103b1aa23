//! Where published files are kept.

use crate::storage::engine::{params, Engine};
use crate::storage::locks::Lock;
use crate::storage::migrations::ConcernSchema;
use crate::storage::{Result, SqlStorage};

/// The files tables.
pub const SCHEMA: ConcernSchema = ConcernSchema {
    concern: "files",
    sqlite: &[
        include_str!("schema/sqlite/0001_files.sql"),
        include_str!("schema/sqlite/0002_file_publishers.sql"),
    ],
    postgres: &[
        include_str!("schema/postgres/0001_files.sql"),
        include_str!("schema/postgres/0002_file_publishers.sql"),
    ],
};

/// A file to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFile {
    /// Its SHA-256, hex.
    pub sha256: String,
    /// Its media type.
    pub media_type: String,
    /// Whose devices may fetch it (`cell:…`).
    pub scope: String,
    /// Who publishes it there (a party organisation).
    pub publisher: String,
    /// Its bytes in chunks.
    pub chunks: Vec<Vec<u8>>,
    /// Its size.
    pub size: i64,
    /// The text extracted from it (empty for none).
    pub text: String,
    /// Now (unix seconds).
    pub now: i64,
}

/// What [`FileStore::withdraw_file`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Withdrawal {
    /// The scope can no longer fetch the file.
    Withdrawn,
    /// The scope could not fetch it.
    NotThere,
    /// Its publisher there is not one the caller may overrule.
    NotYours(String),
}

/// Where published files are kept.
pub trait FileStore: Send + Sync + 'static {
    /// Keeps a file (once per content) and lets `scope` fetch it.
    fn put_file(&self, file: &NewFile) -> Result<()>;
    /// Chunk `index` of file `id`, if one of `scopes` may fetch it.
    fn chunk(&self, id: &str, index: u32, scopes: &[String]) -> Result<Option<Vec<u8>>>;
    /// The text extracted from file `id`, if `scope` may fetch it.
    fn file_text(&self, id: &str, scope: &str) -> Result<Option<String>>;
    /// The size of file `id` in bytes, if `scope` may fetch it.
    fn file_size(&self, id: &str, scope: &str) -> Result<Option<i64>>;
    /// `scope` may no longer fetch file `id`, if `may_withdraw` allows its publisher there
    /// (`None`: published before publishers were kept); a file no scope may fetch any more is
    /// erased, its bytes and text with it.
    fn withdraw_file(
        &self,
        id: &str,
        scope: &str,
        may_withdraw: &dyn Fn(Option<&str>) -> bool,
    ) -> Result<Withdrawal>;
}

impl<E: Engine> FileStore for SqlStorage<E> {
    fn put_file(&self, f: &NewFile) -> Result<()> {
        self.write(|tx| {
            // One at a time with its withdrawal: a file erased as its last scope goes never
            // loses the scope an upload adds meanwhile.
            tx.lock(Lock::File(&f.sha256))?;
            let inserted = tx.exec(
                "INSERT INTO files(sha256, size, media_type, text, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT DO NOTHING",
                params![&f.sha256, f.size, &f.media_type, &f.text, f.now],
            )?;
            if inserted > 0 {
                for (i, chunk) in f.chunks.iter().enumerate() {
                    tx.exec(
                        "INSERT INTO file_chunks(sha256, idx, data) VALUES (?1, ?2, ?3)",
                        params![&f.sha256, i as i64, &chunk[..]],
                    )?;
                }
            } else if !f.text.is_empty() {
                // The same bytes uploaded again: text read this time (the first reading timed
                // out, or the file came as another media type) is kept, never text read before.
                tx.exec(
                    "UPDATE files SET text = ?1 WHERE sha256 = ?2 AND text = ''",
                    params![&f.text, &f.sha256],
                )?;
            }
            tx.exec(
                "INSERT INTO file_scopes(sha256, scope, publisher) VALUES (?1, ?2, ?3)
                 ON CONFLICT (sha256, scope) DO UPDATE SET publisher = excluded.publisher
                 WHERE file_scopes.publisher IS NULL",
                params![&f.sha256, &f.scope, &f.publisher],
            )?;
            Ok(())
        })
    }

    fn chunk(&self, id: &str, index: u32, scopes: &[String]) -> Result<Option<Vec<u8>>> {
        self.read(|tx| {
            let mut allowed = false;
            for scope in scopes {
                allowed |= tx
                    .row(
                        "SELECT 1 FROM file_scopes WHERE sha256 = ?1 AND scope = ?2",
                        params![id, scope],
                    )?
                    .is_some();
            }
            if !allowed {
                return Ok(None);
            }
            tx.row(
                "SELECT data FROM file_chunks WHERE sha256 = ?1 AND idx = ?2",
                params![id, i64::from(index)],
            )?
            .map(|r| r.bytes(0))
            .transpose()
        })
    }

    fn withdraw_file(
        &self,
        id: &str,
        scope: &str,
        may_withdraw: &dyn Fn(Option<&str>) -> bool,
    ) -> Result<Withdrawal> {
        self.write(|tx| {
            tx.lock(Lock::File(id))?;
            let Some(row) = tx.row(
                "SELECT publisher FROM file_scopes WHERE sha256 = ?1 AND scope = ?2",
                params![id, scope],
            )?
            else {
                return Ok(Withdrawal::NotThere);
            };
            let publisher = row.opt_text(0)?;
            if !may_withdraw(publisher.as_deref()) {
                return Ok(Withdrawal::NotYours(publisher.unwrap_or_default()));
            }
            tx.exec(
                "DELETE FROM file_scopes WHERE sha256 = ?1 AND scope = ?2",
                params![id, scope],
            )?;
            let shared = tx
                .row("SELECT 1 FROM file_scopes WHERE sha256 = ?1", params![id])?
                .is_some();
            if !shared {
                tx.exec("DELETE FROM file_chunks WHERE sha256 = ?1", params![id])?;
                tx.exec("DELETE FROM files WHERE sha256 = ?1", params![id])?;
            }
            Ok(Withdrawal::Withdrawn)
        })
    }

    fn file_size(&self, id: &str, scope: &str) -> Result<Option<i64>> {
        self.read(|tx| {
            tx.row(
                "SELECT f.size FROM files f JOIN file_scopes s ON s.sha256 = f.sha256
                 WHERE f.sha256 = ?1 AND s.scope = ?2",
                params![id, scope],
            )?
            .map(|r| r.int(0))
            .transpose()
        })
    }

    fn file_text(&self, id: &str, scope: &str) -> Result<Option<String>> {
        self.read(|tx| {
            tx.row(
                "SELECT f.text FROM files f JOIN file_scopes s ON s.sha256 = f.sha256
                 WHERE f.sha256 = ?1 AND s.scope = ?2",
                params![id, scope],
            )?
            .map(|r| r.text(0))
            .transpose()
        })
    }
}
