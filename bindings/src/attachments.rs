//! Files attached to records, for Kotlin and Swift: kept encrypted in the vault in chunks;
//! published ones fetched when opened, resumably, checked against their hash.

use std::sync::Arc;

use thudo_core::attachments::{self as core, AttachmentRef, AttachmentState, Attachments};

use crate::blocking;
use crate::cancel::{guard, CancelToken};
use crate::sync::{SyncClient, SyncError};

/// A file a record carries (core's type, carried as it is).
#[uniffi::remote(Record)]
pub struct AttachmentRef {
    /// The file's SHA-256, hex: its id.
    pub id: String,
    /// File name.
    pub name: String,
    /// Media type (`application/pdf`, `image/jpeg`, ...).
    pub media_type: String,
    /// Size in bytes.
    pub size: i64,
}

/// A file in the vault and how much of it is here.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AttachmentInfo {
    /// The file.
    pub reference: AttachmentRef,
    /// Bytes held (all once complete).
    pub stored_bytes: i64,
    /// Whether it is all here and matched its hash (readable).
    pub complete: bool,
    /// The records holding it (`collection/id`).
    pub owners: Vec<String>,
}

impl From<AttachmentState> for AttachmentInfo {
    fn from(s: AttachmentState) -> Self {
        AttachmentInfo {
            reference: s.reference,
            stored_bytes: crate::signed(s.stored_bytes),
            complete: s.complete,
            owners: s.owners,
        }
    }
}

/// Errors of attachment calls.
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[uniffi::export(Display)]
pub enum AttachmentError {
    /// A bad name, media type, owner (`collection/id`) or reference.
    #[error("invalid: {reason}")]
    Invalid {
        /// What was wrong.
        reason: String,
    },
    /// Larger than a file may be (10 MiB).
    #[error("{size} bytes, more than {limit}")]
    TooLarge {
        /// Its size.
        size: i64,
        /// The limit.
        limit: i64,
    },
    /// The vault's files would take more than allowed (512 MiB): remove some.
    #[error("attachments would take {needed} bytes, more than {limit}")]
    QuotaExceeded {
        /// What they would take.
        needed: i64,
        /// The limit.
        limit: i64,
    },
    /// No such file in the vault.
    #[error("no attachment {id}")]
    NotFound {
        /// The file.
        id: String,
    },
    /// Not all of it is here: `fetch` it.
    #[error("attachment {id}: {stored} of {size} bytes")]
    Incomplete {
        /// The file.
        id: String,
        /// Bytes held.
        stored: i64,
        /// Its size.
        size: i64,
    },
    /// The bytes do not match the file's hash: dropped, fetch it again.
    #[error("attachment {id} does not match its hash")]
    Tampered {
        /// The file.
        id: String,
    },
    /// The vault under the call failed (closed, locked, its key lost, its disk): the same
    /// faults in every domain's error.
    #[error("{fault}")]
    Vault {
        /// What failed.
        fault: crate::VaultFault,
    },
    /// A bug in the library.
    #[error("internal error: {reason}")]
    Internal {
        /// What happened.
        reason: String,
    },
}

impl From<core::AttachmentError> for AttachmentError {
    fn from(e: core::AttachmentError) -> Self {
        use core::AttachmentError as E;
        match e {
            E::Invalid { reason } => AttachmentError::Invalid { reason },
            E::TooLarge { size, limit } => AttachmentError::TooLarge {
                size: crate::signed(size),
                limit: crate::signed(limit),
            },
            E::QuotaExceeded { needed, limit } => AttachmentError::QuotaExceeded {
                needed: crate::signed(needed),
                limit: crate::signed(limit),
            },
            E::NotFound { id } => AttachmentError::NotFound { id },
            E::Incomplete { id, stored, size } => AttachmentError::Incomplete {
                id,
                stored: crate::signed(stored),
                size: crate::signed(size),
            },
            E::Tampered { id } => AttachmentError::Tampered { id },
            E::Vault(v) => AttachmentError::Vault { fault: v.into() },
        }
    }
}

crate::error_api!(AttachmentError, vault: "attachment", internal: Internal, {
        Invalid => ("attachment.invalid", false),
        TooLarge => ("attachment.too_large", false),
        QuotaExceeded => ("attachment.quota_exceeded", false),
        NotFound => ("attachment.not_found", false),
        Incomplete => ("attachment.incomplete", false),
        Tampered => ("attachment.tampered", false),
        Internal => ("attachment.internal", false),
});

/// The files of a vault.
#[derive(uniffi::Object)]
pub struct AttachmentStore {
    vault: Arc<thudo_core::vault::Vault>,
}

impl AttachmentStore {
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(Attachments<'_>) -> Result<T, core::AttachmentError> + Send + 'static,
    ) -> Result<T, AttachmentError> {
        let vault = self.vault.clone();
        blocking(move || work(Attachments::new(&vault)).map_err(AttachmentError::from)).await
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl AttachmentStore {
    /// The files of `vault`.
    #[uniffi::constructor]
    pub fn new(vault: Arc<crate::vault::Vault>) -> Arc<Self> {
        Arc::new(AttachmentStore {
            vault: vault.core(),
        })
    }

    /// Keeps a file from this device (a scan, a PDF) for `owner`, a record named
    /// `collection/id` (`handbook.procedure/t1`, `health.records/DocumentReference/scan-1`).
    pub async fn add(
        &self,
        owner: String,
        name: String,
        media_type: String,
        bytes: Vec<u8>,
    ) -> Result<AttachmentRef, AttachmentError> {
        self.run(move |a| a.add(&owner, &name, &media_type, &bytes))
            .await
    }

    /// The files `owner` holds, with how much of each is here.
    pub async fn list(&self, owner: String) -> Result<Vec<AttachmentInfo>, AttachmentError> {
        self.run(move |a| a.for_owner(&owner))
            .await
            .map(|all| all.into_iter().map(AttachmentInfo::from).collect())
    }

    /// The whole file, checked against its hash (`Incomplete` until fetched).
    pub async fn read(&self, id: String) -> Result<Vec<u8>, AttachmentError> {
        self.run(move |a| a.read(&id)).await
    }

    /// `owner` lets go of file `id` (gone once no owner holds it); whether it held it.
    pub async fn remove(&self, owner: String, id: String) -> Result<bool, AttachmentError> {
        self.run(move |a| a.detach(&owner, &id)).await
    }

    /// Bytes all files take.
    pub async fn used_bytes(&self) -> Result<i64, AttachmentError> {
        self.run(|a| a.used_bytes()).await.map(crate::signed)
    }

    /// Fetches a published file (from a `PartyDocument`'s or a `Meeting`'s `attachments`) for
    /// `owner`, over `client`'s connection: chunk by chunk, each kept as it arrives, so a fetch
    /// cut short resumes where it stopped; the whole checked against its hash (a mismatch is
    /// dropped and `Protocol`: fetch again).
    #[uniffi::method(default(cancel = None))]
    pub async fn fetch(
        &self,
        client: Arc<SyncClient>,
        owner: String,
        reference: AttachmentRef,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<AttachmentInfo, SyncError> {
        let inner = client.inner.clone();
        let vault = self.vault.clone();
        let fetch = async move { core::fetch(&inner, vault, &owner, &reference).await };
        Ok(guard(cancel).run(fetch).await?.into())
    }
}
