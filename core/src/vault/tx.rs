//! The vault seen from inside a transaction or a read: every operation on records, with the
//! checks of names, ids and sizes, encryption and the blind indexes.

use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::{params, Connection, OptionalExtension};

use super::keys::KeySet;
use super::{codec, Document, Record, Result, VaultError};
use super::{MAX_BODY_LEN, MAX_ID_LEN, MAX_INDEX_ENTRIES, MAX_INDEX_VALUE_LEN, MAX_NAME_LEN};
use crate::crypto;

/// The vault seen from inside a transaction (or a read): the same operations, applied together.
pub struct VaultTx<'a> {
    pub(super) conn: &'a Connection,
    pub(super) keys: &'a KeySet,
    pub(super) closed: &'a AtomicBool,
    /// Collections written in this transaction, for the change observers.
    pub(super) changed: std::cell::RefCell<std::collections::BTreeSet<String>>,
}

impl VaultTx<'_> {
    fn mark_changed(&self, collection: &str) {
        let mut changed = self.changed.borrow_mut();
        if !changed.contains(collection) {
            changed.insert(collection.to_owned());
        }
    }

    fn id_hash(&self, collection: &str, id: &str) -> [u8; crypto::MAC_LEN] {
        self.keys.collection(collection).id.tag(&[id.as_bytes()])
    }

    /// Opens a stored envelope. The id hash is in the additional data, so an envelope that
    /// authenticates was sealed for exactly this (collection, id hash): no second HMAC needed.
    pub(super) fn decrypt(
        &self,
        collection: &str,
        id_hash: &[u8],
        envelope: Vec<u8>,
    ) -> Result<Record> {
        let payload = codec::open(
            &self.keys.record,
            self.keys.generation,
            collection,
            id_hash,
            envelope,
        )?;
        codec::decode_payload_owned(collection, payload)
    }

    fn decrypt_rows(&self, collection: &str, rows: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Vec<Record>> {
        let mut records = Vec::with_capacity(rows.len());
        for (id_hash, envelope) in rows {
            if self.closed.load(Ordering::SeqCst) {
                return Err(VaultError::Closed);
            }
            records.push(self.decrypt(collection, &id_hash, envelope)?);
        }
        records.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(records)
    }

    /// Inserts or replaces a record.
    pub fn put(
        &self,
        collection: &str,
        id: &str,
        index: &[(String, String)],
        body: &[u8],
    ) -> Result<()> {
        check_name("collection", collection)?;
        check_id(id)?;
        if body.len() > MAX_BODY_LEN {
            return Err(VaultError::invalid(format!(
                "record body exceeds {MAX_BODY_LEN} bytes"
            )));
        }
        if index.len() > MAX_INDEX_ENTRIES {
            return Err(VaultError::invalid(format!(
                "at most {MAX_INDEX_ENTRIES} index entries"
            )));
        }
        for (field, value) in index {
            check_name("index field", field)?;
            if value.len() > MAX_INDEX_VALUE_LEN {
                return Err(VaultError::invalid(format!(
                    "index value exceeds {MAX_INDEX_VALUE_LEN} bytes"
                )));
            }
        }
        self.mark_changed(collection);
        let keys = self.keys.collection(collection);
        let id_hash = keys.id.tag(&[id.as_bytes()]);
        let payload = codec::encode_payload(id, index, body);
        let envelope = codec::seal(
            &self.keys.record,
            self.keys.generation,
            collection,
            &id_hash,
            payload,
        )?;
        let record_id: i64 = self
            .conn
            .prepare_cached(
                "INSERT INTO records (collection, id_hash, envelope) VALUES (?1, ?2, ?3)
                 ON CONFLICT (collection, id_hash) DO UPDATE SET envelope = excluded.envelope
                 RETURNING record_id",
            )?
            .query_row(params![collection, &id_hash[..], envelope], |r| r.get(0))?;
        self.conn
            .prepare_cached("DELETE FROM record_index WHERE record_id = ?1")?
            .execute([record_id])?;
        let mut insert = self.conn.prepare_cached(
            "INSERT OR IGNORE INTO record_index (collection, field, value_hash, record_id)
             VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (field, value) in index {
            let value_hash = keys.index.tag(&[field.as_bytes(), value.as_bytes()]);
            insert.execute(params![collection, field, &value_hash[..], record_id])?;
        }
        Ok(())
    }

    /// The record `id` of `collection`, if it exists.
    pub fn get(&self, collection: &str, id: &str) -> Result<Option<Record>> {
        check_name("collection", collection)?;
        check_id(id)?;
        let id_hash = self.id_hash(collection, id);
        let envelope: Option<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT envelope FROM records WHERE collection = ?1 AND id_hash = ?2")?
            .query_row(params![collection, &id_hash[..]], |r| r.get(0))
            .optional()?;
        envelope
            .map(|env| self.decrypt(collection, &id_hash, env))
            .transpose()
    }

    /// Deletes a record; returns whether it existed.
    pub fn delete(&self, collection: &str, id: &str) -> Result<bool> {
        check_name("collection", collection)?;
        check_id(id)?;
        let id_hash = self.id_hash(collection, id);
        let record_id: Option<i64> = self
            .conn
            .prepare_cached(
                "DELETE FROM records WHERE collection = ?1 AND id_hash = ?2 RETURNING record_id",
            )?
            .query_row(params![collection, &id_hash[..]], |r| r.get(0))
            .optional()?;
        if let Some(record_id) = record_id {
            self.mark_changed(collection);
            self.conn
                .prepare_cached("DELETE FROM record_index WHERE record_id = ?1")?
                .execute([record_id])?;
        }
        Ok(record_id.is_some())
    }

    /// Every record of `collection`, sorted by id.
    pub fn list(&self, collection: &str) -> Result<Vec<Record>> {
        check_name("collection", collection)?;
        let rows = self
            .conn
            .prepare_cached("SELECT id_hash, envelope FROM records WHERE collection = ?1")?
            .query_map([collection], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        self.decrypt_rows(collection, rows)
    }

    /// A page of `collection` in storage order from `from` (exclusive), forwards or backwards.
    pub fn list_page(
        &self,
        collection: &str,
        from: i64,
        limit: usize,
        backwards: bool,
    ) -> Result<Vec<(i64, Record)>> {
        self.page(collection, from, limit, backwards, |_, record| record)
    }

    /// [`VaultTx::list_page`] that reads past a record it cannot decrypt (`None` at its
    /// position) instead of failing the page: for a log whose one damaged record must not
    /// keep the rest from being read (a validator's taps, still to upload).
    pub fn list_page_lossy(
        &self,
        collection: &str,
        from: i64,
        limit: usize,
        backwards: bool,
    ) -> Result<Vec<(i64, Option<Record>)>> {
        self.page(collection, from, limit, backwards, |position, record| {
            match record {
                Ok(record) => Ok(Some(record)),
                Err(VaultError::CorruptRecord { .. }) => {
                    log::warn!(collection, position; "a record that does not decrypt was read past");
                    Ok(None)
                }
                Err(e) => Err(e),
            }
        })
    }

    /// A page of `collection`, each record decrypted and given to `keep` with its position.
    fn page<T>(
        &self,
        collection: &str,
        from: i64,
        limit: usize,
        backwards: bool,
        keep: impl Fn(i64, Result<Record>) -> Result<T>,
    ) -> Result<Vec<(i64, T)>> {
        check_name("collection", collection)?;
        let sql = if backwards {
            "SELECT record_id, id_hash, envelope FROM records
             WHERE collection = ?1 AND record_id < ?2 ORDER BY record_id DESC LIMIT ?3"
        } else {
            "SELECT record_id, id_hash, envelope FROM records
             WHERE collection = ?1 AND record_id > ?2 ORDER BY record_id LIMIT ?3"
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .conn
            .prepare_cached(sql)?
            .query_map(params![collection, from, limit], |r| {
                Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<rusqlite::Result<Vec<(i64, Vec<u8>, Vec<u8>)>>>()?;
        let mut page = Vec::with_capacity(rows.len());
        for (position, id_hash, envelope) in rows {
            if self.closed.load(Ordering::SeqCst) {
                return Err(VaultError::Closed);
            }
            let record = self.decrypt(collection, &id_hash, envelope);
            page.push((position, keep(position, record)?));
        }
        Ok(page)
    }

    /// How many records `collection` holds.
    pub fn count(&self, collection: &str) -> Result<u64> {
        check_name("collection", collection)?;
        let count: i64 = self
            .conn
            .prepare_cached("SELECT count(*) FROM records WHERE collection = ?1")?
            .query_row([collection], |r| r.get(0))?;
        Ok(count.max(0) as u64)
    }

    /// The records whose indexed `field` equals `value`, sorted by id.
    pub fn query(&self, collection: &str, field: &str, value: &str) -> Result<Vec<Record>> {
        check_name("collection", collection)?;
        check_name("index field", field)?;
        let value_hash = self
            .keys
            .collection(collection)
            .index
            .tag(&[field.as_bytes(), value.as_bytes()]);
        let rows = self
            .conn
            .prepare_cached(
                "SELECT r.id_hash, r.envelope FROM record_index i
                 JOIN records r ON r.record_id = i.record_id
                 WHERE i.collection = ?1 AND i.field = ?2 AND i.value_hash = ?3",
            )?
            .query_map(params![collection, field, &value_hash[..]], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut records = self.decrypt_rows(collection, rows)?;
        // An index row is only a hint: keep records whose sealed index really holds the value.
        records.retain(|r| r.index.iter().any(|(f, v)| f == field && v == value));
        Ok(records)
    }

    /// Stores a typed document as JSON.
    pub fn put_doc<D: Document>(&self, doc: &D) -> Result<()> {
        let body = serde_json::to_vec(doc)
            .map_err(|e| VaultError::invalid(format!("cannot serialise document: {e}")))?;
        self.put(D::COLLECTION, &doc.id(), &doc.index(), &body)
    }

    /// The typed document `id`, if it exists.
    pub fn get_doc<D: Document>(&self, id: &str) -> Result<Option<D>> {
        self.get(D::COLLECTION, id)?
            .map(|r| parse_doc(&r))
            .transpose()
    }

    /// Every document of type `D`.
    pub fn list_docs<D: Document>(&self) -> Result<Vec<D>> {
        self.list(D::COLLECTION)?.iter().map(parse_doc).collect()
    }

    /// The documents of type `D` whose indexed `field` equals `value`.
    pub fn query_docs<D: Document>(&self, field: &str, value: &str) -> Result<Vec<D>> {
        self.query(D::COLLECTION, field, value)?
            .iter()
            .map(parse_doc)
            .collect()
    }
}

fn check_name(kind: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.as_bytes()[0].is_ascii_lowercase()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(VaultError::invalid(format!(
            "{kind} name must be 1-{MAX_NAME_LEN} characters of a-z, 0-9, '.', '_', '-', starting with a letter"
        )))
    }
}

fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(VaultError::invalid(format!(
            "record id must be 1-{MAX_ID_LEN} bytes"
        )));
    }
    Ok(())
}

fn parse_doc<D: Document>(record: &Record) -> Result<D> {
    serde_json::from_slice(&record.body).map_err(|e| {
        // The error's kind and place only: serde's message quotes the offending value.
        VaultError::corrupt(
            D::COLLECTION,
            format!(
                "document does not parse ({:?} error at line {}, column {})",
                e.classify(),
                e.line(),
                e.column()
            ),
        )
    })
}
