//! Document Signer Certificates (DSCs): the X.509 certificates whose keys sign EU Digital COVID
//! Certificates, as a trust list carries them. Each is kept with what limits it: its validity
//! and the certificate types its extended key usage allows.

use std::collections::HashMap;

use ring::digest;
use x509_cert::der::{self, Decode};
use x509_cert::ext::pkix::ExtendedKeyUsage;
use x509_cert::Certificate;

use super::{CertificateKind, DccError};
use crate::crypto::p256;

/// The DSC extended key usages of the EU specification (and their alternative spelling), by the
/// certificate type they allow.
const KEY_USAGES: &[(&str, CertificateKind)] = &[
    ("1.3.6.1.4.1.1847.2021.1.1", CertificateKind::Test),
    ("1.3.6.1.4.1.1847.2021.1.2", CertificateKind::Vaccination),
    ("1.3.6.1.4.1.1847.2021.1.3", CertificateKind::Recovery),
    ("1.3.6.1.4.1.0.1847.2021.1.1", CertificateKind::Test),
    ("1.3.6.1.4.1.0.1847.2021.1.2", CertificateKind::Vaccination),
    ("1.3.6.1.4.1.0.1847.2021.1.3", CertificateKind::Recovery),
];

const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const P256_CURVE: &str = "1.2.840.10045.3.1.7";
const P384_CURVE: &str = "1.3.132.0.34";
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const RSA_PSS: &str = "1.2.840.113549.1.1.10";
const COUNTRY_NAME: &str = "2.5.4.6";
const EXTENDED_KEY_USAGE: &str = "2.5.29.37";

/// Largest DSC accepted (real ones are about 1 KB).
const MAX_CERTIFICATE: usize = 16 * 1024;

/// A signer's public key, in the form ring verifies with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignerKey {
    /// P-256, uncompressed SEC1 point (for ES256).
    P256(Vec<u8>),
    /// P-384, uncompressed SEC1 point (for ES384, which some issuers used).
    P384(Vec<u8>),
    /// RSA, the PKCS#1 `RSAPublicKey` DER (for PS256).
    Rsa(Vec<u8>),
}

/// One Document Signer Certificate as the list holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// The key id: the first 8 bytes of the SHA-256 of the certificate's DER.
    pub kid: [u8; 8],
    /// The issuing country (the certificate's subject `C`, or the one the trust list gives).
    pub country: String,
    /// Valid from (seconds since the epoch).
    pub not_before: i64,
    /// Valid until (seconds since the epoch).
    pub not_after: i64,
    /// The certificate types it may sign: `None` when its extended key usage names no DCC
    /// usage, which the specification reads as all three; otherwise the DCC usages it lists (a
    /// critical extended key usage for other purposes only allows none).
    pub allowed: Option<Vec<CertificateKind>>,
    /// The public key.
    pub key: SignerKey,
}

impl Signer {
    /// Reads a DSC from its DER. `country` overrides the subject's `C` (a trust list names the
    /// country it carries the certificate for).
    pub fn from_der(der: &[u8], country: Option<&str>) -> Result<Signer, DccError> {
        let bad = |d: String| DccError::BadTrustData { detail: d };
        if der.len() > MAX_CERTIFICATE {
            return Err(bad(format!("certificate of {} bytes", der.len())));
        }
        let cert = Certificate::from_der(der).map_err(|e| bad(format!("not X.509 DER: {e}")))?;
        let tbs = &cert.tbs_certificate;
        let spki = &tbs.subject_public_key_info;
        let bits = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| bad("the public key has unused bits".into()))?;
        let key = match spki.algorithm.oid.to_string().as_str() {
            EC_PUBLIC_KEY => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.decode_as::<der::asn1::ObjectIdentifier>().ok());
                match curve.map(|c| c.to_string()).as_deref() {
                    Some(P256_CURVE) => {
                        let point = p256::decompress(bits)
                            .ok_or_else(|| bad("the EC key is not a P-256 point".into()))?;
                        SignerKey::P256(point.to_vec())
                    }
                    // ring checks the point when it verifies.
                    Some(P384_CURVE) if bits.len() == 97 && bits[0] == 4 => {
                        SignerKey::P384(bits.to_vec())
                    }
                    _ => return Err(bad("an EC key on a curve other than P-256 or P-384".into())),
                }
            }
            RSA_ENCRYPTION | RSA_PSS => SignerKey::Rsa(bits.to_vec()),
            other => return Err(bad(format!("unsupported key algorithm {other}"))),
        };
        let country = match country {
            Some(c) => c.to_owned(),
            None => tbs
                .subject
                .0
                .iter()
                .flat_map(|rdn| rdn.0.iter())
                .find(|atv| atv.oid.to_string() == COUNTRY_NAME)
                .and_then(|atv| {
                    atv.value
                        .decode_as::<der::asn1::PrintableStringRef<'_>>()
                        .map(|s| s.to_string())
                        .ok()
                        .or_else(|| {
                            atv.value
                                .decode_as::<der::asn1::Utf8StringRef<'_>>()
                                .map(|s| s.to_string())
                                .ok()
                        })
                })
                .unwrap_or_default(),
        };
        let mut allowed: Option<Vec<CertificateKind>> = None;
        for ext in tbs.extensions.iter().flatten() {
            if ext.extn_id.to_string() != EXTENDED_KEY_USAGE {
                continue;
            }
            let usages = ExtendedKeyUsage::from_der(ext.extn_value.as_bytes())
                .map_err(|e| bad(format!("unreadable extended key usage: {e}")))?;
            let kinds: Vec<CertificateKind> = usages
                .0
                .iter()
                .filter_map(|oid| {
                    let oid = oid.to_string();
                    KEY_USAGES
                        .iter()
                        .find(|(o, _)| *o == oid)
                        .map(|(_, kind)| *kind)
                })
                .collect();
            // RFC 5280: a critical extended key usage limits the key to what it lists; a
            // non-critical one that names no DCC usage is advice about other purposes.
            if ext.critical || !kinds.is_empty() {
                allowed = Some(kinds);
            }
        }
        let time = |t: &x509_cert::time::Time| t.to_unix_duration().as_secs() as i64;
        Ok(Signer {
            kid: key_id(der),
            country,
            not_before: time(&tbs.validity.not_before),
            not_after: time(&tbs.validity.not_after),
            allowed,
            key,
        })
    }

    /// Whether this signer may sign a certificate of `kind`.
    pub fn allows(&self, kind: CertificateKind) -> bool {
        self.allowed.as_ref().is_none_or(|k| k.contains(&kind))
    }

    /// Verifies a COSE signature over `message` with algorithm `alg` (COSE: -7 ES256, -35
    /// ES384, -37 PS256). A key of the wrong type for the algorithm fails.
    pub fn verify(&self, alg: i64, message: &[u8], signature: &[u8]) -> bool {
        use ring::signature::{
            UnparsedPublicKey, ECDSA_P384_SHA256_ASN1, ECDSA_P384_SHA384_FIXED,
            RSA_PSS_2048_8192_SHA256,
        };
        match (&self.key, alg) {
            (SignerKey::P256(point), -7) => p256::verify(point, message, signature),
            (SignerKey::P384(point), -35) => {
                UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, point)
                    .verify(message, signature)
                    .is_ok()
            }
            // COSE names the hash, not the curve: ES256 on a P-384 key is SHA-256 on P-384
            // (Spain signed so), which ring verifies from a DER signature. Exactly r||s of 48
            // bytes each: a padded form would verify too, and dodge revocation by signature,
            // which hashes the first half.
            (SignerKey::P384(point), -7) if signature.len() == 96 => raw_to_der(signature)
                .is_some_and(|der| {
                    UnparsedPublicKey::new(&ECDSA_P384_SHA256_ASN1, point)
                        .verify(message, &der)
                        .is_ok()
                }),
            (SignerKey::Rsa(key), -37) => UnparsedPublicKey::new(&RSA_PSS_2048_8192_SHA256, key)
                .verify(message, signature)
                .is_ok(),
            _ => false,
        }
    }
}

/// A raw r||s ECDSA signature as the DER `SEQUENCE { r INTEGER, s INTEGER }`.
fn raw_to_der(signature: &[u8]) -> Option<Vec<u8>> {
    use x509_cert::der::asn1::UintRef;
    use x509_cert::der::Encode;
    if signature.is_empty() || signature.len() % 2 != 0 {
        return None;
    }
    let (r, s) = signature.split_at(signature.len() / 2);
    let mut pair = der::asn1::SequenceOf::<UintRef<'_>, 2>::new();
    pair.add(UintRef::new(r).ok()?).ok()?;
    pair.add(UintRef::new(s).ok()?).ok()?;
    pair.to_der().ok()
}

/// The key id of a DSC: the first 8 bytes of the SHA-256 of its DER.
pub fn key_id(der: &[u8]) -> [u8; 8] {
    let hash = digest::digest(&digest::SHA256, der);
    let mut kid = [0u8; 8];
    kid.copy_from_slice(&hash.as_ref()[..8]);
    kid
}

/// The Document Signer Certificates a device trusts, by key id.
#[derive(Debug, Clone, Default)]
pub struct SignerList {
    by_kid: HashMap<[u8; 8], Vec<Signer>>,
    /// Revoked certificates: the first 128 bits of each revocation hash, by kind.
    revoked: std::collections::HashSet<(RevocationHash, [u8; 16])>,
}

/// The three hashes by which the EU scheme's revocation lists name a certificate, each a
/// SHA-256 of which the lists carry the first 128 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevocationHash {
    /// `UCI`: of the certificate identifier (UVCI) as written.
    Uci,
    /// `COUNTRYCODEUCI`: of the issuing country (the CWT's `iss`) followed by the UVCI.
    CountryCodeUci,
    /// `SIGNATURE`: of the COSE signature (only its `r` half for ECDSA).
    Signature,
}

/// The first 128 bits of SHA-256 of `bytes`: a revocation list's key.
fn revocation_key(bytes: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest::digest(&digest::SHA256, bytes).as_ref()[..16]);
    out
}

/// The revocation hash of a certificate identifier: SHA-256 of the UVCI as written.
pub fn uvci_hash(uvci: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, uvci.as_bytes()).as_ref());
    out
}

impl SignerList {
    /// An empty list.
    pub fn new() -> Self {
        SignerList::default()
    }

    /// Trusts a DSC given as DER; returns its key id. The same certificate twice is kept once.
    pub fn add_der(&mut self, der: &[u8], country: Option<&str>) -> Result<[u8; 8], DccError> {
        Ok(self.add_signer(Signer::from_der(der, country)?))
    }

    /// Trusts a signer already read; returns its key id. The same signer twice is kept once.
    pub fn add_signer(&mut self, signer: Signer) -> [u8; 8] {
        let kid = signer.kid;
        let same_kid = self.by_kid.entry(kid).or_default();
        if !same_kid.contains(&signer) {
            same_kid.push(signer);
        }
        kid
    }

    /// Trusts a DSC given as base64 DER (as trust lists and the test data carry it).
    pub fn add_base64(
        &mut self,
        der_base64: &str,
        country: Option<&str>,
    ) -> Result<[u8; 8], DccError> {
        use base64::Engine;
        let compact: String = der_base64.split_whitespace().collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|_| DccError::BadTrustData {
                detail: "the certificate is not base64".into(),
            })?;
        self.add_der(&der, country)
    }

    /// The signers with this key id (two certificates may share one: the id is 8 bytes).
    pub fn by_kid(&self, kid: &[u8]) -> &[Signer] {
        <[u8; 8]>::try_from(kid)
            .ok()
            .and_then(|k| self.by_kid.get(&k))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Revokes certificates as revocation lists name them; returns how many were added. Each
    /// entry is a hash in hex or base64, whole (32 bytes) or as the EU gateway publishes it
    /// (its first 16 bytes), optionally after its kind: `UCI:` (the default),
    /// `COUNTRYCODEUCI:` or `SIGNATURE:` ([`RevocationHash`]).
    pub fn revoke_hashes(&mut self, entries: &[String]) -> Result<usize, DccError> {
        self.revoke(entries, false)
    }

    /// Revokes certificates by whole SHA-256 hashes of their UVCIs (hex or base64, no kind
    /// written): the one form every version of the library reads.
    pub fn revoke_uvci_hashes(&mut self, entries: &[String]) -> Result<usize, DccError> {
        self.revoke(entries, true)
    }

    fn revoke(&mut self, entries: &[String], whole_uci_only: bool) -> Result<usize, DccError> {
        use base64::Engine;
        let mut added = 0;
        for entry in entries {
            let bad = || DccError::BadTrustData {
                detail: if whole_uci_only {
                    format!("{entry:?} is not a whole SHA-256 of a UVCI in hex or base64")
                } else {
                    format!(
                        "{entry:?} is not a revocation hash ([UCI:|COUNTRYCODEUCI:|SIGNATURE:] 16 or 32 bytes in hex or base64)"
                    )
                },
            };
            let (kind, hash) = match entry.split_once(':') {
                None => (RevocationHash::Uci, entry.as_str()),
                Some(_) if whole_uci_only => return Err(bad()),
                Some(("UCI", hash)) => (RevocationHash::Uci, hash),
                Some(("COUNTRYCODEUCI", hash)) => (RevocationHash::CountryCodeUci, hash),
                Some(("SIGNATURE", hash)) => (RevocationHash::Signature, hash),
                Some(_) => return Err(bad()),
            };
            let fits = |b: &Vec<u8>| b.len() == 32 || (b.len() == 16 && !whole_uci_only);
            let bytes = crate::hex::decode(hash)
                .filter(fits)
                .or_else(|| {
                    base64::engine::general_purpose::STANDARD
                        .decode(hash)
                        .ok()
                        .filter(fits)
                })
                .ok_or_else(bad)?;
            let mut key = [0u8; 16];
            key.copy_from_slice(&bytes[..16]);
            added += usize::from(self.revoked.insert((kind, key)));
        }
        Ok(added)
    }

    /// Whether the certificate with this UVCI is revoked by its `UCI` hash.
    pub fn is_revoked(&self, uvci: &str) -> bool {
        self.revoked
            .contains(&(RevocationHash::Uci, revocation_key(uvci.as_bytes())))
    }

    /// Whether a certificate entry is revoked by any of the three hashes: its UVCI, its
    /// issuing country (the CWT's `iss`) and UVCI, or `signature_part` (the COSE signature,
    /// its `r` half for ECDSA).
    pub fn revokes(&self, uvci: &str, issuer: Option<&str>, signature_part: &[u8]) -> bool {
        self.is_revoked(uvci)
            || issuer.is_some_and(|iss| {
                let key = revocation_key(format!("{iss}{uvci}").as_bytes());
                self.revoked
                    .contains(&(RevocationHash::CountryCodeUci, key))
            })
            || self
                .revoked
                .contains(&(RevocationHash::Signature, revocation_key(signature_part)))
    }

    /// How many certificates the list holds.
    pub fn len(&self) -> usize {
        self.by_kid.values().map(Vec::len).sum()
    }

    /// Whether the list holds none.
    pub fn is_empty(&self) -> bool {
        self.by_kid.is_empty()
    }
}
