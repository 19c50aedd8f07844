//! Book-E's view of the Accounting API: its plain-HTTP reads and the documents
//! store. Book-E never asks it to change anything; changes are proposals.

use chrono::NaiveDate;
use serde::Deserialize;

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

/// A booked bank transaction, as the Accounting API describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Transaction {
    /// Folio's transaction id.
    pub id: String,
    /// The Folio event receipts attach to.
    pub event_id: String,
    /// Booking date.
    pub booking_date: NaiveDate,
    /// Bank text.
    pub description: String,
    /// Signed, minor units (negative = money out).
    pub amount_minor: i64,
    /// `out`, `in`, or `unknown` (Folio named neither party's account and gave no
    /// sign; absent from an older Accounting API).
    #[serde(default)]
    pub direction: Option<String>,
    /// Currency.
    pub currency: String,
    /// Who was paid.
    #[serde(default)]
    pub creditor: Option<String>,
    /// Receipts already attached.
    pub receipts: usize,
}

impl Transaction {
    /// Whether this could be the payment of `amount` (minor units, positive): money
    /// out of that size, or of that size with its direction unknown.
    pub fn could_be_paying(&self, amount: i64) -> bool {
        match self.direction.as_deref() {
            Some("unknown") => self.amount_minor.abs() == amount,
            _ => self.amount_minor == -amount,
        }
    }
}

/// One account's balance.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AccountBalance {
    /// BBAN.
    pub account_number: String,
    /// Name.
    pub name: String,
    /// Minor units.
    pub balance_minor: i64,
}

/// The bank balance.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Balance {
    /// Per account.
    pub accounts: Vec<AccountBalance>,
    /// Sum, minor units.
    pub total_minor: i64,
    /// Currency.
    pub currency: String,
    /// True when the Accounting API runs against the sandbox.
    #[serde(default)]
    pub sandbox: bool,
}

/// A stored document.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StoredDocument {
    /// SHA-256, hex.
    pub sha256: String,
    /// MIME type found in its content.
    pub content_type: String,
}

#[derive(Deserialize)]
struct Transactions {
    transactions: Vec<Transaction>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
}

/// Client of the Accounting API.
#[derive(Debug, Clone)]
pub struct AccountingReads {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl AccountingReads {
    /// A client of the API at `base` (e.g. `http://127.0.0.1:8082`).
    pub fn new(base: impl Into<String>, token: Option<String>) -> Result<AccountingReads, ReadError> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(15))
            .build()
            .map_err(|e| ReadError::Unavailable(e.to_string()))?;
        Ok(AccountingReads { http, base: base.into().trim_end_matches('/').to_string(), token })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
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
        let message =
            response.json::<ErrorBody>().await.map(|b| b.error).unwrap_or_else(|_| format!("answered {status}"));
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

    /// The type of a stored document, or `NotFound`.
    pub async fn document_type(&self, sha256: &str) -> Result<String, ReadError> {
        let response = self.send(self.request(reqwest::Method::GET, &format!("/documents/{sha256}"))).await?;
        Ok(response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_string())
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
