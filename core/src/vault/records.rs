//! The vault's record operations: each write its own transaction, each read one consistent
//! read, raw records and typed documents alike.

use super::{Document, Record, Result, Vault, VaultError, VaultTx, WriteOp};

impl Vault {
    pub(super) fn read<T>(&self, f: impl FnOnce(&VaultTx<'_>) -> Result<T>) -> Result<T> {
        self.with_state(|state| {
            f(&VaultTx {
                conn: &state.conn,
                keys: &state.keys,
                closed: &self.closed,
                changed: Default::default(),
            })
        })
    }

    /// Inserts or replaces a record.
    pub fn put(
        &self,
        collection: &str,
        id: &str,
        index: &[(String, String)],
        body: &[u8],
    ) -> Result<()> {
        self.transaction(|tx| tx.put(collection, id, index, body))
    }

    /// The record `id` of `collection`, or [`VaultError::NotFound`].
    pub fn get(&self, collection: &str, id: &str) -> Result<Record> {
        self.read(|tx| tx.get(collection, id))?
            .ok_or_else(|| VaultError::NotFound {
                collection: collection.to_owned(),
            })
    }

    /// The record `id` of `collection`, if it exists.
    pub fn find(&self, collection: &str, id: &str) -> Result<Option<Record>> {
        self.read(|tx| tx.get(collection, id))
    }

    /// Deletes a record; returns whether it existed.
    pub fn delete(&self, collection: &str, id: &str) -> Result<bool> {
        self.transaction(|tx| tx.delete(collection, id))
    }

    /// Every record of `collection`, sorted by id.
    pub fn list(&self, collection: &str) -> Result<Vec<Record>> {
        self.read(|tx| tx.list(collection))
    }

    /// How many records `collection` holds (no decryption).
    pub fn count(&self, collection: &str) -> Result<u64> {
        self.read(|tx| tx.count(collection))
    }

    /// At most `limit` records of `collection` in the order they were first stored, from the
    /// position after `after` (0: the start), each with its position: a log read page by page,
    /// never decrypted whole.
    pub fn list_page(
        &self,
        collection: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, Record)>> {
        self.read(|tx| tx.list_page(collection, after, limit, false))
    }

    /// [`Vault::list_page`] reading past a record that does not decrypt (`None` at its position)
    /// instead of failing; `backwards`: newest first, from the position before `from`
    /// (`i64::MAX`: the end).
    pub fn list_page_lossy(
        &self,
        collection: &str,
        from: i64,
        limit: usize,
        backwards: bool,
    ) -> Result<Vec<(i64, Option<Record>)>> {
        self.read(|tx| tx.list_page_lossy(collection, from, limit, backwards))
    }

    /// The records of `collection` whose indexed `field` equals `value` exactly, sorted by id.
    pub fn query(&self, collection: &str, field: &str, value: &str) -> Result<Vec<Record>> {
        self.read(|tx| tx.query(collection, field, value))
    }

    /// Applies every operation in one transaction.
    pub fn write_batch(&self, ops: &[WriteOp]) -> Result<()> {
        self.transaction(|tx| {
            for op in ops {
                match op {
                    WriteOp::Put {
                        collection,
                        id,
                        index,
                        body,
                    } => tx.put(collection, id, index, body)?,
                    WriteOp::Delete { collection, id } => {
                        tx.delete(collection, id)?;
                    }
                }
            }
            Ok(())
        })
    }

    /// Stores a typed document as JSON.
    pub fn put_doc<D: Document>(&self, doc: &D) -> Result<()> {
        self.transaction(|tx| tx.put_doc(doc))
    }

    /// The typed document `id`, if it exists.
    pub fn get_doc<D: Document>(&self, id: &str) -> Result<Option<D>> {
        self.read(|tx| tx.get_doc(id))
    }

    /// Every document of type `D`.
    pub fn list_docs<D: Document>(&self) -> Result<Vec<D>> {
        self.read(|tx| tx.list_docs())
    }

    /// The documents of type `D` whose indexed `field` equals `value`.
    pub fn query_docs<D: Document>(&self, field: &str, value: &str) -> Result<Vec<D>> {
        self.read(|tx| tx.query_docs(field, value))
    }
}
