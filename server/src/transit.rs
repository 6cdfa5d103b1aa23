//! Transit on the backend: credential sales against entitlements, validator enrolment, the
//! validator feed, and tap upload where every tap is re-verified from the scan it carries.
//!
//! Who is trusted with what (docs/security.md): a phone is trusted with nothing but its own
//! signature; a validator is enrolled by the operator and trusted to say *when and where* it saw
//! a scan, never *what* it saw: the card, product and validity come from the issuer-signed
//! credential and the phone-signed QR, checked here again before anything is charged.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use thudo_core::crypto::p256;
use thudo_core::hex;
use thudo_core::sync::protocol::*;
use thudo_core::transit::backend::{
    CredentialOrder, CredentialResponse, InspectionReceipt, InspectionUpload, TapReceipt,
    TapUpload, ValidatorFeed, INSPECTION_UPLOAD_CHUNK,
};
use thudo_core::transit::issuer::{CredentialRequest, IssuerKey, IssuerKeyring, TrustedIssuerKey};
use thudo_core::transit::metro::{EntryFeed, GateDirection};
use thudo_core::transit::validator::{self, DenyList, Tap};
use thudo_core::transit::wire::Payload;
use thudo_core::transit::{Category, Product};

use crate::storage::{
    sha256, CheckedInspection, CheckedTap, EnrolOutcome, Entitlement, Evidence, FraudRecord,
    InspectionStats, NewEnrolment, Storage, StorageError, ValidatorRecord, VerifiedScan,
};
use crate::{admin, blocking, device, valid_citizen_id, ApiError, ApiResult, AppState, JsonBody};

/// Longest an enrolment code may stay usable.
pub const MAX_ENROLMENT_TTL_SECS: i64 = 30 * 86_400;
/// Enrolment codes last this long unless the operator says otherwise.
pub const DEFAULT_ENROLMENT_TTL_SECS: i64 = 86_400;
/// How far a validator's tap time may be from the phone's signed QR time before the backend
/// treats the scan as not fresh (a validator's default window is 45 s back, 15 s ahead; this
/// allows for a validator clock that drifted while offline).
pub const MAX_TAP_QR_SKEW_SECS: u64 = 600;
/// Longest scanned text the backend looks at (a transit QR is 299 characters).
const MAX_SCAN_LEN: usize = 1024;

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
fn stored_keys(storage: &dyn Storage) -> anyhow::Result<Vec<u8>> {
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
pub(crate) struct Issuer {
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
    pub(crate) fn load(storage: &dyn Storage) -> anyhow::Result<Issuer> {
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
    fn refresh(&self, storage: &dyn Storage, force: bool) -> anyhow::Result<()> {
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
    fn trusted(&self) -> HashMap<u16, TrustedIssuerKey> {
        self.ring()
            .all_trusted()
            .into_iter()
            .map(|k| (k.key_id, k))
            .collect()
    }

    /// The keyring to sign with now.
    fn ring(&self) -> std::sync::RwLockReadGuard<'_, IssuerKeyring> {
        self.ring.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// The keyring, read again from storage first when this instance's copy is stale.
async fn current_issuer(state: &AppState) -> Result<std::sync::Arc<Issuer>, ApiError> {
    let issuer = state.issuer.clone();
    if issuer.stale() {
        let (storage, fresh) = (state.storage.clone(), issuer.clone());
        blocking(move || {
            fresh.refresh(storage.as_ref(), false).map_err(|e| {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage", e.to_string())
            })
        })
        .await?;
    }
    Ok(issuer)
}

fn no_signing_key() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "no_issuer_key",
        "no issuer key is valid now; the operator must rotate",
    )
}

fn forbidden(code: &str, message: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, code, message)
}

fn random_token() -> Result<String, ApiError> {
    let mut raw = [0u8; 32];
    thudo_core::crypto::fill_random(&mut raw)
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "internal", "no randomness"))?;
    Ok(hex::encode(&raw))
}

fn month_window(month: &str, utc_offset: i64) -> Option<(u32, u32)> {
    let first = chrono::NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").ok()?;
    let next = first.checked_add_months(chrono::Months::new(1))?;
    let start = first.and_hms_opt(0, 0, 0)?.and_utc().timestamp() - utc_offset;
    let end = next.and_hms_opt(0, 0, 0)?.and_utc().timestamp() - utc_offset - 1;
    Some((u32::try_from(start).ok()?, u32::try_from(end).ok()?))
}

/// The local day (Hanoi) holding unix time `now`: its first and last second.
fn day_window(now: u32, utc_offset: i64) -> Option<(u32, u32)> {
    let local = i64::from(now) + utc_offset;
    let start = local - local.rem_euclid(86_400) - utc_offset;
    Some((
        u32::try_from(start).ok()?,
        u32::try_from(start + 86_399).ok()?,
    ))
}

/// `POST /v1/transit/credentials`: sells a product to the caller's card. A category other than
/// standard needs an entitlement in force now; the credential then lasts no longer than it.
pub(crate) async fn issue_credential(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(order): JsonBody<CredentialOrder>,
) -> ApiResult<CredentialResponse> {
    let device = device(&state, &headers).await?;
    // A retried purchase (its first answer lost) gets the first answer again.
    let replay_key = match headers
        .get(IDEMPOTENCY_KEY_HEADER)
        .map(|v| v.to_str().unwrap_or(""))
    {
        None => None,
        Some(k)
            if (1..=64).contains(&k.len())
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
        {
            Some(format!("idem:credential:{}:{k}", device.id))
        }
        Some(_) => {
            return Err(ApiError::bad(
                "idempotency-key must be 1 to 64 letters, digits or '-'",
            ))
        }
    };
    if let Some(k) = replay_key.clone() {
        let storage = state.storage.clone();
        if let Some(stored) = blocking(move || Ok(storage.get_setting(&k)?)).await? {
            let earlier: CredentialResponse = serde_json::from_slice(&stored).map_err(|e| {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage", e.to_string())
            })?;
            return Ok(Json(earlier));
        }
    }
    let key = hex::decode(&order.device_public_key)
        .filter(|k| k.len() <= 65)
        .ok_or_else(|| ApiError::bad("device_public_key must be hex"))?;
    let compressed = p256::decompress(&key)
        .and_then(|k| p256::compress(&k))
        .ok_or_else(|| ApiError::bad("device_public_key is not a P-256 point"))?;
    // The rider: the buyer, or a dependant the operator recorded as theirs.
    let (rider_account, card_id) = match order.dependant.clone() {
        None => (device.account_id.clone(), device.card_id),
        Some(citizen) => {
            valid_citizen_id(&citizen)?;
            let storage = state.storage.clone();
            let guardian = device.account_id.clone();
            blocking(move || Ok(storage.dependant_of(&guardian, &citizen)?))
                .await?
                .ok_or_else(|| {
                    forbidden(
                        "not_guardian",
                        "the operator holds no guardianship of this citizen for this account",
                    )
                })?
        }
    };
    let now = chrono::Utc::now().timestamp() as u32;
    let mut lifetime_secs = 72 * 3600;
    if order.category != Category::Standard {
        let storage = state.storage.clone();
        let (account, category) = (rider_account.clone(), order.category);
        let entitlement = blocking(move || {
            Ok(storage.entitlement_at(&account, category, i64::from(now))?)
        })
        .await?
        .ok_or_else(|| {
            forbidden(
                "not_entitled",
                &format!(
                    "the {} category needs an entitlement the operator holds for this citizen; none is in force",
                    order.category.label()
                ),
            )
        })?;
        // The credential ends with the entitlement: an expired entitlement stops renewing.
        let left = entitlement.valid_until.saturating_sub(i64::from(now));
        lifetime_secs = lifetime_secs.min(u32::try_from(left).unwrap_or(u32::MAX).max(1));
    }
    let (from, until) = match order.product {
        Product::MonthlySingleRoute | Product::MonthlyAllRoutes => {
            month_window(&order.month, state.fares.utc_offset_secs)
                .ok_or_else(|| ApiError::bad("month must be YYYY-MM"))?
        }
        Product::PayAsYouGo | Product::FreePass => (now - 60, now + 365 * 86_400),
        Product::DayPass => day_window(now, state.fares.utc_offset_secs)
            .ok_or_else(|| ApiError::bad("no day pass can be sold at this time"))?,
    };
    let price = state
        .fares
        .price(order.product, order.category, order.route, now)
        .ok_or_else(|| ApiError::bad("this product is not sold to this category"))?;
    let request = CredentialRequest {
        card_id,
        product: order.product,
        category: order.category,
        route: order.route,
        pass_valid_from: from,
        pass_valid_until: until,
        device_public_key: key,
        lifetime_secs,
    };
    let issuer = current_issuer(&state).await?;
    let credential = {
        let ring = issuer.ring();
        ring.signing_key(now)
            .ok_or_else(no_signing_key)?
            .issue(&request, now)
            .map_err(|e| ApiError::bad(e.to_string()))?
    };
    // Remember which transit key this device holds, so revoking the device revokes the key;
    // a key another account already holds is refused (nobody gets someone else's key denied).
    let storage = state.storage.clone();
    let holder = device.clone();
    let recorded = blocking(move || {
        Ok(storage.record_device_key(&holder, &DenyList::device_hash(&compressed))?)
    })
    .await?;
    if !recorded {
        return Err(forbidden(
            "device_key_taken",
            "this transit key belongs to another account's phone",
        ));
    }
    let response = CredentialResponse {
        credential: hex::encode(&credential),
        card_id,
        price_vnd: price,
        pass_valid_from: from,
        pass_valid_until: until,
    };
    if let Some(k) = replay_key {
        // Two instances serving one purchase's retries at once: both answer with the first
        // answer stored (the other credential is never handed out).
        let storage = state.storage.clone();
        let body = serde_json::to_vec(&response).unwrap_or_default();
        let stored = blocking(move || Ok(storage.claim_setting(&k, &body)?)).await?;
        let first: CredentialResponse = serde_json::from_slice(&stored).map_err(|e| {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage", e.to_string())
        })?;
        return Ok(Json(first));
    }
    Ok(Json(response))
}

/// The enrolled, active validator presenting the request's token. A citizen's device token is
/// refused (403): only enrolled validators read the feed and upload taps.
async fn validator_caller(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<ValidatorRecord, ApiError> {
    let unauthorized = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or unknown token",
        )
    };
    let token = crate::bearer(headers).ok_or_else(unauthorized)?;
    let hash = sha256(token.as_bytes());
    let storage = state.storage.clone();
    let (validator, is_device) = blocking(move || {
        Ok(match storage.validator_by_token(&hash)? {
            Some(v) => (Some(v), false),
            None => (None, storage.device_by_token(&hash)?.is_some()),
        })
    })
    .await?;
    match validator {
        Some(v) if v.decommissioned_at.is_none() => Ok(v),
        Some(_) => Err(forbidden(
            "decommissioned",
            "this validator was decommissioned by the operator",
        )),
        None if is_device => Err(forbidden(
            "validators_only",
            "only enrolled validators read the feed and upload taps",
        )),
        None => Err(unauthorized()),
    }
}

/// `POST /v1/validators`: a validator enrols with an operator's single-use code.
pub(crate) async fn enrol(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<ValidatorEnrolmentRequest>,
) -> ApiResult<ValidatorEnrolmentResponse> {
    if req.device_name.trim().is_empty()
        || req.device_name.len() > 100
        || crate::has_control(&req.device_name)
    {
        return Err(ApiError::bad(
            "device_name must be 1 to 100 bytes, no control characters",
        ));
    }
    if req.enrolment_code.is_empty() || req.enrolment_code.len() > 128 {
        return Err(forbidden("enrolment_unknown", "no such enrolment code"));
    }
    let token = random_token()?;
    let (code_hash, token_hash) = (
        sha256(req.enrolment_code.as_bytes()),
        sha256(token.as_bytes()),
    );
    let storage = state.storage.clone();
    let name = req.device_name.trim().to_owned();
    let now = chrono::Utc::now().timestamp();
    let outcome =
        blocking(move || Ok(storage.enrol_validator(&code_hash, &name, &token_hash, now)?)).await?;
    match outcome {
        EnrolOutcome::Enrolled(v) => Ok(Json(ValidatorEnrolmentResponse {
            validator_id: v.id,
            token,
            label: v.label,
            route: v.route,
            gate: v.gate,
        })),
        EnrolOutcome::Unknown => Err(forbidden("enrolment_unknown", "no such enrolment code")),
        EnrolOutcome::Used => Err(forbidden(
            "enrolment_used",
            "this enrolment code was used already; ask the operator for a new one",
        )),
        EnrolOutcome::Expired => Err(forbidden(
            "enrolment_expired",
            "this enrolment code expired; ask the operator for a new one",
        )),
    }
}

/// `GET /v1/transit/feed`: issuer keys and the signed deny list, for enrolled validators.
pub(crate) async fn validator_feed(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<ValidatorFeed> {
    validator_caller(&state, &headers).await?;
    let storage = state.storage.clone();
    let fares = state.fares.clone();
    let now = chrono::Utc::now().timestamp().max(0) as u64;
    let (today, _) = fares.local_day_and_month(now);
    let ((version, cards, devices), capped_cards) = blocking(move || {
        Ok((
            storage.deny_list()?,
            storage.capped_cards(&today, fares.daily_cap_vnd)?,
        ))
    })
    .await?;
    // The end of today in Hanoi.
    let local = now as i64 + state.fares.utc_offset_secs;
    let capped_until =
        (local - local.rem_euclid(86_400) + 86_400 - state.fares.utc_offset_secs) as u64;
    let list = DenyList {
        version,
        issued_at: chrono::Utc::now().timestamp() as u32,
        cards,
        devices,
    };
    let issuer = current_issuer(&state).await?;
    let ring = issuer.ring();
    let signed = ring
        .signing_key(list.issued_at)
        .ok_or_else(no_signing_key)?
        .sign_deny_list(&list)
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "signing", e.to_string()))?;
    // Previous, current and next keys with their windows: a validator learns the next key
    // before the first credential it signs, and keeps the previous one while its credentials
    // are still out there.
    Ok(Json(ValidatorFeed {
        issuer_keys: ring.trusted_keys(list.issued_at),
        deny_list: hex::encode(&signed),
        capped_cards,
        capped_until,
    }))
}

fn reason_code(reason: validator::Reason) -> String {
    serde_json::to_value(reason)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// What a tap's scan proves, checked against the issuer keys the backend trusts. The card,
/// product and times come from the signed scan; the validator's own fields are not used.
/// At an exit gate the pass's windows and route are not checked: they were at the entry, and a
/// pass that ends during a ride still gets its rider out.
pub fn check_evidence(
    tap: &Tap,
    trusted: &HashMap<u16, TrustedIssuerKey>,
    bound_route: Option<u16>,
    exit: bool,
) -> Evidence {
    let Some(text) = tap.qr.as_deref() else {
        return Evidence::Missing;
    };
    if text.len() > MAX_SCAN_LEN {
        return Evidence::Forged("scan too long".into());
    }
    let Ok(p) = Payload::from_qr_text(text) else {
        return Evidence::Forged("not a transit QR".into());
    };
    let at = u64::from(p.timestamp);
    if let Err(reason) = validator::verify_signatures(&p, trusted, at) {
        return Evidence::Forged(reason_code(reason));
    }
    let f = &p.fields;
    let route = bound_route.unwrap_or(tap.route);
    let pass = match validator::check_windows(f, at) {
        Err(reason) => Err(reason_code(reason)),
        Ok(()) if f.product == Product::MonthlySingleRoute && f.route != route => {
            Err("wrong_route".into())
        }
        Ok(()) => Ok(()),
    };
    let invalid = if at.abs_diff(tap.at) > MAX_TAP_QR_SKEW_SECS {
        Some("not_fresh_at_tap".into())
    } else if exit {
        None
    } else {
        pass.clone().err()
    };
    Evidence::Verified(VerifiedScan {
        card_id: f.card_id,
        product: f.product,
        qr_timestamp: p.timestamp,
        qr_counter: p.counter,
        device_key_hash: DenyList::device_hash(&f.device_public_key),
        invalid,
        pass_valid: pass.is_ok(),
    })
}

/// The issuer keys to judge `scans` by. A scan naming a key this instance's copy does not
/// hold may be signed by a key another instance added moments ago: the keyring is read again
/// before any such scan is judged forged.
fn trusted_for<'a>(
    issuer: &Issuer,
    storage: &dyn Storage,
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
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage", e.to_string()))?;
    Ok(issuer.trusted())
}

/// `POST /v1/transit/inspections`: an enrolled inspector's inspections, each scan verified
/// again at the inspection's time. The inspector's outcome is stored as its observation; the
/// statistics count a finding as verified only when its scan says the same.
pub(crate) async fn upload_inspections(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(upload): JsonBody<InspectionUpload>,
) -> ApiResult<InspectionReceipt> {
    let inspector = validator_caller(&state, &headers).await?;
    if upload.inspections.len() > INSPECTION_UPLOAD_CHUNK {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "at most 1,000 inspections per upload",
        ));
    }
    let issuer = current_issuer(&state).await?;
    let storage = state.storage.clone();
    let (stored, duplicates, acknowledged_seq) = blocking(move || {
        let trusted = trusted_for(
            &issuer,
            storage.as_ref(),
            upload.inspections.iter().map(|i| &i.qr),
        )?;
        let checked: Vec<CheckedInspection> = upload
            .inspections
            .into_iter()
            .map(|inspection| {
                // The scan judged as a tap at the inspection's time and place would be.
                let as_tap = Tap {
                    seq: inspection.seq,
                    at: inspection.at,
                    // A bound inspector's route wins (check_evidence applies it); else the
                    // paired vehicle's, as recorded.
                    route: inspection.route.unwrap_or(0),
                    accepted: true,
                    reason: validator::Reason::Ok,
                    card_id: None,
                    product: None,
                    qr_timestamp: None,
                    qr_counter: None,
                    qr: inspection.qr.clone(),
                    gate: None,
                };
                CheckedInspection {
                    evidence: check_evidence(&as_tap, &trusted, inspector.route, false),
                    inspection,
                }
            })
            .collect();
        Ok(storage.record_inspections(&inspector, &checked)?)
    })
    .await?;
    Ok(Json(InspectionReceipt {
        stored,
        duplicates,
        acknowledged_seq,
    }))
}

/// `GET /v1/admin/transit/inspections`: inspection statistics for fraud work.
pub(crate) async fn admin_inspections(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<InspectionStats> {
    admin(&state, &headers)?;
    let storage = state.storage.clone();
    Ok(Json(
        blocking(move || Ok(storage.inspection_stats()?)).await?,
    ))
}

/// `POST /v1/transit/taps`: an enrolled validator's taps, each re-verified from its scan.
pub(crate) async fn upload_taps(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(upload): JsonBody<TapUpload>,
) -> ApiResult<TapReceipt> {
    let received = chrono::Utc::now().timestamp();
    let validator = validator_caller(&state, &headers).await?;
    if upload.taps.len() > 10_000 {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "at most 10,000 taps per upload",
        ));
    }
    let issuer = current_issuer(&state).await?;
    let storage = state.storage.clone();
    let fares = state.fares.clone();
    let totals = blocking(move || {
        // A gate's line is its route: a single-route pass for the line rides it.
        let gate = validator.gate.as_deref().and_then(crate::fares::parse_gate);
        let (today, _) = fares.local_day_and_month(chrono::Utc::now().timestamp() as u64);
        let bound_route = validator
            .route
            .or_else(|| gate.and_then(|g| fares.gate_route(&g, &today)));
        let exit = gate.is_some_and(|g| g.direction == GateDirection::Exit);
        // Signature checks run here, off the async workers: about 0.2 ms per tap.
        let check = |trusted: &HashMap<u16, TrustedIssuerKey>, tap: &Tap| {
            check_evidence(tap, trusted, bound_route, exit)
        };
        let trusted = trusted_for(&issuer, storage.as_ref(), upload.taps.iter().map(|t| &t.qr))?;
        let checked: Vec<CheckedTap> = upload
            .taps
            .into_iter()
            .map(|tap| CheckedTap {
                evidence: check(&trusted, &tap),
                tap,
            })
            .collect();
        // Complete up to the export, by this clock: the gate says how long it held the taps.
        let complete_at = upload
            .drained
            .then(|| received - upload.exported_secs_ago.min(3_600) as i64);
        Ok(storage.record_taps(&validator, &checked, &fares, complete_at)?)
    })
    .await?;
    Ok(Json(TapReceipt {
        stored: totals.stored,
        duplicates: totals.duplicates,
        acknowledged_seq: totals.highest_seq,
        charged_vnd: totals.charged_vnd,
        not_charged: totals.not_charged,
    }))
}

/// Fares charged to the caller's card, per day.
#[derive(Debug, Serialize, Deserialize)]
pub struct Charges {
    /// The card.
    pub card_id: u64,
    /// `(day, VND)`.
    pub days: Vec<(String, u64)>,
}

/// `GET /v1/transit/charges`.
pub(crate) async fn charges(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Charges> {
    let device = device(&state, &headers).await?;
    let storage = state.storage.clone();
    let card_id = device.card_id;
    let days = blocking(move || Ok(storage.charges(card_id)?)).await?;
    Ok(Json(Charges { card_id, days }))
}

/// What the operator revokes: cards, phones' transit keys (SEC1 hex), or whole devices (every
/// transit key they bought credentials for).
#[derive(Debug, Deserialize)]
pub(crate) struct DenyRequest {
    #[serde(default)]
    cards: Vec<u64>,
    #[serde(default)]
    device_keys: Vec<String>,
    #[serde(default)]
    devices: Vec<String>,
}

/// `POST /v1/admin/transit/deny`: returns the new deny-list version.
pub(crate) async fn admin_deny(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<DenyRequest>,
) -> ApiResult<Value> {
    admin(&state, &headers)?;
    if body.cards.len() + body.device_keys.len() + body.devices.len() > 10_000 {
        return Err(ApiError::bad("at most 10,000 entries per request"));
    }
    let mut hashes = Vec::new();
    for k in &body.device_keys {
        let compressed = hex::decode(k)
            .filter(|k| k.len() <= 65)
            .and_then(|k| p256::decompress(&k))
            .and_then(|k| p256::compress(&k))
            .ok_or_else(|| ApiError::bad(format!("device key {k} is not a P-256 point")))?;
        hashes.push(DenyList::device_hash(&compressed));
    }
    let storage = state.storage.clone();
    let version = blocking(move || {
        for d in &body.devices {
            hashes.extend(storage.device_keys(d)?);
        }
        Ok(storage.deny(&body.cards, &hashes, chrono::Utc::now().timestamp())?)
    })
    .await?;
    Ok(Json(json!({ "version": version })))
}

/// An enrolment the operator creates for one validator.
#[derive(Debug, Deserialize)]
pub(crate) struct EnrolmentOrder {
    label: String,
    #[serde(default)]
    route: Option<u16>,
    #[serde(default)]
    gate: Option<String>,
    #[serde(default)]
    ttl_secs: Option<i64>,
}

/// `POST /v1/admin/transit/enrolments`: a single-use code bound to a route or a gate.
pub(crate) async fn admin_create_enrolment(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(order): JsonBody<EnrolmentOrder>,
) -> ApiResult<Value> {
    admin(&state, &headers)?;
    let storage = state.storage.clone();
    let (label, route, gate) = (order.label.clone(), order.route, order.gate.clone());
    let ttl = order.ttl_secs.unwrap_or(DEFAULT_ENROLMENT_TTL_SECS);
    let (code, expires_at) = blocking(move || {
        create_enrolment(storage.as_ref(), &order.label, order.route, order.gate, ttl)
    })
    .await?;
    Ok(Json(json!({
        "code": code, "label": label.trim(), "route": route, "gate": gate, "expires_at": expires_at
    })))
}

/// Creates a single-use enrolment code bound to a route or a gate, usable for `ttl_secs`;
/// returns the code (shown once, stored hashed) and its expiry. What the operator's console
/// calls; `thudo demo` and test servers call it directly.
pub fn create_enrolment(
    storage: &dyn crate::storage::Storage,
    label: &str,
    route: Option<u16>,
    gate: Option<String>,
    ttl_secs: i64,
) -> Result<(String, i64), ApiError> {
    let label = label.trim().to_owned();
    if label.is_empty() || label.len() > 100 {
        return Err(ApiError::bad("label must be 1 to 100 bytes"));
    }
    let gate = gate.map(|g| g.trim().to_owned());
    match (route, &gate) {
        (Some(0), _) => return Err(ApiError::bad("route must be 1 or more")),
        (Some(_), None) => {}
        (None, Some(g)) if crate::fares::parse_gate(g).is_some() => {}
        (None, Some(_)) => {
            return Err(ApiError::bad(
                "a gate is bound as STATION:entry or STATION:exit (the fare table's station code)",
            ))
        }
        _ => {
            return Err(ApiError::bad(
                "an enrolment is bound to exactly one route (a bus) or gate (a metro gate)",
            ))
        }
    }
    if !(60..=MAX_ENROLMENT_TTL_SECS).contains(&ttl_secs) {
        return Err(ApiError::bad("ttl_secs must be 60 s to 30 days"));
    }
    let code = random_token()?;
    let expires_at = chrono::Utc::now().timestamp() + ttl_secs;
    storage.create_enrolment(&NewEnrolment {
        code_hash: sha256(code.as_bytes()),
        label,
        route,
        gate,
        expires_at,
    })?;
    Ok((code, expires_at))
}

/// `GET /v1/admin/transit/validators`.
pub(crate) async fn admin_validators(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Vec<ValidatorRecord>> {
    admin(&state, &headers)?;
    let storage = state.storage.clone();
    Ok(Json(blocking(move || Ok(storage.validators()?)).await?))
}

/// Entries per page of the entry feed.
pub const ENTRY_FEED_PAGE: usize = 5_000;

/// `GET /v1/transit/entries?after=N`: the metro entries still open on the network after cursor
/// `N`, for exit gates (enrolled validators bound to a gate).
pub(crate) async fn entry_feed(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> ApiResult<EntryFeed> {
    let gate = validator_caller(&state, &headers).await?;
    if gate.gate.is_none() {
        return Err(forbidden(
            "gates_only",
            "only metro gates read the entry feed",
        ));
    }
    let cursor = match crate::query_params(raw).get("after") {
        None => 0,
        Some(a) => a
            .parse::<u64>()
            .map_err(|_| ApiError::bad("after must be a whole number"))?,
    };
    let storage = state.storage.clone();
    let feed = blocking(move || {
        let now = chrono::Utc::now().timestamp();
        Ok(storage.entry_feed(
            cursor,
            now,
            thudo_core::transit::metro::ENTRY_HONOURED_SECS,
            ENTRY_FEED_PAGE,
        )?)
    })
    .await?;
    Ok(Json(feed))
}

/// `POST /v1/admin/transit/journeys/settle`: settles the journeys whose time ran out now (the
/// server also does it every minute).
pub(crate) async fn admin_settle_journeys(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Value> {
    admin(&state, &headers)?;
    let settled = settle_now(&state).await?;
    Ok(Json(json!({ "settled": settled })))
}

/// Settles what is due now, a thousand journeys at a time.
pub(crate) async fn settle_now(state: &AppState) -> Result<u32, ApiError> {
    let storage = state.storage.clone();
    let fares = state.fares.clone();
    blocking(move || {
        let mut total = 0;
        loop {
            let n = storage.settle_journeys(chrono::Utc::now().timestamp(), &fares)?;
            total += n;
            if n < 1_000 {
                return Ok(total);
            }
        }
    })
    .await
}

/// `POST /v1/admin/transit/validators/{id}/decommission`: its token stops working at once.
pub(crate) async fn admin_decommission(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Value> {
    admin(&state, &headers)?;
    let storage = state.storage.clone();
    let now = chrono::Utc::now().timestamp();
    let found = blocking(move || Ok(storage.decommission_validator(&id, now)?)).await?;
    if !found {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such validator",
        ));
    }
    Ok(Json(json!({ "decommissioned": true })))
}

/// `GET /v1/admin/transit/fraud`: suspected relays and forged evidence, oldest first.
pub(crate) async fn admin_fraud(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Vec<FraudRecord>> {
    admin(&state, &headers)?;
    let storage = state.storage.clone();
    Ok(Json(blocking(move || Ok(storage.fraud_records()?)).await?))
}

/// `POST /v1/admin/citizens/{citizen_id}/entitlements`: grants a reduced or free category.
pub(crate) async fn admin_grant_entitlement(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(citizen_id): Path<String>,
    JsonBody(e): JsonBody<Entitlement>,
) -> ApiResult<Value> {
    admin(&state, &headers)?;
    valid_citizen_id(&citizen_id)?;
    if e.category == Category::Standard {
        return Err(ApiError::bad("the standard category needs no entitlement"));
    }
    if e.valid_until <= e.valid_from {
        return Err(ApiError::bad("valid_until must be after valid_from"));
    }
    if e.evidence_ref.trim().is_empty() || e.evidence_ref.len() > 200 {
        return Err(ApiError::bad("evidence_ref must be 1 to 200 bytes"));
    }
    let storage = state.storage.clone();
    blocking(move || Ok(storage.grant_entitlement(&citizen_id, &e)?)).await?;
    Ok(Json(json!({ "granted": true })))
}

/// A dependant to record for a guardian.
#[derive(Debug, Deserialize)]
pub(crate) struct DependantRequest {
    dependant_citizen_id: String,
}

/// `POST /v1/admin/citizens/{citizen_id}/dependants`: the operator records (from the household
/// registry) that this citizen is the guardian of a child or an elderly parent: the guardian's
/// phones may buy and hold the dependant's passes and see their trips.
pub(crate) async fn admin_add_dependant(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(citizen_id): Path<String>,
    JsonBody(body): JsonBody<DependantRequest>,
) -> ApiResult<Value> {
    admin(&state, &headers)?;
    valid_citizen_id(&citizen_id)?;
    valid_citizen_id(&body.dependant_citizen_id)?;
    if body.dependant_citizen_id == citizen_id {
        return Err(ApiError::bad("a citizen is not their own dependant"));
    }
    let storage = state.storage.clone();
    blocking(move || Ok(storage.add_dependant(&citizen_id, &body.dependant_citizen_id)?)).await?;
    Ok(Json(json!({ "recorded": true })))
}

/// `DELETE /v1/admin/citizens/{citizen_id}/dependants/{dependant_citizen_id}`: the guardianship
/// ends (a child came of age, custody changed). The guardian buys no more of the dependant's
/// passes and receives no more of their trips; passes already bought stop at their credential's
/// end (at most 72 h), as they are not renewed.
pub(crate) async fn admin_remove_dependant(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((citizen_id, dependant)): Path<(String, String)>,
) -> ApiResult<Value> {
    admin(&state, &headers)?;
    valid_citizen_id(&citizen_id)?;
    valid_citizen_id(&dependant)?;
    let storage = state.storage.clone();
    let removed = blocking(move || Ok(storage.remove_dependant(&citizen_id, &dependant)?)).await?;
    if !removed {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such guardianship",
        ));
    }
    Ok(Json(json!({ "removed": true })))
}

/// `GET /v1/admin/citizens/{citizen_id}/entitlements`.
pub(crate) async fn admin_entitlements(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(citizen_id): Path<String>,
) -> ApiResult<Vec<Entitlement>> {
    admin(&state, &headers)?;
    valid_citizen_id(&citizen_id)?;
    let storage = state.storage.clone();
    Ok(Json(
        blocking(move || Ok(storage.entitlements(&citizen_id)?)).await?,
    ))
}

fn one_day() -> u32 {
    86_400
}

/// A key rotation the operator orders.
#[derive(Debug, Deserialize)]
pub(crate) struct RotationOrder {
    /// Seconds from now until the new key starts signing (validators learn it from the feed
    /// meanwhile; default one day, longer than validators go between feed fetches).
    #[serde(default = "one_day")]
    starts_in_secs: u32,
    /// End the windows of the older keys this many seconds from now (a compromised key); at
    /// least the longest credential lifetime (72 h) so credentials out there keep working.
    #[serde(default)]
    retire_previous_after_secs: Option<u32>,
}

/// `POST /v1/admin/transit/issuer/rotate`: adds the next issuer key; returns the keyring as
/// validators will get it.
pub(crate) async fn admin_rotate_issuer(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(order): JsonBody<RotationOrder>,
) -> ApiResult<Vec<TrustedIssuerKey>> {
    admin(&state, &headers)?;
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
        let failed = |e: anyhow::Error| {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage", e.to_string())
        };
        let now = chrono::Utc::now().timestamp() as u32;
        // Read, change and write in one transaction, one rotation at a time on every instance.
        let mut refused = None;
        let json = storage.update_setting("issuer_keys", &mut |current| {
            let mut keys = match current {
                Some(json) => parse_keys(&json),
                None => Ok(Vec::new()),
            }
            .map_err(|e| StorageError(e.to_string()))?;
            let Some(next_id) = keys
                .iter()
                .map(|k| k.key_id)
                .max()
                .unwrap_or(0)
                .checked_add(1)
            else {
                refused = Some(ApiError::bad("no key ids left"));
                return Err(StorageError("no key ids left".into()));
            };
            let from = now.saturating_add(order.starts_in_secs);
            let until = from.saturating_add(ISSUER_KEY_LIFETIME_SECS);
            if let Some(after) = order.retire_previous_after_secs {
                let end = now.saturating_add(after);
                for k in &mut keys {
                    k.valid_until = k.valid_until.min(end).max(k.valid_from + 1);
                }
            }
            keys.push(new_key(next_id, from, until).map_err(|e| StorageError(e.to_string()))?);
            serde_json::to_vec(&keys).map_err(|e| StorageError(e.to_string()))
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
