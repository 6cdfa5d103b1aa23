//! What every concern's routes share: the JSON error shape, a JSON body extractor whose every
//! rejection is a JSON error, bearer tokens, blocking work off the async executor, and the
//! checks of common inputs. No concern's rules live here.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde_json::Value;
use thudo_core::hex;
use thudo_core::sync::protocol::{ErrorBody, ServerErrorCode};

use crate::storage::StorageError;

/// An error answer: status and JSON body.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        code: ServerErrorCode,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            body: ErrorBody {
                error: code.as_str().to_owned(),
                message: message.into(),
            },
            retry_after: None,
        }
    }

    pub(crate) fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ServerErrorCode::BadRequest,
            message,
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

/// Seconds a client waits before retrying after the database failed.
pub const STORAGE_RETRY_SECS: u64 = 2;

impl From<StorageError> for ApiError {
    /// A 503 saying when to retry and nothing of the database's own words (they stay in the
    /// operator's log).
    fn from(e: StorageError) -> Self {
        eprintln!("storage error: {e}");
        ApiError::unavailable(
            ServerErrorCode::Storage,
            "the database is unavailable; retry later",
        )
        .retry_after(STORAGE_RETRY_SECS)
    }
}

/// A handler's answer.
pub(crate) type ApiResult<T> = Result<Json<T>, ApiError>;

/// Done: an operator's change that answers nothing else.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Done {
    /// Always true.
    pub ok: bool,
}

/// A JSON body whose every rejection (size, syntax, shape) is a 4xx JSON error.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), ServerErrorCode::BadBody, e.body_text()))?;
        // Every body this API takes is an object: an array is not read as one (serde would
        // fill a struct from an array's items in order).
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::bad("the body must be a JSON object"));
        }
        let refused = |e: serde_json::Error| ApiError::bad(format!("invalid JSON body: {e}"));
        match serde_json::from_slice(&bytes) {
            Ok(body) => Ok(JsonBody(body)),
            // JSON has one number type: `35.0` is the integer 35 to JSON Schema (and to a
            // client whose encoder writes every number with a point). Read again with such
            // numbers as integers; only a body that failed pays for it, and the first error
            // is the one told.
            Err(first) => {
                let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
                    return Err(refused(first));
                };
                if !integers_as_integers(&mut value) {
                    return Err(refused(first));
                }
                serde_json::from_value(value)
                    .map(JsonBody)
                    .map_err(|_| refused(first))
            }
        }
    }
}

/// Writes every number of `value` that is a whole number (`35.0`, `3.5e1`) as an integer;
/// whether there was one.
fn integers_as_integers(value: &mut Value) -> bool {
    match value {
        Value::Number(n) if !(n.is_i64() || n.is_u64()) => {
            let whole = n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15);
            if let Some(f) = whole {
                *value = Value::from(f as i64);
            }
            whole.is_some()
        }
        // Every item is visited (no short cut at the first change).
        Value::Array(items) => {
            items
                .iter_mut()
                .map(integers_as_integers)
                .filter(|c| *c)
                .count()
                > 0
        }
        Value::Object(fields) => {
            fields
                .values_mut()
                .map(integers_as_integers)
                .filter(|c| *c)
                .count()
                > 0
        }
        _ => false,
    }
}

impl ApiError {
    /// The machine-readable code.
    pub fn code(&self) -> &str {
        &self.body.error
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.body.message
    }

    /// A 403 with `code`.
    pub(crate) fn forbidden(code: ServerErrorCode, message: &str) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, code, message)
    }

    /// A 404.
    pub(crate) fn not_found(message: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, ServerErrorCode::NotFound, message)
    }

    /// A 401: no credential, or one nobody issued.
    pub(crate) fn unauthorized(message: &str) -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            ServerErrorCode::Unauthorized,
            message,
        )
    }

    /// The same error, saying when to try again (`Retry-After`, seconds).
    pub(crate) fn retry_after(mut self, secs: u64) -> ApiError {
        self.retry_after = Some(secs);
        self
    }

    /// A 503 for a failure the client may retry.
    pub(crate) fn unavailable(code: ServerErrorCode, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }
}

/// Whether text holds a control character (NUL among them: PostgreSQL's text refuses it, so
/// such input is refused at the door on every engine alike).
pub(crate) fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

/// Text a person typed (a name, a label, a reference): 1 to `max` characters, not blank, no
/// control character. Its schema is the pattern `^[^\u0000-\u001f\u007f-\u009f]*[^\s…]…$`
/// with `maxLength`.
pub(crate) fn valid_text(text: &str, max: usize) -> bool {
    !text.trim().is_empty() && text.chars().count() <= max && !has_control(text)
}

/// Runs storage work on tokio's blocking pool (the stores are synchronous).
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ServerErrorCode::Internal,
            "the request failed inside the server",
        )
    })?
}

/// The bearer token of a request, if any.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// A new random token (hex), shown once and stored hashed.
pub(crate) fn random_token() -> Result<String, ApiError> {
    let mut raw = [0u8; 32];
    thudo_core::crypto::fill_random(&mut raw)
        .map_err(|_| ApiError::unavailable(ServerErrorCode::Internal, "no randomness"))?;
    Ok(hex::encode(&raw))
}

/// A citizen ID is 12 digits.
pub(crate) fn valid_citizen_id(id: &str) -> Result<(), ApiError> {
    if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(ApiError::bad("citizen_id must be 12 digits"))
    }
}

/// A query string's parameters, percent-decoded.
pub(crate) fn query_params(raw: Option<String>) -> std::collections::HashMap<String, String> {
    let mut out = std::collections::HashMap::new();
    for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.insert(k.to_owned(), percent_decode(v));
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex_digit = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = match bytes[i] {
            b'%' if i + 2 < bytes.len() => hex_digit(bytes[i + 1])
                .zip(hex_digit(bytes[i + 2]))
                .map(|(h, l)| h * 16 + l),
            _ => None,
        };
        match (decoded, bytes[i]) {
            (Some(b), _) => {
                out.push(b);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, b) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
