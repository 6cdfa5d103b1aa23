//! The platform's HTTP stack for sync, for Kotlin and Swift: OkHttp or URLSession trust what
//! the platform trusts (user and enterprise certificate authorities, Android's Network Security
//! Config, iOS trust settings) and follow the system proxy; `SyncClient.withHttpClient` uses one.
//! docs/networking.md says when to choose it over the built-in client.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use thudo_core::sync::client as core;

use crate::Bytes;

/// A request the sync client makes.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HttpRequest {
    /// `GET` or `POST`.
    pub method: String,
    /// The whole URL.
    pub url: String,
    /// Header names (lower case) and values.
    pub headers: HashMap<String, String>,
    /// The body of a POST (JSON).
    pub body: Option<Bytes>,
    /// Limit for the whole exchange, ms.
    pub timeout_ms: i64,
    /// Refuse (`HttpError.TooLarge`) a response body longer than this.
    pub max_body_bytes: i64,
}

/// The response, whole. Redirects are not followed: return a 3xx as it came.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HttpResponse {
    /// HTTP status.
    pub status: i32,
    /// Header names and values (any case).
    pub headers: HashMap<String, String>,
    /// The body.
    pub body: Bytes,
}

/// Why an exchange gave no response.
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[uniffi::export(Display)]
pub enum HttpError {
    /// No answer (offline, refused, timed out, TLS or pin failure, body cut short): the sync
    /// client retries. Name no URL in the reason (it holds ids).
    #[error("{reason}")]
    Failed {
        /// What happened.
        reason: String,
    },
    /// The body was longer than `maxBodyBytes`.
    #[error("response too large")]
    TooLarge,
}

impl From<uniffi::UnexpectedUniFFICallbackError> for HttpError {
    fn from(err: uniffi::UnexpectedUniFFICallbackError) -> Self {
        HttpError::Failed {
            reason: format!("HTTP client threw: {}", err.reason),
        }
    }
}

crate::error_api!(HttpError, {
        Failed => ("http.failed", true),
        TooLarge => ("http.too_large", false),
});

/// An HTTP client the app gives (OkHttp, URLSession): it sends one request and returns the
/// whole response, blocking its caller (a library thread set aside for it, never the main
/// thread) until then or until `timeoutMs`. It does its own certificate pinning.
#[uniffi::export(with_foreign)]
pub trait HttpClient: Send + Sync {
    /// Sends `request`; returns the response, whatever its status.
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError>;
}

/// Time a host client gets past its own timeout before the exchange counts as failed.
const GRACE: Duration = Duration::from_secs(5);

/// The host's client as core's transport.
pub(crate) struct Foreign(pub(crate) Arc<dyn HttpClient>);

impl core::HttpTransport for Foreign {
    fn send(&self, request: core::HttpRequest, max_body: usize) -> core::HttpFuture<'_> {
        let request = HttpRequest {
            method: request.method,
            url: request.url,
            headers: request
                .headers
                .into_iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v))
                .collect(),
            body: request.body.map(Bytes),
            timeout_ms: crate::signed(request.timeout.as_millis()),
            max_body_bytes: crate::signed(max_body),
        };
        let client = self.0.clone();
        // The host's client should honour `timeoutMs`; this bounds the wait if it does not.
        let deadline = Duration::from_millis(request.timeout_ms.max(0) as u64) + GRACE;
        Box::pin(async move {
            // The host's client blocks: on the blocking pool, never an async worker. A call
            // cancelled meanwhile runs to the client's own timeout and its answer is dropped.
            let exchange = thudo_core::background::run_blocking(move || client.send(request));
            let answer = tokio::time::timeout(deadline, exchange)
                .await
                .map_err(|_| core::HttpFailure::Failed("HTTP client timed out".into()))?
                .map_err(|e| core::HttpFailure::Failed(format!("HTTP client failed: {e:?}")))?;
            match answer {
                Ok(response) => Ok(core::HttpResponse {
                    // Not a status at all: 0, which the client refuses as a protocol error like
                    // any other status outside 100-999.
                    status: u16::try_from(response.status).unwrap_or(0),
                    headers: response.headers.into_iter().collect(),
                    body: response.body.0,
                }),
                Err(HttpError::TooLarge) => Err(core::HttpFailure::TooLarge),
                Err(HttpError::Failed { reason }) => Err(core::HttpFailure::Failed(reason)),
            }
        })
    }
}
