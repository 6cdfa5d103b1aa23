//! What every request meets before any handler reads it: its rate is limited (per address for
//! anonymous routes, per credential for the rest, tighter for orders), its credential is
//! checked before its body is read (an anonymous client costs the server a header's worth of
//! work), its body is refused past its route's limit before it is parsed, and every refusal,
//! the framework's own included (a malformed path, an unsupported media type), is the JSON
//! error shape.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use thudo_core::sync::protocol::{ErrorBody, ServerErrorCode};

use std::sync::Arc;

use crate::http::{bearer, blocking, ApiError};
use crate::operators::Operators;
use crate::storage::sha256;
use crate::transit::store::TransitStore;

/// What the gate checks credentials against.
#[derive(Clone)]
pub struct GateState {
    /// Devices' and validators' tokens.
    pub tokens: Arc<dyn TransitStore>,
    /// Operators' credentials.
    pub operators: Operators,
    /// The rate limits (per instance).
    pub limits: Arc<RateLimits>,
    /// The oldest library version devices may call with (`None`: any).
    pub min_client_version: Option<ClientVersion>,
}

/// A library version, `MAJOR.MINOR.PATCH` (a pre-release or build suffix is ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ClientVersion(pub u64, pub u64, pub u64);

impl ClientVersion {
    /// Parses `1.2.3` (or `1.2.3-beta`); `None` for anything else.
    pub fn parse(text: &str) -> Option<ClientVersion> {
        let core = text.trim().split(['-', '+']).next()?;
        let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
        let v = ClientVersion(parts.next()??, parts.next()??, parts.next()??);
        parts.next().is_none().then_some(v)
    }
}

impl std::fmt::Display for ClientVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// A device's request from a library older than `minimum` (or naming none: an app from before
/// versions were sent): 426 `upgrade_required`, the minimum in a header.
fn too_old(minimum: ClientVersion, headers: &axum::http::HeaderMap) -> Option<Response> {
    let sent = headers
        .get(thudo_core::sync::protocol::CLIENT_VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(ClientVersion::parse);
    if sent.is_some_and(|v| v >= minimum) {
        return None;
    }
    let mut response = ApiError::new(
        StatusCode::UPGRADE_REQUIRED,
        ServerErrorCode::UpgradeRequired,
        format!("this backend serves version {minimum} of the library or later: update the app"),
    )
    .into_response();
    if let Ok(value) = axum::http::HeaderValue::from_str(&minimum.to_string()) {
        response
            .headers_mut()
            .insert(thudo_core::sync::protocol::MIN_CLIENT_VERSION_HEADER, value);
    }
    Some(response)
}

type Keyed<K> = governor::DefaultKeyedRateLimiter<K>;

/// Requests each caller may make, per instance: a burst, then a steady rate. Behind a balancer
/// with `n` instances a caller gets up to `n` times these.
pub struct RateLimits {
    /// Anonymous routes (nonce, registration, enrolment), per address.
    per_address: Option<Keyed<std::net::IpAddr>>,
    /// Device and validator routes, per token; operator routes, per operator.
    per_token: Option<Keyed<[u8; 32]>>,
    /// Orders and top-ups, per token.
    orders: Option<Keyed<[u8; 32]>>,
    /// Tokens nobody holds, per address: their own allowance, so a shared address's
    /// registrations and its made-up tokens never spend each other's.
    unknown_tokens: Option<Keyed<std::net::IpAddr>>,
    /// Addresses that sent too many tokens nobody holds, until when: a token not seen held
    /// lately is refused from there before a lookup.
    blocked: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, std::time::Instant>>,
    /// Bodies over [`BIG_BODY`] read and handled at once (each may take a few hundred MB as
    /// parsed JSON): more wait their turn, so a caller sending many cannot exhaust memory.
    big_bodies: Arc<tokio::sync::Semaphore>,
    /// How long a big body waits for its turn before 429.
    big_body_wait: std::time::Duration,
    /// How long a big body, its turn taken, may take to arrive: this time, plus its length
    /// at the pace below.
    big_body_grace: std::time::Duration,
    /// The least pace (bytes a second) a big body arrives at, its turn taken.
    big_body_pace: u64,
    /// The callers holding a big-body turn (one each at a time).
    big_callers: Arc<std::sync::Mutex<std::collections::HashSet<[u8; 32]>>>,
    /// Tokens found held lately (by their hash), and when: still served from a blocked
    /// address, so one caller's made-up tokens behind a carrier's shared address (CGNAT) never
    /// shut out the phones and validators beside it.
    held_lately: std::sync::Mutex<std::collections::HashMap<[u8; 32], std::time::Instant>>,
    /// The balancers in front: a connection from one of them is counted against the client
    /// its `X-Forwarded-For` names, not against the balancer.
    trusted_proxies: Vec<std::net::IpAddr>,
}

/// One limit: `per_second` steadily, bursts of `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests a second, steadily.
    pub per_second: u32,
    /// Requests at once.
    pub burst: u32,
}

impl Rate {
    fn limiter<K: std::hash::Hash + Eq + Clone>(self) -> Option<Keyed<K>> {
        let per_second = std::num::NonZeroU32::new(self.per_second)?;
        let burst = std::num::NonZeroU32::new(self.burst.max(1))?;
        Some(governor::RateLimiter::keyed(
            governor::Quota::per_second(per_second).allow_burst(burst),
        ))
    }
}

/// Anonymous requests per address: a phone registers with two (a nonce, then registration).
pub const ANONYMOUS_RATE: Rate = Rate {
    per_second: 5,
    burst: 20,
};
/// Requests per device or validator token, and per operator (person, role and organisation):
/// a sync is a few dozen pages, a validator uploads every few seconds, a console pages through
/// a day's ledger.
pub const HOLDER_RATE: Rate = Rate {
    per_second: 20,
    burst: 200,
};
/// Orders and top-ups per token (and at most 20 orders an hour per account, in storage).
pub const ORDER_RATE: Rate = Rate {
    per_second: 1,
    burst: 10,
};

impl Default for RateLimits {
    /// [`ANONYMOUS_RATE`], [`HOLDER_RATE`], [`ORDER_RATE`].
    fn default() -> Self {
        RateLimits::new(ANONYMOUS_RATE, HOLDER_RATE, ORDER_RATE)
    }
}

impl RateLimits {
    /// These limits (a rate of 0 per second: none).
    pub fn new(anonymous: Rate, holder: Rate, orders: Rate) -> RateLimits {
        RateLimits {
            per_address: anonymous.limiter(),
            unknown_tokens: anonymous.limiter(),
            per_token: holder.limiter(),
            orders: orders.limiter(),
            blocked: Default::default(),
            held_lately: Default::default(),
            big_bodies: Arc::new(tokio::sync::Semaphore::new(BIG_BODIES_AT_ONCE)),
            big_body_wait: BIG_BODY_WAIT,
            big_body_grace: BIG_BODY_GRACE,
            big_body_pace: BIG_BODY_PACE,
            big_callers: Default::default(),
            trusted_proxies: Vec::new(),
        }
    }

    /// These limits, behind the balancers at `proxies`: a request they pass on is counted
    /// against the client address they add to `X-Forwarded-For`. Nobody else's header is
    /// believed (a client cannot escape its limit by writing one).
    pub fn behind(mut self, proxies: Vec<std::net::IpAddr>) -> RateLimits {
        self.trusted_proxies = proxies.into_iter().map(|p| p.to_canonical()).collect();
        self
    }

    /// The address a request is counted against: the peer, or, from a trusted balancer, the
    /// nearest address in `X-Forwarded-For` that is not one of the balancers.
    fn client_address(
        &self,
        peer: Option<std::net::IpAddr>,
        headers: &axum::http::HeaderMap,
    ) -> Option<std::net::IpAddr> {
        // An IPv4 client of a dual-stack listener arrives as `::ffff:a.b.c.d`: compared and
        // reported as the IPv4 address it is.
        let peer = peer?.to_canonical();
        if !self.trusted_proxies.contains(&peer) {
            return Some(peer);
        }
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        // Read from the right: the balancer appended the address it saw; anything to its left
        // was written by the client and proves nothing.
        forwarded
            .iter()
            .rev()
            .map(|a| a.parse::<std::net::IpAddr>())
            .take_while(Result::is_ok)
            .filter_map(Result::ok)
            .map(|a| a.to_canonical())
            .find(|a| !self.trusted_proxies.contains(a))
            .or(Some(peer))
    }

    /// These limits, with `at_once` big bodies handled at once (see [`BIG_BODY`]), each
    /// waiting at most `wait` for its turn.
    pub fn big_bodies(mut self, at_once: usize, wait: std::time::Duration) -> RateLimits {
        self.big_bodies = Arc::new(tokio::sync::Semaphore::new(at_once));
        self.big_body_wait = wait;
        self
    }

    /// These limits, with a big body given `grace` plus its length at `bytes_per_sec` to
    /// arrive once its turn is taken (see [`BIG_BODY_GRACE`], [`BIG_BODY_PACE`]).
    pub fn big_body_pace(mut self, grace: std::time::Duration, bytes_per_sec: u64) -> RateLimits {
        self.big_body_grace = grace;
        self.big_body_pace = bytes_per_sec.max(1);
        self
    }

    /// How long a big body of `bytes` may take to arrive, its turn taken.
    fn big_body_read_time(&self, bytes: u64) -> std::time::Duration {
        self.big_body_grace
            + std::time::Duration::from_millis(bytes.saturating_mul(1_000) / self.big_body_pace)
    }

    /// No limits (tests and demos that drive a whole city from one address).
    pub fn off() -> RateLimits {
        let none = Rate {
            per_second: 0,
            burst: 0,
        };
        RateLimits::new(none, none, none)
    }
}

/// Checks `key` against `limiter`; the seconds to wait when over it.
fn over<K: std::hash::Hash + Eq + Clone>(limiter: &Option<Keyed<K>>, key: &K) -> Option<u64> {
    use governor::clock::{Clock, DefaultClock};
    let limiter = limiter.as_ref()?;
    // Forget callers long quiet, so a flood of addresses cannot grow the table for ever.
    if limiter.len() > 100_000 {
        limiter.retain_recent();
    }
    let not_until = limiter.check_key(key).err()?;
    let wait = not_until.wait_time_from(DefaultClock::default().now());
    Some(wait.as_secs() + 1)
}

impl RateLimits {
    /// Seconds a request with token `hash` from `address` must wait before its lookup: while
    /// the address is blocked, unless the token was found held within [`HELD_LATELY`].
    fn token_blocked_for(&self, address: Option<std::net::IpAddr>, hash: &[u8; 32]) -> Option<u64> {
        let wait = self.blocked_for(address)?;
        let held = self.held_lately.lock().unwrap_or_else(|e| e.into_inner());
        let lately = held
            .get(hash)
            .is_some_and(|seen| seen.elapsed() < HELD_LATELY);
        (!lately).then_some(wait)
    }

    /// Remembers that token `hash` is held. The table is bounded: full, it drops the tokens
    /// not seen within [`HELD_LATELY`], then, if that frees too little, the oldest seen until
    /// half of it is free, so it is swept at most once per many new tokens.
    fn held(&self, hash: [u8; 32]) {
        const MOST: usize = 200_000;
        let mut held = self.held_lately.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        if !held.contains_key(&hash) && held.len() >= MOST {
            held.retain(|_, seen| now.duration_since(*seen) < HELD_LATELY);
            if held.len() > MOST / 2 {
                let mut seen: Vec<std::time::Instant> = held.values().copied().collect();
                let cut = held.len() - MOST / 2;
                let (_, oldest_kept, _) = seen.select_nth_unstable(cut);
                let oldest_kept = *oldest_kept;
                held.retain(|_, at| *at >= oldest_kept);
            }
        }
        held.insert(hash, now);
    }

    /// Seconds `address` must still wait after sending too many unknown tokens.
    fn blocked_for(&self, address: Option<std::net::IpAddr>) -> Option<u64> {
        let address = address?;
        let blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        let until = blocked.get(&address)?;
        let left = until.checked_duration_since(std::time::Instant::now())?;
        Some(left.as_secs() + 1)
    }

    /// Counts a token nobody holds against `address`; the seconds to wait when over.
    fn unknown_token_from(&self, address: Option<std::net::IpAddr>) -> Option<u64> {
        let address = address?;
        let wait = over(&self.unknown_tokens, &address)?;
        let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        if blocked.len() > 100_000 {
            blocked.retain(|_, until| *until > now);
        }
        blocked.insert(address, now + std::time::Duration::from_secs(wait));
        Some(wait)
    }
}

/// A caller's claim on the big-body turns, given back when dropped.
struct BigTurn {
    callers: Arc<std::sync::Mutex<std::collections::HashSet<[u8; 32]>>>,
    caller: Option<[u8; 32]>,
}

impl BigTurn {
    /// The claim of `caller` (none for a caller not counted apart); `None` while it holds one.
    fn claim(limits: &RateLimits, caller: Option<[u8; 32]>) -> Option<BigTurn> {
        if let Some(key) = caller {
            let mut callers = limits.big_callers.lock().unwrap_or_else(|e| e.into_inner());
            if !callers.insert(key) {
                return None;
            }
        }
        Some(BigTurn {
            callers: limits.big_callers.clone(),
            caller,
        })
    }
}

impl Drop for BigTurn {
    fn drop(&mut self) {
        if let Some(key) = self.caller {
            self.callers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
        }
    }
}

/// How long a token found held passes an address blocked for others' made-up tokens.
const HELD_LATELY: std::time::Duration = std::time::Duration::from_secs(12 * 3_600);

/// What an address is counted as: an IPv4 address, or an IPv6 address's /64 (one subscriber's
/// network: counting each of its 2^64 addresses apart would give one caller no limit).
fn network_of(address: std::net::IpAddr) -> std::net::IpAddr {
    match address {
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => std::net::IpAddr::V4(v4),
            None => std::net::IpAddr::V6(std::net::Ipv6Addr::from(
                u128::from(v6) & !u128::from(u64::MAX),
            )),
        },
        v4 => v4,
    }
}

fn rate_limited(secs: u64) -> Response {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        ServerErrorCode::RateLimited,
        "too many requests: slow down",
    )
    .retry_after(secs)
    .into_response()
}

/// Whose credential a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    /// Anyone (its body is what proves something: an ID token, an enrolment code, a provider's
    /// signature), with a small body.
    Anyone,
    /// An operator.
    Operator,
    /// A registered device or an enrolled validator (the handler tells which it takes).
    Holder,
}

fn caller(method: &Method, path: &str) -> Caller {
    match (method, path) {
        (_, "/healthz" | "/openapi.json") => Caller::Anyone,
        (&Method::POST, "/v1/identity/nonce" | "/v1/devices" | "/v1/validators") => Caller::Anyone,
        (_, p) if p.starts_with("/v1/payments/") || p.starts_with("/test/") => Caller::Anyone,
        (_, p) if p.starts_with("/v1/admin/") => Caller::Operator,
        (_, p)
            if p.starts_with("/v1/sync/")
                || p.starts_with("/v1/devices")
                || p.starts_with("/v1/transit/")
                || p.starts_with("/v1/health/")
                || p.starts_with("/v1/handbook/")
                || p.starts_with("/v1/files/") =>
        {
            Caller::Holder
        }
        // No such route: its 404 costs nothing.
        _ => Caller::Anyone,
    }
}

/// Whether a request comes from the library on a device or validator (its version is
/// checked).
fn from_device(caller: Caller, path: &str) -> bool {
    caller == Caller::Holder
        || matches!(
            path,
            "/v1/identity/nonce" | "/v1/devices" | "/v1/validators"
        )
}

/// Anonymous routes without a rate limit: the health check, this document, and the payment
/// provider's notifications (from a few addresses at the city's pace of sales; their
/// signature, checked first, is a hash).
fn unlimited(path: &str) -> bool {
    path == "/healthz" || path == "/openapi.json" || path.starts_with("/v1/payments/")
}

/// A body past which a request waits for one of [`BIG_BODIES_AT_ONCE`] turns to be read,
/// parsed and handled: a sync push of a few records, a validator's day of taps, fit under it.
pub const BIG_BODY: usize = 1 << 20;
/// Requests with a body over [`BIG_BODY`] an instance reads and handles at once.
pub const BIG_BODIES_AT_ONCE: usize = 4;
/// A big body, its turn taken, has this long plus its length at [`BIG_BODY_PACE`] to arrive
/// (16 MiB: about 130 s; 2 MiB: 25 s). Scaled to the length, so a slow sender of a small big
/// body holds a turn no longer than its bytes need.
pub const BIG_BODY_GRACE: std::time::Duration = std::time::Duration::from_secs(10);
/// The least pace of a big body once its turn is taken: 140 KB/s, a poor mobile uplink.
pub const BIG_BODY_PACE: u64 = 140_000;
/// How long a big body waits for its turn before 429 with `Retry-After`.
pub const BIG_BODY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A small body: an order, a registration, a grant.
pub const SMALL_BODY: usize = 64 << 10;
/// The largest body any route takes: a sync push, a validator's upload, a facility's records,
/// the operator's deny list (up to 10,000 phones' keys of 130 hex digits).
pub const LARGE_BODY: usize = 16 << 20;

/// The most a route's body may hold.
fn body_limit(path: &str) -> usize {
    let large = path == "/v1/sync/push"
        || path == "/v1/admin/transit/deny"
        || path == "/v1/transit/taps"
        || path == "/v1/transit/inspections"
        || (path.starts_with("/v1/admin/citizens/") && path.ends_with("/health"))
        || path.starts_with("/v1/admin/cells/")
        || path == "/v1/admin/health/trust-bundle";
    if large {
        LARGE_BODY
    } else {
        SMALL_BODY
    }
}

/// Whether a raw (percent-encoded) path or query names a control character: `%00` to `%1F`,
/// `%7F`, or a C1 control (`%C2%80` to `%C2%9F`). No route takes one, and PostgreSQL cannot
/// store a NUL: refused here, every route and both engines answer alike.
fn names_a_control(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    let escaped = |i: usize| -> Option<u8> {
        match bytes.get(i..i + 3)? {
            [b'%', hi, lo] if hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit() => {
                let digit = |d: u8| (d as char).to_digit(16).map(|v| v as u8);
                Some(digit(*hi)? * 16 + digit(*lo)?)
            }
            _ => None,
        }
    };
    (0..bytes.len()).any(|i| match escaped(i) {
        Some(b) => {
            b < 0x20
                || b == 0x7f
                || (b == 0xc2 && escaped(i + 3).is_some_and(|c| (0x80..=0x9f).contains(&c)))
        }
        None => false,
    })
}

/// Checks the caller's credential, then the path and the body's size, before anything reads
/// the body.
pub async fn admit(State(state): State<GateState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let client = state.limits.client_address(peer, req.headers());
    if let Some(ip) = client {
        req.extensions_mut().insert(crate::http::ClientAddress(ip));
    }
    let address = client.map(network_of);
    let caller = caller(req.method(), &path);
    if let (true, Some(minimum)) = (from_device(caller, &path), state.min_client_version) {
        if let Some(refused) = too_old(minimum, req.headers()) {
            return refused;
        }
    }
    // Who the request is counted as (a token's or an operator's hash), for its big bodies.
    let mut counted_as: Option<[u8; 32]> = None;
    match caller {
        Caller::Anyone if unlimited(&path) => {}
        Caller::Anyone => {
            if let Some(wait) = address.and_then(|a| over(&state.limits.per_address, &a)) {
                return rate_limited(wait);
            }
        }
        Caller::Operator => {
            // As for devices: an address that sent too many tokens nobody holds waits without
            // a check, unless this token verified lately (an operator behind the same office
            // NAT or carrier address as the sender keeps working).
            // Apart from device tokens' hashes: a device token anyone can get must not pass.
            let hash = sha256(
                format!("operator\0{}", bearer(req.headers()).unwrap_or_default()).as_bytes(),
            );
            if let Some(wait) = state.limits.token_blocked_for(address, &hash) {
                return rate_limited(wait);
            }
            match state.operators.verify(req.headers()).await {
                // The route reads the operator (role, organisation) from here.
                Ok(operator) => {
                    state.limits.held(hash);
                    // Counted per person and organisation, not per token: a new token from the
                    // provider does not start a new allowance.
                    let who = sha256(
                        format!(
                            "operator\0{}\0{}\0{}",
                            operator.role.code(),
                            operator.organisation,
                            operator.subject
                        )
                        .as_bytes(),
                    );
                    if let Some(wait) = over(&state.limits.per_token, &who) {
                        return rate_limited(wait);
                    }
                    counted_as = Some(who);
                    req.extensions_mut().insert(operator);
                }
                // A refused token counts against its address, as a made-up device token does.
                Err(e) => {
                    return match state.limits.unknown_token_from(address) {
                        Some(wait) => rate_limited(wait),
                        None => e.into_response(),
                    }
                }
            }
        }
        Caller::Holder => {
            let unauthorized =
                || ApiError::unauthorized("missing or unknown token").into_response();
            let Some(token) = bearer(req.headers()) else {
                return unauthorized();
            };
            let hash = sha256(token.as_bytes());
            // An address that sent too many tokens nobody holds waits, without a lookup,
            // unless this token was found held lately.
            if let Some(wait) = state.limits.token_blocked_for(address, &hash) {
                return rate_limited(wait);
            }
            let storage = state.tokens.clone();
            let known = blocking(move || {
                Ok(storage.device_by_token(&hash)?.is_some()
                    || storage
                        .validator_by_token(&hash, chrono::Utc::now().timestamp())?
                        .is_some())
            })
            .await;
            match known {
                Ok(true) => {
                    state.limits.held(hash);
                    counted_as = Some(hash);
                    // Only tokens someone holds have a rate of their own (made-up ones would
                    // each be new to it).
                    if let Some(wait) = over(&state.limits.per_token, &hash) {
                        return rate_limited(wait);
                    }
                    let ordering = req.method() == Method::POST
                        && (path == "/v1/transit/orders" || path == "/v1/transit/topups");
                    if let Some(wait) = ordering
                        .then(|| over(&state.limits.orders, &hash))
                        .flatten()
                    {
                        return rate_limited(wait);
                    }
                }
                // Made-up tokens count against their address.
                Ok(false) => match state.limits.unknown_token_from(address) {
                    Some(wait) => return rate_limited(wait),
                    None => return unauthorized(),
                },
                Err(e) => return e.into_response(),
            }
        }
    }
    if names_a_control(&path) || req.uri().query().is_some_and(names_a_control) {
        return ApiError::bad("a path or query parameter holds a control character")
            .into_response();
    }
    let limit = body_limit(&path);
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ServerErrorCode::TooLarge,
            format!("this route takes at most {limit} bytes"),
        )
        .into_response()
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    let (parts, body) = req.into_parts();
    // A big body (announced so, or of unknown length on a route that takes big ones) waits
    // its turn before it is read: 16 MiB of JSON can take hundreds of MB parsed, and the raw
    // bytes of many at once would add up too. A turn's read is given a time, so a slow
    // sender holds it no longer.
    let bodiless = matches!(parts.method, Method::GET | Method::HEAD | Method::DELETE);
    let big = limit > BIG_BODY && !bodiless && declared.is_none_or(|n| n > BIG_BODY as u64);
    let _turn = if big {
        // One turn per caller at a time: a caller's own slow uploads cannot hold them all.
        let Some(mine) = BigTurn::claim(&state.limits, counted_as) else {
            return rate_limited(1);
        };
        let turns = state.limits.big_bodies.clone();
        let wait = state.limits.big_body_wait;
        match tokio::time::timeout(wait, turns.acquire_owned()).await {
            Ok(Ok(turn)) => Some((mine, turn)),
            _ => return rate_limited(wait.as_secs().max(1)),
        }
    } else {
        None
    };
    // Read up to the limit (a body sent without a length is cut there too).
    let read = axum::body::to_bytes(body, limit);
    let bytes = if big {
        // The length announced, or the route's limit for a body sent without one.
        let length = declared.unwrap_or(limit as u64).min(limit as u64);
        match tokio::time::timeout(state.limits.big_body_read_time(length), read).await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(_)) => return too_large(),
            Err(_) => {
                return ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    ServerErrorCode::BadBody,
                    "the body took too long to arrive",
                )
                .into_response()
            }
        }
    } else {
        match read.await {
            Ok(bytes) => bytes,
            Err(_) => return too_large(),
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Gives a refusal the framework wrote in plain text (a path that does not parse, a missing
/// content type) the JSON error shape every other refusal has.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
    let text = axum::body::to_bytes(response.into_body(), 4_096)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let error = match status {
        StatusCode::NOT_FOUND => ServerErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ServerErrorCode::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ServerErrorCode::TooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ServerErrorCode::UnsupportedMediaType,
        s if s.is_server_error() => ServerErrorCode::Internal,
        _ => ServerErrorCode::BadRequest,
    };
    let mut json = (
        status,
        axum::Json(ErrorBody {
            error: error.as_str().to_owned(),
            message: text,
        }),
    )
        .into_response();
    if let Some(v) = retry_after {
        json.headers_mut().insert(header::RETRY_AFTER, v);
    }
    json
}

/// Adds to every operation of `doc` what the gate answers before its handler, from the same
/// rules: 401 and 429 for credentials, 403 for an operator's role, 426 for an old app, 413 past
/// the route's body limit (any request may carry a body), 400 for a body or parameter that
/// does not parse, and 503 while the database is unavailable (all with the JSON error shape;
/// 429 and 503 with Retry-After).
pub fn document(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{
        header::Header, schema::Type, ContentBuilder, Ref, RefOr, ResponseBuilder,
    };
    let error = |description: String, retry: bool| {
        let mut response = ResponseBuilder::new().description(description).content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        );
        if retry {
            response = response.header(
                "Retry-After",
                Header::new(utoipa::openapi::ObjectBuilder::new().schema_type(Type::Integer)),
            );
        }
        RefOr::T(response.build())
    };
    for (path, item) in doc.paths.paths.iter_mut() {
        let operations = [
            (Method::GET, &mut item.get),
            (Method::POST, &mut item.post),
            (Method::DELETE, &mut item.delete),
            (Method::PUT, &mut item.put),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation.as_mut() else {
                continue;
            };
            let mut answers: Vec<(u16, String, bool)> = Vec::new();
            let caller = caller(&method, path);
            match caller {
                Caller::Holder | Caller::Operator => {
                    answers.push((401, "No credential, or one nobody issued".into(), false));
                    answers.push((429, "Too many requests: wait for Retry-After".into(), true));
                }
                Caller::Anyone if !unlimited(path) => {
                    answers.push((429, "Too many requests from this address".into(), true));
                }
                Caller::Anyone => {}
            }
            if caller == Caller::Operator {
                answers.push((
                    403,
                    "The operator's role or organisation does not hold this power".into(),
                    false,
                ));
            }
            if from_device(caller, path) {
                answers.push((
                    426,
                    "The app's library is older than the backend serves (x-thudo-min-client-version)"
                        .into(),
                    false,
                ));
            }
            answers.push((
                413,
                format!("The body is over this route's {} bytes", body_limit(path)),
                false,
            ));
            // Any route: a body or parameter out of range, or a control character in the
            // path or query (refused by the gate).
            answers.push((
                400,
                "The body or a parameter is malformed or out of range".into(),
                false,
            ));
            if path != "/openapi.json" {
                answers.push((
                    503,
                    "The database is unavailable: retry after Retry-After".into(),
                    true,
                ));
            }
            for (status, description, retry) in answers {
                operation
                    .responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| error(description, retry));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::names_a_control;

    #[test]
    fn an_ipv6_caller_is_counted_by_its_64_bit_network() {
        use super::network_of;
        let at = |a: &str| network_of(a.parse().unwrap());
        assert_eq!(at("2001:db8:1:2:aaaa::1"), at("2001:db8:1:2:ffff:1:2:3"));
        assert_ne!(at("2001:db8:1:2::1"), at("2001:db8:1:3::1"));
        assert_eq!(at("::ffff:192.0.2.7"), at("192.0.2.7"));
        assert_ne!(at("192.0.2.7"), at("192.0.2.8"));
    }

    /// The client's address: a balancer's header believed only from a balancer, read from
    /// the right, IPv4 clients of a dual-stack listener as their IPv4 address.
    #[test]
    fn the_client_is_the_nearest_address_a_trusted_balancer_saw() {
        let limits = super::RateLimits::off().behind(vec!["::ffff:10.0.0.2".parse().unwrap()]);
        let ip = |a: &str| a.parse::<std::net::IpAddr>().unwrap();
        let from = |peer: &str, forwarded: &str| {
            let mut headers = axum::http::HeaderMap::new();
            headers.insert("x-forwarded-for", forwarded.parse().unwrap());
            limits.client_address(Some(ip(peer)), &headers)
        };
        let forged = "198.51.100.9, 203.0.113.7";
        assert_eq!(from("10.0.0.2", forged), Some(ip("203.0.113.7")));
        assert_eq!(from("::ffff:10.0.0.2", forged), Some(ip("203.0.113.7")));
        assert_eq!(
            from("::ffff:10.0.0.2", "::ffff:203.0.113.8"),
            Some(ip("203.0.113.8"))
        );
        assert_eq!(from("192.0.2.5", forged), Some(ip("192.0.2.5")));
        assert_eq!(from("::ffff:192.0.2.5", forged), Some(ip("192.0.2.5")));
        // A balancer that wrote no address of its own: itself.
        assert_eq!(from("10.0.0.2", "not an address"), Some(ip("10.0.0.2")));
    }

    #[test]
    fn control_characters_are_found_however_they_are_escaped() {
        for raw in [
            "/a/%00",
            "%1f",
            "x%1Fy",
            "%7F",
            "%7f",
            "/c/%C2%85",
            "%c2%9f",
            "a=%0A",
        ] {
            assert!(names_a_control(raw), "{raw}");
        }
        // Not controls: a no-break space, a space, é, a literal "%00" (escaped percent),
        // and escapes that are not two hex digits.
        for raw in [
            "%C2%A0",
            "%20",
            "%C3%A9",
            "%2500",
            "%+1",
            "%2",
            "abc%",
            "%C2",
            "/v1/cells/hn.c1",
        ] {
            assert!(!names_a_control(raw), "{raw}");
        }
    }
}
