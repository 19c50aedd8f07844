//! A faithful local Folio: the paths, JSON, status codes and headers of Folio's
//! published document, with state and fault injection. It is the sandbox of
//! `bookkeeper up` and what the tests run the client against. Every request and
//! answer is checked against the document (`bookkeeper_contracts::fake`), so
//! amounts are unsigned as the document's patterns have them, and direction is
//! in the debtor and creditor. Choices the document leaves open are the fake's
//! own: unknown events are 404 on attachment upload (403 is Folio's documented
//! answer only for PATCH); error bodies are text.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use uuid::Uuid;

use bookkeeper_contracts::fake::{listen, Served};
use bookkeeper_contracts::Vendor;

use super::wire;
use bookkeeper_core::money::format_minor;

pub use crate::sandbox::{Fault, Faults};

/// A stored attachment, as the fake keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAttachment {
    /// Its id.
    pub id: Uuid,
    /// The event it belongs to.
    pub event_id: Uuid,
    /// From `Content-Disposition`.
    pub filename: Option<String>,
    /// From `Content-Type`.
    pub mime_type: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone)]
struct AccountState {
    number: String,
    name: String,
    kind: String,
    opening_minor: i64,
}

#[derive(Debug, Clone)]
struct EventState {
    id: Uuid,
    transaction_id: Uuid,
    account: String,
    time: DateTime<Utc>,
    amount_minor: i64,
    description: String,
    /// The other party: who was paid, or who paid.
    counterparty: Option<String>,
    attachments: Vec<Uuid>,
}

#[derive(Default)]
struct World {
    /// Only this key is accepted, when set (any non-empty one otherwise).
    valid_key: Option<String>,
    accounts: Vec<AccountState>,
    events: BTreeMap<Uuid, EventState>,
    attachments: HashMap<Uuid, StoredAttachment>,
    faults: Faults,
    forced: VecDeque<Fault>,
    requests: u64,
}

type Shared = Arc<Mutex<World>>;

/// A running fake Folio.
pub struct FakeFolio {
    world: Shared,
    served: Served,
}

/// The sandbox account.
pub const SANDBOX_ACCOUNT: &str = "36060000000";

impl FakeFolio {
    /// Starts an empty fake on `addr` (port 0 picks one).
    pub async fn start(addr: SocketAddr) -> std::io::Result<FakeFolio> {
        let world: Shared = Arc::new(Mutex::new(World::default()));
        let served = listen(addr).await?.serve(Vendor::Folio, router(world.clone()));
        Ok(FakeFolio { world, served })
    }

    /// Requests it received, or answers it gave, that Folio's document does not allow.
    pub fn contract_violations(&self) -> Vec<String> {
        self.served.violations()
    }

    /// [`FakeFolio::contract_violations`], forgotten (a test that provokes one on purpose).
    pub fn take_contract_violations(&self) -> Vec<String> {
        self.served.take_violations()
    }

    /// Accepts only `key` from now on (any non-empty key otherwise).
    pub fn accept_only(&self, key: &str) {
        self.world().valid_key = Some(key.to_string());
    }

    /// Starts a fake holding a sandbox company: one operating account and a few
    /// recent card purchases without receipts.
    pub async fn sandbox(addr: SocketAddr) -> std::io::Result<FakeFolio> {
        let fake = FakeFolio::start(addr).await?;
        fake.add_account(SANDBOX_ACCOUNT, "Driftskonto (sandbox)", 250_000_00);
        let today = Utc::now();
        for (days_ago, minor, what) in [
            (1, -499_00, "KIWI MAJORSTUEN"),
            (2, -12_490_00, "ELKJOP NETTBUTIKK"),
            (3, -89_00, "RUTER"),
            (5, -1_249_00, "CLAS OHLSON"),
        ] {
            fake.add_event(SANDBOX_ACCOUNT, today - chrono::Duration::days(days_ago), minor, what);
        }
        Ok(fake)
    }

    /// The base URL to give the client, like `https://api.folio.no/v2`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v2", self.served.addr())
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds an account.
    pub fn add_account(&self, number: &str, name: &str, opening_minor: i64) {
        self.world().accounts.push(AccountState {
            number: number.into(),
            name: name.into(),
            kind: "Operational".into(),
            opening_minor,
        });
    }

    /// Adds a booked card purchase (or income, if positive); returns its event id.
    pub fn add_event(&self, account: &str, time: DateTime<Utc>, amount_minor: i64, description: &str) -> Uuid {
        let id = Uuid::new_v4();
        self.world().events.insert(
            id,
            EventState {
                id,
                transaction_id: Uuid::new_v4(),
                account: account.into(),
                time,
                amount_minor,
                description: description.into(),
                counterparty: Some(description.into()),
                attachments: Vec::new(),
            },
        );
        id
    }

    /// Replaces the random faults.
    pub fn set_faults(&self, faults: Faults) {
        self.world().faults = faults;
    }

    /// Makes the next requests fail in this order, before any random fault.
    pub fn fail_next(&self, faults: impl IntoIterator<Item = Fault>) {
        self.world().forced.extend(faults);
    }

    /// The attachments of an event, in upload order.
    pub fn attachments_of(&self, event_id: Uuid) -> Vec<StoredAttachment> {
        let world = self.world();
        world
            .events
            .get(&event_id)
            .map(|e| e.attachments.iter().filter_map(|a| world.attachments.get(a).cloned()).collect())
            .unwrap_or_default()
    }

    /// Requests served so far (for tests that count retries).
    pub fn requests(&self) -> u64 {
        self.world().requests
    }
}

fn router(world: Shared) -> Router {
    let api = Router::new()
        .route("/accounts", get(accounts))
        .route("/accounts/{number}/balance/{date}", get(balance))
        .route("/accounts/{number}/transactions", get(transactions))
        .route("/events", get(events))
        .route("/events/{id}/attachments", post(attach))
        .route("/attachments/{id}/{kind}", get(attachment))
        .layer(middleware::from_fn_with_state(world.clone(), faults_and_auth))
        .with_state(world);
    Router::new().nest("/v2", api)
}

fn text(status: StatusCode, body: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain")], body.to_string()).into_response()
}

/// Authentication, then injected latency and faults, in front of every route.
async fn faults_and_auth(State(world): State<Shared>, request: Request<Body>, next: Next) -> Response {
    let key = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty());
    let is_write = request.method() != axum::http::Method::GET;
    let (latency, fault, retry_after, authorised) = {
        let mut w = world.lock().unwrap_or_else(|p| p.into_inner());
        let authorised = key.is_some_and(|k| w.valid_key.as_ref().is_none_or(|v| *v == k));
        w.requests += 1;
        let forced = w.forced.pop_front();
        (w.faults.latency, w.faults.draw(forced, is_write), w.faults.retry_after_secs, authorised)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if !authorised {
        return text(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    match fault {
        Some(Fault::ServerError) => text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
        Some(Fault::RateLimited) => {
            let mut r = text(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
            if let Ok(v) = retry_after.to_string().parse() {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
        Some(Fault::DropAfterCommit) if is_write => {
            let applied = next.run(request).await;
            // The change is made; the caller never learns it.
            let (parts, _) = applied.into_parts();
            crate::sandbox::dropped(parts)
        }
        _ => next.run(request).await,
    }
}

fn wire_attachment(a: &StoredAttachment) -> wire::Attachment {
    wire::Attachment {
        id: a.id,
        filename: a.filename.clone(),
        mime_type: a.mime_type.clone(),
        file_size: a.bytes.len() as u64,
        org_num: String::new(),
        uploaded_by_agent_id: Uuid::nil(),
        average_color: "#ffffff".into(),
    }
}

/// An amount as Folio's document writes it: unsigned (direction is elsewhere).
fn money(minor: i64) -> wire::Money {
    wire::Money { amount: format_minor(minor.abs()), currency: "NOK".into() }
}

/// Who paid whom: the account is the debtor of money out, the creditor of money in.
fn parties(e: &EventState) -> (wire::Party, wire::Party) {
    let ours = wire::Party { name: Some("Sandbox AS".into()), account_number: Some(e.account.clone()) };
    let theirs = wire::Party { name: e.counterparty.clone(), account_number: None };
    if e.amount_minor < 0 {
        (ours, theirs)
    } else {
        (theirs, ours)
    }
}

fn wire_transaction(w: &World, e: &EventState) -> wire::Transaction {
    let (debtor, creditor) = parties(e);
    wire::Transaction {
        id: e.transaction_id,
        event_id: e.id,
        description: e.description.clone(),
        booking_date: e.time.date_naive(),
        transaction_amount: money(e.amount_minor),
        currency_amount: money(e.amount_minor),
        creditor,
        debtor,
        attachments: e.attachments.iter().filter_map(|a| w.attachments.get(a)).map(wire_attachment).collect(),
        complete: !e.attachments.is_empty(),
    }
}

async fn accounts(State(world): State<Shared>) -> Json<wire::Accounts> {
    let w = world.lock().unwrap_or_else(|p| p.into_inner());
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let accounts = w
        .accounts
        .iter()
        .map(|a| {
            let moved: i64 = w.events.values().filter(|e| e.account == a.number).map(|e| e.amount_minor).sum();
            wire::Account {
                account_number: a.number.clone(),
                name: a.name.clone(),
                balance: format_minor(a.opening_minor + moved),
                kind: a.kind.clone(),
                balance_updated_at: now.clone(),
                matching_transactions_at: now.clone(),
                complete_transactions_at: now.clone(),
            }
        })
        .collect();
    Json(wire::Accounts { accounts })
}

async fn balance(State(world): State<Shared>, Path((number, date)): Path<(String, String)>) -> Response {
    let Ok(date) = date.parse::<NaiveDate>() else { return text(StatusCode::BAD_REQUEST, "invalid date") };
    let w = world.lock().unwrap_or_else(|p| p.into_inner());
    let Some(account) = w.accounts.iter().find(|a| a.number == number) else {
        return text(StatusCode::NOT_FOUND, "Account not found");
    };
    let until = |d: NaiveDate| -> i64 {
        account.opening_minor
            + w.events
                .values()
                .filter(|e| e.account == number && e.time.date_naive() <= d)
                .map(|e| e.amount_minor)
                .sum::<i64>()
    };
    let prev = date.pred_opt().unwrap_or(date);
    Json(wire::AccountBalance {
        incoming_balance: Some(format_minor(until(prev))),
        outgoing_balance: Some(format_minor(until(date))),
    })
    .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Range {
    start_date: Option<String>,
    end_date: Option<String>,
}

impl Range {
    fn parse(&self) -> Result<(NaiveDate, NaiveDate), &'static str> {
        let start = self
            .start_date
            .as_deref()
            .ok_or("startDate is required")?
            .parse::<NaiveDate>()
            .map_err(|_| "startDate must be YYYY-MM-DD")?;
        let end = match self.end_date.as_deref() {
            Some(d) => d.parse().map_err(|_| "endDate must be YYYY-MM-DD")?,
            None => Utc::now().date_naive(),
        };
        Ok((start, end))
    }
}

async fn transactions(State(world): State<Shared>, Path(number): Path<String>, Query(range): Query<Range>) -> Response {
    let (start, end) = match range.parse() {
        Ok(r) => r,
        Err(why) => return text(StatusCode::BAD_REQUEST, why),
    };
    let w = world.lock().unwrap_or_else(|p| p.into_inner());
    if !w.accounts.iter().any(|a| a.number == number) {
        return text(StatusCode::NOT_FOUND, "Account not found");
    }
    let booked = w
        .events
        .values()
        .filter(|e| e.account == number && (start..=end).contains(&e.time.date_naive()))
        .map(|e| wire_transaction(&w, e))
        .collect();
    Json(wire::TransactionResponse { transactions: wire::Booked { booked }, includes: None }).into_response()
}

async fn events(State(world): State<Shared>, Query(range): Query<Range>) -> Response {
    let (start, end) = match range.parse() {
        Ok(r) => r,
        Err(why) => return text(StatusCode::BAD_REQUEST, why),
    };
    let w = world.lock().unwrap_or_else(|p| p.into_inner());
    let events =
        w.events.values().filter(|e| (start..=end).contains(&e.time.date_naive())).map(|e| wire_event(&w, e)).collect();
    Json(wire::Events { events, includes: None }).into_response()
}

fn wire_event(w: &World, e: &EventState) -> wire::Event {
    // The event's transaction as `TransactionOnly` (which the document says
    // requires `attachments` and `complete` without defining them).
    let mut only = serde_json::to_value(wire_transaction(w, e)).unwrap_or_default();
    if let Some(o) = only.as_object_mut() {
        o.remove("eventId");
    }
    wire::Event {
        id: e.id,
        time: e.time,
        amount: money(e.amount_minor),
        transactions: vec![only],
        attachments: e.attachments.iter().filter_map(|a| w.attachments.get(a)).map(wire_attachment).collect(),
        complete: !e.attachments.is_empty(),
    }
}

const ACCEPTED_TYPES: [&str; 3] = ["application/pdf", "image/jpeg", "image/png"];

async fn attach(State(world): State<Shared>, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(event_id) = id.parse::<Uuid>() else { return text(StatusCode::NOT_FOUND, "Event not found") };
    let Some(mime) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string) else {
        return text(StatusCode::BAD_REQUEST, "Content-Type is required");
    };
    if !ACCEPTED_TYPES.contains(&mime.as_str()) {
        return text(StatusCode::BAD_REQUEST, "Unsupported Content-Type");
    }
    let filename = headers
        .get(header::CONTENT_DISPOSITION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("filename=").nth(1))
        .map(|f| f.trim_matches('"').to_string());
    let mut w = world.lock().unwrap_or_else(|p| p.into_inner());
    if !w.events.contains_key(&event_id) {
        return text(StatusCode::NOT_FOUND, "Event not found");
    }
    let attachment = StoredAttachment { id: Uuid::new_v4(), event_id, filename, mime_type: mime, bytes: body.to_vec() };
    let id = attachment.id;
    w.attachments.insert(id, attachment);
    if let Some(e) = w.events.get_mut(&event_id) {
        e.attachments.push(id);
    }
    Json(wire::Created { id }).into_response()
}

async fn attachment(State(world): State<Shared>, Path((id, kind)): Path<(String, String)>) -> Response {
    if kind != "original" {
        return text(StatusCode::NOT_FOUND, "Only the original is kept by the sandbox");
    }
    let w = world.lock().unwrap_or_else(|p| p.into_inner());
    match id.parse::<Uuid>().ok().and_then(|id| w.attachments.get(&id)) {
        Some(a) => ([(header::CONTENT_TYPE, a.mime_type.clone())], a.bytes.clone()).into_response(),
        None => text(StatusCode::NOT_FOUND, "Attachment not found"),
    }
}
