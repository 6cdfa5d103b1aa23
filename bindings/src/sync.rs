//! Sync for Kotlin and Swift: register a device, push and pull with progress, and the transit
//! calls that need the backend (buy a credential, the validator feed, tap upload).

use std::sync::Arc;
use std::time::Duration;

use thudo_core::sync::client as core;
use thudo_core::sync::client::{SyncEvent as SyncProgress, SyncReport};
use thudo_core::sync::protocol;
use thudo_core::sync::protocol::ServerErrorCode;
use thudo_core::transit::backend::TapReceipt;

use crate::cancel::guard;
use crate::cancel::CancelToken;
use crate::handbook::HandbookLibrary;
use crate::health::HealthCardVerifier;
use crate::signed;
use crate::transit::TrustedIssuerKey;
use crate::vault::Vault;
use thudo_core::health::trust_bundle;

/// Why a sync call failed. After any of these, what was acknowledged is out of the outbox and
/// what was pulled is applied: nothing is lost or applied twice.
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[uniffi::export(Display)]
pub enum SyncError {
    /// `http://` to a host that is not loopback, or not a URL.
    #[error("insecure or invalid URL {url}: {reason}")]
    InsecureUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Register this device first.
    #[error("not registered")]
    NotRegistered,
    /// The server refused the device's token.
    #[error("unauthorized")]
    Unauthorized,
    /// Unreachable or failing after every retry; try again later.
    #[error("server unavailable after {attempts} attempts: {last}")]
    Unavailable {
        /// Attempts made.
        attempts: i32,
        /// The last failure.
        last: String,
    },
    /// Refused for good (4xx).
    #[error("refused ({status} {wire_code}): {detail}")]
    Refused {
        /// HTTP status.
        status: i32,
        /// Why, as the backend's code (`UNKNOWN` for one this version does not know).
        code: ServerErrorCode,
        /// The code as the backend wrote it (for logs, and for codes newer than this version).
        wire_code: String,
        /// The server's message.
        detail: String,
    },
    /// A reduced or free passenger category without an entitlement in force: explain to the
    /// citizen that the operator must record it (standard fares need none).
    #[error("not entitled: {detail}")]
    NotEntitled {
        /// The server's explanation.
        detail: String,
    },
    /// The vault is registered for another citizen's account and holds their data: sign in as
    /// that citizen, or wipe the vault (`Vault.wipe`) before registering another.
    #[error("this vault belongs to another account")]
    OtherAccount,
    /// The backend serves no app this old: ask the user to update the app (`minimum` is the
    /// oldest library version it serves).
    #[error("upgrade required: the backend needs version {minimum} or later")]
    UpgradeRequired {
        /// The oldest version the backend serves.
        minimum: String,
    },
    /// The server broke the protocol.
    #[error("protocol: {detail}")]
    Protocol {
        /// What.
        detail: String,
    },
    /// The call's `CancelToken` fired or its time budget ran out: what was done before stays;
    /// call again later.
    #[error("cancelled")]
    Cancelled,
    /// This client was shut down (`shutdown()`): it refuses every call from then on; make a new
    /// one.
    #[error("the sync client was shut down")]
    ShutDown,
    /// An argument was refused before anything was sent (a route out of range, ...).
    #[error("invalid argument: {reason}")]
    InvalidArgument {
        /// Which and why.
        reason: String,
    },
    /// The vault under the call failed (closed, locked, its key lost, its disk): the same
    /// faults in every domain's error.
    #[error("{fault}")]
    Vault {
        /// What failed.
        fault: crate::VaultFault,
    },
    /// A health trust bundle was refused (not signed by the app's key, older than the installed
    /// one, expired, malformed); the installed one stays.
    #[error("trust bundle refused ({reason}): {detail}")]
    TrustBundleRefused {
        /// `bad_signature`, `rollback`, `expired` or `malformed`.
        reason: String,
        /// The message.
        detail: String,
    },
    /// A bug in the library.
    #[error("internal: {reason}")]
    Internal {
        /// What.
        reason: String,
    },
}

impl From<core::BackendError> for SyncError {
    fn from(e: core::BackendError) -> Self {
        use core::BackendError as E;
        match e {
            E::InsecureUrl { url, reason } => SyncError::InsecureUrl { url, reason },
            E::NotRegistered => SyncError::NotRegistered,
            E::Unauthorized => SyncError::Unauthorized,
            E::Unavailable { attempts, last } => SyncError::Unavailable {
                attempts: crate::small(attempts),
                last,
            },
            E::Refused {
                status,
                code,
                wire_code,
                message,
            } => SyncError::Refused {
                status: status.into(),
                code,
                wire_code,
                detail: message,
            },
            E::NotEntitled { message } => SyncError::NotEntitled { detail: message },
            E::UpgradeRequired { minimum } => SyncError::UpgradeRequired { minimum },
            E::OtherAccount => SyncError::OtherAccount,
            E::Protocol { detail } => SyncError::Protocol { detail },
            E::Cancelled => SyncError::Cancelled,
            E::ClientClosed => SyncError::ShutDown,
            E::Vault(v) => v.into(),
            // The document library's file: a full or busy disk, mostly.
            E::Store(reason) => SyncError::Vault {
                fault: crate::VaultFault::Io { reason },
            },
        }
    }
}

/// How to reach the backend.
#[derive(Debug, Clone, uniffi::Record)]
pub struct SyncSettings {
    /// `https://...` (`http://` to loopback only).
    pub base_url: String,
    /// Per-request limit, ms (default 20,000).
    #[uniffi(default = None)]
    pub request_timeout_ms: Option<i64>,
    /// Attempts per request (default 6).
    #[uniffi(default = None)]
    pub max_attempts: Option<i32>,
    /// First backoff, ms (default 500; doubles with jitter up to 60 s).
    #[uniffi(default = None)]
    pub backoff_base_ms: Option<i64>,
    /// SHA-256 of the server's SubjectPublicKeyInfo, hex: when given, the certificate must carry
    /// one of these keys (built-in client only; a platform client takes its own pins).
    #[uniffi(default = [])]
    pub pinned_spki_sha256_hex: Vec<String>,
    /// The health trust-list public key the app is built with (base64 P-256 point, from the
    /// operator's `GET /v1/admin/health/trust-bundle`). When given, `sync` fetches the
    /// published trust bundle (at most every 6 hours; `refreshHealthTrust` at once), installs
    /// it if it is newer and signed by this key, and checks pulled health-card records against
    /// it: verifiers need no app code.
    #[uniffi(default = None)]
    pub health_trust_key: Option<String>,
}

/// Sync progress (core's type, carried as it is).
#[uniffi::remote(Enum)]
pub enum SyncProgress {
    /// Outbox mutations acknowledged so far.
    Pushed {
        /// Done.
        done: i64,
        /// Pending at the start.
        total: i64,
    },
    /// Changes received so far in a collection.
    Pulled {
        /// Collection.
        collection: String,
        /// Received.
        received: i64,
        /// What the collection's pull will have received when done, as the server counted it
        /// after the latest page (at most 10,000 more than `received`); null from a server
        /// that does not count. For a progress bar: `received / total`.
        total: Option<i64>,
    },
    /// A request failed and will be retried.
    Retrying {
        /// Failed attempt (1-based).
        attempt: i64,
        /// Delay, ms.
        delay_ms: i64,
        /// What failed.
        reason: String,
    },
}

/// Receives sync progress, in order, before `sync` returns. Called on the thread that runs the
/// sync's step at that moment: the library's pool, or the thread that awaits the call (a
/// coroutine's dispatcher, which may be the main thread). Return quickly, never block, and do
/// not call the sync client from it; firing a `CancelToken` is fine.
#[uniffi::export(with_foreign)]
pub trait SyncObserver: Send + Sync {
    /// One event.
    fn on_progress(&self, progress: SyncProgress);
}

struct Forward(Arc<dyn SyncObserver>);

impl core::SyncObserver for Forward {
    fn on_event(&self, event: &core::SyncEvent) {
        self.0.on_progress(event.clone());
    }
}

/// What a sync did (core's type, carried as it is).
#[uniffi::remote(Record)]
pub struct SyncReport {
    /// Mutations applied by the server.
    pub pushed: i64,
    /// Mutations the server already had.
    pub duplicates: i64,
    /// Mutations older than the server's copy (last writer wins).
    pub superseded_on_server: i64,
    /// Mutations refused for good.
    pub rejected: i64,
    /// Changes received.
    pub pulled: i64,
    /// Changes applied.
    pub applied: i64,
    /// Changes older than the local copy.
    pub superseded_locally: i64,
    /// Changes not understood by this version.
    pub skipped: i64,
    /// Requests retried.
    pub retries: i64,
    /// Server clock minus device clock, ms; pass it as it is to `TransitPhone.setClockOffsetMs`.
    pub clock_offset_ms: Option<i64>,
    /// Duration, ms.
    pub elapsed_ms: i64,
}

/// What an offline validator needs from the backend.
#[derive(Debug, Clone, uniffi::Record)]
pub struct ValidatorFeed {
    /// Issuer keys to trust (pass to `TransitValidator.open`).
    pub issuer_keys: Vec<TrustedIssuerKey>,
    /// The signed deny list (pass to `TransitValidator.updateDenyList`).
    pub deny_list: crate::Bytes,
    /// Pay-as-you-go cards that reached today's cap (pass to `TransitValidator.setCappedCards`
    /// with `cappedUntil`: their rides today are free, and the validator says so).
    pub capped_cards: Vec<i64>,
    /// When today ends in Hanoi (unix seconds).
    pub capped_until: i64,
}

/// An accepted inspection upload.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct InspectionUploadReceipt {
    /// Inspections stored now.
    pub stored: i64,
    /// Inspections the server already had.
    pub duplicates: i64,
    /// Every inspection up to this sequence number is stored at the backend (and acknowledged).
    pub acknowledged_seq: i64,
    /// Inspections numbered with numbers the backend holds for other inspections of this
    /// inspector (one restored from a backup): renumbered past them and uploaded again.
    #[uniffi(default = 0)]
    pub renumbered: i64,
}

/// An accepted tap upload.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TapUploadReceipt {
    /// Taps stored now.
    pub stored: i64,
    /// Taps the server already had.
    pub duplicates: i64,
    /// Every tap up to this sequence number is stored at the backend (and acknowledged).
    pub acknowledged_seq: i64,
    /// Pay-as-you-go fares charged, VND.
    pub charged_vnd: i64,
    /// Taps this validator accepted that the backend did not charge (no or forged evidence,
    /// revoked or invalid at the QR's time, a QR already used on this or another validator).
    pub not_charged: i64,
    /// Fares the server holds for every tap sent, VND: charged now or by an earlier upload of
    /// the same taps (an upload retried after its answer was lost reports them again).
    pub stored_charged_vnd: i64,
    /// Taps numbered with numbers the backend holds for other taps of this validator (one
    /// restored from a backup counts again from an old number): renumbered past them and
    /// uploaded again, so they are counted in `stored` too.
    #[uniffi(default = 0)]
    pub renumbered: i64,
}

impl From<TapReceipt> for TapUploadReceipt {
    fn from(r: TapReceipt) -> Self {
        TapUploadReceipt {
            stored: r.stored.into(),
            duplicates: r.duplicates.into(),
            acknowledged_seq: signed(r.acknowledged_seq),
            charged_vnd: signed(r.charged_vnd),
            not_charged: r.not_charged.into(),
            stored_charged_vnd: signed(r.stored_charged_vnd),
            renumbered: signed(r.reused.len()),
        }
    }
}

/// One of the citizen's devices.
#[derive(Debug, Clone, uniffi::Record)]
pub struct DeviceInfo {
    /// Its id (pass to `revokeDevice`).
    pub device_id: String,
    /// Its name.
    pub name: String,
    /// When it registered (unix seconds).
    pub created_at: i64,
    /// Whether it is this device.
    pub current: bool,
}

/// A validator's enrolment, as the operator bound it.
#[derive(Debug, Clone, uniffi::Record)]
pub struct ValidatorEnrolment {
    /// The validator's id at the backend.
    pub validator_id: String,
    /// The operator's label.
    pub label: String,
    /// The route it serves, for a bus (configure `ValidatorConfig.route` with it).
    pub route: Option<i32>,
    /// The gate it guards, for a metro gate.
    pub gate: Option<String>,
    /// An inspector's device: it inspects (`inspect`, `uploadInspections`) and never uploads
    /// taps (the backend refuses them with `INSPECTOR_DEVICE`).
    #[uniffi(default = false)]
    pub inspector: bool,
}

pub(crate) fn unhex(text: &str) -> Result<Vec<u8>, SyncError> {
    thudo_core::hex::decode(text).ok_or_else(|| SyncError::Protocol {
        detail: "bad hex from the server".into(),
    })
}

/// The sync client: one per backend, shared by every vault of the app. `shutdown()` cancels
/// calls in flight (Kotlin's `close()` frees the handle).
#[derive(uniffi::Object)]
pub struct SyncClient {
    pub(crate) inner: Arc<core::BackendClient>,
    /// The health-card trust pulled records are verified against (see `trust_health_cards`).
    health_trust: std::sync::RwLock<Option<Arc<thudo_core::health::shc::TrustStore>>>,
    /// The trust-list key health trust bundles must be signed with (`SyncSettings`).
    health_trust_key: Option<[u8; 65]>,
    /// When `sync` last asked for the trust bundle (unix seconds): a bundle is up to 2 MB, and
    /// citizens pay for their data, so syncs ask at most every [`TRUST_CHECK_SECS`].
    trust_checked_at: std::sync::Mutex<Option<i64>>,
}

/// How often `sync` asks for the health trust bundle (`refreshHealthTrust` asks at once).
const TRUST_CHECK_SECS: i64 = 6 * 3600;

fn trust_key(settings: &SyncSettings) -> Result<Option<[u8; 65]>, SyncError> {
    settings
        .health_trust_key
        .as_deref()
        .map(|k| {
            trust_bundle::parse_anchor(k).ok_or_else(|| SyncError::InvalidArgument {
                reason: "healthTrustKey is not a base64 P-256 public key".into(),
            })
        })
        .transpose()
}

#[uniffi::export(async_runtime = "tokio")]
impl SyncClient {
    /// A client for `settings.base_url`.
    #[uniffi::constructor]
    /// In a build without the built-in HTTPS client (feature `rust-http` left out to save
    /// about 0.9 MB), fails with `InvalidArgument`: use `withHttpClient`.
    pub fn new(settings: SyncSettings) -> Result<Arc<Self>, SyncError> {
        let c = config(&settings)?;
        #[cfg(feature = "rust-http")]
        return Ok(Arc::new(SyncClient {
            health_trust: std::sync::RwLock::new(None),
            health_trust_key: trust_key(&settings)?,
            trust_checked_at: std::sync::Mutex::new(None),
            inner: Arc::new(core::BackendClient::new(c)?),
        }));
        #[cfg(not(feature = "rust-http"))]
        {
            let _ = c;
            Err(SyncError::InvalidArgument {
                reason: "this build has no built-in HTTP client: use SyncClient.withHttpClient"
                    .into(),
            })
        }
    }

    /// A client for `settings.base_url` that sends through the app's own HTTP client (OkHttp,
    /// URLSession): the platform's trust store, user and enterprise certificate authorities and
    /// system proxy apply. Pinning is then that client's job, so `pinnedSpkiSha256Hex` must be
    /// empty here (give the pins to the platform client: the Kotlin and Swift helpers take
    /// them).
    #[uniffi::constructor]
    pub fn with_http_client(
        settings: SyncSettings,
        http: Arc<dyn crate::http::HttpClient>,
    ) -> Result<Arc<Self>, SyncError> {
        if !settings.pinned_spki_sha256_hex.is_empty() {
            return Err(SyncError::InvalidArgument {
                reason: "pins go to the platform HTTP client, not to the settings".into(),
            });
        }
        let c = config(&settings)?;
        let transport = Arc::new(crate::http::Foreign(http));
        Ok(Arc::new(SyncClient {
            health_trust: std::sync::RwLock::new(None),
            health_trust_key: trust_key(&settings)?,
            trust_checked_at: std::sync::Mutex::new(None),
            inner: Arc::new(core::BackendClient::with_transport(c, transport)?),
        }))
    }

    /// A single-use nonce (valid 10 minutes) for the citizen's sign-in at the identity
    /// provider (VNeID): pass it to the provider's authorization request, then `register` (or
    /// `revokeDevice`) with the ID token it returns. Like every call that waits on the
    /// network, it takes a `cancel` token (the user leaves the screen; a time budget).
    #[uniffi::method(default(cancel = None))]
    pub async fn registration_nonce(
        &self,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<String, SyncError> {
        Ok(guard(cancel)
            .run(self.inner.registration_nonce())
            .await?
            .nonce)
    }

    /// Registers this vault's device with the ID token of the citizen's sign-in (carrying a
    /// nonce from `registrationNonce`); returns the device id. The token the backend gives is
    /// kept encrypted in the vault. The sign-in must be fresh: ask the provider with
    /// `max_age=0` (its `auth_time` within 5 minutes, else `sign_in_not_fresh`). A token that
    /// does not verify, or whose nonce is unknown, used or expired, is `Refused` with code
    /// `identity_invalid`, `nonce_unknown`, `nonce_used` or `nonce_expired`: sign in again.
    /// Validators do not register: they enrol (`enrolValidator`).
    #[uniffi::method(default(cancel = None))]
    pub async fn register(
        &self,
        vault: Arc<Vault>,
        id_token: String,
        device_name: String,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<String, SyncError> {
        let request = protocol::RegisterRequest {
            id_token,
            device_name,
            role: "phone".into(),
            account_id: None,
        };
        Ok(guard(cancel)
            .run(self.inner.register(vault.core(), &request))
            .await?
            .device_id)
    }

    /// The citizen's active devices (this one marked `current`).
    #[uniffi::method(default(cancel = None))]
    pub async fn devices(
        &self,
        vault: Arc<Vault>,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<Vec<DeviceInfo>, SyncError> {
        Ok(guard(cancel)
            .run(self.inner.devices(vault.core()))
            .await?
            .into_iter()
            .map(|d| DeviceInfo {
                device_id: d.device_id,
                name: d.name,
                created_at: d.created_at,
                current: d.current,
            })
            .collect())
    }

    /// Revokes one of the citizen's devices (lost or stolen): its token stops working at once,
    /// its transit keys go on the validators' deny list, and the account's other devices get a
    /// `device_revoked` notice. Takes a fresh sign-in: `id_token` from the identity provider
    /// for a nonce from `registrationNonce()`, asked with `max_age=0` so that the citizen
    /// authenticates again (its `auth_time` within 5 minutes, else `sign_in_not_fresh`): an
    /// unlocked phone's kept session alone revokes nothing.
    #[uniffi::method(default(cancel = None))]
    pub async fn revoke_device(
        &self,
        vault: Arc<Vault>,
        device_id: String,
        id_token: String,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<(), SyncError> {
        Ok(guard(cancel)
            .run(
                self.inner
                    .revoke_device(vault.core(), &device_id, &id_token),
            )
            .await?)
    }

    /// Enrols this vault as a validator with the operator's single-use `enrolment_code`; the
    /// token is kept encrypted in the vault for the feed and tap uploads. A used, expired or
    /// unknown code is `Refused` with code `enrolment_used`, `enrolment_expired` or
    /// `enrolment_unknown`.
    #[uniffi::method(default(cancel = None))]
    pub async fn enrol_validator(
        &self,
        vault: Arc<Vault>,
        enrolment_code: String,
        device_name: String,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<ValidatorEnrolment, SyncError> {
        let request = protocol::ValidatorEnrolmentRequest {
            enrolment_code,
            device_name,
        };
        let r = guard(cancel)
            .run(self.inner.enrol_validator(vault.core(), &request))
            .await?;
        Ok(ValidatorEnrolment {
            validator_id: r.validator_id,
            label: r.label,
            route: r.route.map(i32::from),
            gate: r.gate,
            inspector: r.inspector,
        })
    }

    /// Whether this vault's device is registered.
    pub async fn is_registered(&self, vault: Arc<Vault>) -> Result<bool, SyncError> {
        let v = vault.core();
        crate::blocking(move || Ok(core::BackendClient::registration(&v)?.is_some())).await
    }

    /// Pushes the outbox, then pulls every collection (library documents into `library` when
    /// given). Safe to call again after any failure. `cancel` stops this sync alone (by hand or
    /// at its deadline) with `Cancelled`; the client stays usable and the next sync goes on
    /// from what was acknowledged and applied.
    #[uniffi::method(default(library = None, observer = None, cancel = None))]
    pub async fn sync(
        &self,
        vault: Arc<Vault>,
        library: Option<Arc<HandbookLibrary>>,
        observer: Option<Arc<dyn SyncObserver>>,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<SyncReport, SyncError> {
        let forward = observer.map(Forward);
        let now = now_secs();
        let due = self
            .trust_checked_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none_or(|at| now - at >= TRUST_CHECK_SECS || now < at);
        if let (Some(anchor), true) = (self.health_trust_key, due) {
            // A refused or unreachable bundle leaves the installed one in force and the sync
            // goes on (`refreshHealthTrust` says why, `HealthBook.trustStatus` how old it is).
            let refresh = trust_bundle::refresh(&self.inner, vault.core(), anchor, now);
            let outcome = guard(cancel.clone())
                .run(async { Ok(refresh.await) })
                .await?;
            if let Err(e) = &outcome {
                log::warn!(reason = e.to_string().as_str(); "health trust bundle not installed");
            }
            // Asked and answered (installed, or refused: asking again soon gives the same):
            // the next syncs wait. A network failure is asked again at the next sync.
            if !matches!(outcome, Err(trust_bundle::RefreshError::Backend(_))) {
                *self
                    .trust_checked_at
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(now);
            }
        }
        let explicit = self
            .health_trust
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let health_trust = match explicit {
            Some(t) => Some(t),
            None => {
                let (v, anchor) = (vault.core(), self.health_trust_key);
                crate::blocking(move || -> Result<_, SyncError> {
                    // Only a bundle the app's key signed vouches for a pulled record.
                    let trust = match anchor {
                        Some(anchor) => trust_bundle::installed_trust_signed_by(&v, &anchor),
                        None => trust_bundle::installed_trust(&v),
                    };
                    Ok(trust.ok().flatten().map(Arc::new))
                })
                .await?
            }
        };
        let collections = thudo_core::collections::registry(thudo_core::collections::Stores {
            library: library.map(|l| l.inner.clone()),
            health_trust,
        });
        let sync = self.inner.sync(
            vault.core(),
            &collections,
            forward.as_ref().map(|f| f as &dyn core::SyncObserver),
        );
        Ok(guard(cancel).run(sync).await?)
    }

    /// Fetches the published health trust bundle and installs it (see `SyncSettings.healthTrustKey`,
    /// which it needs); returns the installed bundle's status, `null` when none is published.
    /// A refused bundle (not signed by the key, older than the installed one, expired) is
    /// `TrustBundleRefused` with the reason, and the installed one stays.
    #[uniffi::method(default(cancel = None))]
    pub async fn refresh_health_trust(
        &self,
        vault: Arc<Vault>,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<Option<crate::health_book::HealthTrustStatus>, SyncError> {
        let anchor = self
            .health_trust_key
            .ok_or_else(|| SyncError::InvalidArgument {
                reason: "the settings name no healthTrustKey".into(),
            })?;
        let refresh = trust_bundle::refresh(&self.inner, vault.core(), anchor, now_secs());
        match guard(cancel).run(async { Ok(refresh.await) }).await? {
            Ok(status) => Ok(status.map(Into::into)),
            Err(trust_bundle::RefreshError::Backend(e)) => Err(e.into()),
            Err(trust_bundle::RefreshError::Bundle(e)) => {
                use trust_bundle::TrustBundleError as T;
                let reason = match e {
                    T::Vault(v) => return Err(v.into()),
                    T::Malformed { .. } => "malformed",
                    T::BadSignature => "bad_signature",
                    T::Rollback { .. } => "rollback",
                    T::Expired { .. } => "expired",
                };
                Err(SyncError::TrustBundleRefused {
                    reason: reason.into(),
                    detail: e.to_string(),
                })
            }
        }
    }

    /// Trusts `verifier`'s health-card issuers for records pulled from the citizen's other
    /// devices: a record another device imported from a signed card is shown as verified here
    /// only if its card verifies against them (a snapshot: call again after adding keys).
    /// Without it, such records show as `OTHER_DEVICE`.
    pub fn trust_health_cards(&self, verifier: Arc<HealthCardVerifier>) {
        let trust = verifier.trust().clone();
        *self.health_trust.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(trust));
    }

    /// Teardown only: cancels every call in flight and fails every later call with
    /// `ShutDown`, for good. To stop one call (a background task's expiry, a screen closed),
    /// pass it a `CancelToken` instead.
    pub fn shutdown(&self) {
        self.inner.close();
    }
}

crate::error_api!(SyncError, vault: "sync", internal: Internal, {
        InsecureUrl => ("sync.insecure_url", false),
        NotRegistered => ("sync.not_registered", false),
        Unauthorized => ("sync.unauthorized", false),
        Unavailable => ("sync.unavailable", true),
        Refused => ("sync.refused", false),
        NotEntitled => ("sync.not_entitled", false),
        UpgradeRequired => ("sync.upgrade_required", false),
        OtherAccount => ("sync.other_account", false),
        Protocol => ("sync.protocol", true),
        Cancelled => ("sync.cancelled", true),
        ShutDown => ("sync.shut_down", false),
        InvalidArgument => ("sync.invalid_argument", false),
        TrustBundleRefused => ("sync.trust_bundle_refused", false),
        Internal => ("sync.internal", false),
});

/// The core configuration of `settings`.
fn config(settings: &SyncSettings) -> Result<core::BackendConfig, SyncError> {
    let mut c = core::BackendConfig::new(&settings.base_url);
    if let Some(ms) = settings.request_timeout_ms {
        c.request_timeout = Duration::from_millis(ms.max(1) as u64);
    }
    if let Some(n) = settings.max_attempts {
        c.max_attempts = n.max(1) as u32;
    }
    if let Some(ms) = settings.backoff_base_ms {
        c.backoff_base = Duration::from_millis(ms.max(0) as u64);
    }
    for pin in &settings.pinned_spki_sha256_hex {
        let bytes =
            unhex(pin)
                .ok()
                .filter(|b| b.len() == 32)
                .ok_or_else(|| SyncError::InsecureUrl {
                    url: settings.base_url.clone(),
                    reason: format!("pin {pin} is not 32 bytes of hex"),
                })?;
        let mut a = [0u8; 32];
        a.copy_from_slice(&bytes);
        c.pinned_spki_sha256.push(a);
    }
    Ok(c)
}

fn now_secs() -> i64 {
    crate::unix_now() as i64
}

/// Sync as the device sees it, offline: what a screen shows beside the "sync" button.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncStatus {
    /// Local changes not yet acknowledged by the server (they upload at the next sync).
    pub pending_uploads: i64,
    /// Changes the server refused for good (kept for support; never sent again).
    pub rejected: i64,
    /// When a sync last finished, unix seconds (device clock); null before the first.
    pub last_success_at: Option<i64>,
    /// When a sync last started, unix seconds (device clock). Later than `lastSuccessAt`:
    /// the last one failed, was cancelled or is still running.
    pub last_attempt_at: Option<i64>,
}

/// The sync status now, read from the vault alone (no network).
#[uniffi::export(async_runtime = "tokio")]
pub async fn sync_status(vault: Arc<Vault>) -> Result<SyncStatus, SyncError> {
    let store = vault.inner.clone();
    crate::blocking(move || {
        let s = thudo_core::sync::status::status(&store)?;
        Ok(SyncStatus {
            pending_uploads: signed(s.pending_uploads),
            rejected: signed(s.rejected),
            last_success_at: s.last_success_at.map(signed),
            last_attempt_at: s.last_attempt_at.map(signed),
        })
    })
    .await
}

/// Tells `listener` with `["sync.status"]` after every committed change that may change
/// `syncStatus` (a local change queued, an upload acknowledged or refused, a sync started or
/// finished), on the vault's notifier thread; merged while the listener is busy. Until
/// `cancel()` is called on the subscription (or it is freed). Kotlin:
/// `vault.syncStatusChanges()` gives a `Flow<SyncStatus>`; Swift: `vault.syncStatusChanges()`.
#[uniffi::export]
pub fn observe_sync_status(
    vault: Arc<Vault>,
    listener: Arc<dyn crate::vault::ChangeListener>,
) -> Arc<crate::vault::ChangeSubscription> {
    let sources = thudo_core::sync::status::STATUS_COLLECTIONS
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    vault.observe(sources, Arc::new(AsSyncStatus(listener)))
}

/// Passes any change of the status's collections on as a change of `sync.status`.
struct AsSyncStatus(Arc<dyn crate::vault::ChangeListener>);

impl crate::vault::ChangeListener for AsSyncStatus {
    fn on_change(&self, _collections: Vec<String>) {
        self.0.on_change(vec!["sync.status".to_owned()]);
    }
}

/// Declares the backend's error codes to Kotlin and Swift from core's one table.
macro_rules! ffi_server_error_codes {
    ($($variant:ident = $code:literal : $meaning:literal,)*) => {
        /// Why the backend refused a request (`SyncError.Refused.code`).
        #[uniffi::remote(Enum)]
        pub enum ServerErrorCode {
            $(#[doc = $meaning] $variant,)*
            /// A code this version does not know (a newer backend's): read `wireCode`.
            Unknown,
        }

        /// Each code's variant, wire text and meaning (for docs/errors.md; not exported to
        /// Kotlin or Swift).
        #[doc(hidden)]
        pub const SERVER_ERROR_CODES: &[(&str, &str, &str)] =
            &[$((stringify!($variant), $code, $meaning)),*];
    };
}

thudo_core::with_server_error_codes!(ffi_server_error_codes);
