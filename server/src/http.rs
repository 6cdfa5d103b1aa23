//! What every concern's routes share: the JSON error shape, a JSON body extractor whose every
//! rejection is a JSON error, bearer tokens, blocking work off the async executor, and the
//! checks of common inputs. No concern's rules live here.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
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
    /// A 503 saying when to retry, or a 400 for a value the database refused; nothing of the
    /// database's own words (they stay in the operator's log).
    fn from(e: StorageError) -> Self {
        eprintln!("{e}");
        match e {
            StorageError::Failed(_) => ApiError::unavailable(
                ServerErrorCode::Storage,
                "the database is unavailable; retry later",
            ),
            StorageError::ValueRefused(_) => {
                ApiError::bad("a value in the request cannot be stored")
            }
        }
    }
}

/// A cell's id: a party organisation's dotted path (`hn.ba-dinh.dien-bien.chi-bo-1`).
pub(crate) fn valid_cell(cell: &str) -> Result<String, ApiError> {
    let cell = cell.trim();
    let fits = !cell.is_empty()
        && cell.len() <= 100
        && cell
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b));
    if fits {
        Ok(cell.to_owned())
    } else {
        Err(ApiError::bad(
            "a cell is 1 to 100 lower-case letters, digits, '-', '_' and '.'",
        ))
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

/// The address a request came from: the peer's, or the one a trusted balancer saw (set by
/// the gate on every request it admits). For a payment provider's fraud checks, never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub std::net::IpAddr);

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
            // client whose encoder writes every number with a point). Such numbers are
            // rewritten as integers and the body read again; only a body that failed pays
            // (one pass over its bytes), and the first error is the one told.
            Err(first) => match whole_numbers_as_integers(&bytes) {
                Some(rewritten) => serde_json::from_slice(&rewritten)
                    .map(JsonBody)
                    .map_err(|_| refused(first)),
                None => Err(refused(first)),
            },
        }
    }
}

/// `body` with every number that is a whole number written with a fraction or an exponent
/// (`35.0`, `3.5e1`, `1E+2`) written as the integer it is; `None` when it has none. Strings
/// are copied as they are; numbers are read as decimal digits, never through a float.
fn whole_numbers_as_integers(body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len());
    let (mut changed, mut in_string, mut i) = (false, false, 0);
    while i < body.len() {
        let b = body[i];
        if in_string {
            out.push(b);
            if b == b'\\' {
                if let Some(&escaped) = body.get(i + 1) {
                    out.push(escaped);
                    i += 1;
                }
            } else if b == b'"' {
                in_string = false;
            }
            i += 1;
        } else if b == b'-' || b.is_ascii_digit() {
            let start = i;
            i += 1;
            while body
                .get(i)
                .is_some_and(|c| c.is_ascii_digit() || b".eE+-".contains(c))
            {
                i += 1;
            }
            match whole_number(&body[start..i]) {
                Some(integer) => {
                    out.extend_from_slice(integer.as_bytes());
                    changed = true;
                }
                None => out.extend_from_slice(&body[start..i]),
            }
        } else {
            in_string = b == b'"';
            out.push(b);
            i += 1;
        }
    }
    changed.then_some(out)
}

/// The integer a JSON number denotes when it is written with a fraction or an exponent and is
/// whole (`35.0` is `35`, `1e3` is `1000`); `None` for an integer already, a number with a
/// fraction, or one of more than 40 digits.
fn whole_number(token: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(token).ok()?;
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().ok()?),
        None => (text, 0),
    };
    if mantissa.len() == text.len() && !mantissa.contains('.') {
        return None;
    }
    let (int, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits_only(int) || !digits_only(fraction) {
        return None;
    }
    let digits = format!("{int}{fraction}");
    // The decimal point falls after this many of the digits.
    let point = int.len() as i64 + i64::from(exponent);
    if point > 40 {
        return None;
    }
    let point = point.max(0) as usize;
    let (whole, rest) = digits.split_at(point.min(digits.len()));
    if !rest.bytes().all(|b| b == b'0') {
        return None;
    }
    let zeros = "0".repeat(point.saturating_sub(digits.len()));
    let magnitude = format!("{}{zeros}", whole.trim_start_matches('0'));
    Some(match (magnitude.is_empty(), negative) {
        (true, _) => "0".to_owned(),
        (false, true) => format!("-{magnitude}"),
        (false, false) => magnitude,
    })
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

    /// A 503 for a failure the client may retry: it says when (every 503 does), and its
    /// message is the caller's own words, never a library's.
    pub(crate) fn unavailable(code: ServerErrorCode, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
            .retry_after(STORAGE_RETRY_SECS)
    }
}

/// A client for the backend's own calls out (identity providers' keys, the payment provider's
/// query API): `url` must be `https` (Mozilla's roots, rustls on ring), or `http` on the
/// loopback address (tests); no redirects; each call at most `timeout`.
pub(crate) fn outbound_client(
    url: &str,
    timeout: std::time::Duration,
) -> anyhow::Result<reqwest::Client> {
    let parsed = reqwest::Url::parse(url)?;
    let loopback = matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    anyhow::ensure!(
        parsed.scheme() == "https" || (parsed.scheme() == "http" && loopback),
        "{url} must be https"
    );
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    })
    .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

/// Whether text holds a control character (NUL among them: PostgreSQL's text refuses it, so
/// such input is refused at the door on every engine alike).
pub(crate) fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

/// An id or key a client chose: 1 to `max` characters, none a control character. Its schema
/// states the same with `minLength`, `maxLength` and a pattern.
pub(crate) fn valid_id(text: &str, max: usize) -> bool {
    !text.is_empty() && text.chars().count() <= max && !has_control(text)
}

/// The longest record id, in bytes of UTF-8: what a device's vault stores under the
/// collection's name and a separator (its ids hold 512 bytes, a collection's name 64): an id a
/// device could not store would be skipped there, or stall the collection's pull.
pub const MAX_RECORD_ID_BYTES: usize = 440;

/// A synced record's id: 1 to [`MAX_RECORD_ID_BYTES`] bytes, no control character.
pub fn valid_record_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_RECORD_ID_BYTES && !has_control(id)
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

/// The bearer token of a request, if any (the scheme's name in any case, as HTTP allows).
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
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
    query_pairs(raw.as_deref().unwrap_or_default())
        .into_iter()
        .collect()
}

/// A query's parameters in order, names and values percent-decoded (`citizen%5Fid` is
/// `citizen_id`, as the framework's own reader has it), a name given twice kept twice.
pub(crate) fn query_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_a_failed_database_is_retried() {
        let failed = ApiError::from(StorageError::Failed("connection reset".into()));
        assert_eq!(failed.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(failed.retry_after, Some(STORAGE_RETRY_SECS));
        let refused = ApiError::from(StorageError::ValueRefused("NUL in text".into()));
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert_eq!(refused.retry_after, None);
        assert!(
            !refused.body.message.contains("NUL"),
            "the engine's words stay in the log"
        );
        // Every 503 says when to come back, whatever failed.
        let other = ApiError::unavailable(ServerErrorCode::Internal, "no randomness");
        assert_eq!(other.retry_after, Some(STORAGE_RETRY_SECS));
        let response = other.into_response();
        assert_eq!(response.headers()[axum::http::header::RETRY_AFTER], "2");
    }

    #[test]
    fn whole_numbers_are_read_exactly() {
        let cases = [
            ("35.0", Some("35")),
            ("35.000", Some("35")),
            ("-4.0", Some("-4")),
            ("-0.0", Some("0")),
            ("0.0", Some("0")),
            ("3.5e1", Some("35")),
            ("1E+2", Some("100")),
            ("1e16", Some("10000000000000000")),
            ("18446744073709551615.0", Some("18446744073709551615")),
            ("120e-1", Some("12")),
            ("35", None),
            ("35.5", None),
            ("3600.00000000000001", None),
            ("1e-400", None),
            ("1e41", None),
            ("1e99999999999", None),
            ("1.2.3", None),
        ];
        for (token, integer) in cases {
            assert_eq!(
                whole_number(token.as_bytes()).as_deref(),
                integer,
                "{token}"
            );
        }
    }

    #[test]
    fn only_numbers_outside_strings_are_rewritten() {
        let body = br#"{"a": 35.0, "b": "35.0 \" 7.0", "c": [1.0, 2.5, -3e0], "d": 4}"#;
        let rewritten = whole_numbers_as_integers(body).unwrap();
        assert_eq!(
            std::str::from_utf8(&rewritten).unwrap(),
            r#"{"a": 35, "b": "35.0 \" 7.0", "c": [1, 2.5, -3], "d": 4}"#
        );
        assert!(whole_numbers_as_integers(br#"{"a": 35, "b": "1.0"}"#).is_none());
    }
}
