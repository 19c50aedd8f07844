//! How the Fiken and Folio clients retry: which failures, how often, how long.

use std::time::Duration;

use bookkeeper_core::retry::Backoff;

/// Retry settings of an HTTP client.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Delay between attempts (full jitter), unless the server says how long.
    pub backoff: Backoff,
    /// The longest `Retry-After` we are willing to wait; longer is reported instead.
    pub max_retry_after: Duration,
    /// Timeout of one request.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(5)),
            max_retry_after: Duration::from_secs(30),
            timeout: Duration::from_secs(15),
        }
    }
}

/// Parses a `Retry-After` header given in seconds (the HTTP-date form is treated
/// as absent and the backoff applies).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().parse::<u64>().ok().map(Duration::from_secs)
}
