//! What every request meets before any handler reads it: its credential is checked before its
//! body is read (an anonymous client costs the server a header's worth of work), its body is
//! refused past its route's limit before it is parsed, and every refusal, the framework's own
//! included (a malformed path, an unsupported media type), is the JSON error shape.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use thudo_core::sync::protocol::ErrorBody;

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
                || p.starts_with("/v1/transit/") =>
        {
            Caller::Holder
        }
        // No such route: its 404 costs nothing.
        _ => Caller::Anyone,
    }
}

/// A small body: an order, a registration, a grant.
pub const SMALL_BODY: usize = 64 << 10;
/// The largest body any route takes: a sync push, a validator's upload, a facility's records.
pub const LARGE_BODY: usize = 16 << 20;

/// The most a route's body may hold.
fn body_limit(path: &str) -> usize {
    let large = path == "/v1/sync/push"
        || path == "/v1/transit/taps"
        || path == "/v1/transit/inspections"
        || (path.starts_with("/v1/admin/citizens/") && path.ends_with("/health"))
        || path.starts_with("/v1/admin/cells/");
    if large {
        LARGE_BODY
    } else {
        SMALL_BODY
    }
}

/// Checks the caller's credential, then the body's size, before anything reads the body.
pub async fn admit(State(state): State<GateState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    match caller(req.method(), &path) {
        Caller::Anyone => {}
        Caller::Operator => {
            if let Err(e) = state.operators.authorize(req.headers()) {
                return e.into_response();
            }
        }
        Caller::Holder => {
            let unauthorized =
                || ApiError::unauthorized("missing or unknown token").into_response();
            let Some(token) = bearer(req.headers()) else {
                return unauthorized();
            };
            let hash = sha256(token.as_bytes());
            let storage = state.tokens.clone();
            let known = blocking(move || {
                Ok(storage.device_by_token(&hash)?.is_some()
                    || storage.validator_by_token(&hash)?.is_some())
            })
            .await;
            match known {
                Ok(true) => {}
                Ok(false) => return unauthorized(),
                Err(e) => return e.into_response(),
            }
        }
    }
    let limit = body_limit(&path);
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
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
    // Read up to the limit (a body sent without a length is cut there too).
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return too_large();
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
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let mut json = (
        status,
        axum::Json(ErrorBody {
            error: error.to_owned(),
            message: text,
        }),
    )
        .into_response();
    if let Some(v) = retry_after {
        json.headers_mut().insert(header::RETRY_AFTER, v);
    }
    json
}
