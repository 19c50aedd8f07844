//! Book-E's HTTP door: the conversation for other front ends, tests and
//! `bookkeeper chat`.
//!
//! | Route | What |
//! |---|---|
//! | `POST /chat` | `{"text": "...", "document": {"sha256": "...", "filename": "..."}?}` -> Book-E's answer |
//! | `POST /documents` | stores a receipt or invoice (raw bytes) through the Accounting API; returns its hash |
//! | `GET /chat/notifications?after=N` | what happened to your proposals since log position `N` |
//! | `GET /healthz`, `GET /readyz` | liveness; ready when the log answers |
//! | `GET /metrics` | Prometheus metrics |
//!
//! Callers authenticate with `Authorization: Bearer <token>`; each token maps to
//! one user id in the configuration, and that user is the requester of anything
//! proposed through it. Errors are the shared shape (`bookkeeper_http::ErrorBody`).

use std::sync::Arc;

use crate::accounting::{AccountingReads, ReadError};
use crate::conversation::{AttachedDocument, Conversation, Message, ReplyTo};
use crate::discord::DiscordDoor;
use crate::render;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bookkeeper_core::people::{Directory, Door, Right};
use bookkeeper_core::{ActionState, EventType, Store, TypeFilter};
use bookkeeper_http::wire::accounting::StoredDocument;
use bookkeeper_http::wire::book_e::{Notification, Notifications};
use bookkeeper_http::{auth, ApiError, ApiJson, Ops};
use serde::Deserialize;

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    /// The conversation core.
    pub conversation: Conversation,
    /// The log, for notifications and readiness.
    pub store: Store,
    /// Documents go through here.
    pub accounting: AccountingReads,
    /// Who may talk to Book-E (tokens of door `book-e`, the `propose` right).
    pub people: Arc<Directory>,
    /// The Discord door, for its interactions endpoint.
    pub discord: Option<DiscordDoor>,
}

/// Largest document accepted for upload (the Accounting API applies its own limit too).
const MAX_DOCUMENT_BYTES: usize = 20 * 1024 * 1024;

/// The router.
pub fn router(state: AppState) -> Router {
    let app = Router::new()
        .route("/chat", post(chat))
        .route("/chat/notifications", get(notifications))
        .route("/documents", post(upload).layer(DefaultBodyLimit::max(MAX_DOCUMENT_BYTES + 1024)))
        .route("/discord/interactions", post(interactions).layer(DefaultBodyLimit::max(256 * 1024)))
        .with_state(state.clone())
        .merge(Ops::new(state.store).router());
    bookkeeper_http::edge(app, "book-e")
}

/// The Book-E user presenting the bearer token.
fn user(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    auth::person(&state.people, Door::BookE, Right::Propose, headers, "this token is not a Book-E user")
        .map(|p| p.id.clone())
}

/// Discord's interactions endpoint: every request is verified before anything else.
async fn interactions(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(door) = state.discord.as_ref().filter(|d| d.serves_endpoint()) else {
        return ApiError::not_found("the Discord interactions endpoint is not configured (DISCORD_PUBLIC_KEY)")
            .into_response();
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let answer = door.on_endpoint(&header("x-signature-ed25519"), &header("x-signature-timestamp"), &body).await;
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(answer.body)).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChatRequest {
    text: String,
    #[serde(default)]
    document: Option<AttachedDocument>,
}

async fn chat(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<crate::conversation::Answer>, ApiError> {
    let user = user(&state, &headers)?;
    let ApiJson(request) = ApiJson::<ChatRequest>::parse(&body)?;
    if request.text.chars().count() > 4000 {
        return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "a message is at most 4000 characters"));
    }
    let message = Message {
        user,
        text: request.text,
        document: request.document,
        reply_to: ReplyTo { door: "http".into(), ..ReplyTo::default() },
    };
    Ok(Json(state.conversation.handle(message).await))
}

async fn upload(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<StoredDocument>), ApiError> {
    user(&state, &headers)?;
    match state.accounting.upload(body.to_vec()).await {
        Ok(doc) => Ok((StatusCode::CREATED, Json(doc))),
        Err(ReadError::Unavailable(m)) => Err(ApiError::unavailable(m)),
        Err(ReadError::NotFound(m) | ReadError::Refused(m)) => Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m)),
    }
}

#[derive(Debug, Deserialize)]
struct After {
    #[serde(default)]
    after: i64,
}

/// The outcome events of the caller's own proposals after a log position, in
/// words. Derived from the log on every call, so nothing is lost or repeated
/// whatever happens to Book-E: the caller keeps `next` and asks again.
async fn notifications(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<After>,
) -> Result<Json<Notifications>, ApiError> {
    let user = user(&state, &headers)?;
    let requester = bookkeeper_core::event::actor::user(&user);
    let mut types = EventType::action_types(&crate::discord::NEWS);
    types.push(EventType::SubscriptionEventParked.name());
    let filter = TypeFilter::of(types);
    let result = async {
        let cursor = state.store.cursor_at(q.after.max(0)).await?;
        let batch = state.store.read(cursor, &filter, 200).await?;
        let mut out = Vec::new();
        for e in &batch.events {
            let story = state.store.read_correlation(&e.correlation_id).await?;
            let action = ActionState::fold(&story);
            let mine = action.counts(e) && action.requested_by() == Some(requester.as_str());
            if let (true, Some(text)) = (mine, render::notification(e)) {
                out.push(Notification {
                    position: e.position,
                    correlation_id: e.correlation_id.clone(),
                    // The name of earlier releases, kept for their clients.
                    proposal: Some(e.correlation_id.clone()),
                    text,
                });
            }
        }
        let next = batch.events.last().map(|e| e.position).unwrap_or(batch.next.position).max(q.after);
        Ok::<_, bookkeeper_core::StoreError>(Notifications { notifications: out, next })
    }
    .await;
    Ok(Json(result?))
}
