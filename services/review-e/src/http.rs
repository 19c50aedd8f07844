//! Review-E's HTTP API: human review and policy management.
//!
//! | Route | Who | What |
//! |---|---|---|
//! | `GET /healthz` | anyone | liveness |
//! | `GET /readyz` | anyone | 200 when the log answers, else 503 |
//! | `GET /metrics` | anyone | Prometheus metrics |
//! | `GET /reviews/pending` | reviewers | proposals waiting for a decision |
//! | `GET /reviews/{id}` | reviewers | a proposal, its story, the facts and each policy's verdict |
//! | `POST /reviews/{id}/approve` | reviewers | approve (`{"reason": ...}` optional) |
//! | `POST /reviews/{id}/reject` | reviewers | reject (`{"reason": ...}` required) |
//! | `GET /policies` | reviewers, authors | the active set |
//! | `POST /policies[?mode=shadow][&memory_mib=..&core_instances=..&deadline_ms=..&component_mib=..]` | authors | upload a component (`application/wasm`) with the limits it asks for |
//! | `DELETE /policies/{name}` | authors | retire a policy |
//! | `POST /discord/press` | Discord (signed) | a review button press Book-E forwards verbatim |
//! | `POST /discord/asserted-press` | Book-E's press token | a press Book-E saw over the gateway (unproven) |
//!
//! Callers authenticate with `Authorization: Bearer <token>`: the people directory
//! maps the token's hash (door `review-e`) to a person, whose rights say what they
//! may do (`review`, `publish`). Discord presses carry Discord's signature instead.
//!
//! `POST /review/{id}/approve` and `/review/{id}/reject` (singular) are the
//! routes of earlier releases: they still work for this release, answer with a
//! `Deprecation` header and a `Link` to the new route, and are logged as a warning.
//! Errors are the shared shape (`bookkeeper_http::ErrorBody`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use bookkeeper_core::event::actor;
use bookkeeper_core::metrics::GaugeValue;
use bookkeeper_core::people::{Directory, Door, Right};
use bookkeeper_core::{ActionState, Store};
use bookkeeper_http::trace::record_correlation_id;
use bookkeeper_http::wire::review::{ListedPolicy, PolicyList};
use bookkeeper_http::{auth, ApiError, ApiJson, Ops};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{json, Map, Value};

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
    pub asserted_press_token: Option<SecretString>,
    /// The review desk's sessions and document renderer.
    pub desk: Arc<crate::desk::Desk>,
}

/// The API router.
pub fn router(state: AppState, max_upload_bytes: usize) -> Router {
    let (ready, unloaded) = (state.clone(), state.registry.clone());
    let ops = Ops::new(state.store.clone()).ready_when(move || readiness(ready.clone())).metrics_with(move || {
        vec![GaugeValue {
            name: "bookkeeper_policies_unloaded",
            help: "Published policies this replica cannot load (proposals they judge go to a person).",
            value: i64::try_from(unloaded.current().unloaded.len()).unwrap_or(i64::MAX),
        }]
    });
    let deprecated = Router::new()
        .route("/review/{id}/approve", post(approve))
        .route("/review/{id}/reject", post(reject))
        .layer(axum::middleware::from_fn(deprecated_route));
    let app = Router::new()
        .route("/reviews/pending", get(pending))
        .route("/reviews/{id}", get(show))
        .route("/reviews/{id}/approve", post(approve))
        .route("/reviews/{id}/reject", post(reject))
        .merge(deprecated)
        .route("/policies", get(list_policies).post(upload_policy).layer(DefaultBodyLimit::max(max_upload_bytes)))
        .route("/policies/{name}", delete(retire_policy))
        .route("/discord/press", post(signed_press))
        .route("/discord/asserted-press", post(asserted_press))
        .merge(crate::desk::router(state.clone(), max_upload_bytes))
        .with_state(state)
        .merge(ops.router());
    bookkeeper_http::edge(app, "review-e")
}

/// Marks an answer of a route kept from an earlier release, naming its replacement.
async fn deprecated_route(request: Request, next: Next) -> Response {
    let old = request.uri().path().to_string();
    let new = old.replacen("/review/", "/reviews/", 1);
    let mut response = next.run(request).await;
    // Said for callers who got in: anyone else could fill the log with it.
    if !matches!(response.status(), StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        tracing::warn!(route = %old, replacement = %new, "a deprecated route was called; it goes in the next release");
    }
    let headers = response.headers_mut();
    headers.insert("deprecation", HeaderValue::from_static("true"));
    if let Ok(link) = HeaderValue::from_str(&format!("<{new}>; rel=\"successor-version\"")) {
        headers.insert(header::LINK, link);
    }
    response
}

/// Ready when the log answers (checked first by [`Ops`]). A published policy this
/// replica cannot load is named (the replica still serves: it sends what that
/// policy would judge to a person, and people must still be able to decide
/// through it), and so is a facts read model still catching up.
async fn readiness(state: AppState) -> Result<Map<String, Value>, String> {
    let mut fields = Map::new();
    // Behind after an upgrade or a rebuild: decisions wait until the facts are folded.
    if let Ok(p) = state.store.facts_progress(crate::decide::SUBSCRIPTION).await {
        if !p.in_sync() {
            fields.insert(
                "facts".into(),
                format!(
                    "catching up the facts read model (folded to position {} of {}): proposals are judged once it is done",
                    p.folded.position, p.checkpoint.position
                )
                .into(),
            );
        }
    }
    let active = state.registry.current();
    if !active.unloaded.is_empty() {
        let names: Vec<String> = active.unloaded.values().map(|u| format!("{} ({})", u.name, u.why)).collect();
        fields.insert(
            "degraded".into(),
            format!("published but not loaded, so what they judge goes to a person: {}", names.join("; ")).into(),
        );
    }
    Ok(fields)
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
            ReviewError::Store(inner) => return ApiError::of_store(inner),
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
            PublishError::Store(inner) => return ApiError::of_store(inner),
        };
        ApiError::new(status, e.to_string())
    }
}

/// The person presenting the bearer token at this door, if they hold `right`.
fn person(state: &AppState, headers: &HeaderMap, right: Right, refused: &str) -> Result<String, ApiError> {
    auth::person(&state.people, Door::ReviewE, right, headers, refused).map(|p| p.id.clone())
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
    record_correlation_id(&id);
    let story = state.store.read_correlation(&id).await?;
    let action = ActionState::fold(&story);
    let proposal = action.proposal().ok_or_else(|| ApiError::not_found(format!("no proposal `{id}`")))?;
    let automatic = story
        .iter()
        .rev()
        .find(|e| e.actor == actor::SYSTEM_AUTO)
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

async fn approve(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let who = reviewer(&state, &headers)?;
    record_correlation_id(&id);
    let ApiJson(body) = ApiJson::<ReasonBody>::parse(&body)?;
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
    record_correlation_id(&id);
    let ApiJson(body) = ApiJson::<ReasonBody>::parse(&body)?;
    let position = review::reject(&state.store, &id, &who, body.reason.as_deref().unwrap_or(""), None).await?;
    Ok(Json(json!({"correlation_id": id, "decision": "rejected", "by": actor::user(&who), "position": position})))
}

async fn list_policies(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<PolicyList>, ApiError> {
    if reviewer(&state, &headers).is_err() {
        author(&state, &headers)?;
    }
    state.registry.catch_up(&state.store).await?;
    Ok(Json(PolicyList { policies: listed_policies(&state.registry.current()) }))
}

/// The active set as `GET /policies` and the desk list it: loaded policies, then
/// those published but not loaded here.
pub fn listed_policies(active: &crate::registry::ActiveSet) -> Vec<ListedPolicy> {
    let listed = |l: crate::policy::Limits| {
        let r = crate::policy::RecordedLimits::from(l);
        bookkeeper_http::wire::review::ListedLimits {
            deadline_ms: r.deadline_ms,
            memory_bytes: r.memory_bytes,
            component_bytes: r.component_bytes,
            core_instances: r.core_instances,
        }
    };
    let loaded: std::collections::BTreeMap<&str, &crate::policy::LoadedPolicy> =
        active.set.iter().map(|(p, _)| (p.metadata.name.as_str(), p)).collect();
    let mode = |m: Mode| match m {
        Mode::Enforcing => "enforcing".to_string(),
        Mode::Shadow => "shadow".to_string(),
    };
    active
        .provenance
        .values()
        .map(|p| ListedPolicy {
            name: p.published.name.clone(),
            version: p.published.version.clone(),
            digest: p.published.digest.clone(),
            mode: mode(p.published.mode),
            applies_to: p.published.applies_to.clone(),
            description: Some(p.published.description.clone()),
            source: Some(p.published.source.clone()),
            published_by: p.actor.clone(),
            published_at: Some(p.at),
            loaded: true,
            why: None,
            limits: loaded.get(p.published.name.as_str()).map(|l| listed(l.limits)),
            contract: loaded.get(p.published.name.as_str()).map(|l| l.contract.version().to_string()),
        })
        .chain(active.unloaded.values().map(|u| ListedPolicy {
            name: u.name.clone(),
            version: u.version.clone(),
            digest: u.digest.clone(),
            mode: mode(u.mode),
            applies_to: u.applies_to.clone(),
            description: None,
            source: None,
            published_by: u.actor.clone(),
            published_at: None,
            loaded: false,
            why: Some(u.why.clone()),
            limits: None,
            contract: None,
        }))
        .collect()
}

/// `?mode=` and the limits the author asks for (`deadline_ms`, `memory_mib`,
/// `component_mib`, `core_instances`, as in a `.limits.json` file). A
/// misspelt limit is refused rather than silently left at its default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    deadline_ms: Option<u64>,
    #[serde(default)]
    memory_mib: Option<u64>,
    #[serde(default)]
    component_mib: Option<u64>,
    #[serde(default)]
    core_instances: Option<u32>,
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
        Some(other) => return Err(ApiError::bad_request(format!("mode `{other}`: use enforcing or shadow"))),
    };
    let request = crate::policy::LimitsRequest {
        deadline_ms: query.deadline_ms,
        memory_mib: query.memory_mib,
        component_mib: query.component_mib,
        core_instances: query.core_instances,
    };
    let published =
        publish::publish(&state.store, &state.registry, body.to_vec(), mode, request, &actor::user(&who), "upload")
            .await?;
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
    record_correlation_id(&id);
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
        return Err(ApiError::not_found("Discord presses are not configured (DISCORD_PUBLIC_KEY)"));
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
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let allowed = match &state.asserted_press_token {
        Some(token) => {
            auth::check_service_token(Some(token), &headers)
                .map_err(|_| ApiError::forbidden("this token may not assert presses"))?;
            true
        }
        None => false,
    };
    let ApiJson(press) = ApiJson::<AssertedPress>::parse(&body)?;
    let press = asserted(&state.people, allowed, &press.custom_id, &press.interaction_id, &press.discord_user)?;
    decide_press(&state, press).await
}
