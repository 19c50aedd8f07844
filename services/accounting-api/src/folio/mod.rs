//! Folio, the bank: a typed client for its REST API v2 and a local fake.
//!
//! Folio's published document (`core/contracts/specs/folio-v2.json`) is the
//! contract; where it is silent, `../shared/ref/folio.md`. The choices, in one
//! place:
//! - amounts are decimal strings in major units, parsed exactly into minor units;
//! - the document's amount patterns carry no sign, so a transaction's
//!   **direction comes from its debtor and creditor** (the account paying is the
//!   debtor): [`Direction`]. A signed amount (as some of Folio's answers are
//!   reported to be) is accepted too, and agrees or is overruled by the parties;
//! - there is no read of one event: an event is found in the list of events;
//! - there is no idempotency key for attachments: an upload whose answer was lost
//!   is reported as [`FolioError::Ambiguous`], and the caller checks the event's
//!   attachments before trying again.

pub mod fake;
mod wire;

use std::time::Duration;

use chrono::NaiveDate;
use reqwest::StatusCode;
use uuid::Uuid;

use crate::retry::{describe, retry_after, ReadFailure, RetryPolicy};
use bookkeeper_core::money::parse_decimal;
use secrecy::{ExposeSecret, SecretString};

/// A Folio API key. Never printed.
#[derive(Clone, Debug)]
pub struct ApiKey(SecretString);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> ApiKey {
        ApiKey(SecretString::new(key.into()))
    }

    fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl From<SecretString> for ApiKey {
    fn from(secret: SecretString) -> Self {
        ApiKey(secret)
    }
}

/// What went wrong talking to Folio. None of these carry the API key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FolioError {
    /// The key was refused.
    #[error("Folio refused the API key (401)")]
    Unauthorized,
    /// The thing asked for does not exist (404, or 403 where Folio uses it so).
    #[error("not found at Folio: {0}")]
    NotFound(String),
    /// Folio refused the request as invalid; retrying will not help.
    #[error("Folio rejected the request ({status}): {message}")]
    Rejected { status: u16, message: String },
    /// Still rate limited after every attempt.
    #[error("Folio is rate limiting us; retry after {retry_after:?}")]
    RateLimited { retry_after: Option<Duration> },
    /// Folio failed or could not be reached, after every attempt.
    #[error("Folio is unavailable: {0}")]
    Unavailable(String),
    /// A write was sent but its answer was lost: it may or may not have happened.
    #[error("the request may have reached Folio, but its answer was lost: {0}")]
    Ambiguous(String),
    /// Folio answered something we cannot read.
    #[error("unexpected answer from Folio: {0}")]
    Decode(String),
}

impl FolioError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, FolioError::RateLimited { .. } | FolioError::Unavailable(_) | FolioError::Ambiguous(_))
    }
}

/// A bank account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// 11-digit BBAN.
    pub account_number: String,
    /// Display name.
    pub name: String,
    /// `Operational`, `Tax`, `Savings`, ...
    pub kind: String,
    /// Balance in minor units.
    pub balance_minor: i64,
}

/// A receipt or other document attached to an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// Folio's id.
    pub id: Uuid,
    /// File name, when given.
    pub filename: Option<String>,
    /// MIME type.
    pub mime_type: String,
    /// Size in bytes.
    pub size: u64,
}

/// Which way money moved, as seen from the account: the wire type the
/// Accounting API's clients read.
pub use bookkeeper_http::wire::accounting::Direction;

/// A booked bank transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// Folio's id.
    pub id: Uuid,
    /// The event receipts attach to.
    pub event_id: Uuid,
    /// Bank text.
    pub description: String,
    /// Booking date.
    pub booking_date: NaiveDate,
    /// Signed amount in minor units, as seen from the account (negative = out;
    /// positive when the direction is unknown).
    pub amount_minor: i64,
    /// Which way it went.
    pub direction: Direction,
    /// Currency of `amount_minor`.
    pub currency: String,
    /// Who was paid, when known.
    pub creditor: Option<String>,
    /// Attached documents.
    pub attachments: Vec<Attachment>,
}

/// An event: anything that is or will become a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Folio's id.
    pub id: Uuid,
    /// When it happened.
    pub time: chrono::DateTime<chrono::Utc>,
    /// Amount in minor units, as Folio writes it (the document's pattern carries
    /// no sign; direction is on each transaction).
    pub amount_minor: i64,
    /// Currency.
    pub currency: String,
    /// Attached documents.
    pub attachments: Vec<Attachment>,
    /// Marked complete in Folio.
    pub complete: bool,
}

/// Typed client for Folio's API.
#[derive(Clone)]
pub struct FolioClient {
    http: reqwest::Client,
    base: String,
    key: ApiKey,
    retry: RetryPolicy,
}

impl std::fmt::Debug for FolioClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FolioClient").field("base", &self.base).finish_non_exhaustive()
    }
}

impl FolioClient {
    /// A client for the API at `base` (e.g. `https://api.folio.no/v2`).
    pub fn new(base: impl Into<String>, key: ApiKey, retry: RetryPolicy) -> Result<FolioClient, FolioError> {
        let http = reqwest::Client::builder()
            .timeout(retry.timeout)
            .build()
            .map_err(|e| FolioError::Unavailable(e.to_string()))?;
        Ok(FolioClient { http, base: base.into().trim_end_matches('/').to_string(), key, retry })
    }

    /// Every account.
    pub async fn accounts(&self) -> Result<Vec<Account>, FolioError> {
        let body: wire::Accounts = self.get_json("/accounts", &[]).await?;
        body.accounts.into_iter().map(wire::Account::into_domain).collect()
    }

    /// The balance at the end of `date`, in minor units (`None` if the account was
    /// not open that day).
    pub async fn balance_on(&self, account_number: &str, date: NaiveDate) -> Result<Option<i64>, FolioError> {
        let body: wire::AccountBalance =
            self.get_json(&format!("/accounts/{account_number}/balance/{date}"), &[]).await?;
        body.outgoing_balance.as_deref().map(decimal).transpose()
    }

    /// Booked transactions of one account between two dates (inclusive).
    pub async fn transactions(
        &self,
        account_number: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<Transaction>, FolioError> {
        let query = [("startDate", from.to_string()), ("endDate", to.to_string())];
        let body: wire::TransactionResponse =
            self.get_json(&format!("/accounts/{account_number}/transactions"), &query).await?;
        body.transactions.booked.into_iter().map(|t| t.into_domain(account_number)).collect()
    }

    /// Events between two dates (inclusive).
    pub async fn events(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<Event>, FolioError> {
        let query = [("startDate", from.to_string()), ("endDate", to.to_string())];
        let body: wire::Events = self.get_json("/events", &query).await?;
        body.events.into_iter().map(wire::Event::into_domain).collect()
    }

    /// One event with its attachments, looked for among the events between two
    /// dates: Folio's document defines no read of one event (`/events/{id}` has
    /// only PATCH). `None` if it is not among them.
    pub async fn find_event(&self, id: Uuid, from: NaiveDate, to: NaiveDate) -> Result<Option<Event>, FolioError> {
        Ok(self.events(from, to).await?.into_iter().find(|e| e.id == id))
    }

    /// Attaches a receipt to an event. Not retried once sent: Folio offers no
    /// idempotency key, so a lost answer is [`FolioError::Ambiguous`] and the
    /// caller must look at the event before trying again.
    pub async fn attach_receipt(
        &self,
        event_id: Uuid,
        filename: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<Uuid, FolioError> {
        let url = format!("{}/events/{event_id}/attachments", self.base);
        let safe_name: String = filename.chars().filter(|c| !c.is_control() && *c != '"').collect();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = self
                .http
                .post(&url)
                .bearer_auth(self.key.expose())
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .header(reqwest::header::CONTENT_DISPOSITION, format!("attachment; filename=\"{safe_name}\""))
                .body(bytes.clone())
                .send()
                .await;
            let response = match sent {
                Ok(r) => r,
                // Refused before anything was sent: safe to try again.
                Err(e) if e.is_connect() && attempt < self.retry.max_attempts => {
                    tokio::time::sleep(self.retry.backoff.delay(attempt - 1)).await;
                    continue;
                }
                Err(e) if e.is_connect() => return Err(FolioError::Unavailable(describe(&e))),
                Err(e) => return Err(FolioError::Ambiguous(describe(&e))),
            };
            let status = response.status();
            // 429 means it was not done: waiting and retrying is safe.
            if status == StatusCode::TOO_MANY_REQUESTS {
                let after = retry_after(response.headers());
                let wait = after.unwrap_or_else(|| self.retry.backoff.delay(attempt - 1));
                if attempt < self.retry.max_attempts && wait <= self.retry.max_retry_after {
                    tokio::time::sleep(wait).await;
                    continue;
                }
                return Err(FolioError::RateLimited { retry_after: after });
            }
            if status.is_server_error() {
                // A 5xx after a write may or may not have committed.
                return Err(FolioError::Ambiguous(format!("Folio answered {status}")));
            }
            let text = response.text().await.map_err(|e| FolioError::Ambiguous(describe(&e)))?;
            if !status.is_success() {
                return Err(classify(status, &text, &format!("event {event_id}")));
            }
            let body: wire::Created = serde_json::from_str(&text).map_err(|e| FolioError::Decode(e.to_string()))?;
            return Ok(body.id);
        }
    }

    /// The original bytes and MIME type of an attachment.
    pub async fn attachment(&self, id: Uuid) -> Result<(String, Vec<u8>), FolioError> {
        let response = self.get(&format!("/attachments/{id}/original"), &[]).await?;
        let mime = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_string();
        let bytes = response.bytes().await.map_err(|e| FolioError::Unavailable(describe(&e)))?;
        Ok((mime, bytes.to_vec()))
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, FolioError> {
        let response = self.get(path, query).await?;
        let text = response.text().await.map_err(|e| FolioError::Unavailable(describe(&e)))?;
        serde_json::from_str(&text).map_err(|e| FolioError::Decode(format!("{path}: {e}")))
    }

    /// GET with retries: reads are safe to repeat ([`RetryPolicy::read`]).
    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<reqwest::Response, FolioError> {
        let url = format!("{}{path}", self.base);
        let send = || self.http.get(&url).query(query).bearer_auth(self.key.expose()).send();
        self.retry.read("Folio", path, send).await.map_err(|failure| match failure {
            ReadFailure::RateLimited(retry_after) => FolioError::RateLimited { retry_after },
            ReadFailure::Unavailable(why) => FolioError::Unavailable(format!("{path}: {why}")),
            ReadFailure::Refused(status, body) => classify(status, &body, path),
        })
    }
}

fn classify(status: StatusCode, body: &str, what: &str) -> FolioError {
    let message: String = body.chars().take(300).collect();
    match status {
        StatusCode::UNAUTHORIZED => FolioError::Unauthorized,
        StatusCode::NOT_FOUND | StatusCode::FORBIDDEN => FolioError::NotFound(what.to_string()),
        _ => FolioError::Rejected { status: status.as_u16(), message },
    }
}

/// A reqwest error without its URL (which could carry query data) or source chain noise.
fn decimal(text: &str) -> Result<i64, FolioError> {
    parse_decimal(text).map_err(|e| FolioError::Decode(e.to_string()))
}
