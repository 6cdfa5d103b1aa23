//! The document library: published party documents (public content, stored in clear so SQLite
//! FTS5 can index them), readable offline, with accent-insensitive Vietnamese search.
//!
//! Search folds text (lowercase, no marks, `đ` → `d`) in the index and in the query alike, asks
//! FTS5 for candidates (BM25, title weighted above body), then ranks: the document number typed
//! exactly first, then documents whose title holds every term, then, when the user typed
//! accents, documents that contain the terms with exactly those accents.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};

use super::fold;
use crate::changes::{Apply, Collection, CollectionSpec, OutsideStore, Pulled};
use crate::schema::{Schema, SchemaError};
use crate::vault::{ChangeObserver, ChangeObservers};

/// A published document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LibraryDocument {
    /// Stable id from the backend.
    pub id: String,
    /// Document number, such as `57-NQ/TW`.
    pub number: String,
    /// Issuing body, such as `Bộ Chính trị`.
    pub issuer: String,
    /// Date issued, `YYYY-MM-DD`.
    pub issued_on: String,
    /// Kind: resolution, directive, regulation, conclusion, ...
    pub kind: String,
    /// Title.
    pub title: String,
    /// Full text.
    pub body: String,
}

impl LibraryDocument {
    /// Checks what the library needs: an id of 1-256 bytes and a title.
    pub fn validate(&self) -> Result<(), LibraryError> {
        if self.id.is_empty() || self.id.len() > 256 {
            return Err(LibraryError::Invalid {
                reason: "document id must be 1-256 bytes".into(),
            });
        }
        if self.title.trim().is_empty() {
            return Err(LibraryError::Invalid {
                reason: format!("document {} has no title", self.id),
            });
        }
        Ok(())
    }
}

/// One search result.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SearchHit {
    /// Document id.
    pub id: String,
    /// Document number.
    pub number: String,
    /// Title.
    pub title: String,
    /// Kind.
    pub kind: String,
    /// Date issued.
    pub issued_on: String,
    /// A passage of the body around the first match, terms wrapped in `<mark>`…`</mark>`
    /// (other `<`, `>`, `&` escaped).
    pub snippet: String,
    /// Higher is better.
    pub score: f64,
}

/// Errors of the library.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LibraryError {
    /// A document or query was rejected.
    #[error("invalid input: {reason}")]
    Invalid {
        /// What was wrong.
        reason: String,
    },
    /// SQLite or the file system failed.
    #[error("storage: {reason}")]
    Storage {
        /// The underlying error.
        reason: String,
    },
    /// The library file was written by a newer build; it is left untouched.
    #[error("the library file is at schema {found}, newer than this build's {supported}")]
    NewerSchema {
        /// The file's version.
        found: u32,
        /// The newest this build knows.
        supported: u32,
    },
}

impl From<SchemaError> for LibraryError {
    fn from(e: SchemaError) -> Self {
        match e {
            SchemaError::Newer {
                found, supported, ..
            } => LibraryError::NewerSchema { found, supported },
            other => LibraryError::Storage {
                reason: other.to_string(),
            },
        }
    }
}

impl From<rusqlite::Error> for LibraryError {
    fn from(e: rusqlite::Error) -> Self {
        LibraryError::Storage {
            reason: e.to_string(),
        }
    }
}

/// The library file's schema (see [`crate::schema`]). Step 1 is idempotent: files made before
/// versioning hold exactly these tables.
const SCHEMA: Schema = Schema {
    name: "thudo document library",
    steps: &[STEP_1],
    adopt_unversioned: true,
};

const STEP_1: &str = r#"
CREATE TABLE IF NOT EXISTS documents (
    rowid     INTEGER PRIMARY KEY,
    doc_id    TEXT NOT NULL UNIQUE,
    number    TEXT NOT NULL,
    issuer    TEXT NOT NULL,
    issued_on TEXT NOT NULL,
    kind      TEXT NOT NULL,
    title     TEXT NOT NULL,
    body      TEXT NOT NULL
);
-- Folded text only; the originals live in `documents` (same rowid).
CREATE VIRTUAL TABLE IF NOT EXISTS documents_fts USING fts5(
    number, title, body, content = '', contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 2', prefix = '1 2 3'
);
"#;

const CANDIDATES: usize = 100;
/// Candidates checked for exact accents (each check reads the document's text).
const ACCENT_CHECKS: usize = 40;
const MAX_QUERY_LEN: usize = 256;
const SNIPPET_CHARS: usize = 160;

/// The library's synced collection: documents the backend publishes to a party cell.
pub const SYNCED: CollectionSpec = CollectionSpec::published_to_cell("handbook.documents");

/// `handbook.documents` as a device syncs it: into `library` when the app opened one, else not
/// pulled.
pub fn synced(library: Option<Arc<Library>>) -> Collection {
    Collection {
        spec: SYNCED,
        apply: match library {
            Some(library) => Apply::Outside(library),
            None => Apply::Nowhere,
        },
    }
}

/// Pulled documents are upserted in page order (a put then a delete of the same document
/// leaves it deleted); upserts are idempotent, so a page pulled again after a crash is
/// harmless. A document this version cannot read or that the library refuses is skipped,
/// never blocking the page.
impl OutsideStore for Library {
    fn apply(&self, changes: &[Pulled<'_>]) -> Result<(u64, u64), String> {
        let (mut applied, mut skipped) = (0u64, 0u64);
        let mut pending: Vec<LibraryDocument> = Vec::new();
        let flush = |pending: &mut Vec<LibraryDocument>, applied: &mut u64| {
            if !pending.is_empty() {
                self.upsert(pending).map_err(|e| e.to_string())?;
                *applied += pending.len() as u64;
                pending.clear();
            }
            Ok::<_, String>(())
        };
        for c in changes {
            if c.delete {
                flush(&mut pending, &mut applied)?;
                self.remove(c.record_id).map_err(|e| e.to_string())?;
                applied += 1;
                continue;
            }
            match serde_json::from_value::<LibraryDocument>(c.payload.clone()) {
                Ok(d) if d.validate().is_ok() => pending.push(d),
                _ => skipped += 1,
            }
        }
        flush(&mut pending, &mut applied)?;
        Ok((applied, skipped))
    }
}

/// The document library, in its own SQLite file (public content only: personal data such as
/// bookmarks and notes lives in the vault).
pub struct Library {
    conn: Mutex<Connection>,
    observers: ChangeObservers,
}

impl Library {
    /// Opens (or creates) the library file at `path`.
    pub fn open(path: &Path) -> Result<Library, LibraryError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| LibraryError::Storage {
                reason: e.to_string(),
            })?;
        }
        let mut conn = Connection::open(path)?;
        SCHEMA.refuse_newer(&conn)?;
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
        conn.execute_batch("PRAGMA synchronous = NORMAL;")?;
        SCHEMA.migrate(&mut conn)?;
        Ok(Library {
            conn: Mutex::new(conn),
            observers: ChangeObservers::default(),
        })
    }

    /// Calls `observer` after every committed change of the documents, with
    /// `["handbook.documents"]`; returns the id to stop with [`Library::unobserve`].
    pub fn observe(&self, observer: ChangeObserver) -> u64 {
        self.observers.add(observer)
    }

    /// Stops the observer `id`; returns whether it was there.
    pub fn unobserve(&self, id: u64) -> bool {
        self.observers.remove(id)
    }

    fn changed(&self) {
        self.observers.notify(&[SYNCED.name.to_owned()]);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Inserts or replaces documents, in one transaction.
    pub fn upsert(&self, docs: &[LibraryDocument]) -> Result<(), LibraryError> {
        docs.iter().try_for_each(LibraryDocument::validate)?;
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        for d in docs {
            let old: Option<i64> = tx
                .query_row(
                    "SELECT rowid FROM documents WHERE doc_id = ?1",
                    [&d.id],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(rowid) = old {
                delete_row(&tx, rowid)?;
            }
            tx.execute(
                "INSERT INTO documents (doc_id, number, issuer, issued_on, kind, title, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    d.id,
                    d.number,
                    d.issuer,
                    d.issued_on,
                    d.kind,
                    d.title,
                    d.body
                ],
            )?;
            let rowid = tx.last_insert_rowid();
            tx.execute(
                "INSERT INTO documents_fts (rowid, number, title, body) VALUES (?1, ?2, ?3, ?4)",
                params![
                    rowid,
                    fold::fold(&d.number),
                    fold::fold(&d.title),
                    fold::fold(&d.body)
                ],
            )?;
        }
        tx.commit()?;
        drop(conn);
        log::debug!(documents = docs.len(); "library documents stored");
        if !docs.is_empty() {
            self.changed();
        }
        Ok(())
    }

    /// Removes a document; returns whether it was there.
    pub fn remove(&self, id: &str) -> Result<bool, LibraryError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let rowid: Option<i64> = tx
            .query_row("SELECT rowid FROM documents WHERE doc_id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?;
        if let Some(rowid) = rowid {
            delete_row(&tx, rowid)?;
        }
        tx.commit()?;
        drop(conn);
        if rowid.is_some() {
            self.changed();
        }
        Ok(rowid.is_some())
    }

    /// A document by id.
    pub fn get(&self, id: &str) -> Result<Option<LibraryDocument>, LibraryError> {
        Ok(self
            .lock()
            .query_row(
                "SELECT doc_id, number, issuer, issued_on, kind, title, body FROM documents WHERE doc_id = ?1",
                [id],
                |r| {
                    Ok(LibraryDocument {
                        id: r.get(0)?,
                        number: r.get(1)?,
                        issuer: r.get(2)?,
                        issued_on: r.get(3)?,
                        kind: r.get(4)?,
                        title: r.get(5)?,
                        body: r.get(6)?,
                    })
                },
            )
            .optional()?)
    }

    /// How many documents the library holds.
    pub fn count(&self) -> Result<u64, LibraryError> {
        let n: i64 = self
            .lock()
            .query_row("SELECT count(*) FROM documents", [], |r| r.get(0))?;
        Ok(n.max(0) as u64)
    }

    /// Searches titles, numbers and bodies; see the module docs for the ranking. The last term
    /// matches as a prefix (search as you type). An empty query returns nothing.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<SearchHit>, LibraryError> {
        if query.len() > MAX_QUERY_LEN {
            return Err(LibraryError::Invalid {
                reason: format!("query longer than {MAX_QUERY_LEN} bytes"),
            });
        }
        let folded_terms: Vec<String> = fold::terms(&fold::fold(query));
        if folded_terms.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let prefix_last = !query.ends_with(char::is_whitespace);
        let fts_query = folded_terms
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let star = if prefix_last && i + 1 == folded_terms.len() {
                    "*"
                } else {
                    ""
                };
                // A term typed in Telex or VNI without marks matches the word it means too.
                match fold::typed_without_marks(t) {
                    Some(meant) => format!("(\"{t}\"{star} OR \"{meant}\"{star})"),
                    None => format!("\"{t}\"{star}"),
                }
            })
            .collect::<Vec<_>>()
            .join(" AND ");
        let accented_terms = fold::has_marks(query).then(|| fold::terms(&fold::lower(query)));
        // Snippets mark the words meant by Telex or VNI terms too.
        let snippet_terms: Vec<String> = folded_terms
            .iter()
            .flat_map(|t| std::iter::once(t.clone()).chain(fold::typed_without_marks(t)))
            .collect();
        let folded_number = fold::fold(query.trim());

        let conn = self.lock();
        // Stage 1: number and title matches (short columns, few rows to score).
        let mut candidates = ranked(&conn, &format!("{{number title}} : ({fts_query})"), 100.0)?;
        // Stage 2: bodies, only when titles do not fill the page.
        if candidates.len() < limit {
            let seen: std::collections::HashSet<i64> = candidates.iter().map(|c| c.0).collect();
            candidates.extend(
                ranked(&conn, &fts_query, 0.0)?
                    .into_iter()
                    .filter(|c| !seen.contains(&c.0)),
            );
        }
        if let Some(accented) = &accented_terms {
            // Exact accents: every typed term is a whole word of the title or body as written.
            let mut text =
                conn.prepare_cached("SELECT title || ' ' || body FROM documents WHERE rowid = ?1")?;
            candidates.sort_by(|a, b| b.1.total_cmp(&a.1));
            for c in candidates.iter_mut().take(ACCENT_CHECKS) {
                let original: String = text.query_row([c.0], |r| r.get(0))?;
                if has_all_words(&original.to_lowercase(), accented) {
                    c.1 += 50.0;
                }
            }
        }
        let mut meta = conn.prepare_cached(
            "SELECT doc_id, number, title, kind, issued_on FROM documents WHERE rowid = ?1",
        )?;
        let mut hits = Vec::with_capacity(candidates.len());
        for (rowid, score) in candidates {
            let mut hit = meta.query_row([rowid], |r| {
                Ok(SearchHit {
                    id: r.get(0)?,
                    number: r.get(1)?,
                    title: r.get(2)?,
                    kind: r.get(3)?,
                    issued_on: r.get(4)?,
                    snippet: String::new(),
                    score,
                })
            })?;
            if !folded_number.is_empty() && fold::fold(&hit.number) == folded_number {
                hit.score += 1000.0;
            }
            hits.push((rowid, hit));
        }
        hits.sort_by(|a, b| {
            b.1.score
                .total_cmp(&a.1.score)
                .then_with(|| a.1.id.cmp(&b.1.id))
        });
        hits.truncate(limit);
        let mut body = conn.prepare_cached("SELECT body FROM documents WHERE rowid = ?1")?;
        hits.into_iter()
            .map(|(rowid, mut hit)| {
                let text: String = body.query_row([rowid], |r| r.get(0))?;
                hit.snippet = snippet(&text, &snippet_terms);
                Ok(hit)
            })
            .collect()
    }
}

/// Up to 100 (rowid, score) matches of an FTS5 query, best first; `bonus` is added to each.
fn ranked(conn: &Connection, fts_query: &str, bonus: f64) -> Result<Vec<(i64, f64)>, LibraryError> {
    let sql = "SELECT rowid, bm25(documents_fts, 20.0, 8.0, 1.0) FROM documents_fts
         WHERE documents_fts MATCH ?1 ORDER BY bm25(documents_fts, 20.0, 8.0, 1.0) LIMIT ?2";
    let mut rows: Vec<(i64, f64)> = conn
        .prepare_cached(sql)?
        .query_map(params![fts_query, CANDIDATES as i64], |r| {
            Ok((r.get::<_, i64>(0)?, bonus - r.get::<_, f64>(1)?))
        })?
        .collect::<Result<_, _>>()?;
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(rows)
}

/// Whether every term occurs in `text` as a whole word (not inside a longer word).
fn has_all_words(text: &str, terms: &[String]) -> bool {
    terms.iter().all(|term| {
        text.match_indices(term.as_str()).any(|(at, _)| {
            let before = text[..at].chars().next_back();
            let after = text[at + term.len()..].chars().next();
            !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
        })
    })
}

fn delete_row(tx: &Connection, rowid: i64) -> Result<(), LibraryError> {
    tx.execute("DELETE FROM documents_fts WHERE rowid = ?1", [rowid])?;
    tx.execute("DELETE FROM documents WHERE rowid = ?1", [rowid])?;
    Ok(())
}

fn escape(out: &mut String, c: char) {
    match c {
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        '&' => out.push_str("&amp;"),
        c => out.push(c),
    }
}

/// A window of the original body around the first matching word, with every matching word
/// marked. Works on characters: folding keeps one character per character.
fn snippet(body: &str, folded_terms: &[String]) -> String {
    let chars: Vec<char> = body.chars().collect();
    let folded: Vec<char> = chars.iter().map(|&c| fold::fold_char(c)).collect();
    // Word spans (start, end) in characters, and whether each matches a term (prefix match).
    let mut words = Vec::new();
    let mut i = 0;
    while i < folded.len() {
        if folded[i].is_alphanumeric() {
            let start = i;
            while i < folded.len() && folded[i].is_alphanumeric() {
                i += 1;
            }
            let word: String = folded[start..i].iter().collect();
            let hit = folded_terms.iter().any(|t| word.starts_with(t.as_str()));
            words.push((start, i, hit));
        } else {
            i += 1;
        }
    }
    let first = words.iter().find(|w| w.2).map(|w| w.0).unwrap_or(0);
    let start = first.saturating_sub(SNIPPET_CHARS / 3);
    // Begin at a word boundary.
    let start = words
        .iter()
        .map(|w| w.0)
        .find(|&s| s >= start)
        .unwrap_or(start)
        .min(first);
    let end = (start + SNIPPET_CHARS).min(chars.len());
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    let mut pos = start;
    for &(ws, we, _) in words.iter().filter(|w| w.2 && w.0 >= start && w.1 <= end) {
        chars[pos..ws].iter().for_each(|&c| escape(&mut out, c));
        out.push_str("<mark>");
        chars[ws..we].iter().for_each(|&c| escape(&mut out, c));
        out.push_str("</mark>");
        pos = we;
    }
    chars[pos..end].iter().for_each(|&c| escape(&mut out, c));
    if end < chars.len() {
        out.push('…');
    }
    out
}
