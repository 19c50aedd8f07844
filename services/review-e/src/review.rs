//! Decisions by people: approve or reject a proposal as a named reviewer.

use bookkeeper_core::event::{actor, status};
use bookkeeper_core::{Append, ExpectedVersion, NewEvent, RecordedEvent, Store, StoreError};

use crate::decide::is_decision;
use crate::proposal::action_prefix;

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

/// Approves a proposal waiting for a decision.
pub async fn approve(store: &Store, id: &str, reviewer: &str, reason: Option<&str>) -> Result<i64, ReviewError> {
    let (story, proposal) = load(store, id).await?;
    let requested_by = proposal.payload.get("requested_by").and_then(|r| r.as_str()).unwrap_or_default();
    if requested_by == actor::user(reviewer) || requested_by == reviewer {
        return Err(ReviewError::OwnProposal);
    }
    if let Some(decided) = story.iter().rev().find(|e| is_decision(e)) {
        return Err(already(decided));
    }
    let reason = reason.filter(|r| !r.trim().is_empty()).unwrap_or("approved by a reviewer");
    let event = decision(&proposal, "Approved", status::APPROVED, reviewer, reason);
    append(store, id, story.len(), event).await
}

/// Rejects a proposal: one waiting for a decision, or one approved but not yet
/// executed (the emergency stop; the Accounting API checks before executing).
pub async fn reject(store: &Store, id: &str, reviewer: &str, reason: &str) -> Result<i64, ReviewError> {
    if reason.trim().is_empty() {
        return Err(ReviewError::MissingReason);
    }
    let (story, proposal) = load(store, id).await?;
    if story.iter().any(|e| e.event_type.ends_with("Executed")) {
        return Err(ReviewError::AlreadyExecuted);
    }
    if execution_under_way(&story) {
        return Err(ReviewError::ExecutionUnderWay);
    }
    if let Some(rejected) = story.iter().rev().find(|e| e.event_type.ends_with("Rejected")) {
        return Err(already(rejected));
    }
    let event = decision(&proposal, "Rejected", status::REJECTED, reviewer, reason);
    append(store, id, story.len(), event).await
}

/// Whether an execution attempt has started and not ended finally: the last
/// execution event is a start, or a failure that will be retried.
fn execution_under_way(story: &[RecordedEvent]) -> bool {
    let last = story
        .iter()
        .rev()
        .find(|e| e.event_type.ends_with("ExecutionStarted") || e.event_type.ends_with("ExecutionFailed"));
    match last {
        Some(e) if e.event_type.ends_with("ExecutionStarted") => true,
        Some(e) => !e.payload.get("final").and_then(|f| f.as_bool()).unwrap_or(false),
        None => false,
    }
}

async fn load(store: &Store, id: &str) -> Result<(Vec<RecordedEvent>, RecordedEvent), ReviewError> {
    let story = store.read_correlation(id).await?;
    let proposal = story
        .iter()
        .find(|e| e.event_type.ends_with("Proposed"))
        .cloned()
        .ok_or_else(|| ReviewError::NotFound(id.to_string()))?;
    Ok((story, proposal))
}

fn already(decided: &RecordedEvent) -> ReviewError {
    let what = if decided.event_type.ends_with("Approved") { "approved" } else { "rejected" };
    ReviewError::AlreadyDecided { what: what.into(), by: decided.actor.clone() }
}

fn decision(proposal: &RecordedEvent, suffix: &str, status: &str, reviewer: &str, reason: &str) -> NewEvent {
    NewEvent::new(
        format!("{}{suffix}", action_prefix(&proposal.event_type)),
        actor::user(reviewer),
        status,
        &proposal.correlation_id,
    )
    .with_payload(serde_json::json!({ "reason": reason, "reviewer": actor::user(reviewer) }))
    .caused_by(proposal.event_id)
}

async fn append(store: &Store, id: &str, version: usize, event: NewEvent) -> Result<i64, ReviewError> {
    let appended = store.append(Append::one(event).expect(id, ExpectedVersion::Exactly(version as i64))).await?;
    Ok(appended.first().map(|a| a.position).unwrap_or_default())
}
