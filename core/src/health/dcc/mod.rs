//! EU Digital COVID Certificates (the format of Vietnam's vaccine passports): read one from its
//! `HC1:` QR text (base45, zlib, COSE_Sign1, CBOR Web Token with the certificate in claim -260),
//! verify its signature against trusted Document Signer Certificates ([`SignerList`]) and their
//! limits, check its schema ([`schema`]) and its validity, and map it to FHIR ([`fhir`]).
//!
//! Every stage fails with its own [`DccError`], so a verifier can say what was wrong and the
//! official test data's per-stage expectations can be checked one by one.

pub mod fhir;
pub mod schema;
mod signers;
pub mod valuesets;

use ciborium::Value as Cbor;
use coset::{
    iana, CborSerializable, CoseSign1, RegisteredLabelWithPrivate, TaggedCborSerializable,
};
use serde_json::Value;

pub use signers::{key_id, uvci_hash, RevocationHash, Signer, SignerKey, SignerList};

/// Largest QR text accepted: a QR code holds at most 4,296 alphanumeric characters.
const MAX_QR_TEXT: usize = 8 * 1024;
/// Largest inflated COSE message accepted (a zlib bomb is refused, not expanded).
const MAX_COSE: usize = 64 * 1024;

/// COSE algorithm ES256.
pub const ES256: i64 = -7;
/// COSE algorithm ES384.
pub const ES384: i64 = -35;
/// COSE algorithm PS256.
pub const PS256: i64 = -37;

/// What a certificate attests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertificateKind {
    /// A vaccination (`v`).
    Vaccination,
    /// A test (`t`).
    Test,
    /// A recovery (`r`).
    Recovery,
}

impl CertificateKind {
    /// The claim's key for this kind (`v`, `t`, `r`).
    pub fn key(self) -> &'static str {
        match self {
            CertificateKind::Vaccination => "v",
            CertificateKind::Test => "t",
            CertificateKind::Recovery => "r",
        }
    }
}

/// Why a certificate was refused. The snake_case names are the CLI's reason codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum DccError {
    /// Not `HC1:` followed by the payload (another context, a version this reader lacks).
    #[error("not an EU DCC QR text: {detail}")]
    BadPrefix {
        /// What was wrong.
        detail: String,
    },
    /// Characters outside base45, or a length base45 cannot have.
    #[error("not base45")]
    Base45,
    /// Not zlib, or inflates beyond the limit.
    #[error("does not inflate: {detail}")]
    Inflate {
        /// What was wrong.
        detail: String,
    },
    /// Not a COSE_Sign1 message.
    #[error("not a COSE_Sign1 message: {detail}")]
    Cose {
        /// What was wrong.
        detail: String,
    },
    /// The payload is not a CBOR Web Token with a health certificate in claim -260.
    #[error("bad CWT: {detail}")]
    Cwt {
        /// What was wrong.
        detail: String,
    },
    /// An algorithm other than ES256, ES384 and PS256.
    #[error("unsupported algorithm {alg}")]
    UnsupportedAlgorithm {
        /// The COSE algorithm number (0 when absent or not a number).
        alg: i64,
    },
    /// No trusted Document Signer Certificate has this key id.
    #[error("unknown key id {kid}")]
    UnknownKey {
        /// The key id, base64.
        kid: String,
    },
    /// The signature does not verify.
    #[error("the signature does not verify")]
    BadSignature,
    /// The signer's extended key usage does not cover this kind of certificate.
    #[error("the signer may not sign {kind:?} certificates")]
    KeyUsage {
        /// The certificate's kind.
        kind: CertificateKind,
    },
    /// The signer's certificate is not valid: not yet valid now, expired now (for
    /// [`verify`]), or ended before the certificate says it was issued.
    #[error("the signer is not valid for a certificate issued at {issued_at}")]
    SignerNotValid {
        /// The certificate's issue time (seconds since the epoch).
        issued_at: i64,
    },
    /// The certificate does not follow the DCC schema of its version.
    #[error("schema: {detail}")]
    Schema {
        /// What was wrong.
        detail: String,
    },
    /// On a revocation list (by the hash of its UVCI).
    #[error("revoked ({certificate_id})")]
    Revoked {
        /// The certificate identifier.
        certificate_id: String,
    },
    /// Issued in the future.
    #[error("issued in the future ({issued_at})")]
    NotYetValid {
        /// Seconds since the epoch.
        issued_at: i64,
    },
    /// Expired.
    #[error("expired at {expires_at}")]
    Expired {
        /// Seconds since the epoch.
        expires_at: i64,
    },
    /// A trust list or certificate given to the signer list is malformed.
    #[error("bad trust data: {detail}")]
    BadTrustData {
        /// What was wrong.
        detail: String,
    },
}

impl DccError {
    /// The snake_case reason code (`bad_signature`, `expired`, ...), as the CLI prints it.
    pub fn reason_code(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v["reason"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "refused".into())
    }
}

fn cose(detail: impl Into<String>) -> DccError {
    DccError::Cose {
        detail: detail.into(),
    }
}

fn cwt(detail: impl Into<String>) -> DccError {
    DccError::Cwt {
        detail: detail.into(),
    }
}

/// A certificate read from its QR text, its signature not yet checked.
#[derive(Debug, Clone)]
pub struct Decoded {
    sign1: CoseSign1,
    /// The COSE algorithm (`ES256` or `PS256`; other values are refused at verification).
    pub alg: i64,
    /// The key id: the protected header's, else the unprotected one's.
    pub kid: Vec<u8>,
    /// The CWT issuer (claim 1), usually a country code.
    pub issuer: Option<String>,
    /// Issued at (claim 6), seconds since the epoch.
    pub issued_at: Option<i64>,
    /// Expires (claim 4), seconds since the epoch.
    pub expires_at: Option<i64>,
    /// The health certificate (claim -260, key 1) as JSON.
    pub certificate: Value,
}

/// Strips `HC1:` and decodes base45, zlib, COSE_Sign1 and the CWT. Nothing is trusted yet.
pub fn decode(qr_text: &str) -> Result<Decoded, DccError> {
    let text = qr_text.trim();
    if text.len() > MAX_QR_TEXT {
        return Err(DccError::BadPrefix {
            detail: format!("{} characters, more than a QR code holds", text.len()),
        });
    }
    let body = text
        .strip_prefix("HC1:")
        .ok_or_else(|| DccError::BadPrefix {
            detail: match text.split_once(':') {
                Some((context, _)) if context.len() <= 4 => {
                    format!("context {context}: is not HC1:")
                }
                _ => "no HC1: context".into(),
            },
        })?;
    let compressed = base45::decode(body).map_err(|_| DccError::Base45)?;
    let message = miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(&compressed, MAX_COSE)
        .map_err(|e| DccError::Inflate {
            detail: format!("{:?}", e.status),
        })?;
    decode_cose(&message)
}

/// Decodes a COSE_Sign1 message (tagged or not, possibly inside a CWT tag) carrying a DCC's
/// CWT.
pub fn decode_cose(message: &[u8]) -> Result<Decoded, DccError> {
    // RFC 8392's CWT tag (61) may wrap the COSE_Sign1 tag.
    let message = message.strip_prefix(&[0xd8, 0x3d]).unwrap_or(message);
    let sign1 = if message.first() == Some(&0xd2) {
        CoseSign1::from_tagged_slice(message)
    } else {
        CoseSign1::from_slice(message)
    }
    .map_err(|e| cose(e.to_string()))?;
    // The signed algorithm, else the unprotected one: the official test data holds genuine
    // certificates that carry it there (CO20). An altered one cannot forge anything: each
    // signer's key takes only its own algorithms (`Signer::verify`).
    let alg_label = sign1
        .protected
        .header
        .alg
        .as_ref()
        .or(sign1.unprotected.alg.as_ref());
    let alg = match alg_label {
        Some(RegisteredLabelWithPrivate::Assigned(iana::Algorithm::ES256)) => ES256,
        Some(RegisteredLabelWithPrivate::Assigned(iana::Algorithm::PS256)) => PS256,
        Some(RegisteredLabelWithPrivate::Assigned(iana::Algorithm::ES384)) => ES384,
        Some(RegisteredLabelWithPrivate::Assigned(a)) => {
            use coset::iana::EnumI64;
            a.to_i64()
        }
        Some(RegisteredLabelWithPrivate::PrivateUse(n)) => *n,
        _ => 0,
    };
    // The protected kid is signed; the unprotected one is only a hint, used when none is signed.
    let kid = if sign1.protected.header.key_id.is_empty() {
        sign1.unprotected.key_id.clone()
    } else {
        sign1.protected.header.key_id.clone()
    };
    let payload = sign1.payload.as_deref().ok_or_else(|| cose("no payload"))?;
    let claims: Cbor =
        ciborium::de::from_reader(payload).map_err(|e| cwt(format!("not CBOR: {e}")))?;
    let Cbor::Map(claims) = claims else {
        return Err(cwt("the claims are not a map"));
    };
    let claim = |key: i64| {
        claims
            .iter()
            .find(|(k, _)| {
                k.as_integer()
                    .is_some_and(|i| i128::from(i) == i128::from(key))
            })
            .map(|(_, v)| v)
    };
    let issuer = match claim(1) {
        None => None,
        Some(Cbor::Text(s)) => Some(s.clone()),
        Some(_) => return Err(cwt("iss is not text")),
    };
    let time = |key: i64, name: &str| -> Result<Option<i64>, DccError> {
        match claim(key) {
            None => Ok(None),
            Some(v) => cbor_seconds(v)
                .map(Some)
                .ok_or_else(|| cwt(format!("{name} is not a time"))),
        }
    };
    let expires_at = time(4, "exp")?;
    let issued_at = time(6, "iat")?;
    let hcert = claim(-260).ok_or_else(|| cwt("no health certificate (claim -260)"))?;
    let Cbor::Map(hcert) = hcert else {
        return Err(cwt("claim -260 is not a map"));
    };
    let dcc = hcert
        .iter()
        .find(|(k, _)| k.as_integer().is_some_and(|i| i128::from(i) == 1))
        .map(|(_, v)| v)
        .ok_or_else(|| cwt("claim -260 has no certificate (key 1)"))?;
    let certificate = to_json(dcc, 0).ok_or_else(|| cwt("the certificate is not JSON-like"))?;
    if !certificate.is_object() {
        return Err(cwt("the certificate is not a map"));
    }
    Ok(Decoded {
        sign1,
        alg,
        kid,
        issuer,
        issued_at,
        expires_at,
        certificate,
    })
}

/// A key id as trust lists write it (base64).
pub fn kid_text(kid: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(kid)
}

fn cbor_seconds(v: &Cbor) -> Option<i64> {
    match v {
        Cbor::Integer(i) => i64::try_from(i128::from(*i)).ok(),
        Cbor::Float(f) if f.is_finite() && f.abs() < 1e15 => Some(f.floor() as i64),
        Cbor::Tag(1, inner) => cbor_seconds(inner),
        _ => None,
    }
}

/// CBOR to JSON, for the certificate's content (text keys, strings, numbers, arrays).
fn to_json(v: &Cbor, depth: usize) -> Option<Value> {
    if depth > 16 {
        return None;
    }
    Some(match v {
        Cbor::Text(s) => Value::String(s.clone()),
        Cbor::Integer(i) => Value::from(i64::try_from(i128::from(*i)).ok()?),
        Cbor::Float(f) => serde_json::Number::from_f64(*f).map(Value::Number)?,
        Cbor::Bool(b) => Value::Bool(*b),
        Cbor::Null => Value::Null,
        Cbor::Tag(_, inner) => to_json(inner, depth + 1)?,
        Cbor::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| to_json(i, depth + 1))
                .collect::<Option<_>>()?,
        ),
        Cbor::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| Some((k.as_text()?.to_owned(), to_json(v, depth + 1)?)))
                .collect::<Option<_>>()?,
        ),
        _ => return None,
    })
}

impl Decoded {
    /// What the certificate attests: the one of `v`, `t`, `r` it carries (`None` for none or
    /// several).
    pub fn kind(&self) -> Option<CertificateKind> {
        let present: Vec<CertificateKind> = [
            CertificateKind::Vaccination,
            CertificateKind::Test,
            CertificateKind::Recovery,
        ]
        .into_iter()
        .filter(|k| self.certificate.get(k.key()).is_some_and(|v| !v.is_null()))
        .collect();
        match present[..] {
            [one] => Some(one),
            _ => None,
        }
    }

    /// The COSE signature (ECDSA as `r` then `s`; RSA-PSS whole).
    pub fn signature(&self) -> &[u8] {
        &self.sign1.signature
    }

    /// The key id, base64 (as trust lists write it).
    pub fn kid_base64(&self) -> String {
        kid_text(&self.kid)
    }

    /// Checks the signature against the trusted signers with this key id; returns the one that
    /// signed.
    pub fn verify_signature<'a>(&self, signers: &'a SignerList) -> Result<&'a Signer, DccError> {
        if ![ES256, ES384, PS256].contains(&self.alg) {
            return Err(DccError::UnsupportedAlgorithm { alg: self.alg });
        }
        let candidates = signers.by_kid(&self.kid);
        if candidates.is_empty() {
            return Err(DccError::UnknownKey {
                kid: self.kid_base64(),
            });
        }
        let signed = self.sign1.tbs_data(b"");
        candidates
            .iter()
            .find(|s| s.verify(self.alg, &signed, &self.sign1.signature))
            .ok_or(DccError::BadSignature)
    }

    /// Whether `signer` may sign this certificate: its key usage covers the certificate's kind.
    pub fn check_key_usage(&self, signer: &Signer) -> Result<(), DccError> {
        let kind = self.kind().ok_or_else(|| DccError::Schema {
            detail: "the certificate must hold exactly one of v, t, r".into(),
        })?;
        if signer.allows(kind) {
            Ok(())
        } else {
            Err(DccError::KeyUsage { kind })
        }
    }

    /// Whether the certificate is valid at `now`: issued no later than now (give or take
    /// [`ISSUE_CLOCK_TOLERANCE_SECS`](crate::health::ISSUE_CLOCK_TOLERANCE_SECS)) and not
    /// expired.
    pub fn check_time(&self, now: i64) -> Result<(), DccError> {
        if let Some(issued_at) = self.issued_at {
            if issued_at > now.saturating_add(crate::health::ISSUE_CLOCK_TOLERANCE_SECS) {
                return Err(DccError::NotYetValid { issued_at });
            }
        }
        if let Some(expires_at) = self.expires_at {
            if expires_at < now {
                return Err(DccError::Expired { expires_at });
            }
        }
        Ok(())
    }
}

impl VerifiedDcc {
    /// Who issued it, as a record shows it: the CWT issuer when it names the signer's own
    /// country (its code, or its code then a body, as Switzerland's `CH BAG`), else the
    /// signer's country. The claim is the signer's word: a signer trusted for one country is
    /// not shown as another's.
    pub fn vouched_issuer(&self) -> String {
        let country = self.country.to_ascii_uppercase();
        match &self.issuer {
            Some(iss)
                if iss.eq_ignore_ascii_case(&country)
                    || iss.to_ascii_uppercase().starts_with(&format!("{country} ")) =>
            {
                iss.clone()
            }
            _ => self.country.clone(),
        }
    }
}

/// A certificate that passed every check.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VerifiedDcc {
    /// What it attests.
    pub kind: CertificateKind,
    /// The signer's country.
    pub country: String,
    /// The CWT issuer (claim 1).
    pub issuer: Option<String>,
    /// The key id, base64.
    pub kid: String,
    /// The certificate identifier (UVCI, `ci`).
    pub certificate_id: String,
    /// Issued at, seconds since the epoch.
    pub issued_at: Option<i64>,
    /// Expires, seconds since the epoch.
    pub expires_at: Option<i64>,
    /// The schema version it declares (`ver`).
    pub version: String,
    /// The certificate as JSON (`ver`, `nam`, `dob` and one of `v`, `t`, `r`).
    pub certificate: Value,
    /// When this library verified it (the `now` given).
    pub verified_at: i64,
    /// Whether, at `verified_at`, the certificate or its signer had expired (only
    /// [`authenticate`] returns such a certificate).
    pub expired: bool,
    /// Whether, at `verified_at`, the signer's certificate had expired.
    pub signer_expired: bool,
}

/// Verifies an `HC1:` QR text at `now` (seconds since the epoch), as a verifier at a border
/// would: decoding, the signature against `signers`, the signer's key usage, the schema, the
/// signer valid now, and the certificate issued and not expired. A certificate that fails any
/// check is never returned.
pub fn verify(qr_text: &str, signers: &SignerList, now: i64) -> Result<VerifiedDcc, DccError> {
    let verified = authenticate(qr_text, signers, now)?;
    if verified.signer_expired {
        return Err(DccError::SignerNotValid {
            issued_at: verified.issued_at.unwrap_or(now),
        });
    }
    if let Some(expires_at) = verified.expires_at.filter(|e| *e < now) {
        return Err(DccError::Expired { expires_at });
    }
    Ok(verified)
}

/// Proves a certificate authentic at `now` without requiring it to be current: everything
/// [`verify`] checks except that the certificate and its signer have not expired since (a
/// vaccination stays true after its certificate's end; [`VerifiedDcc::expired`] says whether
/// it has). The signer must have existed by now and the certificate must claim to have been
/// issued by the signer's end; a certificate issued in the future is refused.
pub fn authenticate(
    qr_text: &str,
    signers: &SignerList,
    now: i64,
) -> Result<VerifiedDcc, DccError> {
    let decoded = decode(qr_text)?;
    let signer = decoded.verify_signature(signers)?;
    // "exp SHALL hold a timestamp" (eHealth Network, hcert spec, 3.3.1): without one a
    // certificate would pass for current until its signer ends.
    if decoded.expires_at.is_none() {
        return Err(cwt("no expiry (claim 4)"));
    }
    schema::check(&decoded.certificate, decoded.issued_at)?;
    decoded.check_key_usage(signer)?;
    let issued_at = decoded.issued_at.unwrap_or(now);
    // The signer exists by now, and the certificate claims to be issued by its end. (Not "after
    // its start": genuine certificates, in the official test data among them, were issued
    // before the certificate of the key that signs them began.)
    if signer.not_before > now || issued_at > signer.not_after {
        return Err(DccError::SignerNotValid { issued_at });
    }
    if issued_at > now.saturating_add(crate::health::ISSUE_CLOCK_TOLERANCE_SECS) {
        return Err(DccError::NotYetValid { issued_at });
    }
    let kind = decoded.kind().ok_or_else(|| DccError::Schema {
        detail: "the certificate must hold exactly one of v, t, r".into(),
    })?;
    let entry = &decoded.certificate[kind.key()][0];
    // Every entry's UVCI is checked (a series certificate lists several), by each of the
    // scheme's three hashes.
    let signature = &decoded.sign1.signature;
    let signature_part = if decoded.alg == PS256 {
        &signature[..]
    } else {
        &signature[..signature.len() / 2]
    };
    if let Some(revoked) = decoded.certificate[kind.key()]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["ci"].as_str())
        .find(|ci| signers.revokes(ci, decoded.issuer.as_deref(), signature_part))
    {
        return Err(DccError::Revoked {
            certificate_id: revoked.to_owned(),
        });
    }
    let signer_expired = signer.not_after < now;
    let expired = signer_expired || decoded.expires_at.is_some_and(|e| e < now);
    Ok(VerifiedDcc {
        kind,
        country: signer.country.clone(),
        issuer: decoded.issuer.clone(),
        kid: decoded.kid_base64(),
        certificate_id: entry["ci"].as_str().unwrap_or_default().to_owned(),
        issued_at: decoded.issued_at,
        expires_at: decoded.expires_at,
        version: decoded.certificate["ver"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        certificate: decoded.certificate,
        verified_at: now,
        expired,
        signer_expired,
    })
}
