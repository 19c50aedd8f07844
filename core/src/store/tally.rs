//! The counts `bookkeeper stats`, `/metrics` and the pending list show, kept
//! incrementally instead of computed over the whole log at every call (a
//! Prometheus scrape every 15 s was a full scan every 15 s).
//!
//! A [`Tally`] is complete up to a cursor. Bringing it up to date reads only the
//! events after that cursor: each is counted by type and status, and each action
//! it touches is judged again from its story, once as it stood at the old cursor
//! and once at the new one; the difference is applied. So the cost follows the
//! traffic since the last call, never the length of the history, and the result
//! is exactly what the views over the whole log say (tests hold the two equal).
//! It is saved beside the log (`read_models`, one per role) so a restart resumes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ParkedStatus, PendingReview};
use crate::domain::Stage;
use crate::event::{Cursor, RecordedEvent};
use crate::lifecycle::{judged_proposal, EventType};

/// The name it is saved under in `read_models`.
pub(crate) const READ_MODEL: &str = "store.tally";
/// The form it is saved in; a saved tally of another form is rebuilt.
const FORM: u32 = 1;

/// Counts over the log up to `at`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Tally {
    pub form: u32,
    /// Complete up to here.
    pub at: Cursor,
    /// Events per type, then status.
    pub by_type: BTreeMap<String, BTreeMap<String, i64>>,
    /// Actions whose latest decision naming their proposal is an approval. Which
    /// decision names which proposal is read as the lifecycle fold reads it
    /// (`judged_proposal`), the way every service decides.
    pub approved: i64,
    /// Of those, by a policy.
    pub auto_approved: i64,
    /// Actions whose latest such decision is a rejection.
    pub rejected: i64,
    /// Actions waiting for a decision, by correlation id.
    pub pending: BTreeMap<String, Waiting>,
    /// Parked events per subscription.
    pub parked: BTreeMap<String, Parked>,
}

/// A proposal waiting for a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Waiting {
    pub proposal_type: String,
    pub proposed_by: String,
    pub proposed_at: chrono::DateTime<chrono::Utc>,
    pub transaction_id: i64,
    pub position: i64,
    pub escalated: bool,
}

/// Parked events of one subscription.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Parked {
    pub count: i64,
    pub last_position: i64,
    pub last_correlation_id: String,
    pub last_reason: String,
}

/// Where one action stands for the counts.
#[derive(Debug, Clone, PartialEq, Default)]
struct Standing {
    waiting: Option<Waiting>,
    /// The latest decision naming its proposal: (approved, by a policy).
    verdict: Option<(bool, bool)>,
}

fn is_action_stage(event_type: &str, stages: &[Stage]) -> bool {
    matches!(EventType::parse(event_type), Some(EventType::Action(_, stage)) if stages.contains(&stage))
}

/// Whether an event can change an action's standing (and so its story must be
/// judged again).
pub(crate) fn touches_standing(event: &RecordedEvent) -> bool {
    is_action_stage(&event.event_type, &[Stage::Proposed, Stage::Approved, Stage::Rejected, Stage::Escalated])
}

/// An action's standing from its story (in read order, only events up to the
/// cursor the tally describes): the first proposal; waiting while no decision
/// names it (a decision anywhere in the story, as the views read it); the latest
/// naming decision's verdict.
fn standing(story: &[&RecordedEvent]) -> Standing {
    let Some(proposal) = story.iter().find(|e| is_action_stage(&e.event_type, &[Stage::Proposed])) else {
        return Standing::default();
    };
    let decisions: Vec<&&RecordedEvent> = story
        .iter()
        .filter(|e| is_action_stage(&e.event_type, &[Stage::Approved, Stage::Rejected]))
        .filter(|e| judged_proposal(e) == Some(proposal.event_id))
        .collect();
    // `auto` as the view counts it: the latest decision's status, whatever its type.
    let verdict = decisions
        .last()
        .map(|d| (is_action_stage(&d.event_type, &[Stage::Approved]), d.status == crate::event::status::AUTO_APPROVED));
    let waiting = decisions.is_empty().then(|| Waiting {
        proposal_type: proposal.event_type.clone(),
        proposed_by: proposal.actor.clone(),
        proposed_at: proposal.created_at,
        transaction_id: proposal.transaction_id,
        position: proposal.position,
        escalated: story.iter().any(|e| is_action_stage(&e.event_type, &[Stage::Escalated])),
    });
    Standing { waiting, verdict }
}

impl Tally {
    /// An empty tally, before the first event.
    pub(crate) fn new() -> Tally {
        Tally { form: FORM, ..Tally::default() }
    }

    /// Whether a saved tally is of this release's form.
    pub(crate) fn is_current(&self) -> bool {
        self.form == FORM
    }

    /// Counts `events` (read after `self.at`, in read order) by type and status,
    /// and their parked records.
    pub(crate) fn count(&mut self, events: &[RecordedEvent]) {
        for e in events {
            *self.by_type.entry(e.event_type.clone()).or_default().entry(e.status.clone()).or_default() += 1;
            if EventType::parse(&e.event_type) == Some(EventType::SubscriptionEventParked) {
                let subscription = e.payload.get("subscription").and_then(|s| s.as_str()).unwrap_or("?").to_string();
                let entry = self.parked.entry(subscription).or_default();
                entry.count += 1;
                entry.last_position = e.payload.get("position").and_then(|p| p.as_i64()).unwrap_or(e.position);
                entry.last_correlation_id = e.correlation_id.clone();
                entry.last_reason = e.reason().unwrap_or_default().to_string();
            }
        }
    }

    /// Moves an action's standing from its story up to `self.at` to its story up
    /// to `to` (`story`: every event of the action, in read order).
    pub(crate) fn restand(&mut self, correlation_id: &str, story: &[RecordedEvent], to: Cursor) {
        let before: Vec<&RecordedEvent> = story.iter().filter(|e| e.cursor() <= self.at).collect();
        let after: Vec<&RecordedEvent> = story.iter().filter(|e| e.cursor() <= to).collect();
        let (old, new) = (standing(&before), standing(&after));
        if old == new {
            return;
        }
        self.apply(&old, -1);
        self.apply(&new, 1);
        match new.waiting {
            Some(w) => {
                self.pending.insert(correlation_id.to_string(), w);
            }
            None => {
                self.pending.remove(correlation_id);
            }
        }
    }

    fn apply(&mut self, s: &Standing, sign: i64) {
        if let Some((approved, auto)) = s.verdict {
            if approved {
                self.approved += sign;
            } else {
                self.rejected += sign;
            }
            if auto {
                self.auto_approved += sign;
            }
        }
    }

    /// The pending list, oldest first.
    pub(crate) fn pending_reviews(&self) -> Vec<PendingReview> {
        let mut waiting: Vec<(&String, &Waiting)> = self.pending.iter().collect();
        waiting.sort_by_key(|(_, w)| w.position);
        waiting
            .into_iter()
            .map(|(correlation_id, w)| PendingReview {
                correlation_id: correlation_id.clone(),
                proposal_type: w.proposal_type.clone(),
                proposed_by: w.proposed_by.clone(),
                proposed_at: w.proposed_at,
                escalated: w.escalated,
            })
            .collect()
    }

    /// Parked events per subscription, for `Stats`.
    pub(crate) fn parked_status(&self) -> Vec<ParkedStatus> {
        self.parked
            .iter()
            .map(|(subscription, p)| ParkedStatus {
                subscription: subscription.clone(),
                count: p.count,
                last_position: p.last_position,
                last_correlation_id: p.last_correlation_id.clone(),
                last_reason: p.last_reason.clone(),
            })
            .collect()
    }

    /// Events per (type, status), ordered by type then status.
    pub(crate) fn by_type_and_status(&self) -> Vec<(String, String, i64)> {
        self.by_type
            .iter()
            .flat_map(|(t, statuses)| statuses.iter().map(move |(s, n)| (t.clone(), s.clone(), *n)))
            .collect()
    }
}
