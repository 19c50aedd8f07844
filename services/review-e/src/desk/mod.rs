//! The review desk: Review-E's web pages for reviewers and policy authors,
//! server-rendered, usable without JavaScript.
//!
//! | Route | Who | What |
//! |---|---|---|
//! | `GET /desk` | reviewers | the queue, with filters (kind, amount, requester) |
//! | `GET /desk/actions/{id}` | reviewers, authors | one action: document, facts, verdicts, story, decision forms |
//! | `POST /desk/actions/{id}/approve` | reviewers | approve (not one's own) |
//! | `POST /desk/actions/{id}/reject` | reviewers | reject, or stop an approval not yet executed |
//! | `GET /desk/actions/{id}/document[?download=1]` | reviewers, authors | the document: an image inline, anything else as a download |
//! | `GET /desk/actions/{id}/document/pages/{n}` | reviewers, authors | page `n` of a PDF, rendered to PNG |
//! | `GET /desk/policies` | reviewers, authors | the active set, shadow results, history |
//! | `POST /desk/policies/candidates` | authors | upload a candidate (multipart), see its backtest |
//! | `GET /desk/policies/candidates/{digest}` | authors | a candidate's backtest |
//! | `POST /desk/policies/candidates/{digest}/publish` | authors | publish it, in shadow or enforcing |
//! | `POST /desk/policies/{name}/promote` | authors | a shadow policy made enforcing |
//! | `POST /desk/policies/{name}/retire` | authors | retire a policy |
//! | `GET /desk/policies/{name}/shadow` | reviewers, authors | what a shadow policy would have decided differently |
//! | `GET /desk/audit?q=` | reviewers, authors | find an action by id, vendor or invoice number |
//! | `GET/POST /desk/sign-in`, `GET/POST /desk/sign-in/link`, `POST /desk/sign-out` | anyone | sessions |
//!
//! A session is a signed cookie ([`session`]) whose start and end are events in
//! the log; every form carries the session's CSRF token, and a request another
//! site made (by `Origin` or `Sec-Fetch-Site`) is refused before it is read.

pub mod document;
pub mod pages;
pub mod session;
pub mod view;

use std::path::PathBuf;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use bookkeeper_core::document::{sniff, DocumentType};
use bookkeeper_core::event::{actor, status};
use bookkeeper_core::people::{Door, Person, Right};
use bookkeeper_core::{Append, EventType, ExpectedVersion, NewEvent, StoreError};
use bookkeeper_http::trace::record_correlation_id;
use maud::Markup;
use serde::Deserialize;
use serde_json::json;

use self::document::Renderer;
use self::pages::{ActionPage, CandidatePage, Chrome, PoliciesPage, QueueFilter, Shown};
use self::session::{Session, SessionKey};
use self::view::ActionView;
use crate::http::AppState;
use crate::policy::{Mode, RecordedLimits};
use crate::publish::{self, PublishError};
use crate::review::{self, ReviewError};

/// The session cookie.
const COOKIE: &str = "desk_session";
/// The cookie that ties a sign-in form to the browser that loaded it.
const PRE_COOKIE: &str = "desk_pre";
/// The most proposals the queue lists.
const MAX_QUEUE: usize = 200;
/// The most waiting proposals the queue's filters look through.
const MAX_SCANNED: usize = 2000;

/// The desk's settings.
#[derive(Debug, Clone)]
pub struct DeskConfig {
    /// Signs sessions and links (`REVIEW_E_DESK_SESSION_KEY`); none: the desk is off.
    pub key: Option<SessionKey>,
    /// How long a session lasts (`REVIEW_E_DESK_SESSION_SECS`).
    pub session_lifetime: Duration,
    /// The desk's public address (`REVIEW_E_DESK_URL`).
    pub public_url: Option<String>,
    /// poppler's renderer (`REVIEW_E_DESK_PDFTOPPM`).
    pub pdftoppm: PathBuf,
}

impl Default for DeskConfig {
    fn default() -> Self {
        DeskConfig {
            key: None,
            session_lifetime: Duration::from_secs(8 * 3600),
            public_url: None,
            pdftoppm: PathBuf::from("pdftoppm"),
        }
    }
}

/// The running desk's shared parts.
#[derive(Debug)]
pub struct Desk {
    key: SessionKey,
    /// Without a configured key the desk answers that it is not set up: a key
    /// made per process would sign sessions other replicas refuse.
    enabled: bool,
    /// The origin of `REVIEW_E_DESK_URL` (`https://host`), which a change must come from.
    origin: Option<String>,
    lifetime: Duration,
    secure_cookies: bool,
    renderer: Renderer,
}

impl Desk {
    /// The desk of a configuration. Without a configured key it is off, and says so.
    pub fn new(config: &DeskConfig) -> Desk {
        let enabled = config.key.is_some();
        if !enabled {
            tracing::warn!("REVIEW_E_DESK_SESSION_KEY is not set: the review desk (/desk) is off");
        }
        // As browsers send it: no path, and no default port.
        let origin = config.public_url.as_deref().and_then(|u| {
            let (scheme, rest) = u.split_once("://")?;
            let scheme = scheme.to_ascii_lowercase();
            let host = rest.split('/').next()?.to_ascii_lowercase();
            let default = if scheme == "https" { ":443" } else { ":80" };
            Some(format!("{scheme}://{}", host.strip_suffix(default).unwrap_or(&host)))
        });
        Desk {
            key: config.key.clone().unwrap_or_else(SessionKey::ephemeral),
            enabled,
            origin,
            lifetime: config.session_lifetime,
            secure_cookies: config.public_url.as_deref().is_some_and(|u| u.starts_with("https://")),
            renderer: Renderer::new(config.pdftoppm.clone()),
        }
    }

    /// The key (for `up`, which prints a sign-in link).
    pub fn key(&self) -> &SessionKey {
        &self.key
    }
}

/// The desk's routes, merged into Review-E's router.
pub fn router(state: AppState, max_upload_bytes: usize) -> Router<AppState> {
    Router::new()
        .route("/desk", get(queue))
        .route("/desk/", get(queue))
        .route("/desk/sign-in", get(sign_in_page).post(sign_in))
        .route("/desk/sign-in/link", get(link_page).post(link_sign_in))
        .route("/desk/sign-out", post(sign_out))
        .route("/desk/actions/{id}", get(action_page))
        .route("/desk/actions/{id}/approve", post(approve))
        .route("/desk/actions/{id}/reject", post(reject))
        .route("/desk/actions/{id}/document", get(document_original))
        .route("/desk/actions/{id}/document/pages/{n}", get(document_page))
        .route("/desk/policies", get(policies))
        .route(
            "/desk/policies/candidates",
            post(upload_candidate).layer(DefaultBodyLimit::max(max_upload_bytes.saturating_add(64 * 1024))),
        )
        .route("/desk/policies/candidates/{digest}", get(candidate))
        .route("/desk/policies/candidates/{digest}/publish", post(publish_candidate))
        .route("/desk/policies/{name}/promote", post(promote))
        .route("/desk/policies/{name}/retire", post(retire))
        .route("/desk/policies/{name}/shadow", get(shadow))
        .route("/desk/audit", get(audit))
        .route("/desk/assets/desk.css", get(|| async { asset(pages::CSS, "text/css; charset=utf-8") }))
        .route("/desk/assets/desk.js", get(|| async { asset(pages::JS, "text/javascript; charset=utf-8") }))
        .layer(axum::middleware::from_fn_with_state(state, desk_is_on))
        .layer(axum::middleware::from_fn(page_headers))
}

/// A desk without its key answers every page with how to turn it on.
async fn desk_is_on(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if state.desk.enabled {
        return next.run(request).await;
    }
    let chrome = Chrome { person: None, csrf: "" };
    let message = "The review desk is off: set REVIEW_E_DESK_SESSION_KEY (32+ characters, the same on every Review-E replica) to turn it on.";
    with_status(StatusCode::SERVICE_UNAVAILABLE, page(pages::error(&chrome, "The desk is off", message)))
}

/// What every desk answer carries: nothing runs but the desk's own script, no
/// page can be framed, no address (a sign-in link) leaks in a `Referer`.
async fn page_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let defaults = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in defaults {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}

fn asset(text: &'static str, content_type: &'static str) -> Response {
    let mut response = Response::new(Body::from(text));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=300"));
    response
}

/// Why a request was not served.
enum Refused {
    /// Not signed in (or the session ended): to the sign-in page, then back.
    SignIn,
    /// A page saying what went wrong.
    Page(StatusCode, String),
}

impl From<StoreError> for Refused {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "the desk could not read the log");
        Refused::Page(StatusCode::SERVICE_UNAVAILABLE, "the log cannot be read just now; try again shortly".into())
    }
}

/// A signed-in person.
struct SignedIn {
    session: Session,
    person: Person,
    csrf: String,
}

impl SignedIn {
    fn chrome(&self) -> Chrome<'_> {
        Chrome { person: Some(&self.person.name), csrf: &self.csrf }
    }
}

fn page(markup: Markup) -> Response {
    let mut response = Response::new(Body::from(markup.into_string()));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    response
}

fn with_status(status: StatusCode, mut response: Response) -> Response {
    *response.status_mut() = status;
    response
}

fn see_other(location: &str) -> Response {
    let mut response = with_status(StatusCode::SEE_OTHER, Response::new(Body::empty()));
    if let Ok(v) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

/// The answer to a refusal. `path` is where to come back to after signing in.
fn refused(state: &AppState, headers: &HeaderMap, path: &str, r: Refused) -> Response {
    match r {
        Refused::SignIn => see_other(&format!("/desk/sign-in?next={}", encode(path))),
        Refused::Page(status, message) => {
            let signed = signed_in_quietly(state, headers);
            let csrf = signed.as_ref().map(|(s, _)| state.desk.key.csrf(&s.id)).unwrap_or_default();
            let name = signed.as_ref().map(|(_, p)| p.name.clone());
            let chrome = Chrome { person: name.as_deref(), csrf: &csrf };
            let title = status.canonical_reason().unwrap_or("Refused");
            with_status(status, page(pages::error(&chrome, title, &message)))
        }
    }
}

/// Percent-encodes a path for a query parameter.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Where to go after signing in: a desk page of this origin, nothing else (an
/// open redirect would make the desk's sign-in a phishing tool).
fn safe_next(next: &str) -> &str {
    let local = next.starts_with("/desk")
        && !next.starts_with("//")
        && !next.contains("\\")
        && !next.contains("://")
        && next.chars().all(|c| c.is_ascii_graphic());
    if local && !next.starts_with("/desk/sign-") {
        next
    } else {
        "/desk"
    }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The session a cookie carries, checked by signature only (for error pages).
fn signed_in_quietly(state: &AppState, headers: &HeaderMap) -> Option<(Session, Person)> {
    let session = state.desk.key.session(cookie(headers, COOKIE)?, now())?;
    let person = state.people.person(&session.person)?.clone();
    Some((session, person))
}

/// The signed-in person, if their session is signed, began in the log, has not
/// ended, and they still hold one of `rights`.
async fn signed_in(state: &AppState, headers: &HeaderMap, rights: &[Right]) -> Result<SignedIn, Refused> {
    let Some((session, person)) = signed_in_quietly(state, headers) else { return Err(Refused::SignIn) };
    let story = state.store.read_correlation(&session.correlation()).await?;
    // The session the log started, with the expiry the log gave it: a cookie
    // signed with the key cannot move a session's end or revive an expired one.
    let began = story.iter().any(|e| {
        EventType::parse(&e.event_type) == Some(EventType::DeskSessionStarted)
            && e.actor == person.actor()
            && e.payload.get("expires_at").and_then(|t| t.as_i64()) == Some(session.expires_at)
    });
    let ended = story.iter().any(|e| EventType::parse(&e.event_type) == Some(EventType::DeskSessionEnded));
    if !began || ended {
        return Err(Refused::SignIn);
    }
    if !rights.iter().any(|r| person.may(*r)) {
        return Err(Refused::Page(StatusCode::FORBIDDEN, format!("{} may not do this at the desk", person.name)));
    }
    let csrf = state.desk.key.csrf(&session.id);
    Ok(SignedIn { session, person, csrf })
}

/// A change must come from a page of this origin (the desk's public address when
/// it is configured, else the host asked for), carrying the session's token.
fn same_origin(state: &AppState, headers: &HeaderMap) -> Result<(), Refused> {
    let cross = || Refused::Page(StatusCode::FORBIDDEN, "this request came from another site and was refused".into());
    if headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) == Some("cross-site") {
        return Err(cross());
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default().to_ascii_lowercase();
        let same = match &state.desk.origin {
            Some(public) => origin == *public,
            None => {
                let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
                origin.split_once("://").is_some_and(|(_, h)| !h.is_empty() && h.eq_ignore_ascii_case(host))
            }
        };
        if !same {
            return Err(cross());
        }
    }
    Ok(())
}

fn check_csrf(state: &AppState, headers: &HeaderMap, signed: &SignedIn, presented: &str) -> Result<(), Refused> {
    same_origin(state, headers)?;
    if !state.desk.key.csrf_matches(&signed.session.id, presented) {
        return Err(Refused::Page(
            StatusCode::FORBIDDEN,
            "this form is out of date or did not come from the desk (its CSRF token is missing or wrong); reload the page and try again".into(),
        ));
    }
    Ok(())
}

fn form<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, Refused> {
    serde_urlencoded::from_bytes(body).map_err(|_| {
        Refused::Page(StatusCode::BAD_REQUEST, "the form could not be read; reload the page and try again".into())
    })
}

fn session_cookie(state: &AppState, value: &str, max_age: u64) -> HeaderValue {
    let secure = if state.desk.secure_cookies { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/desk; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("desk_session=; Path=/desk; Max-Age=0"))
}

/// A pre-session value for the sign-in form's CSRF token (login CSRF: another
/// site must not sign a browser in as someone else).
fn pre_session(state: &AppState, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    match cookie(headers, PRE_COOKIE).filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit())) {
        Some(v) => (v.to_string(), None),
        None => {
            let v = uuid::Uuid::new_v4().simple().to_string();
            let secure = if state.desk.secure_cookies { "; Secure" } else { "" };
            let set = HeaderValue::from_str(&format!(
                "{PRE_COOKIE}={v}; Path=/desk/sign-in; HttpOnly; SameSite=Strict{secure}"
            ))
            .ok();
            (v, set)
        }
    }
}

fn pre_csrf(state: &AppState, pre: &str) -> String {
    state.desk.key.csrf(&format!("pre:{pre}"))
}

fn check_pre_csrf(state: &AppState, headers: &HeaderMap, presented: &str) -> Result<(), Refused> {
    same_origin(state, headers)?;
    let ok =
        cookie(headers, PRE_COOKIE).is_some_and(|pre| state.desk.key.csrf_matches(&format!("pre:{pre}"), presented));
    if ok {
        Ok(())
    } else {
        Err(Refused::Page(StatusCode::FORBIDDEN, "the sign-in form is out of date; reload it and try again".into()))
    }
}

#[derive(Debug, Default, Deserialize)]
struct NextQuery {
    #[serde(default)]
    next: String,
}

async fn sign_in_page(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<NextQuery>) -> Response {
    if signed_in(&state, &headers, &[Right::Review, Right::Publish]).await.is_ok() {
        return see_other(safe_next(&q.next));
    }
    sign_in_form(&state, &headers, safe_next(&q.next), None, StatusCode::OK)
}

fn sign_in_form(
    state: &AppState,
    headers: &HeaderMap,
    next: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    with_status(status, with_pre_session(state, headers, |csrf| pages::sign_in(csrf, next, error)))
}

/// A sign-in page: its form's CSRF token tied to this browser's pre-session
/// cookie, which is set when the browser has none yet.
fn with_pre_session(state: &AppState, headers: &HeaderMap, render: impl FnOnce(&str) -> Markup) -> Response {
    let (pre, set) = pre_session(state, headers);
    let mut response = page(render(&pre_csrf(state, &pre)));
    if let Some(set) = set {
        response.headers_mut().append(header::SET_COOKIE, set);
    }
    response
}

#[derive(Debug, Deserialize)]
struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    next: String,
}

async fn sign_in(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let form: SignInForm = match form(&body) {
        Ok(f) => f,
        Err(r) => return refused(&state, &headers, "/desk", r),
    };
    if let Err(r) = check_pre_csrf(&state, &headers, &form.csrf) {
        return refused(&state, &headers, "/desk", r);
    }
    let next = safe_next(&form.next).to_string();
    let person = state
        .people
        .by_token(Door::Desk, form.token.trim())
        .filter(|p| p.may(Right::Review) || p.may(Right::Publish))
        .cloned();
    let Some(person) = person else {
        tracing::warn!("a desk sign-in with a token that opens no desk was refused");
        return sign_in_form(
            &state,
            &headers,
            &next,
            Some("This token does not open the desk."),
            StatusCode::FORBIDDEN,
        );
    };
    let id = uuid::Uuid::new_v4().simple().to_string();
    match start_session(&state, &person, &id, "token", ExpectedVersion::Lifecycle(0)).await {
        Ok(cookie) => signed_in_response(&state, &cookie, &next),
        Err(r) => refused(&state, &headers, "/desk", r),
    }
}

async fn start_session(
    state: &AppState,
    person: &Person,
    id: &str,
    via: &str,
    expected: ExpectedVersion,
) -> Result<String, Refused> {
    let lifetime = i64::try_from(state.desk.lifetime.as_secs()).unwrap_or(i64::MAX);
    let session = Session { id: id.to_string(), person: person.id.clone(), expires_at: now().saturating_add(lifetime) };
    let event =
        NewEvent::new(EventType::DeskSessionStarted.name(), person.actor(), status::SIGNED_IN, session.correlation())
            .with_payload(json!({"person": person.actor(), "via": via, "expires_at": session.expires_at}));
    match state.store.append(Append::one(event).expecting(session.correlation(), expected)).await {
        Ok(_) => {}
        Err(StoreError::VersionConflict { .. }) => return Err(used_link()),
        Err(e) => return Err(e.into()),
    }
    tracing::info!(person = %person.id, via, "signed in to the desk");
    Ok(state.desk.key.session_cookie(&session))
}

fn signed_in_response(state: &AppState, cookie: &str, next: &str) -> Response {
    let mut response = see_other(next);
    response.headers_mut().append(header::SET_COOKIE, session_cookie(state, cookie, state.desk.lifetime.as_secs()));
    response
}

#[derive(Debug, Default, Deserialize)]
struct LinkQuery {
    #[serde(default)]
    t: String,
}

fn used_link() -> Refused {
    Refused::Page(StatusCode::CONFLICT, "this sign-in link was used already; ask for a new one".into())
}

fn bad_link() -> Refused {
    Refused::Page(StatusCode::FORBIDDEN, "this sign-in link is not valid or has expired; ask for a new one".into())
}

async fn link_page(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<LinkQuery>) -> Response {
    let person = state.desk.key.link(&q.t, now()).and_then(|l| state.people.person(&l.person).cloned());
    let Some(person) = person else { return refused(&state, &headers, "/desk", bad_link()) };
    with_pre_session(&state, &headers, |csrf| pages::confirm_link(&person.name, &q.t, csrf))
}

#[derive(Debug, Deserialize)]
struct LinkForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    link: String,
}

async fn link_sign_in(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let outcome = async {
        let form: LinkForm = form(&body)?;
        check_pre_csrf(&state, &headers, &form.csrf)?;
        let link = state.desk.key.link(&form.link, now()).ok_or_else(bad_link)?;
        let person = state
            .people
            .person(&link.person)
            .filter(|p| p.may(Right::Review) || p.may(Right::Publish))
            .cloned()
            .ok_or_else(bad_link)?;
        // Only a link Review-E recorded as issued, for this person, and only once:
        // the start must be the second event of the link's story.
        let story = state.store.read_correlation(&session::correlation(&link.nonce)).await?;
        let issued = story.iter().any(|e| {
            EventType::parse(&e.event_type) == Some(EventType::DeskSignInLinkIssued)
                && e.payload.get("person").and_then(|p| p.as_str()) == Some(person.actor().as_str())
                && e.payload.get("expires_at").and_then(|t| t.as_i64()) == Some(link.expires_at)
        });
        if !issued {
            return Err(bad_link());
        }
        // Only the desk's own events count (another role may write beside them).
        if bookkeeper_core::lifecycle::version(&story) != 1 {
            return Err(used_link());
        }
        start_session(&state, &person, &link.nonce, "link", ExpectedVersion::Lifecycle(1)).await
    }
    .await;
    match outcome {
        Ok(cookie) => signed_in_response(&state, &cookie, "/desk"),
        Err(r) => refused(&state, &headers, "/desk", r),
    }
}

#[derive(Debug, Default, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    mode: String,
    // A candidate's limits, as the upload query names them; empty: the default.
    #[serde(default)]
    deadline_ms: String,
    #[serde(default)]
    memory_mib: String,
    #[serde(default)]
    component_mib: String,
    #[serde(default)]
    core_instances: String,
}

impl CsrfForm {
    /// The limits the form asks for: each field a whole number, or empty.
    fn limits(&self) -> Result<crate::policy::LimitsRequest, Refused> {
        fn field<T: std::str::FromStr>(name: &str, text: &str) -> Result<Option<T>, Refused> {
            let text = text.trim();
            if text.is_empty() {
                return Ok(None);
            }
            text.parse().map(Some).map_err(|_| {
                Refused::Page(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("{name} must be a whole number, or empty for the default"),
                )
            })
        }
        Ok(crate::policy::LimitsRequest {
            deadline_ms: field("deadline_ms", &self.deadline_ms)?,
            memory_mib: field("memory_mib", &self.memory_mib)?,
            component_mib: field("component_mib", &self.component_mib)?,
            core_instances: field("core_instances", &self.core_instances)?,
        })
    }
}

async fn sign_out(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let outcome = async {
        let signed = signed_in(&state, &headers, &[Right::Review, Right::Publish]).await?;
        let form: CsrfForm = form(&body)?;
        check_csrf(&state, &headers, &signed, &form.csrf)?;
        let event = NewEvent::new(
            EventType::DeskSessionEnded.name(),
            signed.person.actor(),
            status::SIGNED_OUT,
            signed.session.correlation(),
        )
        .with_payload(json!({"person": signed.person.actor()}));
        state.store.append(Append::one(event)).await?;
        tracing::info!(person = %signed.person.id, "signed out of the desk");
        Ok::<_, Refused>(())
    }
    .await;
    match outcome {
        Ok(()) | Err(Refused::SignIn) => {
            let mut response = see_other("/desk/sign-in");
            response.headers_mut().append(header::SET_COOKIE, session_cookie(&state, "", 0));
            response
        }
        Err(r) => refused(&state, &headers, "/desk", r),
    }
}

/// The queue after its filters, oldest first.
async fn queue_items(state: &AppState, filter: &QueueFilter) -> Result<Vec<ActionView>, Refused> {
    let amount = |text: &str, what: &str| -> Result<Option<i64>, Refused> {
        if text.trim().is_empty() {
            return Ok(None);
        }
        bookkeeper_core::money::parse_written(text)
            .map(Some)
            .map_err(|e| Refused::Page(StatusCode::BAD_REQUEST, format!("{what}: {e}")))
    };
    let (min, max) = (amount(&filter.min, "amount from")?, amount(&filter.max, "amount to")?);
    let kind = match filter.kind.as_str() {
        "" => None,
        "receipt" => Some(bookkeeper_core::domain::ActionKind::ReceiptAttachment),
        "invoice" => Some(bookkeeper_core::domain::ActionKind::InvoiceRegistration),
        _ => return Err(Refused::Page(StatusCode::BAD_REQUEST, "kind: choose receipts or invoices".into())),
    };
    let requester = filter.requester.trim().trim_start_matches("user:");
    let mut items = Vec::new();
    // Filtered before the list is cut, so a filter finds what waits further down.
    for pending in state.store.pending_reviews().await?.into_iter().take(MAX_SCANNED) {
        let Some(view) = ActionView::read(&state.store, &pending.correlation_id).await? else { continue };
        let minor = view.proposal.amount.as_ref().map(|m| m.minor);
        let keep = kind.is_none_or(|k| view.kind == Some(k))
            && min.is_none_or(|m| minor.is_some_and(|a| a >= m))
            && max.is_none_or(|m| minor.is_some_and(|a| a <= m))
            && (requester.is_empty() || state.people.same_person(&view.proposal.requested_by, &actor::user(requester)));
        if keep {
            items.push(view);
        }
    }
    Ok(items)
}

async fn queue(State(state): State<AppState>, headers: HeaderMap, Query(filter): Query<QueueFilter>) -> Response {
    let signed = match signed_in(&state, &headers, &[Right::Review, Right::Publish]).await {
        Ok(s) => s,
        Err(r) => return refused(&state, &headers, "/desk", r),
    };
    if !signed.person.may(Right::Review) {
        return see_other("/desk/policies");
    }
    match queue_items(&state, &filter).await {
        Ok(mut items) => {
            let more = items.len().saturating_sub(MAX_QUEUE);
            items.truncate(MAX_QUEUE);
            let note = (more > 0).then(|| format!("{more} more match; narrow the filters to see them"));
            page(pages::queue(&signed.chrome(), &items, &filter, chrono::Utc::now(), note.as_deref()))
        }
        Err(Refused::Page(status, message)) => {
            with_status(status, page(pages::queue(&signed.chrome(), &[], &filter, chrono::Utc::now(), Some(&message))))
        }
        Err(r) => refused(&state, &headers, "/desk", r),
    }
}

#[derive(Debug, Default, Deserialize)]
struct DoneQuery {
    #[serde(default)]
    done: String,
}

fn done_notice(done: &str) -> Option<&'static str> {
    Some(match done {
        "approved" => "Approved. The Accounting API carries it out next.",
        "rejected" => "Rejected: it will not be carried out.",
        "published" => "Published.",
        "promoted" => "Promoted: it now decides.",
        "retired" => "Retired.",
        _ => return None,
    })
}

/// A document id as a proposal may name it: 64 hex digits, or nothing.
fn document_sha(view: &ActionView) -> Option<String> {
    let sha = &view.document.as_ref()?.sha256;
    (sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit())).then(|| sha.to_ascii_lowercase())
}

async fn shown(state: &AppState, view: &ActionView) -> Result<Shown, Refused> {
    let Some(sha) = document_sha(view) else { return Ok(Shown::None) };
    let Some(blob) = state.store.get_blob(&sha).await? else {
        return Ok(Shown::Download("The document is not stored here.".into()));
    };
    Ok(match sniff(&blob.bytes) {
        Some(DocumentType::Png | DocumentType::Jpeg) => Shown::Image,
        Some(DocumentType::Pdf) => match state.desk.renderer.pages(&sha, &blob.bytes).await {
            Ok(pages) => Shown::Pages(pages.len()),
            Err(e) => Shown::Download(e.to_string()),
        },
        Some(DocumentType::Heic) => {
            Shown::Download("HEIC photos cannot be shown in a browser; download it to look at it.".into())
        }
        None => Shown::Download("This document is not a PDF, JPEG, PNG or HEIC file; it is not shown.".into()),
    })
}

async fn render_action(
    state: &AppState,
    signed: &SignedIn,
    id: &str,
    notice: Option<&str>,
    error: Option<&str>,
) -> Result<Response, Refused> {
    record_correlation_id(id);
    let view = ActionView::read(&state.store, id)
        .await?
        .ok_or_else(|| Refused::Page(StatusCode::NOT_FOUND, format!("no proposal `{id}`")))?;
    let pending: Vec<String> = state.store.pending_reviews().await?.into_iter().map(|p| p.correlation_id).collect();
    let at = pending.iter().position(|p| p == id);
    let (previous, next) = match at {
        Some(i) => (i.checked_sub(1).and_then(|j| pending.get(j)), pending.get(i + 1)),
        None => (None, pending.first()),
    };
    let shown = shown(state, &view).await?;
    let own = state.people.same_person(&view.proposal.requested_by, &signed.person.actor());
    let action_page = ActionPage {
        shown,
        previous: previous.map(String::as_str),
        next: next.map(String::as_str),
        may_review: signed.person.may(Right::Review),
        own,
        notice,
        error,
    };
    Ok(page(pages::action(&signed.chrome(), &view, &action_page)))
}

async fn action_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<DoneQuery>,
) -> Response {
    let path = format!("/desk/actions/{id}");
    let outcome = async {
        let signed = signed_in(&state, &headers, &[Right::Review, Right::Publish]).await?;
        render_action(&state, &signed, &id, done_notice(&q.done), None).await
    }
    .await;
    outcome.unwrap_or_else(|r| refused(&state, &headers, &path, r))
}

fn review_status(e: &ReviewError) -> StatusCode {
    match e {
        ReviewError::NotFound(_) => StatusCode::NOT_FOUND,
        ReviewError::OwnProposal => StatusCode::FORBIDDEN,
        ReviewError::MissingReason => StatusCode::UNPROCESSABLE_ENTITY,
        ReviewError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::CONFLICT,
    }
}

#[derive(Clone, Copy)]
enum Verb {
    Approve,
    Reject,
}

async fn decide(state: AppState, headers: HeaderMap, id: String, body: Bytes, verb: Verb) -> Response {
    let path = format!("/desk/actions/{id}");
    let outcome = async {
        let signed = signed_in(&state, &headers, &[Right::Review]).await?;
        let form: CsrfForm = form(&body)?;
        check_csrf(&state, &headers, &signed, &form.csrf)?;
        record_correlation_id(&id);
        let via = Some(json!({"door": Door::Desk.name(), "session": signed.session.id}));
        let who = &signed.person.id;
        let result = match verb {
            Verb::Approve => {
                let reason = Some(form.reason.as_str()).filter(|r| !r.trim().is_empty());
                review::approve(&state.store, &state.people, &id, who, reason.or(Some("approved at the desk")), via)
                    .await
                    .map(|_| "approved")
            }
            Verb::Reject => review::reject(&state.store, &id, who, &form.reason, via).await.map(|_| "rejected"),
        };
        match result {
            Ok(done) => {
                tracing::info!(correlation_id = %id, reviewer = %who, decision = done, "decided at the desk");
                Ok(see_other(&format!("/desk/actions/{}?done={done}", encode(&id))))
            }
            Err(e) => {
                tracing::info!(correlation_id = %id, reviewer = %who, refused = %e, "a desk decision was refused");
                let status = review_status(&e);
                let message = e.to_string();
                Ok(with_status(status, render_action(&state, &signed, &id, None, Some(&message)).await?))
            }
        }
    }
    .await;
    outcome.unwrap_or_else(|r| refused(&state, &headers, &path, r))
}

async fn approve(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> Response {
    decide(state, headers, id, body, Verb::Approve).await
}

async fn reject(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> Response {
    decide(state, headers, id, body, Verb::Reject).await
}

#[derive(Debug, Default, Deserialize)]
struct DownloadQuery {
    #[serde(default)]
    download: Option<String>,
}

async fn stored_document(state: &AppState, id: &str) -> Result<(String, Vec<u8>, ActionView), Refused> {
    let missing = || Refused::Page(StatusCode::NOT_FOUND, "this proposal has no stored document".into());
    let view = ActionView::read(&state.store, id).await?.ok_or_else(missing)?;
    let sha = document_sha(&view).ok_or_else(missing)?;
    let blob = state.store.get_blob(&sha).await?.ok_or_else(missing)?;
    Ok((sha, blob.bytes, view))
}

async fn document_original(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<DownloadQuery>,
) -> Response {
    let path = format!("/desk/actions/{id}");
    let outcome = async {
        signed_in(&state, &headers, &[Right::Review, Right::Publish]).await?;
        record_correlation_id(&id);
        let (sha, bytes, view) = stored_document(&state, &id).await?;
        // The type by the bytes, never the uploader's word; only an image is shown
        // inline, and under a policy that runs nothing even if it is opened alone.
        let kind = sniff(&bytes);
        let inline = q.download.is_none() && matches!(kind, Some(DocumentType::Png | DocumentType::Jpeg));
        let mut response = Response::new(Body::from(bytes));
        let h = response.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(kind.map(|k| k.mime()).unwrap_or("application/octet-stream")),
        );
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        let extension = kind.map(|k| k.extension()).unwrap_or(".bin");
        let disposition = if inline { "inline" } else { "attachment" };
        let name = view.document.as_ref().map(|d| safe_filename(&d.filename, &sha, extension)).unwrap_or_default();
        if let Ok(v) = HeaderValue::from_str(&format!("{disposition}; filename=\"{name}\"")) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
        Ok(response)
    }
    .await;
    outcome.unwrap_or_else(|r| refused(&state, &headers, &path, r))
}

/// A download's name: the proposal's file name reduced to safe characters, with
/// the extension its content has.
fn safe_filename(name: &str, sha: &str, extension: &str) -> String {
    let base: String = name
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(80)
        .collect();
    let base = base.trim_start_matches('.');
    let stem = base.rsplit_once('.').map(|(s, _)| s).unwrap_or(base);
    let stem = if stem.is_empty() { sha.get(..16).unwrap_or("document") } else { stem };
    format!("{stem}{extension}")
}

async fn document_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, n)): Path<(String, usize)>,
) -> Response {
    let path = format!("/desk/actions/{id}");
    let outcome = async {
        signed_in(&state, &headers, &[Right::Review, Right::Publish]).await?;
        record_correlation_id(&id);
        let (sha, bytes, _) = stored_document(&state, &id).await?;
        if sniff(&bytes) != Some(DocumentType::Pdf) {
            return Err(Refused::Page(StatusCode::NOT_FOUND, "the document is not a PDF".into()));
        }
        let pages = state
            .desk
            .renderer
            .pages(&sha, &bytes)
            .await
            .map_err(|e| Refused::Page(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
        let png = n
            .checked_sub(1)
            .and_then(|i| pages.get(i))
            .ok_or_else(|| Refused::Page(StatusCode::NOT_FOUND, format!("the document has no page {n} shown")))?;
        let mut response = Response::new(Body::from(png.clone()));
        let h = response.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok(response)
    }
    .await;
    outcome.unwrap_or_else(|r| refused(&state, &headers, &path, r))
}

fn publish_refused(e: PublishError) -> Refused {
    let status = match &e {
        PublishError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        PublishError::NotFound(_) => StatusCode::NOT_FOUND,
        PublishError::Conflict(_) => StatusCode::CONFLICT,
        PublishError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    Refused::Page(status, e.to_string())
}

async fn render_policies(
    state: &AppState,
    signed: &SignedIn,
    notice: Option<&str>,
    error: Option<&str>,
) -> Result<Response, Refused> {
    state.registry.catch_up(&state.store).await?;
    let active = crate::http::listed_policies(&state.registry.current());
    let mut shadow = Vec::new();
    for p in active.iter().filter(|p| p.mode == "shadow") {
        shadow.push((p.name.clone(), view::shadow_results(&state.store, &p.digest).await?));
    }
    let history = view::policy_history(&state.store).await?;
    let policies_page = PoliciesPage {
        active: &active,
        shadow: &shadow,
        history: &history,
        may_publish: signed.person.may(Right::Publish),
        notice,
        error,
    };
    Ok(page(pages::policies(&signed.chrome(), &policies_page)))
}

async fn policies(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<DoneQuery>) -> Response {
    let outcome = async {
        let signed = signed_in(&state, &headers, &[Right::Review, Right::Publish]).await?;
        render_policies(&state, &signed, done_notice(&q.done), None).await
    }
    .await;
    outcome.unwrap_or_else(|r| refused(&state, &headers, "/desk/policies", r))
}

/// Runs a change a publisher asked for; a refusal is shown on the policies page.
async fn policy_change(
    state: &AppState,
    headers: &HeaderMap,
    body: &Bytes,
    change: impl AsyncFnOnce(&SignedIn, CsrfForm) -> Result<&'static str, Refused>,
) -> Response {
    let outcome = async {
        let signed = signed_in(state, headers, &[Right::Publish]).await?;
        let form: CsrfForm = form(body)?;
        check_csrf(state, headers, &signed, &form.csrf)?;
        match change(&signed, form).await {
            Ok(done) => Ok(see_other(&format!("/desk/policies?done={done}"))),
            Err(Refused::Page(status, message)) => {
                Ok(with_status(status, render_policies(state, &signed, None, Some(&message)).await?))
            }
            Err(r) => Err(r),
        }
    }
    .await;
    outcome.unwrap_or_else(|r| refused(state, headers, "/desk/policies", r))
}

fn valid_digest(digest: &str) -> Result<String, Refused> {
    if digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(digest.to_ascii_lowercase())
    } else {
        Err(Refused::Page(StatusCode::NOT_FOUND, "a candidate is named by its SHA-256 (64 hexadecimal digits)".into()))
    }
}

async fn stored_component(state: &AppState, digest: &str) -> Result<Vec<u8>, Refused> {
    let digest = valid_digest(digest)?;
    state
        .store
        .get_blob(&digest)
        .await?
        .map(|b| b.bytes)
        .ok_or_else(|| Refused::Page(StatusCode::NOT_FOUND, format!("no component {digest} is stored")))
}

async fn upload_candidate(State(state): State<AppState>, headers: HeaderMap, mut multipart: Multipart) -> Response {
    let outcome = async {
        // Who is asking is known before a byte of the body is read.
        let signed = signed_in(&state, &headers, &[Right::Publish]).await?;
        same_origin(&state, &headers)?;
        let unreadable = |_| Refused::Page(StatusCode::BAD_REQUEST, "the upload could not be read".into());
        let (mut csrf, mut component) = (String::new(), None);
        while let Some(field) = multipart.next_field().await.map_err(unreadable)? {
            match field.name() {
                Some("csrf") => csrf = field.text().await.map_err(unreadable)?,
                Some("component") => component = Some(field.bytes().await.map_err(unreadable)?),
                _ => {}
            }
        }
        check_csrf(&state, &headers, &signed, &csrf)?;
        let bytes = component
            .filter(|c| !c.is_empty())
            .ok_or_else(|| Refused::Page(StatusCode::BAD_REQUEST, "choose a policy component to upload".into()))?;
        let engine = state.registry.engine().clone();
        let to_load = bytes.clone();
        let loaded = tokio::task::spawn_blocking(move || engine.load(&to_load)).await.map_err(|_| {
            Refused::Page(StatusCode::UNPROCESSABLE_ENTITY, "the component could not be checked".into())
        })?;
        match loaded {
            Ok(policy) => {
                state.store.put_blob(&bytes, "application/wasm").await?;
                tracing::info!(person = %signed.person.id, policy = %policy.metadata.name, digest = %policy.digest,
                    "a candidate policy was uploaded at the desk");
                Ok(see_other(&format!("/desk/policies/candidates/{}", policy.digest)))
            }
            Err(e) => {
                let message = format!("policy refused: {e}");
                Ok(with_status(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    render_policies(&state, &signed, None, Some(&message)).await?,
                ))
            }
        }
    }
    .await;
    outcome.unwrap_or_else(|r| refused(&state, &headers, "/desk/policies", r))
}

async fn candidate(State(state): State<AppState>, headers: HeaderMap, Path(digest): Path<String>) -> Response {
    let path = format!("/desk/policies/candidates/{digest}");
    let outcome = async {
        let signed = signed_in(&state, &headers, &[Right::Publish]).await?;
        let bytes = stored_component(&state, &digest).await?;
        let for_defaults = bytes.clone();
        let engine = state.registry.engine().clone();
        // Checked under the most any policy may have: a candidate is judged
        // for its rules here; its limits are granted when it is published.
        let loaded = tokio::task::spawn_blocking(move || {
            let maxima = *engine.maxima();
            engine.load_limited(&bytes, maxima, None).map(|l| l.policy)
        })
        .await
        .map_err(|_| Refused::Page(StatusCode::UNPROCESSABLE_ENTITY, "the component could not be checked".into()))?
        .map_err(|e| Refused::Page(StatusCode::UNPROCESSABLE_ENTITY, format!("policy refused: {e}")))?;
        // Whether it starts under the defaults: if not, the author must ask
        // for more when publishing, and the page says why.
        let defaults = *state.registry.engine().defaults();
        let engine = state.registry.engine().clone();
        let under_defaults = {
            let bytes = for_defaults;
            tokio::task::spawn_blocking(move || engine.load_limited(&bytes, defaults, None).map(drop))
                .await
                .map_err(|_| {
                    Refused::Page(StatusCode::UNPROCESSABLE_ENTITY, "the component could not be checked".into())
                })?
                .err()
                .map(|e| e.to_string())
        };
        let replay = crate::backtest::replay(&state.store, state.registry.engine(), &loaded, None, |_, _| {}).await?;
        let candidate_page = CandidatePage {
            name: &loaded.metadata.name,
            version: &loaded.metadata.version,
            digest: &loaded.digest,
            replay: &replay,
            defaults: RecordedLimits::from(defaults),
            maxima: RecordedLimits::from(*state.registry.engine().maxima()),
            under_defaults: under_defaults.as_deref(),
        };
        Ok(page(pages::candidate(&signed.chrome(), &candidate_page)))
    }
    .await;
    outcome.unwrap_or_else(|r| refused(&state, &headers, &path, r))
}

async fn publish_candidate(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(digest): Path<String>,
    body: Bytes,
) -> Response {
    policy_change(&state, &headers, &body, async |signed, form| {
        let mode = match form.mode.as_str() {
            "shadow" => Mode::Shadow,
            "enforcing" => Mode::Enforcing,
            _ => return Err(Refused::Page(StatusCode::BAD_REQUEST, "choose shadow or enforcing".into())),
        };
        let limits = form.limits()?;
        let bytes = stored_component(&state, &digest).await?;
        publish::publish(&state.store, &state.registry, bytes, mode, limits, &signed.person.actor(), "desk")
            .await
            .map_err(publish_refused)?;
        Ok("published")
    })
    .await
}

async fn promote(State(state): State<AppState>, headers: HeaderMap, Path(name): Path<String>, body: Bytes) -> Response {
    policy_change(&state, &headers, &body, async |signed, _| {
        let (digest, limits) = shadow_digest(&state, &name).await?;
        let bytes = stored_component(&state, &digest).await?;
        // Promoted asking for what it asked for in shadow.
        publish::publish(&state.store, &state.registry, bytes, Mode::Enforcing, limits, &signed.person.actor(), "desk")
            .await
            .map_err(publish_refused)?;
        Ok("promoted")
    })
    .await
}

async fn retire(State(state): State<AppState>, headers: HeaderMap, Path(name): Path<String>, body: Bytes) -> Response {
    policy_change(&state, &headers, &body, async |signed, form| {
        let reason = form.reason.trim();
        if reason.is_empty() {
            return Err(Refused::Page(StatusCode::UNPROCESSABLE_ENTITY, "say why the policy is retired".into()));
        }
        let reason = bookkeeper_core::subscription::safe_text(reason, 500);
        publish::retire(&state.store, &state.registry, &name, &signed.person.actor(), "desk", &reason)
            .await
            .map_err(publish_refused)?;
        Ok("retired")
    })
    .await
}

/// The digest of the policy called `name`, if it is in force in shadow.
/// The component of the policy `name` in shadow, and the limits its author asked for.
async fn shadow_digest(state: &AppState, name: &str) -> Result<(String, crate::policy::LimitsRequest), Refused> {
    state.registry.catch_up(&state.store).await?;
    state
        .registry
        .current()
        .provenance
        .get(name)
        .filter(|p| p.published.mode == Mode::Shadow)
        .map(|p| (p.published.digest.clone(), p.published.request()))
        .ok_or_else(|| Refused::Page(StatusCode::NOT_FOUND, format!("no policy `{name}` is in shadow")))
}

async fn shadow(State(state): State<AppState>, headers: HeaderMap, Path(name): Path<String>) -> Response {
    let path = format!("/desk/policies/{name}/shadow");
    let outcome = async {
        let signed = signed_in(&state, &headers, &[Right::Review, Right::Publish]).await?;
        let (digest, _) = shadow_digest(&state, &name).await?;
        let results = view::shadow_results(&state.store, &digest).await?;
        Ok(page(pages::shadow(&signed.chrome(), &name, &results)))
    }
    .await;
    outcome.unwrap_or_else(|r| refused(&state, &headers, &path, r))
}

#[derive(Debug, Default, Deserialize)]
struct AuditQuery {
    #[serde(default)]
    q: Option<String>,
}

async fn audit(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<AuditQuery>) -> Response {
    let outcome = async {
        let signed = signed_in(&state, &headers, &[Right::Review, Right::Publish]).await?;
        let query = q.q.unwrap_or_default();
        let query: String = query.chars().take(200).collect();
        let found = if query.trim().is_empty() { None } else { Some(view::find_actions(&state.store, &query).await?) };
        Ok(page(pages::audit(&signed.chrome(), &query, found.as_deref())))
    }
    .await;
    outcome.unwrap_or_else(|r| refused(&state, &headers, "/desk/audit", r))
}

/// Issues a one-time sign-in link for `person` (a canonical id), valid for 15
/// minutes, at the desk's address: signed with the desk's key and recorded in the
/// log as issued by `issuer` (`review-e`, or `user:<operator>`), which a link must
/// be to sign anyone in.
pub async fn issue_sign_in_link(
    store: &bookkeeper_core::Store,
    key: &SessionKey,
    desk_url: &str,
    person: &str,
    issuer: &str,
) -> Result<String, StoreError> {
    let (token, link) = key.sign_in_link(person, now());
    let event = NewEvent::new(
        EventType::DeskSignInLinkIssued.name(),
        issuer,
        status::ISSUED,
        session::correlation(&link.nonce),
    )
    .with_payload(json!({"person": actor::user(person), "issued_by": issuer, "expires_at": link.expires_at}));
    store
        .append(Append::one(event).expecting(session::correlation(&link.nonce), ExpectedVersion::Lifecycle(0)))
        .await?;
    tracing::info!(person, issuer, "a desk sign-in link was issued");
    Ok(format!("{}/sign-in/link?t={token}", desk_url.trim_end_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_candidates_limits_are_whole_numbers_or_the_default() {
        let read = |body: &str| match form::<CsrfForm>(&Bytes::from(body.to_string())) {
            Ok(form) => form.limits(),
            Err(_) => panic!("the form {body:?} could not be read"),
        };
        let Ok(asked) = read("csrf=x&mode=shadow&deadline_ms=40&memory_mib=&component_mib=+20+&core_instances=48")
        else {
            panic!("whole numbers and an empty field are refused")
        };
        assert_eq!(
            asked,
            crate::policy::LimitsRequest {
                deadline_ms: Some(40),
                memory_mib: None,
                component_mib: Some(20),
                core_instances: Some(48)
            }
        );
        assert!(read("csrf=x&mode=shadow").is_ok_and(|l| l.is_empty()), "no fields: the defaults");
        for bad in ["deadline_ms=forty", "memory_mib=-1", "core_instances=1e3", "component_mib=99999999999999999999999"]
        {
            match read(&format!("csrf=x&{bad}")) {
                Err(Refused::Page(status, message)) => {
                    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
                    assert!(message.contains("must be a whole number"), "{message}");
                }
                Ok(asked) => panic!("{bad}: accepted as {asked:?}"),
                Err(_) => panic!("{bad}: refused, but not as a page"),
            }
        }
    }

    #[test]
    fn after_sign_in_only_a_desk_page_of_this_origin() {
        assert_eq!(safe_next("/desk/actions/abc"), "/desk/actions/abc");
        for bad in
            ["https://evil.example/desk", "//evil.example", "/desk\\..", "/desk/sign-in", "/other", "", "/desk x"]
        {
            assert_eq!(safe_next(bad), "/desk", "{bad}");
        }
    }

    #[test]
    fn download_names_are_safe() {
        let sha = "ab".repeat(32);
        assert_eq!(safe_filename("F-1001.pdf", &sha, ".pdf"), "F-1001.pdf");
        assert_eq!(safe_filename("../../x\"; y.exe", &sha, ".png"), "xy.png");
        assert_eq!(safe_filename("", &sha, ".pdf"), format!("{}.pdf", &sha[..16]));
    }

    #[test]
    fn cookies_are_read_by_name() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; desk_session=v1.x.y; b=2"));
        assert_eq!(cookie(&h, COOKIE), Some("v1.x.y"));
        assert_eq!(cookie(&h, "desk"), None);
    }
}
