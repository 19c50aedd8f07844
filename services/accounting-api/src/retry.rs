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

/// Why a read gave up, for its client to say in its own words.
#[derive(Debug)]
pub enum ReadFailure {
    /// 429 on the last attempt, or with a wait longer than we accept.
    RateLimited(Option<Duration>),
    /// Not reachable, timed out, or 5xx, on every attempt.
    Unavailable(String),
    /// A 4xx: retrying changes nothing.
    Refused(reqwest::StatusCode, String),
}

impl RetryPolicy {
    /// One read, retried as reads may be (they change nothing): a connection
    /// failure or timeout, a 5xx, and a 429 (after its `Retry-After`, unless that
    /// is longer than [`RetryPolicy::max_retry_after`]) are tried again, up to
    /// [`RetryPolicy::max_attempts`]; the first success is returned. `vendor` names
    /// the remote in the log. Writes never come here: whether a failed write
    /// happened is each client's own question.
    pub async fn read<F, Fut>(&self, vendor: &str, what: &str, mut send: F) -> Result<reqwest::Response, ReadFailure>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<reqwest::Response, reqwest::Error>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt >= self.max_attempts;
            let wait = match send().await {
                Ok(r) if r.status().is_success() => return Ok(r),
                Ok(r) if r.status() == reqwest::StatusCode::TOO_MANY_REQUESTS => {
                    let after = retry_after(r.headers());
                    if last || after.is_some_and(|a| a > self.max_retry_after) {
                        return Err(ReadFailure::RateLimited(after));
                    }
                    after.unwrap_or_else(|| self.backoff.delay(attempt - 1))
                }
                Ok(r) if r.status().is_server_error() => {
                    if last {
                        return Err(ReadFailure::Unavailable(format!("{vendor} answered {}", r.status())));
                    }
                    self.backoff.delay(attempt - 1)
                }
                Ok(r) => {
                    let status = r.status();
                    return Err(ReadFailure::Refused(status, r.text().await.unwrap_or_default()));
                }
                Err(e) => {
                    if last {
                        return Err(ReadFailure::Unavailable(describe(&e)));
                    }
                    self.backoff.delay(attempt - 1)
                }
            };
            tracing::debug!(vendor, what, attempt, wait_ms = wait.as_millis() as u64, "retrying a read");
            tokio::time::sleep(wait).await;
        }
    }
}

/// A transport failure in words that carry no URL (it may hold a query).
pub fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the answer was cut off"
    } else {
        "the connection failed"
    };
    kind.to_string()
}
