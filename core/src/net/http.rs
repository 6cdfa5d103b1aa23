//! The HTTP seam: the client builds each request and reads each response itself (retries,
//! clock offset, error codes), and a transport carries them. The default transport is reqwest on
//! rustls with thudo's pinning; an app may give the platform's own HTTP stack instead (OkHttp on
//! Android, URLSession on iOS), which trusts what the platform trusts (user and enterprise
//! certificate authorities, Android's Network Security Config, iOS trust settings) and follows
//! the system proxy. A platform transport does its own certificate pinning.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// One request, as the client made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The whole URL.
    pub url: String,
    /// Header names and values (`authorization`, `content-type`, `idempotency-key`).
    pub headers: Vec<(String, String)>,
    /// The body, for a POST.
    pub body: Option<Vec<u8>>,
    /// Limit for the whole exchange.
    pub timeout: Duration,
}

/// One response, whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// HTTP status.
    pub status: u16,
    /// Header names and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of header `name`, compared without case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why an exchange gave no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpFailure {
    /// No answer (offline, refused, timed out, TLS or pin failure, body cut short): worth
    /// retrying. The reason names no URL.
    Failed(String),
    /// The body was longer than the limit given: the server broke the protocol.
    TooLarge,
}

/// What an exchange returns.
pub type HttpFuture<'a> =
    Pin<Box<dyn Future<Output = Result<HttpResponse, HttpFailure>> + Send + 'a>>;

/// Carries requests to the backend. `max_body` bounds the response body: refuse longer ones
/// with [`HttpFailure::TooLarge`] (the client checks again).
pub trait HttpTransport: Send + Sync {
    /// Sends `request` and reads the whole response.
    fn send(&self, request: HttpRequest, max_body: usize) -> HttpFuture<'_>;
}

/// The time one attempt of an exchange may take: `base` (the configured request timeout),
/// plus a second per 32 KiB the request carries (a 4 MiB push on a 2G link at 40 KB/s must not
/// time out on every attempt), doubled on each retry up to four times `base` (a pull page of
/// several MiB, whose size is known only once it arrives, gets through on a slow link after a
/// timeout or two).
pub(crate) fn attempt_timeout(
    base: std::time::Duration,
    body_bytes: usize,
    attempt: u32,
) -> std::time::Duration {
    let growth = 1u32 << attempt.saturating_sub(1).min(2);
    base.saturating_mul(growth)
        .saturating_add(std::time::Duration::from_secs((body_bytes / 32_768) as u64))
}

/// The default transport: reqwest on rustls (ring), with the pins and extra roots of the
/// client's configuration, no redirects.
#[cfg(feature = "rust-http")]
pub(crate) struct Reqwest {
    pub(crate) client: reqwest::Client,
}

#[cfg(feature = "rust-http")]
impl HttpTransport for Reqwest {
    fn send(&self, request: HttpRequest, max_body: usize) -> HttpFuture<'_> {
        Box::pin(async move {
            let method = reqwest::Method::from_bytes(request.method.as_bytes())
                .map_err(|e| HttpFailure::Failed(e.to_string()))?;
            let mut builder = self
                .client
                .request(method, &request.url)
                .timeout(request.timeout);
            for (name, value) in &request.headers {
                builder = builder.header(name.as_str(), value.as_str());
            }
            if let Some(body) = request.body {
                builder = builder.body(body);
            }
            let mut response = builder
                .send()
                .await
                .map_err(|e| HttpFailure::Failed(e.without_url().to_string()))?;
            if response
                .content_length()
                .is_some_and(|n| n > max_body as u64)
            {
                return Err(HttpFailure::TooLarge);
            }
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                .collect();
            let mut body = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| HttpFailure::Failed(format!("body cut short: {}", e.without_url())))?
            {
                if body.len() + chunk.len() > max_body {
                    return Err(HttpFailure::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(HttpResponse {
                status,
                headers,
                body,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn an_attempt_has_time_for_its_body_and_more_after_each_retry() {
        let base = Duration::from_secs(20);
        assert_eq!(super::attempt_timeout(base, 0, 1), base);
        assert_eq!(
            super::attempt_timeout(base, 4 << 20, 1),
            Duration::from_secs(20 + 128)
        );
        let growth: Vec<u64> = (1..=6)
            .map(|a| super::attempt_timeout(base, 0, a).as_secs())
            .collect();
        assert_eq!(growth, [20, 40, 80, 80, 80, 80]);
    }
}
