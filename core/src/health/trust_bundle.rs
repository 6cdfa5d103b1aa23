//! The health trust bundle: whom a device trusts to sign health cards and vaccine passports,
//! published by the backend, signed, versioned and dated, installed on the device.
//!
//! A bundle is a compact JWS (ES256, `typ` [`JWS_TYPE`]) over [`TrustBundle`]: the SMART Health
//! Card issuers with their JWKS and revocation lists, and the EU DCC Document Signer
//! Certificates. The device checks it against the trust-list key the app was built with (never
//! one the network offers), refuses a bundle older than the one it holds (a rollback would
//! bring back a removed issuer) and keeps the newest in the vault. A bundle past its expiry is
//! still used (a stale list beats none) but reported stale, so the app can say so.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::shc::TrustStore;
use crate::crypto::p256;
use crate::vault::{Document, Vault, VaultError};

/// The JWS `typ` of a trust bundle: a JWS signed for another purpose is not a bundle.
pub const JWS_TYPE: &str = "thudo-health-trust+jws";
/// Largest bundle accepted (a national list is tens of KB).
pub const MAX_BUNDLE: usize = 2 * 1024 * 1024;

/// A SMART Health Card issuer as the bundle carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CardIssuer {
    /// The issuer's `iss` URL.
    pub iss: String,
    /// Its JWKS document.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub jwks: Value,
    /// Its revocation lists (`{kid, method: "rid", rids}`).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub crls: Vec<Value>,
}

impl CardIssuer {
    /// Checks that every key announcing a revocation list (`crlVersion`, SMART Health Cards)
    /// comes with that list at that version or later (`ctr`): without it, cards the issuer
    /// revoked would verify.
    pub fn revocations_current(&self) -> Result<(), String> {
        let keys = self.jwks["keys"].as_array().map_or(&[][..], Vec::as_slice);
        for key in keys
            .iter()
            .filter(|k| crate::health::shc::is_signing_key(k))
        {
            let Some(announced) = key.get("crlVersion") else {
                continue;
            };
            let kid = key["kid"].as_str().unwrap_or_default();
            let announced = announced.as_u64().ok_or_else(|| {
                format!("issuer {}: key {kid}'s crlVersion is not a count", self.iss)
            })?;
            let carried = self
                .crls
                .iter()
                .filter(|crl| crl["kid"] == kid)
                .filter_map(|crl| crl["ctr"].as_u64())
                .max();
            if carried.is_none_or(|ctr| ctr < announced) {
                return Err(format!(
                    "issuer {}: key {kid} announces revocation list version {announced}, the \
                     bundle carries {}",
                    self.iss,
                    carried.map_or("none".to_owned(), |c| format!("version {c}"))
                ));
            }
        }
        Ok(())
    }
}

/// An EU DCC Document Signer Certificate as the bundle carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PassportSigner {
    /// The country it signs for.
    pub country: String,
    /// The certificate, base64 DER.
    pub certificate: String,
}

/// The bundle's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrustBundle {
    /// Grows with every publication; a device never installs a lower one.
    pub version: u64,
    /// When it was published (seconds since the epoch).
    pub issued_at: i64,
    /// When it goes stale (seconds since the epoch).
    pub expires_at: i64,
    /// Health-card issuers.
    #[serde(default)]
    pub card_issuers: Vec<CardIssuer>,
    /// Vaccine-passport signers.
    #[serde(default)]
    pub passport_signers: Vec<PassportSigner>,
    /// Revoked vaccine passports: SHA-256 of each UVCI (32 bytes), hex or base64, with no kind
    /// written. Every version of the library reads this field; the gateway's other forms go in
    /// `passport_revocation_hashes`, which versions before it ignore (a form they cannot read
    /// here would make them refuse the whole bundle).
    #[serde(default)]
    pub passport_revocations: Vec<String>,
    /// Revoked vaccine passports as the EU gateway publishes them: SHA-256, whole or its first
    /// 16 bytes, hex or base64, after its kind: `UCI:` (the UVCI), `COUNTRYCODEUCI:` (the
    /// issuing country, the CWT's `iss`, followed by the UVCI) or `SIGNATURE:` (the COSE
    /// signature, its `r` half for ECDSA); no kind means `UCI:`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub passport_revocation_hashes: Vec<String>,
    /// When the health authority published this content (seconds since the epoch); a bundle
    /// the backend signed again keeps it. Devices ignore it; the backend stops signing the
    /// content again once it is too old, so a list nobody vouched for lately goes stale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_published_at: Option<i64>,
}

/// Why a bundle was refused.
#[derive(Debug, thiserror::Error)]
pub enum TrustBundleError {
    /// Not a compact JWS of a bundle, too large, or its content does not load.
    #[error("malformed trust bundle: {detail}")]
    Malformed {
        /// What was wrong.
        detail: String,
    },
    /// Not signed by the trust-list key.
    #[error("the trust bundle is not signed by the trust-list key")]
    BadSignature,
    /// Older than the installed one, or the same version with other content.
    #[error("trust bundle {offered} is older than the installed {installed}")]
    Rollback {
        /// The installed version.
        installed: u64,
        /// The version offered.
        offered: u64,
    },
    /// Already expired when offered (a fresh one is never older than the installed one).
    #[error("the trust bundle expired at {expires_at}")]
    Expired {
        /// Seconds since the epoch.
        expires_at: i64,
    },
    /// The vault failed.
    #[error(transparent)]
    Vault(#[from] VaultError),
}

fn malformed(detail: impl Into<String>) -> TrustBundleError {
    TrustBundleError::Malformed {
        detail: detail.into(),
    }
}

impl TrustBundle {
    /// The trust store the verifiers use: every issuer's keys and revocation lists, every
    /// signer certificate. A bundle whose content does not load, or with an issuer key
    /// announcing a revocation list it does not carry ([`CardIssuer::revocations_current`]),
    /// is refused whole: the backend's check before it signs one.
    pub fn trust_store(&self) -> Result<TrustStore, TrustBundleError> {
        self.load(true).map(|(store, _)| store)
    }

    /// The trust store a device uses: as [`TrustBundle::trust_store`], but an issuer whose keys
    /// or revocation lists do not load here, or a signer certificate that does not, is left
    /// out (and named in the list returned) instead of refusing the bundle. The backend loaded
    /// all of it before signing, so such an entry is one this version cannot read (a newer
    /// key type): refusing the bundle would also stop every later revocation. Leaving an entry
    /// out trusts less, never more: an issuer goes with its keys when its revocation list
    /// does not load; the passports' revocation lists still refuse the bundle.
    pub fn device_trust_store(&self) -> Result<(TrustStore, Vec<String>), TrustBundleError> {
        self.load(false)
    }

    fn load(&self, strict: bool) -> Result<(TrustStore, Vec<String>), TrustBundleError> {
        let mut store = TrustStore::new();
        let mut left_out = Vec::new();
        let mut refuse_or_leave_out = |what: String| {
            if strict {
                Err(malformed(what))
            } else {
                left_out.push(what);
                Ok(())
            }
        };
        for issuer in &self.card_issuers {
            let add = |to: &mut TrustStore| {
                to.add_jwks(&issuer.iss, &issuer.jwks.to_string())?;
                for crl in &issuer.crls {
                    to.add_crl(&crl.to_string())?;
                }
                Ok::<_, crate::health::shc::ShcError>(())
            };
            // An issuer is taken whole, keys and revocation lists, or not at all: tried alone
            // first (trying it on a copy of the whole store cost a copy per issuer, quadratic
            // in the bundle), then added, which cannot fail the second time.
            match add(&mut TrustStore::new()) {
                Ok(()) => {
                    add(&mut store).map_err(|e| malformed(format!("issuer {}: {e}", issuer.iss)))?
                }
                Err(e) => refuse_or_leave_out(format!("issuer {}: {e}", issuer.iss))?,
            }
            // The backend publishes no issuer without the revocations its keys announce.
            if strict {
                issuer.revocations_current().map_err(malformed)?;
            }
        }
        for signer in &self.passport_signers {
            if let Err(e) = store
                .dcc
                .add_base64(&signer.certificate, Some(&signer.country))
            {
                refuse_or_leave_out(format!("signer for {}: {e}", signer.country))?;
            }
        }
        // The field every version reads holds only what every version can read.
        store
            .dcc
            .revoke_uvci_hashes(&self.passport_revocations)
            .map_err(|e| {
                malformed(format!(
                    "passport_revocations: {e} (the gateway's other forms go in passport_revocation_hashes)"
                ))
            })?;
        store
            .dcc
            .revoke_hashes(&self.passport_revocation_hashes)
            .map_err(|e| malformed(format!("passport_revocation_hashes: {e}")))?;
        Ok((store, left_out))
    }

    /// Signs the bundle with the trust-list key (the backend's side).
    pub fn sign(&self, key: &p256::SoftwareKey) -> Result<String, TrustBundleError> {
        let header = serde_json::json!({ "alg": "ES256", "typ": JWS_TYPE });
        let payload = serde_json::to_vec(self).map_err(|e| malformed(e.to_string()))?;
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature = key
            .sign(signed.as_bytes())
            .ok_or_else(|| malformed("signing failed"))?;
        Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

/// A trust-list public key as apps configure it: base64 (standard or URL-safe) of the P-256
/// point, compressed or not.
pub fn parse_anchor(text: &str) -> Option<[u8; p256::UNCOMPRESSED_KEY_LEN]> {
    let text = text.trim();
    let bytes = URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(text))
        .ok()?;
    p256::decompress(&bytes)
}

/// Checks a bundle's signature with `anchor` (the trust-list key the app was built with) and
/// reads it. Expiry is not checked here (see [`install`]).
pub fn open(jws: &str, anchor: &[u8]) -> Result<TrustBundle, TrustBundleError> {
    let jws = jws.trim();
    if jws.len() > MAX_BUNDLE {
        return Err(malformed(format!("larger than {MAX_BUNDLE} bytes")));
    }
    let parts: Vec<&str> = jws.split('.').collect();
    let [header, payload, signature] = parts[..] else {
        return Err(malformed("a compact JWS has three parts"));
    };
    let header: Value = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or_else(|| malformed("the header is not base64url JSON"))?;
    if header["alg"] != "ES256" || header["typ"] != JWS_TYPE {
        return Err(malformed(format!(
            "the header must be ES256 and {JWS_TYPE}"
        )));
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| malformed("the signature is not base64url"))?;
    let signed = &jws[..jws.len() - parts[2].len() - 1];
    if !p256::verify(anchor, signed.as_bytes(), &signature) {
        return Err(TrustBundleError::BadSignature);
    }
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| malformed("the payload is not base64url"))?;
    serde_json::from_slice(&payload).map_err(|e| malformed(format!("not a trust bundle: {e}")))
}

/// The installed bundle, as the vault keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Installed {
    /// The signed bundle as received (checked when installed; the vault authenticates it
    /// since).
    pub jws: String,
    /// Its version.
    pub version: u64,
    /// When it was published.
    pub issued_at: i64,
    /// When it goes stale.
    pub expires_at: i64,
    /// When this device installed it.
    pub installed_at: i64,
}

impl Document for Installed {
    const COLLECTION: &'static str = "health.trust_bundle";
    fn id(&self) -> String {
        "installed".into()
    }
}

/// Where a device's trust stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrustStatus {
    /// The installed version.
    pub version: u64,
    /// When it was published.
    pub issued_at: i64,
    /// When it goes stale.
    pub expires_at: i64,
    /// When this device installed it.
    pub installed_at: i64,
    /// Whether it is past its expiry: verification goes on with it, and the app should say
    /// the list may be out of date.
    pub stale: bool,
}

impl Installed {
    fn status(&self, now: i64) -> TrustStatus {
        TrustStatus {
            version: self.version,
            issued_at: self.issued_at,
            expires_at: self.expires_at,
            installed_at: self.installed_at,
            stale: now > self.expires_at,
        }
    }
}

/// Verifies and installs a bundle: signed by `anchor`, not expired, its content loadable (an
/// entry this version cannot read is left out and logged, see
/// [`TrustBundle::device_trust_store`]), and newer than the installed one. The installed
/// version offered again (a retry, a second delivery) changes nothing; an older one, or the
/// same version with other content, is a [`TrustBundleError::Rollback`]. An installed bundle
/// that `anchor` did not sign (the app now carries another trust-list key) is replaced by any
/// bundle `anchor` signed.
pub fn install(
    vault: &Vault,
    jws: &str,
    anchor: &[u8],
    now: i64,
) -> Result<TrustStatus, TrustBundleError> {
    let bundle = open(jws, anchor)?;
    for entry in bundle.device_trust_store()?.1 {
        log::warn!(
            "trust bundle {}: left out, not readable here: {entry}",
            bundle.version
        );
    }
    let jws = jws.trim().to_owned();
    vault.transaction(|tx| {
        // Only a bundle the app's key signed sets a floor: one signed by a key the app no longer
        // holds (retired, or replaced after it leaked, its holder having signed the highest
        // version there is) gives way to the first bundle this key signs, whatever its version.
        let current = tx
            .get_doc::<Installed>("installed")?
            .filter(|current| signed_by(current, anchor));
        if let Some(current) = current {
            if current.version > bundle.version
                || (current.version == bundle.version && current.jws != jws)
            {
                return Err(TrustBundleError::Rollback {
                    installed: current.version,
                    offered: bundle.version,
                });
            }
            // Offered again once it has expired too: nothing changes, and nothing is wrong.
            if current.version == bundle.version {
                return Ok(current.status(now));
            }
        }
        if bundle.expires_at < now {
            return Err(TrustBundleError::Expired {
                expires_at: bundle.expires_at,
            });
        }
        let installed = Installed {
            jws: jws.clone(),
            version: bundle.version,
            issued_at: bundle.issued_at,
            expires_at: bundle.expires_at,
            installed_at: now,
        };
        tx.put_doc(&installed)?;
        Ok(installed.status(now))
    })
}

/// The installed bundle's status, if one is installed.
pub fn status(vault: &Vault, now: i64) -> Result<Option<TrustStatus>, TrustBundleError> {
    Ok(vault
        .get_doc::<Installed>("installed")?
        .map(|i| i.status(now)))
}

/// The installed bundle's status if `anchor` signed it.
pub fn status_signed_by(
    vault: &Vault,
    anchor: &[u8],
    now: i64,
) -> Result<Option<TrustStatus>, TrustBundleError> {
    Ok(vault
        .get_doc::<Installed>("installed")?
        .filter(|installed| signed_by(installed, anchor))
        .map(|installed| installed.status(now)))
}

/// Whether `anchor` signed the installed bundle. Only a signature by another key says no: a
/// bundle this version no longer reads in full (a later format) keeps its version floor.
fn signed_by(installed: &Installed, anchor: &[u8]) -> bool {
    !matches!(
        open(&installed.jws, anchor),
        Err(TrustBundleError::BadSignature)
    )
}

/// The trust store of the installed bundle, if one is installed. The bundle was checked when
/// installed; the vault is encrypted and authenticated, so it is read as stored.
pub fn installed_trust(vault: &Vault) -> Result<Option<TrustStore>, TrustBundleError> {
    vault
        .get_doc::<Installed>("installed")?
        .map(|installed| trust_of(&installed))
        .transpose()
}

/// [`installed_trust`] if `anchor` (the trust-list key the app carries now) signed the
/// installed bundle; `None` when it did not (a bundle from a key the app no longer carries
/// vouches for nothing until the new key's replaces it). The bundle checked is the one read.
pub fn installed_trust_signed_by(
    vault: &Vault,
    anchor: &[u8],
) -> Result<Option<TrustStore>, TrustBundleError> {
    match vault.get_doc::<Installed>("installed")? {
        Some(installed) if signed_by(&installed, anchor) => Ok(Some(trust_of(&installed)?)),
        _ => Ok(None),
    }
}

/// The trust store an installed bundle holds.
fn trust_of(installed: &Installed) -> Result<TrustStore, TrustBundleError> {
    let payload = installed
        .jws
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .ok_or_else(|| malformed("the installed bundle is unreadable"))?;
    let bundle: TrustBundle =
        serde_json::from_slice(&payload).map_err(|e| malformed(e.to_string()))?;
    Ok(bundle.device_trust_store()?.0)
}

/// Why a refresh did not install a bundle.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// The backend could not be reached or refused the call.
    #[error(transparent)]
    Backend(#[from] crate::net::BackendError),
    /// The bundle it gave was refused; the installed one stays.
    #[error(transparent)]
    Bundle(#[from] TrustBundleError),
}

/// Fetches the published bundle (`GET /v1/health/trust-bundle`, as the registered device) and
/// installs it (see [`install`]). `None` when nothing is published yet. The installed version
/// is named (`?have=`), so a backend that still publishes it answers `unchanged` instead of
/// sending the whole bundle again.
pub async fn refresh(
    client: &crate::net::BackendClient,
    vault: std::sync::Arc<Vault>,
    anchor: [u8; p256::UNCOMPRESSED_KEY_LEN],
    now: i64,
) -> Result<Option<TrustStatus>, RefreshError> {
    #[derive(Deserialize)]
    struct Published {
        #[serde(default)]
        bundle: Option<String>,
        #[serde(default)]
        unchanged: bool,
    }
    // Only a bundle this key signed is named: one a retired key signed is to be replaced,
    // even by the same version number.
    let held = {
        let vault = vault.clone();
        crate::net::blocking(move || Ok(status_signed_by(&vault, &anchor, now))).await??
    };
    let mut path = format!("{}/health/trust-bundle", crate::net::protocol::API_PREFIX);
    if let Some(held) = &held {
        path.push_str(&format!("?have={}", held.version));
    }
    let published: Published = match client
        .request(vault.clone(), http::Method::GET, &path, None)
        .await
    {
        Ok(p) => p,
        Err(crate::net::BackendError::Refused { status: 404, .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let bundle = match (published.bundle, published.unchanged, held) {
        (Some(bundle), _, _) => bundle,
        // What it holds is current (dates as installed, staleness as of `now`).
        (None, true, Some(held)) => return Ok(Some(held)),
        (None, _, _) => {
            return Err(malformed("the backend answered neither a bundle nor `unchanged`").into())
        }
    };
    let installed =
        crate::net::blocking(move || Ok(install(&vault, &bundle, &anchor, now))).await?;
    Ok(Some(installed?))
}
