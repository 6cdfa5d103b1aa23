//! Files attached to records (a resolution's PDF, meeting papers, a scanned certificate): kept
//! encrypted in the vault in chunks, named by their SHA-256, with a size limit per file and for
//! the vault. A file comes either from the device (a scan attached to a procedure or a health
//! document) or, published with a library document or a meeting, from the backend: only its
//! reference arrives with sync, and the file is fetched when it is opened, chunk by chunk, each
//! chunk kept as it arrives (an interrupted download resumes), the whole checked against its
//! hash before it is readable (docs/protocol/sync.md, "Attachments").
//!
//! Owners are record names, `collection/id` (`handbook.procedure/t1`,
//! `health.records/DocumentReference/scan-1`): a file stays while one owner holds it.

use std::sync::Arc;

use ring::digest;
use serde::{Deserialize, Serialize};

use crate::net::protocol::API_PREFIX;
use crate::net::{blocking, BackendClient, BackendError};
use crate::vault::{Document, Vault, VaultError};

/// Bytes per chunk, in the vault and on the wire.
pub const CHUNK_BYTES: usize = 256 * 1024;
/// The largest file.
pub const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;
/// The most all files of a vault may hold together.
pub const MAX_STORED_BYTES: u64 = 512 * 1024 * 1024;
/// Longest file name, in bytes.
const MAX_NAME_CHARS: usize = 255;
const CHUNKS: &str = "attachments.chunk";

/// What a record carries of a file: enough to show it, fetch it and check it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttachmentRef {
    /// The file's SHA-256, hex: its id.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[0-9a-f]{64}$"))]
    pub id: String,
    /// File name, as shown: 1 to 255 characters, not blank, no control character.
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 255,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
        )
    )]
    pub name: String,
    /// Media type, such as `application/pdf` or `image/jpeg`.
    #[cfg_attr(feature = "openapi", schema(max_length = 100, pattern = "^[^/]+/.+$"))]
    pub media_type: String,
    /// Size in bytes (signed, as every number the apps see; never negative).
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 10485760))]
    pub size: i64,
}

impl AttachmentRef {
    fn bytes(&self) -> u64 {
        self.size.max(0) as u64
    }
}

/// A file this vault knows of, and how much of it is here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentState {
    /// The file.
    pub reference: AttachmentRef,
    /// Bytes held (all of them once complete).
    pub stored_bytes: u64,
    /// Whether the whole file is here and matched its hash.
    pub complete: bool,
    /// The records holding it.
    pub owners: Vec<String>,
}

impl Document for AttachmentState {
    const COLLECTION: &'static str = "attachments.file";
    fn id(&self) -> String {
        self.reference.id.clone()
    }
    fn index(&self) -> Vec<(String, String)> {
        self.owners
            .iter()
            .map(|o| ("owner".to_owned(), o.clone()))
            .collect()
    }
}

/// Why a file could not be kept or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachmentError {
    /// A bad name, media type, owner or reference.
    #[error("invalid attachment: {reason}")]
    Invalid {
        /// What was wrong.
        reason: String,
    },
    /// Over the size limit of a file.
    #[error("the file is {size} bytes, more than {limit}")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The vault's files would hold more than [`MAX_STORED_BYTES`].
    #[error("attachments would take {needed} bytes, more than the {limit} allowed")]
    QuotaExceeded {
        /// What they would take.
        needed: u64,
        /// The limit.
        limit: u64,
    },
    /// No such file here.
    #[error("no attachment {id}")]
    NotFound {
        /// The file.
        id: String,
    },
    /// Not all of it is here yet (fetch it).
    #[error("attachment {id} is incomplete: {stored} of {size} bytes")]
    Incomplete {
        /// The file.
        id: String,
        /// Bytes held.
        stored: u64,
        /// Its size.
        size: u64,
    },
    /// The bytes do not match the file's hash (altered in transit or in storage); a download
    /// starts again from the first chunk.
    #[error("attachment {id} does not match its hash")]
    Tampered {
        /// The file.
        id: String,
    },
    /// The vault failed.
    #[error(transparent)]
    Vault(#[from] VaultError),
}

fn invalid(reason: impl Into<String>) -> AttachmentError {
    AttachmentError::Invalid {
        reason: reason.into(),
    }
}

/// The SHA-256 of `bytes`, hex: a file's id.
pub fn file_id(bytes: &[u8]) -> String {
    crate::hex::encode(digest::digest(&digest::SHA256, bytes).as_ref())
}

fn chunk_count(size: u64) -> u32 {
    size.div_ceil(CHUNK_BYTES as u64) as u32
}

fn chunk_id(file: &str, index: u32) -> String {
    format!("{file}.{index:05}")
}

impl AttachmentRef {
    /// Checks what a reference must hold: a SHA-256 id, a name, a media type, a size within
    /// the limit.
    pub fn validate(&self) -> Result<(), AttachmentError> {
        if self.id.len() != 64
            || !self
                .id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return Err(invalid("the id is a lower-case hex SHA-256"));
        }
        if self.name.trim().is_empty()
            || self.name.chars().count() > MAX_NAME_CHARS
            || self.name.chars().any(char::is_control)
        {
            return Err(invalid(
                "a name is 1 to 255 characters, not blank, with no control characters",
            ));
        }
        let media = self.media_type.split_once('/');
        if !media.is_some_and(|(t, s)| !t.is_empty() && !s.is_empty())
            || self.media_type.chars().count() > 100
            || self.media_type.chars().any(char::is_control)
        {
            return Err(invalid(
                "a media type is type/subtype, at most 100 characters, none a control character",
            ));
        }
        if self.size < 0 {
            return Err(invalid("a size is not negative"));
        }
        if self.bytes() > MAX_FILE_BYTES {
            return Err(AttachmentError::TooLarge {
                size: self.bytes(),
                limit: MAX_FILE_BYTES,
            });
        }
        Ok(())
    }
}

fn valid_owner(owner: &str) -> Result<(), AttachmentError> {
    let ok = owner
        .split_once('/')
        .is_some_and(|(c, id)| !c.is_empty() && !id.is_empty())
        && owner.len() <= 300
        && !owner.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(invalid("an owner is collection/id"))
    }
}

/// The files of a vault.
pub struct Attachments<'a> {
    vault: &'a Vault,
}

impl<'a> Attachments<'a> {
    /// The files in `vault`.
    pub fn new(vault: &'a Vault) -> Self {
        Attachments { vault }
    }

    /// Bytes held by all files.
    pub fn used_bytes(&self) -> Result<u64, AttachmentError> {
        let all: Vec<AttachmentState> = self.vault.list_docs()?;
        Ok(all.iter().map(|f| f.stored_bytes).sum())
    }

    fn check_quota(&self, more: u64) -> Result<(), AttachmentError> {
        let needed = self.used_bytes()?.saturating_add(more);
        if needed > MAX_STORED_BYTES {
            return Err(AttachmentError::QuotaExceeded {
                needed,
                limit: MAX_STORED_BYTES,
            });
        }
        Ok(())
    }

    /// Keeps a file from this device (a scan, a PDF the member chose) for `owner`, in one
    /// transaction. The same bytes attached twice are kept once.
    pub fn add(
        &self,
        owner: &str,
        name: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<AttachmentRef, AttachmentError> {
        valid_owner(owner)?;
        let reference = AttachmentRef {
            id: file_id(bytes),
            name: name.to_owned(),
            media_type: media_type.to_owned(),
            size: bytes.len() as i64,
        };
        reference.validate()?;
        let existing: Option<AttachmentState> = self.vault.get_doc(&reference.id)?;
        let complete = existing.as_ref().is_some_and(|s| s.complete);
        if !complete {
            self.check_quota(reference.bytes())?;
        }
        self.vault.transaction(|tx| -> Result<(), VaultError> {
            let mut state = tx
                .get_doc::<AttachmentState>(&reference.id)?
                .unwrap_or_else(|| AttachmentState {
                    reference: reference.clone(),
                    stored_bytes: 0,
                    complete: false,
                    owners: Vec::new(),
                });
            if !state.complete {
                for (i, chunk) in bytes.chunks(CHUNK_BYTES).enumerate() {
                    tx.put(CHUNKS, &chunk_id(&reference.id, i as u32), &[], chunk)?;
                }
                state.stored_bytes = reference.bytes();
                state.complete = true;
            }
            if !state.owners.iter().any(|o| o == owner) {
                state.owners.push(owner.to_owned());
            }
            tx.put_doc(&state)
        })?;
        Ok(reference)
    }

    /// Records that `owner` holds the published file `reference` (fetched later with
    /// [`fetch`]); nothing is downloaded.
    pub fn note_published(
        &self,
        owner: &str,
        reference: &AttachmentRef,
    ) -> Result<AttachmentState, AttachmentError> {
        valid_owner(owner)?;
        reference.validate()?;
        Ok(self
            .vault
            .transaction(|tx| -> Result<AttachmentState, VaultError> {
                let mut state = tx
                    .get_doc::<AttachmentState>(&reference.id)?
                    .unwrap_or_else(|| AttachmentState {
                        reference: reference.clone(),
                        stored_bytes: 0,
                        complete: false,
                        owners: Vec::new(),
                    });
                if !state.owners.iter().any(|o| o == owner) {
                    state.owners.push(owner.to_owned());
                    tx.put_doc(&state)?;
                }
                Ok(state)
            })?)
    }

    /// A file's state, if this vault knows it.
    pub fn state(&self, id: &str) -> Result<Option<AttachmentState>, AttachmentError> {
        Ok(self.vault.get_doc(id)?)
    }

    /// The files `owner` holds.
    pub fn for_owner(&self, owner: &str) -> Result<Vec<AttachmentState>, AttachmentError> {
        let mut all: Vec<AttachmentState> = self.vault.query_docs("owner", owner)?;
        all.sort_by(|a, b| a.reference.name.cmp(&b.reference.name));
        Ok(all)
    }

    /// The whole file, checked against its hash. A file found damaged (a chunk missing, or
    /// the whole not matching) is dropped, to be fetched again, and reported
    /// [`AttachmentError::Tampered`].
    pub fn read(&self, id: &str) -> Result<Vec<u8>, AttachmentError> {
        let state = self
            .state(id)?
            .ok_or_else(|| AttachmentError::NotFound { id: id.to_owned() })?;
        if !state.complete {
            return Err(AttachmentError::Incomplete {
                id: id.to_owned(),
                stored: state.stored_bytes,
                size: state.reference.bytes(),
            });
        }
        match self.checked(&state)? {
            Some(bytes) => Ok(bytes),
            None => {
                self.drop_damaged(id, true)?;
                Err(AttachmentError::Tampered { id: id.to_owned() })
            }
        }
    }

    /// The file's chunks put together, if every one is there, readable, and the whole
    /// matches its hash.
    fn checked(&self, state: &AttachmentState) -> Result<Option<Vec<u8>>, AttachmentError> {
        Ok(whole_file(state, |id| self.vault.find(CHUNKS, id))?)
    }

    /// Drops the chunks of file `id` found damaged (`complete`: once complete; else once all
    /// stored), unless it changed since it was read: it starts again from its first chunk.
    fn drop_damaged(&self, id: &str, complete: bool) -> Result<(), AttachmentError> {
        self.vault.transaction(|tx| -> Result<(), VaultError> {
            let Some(mut state) = tx.get_doc::<AttachmentState>(id)? else {
                return Ok(());
            };
            if state.complete != complete || state.stored_bytes != state.reference.bytes() {
                return Ok(());
            }
            // Checked again here: the file may have been let go and the same bytes kept
            // again while it was read, and a good copy is never dropped.
            if whole_file(&state, |chunk| tx.get(CHUNKS, chunk))?.is_some() {
                return Ok(());
            }
            delete_chunks(tx, &state.reference)?;
            state.stored_bytes = 0;
            state.complete = false;
            tx.put_doc(&state)
        })?;
        Ok(())
    }

    /// Keeps chunk `index` of a file being fetched: it must be the next one, of the right
    /// length. The last one completes the file when the whole matches its hash; otherwise the
    /// chunks are dropped and [`AttachmentError::Tampered`] says to fetch it again. The state is
    /// read and written in one transaction: a file detached, completed or grown meanwhile (a
    /// cancelled fetch whose last chunk was still being written) is not written back as it was.
    pub fn store_chunk(
        &self,
        id: &str,
        index: u32,
        bytes: &[u8],
    ) -> Result<AttachmentState, AttachmentError> {
        if index == 0 {
            if let Some(state) = self.state(id)?.filter(|s| !s.complete) {
                self.check_quota(state.reference.bytes())?;
            }
        }
        let state = self
            .vault
            .transaction(|tx| -> Result<AttachmentState, AttachmentError> {
                let mut state = tx
                    .get_doc::<AttachmentState>(id)?
                    .ok_or_else(|| AttachmentError::NotFound { id: id.to_owned() })?;
                if state.complete {
                    return Ok(state);
                }
                let next = chunk_count(state.stored_bytes);
                let size = state.reference.bytes();
                if index != next {
                    return Err(invalid(format!(
                        "chunk {index} given, chunk {next} expected"
                    )));
                }
                let expected = (size - state.stored_bytes).min(CHUNK_BYTES as u64);
                if bytes.len() as u64 != expected {
                    return Err(invalid(format!(
                        "chunk {index} is {} bytes, not {expected}",
                        bytes.len()
                    )));
                }
                state.stored_bytes += expected;
                tx.put(CHUNKS, &chunk_id(id, index), &[], bytes)?;
                tx.put_doc(&state)?;
                Ok(state)
            })?;
        if !state.complete && state.stored_bytes == state.reference.bytes() {
            return self.finish(id);
        }
        Ok(state)
    }

    /// Checks a file whose every chunk is here against its hash: complete, or dropped (to be
    /// fetched again) with [`AttachmentError::Tampered`], a chunk missing as much as a whole
    /// that does not match. Also what a fetch cut short between its last chunk and this check
    /// does next time.
    pub fn finish(&self, id: &str) -> Result<AttachmentState, AttachmentError> {
        let state = self
            .state(id)?
            .ok_or_else(|| AttachmentError::NotFound { id: id.to_owned() })?;
        if state.complete || state.stored_bytes != state.reference.bytes() {
            return Ok(state);
        }
        if self.checked(&state)?.is_none() {
            self.drop_damaged(id, false)?;
            return Err(AttachmentError::Tampered { id: id.to_owned() });
        }
        self.vault
            .transaction(|tx| -> Result<AttachmentState, AttachmentError> {
                let mut state = tx
                    .get_doc::<AttachmentState>(id)?
                    .ok_or_else(|| AttachmentError::NotFound { id: id.to_owned() })?;
                // Completed only as checked: all its chunks, not dropped meanwhile.
                if !state.complete && state.stored_bytes == state.reference.bytes() {
                    state.complete = true;
                    tx.put_doc(&state)?;
                }
                Ok(state)
            })
    }

    /// `owner` lets go of file `id`; the file goes when no owner is left. Returns whether the
    /// owner held it. Read and written in one transaction, so an owner added meanwhile keeps it.
    pub fn detach(&self, owner: &str, id: &str) -> Result<bool, AttachmentError> {
        Ok(self.vault.transaction(|tx| -> Result<bool, VaultError> {
            let Some(mut state) = tx.get_doc::<AttachmentState>(id)? else {
                return Ok(false);
            };
            let before = state.owners.len();
            state.owners.retain(|o| o != owner);
            if state.owners.len() == before {
                return Ok(false);
            }
            if state.owners.is_empty() {
                delete_chunks(tx, &state.reference)?;
                tx.delete(AttachmentState::COLLECTION, id)?;
            } else {
                tx.put_doc(&state)?;
            }
            Ok(true)
        })?)
    }
}

/// A file's chunks put together by `read_chunk`, if every one is there, readable (one that
/// does not decrypt is damage, not a failure), and the whole matches its hash.
fn whole_file(
    state: &AttachmentState,
    read_chunk: impl Fn(&str) -> Result<Option<crate::vault::Record>, VaultError>,
) -> Result<Option<Vec<u8>>, VaultError> {
    let mut bytes = Vec::with_capacity(state.stored_bytes as usize);
    for i in 0..chunk_count(state.stored_bytes) {
        match read_chunk(&chunk_id(&state.reference.id, i)) {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk.body),
            Ok(None) | Err(VaultError::CorruptRecord { .. }) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    Ok((file_id(&bytes) == state.reference.id).then_some(bytes))
}

/// `owner` (a record, `collection/id`) lets go of every file it held, inside `tx`; a file
/// with no owner left goes. Sync calls it for each record a pulled `delete` removes (a document
/// the party withdrew, a record the facility took back), so a file fetched for it leaves the
/// phone with it. Returns how many files the owner held.
pub fn release_owner(tx: &crate::vault::VaultTx<'_>, owner: &str) -> Result<usize, VaultError> {
    let held: Vec<AttachmentState> = tx.query_docs("owner", owner)?;
    for mut state in held.iter().cloned() {
        state.owners.retain(|o| o != owner);
        if state.owners.is_empty() {
            delete_chunks(tx, &state.reference)?;
            tx.delete(AttachmentState::COLLECTION, &state.reference.id)?;
        } else {
            tx.put_doc(&state)?;
        }
    }
    Ok(held.len())
}

fn delete_chunks(tx: &crate::vault::VaultTx<'_>, file: &AttachmentRef) -> Result<(), VaultError> {
    for i in 0..chunk_count(file.bytes()) {
        tx.delete(CHUNKS, &chunk_id(&file.id, i))?;
    }
    Ok(())
}

/// `GET /v1/files/{id}/chunks/{index}`: one chunk of a published file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChunkResponse {
    /// The chunk's index.
    pub index: u32,
    /// Its bytes, base64 (standard alphabet, padded).
    pub data: String,
}

fn device_side(e: AttachmentError) -> BackendError {
    match e {
        AttachmentError::Vault(v) => BackendError::Vault(v),
        other => BackendError::Protocol {
            detail: other.to_string(),
        },
    }
}

/// Fetches the published file `reference` for `owner`, resuming where an earlier fetch
/// stopped, and returns its state once complete. A chunk the backend sends of the wrong size
/// or index is refused (nothing kept); a whole that does not match its hash is dropped and
/// reported (`Protocol`), to be fetched again.
pub async fn fetch(
    backend: &BackendClient,
    vault: Arc<Vault>,
    owner: &str,
    reference: &AttachmentRef,
) -> Result<AttachmentState, BackendError> {
    let (v, o, r) = (vault.clone(), owner.to_owned(), reference.clone());
    let mut state = blocking(move || {
        Attachments::new(&v)
            .note_published(&o, &r)
            .map_err(device_side)
    })
    .await?;
    while !state.complete {
        if state.stored_bytes == state.reference.bytes() {
            let (v, id) = (vault.clone(), reference.id.clone());
            state = blocking(move || Attachments::new(&v).finish(&id).map_err(device_side)).await?;
            continue;
        }
        let index = chunk_count(state.stored_bytes);
        let chunk: ChunkResponse = backend
            .request(
                vault.clone(),
                http::Method::GET,
                &format!("{API_PREFIX}/files/{}/chunks/{index}", reference.id),
                None,
            )
            .await?;
        if chunk.index != index {
            return Err(BackendError::Protocol {
                detail: format!("chunk {} sent for chunk {index}", chunk.index),
            });
        }
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(chunk.data.as_bytes())
            .map_err(|_| BackendError::Protocol {
                detail: "a chunk is not base64".into(),
            })?;
        let (v, id) = (vault.clone(), reference.id.clone());
        state = blocking(move || {
            Attachments::new(&v)
                .store_chunk(&id, index, &bytes)
                .map_err(device_side)
        })
        .await?;
    }
    Ok(state)
}
