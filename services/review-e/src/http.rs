//! Review-E's HTTP API: human review and policy management.
//!
//! | Route | Who | What |
//! |---|---|---|
//! | `GET /healthz` | anyone | liveness |
//! | `GET /readyz` | anyone | 200 when the log answers, else 503 |
//! | `GET /metrics` | anyone | Prometheus metrics |
//! | `GET /reviews/pending` | reviewers | proposals waiting for a decision |
//! | `GET /reviews/{id}` | reviewers | a proposal, its story, the facts and each policy's verdict |
//! | `POST /review/{id}/approve` | reviewers | approve (`{"reason": ...}` optional) |
//! | `POST /review/{id}/reject` | reviewers | reject (`{"reason": ...}` required) |
//! | `GET /policies` | reviewers, authors | the active set |
//! | `POST /policies[?mode=shadow]` | authors | upload a component (`application/wasm`) |
//! | `DELETE /policies/{name}` | authors | retire a policy |
//! | `POST /discord/press` | Discord (signed) | a review button press Book-E forwards verbatim |
//! | `POST /discord/asserted-press` | Book-E's press token | a press Book-E saw over the gateway (unproven) |
//!
//! Callers authenticate with `Authorization: Bearer <token>`: the people directory
//! maps the token's hash (door `review-e`) to a person, whose rights say what they
//! may do (`review`, `publish`). Discord presses carry Discord's signature instead.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use bookkeeper_core::event::actor;
use bookkeeper_core::{ActionState, Store};
use serde::Deserialize;
use serde_json::{json, Value};

use bookkeeper_core::people::{token_matches, Directory, Door, Right};

use crate::decide::DecisionRecord;
use crate::policy::Mode;
use crate::press::{asserted, verify_signed, Press, PressConfig, PressError, Verb};
use crate::publish::{self, PublishError};
use crate::registry::Registry;
use crate::review::{self, ReviewError};

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    /// The log.
    pub store: Store,
    /// The policy set.
    pub registry: Registry,
    /// Who may do what.
    pub people: Arc<Directory>,
    /// How Discord presses are checked, when Discord is set up.
    pub presses: Option<Arc<PressConfig>>,
    /// Book-E's token for presses it saw over the gateway, if those are allowed.
    pub asserted_press_token: Option<Arc<str>>,
}

/// The API router.
pub fn router(state: AppState, max_upload_bytes: usize) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/reviews/pending", get(pending))
        .route("/reviews/{id}", get(show))
        .route("/review/{id}/approve", post(approve))
        .route("/review/{id}/reject", post(reject))
        .route("/policies", get(list_policies).post(upload_policy).layer(DefaultBodyLimit::max(max_upload_bytes)))
        .route("/policies/{name}", delete(retire_policy))
        .route("/discord/press", post(signed_press))
        .route("/discord/asserted-press", post(asserted_press))
        .with_state(state)
}

/// Prometheus metrics.
async fn metrics(State(state): State<AppState>) -> Response {
    let mut text = bookkeeper_core::metrics::render(Some(&state.store)).await;
    let active = state.registry.current();
    text.push_str("# HELP bookkeeper_policies_unloaded Published policies this replica cannot load (proposals they judge go to a person).\n");
    text.push_str("# TYPE bookkeeper_policies_unloaded gauge\n");
    text.push_str(&format!("bookkeeper_policies_unloaded {}\n", active.unloaded.len()));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Ready when the log answers. A published policy this replica cannot load is
/// named (the replica still serves: it sends what that policy would judge to a
/// person, and people must still be able to decide through it).
async fn readyz(State(state): State<AppState>) -> Response {
    if state.store.ping().await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "not ready: the log does not answer").into_response();
    }
    // Behind after an upgrade or a rebuild: decisions wait until the facts are folded.
    let facts = match state.store.facts_progress(crate::decide::SUBSCRIPTION).await {
        Ok(p) if !p.in_sync() => format!(
            "; catching up the facts read model (folded to position {} of {}): proposals are judged once it is done",
            p.folded.position, p.checkpoint.position
        ),
        _ => String::new(),
    };
    let active = state.registry.current();
    if active.unloaded.is_empty() {
        return (StatusCode::OK, format!("ready{facts}")).into_response();
    }
    let names: Vec<String> = active.unloaded.values().map(|u| format!("{} ({})", u.name, u.why)).collect();
    (
        StatusCode::OK,
        format!(
            "ready, degraded: published but not loaded, so what they judge goes to a person: {}{facts}",
            names.join("; ")
        ),
    )
        .into_response()
}

/// An error answer: a status and `{"code", "message"}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, message = %self.message, "request failed");
            let body = json!({"code": self.status.as_u16(), "message": "internal error; see the Review-E log"});
            return (self.status, Json(body)).into_response();
        }
        (self.status, Json(json!({"code": self.status.as_u16(), "message": self.message}))).into_response()
    }
}

impl From<bookkeeper_core::StoreError> for ApiError {
    fn from(e: bookkeeper_core::StoreError) -> Self {
        if e.is_retryable() {
            return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
        }
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl From<ReviewError> for ApiError {
    fn from(e: ReviewError) -> Self {
        let status = match &e {
            ReviewError::NotFound(_) => StatusCode::NOT_FOUND,
            ReviewError::OwnProposal => StatusCode::FORBIDDEN,
            ReviewError::AlreadyDecided { .. }
            | ReviewError::AlreadyExecuted
            | ReviewError::ExecutionUnderWay
            | ReviewError::Conflict
            | ReviewError::Replayed
            | ReviewError::Stale => StatusCode::CONFLICT,
            ReviewError::MissingReason => StatusCode::UNPROCESSABLE_ENTITY,
            ReviewError::Store(inner) if inner.is_retryable() => StatusCode::SERVICE_UNAVAILABLE,
            ReviewError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<PublishError> for ApiError {
    fn from(e: PublishError) -> Self {
        let status = match &e {
            PublishError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            PublishError::NotFound(_) => StatusCode::NOT_FOUND,
            PublishError::Conflict(_) => StatusCode::CONFLICT,
            PublishError::Store(inner) if inner.is_retryable() => StatusCode::SERVICE_UNAVAILABLE,
            PublishError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

/// The person presenting the bearer token at this door, if they hold `right`.
fn person(state: &AppState, headers: &HeaderMap, right: Right, refused: &str) -> Result<String, ApiError> {
    let token = bearer(headers).ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "a bearer token is required"))?;
    state
        .people
        .by_token(Door::ReviewE, token)
        .filter(|p| p.may(right))
        .map(|p| p.id.clone())
        .ok_or_else(|| ApiError::new(StatusCode::FORBIDDEN, refused.to_string()))
}

fn reviewer(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    person(state, headers, Right::Review, "this token is not a reviewer's")
}

fn author(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    person(state, headers, Right::Publish, "this token may not change policies")
}

async fn pending(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    reviewer(&state, &headers)?;
    let pending = state.store.pending_reviews().await?;
    Ok(Json(json!({ "pending": pending })))
}

async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    reviewer(&state, &headers)?;
    let story = state.store.read_correlation(&id).await?;
    let action = ActionState::fold(&story);
    let proposal =
        action.proposal().ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no proposal `{id}`")))?;
    let automatic = story
        .iter()
        .rev()
        .find(|e| e.actor == crate::decide::AUTO)
        .and_then(|e| serde_json::from_value::<DecisionRecord>(e.metadata.clone()).ok());
    let events: Vec<Value> = story
        .iter()
        .map(|e| {
            json!({"position": e.position, "type": e.event_type, "actor": e.actor, "status": e.status,
                   "created_at": e.created_at, "reason": e.reason()})
        })
        .collect();
    Ok(Json(json!({
        "correlation_id": id,
        "proposal": {"type": proposal.event_type, "proposed_by": proposal.actor, "payload": proposal.payload},
        "state": story.last().map(|e| e.status.clone()),
        "phase": action.phase(),
        "rival_proposals": action.proposals.len().saturating_sub(1),
        "events": events,
        "facts": automatic.as_ref().map(|r| &r.facts),
        "verdicts": automatic.as_ref().map(|r| &r.verdicts),
    })))
}

#[derive(Debug, Default, Deserialize)]
struct ReasonBody {
    #[serde(default)]
    reason: Option<String>,
}

fn reason_of(body: &Bytes) -> Result<ReasonBody, ApiError> {
    if body.is_empty() {
        return Ok(ReasonBody::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

async fn approve(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let who = reviewer(&state, &headers)?;
    let body = reason_of(&body)?;
    let position = review::approve(&state.store, &state.people, &id, &who, body.reason.as_deref(), None).await?;
    Ok(Json(json!({"correlation_id": id, "decision": "approved", "by": actor::user(&who), "position": position})))
}

async fn reject(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let who = reviewer(&state, &headers)?;
    let body = reason_of(&body)?;
    let position = review::reject(&state.store, &id, &who, body.reason.as_deref().unwrap_or(""), None).await?;
    Ok(Json(json!({"correlation_id": id, "decision": "rejected", "by": actor::user(&who), "position": position})))
}

async fn list_policies(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    if reviewer(&state, &headers).is_err() {
        author(&state, &headers)?;
    }
    state.registry.catch_up(&state.store).await?;
    let active = state.registry.current();
    let policies: Vec<Value> = active
        .provenance
        .values()
        .map(|p| {
            json!({"name": p.published.name, "version": p.published.version, "digest": p.published.digest,
                   "mode": p.published.mode, "applies_to": p.published.applies_to,
                   "description": p.published.description, "source": p.published.source,
                   "published_by": p.actor, "published_at": p.at, "loaded": true})
        })
        .chain(active.unloaded.values().map(|u| {
            json!({"name": u.name, "version": u.version, "digest": u.digest, "mode": u.mode,
                   "applies_to": u.applies_to, "published_by": u.actor, "loaded": false, "why": u.why})
        }))
        .collect();
    Ok(Json(json!({ "policies": policies })))
}

#[derive(Debug, Deserialize)]
struct UploadQuery {
    #[serde(default)]
    mode: Option<String>,
}

async fn upload_policy(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<UploadQuery>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let who = author(&state, &headers)?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if content_type != "application/wasm" {
        return Err(ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send the component as application/wasm"));
    }
    let mode = match query.mode.as_deref() {
        None | Some("enforcing") => Mode::Enforcing,
        Some("shadow") => Mode::Shadow,
        Some(other) => {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, format!("mode `{other}`: use enforcing or shadow")))
        }
    };
    let published =
        publish::publish(&state.store, &state.registry, body.to_vec(), mode, &actor::user(&who), "upload").await?;
    Ok((StatusCode::CREATED, Json(serde_json::to_value(&published).unwrap_or_default())))
}

async fn retire_policy(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let who = author(&state, &headers)?;
    publish::retire(&state.store, &state.registry, &name, &actor::user(&who), "upload", "retired over HTTP").await?;
    Ok(StatusCode::NO_CONTENT)
}

impl From<PressError> for ApiError {
    fn from(e: PressError) -> Self {
        let status = match &e {
            PressError::BadSignature | PressError::Stale => StatusCode::UNAUTHORIZED,
            PressError::NotAPress(_) | PressError::MessageMismatch(_) => StatusCode::BAD_REQUEST,
            PressError::NotAReviewer | PressError::UnknownPerson(_) | PressError::AssertedForbidden => {
                StatusCode::FORBIDDEN
            }
        };
        ApiError::new(status, e.to_string())
    }
}

/// Carries out a checked press as its reviewer.
async fn decide_press(state: &AppState, press: Press) -> Result<Json<Value>, ApiError> {
    let id = press.correlation_id.clone();
    let via = Some(press.via());
    let (position, decision) = match press.verb {
        Verb::Approve => {
            let reason = if press.proven { "approved on Discord" } else { "approved on Discord (asserted by Book-E)" };
            (review::approve(&state.store, &state.people, &id, &press.reviewer, Some(reason), via).await?, "approved")
        }
        Verb::Reject => {
            let reason = if press.proven { "rejected on Discord" } else { "rejected on Discord (asserted by Book-E)" };
            (review::reject(&state.store, &id, &press.reviewer, reason, via).await?, "rejected")
        }
    };
    tracing::info!(correlation_id = %id, reviewer = %press.reviewer, proven = press.proven, decision, "decided by a press");
    Ok(Json(json!({"correlation_id": id, "decision": decision, "by": actor::user(&press.reviewer),
                   "proven": press.proven, "position": position})))
}

/// A press Discord signed, forwarded verbatim by Book-E.
async fn signed_press(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Json<Value>, ApiError> {
    let Some(config) = state.presses.clone() else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "Discord presses are not configured (DISCORD_PUBLIC_KEY)"));
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let now = chrono::Utc::now().timestamp();
    let press = verify_signed(
        &config,
        &state.people,
        &header("x-signature-ed25519"),
        &header("x-signature-timestamp"),
        &body,
        now,
    )
    .inspect_err(|e| tracing::warn!(error = %e, "a Discord press was refused"))?;
    decide_press(&state, press).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssertedPress {
    custom_id: String,
    interaction_id: String,
    discord_user: String,
}

/// A press Book-E saw over the gateway: who pressed is Book-E's word only.
async fn asserted_press(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(press): Json<AssertedPress>,
) -> Result<Json<Value>, ApiError> {
    let presented = bearer(&headers).unwrap_or_default();
    let allowed = match &state.asserted_press_token {
        Some(token) => {
            if !token_matches(token, presented) {
                return Err(ApiError::new(StatusCode::FORBIDDEN, "this token may not assert presses"));
            }
            true
        }
        None => false,
    };
    let press = asserted(&state.people, allowed, &press.custom_id, &press.interaction_id, &press.discord_user)?;
    decide_press(&state, press).await
}
