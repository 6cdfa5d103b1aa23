//! The issuer, for backends and tests: `TransitIssuer` signs credentials.

use std::sync::Arc;

use thudo_core::transit::{issuer, validator};
use thudo_core::transit::{Category as PassengerCategory, Product as TransitProduct};

use super::{arg, TransitError, TrustedIssuerKey};

/// What to put in a credential, issuer side.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CredentialRequest {
    /// Card or account number.
    pub card_id: i64,
    /// Product.
    pub product: TransitProduct,
    /// Category.
    pub category: PassengerCategory,
    /// Route of a single-route pass, else 0.
    pub route: i32,
    /// Pass validity start (unix seconds).
    pub pass_valid_from: i64,
    /// Pass validity end (unix seconds).
    pub pass_valid_until: i64,
    /// The phone's public key.
    pub device_public_key: crate::Bytes,
    /// Offline lifetime in seconds, at most 72 h.
    pub lifetime_secs: i64,
    /// A dependant's credential that rides only with its holder's own ticket (tapped on the
    /// same validator within two minutes before it): set for a guardian's phone unless the
    /// operator recorded that the dependant travels alone.
    #[uniffi(default = false)]
    pub with_holder: bool,
}

/// An issuer key: signs credentials and deny lists. For backends and tests; phones never hold
/// one.
#[derive(uniffi::Object)]
pub struct TransitIssuer {
    inner: issuer::IssuerKey,
}

#[uniffi::export]
impl TransitIssuer {
    /// A new random issuer key.
    #[uniffi::constructor]
    pub fn generate(
        key_id: i32,
        valid_from: i64,
        valid_until: i64,
    ) -> Result<Arc<Self>, TransitError> {
        let (inner, _) = issuer::IssuerKey::generate(
            arg("key_id", key_id.into())?,
            arg("valid_from", valid_from)?,
            arg("valid_until", valid_until)?,
        )?;
        Ok(Arc::new(TransitIssuer { inner }))
    }

    /// The key validators must trust.
    pub fn trusted_key(&self) -> TrustedIssuerKey {
        self.inner.trusted().clone().into()
    }

    /// Signs a credential at issuer time `now_unix`.
    pub fn issue(
        &self,
        request: CredentialRequest,
        now_unix: i64,
    ) -> Result<Vec<u8>, TransitError> {
        let request = issuer::CredentialRequest {
            card_id: crate::card_id_from_host(request.card_id),
            product: request.product,
            category: request.category,
            route: arg("route", request.route.into())?,
            pass_valid_from: arg("pass_valid_from", request.pass_valid_from)?,
            pass_valid_until: arg("pass_valid_until", request.pass_valid_until)?,
            device_public_key: request.device_public_key.0,
            lifetime_secs: arg("lifetime_secs", request.lifetime_secs)?,
            with_holder: request.with_holder,
        };
        Ok(self
            .inner
            .issue(&request, arg("now_unix", now_unix)?)?
            .to_vec())
    }

    /// Signs a deny list.
    pub fn sign_deny_list(
        &self,
        version: i64,
        issued_at: i64,
        cards: Vec<i64>,
    ) -> Result<Vec<u8>, TransitError> {
        let list = validator::DenyList {
            version: arg("version", version)?,
            issued_at: arg("issued_at", issued_at)?,
            cards: cards.into_iter().map(crate::card_id_from_host).collect(),
            devices: Vec::new(),
        };
        Ok(self.inner.sign_deny_list(&list)?)
    }
}
