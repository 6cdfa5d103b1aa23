//! The document library: published party documents (public content, stored in clear so SQLite
//! FTS5 can index them), readable offline, with accent-insensitive Vietnamese search.
//!
//! Documents and queries are first composed (Unicode NFC): text typed with a "tổ hợp" keyboard,
//! pasted from a Mac or extracted from a PDF often carries its accents as separate marks, and
//! composed text folds one character to one (`fold`).
//!
//! Search folds text (lowercase, no marks, `đ` → `d`) in the index and in the query alike, asks
//! FTS5 for candidates (BM25, title weighted above body), then ranks: the document number typed
//! exactly first, then documents whose title holds every term, then, when the user typed
//! accents, documents that contain the terms with exactly those accents.
//!
//! A term no document holds (neither as typed nor read as Telex or VNI) is taken for a typo:
//! it is replaced by the library's words within one edit of it (two for words of eight or more
//! letters; a missing, extra, wrong or swapped letter each count one), most common first, and
//! those matches rank below every exact one. The words come from `vocabulary`, kept with the
//! documents in the same transactions.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};
use unicode_normalization::UnicodeNormalization;

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
    /// Full text (for a published PDF, the text the backend extracted from it).
    pub body: String,
    /// Files published with it (the resolution's PDF, annexes), fetched when opened.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<crate::attachments::AttachmentRef>,
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
        if self.attachments.len() > MAX_ATTACHMENTS {
            return Err(LibraryError::Invalid {
                reason: format!("document {} has more than {MAX_ATTACHMENTS} files", self.id),
            });
        }
        for a in &self.attachments {
            a.validate().map_err(|e| LibraryError::Invalid {
                reason: format!("document {}: {e}", self.id),
            })?;
        }
        Ok(())
    }

    /// The document with its text composed (NFC), as the library stores and indexes it.
    fn composed(&self) -> LibraryDocument {
        let nfc = |text: &str| text.nfc().collect::<String>();
        LibraryDocument {
            number: nfc(&self.number),
            issuer: nfc(&self.issuer),
            kind: nfc(&self.kind),
            title: nfc(&self.title),
            body: nfc(&self.body),
            ..self.clone()
        }
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
    steps: &[STEP_1, STEP_2, STEP_3, STEP_4, STEP_5],
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

/// Every folded word of the library with the number of documents holding it: the words a typo
/// is corrected to. Filled from the documents on open when empty (files from before step 2).
const STEP_2: &str = r#"
CREATE TABLE IF NOT EXISTS vocabulary (
    term TEXT PRIMARY KEY,
    docs INTEGER NOT NULL
) WITHOUT ROWID;
"#;

/// The files published with each document (JSON list of references).
const STEP_3: &str = "ALTER TABLE documents ADD COLUMN attachments TEXT NOT NULL DEFAULT '[]';";

/// Documents stored before text was composed (NFC) and `Ð` folded are stored and indexed again
/// once ([`Library::recompose`], on open); the row marks that work as not done yet.
const STEP_4: &str =
    "CREATE TABLE IF NOT EXISTS recompose_pending (one INTEGER); INSERT INTO recompose_pending VALUES (1);";

/// Documents indexed before invisible format characters (a soft hyphen, a zero-width space)
/// were read as part of their word are indexed again once.
const STEP_5: &str = "INSERT INTO recompose_pending VALUES (1);";

const CANDIDATES: usize = 100;
/// Files one document may carry.
pub const MAX_ATTACHMENTS: usize = 20;
/// Corrections tried per mistyped term.
const MAX_CORRECTIONS: usize = 8;
/// How far below exact matches a match through a corrected typo ranks.
const TYPO_PENALTY: f64 = 10_000.0;
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
    /// The vocabulary by length, read once after each change, for typo correction.
    vocabulary: Mutex<Option<Arc<Vocabulary>>>,
}

/// The library's words bucketed by length in characters, each with its document count and
/// its letter mask.
struct Vocabulary {
    by_len: Vec<Vec<(String, i64, u32)>>,
}

/// Which letters a word holds, one bit each (other characters share the top bits). One edit
/// changes at most two bits, so words whose masks differ in more than `2 * max` bits are more
/// than `max` edits apart and need no distance computed.
fn letter_mask(word: &str) -> u32 {
    word.chars().fold(0, |mask, c| {
        let bit = match c {
            'a'..='z' => c as u32 - 'a' as u32,
            _ => 26 + c as u32 % 6,
        };
        mask | 1 << bit
    })
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
        fill_vocabulary(&mut conn)?;
        let library = Library {
            conn: Mutex::new(conn),
            observers: ChangeObservers::default(),
            vocabulary: Mutex::new(None),
        };
        library.recompose()?;
        Ok(library)
    }

    /// Stores and indexes again, once, the documents of a file made before documents were
    /// composed (NFC), `Ð` folded and format characters read inside words. A crash before the mark is cleared only repeats the work.
    fn recompose(&self) -> Result<(), LibraryError> {
        let pending: bool =
            self.lock()
                .query_row("SELECT EXISTS (SELECT 1 FROM recompose_pending)", [], |r| {
                    r.get(0)
                })?;
        if !pending {
            return Ok(());
        }
        let ids: Vec<String> = {
            let conn = self.lock();
            let mut rows = conn.prepare("SELECT doc_id, number, title, body FROM documents")?;
            let stale = |text: &str| {
                !unicode_normalization::is_nfc(text)
                    || text.contains(['Ð', 'ð'])
                    || text.chars().any(fold::is_format)
            };
            let rows = rows.query_map([], |r| {
                let (id, number, title, body): (String, String, String, String) =
                    (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
                Ok((stale(&number) || stale(&title) || stale(&body)).then_some(id))
            })?;
            rows.filter_map(Result::transpose)
                .collect::<Result<_, _>>()?
        };
        // A document this version would refuse stays as it was, never blocking the open.
        let documents: Vec<LibraryDocument> = ids
            .iter()
            .map(|id| self.get(id))
            .filter_map(Result::transpose)
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter(|d| d.validate().is_ok())
            .collect();
        self.upsert(&documents)?;
        {
            // The words are counted afresh: the old file's were counted with the old folding.
            let mut conn = self.lock();
            conn.execute("DELETE FROM vocabulary", [])?;
            fill_vocabulary(&mut conn)?;
            conn.execute("DELETE FROM recompose_pending", [])?;
        }
        *self.vocabulary.lock().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(())
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
        *self.vocabulary.lock().unwrap_or_else(|e| e.into_inner()) = None;
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
        let mut counts = HashMap::new();
        for d in docs {
            let d = &d.composed();
            let old: Option<i64> = tx
                .query_row(
                    "SELECT rowid FROM documents WHERE doc_id = ?1",
                    [&d.id],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(rowid) = old {
                delete_row(&tx, rowid, &mut counts)?;
            }
            tx.execute(
                "INSERT INTO documents (doc_id, number, issuer, issued_on, kind, title, body, attachments)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    d.id,
                    d.number,
                    d.issuer,
                    d.issued_on,
                    d.kind,
                    d.title,
                    d.body,
                    serde_json::to_string(&d.attachments).unwrap_or_else(|_| "[]".into())
                ],
            )?;
            let rowid = tx.last_insert_rowid();
            for term in words_of(&d.number, &d.title, &d.body) {
                *counts.entry(term).or_insert(0) += 1;
            }
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
        count_words(&tx, counts)?;
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
            let mut counts = HashMap::new();
            delete_row(&tx, rowid, &mut counts)?;
            count_words(&tx, counts)?;
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
                "SELECT doc_id, number, issuer, issued_on, kind, title, body, attachments FROM documents WHERE doc_id = ?1",
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
                        // Written by `upsert` from the same type: unreadable only if altered.
                        attachments: serde_json::from_str(&r.get::<_, String>(7)?)
                            .unwrap_or_default(),
                    })
                },
            )
            .optional()?)
    }

    /// How many distinct words (folded) the library holds: the words typos are corrected to.
    pub fn vocabulary_size(&self) -> Result<u64, LibraryError> {
        let n: i64 = self
            .lock()
            .query_row("SELECT count(*) FROM vocabulary", [], |r| r.get(0))?;
        Ok(n.max(0) as u64)
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
        // Measured composed (a query pasted decomposed is as long as typed), after a bound on
        // what is composed at all.
        let too_long = || LibraryError::Invalid {
            reason: format!("query longer than {MAX_QUERY_LEN} bytes"),
        };
        if query.len() > 4 * MAX_QUERY_LEN {
            return Err(too_long());
        }
        let query = &query
            .nfc()
            .filter(|c| !fold::is_format(*c))
            .collect::<String>();
        if query.len() > MAX_QUERY_LEN {
            return Err(too_long());
        }
        let folded_terms: Vec<String> = fold::terms(&fold::fold(query));
        if folded_terms.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let prefix_last = !query.ends_with(char::is_whitespace);
        let is_prefix = |i: usize| prefix_last && i + 1 == folded_terms.len();
        let clause = |i: usize, t: &String| {
            let star = if is_prefix(i) { "*" } else { "" };
            // A term typed in Telex or VNI without marks matches the word it means too.
            match fold::typed_without_marks(t) {
                Some(meant) => format!("(\"{t}\"{star} OR \"{meant}\"{star})"),
                None => format!("\"{t}\"{star}"),
            }
        };
        let fts_query = folded_terms
            .iter()
            .enumerate()
            .map(|(i, t)| clause(i, t))
            .collect::<Vec<_>>()
            .join(" AND ");
        // The terms typed with marks (one typed without says nothing of accents), the last
        // one still a prefix while typing.
        let accented_terms = fold::has_marks(query).then(|| {
            let typed = fold::terms(&fold::tone_on_second_vowel(&fold::lower(query)));
            let last = typed.len().saturating_sub(1);
            typed
                .into_iter()
                .enumerate()
                .filter(|(_, t)| fold::has_marks(t))
                .map(|(i, t)| (t, prefix_last && i == last))
                .collect::<Vec<(String, bool)>>()
        });
        // Snippets mark the words meant by Telex or VNI terms too: whole words, but for the
        // term still being typed.
        let mut snippet_terms: Vec<String> = folded_terms
            .iter()
            .flat_map(|t| std::iter::once(t.clone()).chain(fold::typed_without_marks(t)))
            .collect();
        let prefix_terms: Vec<String> = folded_terms
            .last()
            .filter(|_| prefix_last)
            .map(|t| {
                std::iter::once(t.clone())
                    .chain(fold::typed_without_marks(t))
                    .collect()
            })
            .unwrap_or_default();
        let folded_number = fold::fold(query.trim());

        let conn = self.lock();
        let mut candidates = Vec::new();
        two_stages(&conn, &fts_query, limit, 0.0, &mut candidates)?;
        // Stage 3: typos, when exact matches do not fill the page.
        if candidates.len() < limit {
            let corrected = self.corrections(&conn, &folded_terms, prefix_last)?;
            if let Some(corrected) = corrected {
                let fuzzy_query = folded_terms
                    .iter()
                    .zip(&corrected)
                    .enumerate()
                    .map(|(i, (t, fixes))| match fixes {
                        None => clause(i, t),
                        Some(fixes) => format!(
                            "({})",
                            fixes
                                .iter()
                                .map(|f| format!("\"{f}\""))
                                .collect::<Vec<_>>()
                                .join(" OR ")
                        ),
                    })
                    .collect::<Vec<_>>()
                    .join(" AND ");
                two_stages(&conn, &fuzzy_query, limit, -TYPO_PENALTY, &mut candidates)?;
                snippet_terms.extend(corrected.into_iter().flatten().flatten());
            }
        }
        if let Some(accented) = &accented_terms {
            // Exact accents: every typed term is a whole word of the title or body as written.
            let mut text =
                conn.prepare_cached("SELECT title || ' ' || body FROM documents WHERE rowid = ?1")?;
            candidates.sort_by(|a, b| b.1.total_cmp(&a.1));
            for c in candidates.iter_mut().take(ACCENT_CHECKS) {
                let original: String = text.query_row([c.0], |r| r.get(0))?;
                // Old and new tone placement ("hòa", "hoà") count as the same accents.
                let original: String = original.chars().filter(|c| !fold::is_format(*c)).collect();
                let original = fold::tone_on_second_vowel(&original.to_lowercase());
                if has_all_words(&original, accented) {
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
                hit.snippet = snippet(&text, &snippet_terms, &prefix_terms);
                Ok(hit)
            })
            .collect()
    }
}

impl Library {
    /// For each term, the words it is corrected to when no document holds it (`None` for a
    /// term found as typed); `None` overall when no term needs correcting or one cannot be.
    #[allow(clippy::type_complexity)]
    fn corrections(
        &self,
        conn: &Connection,
        terms: &[String],
        prefix_last: bool,
    ) -> Result<Option<Vec<Option<Vec<String>>>>, LibraryError> {
        let mut exact = conn.prepare_cached("SELECT 1 FROM vocabulary WHERE term = ?1")?;
        let mut first_after = conn
            .prepare_cached("SELECT term FROM vocabulary WHERE term >= ?1 ORDER BY term LIMIT 1")?;
        let mut known = |word: &str, prefix: bool| -> Result<bool, LibraryError> {
            Ok(if prefix {
                first_after
                    .query_row([word], |r| r.get::<_, String>(0))
                    .optional()?
                    .is_some_and(|t| t.starts_with(word))
            } else {
                exact.exists([word])?
            })
        };
        let mut out = Vec::with_capacity(terms.len());
        let mut any = false;
        for (i, term) in terms.iter().enumerate() {
            let prefix = prefix_last && i + 1 == terms.len();
            let reading = fold::typed_without_marks(term);
            if known(term, prefix)? || reading.as_deref().map_or(Ok(false), |r| known(r, prefix))? {
                out.push(None);
                continue;
            }
            let fixes = self.vocabulary(conn)?.near(term);
            if fixes.is_empty() {
                return Ok(None);
            }
            any = true;
            out.push(Some(fixes));
        }
        Ok(any.then_some(out))
    }

    fn vocabulary(&self, conn: &Connection) -> Result<Arc<Vocabulary>, LibraryError> {
        let mut cached = self.vocabulary.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = cached.as_ref() {
            return Ok(v.clone());
        }
        let mut by_len: Vec<Vec<(String, i64, u32)>> = Vec::new();
        let mut rows = conn.prepare("SELECT term, docs FROM vocabulary")?;
        for row in rows.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (term, docs) = row?;
            let len = term.chars().count();
            if by_len.len() <= len {
                by_len.resize_with(len + 1, Vec::new);
            }
            let mask = letter_mask(&term);
            by_len[len].push((term, docs, mask));
        }
        let v = Arc::new(Vocabulary { by_len });
        *cached = Some(v.clone());
        Ok(v)
    }
}

impl Vocabulary {
    /// The words within one edit of `term` (two for 8+ characters), most documents first.
    /// Numbers and words under three characters are never corrected: a different number is a
    /// different document, and short words have too many neighbours.
    fn near(&self, term: &str) -> Vec<String> {
        let len = term.chars().count();
        if len < 3 || term.chars().all(|c| c.is_ascii_digit()) {
            return Vec::new();
        }
        let max = if len >= 8 { 2 } else { 1 };
        let mask = letter_mask(term);
        let mut found: Vec<(usize, i64, &str)> = Vec::new();
        for bucket in self
            .by_len
            .iter()
            .take(len + max + 1)
            .skip(len.saturating_sub(max))
        {
            for (word, docs, word_mask) in bucket {
                if (mask ^ word_mask).count_ones() as usize > 2 * max {
                    continue;
                }
                let d = strsim::osa_distance(term, word);
                if d <= max {
                    found.push((d, *docs, word));
                }
            }
        }
        found.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(b.2)));
        found
            .into_iter()
            .take(MAX_CORRECTIONS)
            .map(|(_, _, w)| w.to_owned())
            .collect()
    }
}

/// Titles and numbers first (short columns, few rows to score), then bodies when titles do not
/// fill the page; matches already in `out` are not repeated.
fn two_stages(
    conn: &Connection,
    fts_query: &str,
    limit: usize,
    bonus: f64,
    out: &mut Vec<(i64, f64)>,
) -> Result<(), LibraryError> {
    let mut seen: HashSet<i64> = out.iter().map(|c| c.0).collect();
    let before = out.len();
    for (query, stage_bonus) in [
        (format!("{{number title}} : ({fts_query})"), 100.0),
        (fts_query.to_owned(), 0.0),
    ] {
        if out.len() - before >= limit {
            break;
        }
        for c in ranked(conn, &query, bonus + stage_bonus)? {
            if seen.insert(c.0) {
                out.push(c);
            }
        }
    }
    Ok(())
}

/// The distinct folded words of a document, as the index splits them.
fn words_of(number: &str, title: &str, body: &str) -> HashSet<String> {
    [number, title, body]
        .iter()
        .flat_map(|text| fold::terms(&fold::fold(text)))
        .collect()
}

/// Adds per-word document counts to `vocabulary`, dropping words no document holds any more.
fn count_words(tx: &Connection, counts: HashMap<String, i64>) -> Result<(), LibraryError> {
    let mut add = tx.prepare_cached(
        "INSERT INTO vocabulary (term, docs) VALUES (?1, ?2)
         ON CONFLICT (term) DO UPDATE SET docs = docs + excluded.docs",
    )?;
    let mut drop_unused =
        tx.prepare_cached("DELETE FROM vocabulary WHERE term = ?1 AND docs <= 0")?;
    for (term, n) in counts {
        if n != 0 {
            add.execute(params![term, n])?;
        }
        if n < 0 {
            drop_unused.execute([term])?;
        }
    }
    Ok(())
}

/// Fills an empty vocabulary from the documents (a library made before it existed), in one
/// transaction: a crash leaves it empty, to be filled on the next open.
fn fill_vocabulary(conn: &mut Connection) -> Result<(), LibraryError> {
    let has_words: bool =
        conn.query_row("SELECT EXISTS (SELECT 1 FROM vocabulary)", [], |r| r.get(0))?;
    let has_documents: bool =
        conn.query_row("SELECT EXISTS (SELECT 1 FROM documents)", [], |r| r.get(0))?;
    if has_words || !has_documents {
        return Ok(());
    }
    let tx = conn.transaction()?;
    let mut counts: HashMap<String, i64> = HashMap::new();
    {
        let mut rows = tx.prepare("SELECT number, title, body FROM documents")?;
        let mut rows = rows.query([])?;
        while let Some(r) = rows.next()? {
            let (number, title, body): (String, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
            for term in words_of(&number, &title, &body) {
                *counts.entry(term).or_insert(0) += 1;
            }
        }
    }
    count_words(&tx, counts)?;
    tx.commit()?;
    Ok(())
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

/// Whether every term occurs in `text` as a whole word (not inside a longer word), or as the
/// start of one for a term marked as a prefix.
fn has_all_words(text: &str, terms: &[(String, bool)]) -> bool {
    terms.iter().all(|(term, prefix)| {
        text.match_indices(term.as_str()).any(|(at, _)| {
            let before = text[..at].chars().next_back();
            let after = text[at + term.len()..].chars().next();
            !before.is_some_and(char::is_alphanumeric)
                && (*prefix || !after.is_some_and(char::is_alphanumeric))
        })
    })
}

fn delete_row(
    tx: &Connection,
    rowid: i64,
    counts: &mut HashMap<String, i64>,
) -> Result<(), LibraryError> {
    let (number, title, body): (String, String, String) = tx.query_row(
        "SELECT number, title, body FROM documents WHERE rowid = ?1",
        [rowid],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    for term in words_of(&number, &title, &body) {
        *counts.entry(term).or_insert(0) -= 1;
    }
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
/// marked: a word equal to one of `folded_terms`, or starting with one of `prefixes` (the term
/// still being typed). Works on characters: folding keeps one character per character.
fn snippet(body: &str, folded_terms: &[String], prefixes: &[String]) -> String {
    let chars: Vec<char> = body.chars().collect();
    let folded: Vec<char> = chars.iter().map(|&c| fold::fold_char(c)).collect();
    // Word spans (start, end) in characters, and whether each matches a term. An invisible
    // format character inside a word is part of it, as search reads it.
    let in_word = |c: char| c.is_alphanumeric() || fold::is_format(c);
    let mut words = Vec::new();
    let mut i = 0;
    while i < folded.len() {
        if folded[i].is_alphanumeric() {
            let start = i;
            while i < folded.len() && in_word(folded[i]) {
                i += 1;
            }
            let word: String = folded[start..i]
                .iter()
                .filter(|c| !fold::is_format(**c))
                .collect();
            let hit = folded_terms.contains(&word)
                || prefixes.iter().any(|p| word.starts_with(p.as_str()));
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
