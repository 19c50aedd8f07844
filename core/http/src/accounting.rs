//! The one client of the Accounting API's reads and document store, for every
//! service that asks it something (Book-E, the CronJob). Nobody asks it to change
//! anything over HTTP: changes are proposals in the log.

use std::time::Duration;

use chrono::NaiveDate;
use secrecy::{ExposeSecret, SecretString};

use crate::wire::accounting::{Balance, MissingReceipts, StoredDocument, Transaction, Transactions};
use crate::ErrorBody;

/// Why a read failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// It, or Fiken/Folio behind it, is down or busy; worth trying later.
    #[error("the Accounting API is unavailable ({0}); try again in a minute")]
    Unavailable(String),
    /// The thing asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// It refused the request.
    #[error("{0}")]
    Refused(String),
}

/// Client of the Accounting API.
#[derive(Debug, Clone)]
pub struct AccountingReads {
    http: reqwest::Client,
    base: String,
    token: Option<SecretString>,
}

impl AccountingReads {
    /// A client of the API at `base` (e.g. `http://127.0.0.1:8082`) giving up on
    /// an answer after `timeout`.
    pub fn new(
        base: impl Into<String>,
        token: Option<SecretString>,
        timeout: Duration,
    ) -> Result<AccountingReads, ReadError> {
        let http =
            reqwest::Client::builder().timeout(timeout).build().map_err(|e| ReadError::Unavailable(e.to_string()))?;
        Ok(AccountingReads { http, base: base.into().trim_end_matches('/').to_string(), token })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t.expose_secret()),
            None => r,
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, ReadError> {
        let response = request.send().await.map_err(|e| {
            ReadError::Unavailable(if e.is_timeout() { "timed out".into() } else { "not reachable".into() })
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.bytes().await.unwrap_or_default();
        let message = ErrorBody::text_of(status.as_u16(), &body);
        Err(match status.as_u16() {
            404 => ReadError::NotFound(message),
            502..=504 => ReadError::Unavailable(message),
            _ => ReadError::Refused(message),
        })
    }

    async fn json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, ReadError> {
        self.send(self.request(reqwest::Method::GET, path))
            .await?
            .json()
            .await
            .map_err(|e| ReadError::Unavailable(format!("unreadable answer: {e}")))
    }

    /// Booked transactions between two dates.
    pub async fn transactions(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<Transaction>, ReadError> {
        let t: Transactions = self.json(&format!("/folio/transactions?from={from}&to={to}")).await?;
        Ok(t.transactions)
    }

    /// The bank balance now.
    pub async fn balance(&self) -> Result<Balance, ReadError> {
        self.json("/folio/balance").await
    }

    /// Money out older than `older_than_days` (and at most `lookback_days` old)
    /// with no receipt attached.
    pub async fn missing_receipts(
        &self,
        older_than_days: u64,
        lookback_days: u64,
    ) -> Result<MissingReceipts, ReadError> {
        self.json(&format!("/checks/missing-receipts?older_than_days={older_than_days}&lookback_days={lookback_days}"))
            .await
    }

    /// The type of a stored document, or `NotFound`. The id is a person's input:
    /// anything but 64 hexadecimal digits is refused here, never put in a path.
    pub async fn document_type(&self, sha256: &str) -> Result<String, ReadError> {
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ReadError::NotFound(format!("no document `{}`", sha256.chars().take(80).collect::<String>())));
        }
        let response = self.send(self.request(reqwest::Method::GET, &format!("/documents/{sha256}"))).await?;
        Ok(response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_string())
    }

    /// A stored document's type and bytes (for reading it), refused when larger
    /// than `max_bytes`. The id is checked as for [`AccountingReads::document_type`].
    pub async fn document(&self, sha256: &str, max_bytes: usize) -> Result<(String, Vec<u8>), ReadError> {
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ReadError::NotFound(format!("no document `{}`", sha256.chars().take(80).collect::<String>())));
        }
        let response = self.send(self.request(reqwest::Method::GET, &format!("/documents/{sha256}"))).await?;
        if response.content_length().is_some_and(|l| l > max_bytes as u64) {
            return Err(ReadError::Refused(format!("the document is larger than {} MiB", max_bytes >> 20)));
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_string();
        let bytes =
            response.bytes().await.map_err(|e| ReadError::Unavailable(format!("the document did not arrive: {e}")))?;
        if bytes.len() > max_bytes {
            return Err(ReadError::Refused(format!("the document is larger than {} MiB", max_bytes >> 20)));
        }
        Ok((content_type, bytes.to_vec()))
    }

    /// Stores a document (its type is checked by content there).
    pub async fn upload(&self, bytes: Vec<u8>) -> Result<StoredDocument, ReadError> {
        self.send(self.request(reqwest::Method::POST, "/documents").body(bytes))
            .await?
            .json()
            .await
            .map_err(|e| ReadError::Unavailable(format!("unreadable answer: {e}")))
    }
}
