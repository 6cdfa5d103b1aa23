//! The device's transport to the backend: HTTPS only (loopback HTTP for tests), certificate
//! pinning, bounded response bodies, retries with exponential backoff and jitter (honouring
//! `Retry-After`), the clock offset to the server, and cancellation; plus the calls every
//! device makes (identity nonce, registration, devices). It knows no domain: the sync engine
//! ([`crate::sync`]) and each domain's own calls (`crate::transit::backend`) are built on it.

mod cancel;
mod codes;
pub mod http;
pub mod protocol;
#[cfg(feature = "rust-http")]
mod tls;

pub use cancel::Cancel;
pub use http::{HttpFailure, HttpFuture, HttpRequest, HttpResponse, HttpTransport};
#[cfg(feature = "rust-http")]
pub use tls::{server_verifier, spki_sha256, tls_config};

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use ::http::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::crypto;
use crate::vault::{Document, Vault, VaultError};
use protocol::*;

/// How the client talks to the backend.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    /// `https://...`, or `http://` to a loopback address only.
    pub base_url: String,
    /// Limit for one request, connection included.
    pub request_timeout: Duration,
    /// Limit for connecting.
    pub connect_timeout: Duration,
    /// Changes per pulled page.
    pub page_size: u32,
    /// Mutations per push.
    pub push_batch: usize,
    /// Attempts per request before giving up (at least 1).
    pub max_attempts: u32,
    /// First backoff; doubles each attempt, with full jitter.
    pub backoff_base: Duration,
    /// Longest backoff (and longest `Retry-After` honoured).
    pub backoff_max: Duration,
    /// SHA-256 of the server's SubjectPublicKeyInfo (DER): when not empty, the server's
    /// certificate must carry one of these keys, on top of normal chain validation.
    pub pinned_spki_sha256: Vec<[u8; 32]>,
    /// Extra trust anchors (DER certificates), for a private CA.
    pub extra_roots_der: Vec<Vec<u8>>,
    /// Largest response body read; a longer one fails the call with `Protocol` as it streams
    /// in (default [`MAX_RESPONSE_BYTES`]).
    pub max_response_bytes: usize,
}

impl BackendConfig {
    /// Defaults for `base_url`: 20 s requests, 500-change pages, 200-mutation pushes, 6
    /// attempts, backoff 0.5 s to 60 s.
    pub fn new(base_url: &str) -> BackendConfig {
        BackendConfig {
            base_url: base_url.trim_end_matches('/').to_owned(),
            request_timeout: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(10),
            page_size: 500,
            push_batch: 200,
            max_attempts: 6,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            pinned_spki_sha256: Vec::new(),
            extra_roots_der: Vec::new(),
            max_response_bytes: MAX_RESPONSE_BYTES,
        }
    }
}

/// Why a sync stopped. After any of these the device's data is consistent: what was
/// acknowledged is out of the outbox, what was pulled is applied with its cursor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The URL is not `https`, or `http` to a host that is not loopback.
    #[error("insecure or invalid server URL {url}: {reason}")]
    InsecureUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The device has not registered with this vault yet.
    #[error("this device is not registered")]
    NotRegistered,
    /// The server refused the token.
    #[error("the server refused this device's token")]
    Unauthorized,
    /// The server could not be reached or kept failing; try later.
    #[error("server unavailable after {attempts} attempts: {last}")]
    Unavailable {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// The server refused the request for good (4xx).
    #[error("refused by the server ({status} {wire_code}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Why: the code of the error body ([`ServerErrorCode::Unknown`] for one this version does
        /// not know).
        code: ServerErrorCode,
        /// The code as the server wrote it (empty when the answer had no JSON error body).
        wire_code: String,
        /// The message.
        message: String,
    },
    /// A reduced or free passenger category was asked for without an entitlement in force
    /// (the citizen must have it recorded by the operator; standard fares need none).
    #[error("not entitled: {message}")]
    NotEntitled {
        /// The server's explanation.
        message: String,
    },
    /// The vault is registered for another citizen's account, and holds their data: it is not
    /// registered again for this one (their outbox would be pushed into it, their records shown
    /// to this citizen), nor enrolled as a validator. Sign in as that citizen, or wipe the vault
    /// first. The backend has made the new device or validator by then: it shows in the
    /// account's device list (or the operator's validators) until revoked.
    #[error("this vault belongs to another account: wipe it before registering another citizen")]
    OtherAccount,
    /// The backend serves no app this old: the app must be updated.
    #[error("the backend needs version {minimum} or later of this library")]
    UpgradeRequired {
        /// The oldest version it serves.
        minimum: String,
    },
    /// The server answered with something that does not fit the protocol.
    #[error("protocol violation: {detail}")]
    Protocol {
        /// What was wrong.
        detail: String,
    },
    /// The operation's [`Cancel`] fired or its deadline passed. What had been acknowledged or
    /// applied stays; the rest goes next time.
    #[error("sync cancelled")]
    Cancelled,
    /// The client was closed ([`BackendClient::close`]): it refuses every call from then on.
    #[error("sync client closed")]
    ClientClosed,
    /// The vault failed (or was closed).
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// A store outside the vault (the document library's file) failed.
    #[error("store: {0}")]
    Store(String),
}

/// A backend call that failed and will be tried again after a delay: what an operation's
/// progress observer hears (sync turns it into `SyncEvent::Retrying`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// The attempt that failed (1-based).
    pub attempt: i64,
    /// Delay before the next, ms.
    pub delay_ms: i64,
    /// What failed.
    pub reason: String,
}

/// The device's registration, kept encrypted in the vault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// Device id.
    pub device_id: String,
    /// Account id.
    pub account_id: String,
    /// Bearer token.
    pub token: String,
    /// When the token expires (unix seconds), for a validator's: it is renewed before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_expires_at: Option<u64>,
}

impl Document for Registration {
    const COLLECTION: &'static str = "sync.registration";
    fn id(&self) -> String {
        "device".into()
    }
}

/// The account a vault's data belongs to, kept beside the registration: a backup holds it (and
/// not the token), so a vault restored from one still signs in only its own citizen.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct VaultAccount {
    account_id: String,
}

impl Document for VaultAccount {
    const COLLECTION: &'static str = "sync.registration";
    fn id(&self) -> String {
        "account".into()
    }
}

/// The account `vault`'s data belongs to: its registration's, else the one kept beside it.
fn account_of(vault: &Vault) -> Result<Option<String>, BackendError> {
    let registered = vault
        .get_doc::<Registration>("device")?
        .map(|r| r.account_id);
    let account = match registered.filter(|a| !a.is_empty()) {
        Some(account) => Some(account),
        None => vault
            .get_doc::<VaultAccount>("account")?
            .map(|a| a.account_id),
    };
    Ok(account.filter(|a| !a.is_empty()))
}

/// The sync client. One per server; share it (`Arc`) and call [`BackendClient::sync`] whenever a
/// network appears. [`BackendClient::close`] cancels work in flight.
pub struct BackendClient {
    transport: Arc<dyn HttpTransport>,
    pub(crate) config: BackendConfig,
    cancel: watch::Sender<bool>,
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Checks the URL: `https`, or `http` to loopback.
fn check_url(url: &str) -> Result<(), BackendError> {
    let bad = |reason: &str| BackendError::InsecureUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let parsed = url
        .parse::<::http::Uri>()
        .map_err(|e| bad(&e.to_string()))?;
    let host = parsed.host().ok_or_else(|| bad("no host"))?;
    // The authority must be the host and at most a port after the user info: the parser
    // accepts text after an IPv6 literal (`[::1].example.vn`) that a client may read otherwise.
    let authority = parsed.authority().map(|a| a.as_str()).unwrap_or_default();
    let after_user = authority.rsplit('@').next().unwrap_or_default();
    let port = after_user
        .strip_prefix(host)
        .ok_or_else(|| bad("unreadable host"))?;
    if !(port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())))
    {
        return Err(bad("unreadable host or port"));
    }
    match parsed.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if is_loopback(host) => Ok(()),
        Some("http") => Err(bad("plain HTTP is allowed to loopback only")),
        _ => Err(bad("the scheme must be https")),
    }
}

enum Attempt<T> {
    Done(T),
    Retry {
        reason: String,
        after: Option<Duration>,
    },
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub(crate) fn now_secs() -> u64 {
    (now_ms() / 1000).max(0) as u64
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(value: Option<&str>) -> Option<Duration> {
    let value = value?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = when.timestamp_millis() - now_ms();
    Some(Duration::from_millis(wait.max(0) as u64))
}

/// A `Retry-After` longer than this (and than the configured longest backoff) ends a call.
const DEFER_AFTER: Duration = Duration::from_secs(60);

/// One logical operation's bookkeeping: who hears of its retries, how many there were, the
/// clock offset from its best round trip.
pub(crate) struct Run<'a> {
    on_retry: Option<&'a (dyn Fn(&Retry) + Sync)>,
    /// Failed requests that were retried.
    pub(crate) retries: i64,
    /// Server clock minus device clock, ms, from the fastest exchange.
    pub(crate) clock_offset_ms: Option<i64>,
    best_rtt_ms: Option<i64>,
    /// Sent as `Idempotency-Key` on every attempt of one logical request, so a retried purchase
    /// whose first answer was lost is not made twice.
    pub(crate) idempotency_key: Option<String>,
    /// The backend asked to come back this much later, longer than this client waits.
    pub(crate) deferred: Option<Duration>,
}

impl<'a> Run<'a> {
    pub(crate) fn new(on_retry: Option<&'a (dyn Fn(&Retry) + Sync)>) -> Self {
        Run {
            on_retry,
            retries: 0,
            clock_offset_ms: None,
            best_rtt_ms: None,
            idempotency_key: None,
            deferred: None,
        }
    }

    fn retrying(&mut self, retry: Retry) {
        self.retries += 1;
        if let Some(hear) = self.on_retry {
            hear(&retry);
        }
    }
}

/// Bodies at least this large are parsed on the blocking pool, not on the thread that polls
/// the call: that thread may be the app's main thread (Kotlin's coroutines and Swift's tasks
/// poll the library's futures where they were called), and a sync page of up to 16 MiB takes
/// tens of milliseconds to parse. Smaller ones are not worth the hop.
const PARSE_ON_POOL_BYTES: usize = 64 * 1024;

/// A success body as `T`, parsed off the polling thread when it is large.
async fn parse<T: DeserializeOwned + Send + 'static>(
    bytes: Vec<u8>,
) -> Result<Result<T, serde_json::Error>, BackendError> {
    if bytes.len() < PARSE_ON_POOL_BYTES {
        return Ok(serde_json::from_slice(&bytes));
    }
    blocking(move || Ok(serde_json::from_slice(&bytes))).await
}

/// Runs blocking vault work off the async executor.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, BackendError> + Send + 'static,
) -> Result<T, BackendError> {
    crate::background::run_blocking(work)
        .await
        .map_err(|e| BackendError::Protocol {
            detail: format!("background work failed: {e:?}"),
        })?
}

impl BackendClient {
    /// A client for `config.base_url` on the built-in HTTPS client (feature `rust-http`).
    /// Refuses insecure URLs.
    #[cfg(feature = "rust-http")]
    pub fn new(config: BackendConfig) -> Result<BackendClient, BackendError> {
        check_url(&config.base_url)?;
        let tls = tls_config(&config.pinned_spki_sha256, &config.extra_roots_der).map_err(|e| {
            BackendError::InsecureUrl {
                url: config.base_url.clone(),
                reason: e,
            }
        })?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| BackendError::InsecureUrl {
                url: config.base_url.clone(),
                reason: e.to_string(),
            })?;
        Self::with_transport(config, Arc::new(http::Reqwest { client: http }))
    }

    /// A client for `config.base_url` over `transport` (the platform's HTTP stack, say). Refuses
    /// insecure URLs. The configuration's pins and extra roots are then the transport's business:
    /// this client does not see the connection.
    pub fn with_transport(
        config: BackendConfig,
        transport: Arc<dyn HttpTransport>,
    ) -> Result<BackendClient, BackendError> {
        check_url(&config.base_url)?;
        let (cancel, _) = watch::channel(false);
        Ok(BackendClient {
            transport,
            config,
            cancel,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &BackendConfig {
        &self.config
    }

    /// Cancels work in flight and refuses later calls with [`BackendError::ClientClosed`].
    pub fn close(&self) {
        self.cancel.send_replace(true);
    }

    /// Whether [`BackendClient::close`] was called.
    pub fn is_closed(&self) -> bool {
        *self.cancel.borrow()
    }

    pub(crate) fn check_open(&self) -> Result<(), BackendError> {
        if self.is_closed() {
            Err(BackendError::ClientClosed)
        } else {
            Ok(())
        }
    }

    async fn cancelled(&self) {
        let mut rx = self.cancel.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .config
            .backoff_base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let cap = exp.min(self.config.backoff_max);
        let mut r = [0u8; 4];
        let _ = crypto::fill_random(&mut r);
        // Full jitter: uniform in [cap/2, cap] keeps some spacing and spreads devices out.
        let frac = 0.5 + (u32::from_le_bytes(r) as f64 / u32::MAX as f64) / 2.0;
        cap.mul_f64(frac)
    }

    async fn attempt<T: DeserializeOwned + Send + 'static>(
        &self,
        method: &Method,
        url: &str,
        token: Option<&str>,
        (body, attempt): (Option<&[u8]>, u32),
        run: &mut Run<'_>,
    ) -> Result<Attempt<T>, BackendError> {
        let mut headers = Vec::with_capacity(5);
        headers.push((
            protocol::CLIENT_VERSION_HEADER.to_owned(),
            protocol::CLIENT_VERSION.to_owned(),
        ));
        headers.push((
            protocol::CREDENTIAL_FORMATS_HEADER.to_owned(),
            protocol::CREDENTIAL_FORMATS.to_owned(),
        ));
        if let Some(t) = token {
            headers.push((AUTHORIZATION.as_str().to_owned(), format!("Bearer {t}")));
        }
        if let Some(k) = &run.idempotency_key {
            headers.push((IDEMPOTENCY_KEY_HEADER.to_owned(), k.clone()));
        }
        if body.is_some() {
            headers.push((
                CONTENT_TYPE.as_str().to_owned(),
                "application/json".to_owned(),
            ));
        }
        let request = HttpRequest {
            method: method.as_str().to_owned(),
            url: url.to_owned(),
            headers,
            body: body.map(<[u8]>::to_vec),
            timeout: http::attempt_timeout(
                self.config.request_timeout,
                body.map_or(0, <[u8]>::len),
                attempt,
            ),
        };
        let sent = Instant::now();
        let sent_wall = now_ms();
        let limit = self.config.max_response_bytes;
        let response = match self.transport.send(request, limit).await {
            Ok(r) if r.body.len() <= limit => r,
            Ok(_) | Err(HttpFailure::TooLarge) => {
                return Err(BackendError::Protocol {
                    detail: format!("response larger than {limit} bytes"),
                })
            }
            Err(HttpFailure::Failed(reason)) => {
                return Ok(Attempt::Retry {
                    reason: format!("request failed: {reason}"),
                    after: None,
                })
            }
        };
        let status = StatusCode::from_u16(response.status).map_err(|_| BackendError::Protocol {
            detail: format!("HTTP status {} is not a status", response.status),
        })?;
        let server_time = response.header(SERVER_TIME_HEADER).map(str::to_owned);
        if response.status == 426 {
            return Err(BackendError::UpgradeRequired {
                minimum: response
                    .header(protocol::MIN_CLIENT_VERSION_HEADER)
                    .unwrap_or_default()
                    .to_owned(),
            });
        }
        let after = retry_after(response.header(RETRY_AFTER.as_str()));
        let bytes = response.body;
        let rtt = sent.elapsed().as_millis() as i64;
        if let Some(server_ms) = server_time.and_then(|v| v.parse::<i64>().ok()) {
            if run.best_rtt_ms.is_none_or(|best| rtt < best) {
                run.best_rtt_ms = Some(rtt);
                // Saturating: a hostile time header cannot overflow (a panic in debug builds).
                run.clock_offset_ms =
                    Some(server_ms.saturating_sub(sent_wall.saturating_add(rtt / 2)));
            }
        }
        if status.is_success() {
            return Ok(match parse::<T>(bytes).await? {
                Ok(v) => Attempt::Done(v),
                Err(e) => Attempt::Retry {
                    reason: format!("unreadable response: {e}"),
                    after: None,
                },
            });
        }
        let transient = status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT;
        if transient {
            return Ok(Attempt::Retry {
                reason: format!("HTTP {}", status.as_u16()),
                after,
            });
        }
        if status == StatusCode::UNAUTHORIZED {
            return Err(BackendError::Unauthorized);
        }
        let body: ErrorBody = serde_json::from_slice(&bytes).unwrap_or_default();
        let code = ServerErrorCode::from_wire(&body.error);
        if code == ServerErrorCode::NotEntitled {
            return Err(BackendError::NotEntitled {
                message: body.message,
            });
        }
        Err(BackendError::Refused {
            status: status.as_u16(),
            code,
            wire_code: body.error,
            message: body.message,
        })
    }

    /// One request with retries.
    pub(crate) async fn call<T: DeserializeOwned + Send + 'static>(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
        run: &mut Run<'_>,
    ) -> Result<T, BackendError> {
        let url = format!("{}{}", self.config.base_url, path);
        let max = self.config.max_attempts.max(1);
        for attempt in 1..=max {
            self.check_open()?;
            let outcome = tokio::select! {
                r = self.attempt::<T>(&method, &url, token, (body.as_deref(), attempt), run) => r?,
                _ = self.cancelled() => return Err(BackendError::ClientClosed),
            };
            let (reason, after) = match outcome {
                Attempt::Done(v) => return Ok(v),
                Attempt::Retry { reason, after } => (reason, after),
            };
            // Told to come back later than this client ever waits between tries (and than a
            // minute: a storage hiccup's few seconds are waited out): not tried sooner. Also
            // on the last attempt, so the time asked is kept.
            if let Some(d) = after.filter(|d| *d > self.config.backoff_max.max(DEFER_AFTER)) {
                run.deferred = Some(d);
                return Err(BackendError::Unavailable {
                    attempts: attempt,
                    last: reason,
                });
            }
            if attempt == max {
                return Err(BackendError::Unavailable {
                    attempts: attempt,
                    last: reason,
                });
            }
            let delay = after
                .map(|d| d.min(self.config.backoff_max))
                .unwrap_or_else(|| self.backoff(attempt));
            // The reason is not logged: transport errors name the URL (cursors, device ids) and
            // parse errors may quote the response.
            log::warn!(attempt = attempt, delay_ms = delay.as_millis() as u64; "backend call failed, retrying");
            run.retrying(Retry {
                attempt: i64::from(attempt),
                delay_ms: delay.as_millis() as i64,
                reason,
            });
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.cancelled() => return Err(BackendError::ClientClosed),
            }
        }
        Err(BackendError::Unavailable {
            attempts: max,
            last: "no attempt made".into(),
        })
    }

    /// A single-use nonce for the identity provider's sign-in: the app passes it to the
    /// provider's authorization request and registers (or revokes a device) with the ID token
    /// that carries it.
    pub async fn registration_nonce(&self) -> Result<NonceResponse, BackendError> {
        self.post_without_token("identity/nonce", &serde_json::json!({}))
            .await
    }

    /// A POST before the device holds a token (nonce, registration, enrolment).
    async fn post_without_token<T: DeserializeOwned + Send + 'static>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, BackendError> {
        let body = serde_json::to_vec(body).map_err(|e| BackendError::Protocol {
            detail: e.to_string(),
        })?;
        self.call(
            Method::POST,
            &format!("{API_PREFIX}/{path}"),
            None,
            Some(body),
            &mut Run::new(None),
        )
        .await
    }

    /// The citizen's active devices, as the backend knows them.
    pub async fn devices(&self, vault: Arc<Vault>) -> Result<Vec<DeviceInfo>, BackendError> {
        self.request(vault, Method::GET, &format!("{API_PREFIX}/devices"), None)
            .await
    }

    /// Revokes one of the citizen's devices (a lost or stolen phone): its token stops working at
    /// once, its transit keys are denied, and the account's other devices are told. It takes a
    /// fresh sign-in of the account's citizen (`id_token`, carrying a nonce from
    /// [`BackendClient::registration_nonce`]): a thief holding an unlocked phone has its
    /// session, not the citizen's identity.
    pub async fn revoke_device(
        &self,
        vault: Arc<Vault>,
        device_id: &str,
        id_token: &str,
    ) -> Result<(), BackendError> {
        if device_id.is_empty()
            || device_id.len() > 64
            || !device_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(BackendError::Refused {
                status: 404,
                code: ServerErrorCode::NotFound,
                wire_code: ServerErrorCode::NotFound.as_str().into(),
                message: "no such device on this account".into(),
            });
        }
        let _: serde_json::Value = self
            .request(
                vault,
                Method::POST,
                &format!("{API_PREFIX}/devices/{device_id}/revoke"),
                Some(
                    serde_json::to_vec(&serde_json::json!({ "id_token": id_token })).map_err(
                        |e| BackendError::Protocol {
                            detail: e.to_string(),
                        },
                    )?,
                ),
            )
            .await?;
        Ok(())
    }

    /// Registers this device for a citizen and keeps the token, encrypted, in `vault`.
    pub async fn register(
        &self,
        vault: Arc<Vault>,
        request: &RegisterRequest,
    ) -> Result<Registration, BackendError> {
        // The account the vault's data belongs to goes with the request, so that the backend
        // refuses another citizen's sign-in before it makes a device on their account.
        let v = vault.clone();
        let mut request = request.clone();
        request.account_id = blocking(move || account_of(&v)).await?;
        let r: RegisterResponse = match self.post_without_token("devices", &request).await {
            Err(BackendError::Refused {
                code: ServerErrorCode::IdentityMismatch,
                ..
            }) if request.account_id.is_some() => return Err(BackendError::OtherAccount),
            other => other?,
        };
        let registration = Registration {
            device_id: r.device_id,
            account_id: r.account_id,
            token: r.token,
            token_expires_at: None,
        };
        let stored = registration.clone();
        blocking(move || {
            // One vault, one citizen: the same account signs in again at will (a new token);
            // another is refused, so one citizen's outbox and records never reach another's
            // account. (A validator's registration names no account.)
            if account_of(&vault)?.is_some_and(|held| held != stored.account_id) {
                return Err(BackendError::OtherAccount);
            }
            let account = VaultAccount {
                account_id: stored.account_id.clone(),
            };
            Ok(vault.transaction(|tx| {
                tx.put_doc(&stored)?;
                tx.put_doc(&account)
            })?)
        })
        .await?;
        Ok(registration)
    }

    /// The whole sign-in an app runs: a nonce from the backend, an ID token carrying it from
    /// the identity provider (`id_token_for(nonce)`: the app's sign-in screen), then the
    /// registration of this device as a phone.
    pub async fn sign_in_and_register(
        &self,
        vault: Arc<Vault>,
        device_name: &str,
        id_token_for: impl FnOnce(&str) -> Result<String, String>,
    ) -> Result<Registration, BackendError> {
        let nonce = self.registration_nonce().await?.nonce;
        let id_token = id_token_for(&nonce).map_err(|detail| BackendError::Protocol { detail })?;
        let request = RegisterRequest {
            id_token,
            device_name: device_name.to_owned(),
            role: "phone".into(),
            account_id: None,
        };
        self.register(vault, &request).await
    }

    /// Enrols this vault's validator with an operator-issued, single-use enrolment code, and
    /// keeps its token, encrypted, in `vault` (feed and tap uploads then use it).
    pub async fn enrol_validator(
        &self,
        vault: Arc<Vault>,
        request: &ValidatorEnrolmentRequest,
    ) -> Result<ValidatorEnrolmentResponse, BackendError> {
        // Checked before the single-use code is spent, and again when the answer is kept.
        let v = vault.clone();
        if blocking(move || account_of(&v)).await?.is_some() {
            return Err(BackendError::OtherAccount);
        }
        let r: ValidatorEnrolmentResponse = self.post_without_token("validators", request).await?;
        let registration = Registration {
            device_id: r.validator_id.clone(),
            account_id: String::new(),
            token: r.token.clone(),
            token_expires_at: r.token_expires_at,
        };
        blocking(move || {
            // A citizen's vault is not made a validator's: the citizen's registration would be
            // gone, and with it the one-citizen check of `register`.
            if account_of(&vault)?.is_some() {
                return Err(BackendError::OtherAccount);
            }
            Ok(vault.put_doc(&registration)?)
        })
        .await?;
        Ok(r)
    }

    /// The registration stored in `vault`, if any.
    pub fn registration(vault: &Vault) -> Result<Option<Registration>, BackendError> {
        Ok(vault.get_doc::<Registration>("device")?)
    }

    /// The registration a sync runs under: refused ([`BackendError::OtherAccount`]) when the
    /// vault's data belongs to another account (another citizen's backup restored onto it), so
    /// their waiting changes never reach this account. A vault registered before the account
    /// was kept beside the registration gets it kept now, so its backups carry it.
    pub(crate) fn sync_registration(vault: &Vault) -> Result<Option<Registration>, BackendError> {
        // One transaction: a backup restored meanwhile cannot slip its account in between.
        let checked = vault.transaction(|tx| -> Result<_, VaultError> {
            let reg = tx.get_doc::<Registration>("device")?;
            let Some(account) = reg.as_ref().map(|r| r.account_id.clone()) else {
                return Ok(Ok(reg));
            };
            if account.is_empty() {
                return Ok(Ok(reg));
            }
            match tx.get_doc::<VaultAccount>("account")? {
                Some(kept) if kept.account_id != account => Ok(Err(BackendError::OtherAccount)),
                Some(_) => Ok(Ok(reg)),
                None => {
                    tx.put_doc(&VaultAccount {
                        account_id: account,
                    })?;
                    Ok(Ok(reg))
                }
            }
        })?;
        checked
    }

    /// A GET or POST with the device's token (transit and other calls outside push/pull).
    pub async fn request<T: DeserializeOwned + Send + 'static>(
        &self,
        vault: Arc<Vault>,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, BackendError> {
        let reg = blocking(move || Self::registration(&vault))
            .await?
            .ok_or(BackendError::NotRegistered)?;
        let mut run = Run::new(None);
        if method == Method::POST {
            run.idempotency_key =
                Some(crate::hex::random(16).map_err(|_| BackendError::Protocol {
                    detail: "no randomness".into(),
                })?);
        }
        self.call(method, path, Some(&reg.token), body, &mut run)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http() {
        for ok in [
            "https://api.example.vn",
            "http://127.0.0.1:8080",
            "http://localhost:1",
            "http://[::1]:9",
            "http://LOCALHOST:8080",
            "HTTPS://api.example.vn/v1",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://api.example.vn",
            "http://10.0.0.1",
            "http://localhost.example.vn",
            "http://127.0.0.1@example.vn",
            "http://[::1].example.vn",
            "http://[::1]x:80",
            "http://127.0.0.1:80x",
            "https://",
            "ftp://127.0.0.1",
            "not a url",
            "",
        ] {
            assert!(
                matches!(check_url(bad), Err(BackendError::InsecureUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(retry_after(Some("7")), Some(Duration::from_secs(7)));
        assert_eq!(
            retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            Some(Duration::ZERO),
            "a past date: now"
        );
        assert_eq!(retry_after(Some("soon")), None);
        assert_eq!(retry_after(None), None);
    }

    #[cfg(feature = "rust-http")]
    #[test]
    fn backoff_grows_with_jitter_and_stays_under_the_cap() {
        let mut config = BackendConfig::new("http://127.0.0.1:1");
        config.backoff_base = Duration::from_millis(100);
        config.backoff_max = Duration::from_secs(2);
        let client = BackendClient::new(config).unwrap_or_else(|_| unreachable!());
        for attempt in 1..=10 {
            let d = client.backoff(attempt);
            let cap = Duration::from_millis(100 * (1 << (attempt - 1))).min(Duration::from_secs(2));
            assert!(d >= cap / 2 && d <= cap, "attempt {attempt}: {d:?}");
        }
    }

    /// Answers every request with `body`.
    struct Answering(Vec<u8>);

    impl HttpTransport for Answering {
        fn send(&self, _: HttpRequest, _: usize) -> http::HttpFuture<'_> {
            let body = self.0.clone();
            Box::pin(async move {
                Ok(HttpResponse {
                    status: 200,
                    headers: Vec::new(),
                    body,
                })
            })
        }
    }

    /// A JSON string whose parse records the thread it ran on.
    struct ParsedOn(std::thread::ThreadId, usize);

    impl<'de> Deserialize<'de> for ParsedOn {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let text = String::deserialize(d)?;
            Ok(ParsedOn(std::thread::current().id(), text.len()))
        }
    }

    #[test]
    fn large_bodies_are_parsed_off_the_calling_thread() {
        let caller = std::thread::current().id();
        let parsed_on = |len: usize| {
            let body = serde_json::to_vec(&"x".repeat(len)).unwrap();
            let client = BackendClient::with_transport(
                BackendConfig::new("http://127.0.0.1:1"),
                Arc::new(Answering(body)),
            )
            .unwrap();
            // A current-thread runtime polls on this thread, as a foreign executor would.
            let parsed: ParsedOn = runtime()
                .block_on(client.call(Method::GET, "/", None, None, &mut Run::new(None)))
                .unwrap();
            assert_eq!(parsed.1, len);
            parsed.0
        };
        assert_eq!(parsed_on(100), caller, "a small body is not worth the hop");
        assert_ne!(parsed_on(PARSE_ON_POOL_BYTES), caller);
        assert_ne!(parsed_on(4 << 20), caller);
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }
}
