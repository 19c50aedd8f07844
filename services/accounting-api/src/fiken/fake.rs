//! A faithful local Fiken (see `../shared/ref/fiken.md` §9): company-scoped
//! paths, integer øre, `201` + absolute `Location` with an empty body, bare-array
//! lists with the `Fiken-Api-*` paging headers, `415` for a non-JSON body, `400`
//! for unknown fields or invalid content (with a JSON `message`, our choice), and
//! `429` when a second request from one token arrives while one is in flight.
//!
//! Every request it receives and every answer it gives is checked against
//! Fiken's published document (`bookkeeper_contracts::fake`): a request Fiken's
//! document does not allow is refused, and [`FakeFiken::contract_violations`]
//! lists it. Attachments are read back from their `downloadUrl`, served outside
//! the API's path as Fiken serves files.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use bookkeeper_contracts::fake::{listen, Served};
use bookkeeper_contracts::Vendor;

use super::wire;
pub use crate::sandbox::{Fault, Faults};

/// The sandbox company's slug.
pub const SANDBOX_COMPANY: &str = "sandbox-as";

/// An attachment as the fake keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAttachment {
    /// The form's `filename`.
    pub filename: String,
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Attached as documentation of the payment (a receipt).
    pub to_payment: bool,
}

#[derive(Default)]
struct World {
    contacts: BTreeMap<i64, wire::Contact>,
    purchases: BTreeMap<i64, (wire::Purchase, Vec<StoredAttachment>)>,
    next_id: i64,
    in_flight: HashMap<String, u32>,
    faults: Faults,
    forced: VecDeque<Fault>,
    /// Only this token is accepted, when set (any non-empty one otherwise).
    valid_token: Option<String>,
    /// The sandbox company lacks Fiken's API module.
    without_api_module: bool,
}

type Shared = Arc<Mutex<World>>;

#[derive(Clone)]
struct AppState {
    world: Shared,
    /// `http://host:port`, without the API's path.
    base: String,
}

/// A running fake Fiken.
pub struct FakeFiken {
    world: Shared,
    served: Served,
}

impl FakeFiken {
    /// Starts the fake with the sandbox company on `addr` (port 0 picks one).
    pub async fn start(addr: SocketAddr) -> std::io::Result<FakeFiken> {
        let world: Shared = Arc::new(Mutex::new(World { next_id: 1000, ..World::default() }));
        let listening = listen(addr).await?;
        let state = AppState { world: world.clone(), base: format!("http://{}", listening.addr()) };
        Ok(FakeFiken { world, served: listening.serve(Vendor::Fiken, router(state)) })
    }

    /// Requests it received, or answers it gave, that Fiken's document does not allow.
    pub fn contract_violations(&self) -> Vec<String> {
        self.served.violations()
    }

    /// [`FakeFiken::contract_violations`], forgotten (a test that provokes one on purpose).
    pub fn take_contract_violations(&self) -> Vec<String> {
        self.served.take_violations()
    }

    /// Accepts only `token` from now on (any non-empty token otherwise).
    pub fn accept_only(&self, token: &str) {
        self.world().valid_token = Some(token.to_string());
    }

    /// The sandbox company loses (or regains) Fiken's API module.
    pub fn set_api_module(&self, on: bool) {
        self.world().without_api_module = !on;
    }

    /// The base URL, like `https://api.fiken.no/api/v2`.
    pub fn base_url(&self) -> String {
        format!("http://{}/api/v2", self.served.addr())
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the random faults.
    pub fn set_faults(&self, faults: Faults) {
        self.world().faults = faults;
    }

    /// Makes the next requests fail in this order.
    pub fn fail_next(&self, faults: impl IntoIterator<Item = Fault>) {
        self.world().forced.extend(faults);
    }

    /// Every purchase registered, as (id, identifier).
    pub fn purchases(&self) -> Vec<(i64, Option<String>)> {
        self.world().purchases.iter().map(|(id, (p, _))| (*id, p.identifier.clone())).collect()
    }

    /// Every contact, as (id, name).
    pub fn contacts(&self) -> Vec<(i64, String)> {
        self.world().contacts.iter().map(|(id, c)| (*id, c.name.clone())).collect()
    }

    /// The lines of a purchase, as (account, net øre, VAT øre, VAT type).
    pub fn lines_of(&self, purchase_id: i64) -> Vec<(String, i64, i64, String)> {
        self.world()
            .purchases
            .get(&purchase_id)
            .map(|(p, _)| {
                p.lines
                    .iter()
                    .map(|l| {
                        (
                            l.account.clone().unwrap_or_default(),
                            l.net_price.unwrap_or(0),
                            l.vat.unwrap_or(0),
                            l.vat_type.clone(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The attachments of a purchase.
    pub fn attachments_of(&self, purchase_id: i64) -> Vec<StoredAttachment> {
        self.world().purchases.get(&purchase_id).map(|(_, a)| a.clone()).unwrap_or_default()
    }
}

fn router(state: AppState) -> Router {
    let company = Router::new()
        .route("/bankAccounts", get(bank_accounts))
        .route("/contacts", get(contacts).post(create_contact))
        .route("/purchases", get(purchases).post(create_purchase))
        .route("/purchases/{id}", get(purchase))
        .route("/purchases/{id}/attachments", get(attachments).post(attach))
        .route("/inbox", get(inbox));
    let api = Router::new()
        .route("/companies", get(companies))
        .route("/companies/{slug}", get(one_company))
        .nest("/companies/{slug}", company)
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state.clone());
    // Files live outside the API, as a `downloadUrl` points (the token is still asked for).
    let files = Router::new()
        .route("/files/{purchase}/{n}/{name}", get(file))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state);
    Router::new().nest("/api/v2", api).merge(files)
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "message": message }))).into_response()
}

/// Auth, company scope, one-at-a-time per token, latency and faults.
async fn guard(State(state): State<AppState>, request: Request<Body>, next: Next) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    let Some(token) = token else { return error(StatusCode::UNAUTHORIZED, "Unauthorized") };
    let (valid_token, without_module) = {
        let w = state.world.lock().unwrap_or_else(|p| p.into_inner());
        (w.valid_token.clone(), w.without_api_module)
    };
    if valid_token.is_some_and(|t| t != token) {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let path = request.uri().path().to_string();
    // Nesting strips `/api/v2` before this layer sees the path; accept either form.
    let scoped = path.strip_prefix("/api/v2").unwrap_or(&path);
    if let Some(rest) = scoped.strip_prefix("/companies/") {
        let mut parts = rest.split('/');
        if parts.next() != Some(SANDBOX_COMPANY) {
            return error(StatusCode::NOT_FOUND, "Company not found");
        }
        // The company itself can be read; its data needs the API module.
        if without_module && parts.next().is_some_and(|p| !p.is_empty()) {
            return error(
                StatusCode::FORBIDDEN,
                "The company does not have the API module (Fiken: Innstillinger > API)",
            );
        }
    }
    let is_write = request.method() != axum::http::Method::GET;
    let (concurrent, latency, fault, retry_after) = {
        let mut w = state.world.lock().unwrap_or_else(|p| p.into_inner());
        let n = w.in_flight.entry(token.clone()).or_default();
        *n += 1;
        let concurrent = *n > 1;
        let forced = w.forced.pop_front();
        (concurrent, w.faults.latency, w.faults.draw(forced, is_write), w.faults.retry_after_secs)
    };
    // Released however the request ends: a caller that vanishes mid-request (its
    // process killed) must not leave the token "busy" for ever.
    let _in_flight = InFlight { world: state.world.clone(), token };
    let response = if concurrent {
        error(StatusCode::TOO_MANY_REQUESTS, "Only one concurrent request is allowed")
    } else {
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        match fault {
            Some(Fault::ServerError) => error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
            Some(Fault::RateLimited) => {
                let mut r = error(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
                if let Ok(v) = retry_after.to_string().parse() {
                    r.headers_mut().insert(header::RETRY_AFTER, v);
                }
                r
            }
            Some(Fault::DropAfterCommit) if is_write => {
                let (parts, _) = next.run(request).await.into_parts();
                crate::sandbox::dropped(parts)
            }
            _ => next.run(request).await,
        }
    };
    response
}

struct InFlight {
    world: Shared,
    token: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(n) = self.world.lock().unwrap_or_else(|p| p.into_inner()).in_flight.get_mut(&self.token) {
            *n = n.saturating_sub(1);
        }
    }
}

fn sandbox_company(state: &AppState) -> wire::Company {
    let without_module = state.world.lock().unwrap_or_else(|p| p.into_inner()).without_api_module;
    wire::Company {
        name: Some("Sandbox AS".into()),
        slug: Some(SANDBOX_COMPANY.into()),
        organization_number: Some("999999999".into()),
        has_api_access: Some(!without_module),
        test_company: Some(true),
    }
}

async fn companies(State(state): State<AppState>, Query(paging): Query<Paging>) -> Response {
    paged(vec![sandbox_company(&state)], &paging)
}

async fn one_company(State(state): State<AppState>) -> Json<wire::Company> {
    Json(sandbox_company(&state))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Paging {
    page: Option<usize>,
    page_size: Option<usize>,
    supplier: Option<bool>,
    #[serde(rename = "dateGe")]
    date_ge: Option<chrono::NaiveDate>,
    #[serde(rename = "dateLe")]
    date_le: Option<chrono::NaiveDate>,
}

/// A bare JSON array with the four paging headers.
fn paged<T: serde::Serialize>(items: Vec<T>, paging: &Paging) -> Response {
    let size = paging.page_size.unwrap_or(25).clamp(1, 100);
    let page = paging.page.unwrap_or(0);
    let count = items.len();
    let pages = count.div_ceil(size).max(1);
    let slice: Vec<T> = items.into_iter().skip(page * size).take(size).collect();
    let mut r = Json(slice).into_response();
    for (name, value) in [
        ("Fiken-Api-Page", page),
        ("Fiken-Api-Page-Size", size),
        ("Fiken-Api-Page-Count", pages),
        ("Fiken-Api-Result-Count", count),
    ] {
        if let Ok(v) = value.to_string().parse() {
            r.headers_mut().insert(name, v);
        }
    }
    r
}

async fn bank_accounts(Query(paging): Query<Paging>) -> Response {
    let accounts = vec![wire::BankAccount {
        bank_account_id: Some(1),
        name: Some("Driftskonto".into()),
        account_code: Some("1920:10001".into()),
        bank_account_number: Some("36060000000".into()),
        kind: Some("normal".into()),
        reconciled_balance: Some(250_000 * 100),
        reconciled_date: Some(chrono::Utc::now().date_naive().to_string()),
        inactive: Some(false),
    }];
    paged(accounts, &paging)
}

async fn contacts(State(state): State<AppState>, Query(paging): Query<Paging>) -> Response {
    let w = state.world.lock().unwrap_or_else(|p| p.into_inner());
    let list: Vec<wire::Contact> = w
        .contacts
        .values()
        .filter(|c| paging.supplier.is_none_or(|s| c.supplier.unwrap_or(false) == s))
        .cloned()
        .collect();
    paged(list, &paging)
}

/// A JSON body, or the answer Fiken gives instead: 415 without `application/json`,
/// 400 for what does not parse (unknown fields included).
fn json_body<T: serde::de::DeserializeOwned>(headers: &HeaderMap, body: &Bytes) -> Result<T, Box<Response>> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return Err(Box::new(error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "we accept application/json only")));
    }
    serde_json::from_slice(body).map_err(|e| Box::new(error(StatusCode::BAD_REQUEST, &format!("invalid body: {e}"))))
}

fn created(base: &str, path: String) -> Response {
    let mut r = StatusCode::CREATED.into_response();
    if let Ok(v) = format!("{base}/api/v2{path}").parse() {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

async fn create_contact(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let request: wire::ContactRequest = match json_body(&headers, &body) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    if request.name.trim().is_empty() || request.name.chars().count() > 200 {
        return error(StatusCode::BAD_REQUEST, "name is required (at most 200 characters)");
    }
    let mut w = state.world.lock().unwrap_or_else(|p| p.into_inner());
    w.next_id += 1;
    let id = w.next_id;
    w.contacts.insert(
        id,
        wire::Contact {
            contact_id: Some(id),
            name: request.name,
            organization_number: request.organization_number,
            supplier: Some(request.supplier),
            supplier_account_code: request.supplier.then(|| format!("2400:{}", 20000 + id)),
        },
    );
    created(&state.base, format!("/companies/{SANDBOX_COMPANY}/contacts/{id}"))
}

async fn purchases(State(state): State<AppState>, Query(paging): Query<Paging>) -> Response {
    let w = state.world.lock().unwrap_or_else(|p| p.into_inner());
    let in_range = |p: &wire::Purchase| {
        let date = chrono::NaiveDate::parse_from_str(&p.date, "%Y-%m-%d").ok();
        paging.date_ge.is_none_or(|from| date.is_some_and(|d| d >= from))
            && paging.date_le.is_none_or(|to| date.is_some_and(|d| d <= to))
    };
    paged(w.purchases.values().map(|(p, _)| p.clone()).filter(in_range).collect::<Vec<_>>(), &paging)
}

async fn create_purchase(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let request: wire::PurchaseRequest = match json_body(&headers, &body) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let invalid = |m: &str| error(StatusCode::BAD_REQUEST, m);
    if request.lines.is_empty() {
        return invalid("lines must not be empty");
    }
    if request.currency.len() != 3 || !request.currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return invalid("currency must match ^[A-Z]{3}$");
    }
    if chrono::NaiveDate::parse_from_str(&request.date, "%Y-%m-%d").is_err() {
        return invalid("date must be yyyy-MM-dd");
    }
    if request.lines.iter().any(|l| l.description.is_empty() || l.description.chars().count() > 200) {
        return invalid("every line needs a description of at most 200 characters");
    }
    let mut w = state.world.lock().unwrap_or_else(|p| p.into_inner());
    let supplier = match (request.kind.as_str(), request.supplier_id) {
        ("supplier", Some(id)) => match w.contacts.get(&id) {
            Some(c) if c.supplier == Some(true) => Some(c.clone()),
            _ => return invalid("supplierId does not name a supplier"),
        },
        ("supplier", None) => return invalid("a supplier purchase needs supplierId"),
        ("cash_purchase", _) => None,
        _ => return invalid("kind must be cash_purchase or supplier"),
    };
    w.next_id += 1;
    let id = w.next_id;
    let purchase = wire::Purchase {
        purchase_id: Some(id),
        date: request.date,
        kind: request.kind,
        paid: request.paid,
        lines: request.lines.into_iter().map(wire::OrderLineResult::from).collect(),
        currency: request.currency,
        identifier: request.identifier,
        due_date: request.due_date,
        supplier,
        purchase_attachments: vec![],
        deleted: Some(false),
    };
    w.purchases.insert(id, (purchase, vec![]));
    created(&state.base, format!("/companies/{SANDBOX_COMPANY}/purchases/{id}"))
}

async fn purchase(State(state): State<AppState>, Path((_, id)): Path<(String, i64)>) -> Response {
    let w = state.world.lock().unwrap_or_else(|p| p.into_inner());
    match w.purchases.get(&id) {
        Some((p, _)) => Json(p.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, "Purchase not found"),
    }
}

const ALLOWED_EXTENSIONS: [&str; 5] = [".png", ".jpeg", ".jpg", ".gif", ".pdf"];

async fn attach(State(state): State<AppState>, Path((_, id)): Path<(String, i64)>, mut form: Multipart) -> Response {
    let (mut file, mut filename, mut to_sale, mut to_payment) = (None, None, false, false);
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid multipart body: {e}")),
        };
        let name = field.name().unwrap_or_default().to_string();
        let Ok(data) = field.bytes().await else { return error(StatusCode::BAD_REQUEST, "invalid multipart field") };
        match name.as_str() {
            "file" => file = Some(data.to_vec()),
            "filename" => filename = Some(String::from_utf8_lossy(&data).into_owned()),
            "attachToSale" => to_sale = &data[..] == b"true",
            "attachToPayment" => to_payment = &data[..] == b"true",
            _ => {}
        }
    }
    let (Some(file), Some(filename)) = (file, filename) else {
        return error(StatusCode::BAD_REQUEST, "file and filename are required");
    };
    if !ALLOWED_EXTENSIONS.iter().any(|ext| filename.to_ascii_lowercase().ends_with(ext)) {
        return error(StatusCode::BAD_REQUEST, "filename must end with .png, .jpeg, .jpg, .gif or .pdf");
    }
    if !to_sale && !to_payment {
        return error(StatusCode::BAD_REQUEST, "At least one of attachToPayment and attachToSale must be true");
    }
    let mut w = state.world.lock().unwrap_or_else(|p| p.into_inner());
    let Some((purchase, attachments)) = w.purchases.get_mut(&id) else {
        return error(StatusCode::NOT_FOUND, "Purchase not found");
    };
    let kind = if to_sale { "invoice" } else { "unspecified" };
    attachments.push(StoredAttachment { filename: filename.clone(), bytes: file, to_payment });
    let n = attachments.len();
    let safe: String = filename.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')).collect();
    purchase.purchase_attachments.push(wire::Attachment {
        identifier: Some(format!("{id}-{n}")),
        download_url: Some(format!("{}/files/{id}/{n}/{safe}", state.base)),
        kind: Some(kind.into()),
        comment: None,
    });
    created(&state.base, format!("/companies/{SANDBOX_COMPANY}/purchases/{id}/attachments/{n}"))
}

async fn attachments(State(state): State<AppState>, Path((_, id)): Path<(String, i64)>) -> Response {
    let w = state.world.lock().unwrap_or_else(|p| p.into_inner());
    match w.purchases.get(&id) {
        Some((p, _)) => Json(p.purchase_attachments.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, "Purchase not found"),
    }
}

/// An attachment's bytes, at its `downloadUrl`.
async fn file(State(state): State<AppState>, Path((purchase, n, _)): Path<(i64, usize, String)>) -> Response {
    let w = state.world.lock().unwrap_or_else(|p| p.into_inner());
    match w.purchases.get(&purchase).and_then(|(_, a)| a.get(n.wrapping_sub(1))) {
        Some(a) => a.bytes.clone().into_response(),
        None => error(StatusCode::NOT_FOUND, "File not found"),
    }
}

/// The sandbox inbox: one scanned document, so the listing has something to show.
async fn inbox(Query(paging): Query<Paging>) -> Response {
    let documents = vec![wire::InboxDocument {
        document_id: Some(1),
        name: Some("Skannet kvittering".into()),
        description: Some("sandbox".into()),
        filename: Some("kvittering.pdf".into()),
        status: Some(false),
        created_at: Some("2026-01-02T09:30:00Z".into()),
    }];
    paged(documents, &paging)
}
