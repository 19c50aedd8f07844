//! The Accounting API's HTTP side: documents and read-only queries. Nothing here
//! changes the books; changes go through the log (see [`crate::execute`]).
//!
//! | Route | What |
//! |---|---|
//! | `GET /healthz` | liveness, and whether the connectors are the sandbox |
//! | `GET /readyz` | 200 only when the database answers |
//! | `GET /openapi.json` | this API, described |
//! | `GET /metrics` | Prometheus metrics |
//! | `POST /documents` | store a receipt or invoice (PDF, JPEG, PNG, HEIC); returns its SHA-256 |
//! | `GET /documents/{sha256}` | the stored bytes |
//! | `GET /folio/balance[?date=]` | balance per bank account (today, or at the end of `date`) |
//! | `GET /folio/transactions?from=&to=[&account=]` | booked bank transactions |
//! | `GET /fiken/purchases?from=&to=` | purchases registered in Fiken |
//! | `GET /checks/missing-receipts?older_than_days=&lookback_days=` | money out with no receipt attached |
//!
//! Errors are the shared shape (`bookkeeper_http::ErrorBody`:
//! `{"error": "...", "code": n, "retry_after_seconds": n?}`). An unreachable or
//! rate-limiting Fiken/Folio is 503 with `Retry-After`; a bad answer from them 502.
//! With a token configured, every route but the health probes and the OpenAPI
//! document needs `Authorization: Bearer <token>`.

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bookkeeper_core::{Clock, Store};
use bookkeeper_http::wire::accounting as wire;
use bookkeeper_http::{auth, ApiError, Ops};
use chrono::{Days, NaiveDate};
use secrecy::SecretString;
use serde::Deserialize;

use crate::documents::{self, DocumentError};
use crate::execute::Connectors;
use crate::fiken::FikenError;
use crate::folio::FolioError;
use bookkeeper_core::money::format_minor;

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    /// The log (documents live beside it).
    pub store: Store,
    /// Fiken and Folio.
    pub connectors: Connectors,
    /// True when the connectors are the local sandbox fakes.
    pub sandbox: bool,
    /// The largest document accepted.
    pub max_document_bytes: usize,
    /// The bearer token callers must present, if any.
    pub token: Option<SecretString>,
    /// Today, for the default periods.
    pub clock: Clock,
}

/// The API router.
pub fn router(state: AppState) -> Router {
    let ops = Ops::new(state.store.clone()).field("sandbox", state.sandbox);
    let open = Router::new().route("/openapi.json", get(openapi)).merge(ops.router());
    let guarded = Router::new()
        .route("/documents", post(upload_document))
        .route("/documents/{sha256}", get(download_document))
        .route("/folio/balance", get(balance))
        .route("/folio/transactions", get(transactions))
        .route("/fiken/purchases", get(purchases))
        .route("/checks/missing-receipts", get(missing_receipts));
    let guarded = auth::require_service_token(guarded, state.token.clone());
    let app = open
        .merge(guarded)
        // The document route reads its body itself, with its own limit and a JSON error.
        .layer(DefaultBodyLimit::disable())
        .with_state(state);
    bookkeeper_http::edge(app, "accounting-api")
}

impl From<FolioError> for ApiError {
    fn from(e: FolioError) -> Self {
        tracing::warn!(error = %e, "Folio call failed");
        match e {
            FolioError::NotFound(what) => ApiError::not_found(format!("Folio has no {what}")),
            FolioError::RateLimited { retry_after } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Folio is rate limiting us")
                    .retry_in(retry_after.map(|d| d.as_secs()).unwrap_or(5))
            }
            FolioError::Unavailable(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("Folio is unavailable: {e}")).retry_in(5)
            }
            other => ApiError::new(StatusCode::BAD_GATEWAY, format!("Folio: {other}")),
        }
    }
}

impl From<FikenError> for ApiError {
    fn from(e: FikenError) -> Self {
        tracing::warn!(error = %e, "Fiken call failed");
        match e {
            FikenError::NotFound(what) => ApiError::not_found(format!("Fiken: {what}")),
            FikenError::RateLimited { retry_after } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Fiken is rate limiting us")
                    .retry_in(retry_after.map(|d| d.as_secs()).unwrap_or(5))
            }
            FikenError::Unavailable(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("Fiken is unavailable: {e}")).retry_in(5)
            }
            other => ApiError::new(StatusCode::BAD_GATEWAY, format!("Fiken: {other}")),
        }
    }
}

async fn upload_document(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let limit = state.max_document_bytes;
    let bytes: Bytes = axum::body::to_bytes(request.into_body(), limit.saturating_add(1)).await.map_err(|_| {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("the document is larger than the limit of {limit} bytes"))
    })?;
    match documents::store(&state.store, &bytes, limit).await {
        Ok(stored) => {
            tracing::info!(sha256 = %stored.sha256, content_type = %stored.content_type, size = stored.size,
                "document stored");
            Ok((StatusCode::CREATED, Json(stored)).into_response())
        }
        Err(DocumentError::TooLarge { .. }) => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the document is larger than the limit of {limit} bytes"),
        )),
        Err(DocumentError::Store(e)) => Err(e.into()),
        Err(e @ (DocumentError::Empty | DocumentError::UnsupportedType)) => {
            Err(ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, e.to_string()))
        }
    }
}

async fn download_document(State(state): State<AppState>, Path(sha256): Path<String>) -> Result<Response, ApiError> {
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request("a document id is 64 hexadecimal characters (its SHA-256)"));
    }
    let blob = state
        .store
        .get_blob(&sha256.to_ascii_lowercase())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no document {sha256}")))?;
    // The type by the bytes themselves, never by what an uploader claimed; served
    // as a download the browser must not sniff into something else (an HTML page
    // or a script hidden in a "PDF" would run on this origin otherwise).
    let kind = documents::sniff(&blob.bytes);
    let content_type = kind.map(|k| k.mime()).unwrap_or("application/octet-stream");
    let extension = kind.map(|k| k.extension()).unwrap_or(".bin");
    let mut response = Response::new(Body::from(blob.bytes));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}{extension}\"", &sha256[..16])) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=31536000, immutable"));
    Ok(response)
}

#[derive(Debug, Deserialize)]
struct OnDate {
    date: Option<String>,
}

async fn balance(State(state): State<AppState>, Query(q): Query<OnDate>) -> Result<Json<wire::Balance>, ApiError> {
    let folio = &state.connectors.folio;
    let date = q.date.as_deref().map(|d| parse_date("date", d)).transpose()?;
    let mut accounts = Vec::new();
    for account in folio.accounts().await? {
        let balance_minor = match date {
            None => account.balance_minor,
            // An account not open that day has no balance then: leave it out.
            Some(date) => match folio.balance_on(&account.account_number, date).await? {
                Some(b) => b,
                None => continue,
            },
        };
        accounts.push(wire::AccountBalance {
            account_number: account.account_number,
            name: account.name,
            kind: account.kind,
            balance_minor,
            balance: format_minor(balance_minor),
        });
    }
    let total: i64 = accounts.iter().map(|a| a.balance_minor).sum();
    Ok(Json(wire::Balance {
        sandbox: state.sandbox,
        date: Some(date.unwrap_or_else(|| state.clock.today())),
        currency: "NOK".into(),
        total_minor: total,
        total: format_minor(total),
        accounts,
    }))
}

#[derive(Debug, Deserialize)]
struct Period {
    from: Option<String>,
    to: Option<String>,
    account: Option<String>,
}

/// The longest period one query may cover.
const MAX_PERIOD_DAYS: i64 = 366;

fn period(today: NaiveDate, from: Option<&str>, to: Option<&str>) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let to = to.map(|t| parse_date("to", t)).transpose()?.unwrap_or(today);
    // `to` may be the first day chrono knows: a month before it is no date.
    let month_before = to.checked_sub_days(Days::new(30)).unwrap_or(to);
    let from = from.map(|f| parse_date("from", f)).transpose()?.unwrap_or(month_before);
    if from > to {
        return Err(ApiError::bad_request(format!("`from` ({from}) is after `to` ({to})")));
    }
    if (to - from).num_days() > MAX_PERIOD_DAYS {
        return Err(ApiError::bad_request(format!("a period may cover at most {MAX_PERIOD_DAYS} days")));
    }
    Ok((from, to))
}

fn parse_date(name: &str, text: &str) -> Result<NaiveDate, ApiError> {
    // Years a bank or an accounting system can hold: chrono also reads -262143-01-01.
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .filter(|d| (1900..=9999).contains(&chrono::Datelike::year(d)))
        .ok_or_else(|| {
            let shown: String = text.chars().take(40).collect();
            ApiError::bad_request(format!(
                "`{name}` must be a date like 2026-01-31 (years 1900 to 9999), not `{shown}`"
            ))
        })
}

async fn bank_transactions(
    state: &AppState,
    from: NaiveDate,
    to: NaiveDate,
    only: Option<&str>,
) -> Result<Vec<wire::Transaction>, ApiError> {
    let folio = &state.connectors.folio;
    let accounts = folio.accounts().await?;
    if let Some(wanted) = only {
        if !accounts.iter().any(|a| a.account_number == wanted) {
            return Err(ApiError::not_found(format!("no Folio account {wanted}")));
        }
    }
    let mut out = Vec::new();
    for account in accounts.iter().filter(|a| only.is_none_or(|w| w == a.account_number)) {
        for t in folio.transactions(&account.account_number, from, to).await? {
            out.push(wire::Transaction {
                id: t.id.to_string(),
                event_id: t.event_id.to_string(),
                account_number: account.account_number.clone(),
                booking_date: t.booking_date,
                description: t.description,
                amount: format_minor(t.amount_minor),
                amount_minor: t.amount_minor,
                direction: Some(t.direction),
                currency: t.currency,
                creditor: t.creditor,
                receipts: t.attachments.len(),
            });
        }
    }
    out.sort_by(|a, b| (a.booking_date, &a.id).cmp(&(b.booking_date, &b.id)));
    Ok(out)
}

async fn transactions(
    State(state): State<AppState>,
    Query(q): Query<Period>,
) -> Result<Json<wire::Transactions>, ApiError> {
    let (from, to) = period(state.clock.today(), q.from.as_deref(), q.to.as_deref())?;
    let transactions = bank_transactions(&state, from, to, q.account.as_deref()).await?;
    Ok(Json(wire::Transactions { sandbox: state.sandbox, from, to, transactions }))
}

async fn purchases(State(state): State<AppState>, Query(q): Query<Period>) -> Result<Json<wire::Purchases>, ApiError> {
    let (from, to) = period(state.clock.today(), q.from.as_deref(), q.to.as_deref())?;
    let purchases = state
        .connectors
        .fiken
        .purchases(from, to)
        .await?
        .into_iter()
        .map(|p| wire::Purchase {
            id: p.id,
            identifier: p.identifier,
            date: p.date,
            due_date: p.due_date,
            supplier: p.supplier_name,
            total: format_minor(p.total_minor),
            total_minor: p.total_minor,
            paid: p.paid,
            attachments: p.attachments.len(),
            total_known: p.total_known,
        })
        .collect();
    Ok(Json(wire::Purchases { sandbox: state.sandbox, from, to, purchases }))
}

#[derive(Debug, Deserialize)]
struct MissingReceiptsQuery {
    older_than_days: Option<u64>,
    lookback_days: Option<u64>,
}

async fn missing_receipts(
    State(state): State<AppState>,
    Query(q): Query<MissingReceiptsQuery>,
) -> Result<Json<wire::MissingReceipts>, ApiError> {
    let older_than = q.older_than_days.unwrap_or(7);
    let lookback = q.lookback_days.unwrap_or(90);
    if lookback > MAX_PERIOD_DAYS as u64 || older_than > lookback {
        return Err(ApiError::bad_request(format!(
            "need older_than_days <= lookback_days <= {MAX_PERIOD_DAYS} (got {older_than} and {lookback})"
        )));
    }
    let today = state.clock.today();
    let to = today - Days::new(older_than);
    let from = today - Days::new(lookback);
    let missing: Vec<wire::Transaction> = bank_transactions(&state, from, to, None)
        .await?
        .into_iter()
        // Money out, or money whose direction Folio left unclear: better asked about
        // than silently left out.
        .filter(|t| t.direction != Some(wire::Direction::In) && t.receipts == 0)
        .collect();
    Ok(Json(wire::MissingReceipts {
        sandbox: state.sandbox,
        older_than_days: older_than,
        lookback_days: lookback,
        count: missing.len(),
        transactions: missing,
    }))
}

async fn openapi() -> Json<serde_json::Value> {
    Json(crate::openapi::document())
}
