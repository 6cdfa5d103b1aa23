//! Tokens signed by an identity provider (JWS, as OpenID Connect and OAuth providers issue
//! them): verification against the provider's keys, and the keys kept current from its
//! `jwks_uri`. Citizens' ID tokens (at registration) and operators' access tokens (at the
//! gate) are both checked here.

use std::sync::Arc;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

/// Clock skew allowed on `exp`, `nbf` and `iat`.
const LEEWAY_SECS: u64 = 60;

/// Verifies a JWS signed by one of `jwks`'s keys, issued by `issuer` for `audience`, with
/// `exp`, `iat` and (when present) `nbf` checked; returns its claims. A time claim written as a
/// string is refused, not skipped (CVE-2026-25537). Shared by citizens' ID tokens and
/// operators' access tokens.
pub fn verify_jws(
    jwks: &JwkSet,
    issuer: &str,
    audience: &str,
    token: &str,
) -> Result<Value, String> {
    if token.len() > 16 * 1024 {
        return Err("token too long".into());
    }
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    let kid = header.kid.as_deref().ok_or("no kid")?;
    let jwk = jwks.find(kid).ok_or_else(|| format!("unknown key {kid}"))?;
    // The algorithm follows the key, never the token's header alone (no alg confusion).
    let alg = match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        _ => return Err("unsupported key type".into()),
    };
    if header.alg != alg {
        return Err(format!(
            "algorithm {:?} does not match key {kid}",
            header.alg
        ));
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "iat"]);
    validation.leeway = LEEWAY_SECS;
    validation.validate_nbf = true;
    let data =
        jsonwebtoken::decode::<Value>(token, &key, &validation).map_err(|e| e.to_string())?;
    let now = chrono::Utc::now().timestamp();
    // Every time claim is a number: the library's own checks are not trusted to have seen one
    // written as a string.
    for claim in ["exp", "iat", "nbf"] {
        let value = &data.claims[claim];
        if !(value.is_null() && claim == "nbf") && value.as_i64().is_none() {
            return Err(format!("{claim} is not a number"));
        }
    }
    if data.claims["iat"]
        .as_i64()
        .is_none_or(|iat| iat > now + LEEWAY_SECS as i64)
    {
        return Err("issued in the future".into());
    }
    Ok(data.claims)
}

/// A provider's signing keys: fixed (a JWKS file), or fetched from its `jwks_uri` and kept
/// current. Fetched keys are refreshed when older than their cache lifetime (the answer's
/// `Cache-Control: max-age`, else an hour, at least five minutes), and at once when a token
/// names a key not seen yet (a rotation), at most once a minute so made-up key ids cannot
/// make the backend hammer the provider. A failed refresh keeps the keys it had.
#[derive(Clone)]
pub struct JwksSource {
    inner: Arc<JwksInner>,
}

struct JwksInner {
    fetch: Option<(reqwest::Client, String)>,
    state: std::sync::RwLock<Fetched>,
    refreshing: tokio::sync::Mutex<()>,
}

struct Fetched {
    keys: Arc<JwkSet>,
    fresh_until: std::time::Instant,
    /// The last fetch for a key id not held (they are limited to one a minute).
    last_unknown_fetch: Option<std::time::Instant>,
}

/// How long fetched keys are kept when the provider says nothing.
const JWKS_DEFAULT_AGE: std::time::Duration = std::time::Duration::from_secs(3600);
/// The shortest a provider may ask keys to be kept (so it cannot make every request a fetch).
const JWKS_MIN_AGE: std::time::Duration = std::time::Duration::from_secs(300);
/// The least time between two fetches for an unknown key id.
const JWKS_RETRY: std::time::Duration = std::time::Duration::from_secs(60);
/// The largest JWKS document read.
const JWKS_MAX_BYTES: usize = 256 << 10;

impl JwksSource {
    /// Keys that never change (a JWKS file).
    pub fn fixed(jwks: JwkSet) -> JwksSource {
        JwksSource {
            inner: Arc::new(JwksInner {
                fetch: None,
                state: std::sync::RwLock::new(Fetched {
                    keys: Arc::new(jwks),
                    fresh_until: std::time::Instant::now() + JWKS_DEFAULT_AGE,
                    last_unknown_fetch: None,
                }),
                refreshing: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Keys fetched from `uri` now, and kept current from there. `https` only, except on
    /// the loopback address (tests).
    pub async fn fetched(uri: &str) -> anyhow::Result<JwksSource> {
        let client = crate::http::outbound_client(uri, std::time::Duration::from_secs(10))?;
        let (keys, age) = fetch_jwks(&client, uri).await?;
        Ok(JwksSource {
            inner: Arc::new(JwksInner {
                fetch: Some((client, uri.to_owned())),
                state: std::sync::RwLock::new(Fetched {
                    keys: Arc::new(keys),
                    fresh_until: std::time::Instant::now() + age,
                    last_unknown_fetch: None,
                }),
                refreshing: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The keys held now.
    pub fn current(&self) -> Arc<JwkSet> {
        self.read().keys.clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Fetched> {
        self.inner.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `check` against the keys, refreshing them first when stale, and once more after
    /// a refresh when the token names a key not held (the provider rotated).
    pub async fn verify_with<T>(
        &self,
        token: &str,
        check: impl Fn(&JwkSet) -> Result<T, String>,
    ) -> Result<T, String> {
        if self.inner.fetch.is_some() && self.read().fresh_until <= std::time::Instant::now() {
            self.refresh(false).await;
        }
        let kid = jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid);
        if kid.is_some_and(|kid| self.current().find(&kid).is_none()) {
            self.refresh(true).await;
        }
        // The keys as they are now (another request may have fetched them meanwhile).
        check(&self.current())
    }

    /// Fetches the keys again: when stale (unless another request just did), or for a key id
    /// not held (at most once every [`JWKS_RETRY`]).
    async fn refresh(&self, unknown_key: bool) {
        let Some((client, uri)) = &self.inner.fetch else {
            return;
        };
        let _one_at_a_time = self.inner.refreshing.lock().await;
        let now = std::time::Instant::now();
        {
            let mut state = self.inner.state.write().unwrap_or_else(|e| e.into_inner());
            if unknown_key {
                if state
                    .last_unknown_fetch
                    .is_some_and(|t| now.duration_since(t) < JWKS_RETRY)
                {
                    return;
                }
                state.last_unknown_fetch = Some(now);
            } else if state.fresh_until > now {
                // Another request refreshed while this one waited.
                return;
            }
        }
        let fetched = fetch_jwks(client, uri).await;
        let mut state = self.inner.state.write().unwrap_or_else(|e| e.into_inner());
        match fetched {
            Ok((keys, age)) => {
                state.keys = Arc::new(keys);
                state.fresh_until = now + age;
            }
            Err(e) => {
                eprintln!(
                    "warning: refreshing the JWKS from {uri} failed ({e}); keeping the keys held"
                );
                // Try again at the next stale check, a minute on.
                state.fresh_until = now + JWKS_RETRY;
            }
        }
    }
}

async fn fetch_jwks(
    client: &reqwest::Client,
    uri: &str,
) -> anyhow::Result<(JwkSet, std::time::Duration)> {
    let mut response = client.get(uri).send().await?.error_for_status()?;
    let age = response
        .headers()
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .find_map(|d| d.trim().strip_prefix("max-age=")?.parse::<u64>().ok())
        })
        .map_or(JWKS_DEFAULT_AGE, std::time::Duration::from_secs)
        .max(JWKS_MIN_AGE);
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        body.extend_from_slice(&chunk);
        anyhow::ensure!(body.len() <= JWKS_MAX_BYTES, "the JWKS is too large");
    }
    let keys: JwkSet = serde_json::from_slice(&body)?;
    anyhow::ensure!(!keys.keys.is_empty(), "the JWKS has no keys");
    Ok((keys, age))
}
