//! The issuer's keyring: made on first start, kept in storage (a deployment keeps it in an
//! HSM), read again by every instance every few seconds so a rotation on one reaches all, and
//! rotated by the operator.

use std::collections::HashMap;
use thudo_core::sync::protocol::ErrorBody;
use thudo_core::sync::protocol::ServerErrorCode;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use thudo_core::hex;
use thudo_core::transit::issuer::{IssuerKey, IssuerKeyring, TrustedIssuerKey};
use thudo_core::transit::wire::Payload;

use super::TransitState;
use crate::http::{blocking, ApiError, ApiResult, JsonBody};
use crate::operators::{Operator, Role};
use crate::storage::settings::SettingsStore;
use crate::storage::StorageError;

/// Lifetime of a new issuer key.
const ISSUER_KEY_LIFETIME_SECS: u32 = 2 * 365 * 86_400;

/// One issuer key as stored (PKCS#8 in the settings table: a deployment keeps it in an HSM).
#[derive(Serialize, Deserialize)]
struct StoredIssuerKey {
    key_id: u16,
    pkcs8: String,
    valid_from: u32,
    valid_until: u32,
}

/// How long an instance signs with its copy of the keyring before it reads the stored one again
/// (another instance may have rotated it). A rotation starts the new key later than this.
pub const ISSUER_REFRESH_SECS: u64 = 5;

fn parse_keys(json: &[u8]) -> anyhow::Result<Vec<StoredIssuerKey>> {
    Ok(serde_json::from_slice(json)?)
}

fn new_key(key_id: u16, from: u32, until: u32) -> anyhow::Result<StoredIssuerKey> {
    let (_, pkcs8) =
        IssuerKey::generate(key_id, from, until).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(StoredIssuerKey {
        key_id,
        pkcs8: hex::encode(&pkcs8),
        valid_from: from,
        valid_until: until,
    })
}

/// The stored keyring as JSON, made on first start. Of several instances starting on one new
/// database, every one goes on with the keyring the first stored.
fn stored_keys(storage: &dyn SettingsStore) -> anyhow::Result<Vec<u8>> {
    if let Some(json) = storage.get_setting("issuer_keys")? {
        return Ok(json);
    }
    let now = chrono::Utc::now().timestamp() as u32;
    // A database from before keyrings held one key as two settings.
    let key = match (
        storage.get_setting("issuer_pkcs8")?,
        storage.get_setting("issuer_window")?,
    ) {
        (Some(pkcs8), Some(window)) => {
            let text = String::from_utf8(window)?;
            let (from, until) = text
                .split_once('-')
                .ok_or_else(|| anyhow::anyhow!("bad issuer window"))?;
            StoredIssuerKey {
                key_id: 1,
                pkcs8: hex::encode(&pkcs8),
                valid_from: from.parse()?,
                valid_until: until.parse()?,
            }
        }
        _ => new_key(1, now - 86_400, now + ISSUER_KEY_LIFETIME_SECS)?,
    };
    Ok(storage.claim_setting("issuer_keys", &serde_json::to_vec(&[key])?)?)
}

fn keyring_from(json: &[u8]) -> anyhow::Result<IssuerKeyring> {
    let keys = parse_keys(json)?
        .into_iter()
        .map(|k| {
            let pkcs8 = hex::decode(&k.pkcs8).ok_or_else(|| anyhow::anyhow!("bad issuer key"))?;
            IssuerKey::from_pkcs8(&pkcs8, k.key_id, k.valid_from, k.valid_until)
                .map_err(|e| anyhow::anyhow!("{e}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    IssuerKeyring::new(keys).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The issuer's keyring as this instance signs with it: a copy of the stored one, read again
/// every [`ISSUER_REFRESH_SECS`] so a rotation on any instance reaches every instance.
pub struct Issuer {
    ring: std::sync::RwLock<IssuerKeyring>,
    /// When the stored keyring was last read, what it was, and how many times a keyring was
    /// installed (a read that began before a newer install must not undo it).
    seen: std::sync::Mutex<Seen>,
}

struct Seen {
    at: std::time::Instant,
    json: Vec<u8>,
    generation: u64,
}

impl Issuer {
    /// The stored keyring (its first key made on first start).
    pub(crate) fn load(storage: &dyn SettingsStore) -> anyhow::Result<Issuer> {
        let json = stored_keys(storage)?;
        Ok(Issuer {
            ring: std::sync::RwLock::new(keyring_from(&json)?),
            seen: std::sync::Mutex::new(Seen {
                at: std::time::Instant::now(),
                json,
                generation: 0,
            }),
        })
    }

    /// Installs a keyring read as `json` by a read that began at `generation`, unless a newer
    /// one was installed since.
    fn install(&self, json: Vec<u8>, ring: IssuerKeyring, generation: u64) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.generation != generation || seen.json == json {
            return;
        }
        *self.ring.write().unwrap_or_else(|e| e.into_inner()) = ring;
        seen.json = json;
        seen.generation += 1;
    }

    /// Whether the copy is older than [`ISSUER_REFRESH_SECS`]. Never waits: while another
    /// request refreshes, the copy counts as fresh.
    fn stale(&self) -> bool {
        self.seen
            .try_lock()
            .is_ok_and(|seen| seen.at.elapsed().as_secs() >= ISSUER_REFRESH_SECS)
    }

    /// Reads the stored keyring again (blocking: storage) when the copy is stale, or always
    /// with `force`. The storage read holds no lock a request could wait on.
    pub(super) fn refresh(&self, storage: &dyn SettingsStore, force: bool) -> anyhow::Result<()> {
        let generation = {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if !force && seen.at.elapsed().as_secs() < ISSUER_REFRESH_SECS {
                return Ok(());
            }
            // Claimed: other requests see a fresh copy until this read is done.
            seen.at = std::time::Instant::now();
            seen.generation
        };
        let json = stored_keys(storage)?;
        let ring = keyring_from(&json)?;
        self.install(json, ring, generation);
        Ok(())
    }

    /// Every key a scan may name, as validators trust them.
    pub(super) fn trusted(&self) -> HashMap<u16, TrustedIssuerKey> {
        self.ring()
            .all_trusted()
            .into_iter()
            .map(|k| (k.key_id, k))
            .collect()
    }

    /// The keyring to sign with now.
    pub(super) fn ring(&self) -> std::sync::RwLockReadGuard<'_, IssuerKeyring> {
        self.ring.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// The keyring, read again from storage first when this instance's copy is stale.
pub(super) async fn current_issuer(
    state: &TransitState,
) -> Result<std::sync::Arc<Issuer>, ApiError> {
    let issuer = state.issuer.clone();
    if issuer.stale() {
        let (storage, fresh) = (state.storage.clone(), issuer.clone());
        blocking(move || {
            fresh
                .refresh(storage.as_ref(), false)
                .map_err(|e| ApiError::from(crate::storage::StorageError::Failed(e.to_string())))
        })
        .await?;
    }
    Ok(issuer)
}

pub(super) fn no_signing_key() -> ApiError {
    // Only the operator's rotation ends it: clients come back in a minute, not in seconds.
    ApiError::unavailable(
        ServerErrorCode::NoIssuerKey,
        "no issuer key is valid now; the operator must rotate",
    )
    .retry_after(NO_KEY_RETRY_SECS)
}

/// Seconds a client waits before asking again while no issuer key is valid.
const NO_KEY_RETRY_SECS: u64 = 60;

/// The issuer keys to judge `scans` by. A scan naming a key this instance's copy does not
/// hold may be signed by a key another instance added moments ago: the keyring is read again
/// before any such scan is judged forged.
pub(super) fn trusted_for<'a>(
    issuer: &Issuer,
    storage: &dyn SettingsStore,
    scans: impl Iterator<Item = &'a Option<String>>,
) -> Result<HashMap<u16, TrustedIssuerKey>, ApiError> {
    let trusted = issuer.trusted();
    let unknown = scans
        .filter_map(|q| Payload::from_qr_text(q.as_deref()?).ok())
        .any(|p| !trusted.contains_key(&p.fields.issuer_key_id));
    if !unknown {
        return Ok(trusted);
    }
    issuer
        .refresh(storage, true)
        .map_err(|e| ApiError::from(crate::storage::StorageError::Failed(e.to_string())))?;
    Ok(issuer.trusted())
}

fn one_day() -> u32 {
    86_400
}

/// A key rotation the operator orders.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct RotationOrder {
    /// Seconds from now until the new key starts signing (validators learn it from the feed
    /// meanwhile; default one day, longer than validators go between feed fetches).
    #[serde(default = "one_day")]
    #[schema(default = 86400, maximum = 7776000)]
    starts_in_secs: u32,
    /// End the windows of the older keys this many seconds from now (a compromised key); at
    /// least the longest credential lifetime (72 h) so credentials out there keep working.
    #[serde(default)]
    #[schema(minimum = 259200)]
    retire_previous_after_secs: Option<u32>,
}

/// `POST /v1/admin/transit/issuer/rotate`: adds the next issuer key; returns the keyring as
/// validators will get it.
#[utoipa::path(
    post,
    path = "/v1/admin/transit/issuer/rotate",
    summary = "Add the next issuer key (validators learn it from the feed before it signs); optionally end older keys' windows; publishes a newer deny list",
    request_body(content = RotationOrder, content_type = "application/json"),
    responses(
        (status = 200, description = "The keys validators now get", body = [TrustedIssuerKey]),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
    ),
    security(("operator" = [])),
)]
pub(crate) async fn admin_rotate_issuer(
    State(state): State<TransitState>,
    operator: Operator,
    JsonBody(order): JsonBody<RotationOrder>,
) -> ApiResult<Vec<TrustedIssuerKey>> {
    operator.require(&[Role::TransitOperator])?;
    let min_retire = thudo_core::transit::issuer::MAX_CREDENTIAL_LIFETIME_SECS;
    if order
        .retire_previous_after_secs
        .is_some_and(|s| s < min_retire)
    {
        return Err(ApiError::bad(
            "retire_previous_after_secs must be at least the credential lifetime (259200)",
        ));
    }
    if order.starts_in_secs > 90 * 86_400 {
        return Err(ApiError::bad("starts_in_secs must be at most 90 days"));
    }
    if order
        .retire_previous_after_secs
        .is_some_and(|r| r < order.starts_in_secs)
    {
        // Older keys must keep signing until the new one starts, or nothing could sign.
        return Err(ApiError::bad(
            "retire_previous_after_secs must not end older keys before the new key starts",
        ));
    }
    let storage = state.storage.clone();
    let issuer = state.issuer.clone();
    blocking(move || {
        let failed =
            |e: anyhow::Error| ApiError::from(crate::storage::StorageError::Failed(e.to_string()));
        let now = chrono::Utc::now().timestamp() as u32;
        // Read, change and write in one transaction, one rotation at a time on every instance.
        let mut refused = None;
        let json = storage.update_setting("issuer_keys", &mut |current| {
            let mut keys = match current {
                Some(json) => parse_keys(&json),
                None => Ok(Vec::new()),
            }
            .map_err(|e| StorageError::Failed(e.to_string()))?;
            let Some(next_id) = keys
                .iter()
                .map(|k| k.key_id)
                .max()
                .unwrap_or(0)
                .checked_add(1)
            else {
                refused = Some(ApiError::bad("no key ids left"));
                return Err(StorageError::Failed("no key ids left".into()));
            };
            let from = now.saturating_add(order.starts_in_secs);
            let until = from.saturating_add(ISSUER_KEY_LIFETIME_SECS);
            if let Some(after) = order.retire_previous_after_secs {
                let end = now.saturating_add(after);
                for k in &mut keys {
                    k.valid_until = k.valid_until.min(end).max(k.valid_from + 1);
                }
            }
            keys.push(
                new_key(next_id, from, until).map_err(|e| StorageError::Failed(e.to_string()))?,
            );
            serde_json::to_vec(&keys).map_err(|e| StorageError::Failed(e.to_string()))
        });
        let json = match (json, refused) {
            (_, Some(refusal)) => return Err(refusal),
            (result, None) => result?,
        };
        let ring = keyring_from(&json).map_err(failed)?;
        let trusted = ring.trusted_keys(now);
        {
            // What was just written is the newest: it replaces whatever a read in flight holds.
            let mut seen = issuer.seen.lock().unwrap_or_else(|e| e.into_inner());
            *issuer.ring.write().unwrap_or_else(|e| e.into_inner()) = ring;
            seen.at = std::time::Instant::now();
            seen.json = json;
            seen.generation += 1;
        }
        // A new deny-list version, signed by the new key once it signs: validators that only
        // trust the new key (or hold a list of a retired one) take it, never an older one.
        storage.deny(&[], &[], i64::from(now))?;
        Ok(Json(trusted))
    })
    .await
}
