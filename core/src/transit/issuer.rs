//! The issuer: signs credentials and deny lists. Run by the backend; usable from Rust tests.

use super::deny_list::DenyList;
use super::wire::{self, CredentialFields, CREDENTIAL_LEN};
use super::{invalid, Category, Product, TransitError};
use crate::crypto::p256::{self, SoftwareKey};

/// Longest a credential may live before the phone must refresh it online.
pub const MAX_CREDENTIAL_LIFETIME_SECS: u32 = 72 * 3600;

/// An issuer's public key as validators trust it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrustedIssuerKey {
    /// Key id, as carried in credentials.
    pub key_id: u16,
    /// Uncompressed SEC1 P-256 public key (65 bytes), hex in JSON.
    #[serde(with = "hex_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^04[0-9a-f]{128}$"))]
    pub public_key: Vec<u8>,
    /// First second (unix) credentials signed by it are accepted.
    pub valid_from: u32,
    /// Last second (unix) they are accepted. Rotate with overlap: the next key's window starts
    /// before this one ends, by at least the longest credential lifetime.
    pub valid_until: u32,
}

/// An issuer signing key with its id and validity window.
pub struct IssuerKey {
    key: SoftwareKey,
    trusted: TrustedIssuerKey,
}

/// What to put in a credential.
#[derive(Debug, Clone)]
pub struct CredentialRequest {
    /// Card or account number.
    pub card_id: u64,
    /// Product bought.
    pub product: Product,
    /// Passenger category.
    pub category: Category,
    /// Route of a single-route pass; 0 otherwise.
    pub route: u16,
    /// Pass validity, unix seconds.
    pub pass_valid_from: u32,
    /// Pass validity, unix seconds.
    pub pass_valid_until: u32,
    /// The phone's public key (SEC1, compressed or not).
    pub device_public_key: Vec<u8>,
    /// How long this credential may be shown offline (at most 72 h).
    pub lifetime_secs: u32,
    /// A dependant's credential that rides only with its holder's own ticket
    /// ([`CredentialFields::with_holder`]).
    pub with_holder: bool,
}

impl IssuerKey {
    /// A new random key; returns it with its PKCS#8 document (keep that secret).
    pub fn generate(
        key_id: u16,
        valid_from: u32,
        valid_until: u32,
    ) -> Result<(Self, Vec<u8>), TransitError> {
        let (key, pkcs8) =
            SoftwareKey::generate().ok_or_else(|| invalid("key generation failed"))?;
        Ok((
            IssuerKey::with_key(key, key_id, valid_from, valid_until)?,
            pkcs8,
        ))
    }

    /// Loads a key from PKCS#8.
    pub fn from_pkcs8(
        pkcs8: &[u8],
        key_id: u16,
        valid_from: u32,
        valid_until: u32,
    ) -> Result<Self, TransitError> {
        let key =
            SoftwareKey::from_pkcs8(pkcs8).ok_or_else(|| invalid("not a P-256 PKCS#8 key"))?;
        IssuerKey::with_key(key, key_id, valid_from, valid_until)
    }

    fn with_key(
        key: SoftwareKey,
        key_id: u16,
        valid_from: u32,
        valid_until: u32,
    ) -> Result<Self, TransitError> {
        if valid_until <= valid_from {
            return Err(invalid("issuer key validity ends before it starts"));
        }
        let trusted = TrustedIssuerKey {
            key_id,
            public_key: key.public_key().to_vec(),
            valid_from,
            valid_until,
        };
        Ok(IssuerKey { key, trusted })
    }

    /// What validators must hold to trust this key.
    pub fn trusted(&self) -> &TrustedIssuerKey {
        &self.trusted
    }

    /// Signs a credential, after checking that the request makes sense. `now` is unix seconds.
    pub fn issue(
        &self,
        req: &CredentialRequest,
        now: u32,
    ) -> Result<[u8; CREDENTIAL_LEN], TransitError> {
        if now < self.trusted.valid_from || now > self.trusted.valid_until {
            return Err(invalid("the issuer key is not valid now"));
        }
        match (req.product, req.category.rides_free()) {
            (Product::FreePass, false) => {
                return Err(invalid("a free pass is only for free-rider categories"))
            }
            (Product::FreePass, true) => {}
            (_, true) => return Err(invalid("free-rider categories get a free pass")),
            _ => {}
        }
        // A single-route pass (or a line's ticket) names its route, never 0; an all-routes
        // product names none (the shipped tariff's rules).
        if !super::tariff::shipped().may_name(req.product, req.route) {
            return Err(invalid(if req.route == 0 {
                "this product names the route it rides"
            } else {
                "this product names no route"
            }));
        }
        if req.pass_valid_until <= req.pass_valid_from {
            return Err(invalid("pass validity ends before it starts"));
        }
        if req.lifetime_secs == 0 || req.lifetime_secs > MAX_CREDENTIAL_LIFETIME_SECS {
            return Err(invalid("credential lifetime must be 1 s to 72 h"));
        }
        let uncompressed = p256::decompress(&req.device_public_key)
            .ok_or_else(|| invalid("the device public key is not a P-256 point"))?;
        let device_public_key =
            p256::compress(&uncompressed).ok_or_else(|| invalid("bad device key"))?;
        let not_after = now
            .saturating_add(req.lifetime_secs)
            .min(self.trusted.valid_until);
        let fields = CredentialFields {
            issuer_key_id: self.trusted.key_id,
            card_id: req.card_id,
            product: req.product,
            category: req.category,
            route: req.route,
            pass_valid_from: req.pass_valid_from,
            pass_valid_until: req.pass_valid_until,
            not_after,
            device_public_key,
            with_holder: req.with_holder,
        };
        let body = fields.encode();
        let signature = self.sign(&wire::credential_message(&body))?;
        let mut out = [0u8; CREDENTIAL_LEN];
        out[..body.len()].copy_from_slice(&body);
        out[body.len()..].copy_from_slice(&signature);
        Ok(out)
    }

    /// Signs a deny list for validators.
    pub fn sign_deny_list(&self, list: &DenyList) -> Result<Vec<u8>, TransitError> {
        let body = list.encode(self.trusted.key_id);
        let signature = self.sign(&[DenyList::TAG, &body].concat())?;
        Ok([body, signature.to_vec()].concat())
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64], TransitError> {
        self.key.sign(message).ok_or_else(|| TransitError::Signer {
            reason: "issuer signing failed".into(),
        })
    }
}

/// An issuer's keys over time. Rotation with overlap: add the next key with a window that starts
/// before the current one ends (by at least the longest credential lifetime); from its start it
/// signs, while validators keep trusting the old key until its window ends.
#[derive(Default)]
pub struct IssuerKeyring {
    keys: Vec<IssuerKey>,
}

impl IssuerKeyring {
    /// A keyring holding `keys`. Key ids must be unique.
    pub fn new(keys: Vec<IssuerKey>) -> Result<Self, TransitError> {
        let mut ids: Vec<u16> = keys.iter().map(|k| k.trusted.key_id).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(invalid("duplicate issuer key id"));
        }
        Ok(IssuerKeyring { keys })
    }

    /// The key to sign with at `now`: of the keys valid now, the one that started last.
    pub fn signing_key(&self, now: u32) -> Option<&IssuerKey> {
        self.keys
            .iter()
            .filter(|k| k.trusted.valid_from <= now && now <= k.trusted.valid_until)
            .max_by_key(|k| k.trusted.valid_from)
    }

    /// Adds a key (its id must be new).
    pub fn add(&mut self, key: IssuerKey) -> Result<(), TransitError> {
        if self
            .keys
            .iter()
            .any(|k| k.trusted.key_id == key.trusted.key_id)
        {
            return Err(invalid("duplicate issuer key id"));
        }
        self.keys.push(key);
        Ok(())
    }

    /// Every key ever held, with its window: what verifies a scan made at any time (the
    /// backend re-verifying taps uploaded days later).
    pub fn all_trusted(&self) -> Vec<TrustedIssuerKey> {
        self.keys.iter().map(|k| k.trusted.clone()).collect()
    }

    /// The keys validators should hold at `now`: every key whose window has not ended, including
    /// keys that start later (so validators learn them before the first credential they sign).
    pub fn trusted_keys(&self, now: u32) -> Vec<TrustedIssuerKey> {
        self.keys
            .iter()
            .filter(|k| now <= k.trusted.valid_until)
            .map(|k| k.trusted.clone())
            .collect()
    }
}

/// Hex (de)serialisation of byte fields in JSON.
pub(crate) mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        crate::hex::decode(&text).ok_or_else(|| serde::de::Error::custom("invalid hex"))
    }
}
