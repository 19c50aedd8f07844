//! Decisions by people: approve or reject a proposal as a named reviewer.

use bookkeeper_core::domain::{ActionKind, Stage};
use bookkeeper_core::event::{actor, status};
use bookkeeper_core::lifecycle::Verdict;
use bookkeeper_core::{ActionState, Append, ExpectedVersion, NewEvent, Phase, RecordedEvent, Store, StoreError};

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
pub async fn approve(store: &Store, id: &str, reviewer: &str, reason: Option<&str>) -> Result<i64, ReviewError> {
    let story = store.read_correlation(id).await?;
    let state = ActionState::fold(&story);
    let proposal = state.proposal().ok_or_else(|| ReviewError::NotFound(id.to_string()))?;
    if is_own(&state, reviewer) {
        return Err(ReviewError::OwnProposal);
    }
    match state.phase() {
        Phase::AwaitingDecision | Phase::Escalated | Phase::FailedFinally | Phase::Skipped => {}
        Phase::Executed => return Err(ReviewError::AlreadyExecuted),
        Phase::Executing => return Err(ReviewError::ExecutionUnderWay),
        Phase::Approved | Phase::Rejected | Phase::Unproposed => return Err(already(&state)),
    }
    let reason = reason.filter(|r| !r.trim().is_empty()).unwrap_or("approved by a reviewer");
    let event = decision(proposal, Stage::Approved, status::APPROVED, reviewer, reason);
    append(store, id, story.len(), event).await
}

/// Rejects a proposal: one waiting for a decision, or one approved but not yet
/// executed (the emergency stop; the Accounting API checks before executing).
pub async fn reject(store: &Store, id: &str, reviewer: &str, reason: &str) -> Result<i64, ReviewError> {
    if reason.trim().is_empty() {
        return Err(ReviewError::MissingReason);
    }
    let story = store.read_correlation(id).await?;
    let state = ActionState::fold(&story);
    let proposal = state.proposal().ok_or_else(|| ReviewError::NotFound(id.to_string()))?;
    match state.phase() {
        Phase::AwaitingDecision | Phase::Escalated | Phase::Approved | Phase::FailedFinally | Phase::Skipped => {}
        Phase::Executed => return Err(ReviewError::AlreadyExecuted),
        Phase::Executing => return Err(ReviewError::ExecutionUnderWay),
        Phase::Rejected | Phase::Unproposed => return Err(already(&state)),
    }
    let event = decision(proposal, Stage::Rejected, status::REJECTED, reviewer, reason);
    append(store, id, story.len(), event).await
}

/// Whether the reviewer asked for this action themselves.
fn is_own(state: &ActionState<'_>, reviewer: &str) -> bool {
    // Every proposal counts: with rival proposals in old history, a requester
    // must not approve either.
    state.proposals.iter().any(|p| {
        let requested_by = p.payload.get("requested_by").and_then(|r| r.as_str()).unwrap_or_default();
        requested_by == actor::user(reviewer) || requested_by == reviewer
    })
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

fn decision(proposal: &RecordedEvent, stage: Stage, status: &str, reviewer: &str, reason: &str) -> NewEvent {
    let kind = ActionKind::parse(&proposal.event_type).map(|(k, _)| k).unwrap_or(ActionKind::ReceiptAttachment);
    NewEvent::new(kind.event_type(stage), actor::user(reviewer), status, &proposal.correlation_id)
        .with_payload(serde_json::json!({
            "reason": reason,
            "reviewer": actor::user(reviewer),
            "proposal_event_id": proposal.event_id,
        }))
        .caused_by(proposal.event_id)
}

async fn append(store: &Store, id: &str, version: usize, event: NewEvent) -> Result<i64, ReviewError> {
    let appended = store.append(Append::one(event).expect(id, ExpectedVersion::Exactly(version as i64))).await?;
    Ok(appended.first().map(|a| a.position).unwrap_or_default())
}
