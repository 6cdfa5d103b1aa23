//! SMART Health Cards: read a card from its `shc:/` QR text (single or chunked), its compact
//! JWS, or a `.smart-health-card` file; verify the ES256 signature against an offline trust
//! store of issuer JWKS; check `nbf`/`exp`, the revocation list and the payload's structure.
//! A card that fails any check is reported with a specific reason and never returned as
//! verified.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::digest;
use serde_json::Value;

use crate::crypto::p256;

/// Largest inflated payload accepted (a DEFLATE bomb is refused, not expanded).
const MAX_PAYLOAD: usize = 1 << 20;
/// Largest JWS accepted.
const MAX_JWS: usize = 64 * 1024;

/// Why a card was refused. The snake_case names are the CLI's reason codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum ShcError {
    /// Not a `shc:/` text, odd digit count, digits out of range.
    #[error("bad QR text: {detail}")]
    BadQr {
        /// What was wrong.
        detail: String,
    },
    /// Chunks missing, duplicated, of different totals or out of range.
    #[error("bad chunk set: {detail}")]
    BadChunks {
        /// What was wrong.
        detail: String,
    },
    /// Not three base64url parts, or too large.
    #[error("malformed JWS: {detail}")]
    MalformedJws {
        /// What was wrong.
        detail: String,
    },
    /// The protected header is missing fields or names the wrong algorithm or compression.
    #[error("bad header: {detail}")]
    BadHeader {
        /// What was wrong.
        detail: String,
    },
    /// No trusted issuer has a key with this `kid`.
    #[error("unknown key id {kid}")]
    UnknownKey {
        /// The header's kid.
        kid: String,
    },
    /// The signature is DER-encoded (JWS requires raw r||s, 64 bytes).
    #[error("the signature is DER-encoded, not raw r||s")]
    DerSignature,
    /// The signature does not verify.
    #[error("the signature does not verify")]
    BadSignature,
    /// The payload is not valid raw DEFLATE, or inflates beyond the limit.
    #[error("payload does not inflate: {detail}")]
    Inflate {
        /// What was wrong.
        detail: String,
    },
    /// The payload is not a health card (JSON, iss, nbf, vc.type, FHIR bundle).
    #[error("bad payload: {detail}")]
    BadPayload {
        /// What was wrong.
        detail: String,
    },
    /// The payload's `iss` is not the issuer that owns the key.
    #[error("issuer {iss} does not own key {kid}")]
    IssuerMismatch {
        /// The payload's iss.
        iss: String,
        /// The key id.
        kid: String,
    },
    /// `nbf` is in the future.
    #[error("not valid before {nbf}")]
    NotYetValid {
        /// Seconds since the epoch.
        nbf: i64,
    },
    /// `exp` has passed.
    #[error("expired at {exp}")]
    Expired {
        /// Seconds since the epoch.
        exp: i64,
    },
    /// The issuer's revocation list names this card.
    #[error("revoked (rid {rid})")]
    Revoked {
        /// The card's rid.
        rid: String,
    },
    /// A JWKS or CRL given to the trust store is malformed.
    #[error("bad trust data: {detail}")]
    BadTrustData {
        /// What was wrong.
        detail: String,
    },
}

fn bad(kind: fn(String) -> ShcError, detail: impl Into<String>) -> ShcError {
    kind(detail.into())
}

/// An issuer key as the trust store holds it.
#[derive(Debug, Clone)]
struct TrustedKey {
    /// Every issuer listing the key (a signing service may serve more than one), first first.
    issuers: Vec<String>,
    public_key: [u8; 65],
}

impl ShcError {
    /// The snake_case reason code (`bad_signature`, `unknown_key`, ...), as the CLI prints it.
    pub fn reason_code(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v["reason"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "refused".into())
    }
}

/// Whom the health book trusts, loaded offline: SMART Health Card issuers' keys (from their
/// `/.well-known/jwks.json`) and revocation lists, and the Document Signer Certificates of EU
/// Digital COVID Certificates ([`crate::health::dcc`]).
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    keys: HashMap<String, TrustedKey>,
    revoked: HashMap<String, HashMap<String, Option<i64>>>,
    /// The EU DCC signers.
    pub dcc: crate::health::dcc::SignerList,
}

/// Whether a JWKS entry is a card-signing key: "identified by filtering on kty, use and alg"
/// (SMART Health Cards); an encryption key listed beside them is not one to verify cards with.
pub(crate) fn is_signing_key(key: &Value) -> bool {
    let other_use = key.get("use").is_some_and(|u| u != "sig");
    let other_alg = key.get("alg").is_some_and(|a| a != "ES256");
    key["kty"] == "EC" && key["crv"] == "P-256" && !other_use && !other_alg
}

/// The RFC 7638 thumbprint of a P-256 JWK: the `kid` SMART Health Cards require.
pub fn jwk_thumbprint(x: &str, y: &str) -> String {
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes()))
}

impl TrustStore {
    /// An empty trust store.
    pub fn new() -> Self {
        TrustStore::default()
    }

    /// Trusts the ES256 signing keys of `issuer` (its `iss` URL) from its JWKS document (keys of
    /// another type, `use` or `alg` are passed over). A signing key whose `kid` is not its
    /// thumbprint is refused. Returns the number of keys added.
    pub fn add_jwks(&mut self, issuer: &str, jwks: &str) -> Result<usize, ShcError> {
        let trust = |d: String| ShcError::BadTrustData { detail: d };
        let doc: Value =
            serde_json::from_str(jwks).map_err(|e| trust(format!("JWKS is not JSON: {e}")))?;
        let keys = doc["keys"]
            .as_array()
            .ok_or_else(|| trust("JWKS has no keys".into()))?;
        let mut added = 0;
        for key in keys.iter().filter(|k| is_signing_key(k)) {
            let (Some(x), Some(y), Some(kid)) =
                (key["x"].as_str(), key["y"].as_str(), key["kid"].as_str())
            else {
                return Err(trust("EC key without x, y or kid".into()));
            };
            if jwk_thumbprint(x, y) != kid {
                return Err(trust(format!("kid {kid} is not the key's thumbprint")));
            }
            let mut point = [0u8; 65];
            point[0] = 4;
            let (xb, yb) = (URL_SAFE_NO_PAD.decode(x), URL_SAFE_NO_PAD.decode(y));
            match (xb, yb) {
                (Ok(xb), Ok(yb)) if xb.len() == 32 && yb.len() == 32 => {
                    point[1..33].copy_from_slice(&xb);
                    point[33..].copy_from_slice(&yb);
                }
                _ => {
                    return Err(trust(format!(
                        "key {kid}: x and y must be 32 bytes of base64url"
                    )))
                }
            }
            if p256::decompress(&point).is_none() {
                return Err(trust(format!("key {kid} is not on P-256")));
            }
            // The kid is the key's thumbprint: the same kid is the same key, whoever lists it.
            let held = self
                .keys
                .entry(kid.to_owned())
                .or_insert_with(|| TrustedKey {
                    issuers: Vec::new(),
                    public_key: point,
                });
            if !held.issuers.iter().any(|i| i == issuer) {
                held.issuers.push(issuer.to_owned());
            }
            added += 1;
        }
        Ok(added)
    }

    /// The (first) issuer that lists key `kid`, if this store trusts it.
    pub fn issuer_of(&self, kid: &str) -> Option<&str> {
        self.keys
            .get(kid)
            .and_then(|k| k.issuers.first())
            .map(String::as_str)
    }

    /// Whether `issuer` lists key `kid` here.
    pub fn is_key_of(&self, kid: &str, issuer: &str) -> bool {
        self.keys
            .get(kid)
            .is_some_and(|k| k.issuers.iter().any(|i| i == issuer))
    }

    /// Loads a revocation list (`{kid, method: "rid", rids: [...]}`); `rid.timestamp` entries
    /// revoke cards issued (nbf) before that time. Entries only add up: a plain `rid` (every
    /// card) stays whatever else names it, and of two times the later one holds, in any order
    /// and across lists.
    pub fn add_crl(&mut self, crl: &str) -> Result<usize, ShcError> {
        let trust = |d: &str| ShcError::BadTrustData { detail: d.into() };
        let doc: Value = serde_json::from_str(crl).map_err(|_| trust("CRL is not JSON"))?;
        let kid = doc["kid"].as_str().ok_or_else(|| trust("CRL has no kid"))?;
        if doc["method"] != "rid" {
            return Err(trust("CRL method must be rid"));
        }
        let rids = doc["rids"]
            .as_array()
            .ok_or_else(|| trust("CRL has no rids"))?;
        let entries = self.revoked.entry(kid.to_owned()).or_default();
        for rid in rids {
            let rid = rid.as_str().ok_or_else(|| trust("rid is not a string"))?;
            match rid.split_once('.') {
                Some((id, ts)) => {
                    let ts: i64 = ts
                        .parse()
                        .map_err(|_| trust("rid timestamp is not a number"))?;
                    let held = entries.entry(id.to_owned()).or_insert(Some(ts));
                    if let Some(before) = held {
                        *before = (*before).max(ts);
                    }
                }
                None => {
                    entries.insert(rid.to_owned(), None);
                }
            }
        }
        Ok(rids.len())
    }
}

/// A card that passed every check.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VerifiedCard {
    /// The issuer (`iss`).
    pub issuer: String,
    /// The signing key id.
    pub kid: String,
    /// Issued (not before), seconds since the epoch.
    pub nbf: i64,
    /// Expiry, if the card has one.
    pub exp: Option<i64>,
    /// The revocation id, if the card has one.
    pub rid: Option<String>,
    /// `vc.type`.
    pub types: Vec<String>,
    /// The FHIR Bundle.
    pub fhir_bundle: Value,
    /// When this library verified it (the `now` given).
    pub verified_at: i64,
}

impl VerifiedCard {
    /// The resource types of the bundle's entries, in order.
    pub fn resource_types(&self) -> Vec<String> {
        self.fhir_bundle["entry"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter_map(|e| e["resource"]["resourceType"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Most JWS characters one QR may carry (the specification's chunking rule: version 22 at
/// error correction L); the official validator refuses longer ones.
pub const MAX_JWS_PER_QR: usize = 1195;

/// Decodes `shc:/` QR texts into the JWS: one unchunked text, or every chunk `shc:/i/n/...`
/// of one card (any order). A QR carrying more than [`MAX_JWS_PER_QR`] characters is refused.
pub fn jws_from_qr(texts: &[&str]) -> Result<String, ShcError> {
    if texts.is_empty() {
        return Err(bad(|d| ShcError::BadQr { detail: d }, "no QR text"));
    }
    let mut chunks: Vec<Option<String>> = Vec::new();
    for text in texts {
        let body = text
            .trim()
            .strip_prefix("shc:/")
            .ok_or_else(|| bad(|d| ShcError::BadQr { detail: d }, "missing shc:/ prefix"))?;
        let parts: Vec<&str> = body.split('/').collect();
        let (index, total, digits) = match parts[..] {
            [digits] => (1, 1, digits),
            [i, n, digits] => {
                let chunk_err = |d: &str| bad(|d| ShcError::BadChunks { detail: d }, d);
                let i: usize = i
                    .parse()
                    .map_err(|_| chunk_err("chunk index is not a number"))?;
                let n: usize = n
                    .parse()
                    .map_err(|_| chunk_err("chunk total is not a number"))?;
                if !(2..=99).contains(&n) || i == 0 || i > n {
                    return Err(chunk_err(&format!("chunk {i}/{n} out of range")));
                }
                (i, n, digits)
            }
            _ => {
                return Err(bad(
                    |d| ShcError::BadQr { detail: d },
                    "expected shc:/DIGITS or shc:/I/N/DIGITS",
                ))
            }
        };
        if digits.len() > 2 * MAX_JWS_PER_QR {
            return Err(bad(
                |d| ShcError::BadChunks { detail: d },
                format!(
                    "a QR carries at most {MAX_JWS_PER_QR} JWS characters ({} digits), this one {}",
                    2 * MAX_JWS_PER_QR,
                    digits.len()
                ),
            ));
        }
        if chunks.is_empty() {
            chunks = vec![None; total];
        } else if chunks.len() != total {
            return Err(bad(
                |d| ShcError::BadChunks { detail: d },
                "chunks name different totals",
            ));
        }
        if chunks[index - 1].is_some() {
            return Err(bad(
                |d| ShcError::BadChunks { detail: d },
                format!("chunk {index} given twice"),
            ));
        }
        chunks[index - 1] = Some(decode_digits(digits)?);
    }
    let missing: Vec<usize> = chunks
        .iter()
        .enumerate()
        .filter(|(_, c)| c.is_none())
        .map(|(i, _)| i + 1)
        .collect();
    if !missing.is_empty() {
        return Err(bad(
            |d| ShcError::BadChunks { detail: d },
            format!("missing chunks {missing:?}"),
        ));
    }
    Ok(chunks.into_iter().flatten().collect())
}

fn decode_digits(digits: &str) -> Result<String, ShcError> {
    let err = |d: &str| bad(|d| ShcError::BadQr { detail: d }, d);
    if digits.is_empty() || digits.len() % 2 != 0 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err("the numeric part must be an even number of digits"));
    }
    if digits.len() / 2 > MAX_JWS {
        return Err(err("too long"));
    }
    digits
        .as_bytes()
        .chunks(2)
        .map(|pair| {
            let n = (pair[0] - b'0') * 10 + (pair[1] - b'0');
            if n > 77 {
                return Err(err("digit pair out of range (00-77)"));
            }
            Ok(char::from(n + 45))
        })
        .collect()
}

/// The JWS strings of a `.smart-health-card` file (`{"verifiableCredential": [...]}`).
pub fn jws_from_file(contents: &str) -> Result<Vec<String>, ShcError> {
    let doc: Value = serde_json::from_str(contents).map_err(|_| ShcError::MalformedJws {
        detail: "the file is not JSON".into(),
    })?;
    let list = doc["verifiableCredential"]
        .as_array()
        .ok_or_else(|| ShcError::MalformedJws {
            detail: "no verifiableCredential list".into(),
        })?;
    list.iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| ShcError::MalformedJws {
                    detail: "a credential is not a string".into(),
                })
        })
        .collect()
}

fn number(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_f64().map(|f| f.floor() as i64))
}

/// Verifies a compact JWS health card at time `now` (seconds since the epoch).
pub fn verify(jws: &str, trust: &TrustStore, now: i64) -> Result<VerifiedCard, ShcError> {
    check(jws, trust, now, true)
}

/// [`verify`] without the expiry: every other check (signature, issuer, not before `now`, not
/// revoked) holds, and [`VerifiedCard::exp`] says whether it has expired. A vaccination stays
/// true after its card's `exp`, so the health book imports such a card, as it imports an
/// expired EU certificate.
pub fn authenticate(jws: &str, trust: &TrustStore, now: i64) -> Result<VerifiedCard, ShcError> {
    check(jws, trust, now, false)
}

fn check(
    jws: &str,
    trust: &TrustStore,
    now: i64,
    enforce_expiry: bool,
) -> Result<VerifiedCard, ShcError> {
    let malformed = |d: &str| ShcError::MalformedJws { detail: d.into() };
    let jws = jws.trim();
    if jws.len() > MAX_JWS {
        return Err(malformed("too large"));
    }
    let parts: Vec<&str> = jws.split('.').collect();
    let [header_b64, payload_b64, signature_b64] = parts[..] else {
        return Err(malformed("a compact JWS has three parts"));
    };
    let header: Value = URL_SAFE_NO_PAD
        .decode(header_b64)
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or_else(|| ShcError::BadHeader {
            detail: "the header is not base64url JSON".into(),
        })?;
    if header["alg"] != "ES256" {
        return Err(ShcError::BadHeader {
            detail: "alg must be ES256".into(),
        });
    }
    if header["zip"] != "DEF" {
        return Err(ShcError::BadHeader {
            detail: "zip must be DEF".into(),
        });
    }
    let kid = header["kid"].as_str().ok_or_else(|| ShcError::BadHeader {
        detail: "no kid".into(),
    })?;
    let key = trust.keys.get(kid).ok_or_else(|| ShcError::UnknownKey {
        kid: kid.to_owned(),
    })?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| malformed("signature is not base64url"))?;
    if signature.len() != 64 {
        return Err(if signature.first() == Some(&0x30) {
            ShcError::DerSignature
        } else {
            ShcError::BadSignature
        });
    }
    let signed = &jws[..header_b64.len() + 1 + payload_b64.len()];
    if !p256::verify(&key.public_key, signed.as_bytes(), &signature) {
        return Err(ShcError::BadSignature);
    }
    let compressed = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| malformed("payload is not base64url"))?;
    let inflated = miniz_oxide::inflate::decompress_to_vec_with_limit(&compressed, MAX_PAYLOAD)
        .map_err(|e| ShcError::Inflate {
            detail: format!("{:?}", e.status),
        })?;
    let payload: Value = serde_json::from_slice(&inflated).map_err(|_| ShcError::BadPayload {
        detail: "not JSON".into(),
    })?;
    let bad_payload = |d: &str| ShcError::BadPayload { detail: d.into() };
    let iss = payload["iss"]
        .as_str()
        .ok_or_else(|| bad_payload("no iss"))?;
    if !key.issuers.iter().any(|i| i == iss) {
        return Err(ShcError::IssuerMismatch {
            iss: iss.to_owned(),
            kid: kid.to_owned(),
        });
    }
    let nbf = number(&payload["nbf"]).ok_or_else(|| bad_payload("no nbf"))?;
    let exp = if payload["exp"].is_null() {
        None
    } else {
        Some(number(&payload["exp"]).ok_or_else(|| bad_payload("exp is not a number"))?)
    };
    let vc = &payload["vc"];
    let types: Vec<String> = vc["type"]
        .as_array()
        .ok_or_else(|| bad_payload("no vc.type"))?
        .iter()
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect();
    if !types
        .iter()
        .any(|t| t == "https://smarthealth.cards#health-card")
    {
        return Err(bad_payload(
            "vc.type lacks https://smarthealth.cards#health-card",
        ));
    }
    let bundle = &vc["credentialSubject"]["fhirBundle"];
    if bundle["resourceType"] != "Bundle" || !bundle["entry"].is_array() {
        return Err(bad_payload(
            "vc.credentialSubject.fhirBundle is not a FHIR Bundle with entries",
        ));
    }
    if nbf > now.saturating_add(crate::health::ISSUE_CLOCK_TOLERANCE_SECS) {
        return Err(ShcError::NotYetValid { nbf });
    }
    if let Some(exp) = exp.filter(|_| enforce_expiry) {
        if exp < now {
            return Err(ShcError::Expired { exp });
        }
    }
    let rid = vc["rid"].as_str().map(str::to_owned);
    if let (Some(rid), Some(list)) = (&rid, trust.revoked.get(kid)) {
        if let Some(entry) = list.get(rid) {
            // "rid" revokes every card; "rid.ts" only those issued before ts.
            if entry.is_none_or(|ts| nbf < ts) {
                return Err(ShcError::Revoked { rid: rid.clone() });
            }
        }
    }
    Ok(VerifiedCard {
        issuer: iss.to_owned(),
        kid: kid.to_owned(),
        nbf,
        exp,
        rid,
        types,
        fhir_bundle: bundle.clone(),
        verified_at: now,
    })
}
