//! The phone that shows the QR: its signer (the platform's key) and `TransitPhone`.

use std::sync::Arc;

use thudo_core::transit as core;
use thudo_core::transit::phone;

use super::{arg, CredentialInfo, TransitError, TransitQr};
use crate::blocking;
use crate::vault::Vault;

/// Why a host signer failed.
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[uniffi::export(Display)]
pub enum SignerError {
    /// The platform refused or failed.
    #[error("{reason}")]
    Failed {
        /// What it reported.
        reason: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for SignerError {
    fn from(err: uniffi::UnexpectedUniFFICallbackError) -> Self {
        SignerError::Failed {
            reason: format!("signer threw: {}", err.reason),
        }
    }
}

/// A P-256 signer the host app provides (Secure Enclave, StrongBox), for the device key.
#[uniffi::export(with_foreign)]
pub trait TransitSigner: Send + Sync {
    /// The public key, SEC1 (compressed or uncompressed).
    fn public_key(&self) -> Result<Vec<u8>, SignerError>;
    /// ECDSA P-256 / SHA-256 signature of `message`, raw r||s or DER.
    fn sign(&self, message: Vec<u8>) -> Result<Vec<u8>, SignerError>;
}

struct ForeignSigner(Arc<dyn TransitSigner>);

impl phone::Signer for ForeignSigner {
    fn public_key(&self) -> Result<Vec<u8>, String> {
        self.0.public_key().map_err(|e| e.to_string())
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        self.0.sign(message.to_vec()).map_err(|e| e.to_string())
    }
}

/// After `TransitError.SignerKeyLost`: removes the credentials bound to the lost key from `vault`
/// (the ones `signer`, or without one the vault's own key, cannot show) and returns their
/// cards; then open the phone again. The passes stay with the backend.
#[uniffi::export(async_runtime = "tokio")]
pub async fn discard_lost_transit_credentials(
    vault: Arc<Vault>,
    signer: Option<Arc<dyn TransitSigner>>,
) -> Result<Vec<i64>, TransitError> {
    let core_vault = vault.core();
    blocking(move || {
        let signer = signer.map(ForeignSigner);
        phone::discard_lost_credentials(
            &core_vault,
            signer.as_ref().map(|s| s as &dyn phone::Signer),
        )
        .map(|cards| cards.into_iter().map(crate::card_id_to_host).collect())
        .map_err(TransitError::from)
    })
    .await
}

/// The citizen's phone: shows a fresh signed QR every refresh period, offline.
#[derive(uniffi::Object)]
pub struct TransitPhone {
    pub(crate) inner: Arc<phone::Phone>,
}

impl TransitPhone {
    /// Installs `credential` one way or the other (owner's or dependant's), off the caller's
    /// thread.
    async fn install(
        &self,
        credential: Vec<u8>,
        how: fn(&phone::Phone, &[u8]) -> Result<core::wire::CredentialFields, core::TransitError>,
    ) -> Result<CredentialInfo, TransitError> {
        let inner = self.inner.clone();
        blocking(move || {
            how(&inner, &credential)
                .map(Into::into)
                .map_err(TransitError::from)
        })
        .await
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl TransitPhone {
    /// Opens the phone's transit state in `vault`. Without `signer`, the device key is made once
    /// and kept in the vault.
    #[uniffi::constructor]
    pub async fn open(
        vault: Arc<Vault>,
        signer: Option<Arc<dyn TransitSigner>>,
        refresh_secs: i32,
    ) -> Result<Arc<Self>, TransitError> {
        let refresh_secs = arg("refresh_secs", refresh_secs.into())?;
        let core_vault = vault.core();
        let signer: Option<Arc<dyn phone::Signer>> =
            signer.map(|s| Arc::new(ForeignSigner(s)) as Arc<dyn phone::Signer>);
        let options = phone::PhoneOptions {
            refresh_secs,
            ..Default::default()
        };
        blocking(move || {
            phone::Phone::open(core_vault, signer, options).map_err(TransitError::from)
        })
        .await
        .map(|p| Arc::new(TransitPhone { inner: Arc::new(p) }))
    }

    /// The device public key (33 bytes) to send with a credential request.
    pub fn device_public_key(&self) -> Vec<u8> {
        self.inner.device_public_key().to_vec()
    }

    /// Installs a dependant's credential (a child's or an elderly parent's pass on their own
    /// card, bound to this phone's key) beside the owner's; shown with `currentQrFor`.
    pub async fn install_dependant_credential(
        &self,
        credential: Vec<u8>,
    ) -> Result<CredentialInfo, TransitError> {
        self.install(credential, phone::Phone::install_dependant_credential)
            .await
    }

    /// Installs the phone owner's credential from the backend, in place of the one held; it
    /// must bind this phone's key. A late answer for the held pass is not installed over it,
    /// and a pass that starts later, bought while the held one is in force, waits in
    /// `upcomingCredentials`; the answer is the fields of the one kept.
    pub async fn install_credential(
        &self,
        credential: Vec<u8>,
    ) -> Result<CredentialInfo, TransitError> {
        self.install(credential, phone::Phone::install_credential)
            .await
    }

    /// The installed credential, if any. Async: it waits for a QR being signed (a hardware
    /// signature can take a few hundred ms).
    pub async fn credential(&self) -> Result<Option<CredentialInfo>, TransitError> {
        let inner = self.inner.clone();
        blocking(move || Ok(inner.credential().map(Into::into))).await
    }

    /// Every credential the phone holds: the owner's first, then dependants'.
    pub async fn credentials(&self) -> Result<Vec<CredentialInfo>, TransitError> {
        let inner = self.inner.clone();
        blocking(move || Ok(inner.credentials().into_iter().map(Into::into).collect())).await
    }

    /// Passes bought ahead (next month's, bought while this month's is in force), kept beside
    /// the held ones until they start: the first QR asked for once one starts shows it. Each
    /// is renewed by `renewTransitCredentials` as its start nears.
    pub async fn upcoming_credentials(&self) -> Result<Vec<CredentialInfo>, TransitError> {
        let inner = self.inner.clone();
        blocking(move || {
            Ok(inner
                .upcoming_credentials()
                .into_iter()
                .map(Into::into)
                .collect())
        })
        .await
    }

    /// Removes a dependant's credential, and the pass bought ahead for the card (the owner's
    /// is replaced, never removed); returns whether there was one.
    pub async fn remove_credential(&self, card_id: i64) -> Result<bool, TransitError> {
        let inner = self.inner.clone();
        let card = crate::card_id_from_host(card_id);
        blocking(move || inner.remove_credential(card).map_err(TransitError::from)).await
    }

    /// The QR of card `card_id` (the owner's or a dependant's) at device time `now_unix`.
    pub async fn current_qr_for_at(
        &self,
        card_id: i64,
        now_unix: i64,
    ) -> Result<TransitQr, TransitError> {
        let now_unix = arg("now_unix", now_unix)?;
        let card = crate::card_id_from_host(card_id);
        let inner = self.inner.clone();
        blocking(move || {
            inner
                .current_qr_for(card, now_unix)
                .map(Into::into)
                .map_err(TransitError::from)
        })
        .await
    }

    /// The QR of card `card_id` to show now (system clock): the app shows the one the rider
    /// chose (a parent shows their own, then their child's).
    pub async fn current_qr_for(&self, card_id: i64) -> Result<TransitQr, TransitError> {
        self.current_qr_for_at(card_id, crate::now()).await
    }

    /// Server time minus device time in ms, as the last sync reported it
    /// (`SyncReport.clockOffsetMs`, given as it is): the QR then carries the server's time.
    pub async fn set_clock_offset_ms(&self, offset_ms: i64) -> Result<(), TransitError> {
        let inner = self.inner.clone();
        // To the nearest second, the QR's resolution.
        let offset_secs = offset_ms.saturating_add(500).div_euclid(1000);
        blocking(move || {
            inner
                .set_clock_offset(offset_secs)
                .map_err(TransitError::from)
        })
        .await
    }

    /// The device's own clock was set: call it from Android's `ACTION_TIME_CHANGED` receiver
    /// or on iOS's `NSSystemClockDidChange` (not `significantTimeChangeNotification`, which
    /// also fires at midnight). The offset of the last sync measured
    /// the old setting and is dropped until the next sync (a wrong clock put right would
    /// otherwise push every QR out of the validators' window).
    pub async fn device_clock_changed(&self) -> Result<(), TransitError> {
        let inner = self.inner.clone();
        blocking(move || inner.device_clock_changed().map_err(TransitError::from)).await
    }

    /// The QR to show at device time `now_unix` (tests and apps with their own clock).
    pub async fn current_qr_at(&self, now_unix: i64) -> Result<TransitQr, TransitError> {
        let now_unix = arg("now_unix", now_unix)?;
        let inner = self.inner.clone();
        blocking(move || {
            inner
                .current_qr(now_unix)
                .map(Into::into)
                .map_err(TransitError::from)
        })
        .await
    }

    /// The QR to show now (system clock).
    pub async fn current_qr(&self) -> Result<TransitQr, TransitError> {
        self.current_qr_at(crate::now()).await
    }
}

crate::error_api!(SignerError, {
        Failed => ("signer.failed", false),
});
