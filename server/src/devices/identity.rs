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
use thudo_core::sync::protocol::ServerErrorCode;

use crate::jwt::{verify_jws, JwksSource};

use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters, Jwk, JwkSet,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

/// The audience of operators' tokens from the local test provider.
pub const OPERATOR_AUDIENCE: &str = "thudo-operators";

/// How long a registration nonce stays usable.
pub const NONCE_TTL_SECS: i64 = 600;

/// The identity provider the backend trusts.
#[derive(Clone)]
pub struct IdentityConfig {
    /// Its issuer identifier (`iss` of its tokens).
    pub issuer: String,
    /// This backend's client id at the provider (`aud`).
    pub audience: String,
    /// The provider's signing keys.
    pub keys: JwksSource,
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
            keys: JwksSource::fixed(jwks),
            citizen_claim: citizen_claim.to_owned(),
        })
    }

    /// A provider whose keys are fetched from its `jwks_uri` and kept current.
    pub async fn from_jwks_uri(
        issuer: &str,
        audience: &str,
        jwks_uri: &str,
        citizen_claim: &str,
    ) -> anyhow::Result<IdentityConfig> {
        anyhow::ensure!(
            !issuer.is_empty() && !audience.is_empty(),
            "issuer and audience are required"
        );
        Ok(IdentityConfig {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            keys: JwksSource::fetched(jwks_uri).await?,
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
    /// The citizen authenticated longer ago than [`FRESH_SIGN_IN_SECS`], or the token does not
    /// say when (`auth_time`): a session kept on the phone, not the citizen.
    #[error("the sign-in is not fresh: authenticate again (max_age=0)")]
    NotFresh,
}

/// How long before a revocation the citizen must have authenticated at the provider
/// (`auth_time`): the app asks for a fresh authentication (`max_age=0`), so a session kept on an
/// unlocked phone revokes nothing.
pub const FRESH_SIGN_IN_SECS: i64 = 300;

impl IdentityError {
    /// The stable error code of the API.
    pub fn code(&self) -> ServerErrorCode {
        match self {
            IdentityError::Invalid(_) => ServerErrorCode::IdentityInvalid,
            IdentityError::NonceUnknown => ServerErrorCode::NonceUnknown,
            IdentityError::NonceUsed => ServerErrorCode::NonceUsed,
            IdentityError::NonceExpired => ServerErrorCode::NonceExpired,
            IdentityError::NoCitizen(_) => ServerErrorCode::IdentityNoCitizen,
            IdentityError::NotFresh => ServerErrorCode::SignInNotFresh,
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
    /// When the citizen authenticated (`auth_time`, unix seconds), if the token says.
    pub auth_time: Option<i64>,
}

impl Assertion {
    /// Whether the citizen authenticated within [`FRESH_SIGN_IN_SECS`] of `now` (a minute of
    /// clock difference with the provider allowed ahead).
    pub fn is_fresh(&self, now: i64) -> bool {
        self.auth_time
            .is_some_and(|at| at <= now + 60 && now - at <= FRESH_SIGN_IN_SECS)
    }
}

/// Verifies an ID token's signature and claims (not the nonce's freshness: the caller consumes
/// it in storage).
pub async fn verify(config: &IdentityConfig, token: &str) -> Result<Assertion, IdentityError> {
    let claims = config
        .keys
        .verify_with(token, |jwks| {
            verify_jws(jwks, &config.issuer, &config.audience, token)
        })
        .await
        .map_err(IdentityError::Invalid)?;
    let nonce = claims["nonce"]
        .as_str()
        .filter(|n| !n.is_empty() && n.len() <= 128)
        .ok_or(IdentityError::NonceUnknown)?
        .to_owned();
    let citizen_id = claims[config.citizen_claim.as_str()]
        .as_str()
        .filter(|c| c.len() == 12 && c.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| IdentityError::NoCitizen(config.citizen_claim.clone()))?
        .to_owned();
    Ok(Assertion {
        citizen_id,
        nonce,
        auth_time: claims["auth_time"].as_i64(),
    })
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
            keys: JwksSource::fixed(self.jwks()),
            citizen_claim: "citizen_id".into(),
        }
    }

    /// The provider's JWKS document.
    pub fn jwks_json(&self) -> String {
        serde_json::to_string(&self.jwks()).unwrap_or_default()
    }

    /// The provider's keys.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![self.jwk.clone()],
        }
    }

    /// The operators' configuration for this provider (audience [`OPERATOR_AUDIENCE`]).
    pub fn operators(&self) -> crate::operators::Operators {
        crate::operators::Operators::fixed(&self.issuer, OPERATOR_AUDIENCE, self.jwks())
    }

    /// An operator's access token, valid for ten minutes: `role` for `organisation`.
    pub fn operator_token(
        &self,
        role: crate::operators::Role,
        organisation: &str,
    ) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp();
        self.sign(&json!({
            "iss": self.issuer, "aud": OPERATOR_AUDIENCE,
            "sub": format!("local-{}-{organisation}", role.code()),
            "thudo_role": role.code(), "thudo_org": organisation, "iat": now, "exp": now + 600,
        }))
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

    /// An ID token for a citizen who signed in with `nonce` just now (`auth_time`), valid
    /// for five minutes.
    pub fn id_token(&self, citizen_id: &str, nonce: &str) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp();
        self.sign(&json!({
            "iss": self.issuer, "aud": self.audience, "sub": format!("local-{citizen_id}"),
            "citizen_id": citizen_id, "nonce": nonce, "iat": now, "exp": now + 300,
            "auth_time": now,
        }))
    }
}
