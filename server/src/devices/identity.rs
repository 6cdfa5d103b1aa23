//! Identity at registration: a citizen ID number alone (printed on every ID card) opens nothing.
//! A device registers with an OpenID Connect ID token from the configured identity provider
//! (VNeID in production): a JWS verified against the provider's JWKS, with `iss`, `aud`, `exp`
//! checked and a `nonce` the backend issued, single use and short-lived, so a token cannot be
//! replayed to add a second device. The citizen ID comes from a configured claim of the verified
//! token.
//!
//! [`LocalIdentityProvider`] is a provider on this machine whose key the caller owns: tests,
//! `thudo demo` and `thudo-server --test-identity-provider` use it. It is never a production
//! setting.

use std::sync::Arc;

use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters, Jwk, JwkSet,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

/// How long a registration nonce stays usable.
pub const NONCE_TTL_SECS: i64 = 600;
/// Clock skew allowed on `exp`, `nbf` and `iat`.
const LEEWAY_SECS: u64 = 60;

/// The identity provider the backend trusts.
#[derive(Clone)]
pub struct IdentityConfig {
    /// Its issuer identifier (`iss` of its tokens).
    pub issuer: String,
    /// This backend's client id at the provider (`aud`).
    pub audience: String,
    /// The provider's signing keys.
    pub jwks: JwkSet,
    /// The claim that carries the 12-digit citizen ID.
    pub citizen_claim: String,
}

impl IdentityConfig {
    /// A provider from its JWKS document (as served at its `jwks_uri`).
    pub fn from_jwks_json(
        issuer: &str,
        audience: &str,
        jwks_json: &str,
        citizen_claim: &str,
    ) -> anyhow::Result<IdentityConfig> {
        let jwks: JwkSet = serde_json::from_str(jwks_json)?;
        anyhow::ensure!(!jwks.keys.is_empty(), "the JWKS has no keys");
        anyhow::ensure!(
            !issuer.is_empty() && !audience.is_empty(),
            "issuer and audience are required"
        );
        Ok(IdentityConfig {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            jwks,
            citizen_claim: citizen_claim.to_owned(),
        })
    }
}

/// Why an ID token was refused (the API's error code is [`IdentityError::code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// Not a JWS, unknown key, bad signature, wrong issuer or audience, expired.
    #[error("the identity token is not valid: {0}")]
    Invalid(String),
    /// The token carries no nonce this backend issued.
    #[error("the identity token's nonce was not issued here")]
    NonceUnknown,
    /// The nonce was used by an earlier registration.
    #[error("the identity token's nonce was used already: sign in again")]
    NonceUsed,
    /// The nonce is older than its time to live.
    #[error("the identity token's nonce expired: sign in again")]
    NonceExpired,
    /// The token verified but names no citizen ID.
    #[error("the identity token has no citizen ID in claim {0}")]
    NoCitizen(String),
}

impl IdentityError {
    /// The stable error code of the API.
    pub fn code(&self) -> &'static str {
        match self {
            IdentityError::Invalid(_) => "identity_invalid",
            IdentityError::NonceUnknown => "nonce_unknown",
            IdentityError::NonceUsed => "nonce_used",
            IdentityError::NonceExpired => "nonce_expired",
            IdentityError::NoCitizen(_) => "identity_no_citizen",
        }
    }
}

/// What a verified ID token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    /// The citizen ID (12 digits).
    pub citizen_id: String,
    /// The nonce, to consume.
    pub nonce: String,
}

/// Verifies an ID token's signature and claims (not the nonce's freshness: the caller consumes
/// it in storage).
pub fn verify(config: &IdentityConfig, token: &str) -> Result<Assertion, IdentityError> {
    let invalid = |e: &dyn std::fmt::Display| IdentityError::Invalid(e.to_string());
    if token.len() > 16 * 1024 {
        return Err(IdentityError::Invalid("token too long".into()));
    }
    let header = jsonwebtoken::decode_header(token).map_err(|e| invalid(&e))?;
    let kid = header
        .kid
        .as_deref()
        .ok_or_else(|| IdentityError::Invalid("no kid".into()))?;
    let jwk = config
        .jwks
        .find(kid)
        .ok_or_else(|| IdentityError::Invalid(format!("unknown key {kid}")))?;
    // The algorithm follows the key, never the token's header alone (no alg confusion).
    let alg = match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        _ => return Err(IdentityError::Invalid("unsupported key type".into())),
    };
    if header.alg != alg {
        return Err(IdentityError::Invalid(format!(
            "algorithm {:?} does not match key {kid}",
            header.alg
        )));
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|e| invalid(&e))?;
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[&config.issuer]);
    validation.set_audience(&[&config.audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "iat"]);
    validation.leeway = LEEWAY_SECS;
    validation.validate_nbf = true;
    let data = jsonwebtoken::decode::<Value>(token, &key, &validation).map_err(|e| invalid(&e))?;
    let now = chrono::Utc::now().timestamp();
    if data.claims["iat"]
        .as_i64()
        .is_none_or(|iat| iat > now + LEEWAY_SECS as i64)
    {
        return Err(IdentityError::Invalid("issued in the future".into()));
    }
    let nonce = data.claims["nonce"]
        .as_str()
        .filter(|n| !n.is_empty() && n.len() <= 128)
        .ok_or(IdentityError::NonceUnknown)?
        .to_owned();
    let citizen_id = data.claims[config.citizen_claim.as_str()]
        .as_str()
        .filter(|c| c.len() == 12 && c.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| IdentityError::NoCitizen(config.citizen_claim.clone()))?
        .to_owned();
    Ok(Assertion { citizen_id, nonce })
}

/// An OpenID Connect provider on this machine (ES256), for tests and demos: its key lives in
/// memory and its tokens say whatever the caller asks. Never a production setting.
pub struct LocalIdentityProvider {
    issuer: String,
    audience: String,
    kid: String,
    pkcs8: Vec<u8>,
    jwk: Jwk,
}

impl LocalIdentityProvider {
    /// A provider with a fresh key.
    pub fn generate(issuer: &str, audience: &str) -> anyhow::Result<Arc<LocalIdentityProvider>> {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| anyhow::anyhow!("key generation failed"))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| anyhow::anyhow!("bad generated key"))?;
        let point = pair.public_key().as_ref();
        use base64::Engine;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let kid = thudo_core::hex::encode(&crate::storage::sha256(point)[..8]);
        let jwk = Jwk {
            common: CommonParameters {
                key_id: Some(kid.clone()),
                ..Default::default()
            },
            algorithm: AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
                key_type: jsonwebtoken::jwk::EllipticCurveKeyType::EC,
                curve: EllipticCurve::P256,
                x: b64(&point[1..33]),
                y: b64(&point[33..65]),
            }),
        };
        Ok(Arc::new(LocalIdentityProvider {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            kid,
            pkcs8: pkcs8.as_ref().to_vec(),
            jwk,
        }))
    }

    /// The backend's configuration for this provider (citizen ID in claim `citizen_id`).
    pub fn config(&self) -> IdentityConfig {
        IdentityConfig {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            jwks: JwkSet {
                keys: vec![self.jwk.clone()],
            },
            citizen_claim: "citizen_id".into(),
        }
    }

    /// The provider's JWKS document.
    pub fn jwks_json(&self) -> String {
        serde_json::to_string(&self.config().jwks).unwrap_or_default()
    }

    /// Signs `claims` as this provider's key (any claims: tests forge with it).
    pub fn sign(&self, claims: &Value) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(
            &header,
            claims,
            &EncodingKey::from_ec_der(&self.pkcs8),
        )?)
    }

    /// An ID token for a citizen who signed in with `nonce`, valid for five minutes.
    pub fn id_token(&self, citizen_id: &str, nonce: &str) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp();
        self.sign(&json!({
            "iss": self.issuer, "aud": self.audience, "sub": format!("local-{citizen_id}"),
            "citizen_id": citizen_id, "nonce": nonce, "iat": now, "exp": now + 300,
        }))
    }
}
