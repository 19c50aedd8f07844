//! Fiken, the accounting system: a typed client for the API v2 subset we need,
//! and a local fake.
//!
//! Fiken allows one request at a time per token and slows callers above four
//! requests a second (`../shared/ref/fiken.md` §4). The client enforces both for
//! the whole process: every client with the same token shares one [`Limiter`].
//! Amounts are integer øre on the wire and here. A write whose answer is lost is
//! [`FikenError::Ambiguous`]; the caller looks the purchase up by its identifier
//! before trying again (Fiken has no idempotency key).

pub mod fake;
mod wire;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

use crate::retry::{describe, retry_after, ReadFailure, RetryPolicy};
use secrecy::{ExposeSecret, SecretString};

/// A Fiken API token. Never printed.
#[derive(Clone, Debug)]
pub struct Token(SecretString);

impl Token {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Token {
        Token(SecretString::new(token.into()))
    }

    fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl From<SecretString> for Token {
    fn from(secret: SecretString) -> Self {
        Token(secret)
    }
}

/// What went wrong talking to Fiken. None of these carry the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FikenError {
    /// The token was refused.
    #[error("Fiken refused the token (401)")]
    Unauthorized,
    /// The token may not do this, or the company lacks the API module.
    #[error("Fiken forbids this ({status}): {message}")]
    Forbidden { status: u16, message: String },
    /// Not found.
    #[error("not found at Fiken: {0}")]
    NotFound(String),
    /// Fiken refused the content as invalid; its own words. Permanent.
    #[error("Fiken rejected it as invalid: {message}")]
    Validation { message: String },
    /// Still rate limited after every attempt.
    #[error("Fiken is rate limiting us; retry after {retry_after:?}")]
    RateLimited { retry_after: Option<Duration> },
    /// Fiken failed or could not be reached, after every attempt.
    #[error("Fiken is unavailable: {0}")]
    Unavailable(String),
    /// A write was sent but its answer was lost: it may or may not have happened.
    #[error("the request may have reached Fiken, but its answer was lost: {0}")]
    Ambiguous(String),
    /// An answer we cannot read.
    #[error("unexpected answer from Fiken: {0}")]
    Decode(String),
}

impl FikenError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, FikenError::RateLimited { .. } | FikenError::Unavailable(_) | FikenError::Ambiguous(_))
    }
}

/// One request at a time, and at least `spacing` between their starts, for every
/// client of one token in this process.
pub struct Limiter {
    last: tokio::sync::Mutex<Option<Instant>>,
    spacing: Duration,
}

impl Limiter {
    fn for_token(token: &Token, spacing: Duration) -> Arc<Limiter> {
        static LIMITERS: OnceLock<Mutex<HashMap<String, Arc<Limiter>>>> = OnceLock::new();
        let mut map = LIMITERS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
        // Keyed by the token's hash: the process keeps no copy of it here.
        map.entry(String::from(bookkeeper_core::people::TokenHash::of(token.expose())))
            .or_insert_with(|| Arc::new(Limiter { last: tokio::sync::Mutex::new(None), spacing }))
            .clone()
    }
}

/// Where Fiken serves attachment files besides the API's own origin (its
/// document's example `downloadUrl` is `https://fiken.no/api/v2/files/...`; see
/// `bookkeeper_contracts::leeway`).
pub const FILE_ORIGINS: [&str; 1] = ["https://fiken.no"];

/// Fiken's default pacing: four requests a second.
pub const SPACING: Duration = Duration::from_millis(250);

/// A bank account in Fiken. Fiken's document requires none of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankAccount {
    /// Fiken's id.
    pub id: Option<i64>,
    /// Display name (empty when Fiken gives none).
    pub name: String,
    /// The ledger code to pay from, e.g. `1920:10001`.
    pub account_code: Option<String>,
    /// The bank's account number (11 digits for a Norwegian account).
    pub number: Option<String>,
    /// Reconciled balance, øre.
    pub reconciled_balance_minor: Option<i64>,
    /// No longer in use.
    pub inactive: bool,
}

/// One line of a purchase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurchaseLine {
    /// What was bought.
    pub description: String,
    /// Expense account, e.g. `6540`.
    pub account: String,
    /// Net amount, øre.
    pub net_minor: i64,
    /// VAT, øre.
    pub vat_minor: i64,
    /// Fiken's VAT type, e.g. `HIGH`.
    pub vat_type: String,
}

/// A supplier invoice to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPurchase {
    /// The supplier's invoice number: how we find it again.
    pub identifier: String,
    /// Invoice date.
    pub date: chrono::NaiveDate,
    /// Due date.
    pub due_date: Option<chrono::NaiveDate>,
    /// The supplier's contact id.
    pub supplier_id: i64,
    /// ISO currency.
    pub currency: String,
    /// Lines.
    pub lines: Vec<PurchaseLine>,
}

/// A registered purchase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purchase {
    /// Fiken's id.
    pub id: i64,
    /// The supplier's invoice number.
    pub identifier: Option<String>,
    /// The supplier's contact id.
    pub supplier_id: Option<i64>,
    /// Total of net + VAT over the lines, øre (of the amounts Fiken gave).
    pub total_minor: i64,
    /// Whether every line gave both its net amount and its VAT (Fiken's
    /// document does not promise them): if not, `total_minor` is a lower bound.
    pub total_known: bool,
    /// Invoice date.
    pub date: Option<chrono::NaiveDate>,
    /// Due date.
    pub due_date: Option<chrono::NaiveDate>,
    /// Supplier name.
    pub supplier_name: Option<String>,
    /// Paid in full.
    pub paid: bool,
    /// Its attachments so far.
    pub attachments: Vec<Attachment>,
    /// The description of each line (required in Fiken's document).
    pub line_descriptions: Vec<String>,
}

/// A document attached to a purchase. Fiken's document requires none of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// Fiken's identifier.
    pub identifier: Option<String>,
    /// Where its bytes can be read (with the token, when on the API's own origin).
    pub download_url: Option<String>,
    /// `invoice`, `unspecified`, ...
    pub kind: Option<String>,
}

impl From<wire::Attachment> for Attachment {
    fn from(a: wire::Attachment) -> Attachment {
        Attachment { identifier: a.identifier, download_url: a.download_url, kind: a.kind }
    }
}

/// A company the token may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Company {
    /// Display name (empty when Fiken gives none).
    pub name: String,
    /// The slug used in every URL.
    pub slug: String,
    /// Organisation number.
    pub organization_number: Option<String>,
    /// Whether the company has Fiken's API module (`None`: Fiken did not say).
    pub has_api_access: Option<bool>,
    /// A test company (Fiken's own sandbox).
    pub test_company: bool,
}

impl Company {
    fn from_wire(c: wire::Company, slug: Option<&str>) -> Option<Company> {
        Some(Company {
            name: c.name.unwrap_or_default(),
            slug: c.slug.or_else(|| slug.map(String::from))?,
            organization_number: c.organization_number,
            has_api_access: c.has_api_access,
            test_company: c.test_company.unwrap_or(false),
        })
    }
}

/// A document waiting in the company's inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxDocument {
    /// Fiken's id.
    pub id: Option<i64>,
    /// Name (empty when Fiken gives none).
    pub name: String,
    /// File name.
    pub filename: Option<String>,
    /// Whether it is used as documentation of something already.
    pub used: bool,
}

/// Typed client for one company at Fiken.
#[derive(Clone)]
pub struct FikenClient {
    http: reqwest::Client,
    base: String,
    company: String,
    token: Token,
    retry: RetryPolicy,
    limiter: Arc<Limiter>,
}

impl std::fmt::Debug for FikenClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FikenClient").field("base", &self.base).field("company", &self.company).finish_non_exhaustive()
    }
}

struct Answer {
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl FikenClient {
    /// A client for `company` (its slug) at `base` (`https://api.fiken.no/api/v2`),
    /// pacing requests `spacing` apart ([`SPACING`] in production).
    pub fn new(
        base: impl Into<String>,
        company: &str,
        token: Token,
        retry: RetryPolicy,
        spacing: Duration,
    ) -> Result<FikenClient, FikenError> {
        let http = reqwest::Client::builder()
            .timeout(retry.timeout)
            .build()
            .map_err(|e| FikenError::Unavailable(e.to_string()))?;
        let limiter = Limiter::for_token(&token, spacing);
        Ok(FikenClient {
            http,
            base: base.into().trim_end_matches('/').to_string(),
            company: company.to_string(),
            token,
            retry,
            limiter,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/companies/{}{path}", self.base, self.company)
    }

    /// The companies this token may use (not company-scoped).
    pub async fn companies(&self) -> Result<Vec<Company>, FikenError> {
        let answer = self.read(&format!("{}/companies", self.base)).await?;
        let list: Vec<wire::Company> = decode(&answer.body)?;
        Ok(list.into_iter().filter_map(|c| Company::from_wire(c, None)).collect())
    }

    /// This client's company (`GET /companies/{slug}`): [`FikenError::NotFound`]
    /// when the slug names none the token may use.
    pub async fn company(&self) -> Result<Company, FikenError> {
        let answer = self.read(&self.url("")).await?;
        let c: wire::Company = decode(&answer.body)?;
        Company::from_wire(c, Some(&self.company)).ok_or_else(|| FikenError::Decode("a company without a slug".into()))
    }

    /// The company slug this client uses.
    pub fn company_slug(&self) -> &str {
        &self.company
    }

    /// Documents in the company's inbox.
    pub async fn inbox(&self) -> Result<Vec<InboxDocument>, FikenError> {
        let list: Vec<wire::InboxDocument> = self.get_all("/inbox?status=all").await?;
        Ok(list
            .into_iter()
            .map(|d| InboxDocument {
                id: d.document_id,
                name: d.name.unwrap_or_default(),
                filename: d.filename,
                used: d.status.unwrap_or(false),
            })
            .collect())
    }

    /// Purchases dated between `from` and `to`, inclusive.
    pub async fn purchases(&self, from: chrono::NaiveDate, to: chrono::NaiveDate) -> Result<Vec<Purchase>, FikenError> {
        let all: Vec<wire::Purchase> = self.get_all(&format!("/purchases?dateGe={from}&dateLe={to}")).await?;
        Ok(all.into_iter().filter(|p| p.deleted != Some(true)).filter_map(|p| purchase(p, None)).collect())
    }

    /// The company's bank accounts.
    pub async fn bank_accounts(&self) -> Result<Vec<BankAccount>, FikenError> {
        let list: Vec<wire::BankAccount> = self.get_all("/bankAccounts").await?;
        Ok(list
            .into_iter()
            .map(|b| BankAccount {
                id: b.bank_account_id,
                name: b.name.unwrap_or_default(),
                account_code: b.account_code,
                number: b.bank_account_number,
                reconciled_balance_minor: b.reconciled_balance,
                inactive: b.inactive.unwrap_or(false),
            })
            .collect())
    }

    /// A supplier by organisation number (or, without one, by exact name).
    pub async fn find_supplier(
        &self,
        name: &str,
        organization_number: Option<&str>,
    ) -> Result<Option<i64>, FikenError> {
        let contacts: Vec<wire::Contact> = self.get_all("/contacts?supplier=true").await?;
        Ok(contacts
            .into_iter()
            .find(|c| match organization_number {
                Some(org) => c.organization_number.as_deref() == Some(org),
                None => c.name.eq_ignore_ascii_case(name),
            })
            .and_then(|c| c.contact_id))
    }

    /// Creates a supplier and returns its contact id.
    pub async fn create_supplier(&self, name: &str, organization_number: Option<&str>) -> Result<i64, FikenError> {
        let body = wire::ContactRequest {
            name: name.into(),
            organization_number: organization_number.map(String::from),
            supplier: true,
        };
        self.create("/contacts", &body).await
    }

    /// Registers a supplier invoice; returns the purchase id. A lost answer is
    /// [`FikenError::Ambiguous`]: look it up with [`FikenClient::find_purchase`].
    pub async fn create_purchase(&self, purchase: &NewPurchase) -> Result<i64, FikenError> {
        let body = wire::PurchaseRequest {
            date: purchase.date.to_string(),
            kind: "supplier".into(),
            paid: false,
            currency: purchase.currency.clone(),
            identifier: Some(purchase.identifier.clone()),
            due_date: purchase.due_date.map(|d| d.to_string()),
            supplier_id: Some(purchase.supplier_id),
            lines: purchase
                .lines
                .iter()
                .map(|l| wire::OrderLine {
                    description: l.description.clone(),
                    vat_type: l.vat_type.clone(),
                    net_price: l.net_minor,
                    vat: l.vat_minor,
                    account: l.account.clone(),
                })
                .collect(),
        };
        self.create("/purchases", &body).await
    }

    /// A purchase by id.
    pub async fn purchase(&self, id: i64) -> Result<Purchase, FikenError> {
        let answer = self.read(&self.url(&format!("/purchases/{id}"))).await?;
        let p: wire::Purchase = decode(&answer.body)?;
        purchase(p, Some(id)).ok_or_else(|| FikenError::Decode(format!("purchase {id} without an id")))
    }

    /// The attachments of a purchase (`GET .../purchases/{id}/attachments`).
    pub async fn attachments(&self, purchase_id: i64) -> Result<Vec<Attachment>, FikenError> {
        let url = self.url(&format!("/purchases/{purchase_id}/attachments"));
        let answer = self.read(&url).await?;
        let list: Vec<wire::Attachment> = decode(&answer.body)?;
        Ok(list.into_iter().map(Attachment::from).collect())
    }

    /// Whether a purchase has an attachment with exactly these bytes: how the
    /// executor learns whether an upload whose answer was lost landed. Fiken's
    /// document gives an attachment no field of ours to find it by (the upload
    /// form has no comment), so its bytes are read back from its `downloadUrl`.
    /// The token goes only to the API's own origin and to Fiken's file origin
    /// ([`FILE_ORIGINS`]). An attachment that cannot be read back (no URL, another
    /// origin, an error) makes the answer unknowable: [`FikenError::Ambiguous`],
    /// never "not there", which would send the upload twice.
    pub async fn has_attachment(&self, purchase_id: i64, bytes: &[u8]) -> Result<bool, FikenError> {
        let cannot_tell = |why: &str| {
            FikenError::Ambiguous(format!(
                "cannot tell whether an earlier upload to purchase {purchase_id} landed: {why}"
            ))
        };
        for attachment in self.attachments(purchase_id).await? {
            let Some(url) = attachment.download_url.as_deref() else {
                return Err(cannot_tell("an attachment has no downloadUrl"));
            };
            if !same_origin(url, &self.base) && !FILE_ORIGINS.iter().any(|o| same_origin(url, o)) {
                return Err(cannot_tell("an attachment is served from an origin the token is not sent to"));
            }
            // Read like any other read (paced, retried).
            match self.read(url).await {
                Ok(answer) if answer.body == bytes => return Ok(true),
                Ok(_) => {}
                Err(e) => return Err(cannot_tell(&format!("an attachment could not be read back ({e})"))),
            }
        }
        Ok(false)
    }

    /// Every purchase of this supplier with this invoice number (a person may
    /// have approved the same invoice twice on purpose: two purchases).
    pub async fn find_purchases(&self, supplier_id: i64, identifier: &str) -> Result<Vec<Purchase>, FikenError> {
        let all: Vec<wire::Purchase> = self.get_all("/purchases").await?;
        Ok(all
            .into_iter()
            .filter(|p| p.deleted != Some(true))
            .filter(|p| {
                p.identifier.as_deref() == Some(identifier)
                    && p.supplier.as_ref().and_then(|s| s.contact_id) == Some(supplier_id)
            })
            .filter_map(|p| purchase(p, None))
            .collect())
    }

    /// The purchase of this supplier with this invoice number, if registered (the
    /// first, when there are several: [`FikenClient::find_purchases`]).
    pub async fn find_purchase(&self, supplier_id: i64, identifier: &str) -> Result<Option<Purchase>, FikenError> {
        Ok(self.find_purchases(supplier_id, identifier).await?.into_iter().next())
    }

    /// Attaches a document to a purchase (as its invoice, or as a payment
    /// receipt), with the form fields Fiken's document defines: `filename`,
    /// `attachToSale`, `attachToPayment`, `file`. A lost answer is
    /// [`FikenError::Ambiguous`]: look with [`FikenClient::has_attachment`].
    pub async fn attach_to_purchase(
        &self,
        id: i64,
        filename: &str,
        bytes: Vec<u8>,
        as_receipt: bool,
    ) -> Result<(), FikenError> {
        let url = self.url(&format!("/purchases/{id}/attachments"));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let form = reqwest::multipart::Form::new()
                .text("filename", filename.to_string())
                .text("attachToSale", (!as_receipt).to_string())
                .text("attachToPayment", as_receipt.to_string())
                .part("file", reqwest::multipart::Part::bytes(bytes.clone()).file_name(filename.to_string()));
            let _turn = self.turn().await;
            let sent = self
                .http
                .post(&url)
                .bearer_auth(self.token.expose())
                .header("X-Request-ID", uuid::Uuid::new_v4().to_string())
                .multipart(form)
                .send()
                .await;
            match self.write_outcome(sent, attempt).await? {
                Some(_) => return Ok(()),
                None => continue,
            }
        }
    }

    async fn create<B: serde::Serialize>(&self, path: &str, body: &B) -> Result<i64, FikenError> {
        let json = serde_json::to_vec(body).map_err(|e| FikenError::Decode(e.to_string()))?;
        let answer = self.write(Method::POST, &self.url(path), Some(json)).await?;
        let location = answer
            .headers
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| FikenError::Decode(format!("{path}: 201 without a Location")))?;
        location
            .rsplit('/')
            .next()
            .and_then(|id| id.parse().ok())
            .ok_or_else(|| FikenError::Decode(format!("{path}: no id at the end of the Location")))
    }

    /// Waits for this token's turn: one request at a time, paced.
    async fn turn(&self) -> tokio::sync::MutexGuard<'_, Option<Instant>> {
        let mut last = self.limiter.last.lock().await;
        if let Some(at) = *last {
            let next = at + self.limiter.spacing;
            if next > Instant::now() {
                tokio::time::sleep_until(next.into()).await;
            }
        }
        *last = Some(Instant::now());
        last
    }

    /// Interprets the outcome of a write: `Some` on success, `None` to try again
    /// (only when it surely did not happen: refused connection, 429).
    async fn write_outcome(
        &self,
        sent: Result<reqwest::Response, reqwest::Error>,
        attempt: u32,
    ) -> Result<Option<Answer>, FikenError> {
        let last = attempt >= self.retry.max_attempts;
        let response = match sent {
            Ok(r) => r,
            Err(e) if e.is_connect() && !last => {
                tokio::time::sleep(self.retry.backoff.delay(attempt - 1)).await;
                return Ok(None);
            }
            Err(e) if e.is_connect() => return Err(FikenError::Unavailable("could not connect".into())),
            Err(e) => return Err(FikenError::Ambiguous(describe(&e))),
        };
        let status = response.status();
        let headers = response.headers().clone();
        if status == StatusCode::TOO_MANY_REQUESTS {
            let after = retry_after(&headers);
            if last || after.is_some_and(|a| a > self.retry.max_retry_after) {
                return Err(FikenError::RateLimited { retry_after: after });
            }
            tokio::time::sleep(after.unwrap_or_else(|| self.retry.backoff.delay(attempt - 1))).await;
            return Ok(None);
        }
        if status.is_server_error() {
            return Err(FikenError::Ambiguous(format!("Fiken answered {status}")));
        }
        let body = response.bytes().await.map_err(|e| FikenError::Ambiguous(describe(&e)))?.to_vec();
        if !status.is_success() {
            return Err(classify(status, &String::from_utf8_lossy(&body)));
        }
        Ok(Some(Answer { headers, body }))
    }

    /// A write, retried only when it surely did not happen (see `write_outcome`).
    async fn write(&self, method: Method, url: &str, json: Option<Vec<u8>>) -> Result<Answer, FikenError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self
                .http
                .request(method.clone(), url)
                .bearer_auth(self.token.expose())
                .header("X-Request-ID", uuid::Uuid::new_v4().to_string());
            if let Some(body) = &json {
                request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body.clone());
            }
            let sent = {
                let _turn = self.turn().await;
                request.send().await
            };
            if let Some(answer) = self.write_outcome(sent, attempt).await? {
                return Ok(answer);
            }
        }
    }

    /// A read with retries ([`RetryPolicy::read`]), each attempt in its turn.
    async fn read(&self, url: &str) -> Result<Answer, FikenError> {
        let send = || async {
            let request = self
                .http
                .get(url)
                .bearer_auth(self.token.expose())
                .header("X-Request-ID", uuid::Uuid::new_v4().to_string());
            let _turn = self.turn().await;
            request.send().await
        };
        let response = self.retry.read("Fiken", url, send).await.map_err(|failure| match failure {
            ReadFailure::RateLimited(retry_after) => FikenError::RateLimited { retry_after },
            ReadFailure::Unavailable(why) => FikenError::Unavailable(why),
            ReadFailure::Refused(status, body) => classify(status, &body),
        })?;
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|e| FikenError::Unavailable(describe(&e)))?.to_vec();
        Ok(Answer { headers, body })
    }

    /// Every page of a list, 100 at a time.
    async fn get_all<T: DeserializeOwned>(&self, path: &str) -> Result<Vec<T>, FikenError> {
        let mut out = Vec::new();
        let mut page = 0u32;
        loop {
            let separator = if path.contains('?') { '&' } else { '?' };
            let url = self.url(&format!("{path}{separator}page={page}&pageSize=100"));
            let answer = self.read(&url).await?;
            let mut items: Vec<T> = decode(&answer.body)?;
            out.append(&mut items);
            let pages: u32 = answer
                .headers
                .get("Fiken-Api-Page-Count")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            page += 1;
            if page >= pages {
                return Ok(out);
            }
        }
    }
}

/// A purchase as we keep it; `None` without an id (the document does not
/// require one; a purchase read by id keeps the id it was read by).
fn purchase(p: wire::Purchase, id: Option<i64>) -> Option<Purchase> {
    let total_known = p.lines.iter().all(|l| l.net_price.is_some() && l.vat.is_some());
    Some(Purchase {
        id: p.purchase_id.or(id)?,
        identifier: p.identifier,
        supplier_id: p.supplier.as_ref().and_then(|s| s.contact_id),
        total_minor: p.lines.iter().map(|l| l.net_price.unwrap_or(0) + l.vat.unwrap_or(0)).sum(),
        total_known,
        date: chrono::NaiveDate::parse_from_str(&p.date, "%Y-%m-%d").ok(),
        due_date: p.due_date.as_deref().and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()),
        supplier_name: p.supplier.map(|s| s.name),
        paid: p.paid,
        line_descriptions: p.lines.iter().map(|l| l.description.clone()).collect(),
        attachments: p.purchase_attachments.into_iter().map(Attachment::from).collect(),
    })
}

/// Whether `url` is on the same scheme, host and port as `base`.
fn same_origin(url: &str, base: &str) -> bool {
    match (reqwest::Url::parse(url), reqwest::Url::parse(base)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, FikenError> {
    serde_json::from_slice(body).map_err(|e| FikenError::Decode(e.to_string()))
}

/// Fiken's error text: `message`, then `error_description`, then `error`, then the raw body.
fn message_of(body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    parsed
        .as_ref()
        .and_then(|v| ["message", "error_description", "error"].iter().find_map(|k| v.get(*k).and_then(|m| m.as_str())))
        .map(str::to_string)
        .unwrap_or_else(|| body.chars().take(300).collect())
}

fn classify(status: StatusCode, body: &str) -> FikenError {
    let message = message_of(body);
    match status {
        StatusCode::UNAUTHORIZED => FikenError::Unauthorized,
        StatusCode::NOT_FOUND => FikenError::NotFound(message),
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => FikenError::Validation { message },
        _ => FikenError::Forbidden { status: status.as_u16(), message },
    }
}
