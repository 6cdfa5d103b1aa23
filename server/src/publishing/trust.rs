//! The health trust bundle: the health authority publishes whom devices trust to sign health
//! cards and vaccine passports with one call; the backend checks the content, numbers it,
//! dates it and signs it with the trust-list key; devices fetch it on sync and install it
//! (thudo_core::health::trust_bundle).

use std::sync::Arc;
use thudo_core::sync::protocol::ErrorBody;
use thudo_core::sync::protocol::ServerErrorCode;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use thudo_core::crypto::p256::SoftwareKey;
use thudo_core::health::trust_bundle::{CardIssuer, PassportSigner, TrustBundle, MAX_BUNDLE};

use super::PublishingState;
use crate::http::{blocking, query_params, ApiError, ApiResult, JsonBody};
use crate::operators::{Operator, Role};
use crate::storage::settings::SettingsStore;
use crate::storage::StorageError;

/// Where the signed bundle is kept.
const BUNDLE_SETTING: &str = "health_trust_bundle";
/// The stored bundle's version and dates (small JSON), read on every device's request instead
/// of the bundle (up to 2 MB). Written in the same transaction as the bundle (and recorded from
/// the bundle when one stored before this setting existed is first read).
const META_SETTING: &str = "health_trust_bundle_meta";
/// Where the trust-list key is kept (PKCS#8; a deployment keeps it in an HSM).
const KEY_SETTING: &str = "health_trust_key";
/// The longest a bundle may stay fresh: devices must come back for removals.
const MAX_VALID_DAYS: u32 = 90;
/// The longest the backend signs the same content again after the authority published it.
const MAX_CONTENT_AGE_SECS: i64 = MAX_VALID_DAYS as i64 * 86_400;

/// The trust-list key, made on first use. Of several instances, every one goes on with the key
/// the first stored. Once a bundle is published it is never made again: devices carry its
/// public key, and a bundle signed by another would be refused on every one of them while
/// their list goes stale; a lost key is restored from where the deployment keeps it.
fn stored_trust_key(settings: &dyn SettingsStore) -> Result<SoftwareKey, String> {
    // The bundle is read before the key: the key is stored before any bundle it signs, so a
    // bundle seen here had its key stored already, and an instance racing another's first
    // publication never mistakes the fresh key for a lost one.
    let published = settings
        .get_setting(BUNDLE_SETTING)
        .map_err(|e| e.to_string())?
        .is_some();
    if published
        && settings
            .get_setting(KEY_SETTING)
            .map_err(|e| e.to_string())?
            .is_none()
    {
        return Err(format!(
            "the {KEY_SETTING} setting is gone while a bundle it signed is published: restore \
             it (devices refuse bundles signed by another key)"
        ));
    }
    crate::storage::settings::p256_key(settings, KEY_SETTING)
}

fn trust_key(settings: &dyn SettingsStore) -> Result<SoftwareKey, ApiError> {
    stored_trust_key(settings).map_err(|what| {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            ServerErrorCode::Internal,
            format!("trust-list key: {what}"),
        )
    })
}

/// The bundle a stored JWS carries (the backend signed it; not verified again here).
fn signed_bundle(jws: &[u8]) -> Option<TrustBundle> {
    let jws = std::str::from_utf8(jws).ok()?;
    let payload = URL_SAFE_NO_PAD.decode(jws.split('.').nth(1)?).ok()?;
    serde_json::from_slice(&payload).ok()
}

/// A stored bundle's version and dates.
#[derive(Debug, Clone, Copy, serde::Serialize, Deserialize)]
struct Dated {
    version: u64,
    issued_at: i64,
    expires_at: i64,
}

impl From<&TrustBundle> for Dated {
    fn from(b: &TrustBundle) -> Self {
        Dated {
            version: b.version,
            issued_at: b.issued_at,
            expires_at: b.expires_at,
        }
    }
}

impl Dated {
    /// Past half its validity: the bundle is then signed afresh.
    fn renewal_due(&self, now: i64) -> bool {
        now >= self.issued_at + (self.expires_at - self.issued_at) / 2
    }
}

/// Records `dated` as the stored bundle's, unless a later one is recorded already.
fn record_dates(settings: &dyn SettingsStore, dated: Dated) -> crate::storage::Result<()> {
    settings.update_setting(META_SETTING, &mut |current| {
        let kept = current
            .as_deref()
            .and_then(|m| serde_json::from_slice::<Dated>(m).ok());
        let newest = match kept {
            Some(k) if k.version >= dated.version => k,
            _ => dated,
        };
        serde_json::to_vec(&newest).map_err(|e| StorageError::Failed(e.to_string()))
    })?;
    Ok(())
}

/// The stored bundle's version and dates, `None` before the first publication (recorded from
/// the bundle itself when it was stored before they were kept apart).
fn stored_dates(settings: &dyn SettingsStore) -> crate::storage::Result<Option<Dated>> {
    if let Some(meta) = settings.get_setting(META_SETTING)? {
        if let Ok(dated) = serde_json::from_slice::<Dated>(&meta) {
            return Ok(Some(dated));
        }
    }
    let Some(dated) = settings
        .get_setting(BUNDLE_SETTING)?
        .as_deref()
        .and_then(signed_bundle)
        .map(|b| Dated::from(&b))
    else {
        return Ok(None);
    };
    record_dates(settings, dated)?;
    Ok(Some(dated))
}

/// What a device gets: the bundle, or word that the version it has is the current one.
pub enum TrustBundleAnswer {
    /// The published bundle, a compact JWS.
    Bundle(String),
    /// The device's version is the current one: nothing to download.
    Unchanged,
}

/// The published bundle as a device that holds version `have` gets it at `now` (`None` before
/// the first publication; `Unchanged` when `have` is the current version, so the 2 MB a bundle
/// can reach are not sent every few hours to a phone that has it). Once half its validity has
/// passed it is signed afresh: the same content under the next version, dated `now` and valid
/// for the span the health authority chose. So a trust list stays fresh on every device (a new
/// install or a restored phone can always install it) for as long as the backend serves it,
/// without the authority publishing again; a device cut off from the backend still sees its
/// list go stale, and a removal still reaches devices within that span. One instance renews,
/// under the setting's lock; the others serve its renewal.
pub fn current_trust_bundle(
    settings: &dyn SettingsStore,
    have: Option<u64>,
    now: i64,
) -> crate::storage::Result<Option<TrustBundleAnswer>> {
    let Some(mut dated) = stored_dates(settings)? else {
        return Ok(None);
    };
    if dated.renewal_due(now) {
        // A renewal that fails (the database busy, the key unreadable) leaves the stored
        // bundle, valid until its expiry, to be served: the next request tries again.
        match renew(settings, now) {
            Ok(renewed) => dated = renewed.unwrap_or(dated),
            Err(e) => eprintln!("warning: renewing the health trust bundle failed: {e}"),
        }
    }
    if have == Some(dated.version) {
        return Ok(Some(TrustBundleAnswer::Unchanged));
    }
    Ok(settings
        .get_setting(BUNDLE_SETTING)?
        .and_then(|b| String::from_utf8(b).ok())
        .map(TrustBundleAnswer::Bundle))
}

/// Signs the stored bundle afresh if it is still due at `now` (another instance, or a
/// publication, may have got there first); the stored bundle's dates after. The bundle and its
/// dates are written in one transaction.
fn renew(settings: &dyn SettingsStore, now: i64) -> crate::storage::Result<Option<Dated>> {
    let key = stored_trust_key(settings)
        .map_err(|what| StorageError::Failed(format!("trust-list key: {what}")))?;
    let stored = settings.update_setting_and(BUNDLE_SETTING, META_SETTING, &mut |current| {
        let current = current.ok_or_else(|| StorageError::Failed("the bundle is gone".into()))?;
        let Some(bundle) = signed_bundle(&current) else {
            return Ok((current, None));
        };
        // Content the authority published longer ago than a bundle may last is not signed
        // again: the list goes stale on devices (revocations nobody vouched for lately are
        // not kept fresh for ever) until the authority publishes.
        let published = bundle.content_published_at.unwrap_or(bundle.issued_at);
        let too_old = now.saturating_sub(published) > MAX_CONTENT_AGE_SECS;
        if too_old || !Dated::from(&bundle).renewal_due(now) {
            if too_old {
                eprintln!(
                    "warning: the health trust bundle's content (version {}) is older than \
                     {MAX_VALID_DAYS} days: not renewed until the health authority publishes",
                    bundle.version
                );
            }
            let dates = dates_json(&bundle)?;
            return Ok((current, Some(dates)));
        }
        let span = bundle.expires_at - bundle.issued_at;
        let next = TrustBundle {
            version: (bundle.version + 1).max(now.max(0) as u64),
            issued_at: now,
            expires_at: now + span,
            content_published_at: Some(published),
            ..bundle
        };
        let jws = next
            .sign(&key)
            .map_err(|e| StorageError::Failed(format!("renewing the trust bundle: {e}")))?;
        Ok((jws.into_bytes(), Some(dates_json(&next)?)))
    })?;
    Ok(signed_bundle(&stored).map(|b| Dated::from(&b)))
}

/// A bundle's version and dates as stored beside it.
fn dates_json(bundle: &TrustBundle) -> crate::storage::Result<Vec<u8>> {
    serde_json::to_vec(&Dated::from(bundle)).map_err(|e| StorageError::Failed(e.to_string()))
}

/// What the health authority sends.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PublishRequest {
    /// SMART Health Card issuers.
    #[serde(default)]
    card_issuers: Vec<CardIssuer>,
    /// EU DCC Document Signer Certificates.
    #[serde(default)]
    passport_signers: Vec<PassportSigner>,
    /// Revoked vaccine passports: SHA-256 of each UVCI (32 bytes, hex or base64), the form
    /// every app version reads.
    #[serde(default)]
    passport_revocations: Vec<String>,
    /// Revoked vaccine passports as the EU gateway publishes them: SHA-256 (32 bytes, or its
    /// first 16) in hex or base64, after its kind `UCI:` (the default), `COUNTRYCODEUCI:` or
    /// `SIGNATURE:`. Apps older than this field ignore it.
    #[serde(default)]
    passport_revocation_hashes: Vec<String>,
    /// Days until devices should call it stale (1 to 90, default 7).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 90)]
    valid_days: Option<u32>,
}

/// What was published.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct BundlePublished {
    /// The bundle's number (higher than any before).
    version: u64,
    /// When it was published (unix seconds).
    issued_at: i64,
    /// When devices call it stale (unix seconds).
    expires_at: i64,
    /// How many health-card issuers it names.
    card_issuers: usize,
    /// How many passport signers it names.
    passport_signers: usize,
    /// How many revocation entries it holds (both forms).
    passport_revocations: usize,
    /// The trust-list public key (base64url, uncompressed P-256 point).
    public_key: String,
}

/// The published bundle, for the health authority.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct BundleAndKey {
    /// Compact JWS over the bundle; null before the first publication.
    bundle: Option<String>,
    /// The trust-list public key (base64url, uncompressed P-256 point): apps are built with it.
    public_key: String,
}

/// The published bundle, for a device.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct Bundle {
    /// Compact JWS (ES256, typ thudo-health-trust+jws) over the trust bundle; absent when
    /// `unchanged`.
    #[serde(skip_serializing_if = "Option::is_none")]
    bundle: Option<String>,
    /// The version the device named (`have`) is the current one: keep it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    unchanged: bool,
}

/// `POST /v1/admin/health/trust-bundle` (health authority): replaces the published bundle.
/// Content that does not load (a JWKS key whose kid is not its thumbprint, a certificate that
/// is not one) is refused whole and nothing is published.
#[utoipa::path(
    post,
    path = "/v1/admin/health/trust-bundle",
    summary = "Health authority: publishes the health trust bundle (health-card issuers with their keys and revocation lists, vaccine-passport signers), numbered, dated and signed with the trust-list key; content that does not load is refused whole",
    request_body(content = PublishRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "OK", body = BundlePublished),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
    ),
    security(("operator" = [])),
)]
pub(super) async fn publish(
    State(state): State<PublishingState>,
    operator: Operator,
    JsonBody(req): JsonBody<PublishRequest>,
) -> ApiResult<BundlePublished> {
    operator.require(&[Role::HealthAuthority])?;
    let days = req.valid_days.unwrap_or(7);
    if !(1..=MAX_VALID_DAYS).contains(&days) {
        return Err(ApiError::bad(format!(
            "valid_days is 1 to {MAX_VALID_DAYS}"
        )));
    }
    let settings = state.settings.clone();
    blocking(move || {
        let now = chrono::Utc::now().timestamp();
        let key = trust_key(settings.as_ref())?;
        let mut refusal: Option<ApiError> = None;
        let mut published: Option<TrustBundle> = None;
        // Numbered, signed and stored in one transaction, one instance at a time: two
        // publications never share a version, and a later one never gets a lower one.
        let result = settings.update_setting_and(BUNDLE_SETTING, META_SETTING, &mut |current| {
            let previous = current
                .as_deref()
                .and_then(signed_bundle)
                .map(|b| b.version)
                .unwrap_or(0);
            let bundle = TrustBundle {
                // Grows with every publication, and with time.
                version: (previous + 1).max(now.max(0) as u64),
                issued_at: now,
                expires_at: now + i64::from(days) * 86_400,
                card_issuers: req.card_issuers.clone(),
                passport_signers: req.passport_signers.clone(),
                passport_revocations: req.passport_revocations.clone(),
                passport_revocation_hashes: req.passport_revocation_hashes.clone(),
                content_published_at: Some(now),
            };
            // Sized before its content is loaded: a request body may be eight times what
            // devices take.
            let signed = bundle
                .sign(&key)
                .map_err(|e| ApiError::bad(e.to_string()))
                .and_then(|jws| {
                    // Devices refuse larger bundles: one they cannot install is not published.
                    if jws.len() > MAX_BUNDLE {
                        Err(ApiError::new(
                            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                            ServerErrorCode::TooLarge,
                            format!("the signed bundle is larger than {MAX_BUNDLE} bytes"),
                        ))
                    } else {
                        Ok(jws)
                    }
                })
                .and_then(|jws| match bundle.trust_store() {
                    Ok(_) => Ok(jws),
                    Err(e) => Err(ApiError::bad(e.to_string())),
                });
            match signed {
                Ok(jws) => {
                    let dates = dates_json(&bundle)?;
                    published = Some(bundle);
                    Ok((jws.into_bytes(), Some(dates)))
                }
                Err(e) => {
                    refusal = Some(e);
                    // Leave the stored bundle as it was.
                    let kept = current
                        .ok_or_else(|| crate::storage::StorageError::Failed("refused".into()))?;
                    Ok((kept, None))
                }
            }
        });
        if let Some(e) = refusal {
            return Err(e);
        }
        result?;
        let bundle = published.ok_or_else(|| ApiError::bad("nothing was published"))?;
        Ok(Json(BundlePublished {
            version: bundle.version,
            issued_at: bundle.issued_at,
            expires_at: bundle.expires_at,
            card_issuers: bundle.card_issuers.len(),
            passport_signers: bundle.passport_signers.len(),
            passport_revocations: bundle.passport_revocations.len()
                + bundle.passport_revocation_hashes.len(),
            public_key: URL_SAFE_NO_PAD.encode(key.public_key()),
        }))
    })
    .await
}

/// `GET /v1/admin/health/trust-bundle` (health authority, auditor): the published bundle and
/// the trust-list public key, which apps are built with.
#[utoipa::path(
    get,
    path = "/v1/admin/health/trust-bundle",
    summary = "Health authority, auditor: the published bundle and the trust-list public key",
    responses(
        (status = 200, description = "OK", body = BundleAndKey),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
    ),
    security(("operator" = [])),
)]
pub(super) async fn published(
    State(state): State<PublishingState>,
    operator: Operator,
) -> ApiResult<BundleAndKey> {
    operator.require(&[Role::HealthAuthority, Role::Auditor])?;
    let settings = state.settings.clone();
    blocking(move || {
        let key = trust_key(settings.as_ref())?;
        let bundle =
            match current_trust_bundle(settings.as_ref(), None, chrono::Utc::now().timestamp())? {
                Some(TrustBundleAnswer::Bundle(jws)) => Some(jws),
                _ => None,
            };
        Ok(Json(BundleAndKey {
            bundle,
            public_key: URL_SAFE_NO_PAD.encode(key.public_key()),
        }))
    })
    .await
}

/// `GET /v1/health/trust-bundle[?have=N]` (a registered device): the published bundle, or
/// `unchanged` when the device holds it already; 404 before the first publication.
#[utoipa::path(
    get,
    path = "/v1/health/trust-bundle",
    summary = "A registered device: the published health trust bundle, to verify with the trust-list key it was built with and install; `unchanged` instead when `have` is its version",
    params(
        ("have" = Option<u64>, Query, description = "The version the device holds"),
    ),
    responses(
        (status = 200, description = "OK", body = Bundle),
        (status = 404, description = "No such resource", body = ErrorBody),
    ),
    security(("device" = [])),
)]
pub(super) async fn for_device(
    State(state): State<PublishingState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> ApiResult<Bundle> {
    crate::devices::authenticate(&state.devices, &headers).await?;
    let have = match query_params(query).get("have") {
        None => None,
        Some(text) => Some(
            text.parse::<u64>()
                .map_err(|_| ApiError::bad("have must be a bundle version"))?,
        ),
    };
    let settings: Arc<dyn SettingsStore> = state.settings.clone();
    blocking(move || {
        let now = chrono::Utc::now().timestamp();
        match current_trust_bundle(settings.as_ref(), have, now)? {
            None => Err(ApiError::not_found("no trust bundle is published yet")),
            Some(TrustBundleAnswer::Unchanged) => Ok(Json(Bundle {
                bundle: None,
                unchanged: true,
            })),
            Some(TrustBundleAnswer::Bundle(jws)) => Ok(Json(Bundle {
                bundle: Some(jws),
                unchanged: false,
            })),
        }
    })
    .await
}
