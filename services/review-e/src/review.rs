//! Decisions by people: approve or reject a proposal as a named reviewer.

use bookkeeper_core::domain::{ActionKind, Stage};
use bookkeeper_core::event::{actor, status};
use bookkeeper_core::lifecycle::{self, Verdict};
use bookkeeper_core::people::Directory;
use bookkeeper_core::subscription::safe_text;
use bookkeeper_core::{
    ActionState, Append, EventType, ExpectedVersion, NewEvent, Phase, RecordedEvent, Store, StoreError,
};
use serde_json::Value;

/// Why a review was refused. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// No proposal has this correlation id.
    #[error("no proposal `{0}`")]
    NotFound(String),
    /// The reviewer asked for this proposal themselves.
    #[error("you proposed this yourself; another reviewer must approve it")]
    OwnProposal,
    /// Somebody (or a policy) decided already.
    #[error("already {what} by {by}")]
    AlreadyDecided { what: String, by: String },
    /// It was carried out; a rejection cannot stop it any more.
    #[error("already executed; it can no longer be stopped")]
    AlreadyExecuted,
    /// The Accounting API is carrying it out (an attempt started, or failed and
    /// will be retried); a rejection could no longer undo what may have happened.
    #[error("being executed now; it can no longer be stopped (see its story for the outcome)")]
    ExecutionUnderWay,
    /// Another decision landed at the same moment.
    #[error("another decision on this proposal landed first; reload it")]
    Conflict,
    /// A reason is required.
    #[error("a reason is required")]
    MissingReason,
    /// This Discord press was used for a decision already.
    #[error("this press was already used for a decision")]
    Replayed,
    /// The action changed after this Discord press was made.
    #[error("the proposal changed after this button was pressed; look at it again and press again")]
    Stale,
    /// The log failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ReviewError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::VersionConflict { .. } => ReviewError::Conflict,
            other => ReviewError::Store(other),
        }
    }
}

/// Approves a proposal waiting for a decision (or, after a final failure of its
/// execution, approves a retry).
///
/// `reviewer` is a person's canonical id; `via` says how the decision was made
/// (a Discord press, proven or asserted), recorded with it.
pub async fn approve(
    store: &Store,
    people: &Directory,
    id: &str,
    reviewer: &str,
    reason: Option<&str>,
    via: Option<Value>,
) -> Result<i64, ReviewError> {
    let story = store.read_correlation(id).await?;
    let state = ActionState::fold(&story);
    let proposal = state.proposal().ok_or_else(|| ReviewError::NotFound(id.to_string()))?;
    if is_own(&state, people, reviewer) {
        return Err(ReviewError::OwnProposal);
    }
    refuse_replay(&story, via.as_ref())?;
    match state.phase() {
        Phase::AwaitingDecision | Phase::Escalated | Phase::FailedFinally | Phase::Skipped => {}
        Phase::Executed => return Err(ReviewError::AlreadyExecuted),
        Phase::Executing => return Err(ReviewError::ExecutionUnderWay),
        Phase::Approved | Phase::Rejected | Phase::Unproposed | Phase::AwaitingConfirmation => {
            return Err(already(&state))
        }
    }
    let reason = reason.filter(|r| !r.trim().is_empty()).unwrap_or("approved by a reviewer");
    let event = decision(proposal, Stage::Approved, status::APPROVED, reviewer, reason, via);
    append(store, id, ExpectedVersion::Decisions(lifecycle::decisions_version(&story)), event).await
}

/// Rejects a proposal: one waiting for a decision, or one approved but not yet
/// executed (the emergency stop; the Accounting API checks before executing).
pub async fn reject(
    store: &Store,
    id: &str,
    reviewer: &str,
    reason: &str,
    via: Option<Value>,
) -> Result<i64, ReviewError> {
    if reason.trim().is_empty() {
        return Err(ReviewError::MissingReason);
    }
    let story = store.read_correlation(id).await?;
    let state = ActionState::fold(&story);
    let proposal = state.proposal().ok_or_else(|| ReviewError::NotFound(id.to_string()))?;
    refuse_replay(&story, via.as_ref())?;
    match state.phase() {
        Phase::AwaitingDecision | Phase::Escalated | Phase::Approved | Phase::FailedFinally | Phase::Skipped => {}
        Phase::Executed => return Err(ReviewError::AlreadyExecuted),
        Phase::Executing => return Err(ReviewError::ExecutionUnderWay),
        Phase::Rejected | Phase::Unproposed | Phase::AwaitingConfirmation => return Err(already(&state)),
    }
    let event = decision(proposal, Stage::Rejected, status::REJECTED, reviewer, reason, via);
    // Against the whole lifecycle: an execution claimed meanwhile must win.
    append(store, id, ExpectedVersion::Lifecycle(lifecycle::version(&story)), event).await
}

/// Whether the reviewer asked for this action themselves, compared as people: a
/// proposal from before the directory may name them by a Discord id or a token's
/// name, and the directory maps every one of those to the same person.
fn is_own(state: &ActionState<'_>, people: &Directory, reviewer: &str) -> bool {
    // Every proposal counts: with rival proposals in old history, a requester
    // must not approve either.
    state.proposals.iter().any(|p| {
        let requested_by = p.payload.get("requested_by").and_then(|r| r.as_str()).unwrap_or_default();
        !requested_by.is_empty() && people.same_person(requested_by, &actor::user(reviewer))
    })
}

/// A Discord press decides once (its interaction id is recorded with the
/// decision), and only on the action as it was when pressed.
fn refuse_replay(story: &[RecordedEvent], via: Option<&Value>) -> Result<(), ReviewError> {
    if let Some(id) = via.and_then(|v| v.get("interaction_id")).and_then(|i| i.as_str()) {
        let used = story
            .iter()
            .any(|e| e.payload.get("via").and_then(|v| v.get("interaction_id")).and_then(|i| i.as_str()) == Some(id));
        if used {
            return Err(ReviewError::Replayed);
        }
    }
    if let Some(pressed_at) = via.and_then(|v| v.get("pressed_at")).and_then(|t| t.as_i64()) {
        let changed_since = story.iter().any(|e| {
            matches!(EventType::parse(&e.event_type), Some(EventType::Action(..)))
                && e.created_at.timestamp() > pressed_at
        });
        if changed_since {
            return Err(ReviewError::Stale);
        }
    }
    Ok(())
}

fn already(state: &ActionState<'_>) -> ReviewError {
    match &state.decision {
        Some(d) => {
            let what = if d.verdict == Verdict::Approved { "approved" } else { "rejected" };
            ReviewError::AlreadyDecided { what: what.into(), by: d.event.actor.clone() }
        }
        None => ReviewError::NotFound(String::new()),
    }
}

fn decision(
    proposal: &RecordedEvent,
    stage: Stage,
    status: &str,
    reviewer: &str,
    reason: &str,
    via: Option<Value>,
) -> NewEvent {
    let kind = ActionKind::parse(&proposal.event_type).map(|(k, _)| k).unwrap_or(ActionKind::ReceiptAttachment);
    let mut payload = serde_json::json!({
        "reason": safe_text(reason, MAX_REASON_CHARS),
        "reviewer": actor::user(reviewer),
        "proposal_event_id": proposal.event_id,
    });
    if let Some(via) = via {
        payload["via"] = via;
    }
    NewEvent::new(kind.event_type(stage), actor::user(reviewer), status, &proposal.correlation_id)
        .with_payload(payload)
        .caused_by(proposal.event_id)
}

/// Longest reason a person may give.
const MAX_REASON_CHARS: usize = 2000;

async fn append(store: &Store, id: &str, version: ExpectedVersion, event: NewEvent) -> Result<i64, ReviewError> {
    let appended = store.append(Append::one(event).expecting(id, version)).await?;
    Ok(appended.first().map(|a| a.position).unwrap_or_default())
}
