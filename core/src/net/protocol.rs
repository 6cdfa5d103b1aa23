//! The backend protocol's messages (docs/protocol/sync.md): identity and registration, push and
//! pull, errors; shared by the device client and the reference backend so both sides read and
//! write the same JSON. Each domain's own calls declare their messages beside them
//! (`crate::transit::backend`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Path prefix of every versioned endpoint.
pub const API_PREFIX: &str = "/v1";
/// Response header carrying the server's clock, unix milliseconds.
pub const SERVER_TIME_HEADER: &str = "x-thudo-server-time";
/// Request header naming one logical POST across its retries (a credential purchase is made
/// once however often its request is delivered).
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// Request header carrying the library's version (`MAJOR.MINOR.PATCH`): the backend may answer
/// 426 `upgrade_required` to versions older than it serves.
pub const CLIENT_VERSION_HEADER: &str = "x-thudo-client-version";
/// Request header: the transit credential format versions the client's phones install
/// ([`CREDENTIAL_FORMATS`]). The backend issues a version-2 credential (a dependant's that
/// rides with its holder) only to a client that names 2; older clients get version 1.
pub const CREDENTIAL_FORMATS_HEADER: &str = "x-thudo-credential-formats";
/// The credential format versions this library's phones install.
pub const CREDENTIAL_FORMATS: &str = "1,2";
/// Response header of a 426: the oldest version the backend serves.
pub const MIN_CLIENT_VERSION_HEADER: &str = "x-thudo-min-client-version";
/// This library's version, as it sends it.
pub const CLIENT_VERSION: &str = env!("CARGO_PKG_VERSION");
/// Largest push batch the server accepts.
pub const MAX_PUSH_BATCH: usize = 500;
/// A push batch stops adding mutations once their payloads reach this many bytes (a batch
/// holds at least one), well inside the server's 16 MiB request limit: a batch of large
/// records must not be refused whole (413) and stop every push after it.
pub const MAX_PUSH_BATCH_BYTES: usize = 4 << 20;
/// Largest pull page the server returns, in changes.
pub const MAX_PULL_PAGE: u32 = 1000;
/// Largest record (its JSON payload) the server accepts in a push or publishes: a hostile or
/// buggy device cannot hand other devices of the account a record they cannot hold.
pub const MAX_RECORD_BYTES: usize = 1 << 20;
/// A pull page stops adding changes once their payloads reach this many bytes (a page holds at
/// least one change, so a page is at most this plus one record).
pub const MAX_PULL_PAGE_BYTES: usize = 4 << 20;
/// Largest response body a device reads; a longer one is refused as it streams in.
pub const MAX_RESPONSE_BYTES: usize = 16 << 20;

/// `POST /v1/identity/nonce`: a single-use nonce for the identity provider's sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NonceResponse {
    /// Pass it to the provider's authorization request; it comes back in the ID token.
    pub nonce: String,
    /// Last second it is accepted (unix).
    pub expires_at: i64,
}

/// `POST /v1/devices`: registers a device of a citizen, proven by the identity provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterRequest {
    /// The OpenID Connect ID token from the citizen's sign-in, carrying a nonce from
    /// `POST /v1/identity/nonce`. A citizen ID number alone opens nothing. At most 16 KiB; the
    /// document says 16,000 characters, which fit the route's 64 KiB body however encoded.
    #[cfg_attr(feature = "openapi", schema(max_length = 16000))]
    pub id_token: String,
    /// A name for the device ("Lan's phone", "bus 32 validator 2"): 1 to 100 characters, not
    /// blank, no control character.
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 100,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
        )
    )]
    pub device_name: String,
    /// `phone` (validators enrol instead).
    #[cfg_attr(feature = "openapi", schema(pattern = "^phone$"))]
    pub role: String,
    /// The account this device's data already belongs to (a vault signed in before; the
    /// client fills it in): when the sign-in is another citizen's, the registration is refused
    /// (403 `identity_mismatch`) before any device is made, so one citizen's data never goes
    /// to another's account and no stray device shows on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 64, pattern = "^[A-Za-z0-9-]{1,64}$")
    )]
    pub account_id: Option<String>,
}

/// One of the citizen's devices (`GET /v1/devices`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceInfo {
    /// Device id.
    pub device_id: String,
    /// Its name.
    pub name: String,
    /// When it registered (unix seconds).
    pub created_at: i64,
    /// Whether it is the device asking.
    pub current: bool,
}

/// The answer to a registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterResponse {
    /// The device's id.
    pub device_id: String,
    /// The citizen's account id.
    pub account_id: String,
    /// Bearer token for every later call. Shown once; the server keeps only its hash.
    pub token: String,
}

/// `POST /v1/validators`: a validator enrols with a single-use code the operator issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ValidatorEnrolmentRequest {
    /// The operator's enrolment code (single use, expiring).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub enrolment_code: String,
    /// A name for the validator ("bus 32 front door"): 1 to 100 characters, not blank, no
    /// control character.
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 100,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
        )
    )]
    pub device_name: String,
}

/// The answer to an enrolment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ValidatorEnrolmentResponse {
    /// The validator's id.
    pub validator_id: String,
    /// Bearer token of its feed and tap uploads. Shown once; the server keeps only its hash.
    pub token: String,
    /// The operator's label of the enrolment.
    pub label: String,
    /// The route it is bound to, if a bus.
    pub route: Option<u16>,
    /// The gate it is bound to, if a metro gate.
    pub gate: Option<String>,
    /// An inspector's device: it reads the feed and uploads inspections, never taps (the
    /// backend refuses them with `inspector_device`). Absent from older servers.
    #[serde(default)]
    pub inspector: bool,
    /// When the token expires (unix seconds); the validator renews it before
    /// ([`ValidatorTokenResponse`]). Absent from servers whose tokens do not expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_expires_at: Option<u64>,
}

/// `POST /v1/transit/validators/token`: a validator's new token, in exchange for the one it
/// presented (which stays honoured for a few days, so a lost answer is no lock-out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ValidatorTokenResponse {
    /// The new bearer token. Shown once; the server keeps only its hash.
    pub token: String,
    /// When it expires (unix seconds).
    pub expires_at: u64,
}

/// One local change, as pushed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Mutation {
    /// Random key: a second delivery with the same key is not applied again (1 to 64
    /// characters, no control character).
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[^\u0000-\u001f\u007f-\u009f]{1,64}$")
    )]
    pub idempotency_key: String,
    /// Position in the device's outbox.
    pub seq: u64,
    /// Collection.
    pub collection: String,
    /// Record id.
    pub record_id: String,
    /// `put` or `delete`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^(put|delete)$"))]
    pub op: String,
    /// The record (for `put`).
    pub payload: Value,
    /// Hybrid logical clock of the change.
    #[serde(default)]
    pub hlc: String,
}

/// `POST /v1/sync/push`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushRequest {
    /// At most [`MAX_PUSH_BATCH`] mutations, in outbox order.
    #[cfg_attr(feature = "openapi", schema(max_items = 500))]
    pub mutations: Vec<Mutation>,
}

/// What the server did with one mutation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Outcome {
    /// Applied now.
    Applied,
    /// Applied before (same idempotency key): not applied again.
    Duplicate,
    /// Older than the server's copy under last-writer-wins: kept out.
    Superseded,
    /// Refused for good (unknown collection, bad payload): the device drops it.
    Rejected {
        /// Why.
        reason: String,
    },
}

/// The outcome of one mutation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushResult {
    /// The mutation's key.
    pub idempotency_key: String,
    /// The outcome.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// The answer to a push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushResponse {
    /// One result per mutation, in order.
    pub results: Vec<PushResult>,
}

/// One server change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Change {
    /// Collection.
    pub collection: String,
    /// Record id.
    pub record_id: String,
    /// `put` or `delete`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^(put|delete)$"))]
    pub op: String,
    /// The record (for `put`).
    #[serde(default)]
    pub payload: Value,
    /// Hybrid logical clock of the write, for last-writer-wins collections.
    #[serde(default)]
    pub hlc: String,
}

/// `GET /v1/sync/pull?collection=..&cursor=..&limit=..`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PullResponse {
    /// Changes after the cursor, oldest first.
    pub changes: Vec<Change>,
    /// Opaque: pass it back to continue.
    pub next_cursor: String,
    /// More changes are waiting.
    pub has_more: bool,
    /// How many changes wait after this page, counted up to [`MAX_REMAINING_COUNTED`] (so at
    /// most that when more wait); absent from servers before it was added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(maximum = 10000))]
    pub remaining: Option<u64>,
}

/// The most a server counts for [`PullResponse::remaining`].
pub const MAX_REMAINING_COUNTED: u32 = 10_000;

pub use super::codes::ServerErrorCode;

/// Error body of every 4xx and 5xx.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// Stable code: one of [`ServerErrorCode`]'s (read it with [`ServerErrorCode::from_wire`]).
    #[cfg_attr(feature = "openapi", schema(value_type = ServerErrorCode))]
    pub error: String,
    /// For people.
    pub message: String,
}
