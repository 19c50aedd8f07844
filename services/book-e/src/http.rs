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
//! proposed through it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bookkeeper_core::people::{Directory, Door, Right};
use bookkeeper_core::{ActionState, EventType, Store, TypeFilter};
use serde::Deserialize;
use serde_json::json;

use crate::accounting::{AccountingReads, ReadError};
use crate::conversation::{AttachedDocument, Conversation, Message, ReplyTo};
use crate::discord::DiscordDoor;
use crate::render;

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
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/chat", post(chat))
        .route("/chat/notifications", get(notifications))
        .route("/documents", post(upload).layer(DefaultBodyLimit::max(MAX_DOCUMENT_BYTES + 1024)))
        .route("/discord/interactions", post(interactions).layer(DefaultBodyLimit::max(256 * 1024)))
        .with_state(state)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn user(state: &AppState, headers: &HeaderMap) -> Result<String, Box<Response>> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| Box::new(error(StatusCode::UNAUTHORIZED, "an `Authorization: Bearer` token is required")))?;
    state
        .people
        .by_token(Door::BookE, token.trim())
        .filter(|p| p.may(Right::Propose))
        .map(|p| p.id.clone())
        .ok_or_else(|| Box::new(error(StatusCode::FORBIDDEN, "this token is not a Book-E user")))
}

/// Discord's interactions endpoint: every request is verified before anything else.
async fn interactions(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(door) = state.discord.as_ref().filter(|d| d.serves_endpoint()) else {
        return error(
            StatusCode::NOT_FOUND,
            "the Discord interactions endpoint is not configured (DISCORD_PUBLIC_KEY)",
        );
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let answer = door.on_endpoint(&header("x-signature-ed25519"), &header("x-signature-timestamp"), &body).await;
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(answer.body)).into_response()
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "not ready: the log does not answer"),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChatRequest {
    text: String,
    #[serde(default)]
    document: Option<AttachedDocument>,
}

async fn chat(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let user = match user(&state, &headers) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let request: ChatRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(StatusCode::BAD_REQUEST, format!("expected {{\"text\": ..., \"document\"?: ...}}: {e}"))
        }
    };
    if request.text.chars().count() > 4000 {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "a message is at most 4000 characters");
    }
    let message = Message {
        user,
        text: request.text,
        document: request.document,
        reply_to: ReplyTo { door: "http".into(), ..ReplyTo::default() },
    };
    Json(state.conversation.handle(message).await).into_response()
}

async fn upload(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = user(&state, &headers) {
        return *r;
    }
    match state.accounting.upload(body.to_vec()).await {
        Ok(doc) => {
            (StatusCode::CREATED, Json(json!({"sha256": doc.sha256, "content_type": doc.content_type}))).into_response()
        }
        Err(ReadError::Unavailable(m)) => error(StatusCode::SERVICE_UNAVAILABLE, m),
        Err(ReadError::NotFound(m) | ReadError::Refused(m)) => error(StatusCode::UNPROCESSABLE_ENTITY, m),
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
async fn notifications(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<After>) -> Response {
    let user = match user(&state, &headers) {
        Ok(u) => u,
        Err(r) => return *r,
    };
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
                out.push(json!({"position": e.position, "proposal": e.correlation_id, "text": text}));
            }
        }
        let next = batch.events.last().map(|e| e.position).unwrap_or(batch.next.position).max(q.after);
        Ok::<_, bookkeeper_core::StoreError>(json!({"notifications": out, "next": next}))
    }
    .await;
    match result {
        Ok(body) => Json(body).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "notifications unavailable");
            error(StatusCode::SERVICE_UNAVAILABLE, "the log is unavailable; try again shortly")
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let text = bookkeeper_core::metrics::render(Some(&state.store)).await;
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
