//! Judging proposals: the durable subscription to every `...Proposed` event type,
//! which also sees executions and rejections, to keep the facts read model
//! (`bookkeeper_core::store::facts`) in step with its checkpoint.

use std::sync::Arc;

use bookkeeper_core::domain::{ActionKind, Stage};
use bookkeeper_core::event::{actor, status};
use bookkeeper_core::lifecycle;
use bookkeeper_core::{
    ActionState, Append, EventType, ExpectedVersion, Handler, HandlerError, NewEvent, RecordedEvent, Store,
    Subscription, SubscriptionOptions, TypeFilter,
};
use bookkeeper_policy_sdk::{Facts, Outcome, Proposal};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use crate::policy::{Combined, Mode, Verdict};
use crate::proposal;
use crate::registry::{ActiveSet, Registry};

/// Name of Review-E's subscription.
pub const SUBSCRIPTION: &str = "review-e.proposals";
/// What [`SUBSCRIPTION`] reads: proposals to judge, and what the facts fold.
pub fn filter() -> TypeFilter {
    bookkeeper_core::store::facts::filter()
}

/// One member of the policy set a decision was made with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetMember {
    /// Policy name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Component digest.
    pub digest: String,
    /// Enforcing or shadow.
    pub mode: Mode,
}

/// What a decision records in its metadata, so it can be explained and re-run:
/// the policy set, every verdict, and the facts the policies were given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// The whole set in force (not only the policies that applied).
    pub policy_set: Vec<SetMember>,
    /// Each applicable policy's verdict.
    pub verdicts: Vec<Verdict>,
    /// The facts given to the policies.
    pub facts: Facts,
    /// The proposal event judged.
    pub proposal_event_id: uuid::Uuid,
}

/// Evaluates the set on a blocking thread (evaluation is synchronous and
/// bounded by the sandbox's deadline).
pub async fn evaluate(active: Arc<ActiveSet>, proposal: Proposal, facts: Facts) -> Result<Combined, HandlerError> {
    tokio::task::spawn_blocking(move || active.evaluate(&proposal, &facts))
        .await
        .map_err(|e| HandlerError::transient(format!("policy evaluation did not complete: {e}")))
}

/// The automatic decision event for a combined outcome. It names the proposal it
/// judged, in its payload and as its cause, so the Accounting API carries out
/// exactly that proposal.
pub fn decision_event(proposal_event: &RecordedEvent, combined: &Combined, record: &DecisionRecord) -> NewEvent {
    let kind = ActionKind::parse(&proposal_event.event_type).map(|(k, _)| k).unwrap_or(ActionKind::ReceiptAttachment);
    let (stage, status) = match combined.outcome {
        Outcome::Approve => (Stage::Approved, status::AUTO_APPROVED),
        Outcome::Reject => (Stage::Rejected, status::REJECTED),
        Outcome::Escalate => (Stage::Escalated, status::ESCALATED),
    };
    NewEvent::new(kind.event_type(stage), actor::SYSTEM_AUTO, status, &proposal_event.correlation_id)
        .with_payload(serde_json::json!({
            "reason": combined.reason,
            "outcome": combined.outcome,
            "proposal_event_id": proposal_event.event_id,
        }))
        .with_metadata(serde_json::to_value(record).unwrap_or_default())
        .derived_from(proposal_event.event_id, "review-e.decision")
}

/// An escalation to a person without evaluating any policy (rival proposals, an
/// event that cannot be judged): the reason says why.
pub fn escalation_event(proposal_event: &RecordedEvent, actor: &str, reason: &str, purpose: &str) -> Option<NewEvent> {
    let (kind, _) = ActionKind::parse(&proposal_event.event_type)?;
    Some(
        NewEvent::new(kind.event_type(Stage::Escalated), actor, status::ESCALATED, &proposal_event.correlation_id)
            .with_payload(serde_json::json!({
                "reason": reason,
                "outcome": Outcome::Escalate,
                "proposal_event_id": proposal_event.event_id,
            }))
            .derived_from(proposal_event.event_id, purpose),
    )
}

/// Members of an active set, for the record.
pub fn members(active: &ActiveSet) -> Vec<SetMember> {
    active
        .set
        .iter()
        .map(|(p, mode)| SetMember {
            name: p.metadata.name.clone(),
            version: p.metadata.version.clone(),
            digest: p.digest.clone(),
            mode,
        })
        .collect()
}

/// Review-E's deciding subscription, judging with `registry`'s set and keeping
/// the facts read model in step with its checkpoint (`options.keeps_facts` is
/// set whatever it was).
pub fn subscription(store: Store, registry: Registry, mut options: SubscriptionOptions) -> Subscription<Reviewer> {
    options.keeps_facts = true;
    Subscription::new(store.clone(), SUBSCRIPTION, filter(), Reviewer::new(store, registry)).with_options(options)
}

/// The handler of [`SUBSCRIPTION`].
pub struct Reviewer {
    store: Store,
    registry: Registry,
}

impl Reviewer {
    /// A reviewer judging with `registry`'s set.
    pub fn new(store: Store, registry: Registry) -> Reviewer {
        Reviewer { store, registry }
    }
}

impl Reviewer {
    /// What to do about a proposal without judging it, if anything (a second
    /// proposal, one a person decided, rival proposals); `None`: judge it.
    fn without_judging(event: &RecordedEvent, story: &[RecordedEvent]) -> Option<Append> {
        let state = ActionState::fold(story);
        if state.proposals.first().map(|p| p.event_id) != Some(event.event_id) {
            tracing::warn!("a second proposal in one correlation is not judged");
            return Some(Append::nothing());
        }
        if state.is_decided() {
            tracing::info!("already decided by a person; no automatic decision");
            return Some(Append::nothing());
        }
        if state.has_rival_proposals() {
            // History from before the store refused a second proposal: a person
            // must say which one, if any, is meant.
            let reason = format!(
                "{} proposals share this id; a person must decide which one, if any, to carry out",
                state.proposals.len()
            );
            let Some(escalate) = escalation_event(event, actor::SYSTEM_AUTO, &reason, "review-e.decision") else {
                return Some(Append::nothing());
            };
            return Some(
                Append::one(escalate)
                    .expecting(&event.correlation_id, ExpectedVersion::Decisions(lifecycle::decisions_version(story))),
            );
        }
        None
    }

    /// Judges a proposal on its facts and appends the decision with its record.
    async fn judge(
        &self,
        event: &RecordedEvent,
        story: &[RecordedEvent],
        proposal: Proposal,
        facts: Facts,
        timings: (std::time::Duration, std::time::Duration),
    ) -> Result<Append, HandlerError> {
        let (read, facts_took) = timings;
        let started = std::time::Instant::now();
        let active = self.registry.current();
        let combined = evaluate(active.clone(), proposal, facts.clone()).await?;
        let evaluated = started.elapsed();
        let outcome = combined.outcome.to_string();
        bookkeeper_core::metrics::observe(
            "bookkeeper_policy_evaluation_seconds",
            "Time to evaluate the whole policy set for one proposal.",
            &[],
            evaluated,
        );
        bookkeeper_core::metrics::count(
            "bookkeeper_decisions_total",
            "Automatic decisions, by outcome.",
            &[("outcome", &outcome)],
        );
        let record = DecisionRecord {
            policy_set: members(&active),
            verdicts: combined.verdicts.clone(),
            facts,
            proposal_event_id: event.event_id,
        };
        tracing::info!(outcome = %combined.outcome, reason = %combined.reason,
            story_us = read.as_micros() as u64, facts_us = facts_took.as_micros() as u64,
            evaluate_us = evaluated.as_micros() as u64, "decided");
        let decision = decision_event(event, &combined, &record);
        // A person deciding meanwhile moves the version: the commit then fails,
        // and on retry the check above sees their decision.
        Ok(Append::one(decision)
            .expecting(&event.correlation_id, ExpectedVersion::Decisions(lifecycle::decisions_version(story))))
    }

    /// A queue of events, judged together: the stories in one read, each
    /// proposal's facts as of just before it (the kept tables and the batch's
    /// earlier events), every decision committed with the checkpoint at once.
    async fn judge_batch(&self, events: &[RecordedEvent]) -> Result<Vec<Append>, HandlerError> {
        let started = std::time::Instant::now();
        let proposals: Vec<usize> = (0..events.len()).filter(|&i| is_proposal(&events[i])).collect();
        let ids: std::collections::BTreeSet<String> =
            proposals.iter().map(|&i| events[i].correlation_id.clone()).collect();
        let ids: Vec<String> = ids.into_iter().collect();
        let mut stories: std::collections::HashMap<String, Vec<RecordedEvent>> = Default::default();
        for chunk in ids.chunks(500) {
            for e in self.store.read_correlations(chunk).await? {
                stories.entry(e.correlation_id.clone()).or_default().push(e);
            }
        }
        let read = started.elapsed();
        let mut outputs: Vec<Option<Append>> = vec![None; events.len()];
        let mut queries = vec![None; events.len()];
        let mut judged = Vec::new();
        for &i in &proposals {
            let event = &events[i];
            let story = stories.get(&event.correlation_id).map(Vec::as_slice).unwrap_or_default();
            let span = tracing::info_span!("handle_event", subscription = SUBSCRIPTION,
                correlation_id = %event.correlation_id, event_type = %event.event_type, position = event.position);
            match span.in_scope(|| Self::without_judging(event, story)) {
                Some(out) => outputs[i] = Some(out),
                None => {
                    let proposal = proposal::from_event(event);
                    queries[i] = Some(proposal::query_for(event, &proposal));
                    judged.push((i, proposal, span));
                }
            }
        }
        let facts = self.store.proposal_facts_in_batch(SUBSCRIPTION, events, &queries).await?;
        let facts_took = started.elapsed() - read;
        for (i, proposal, span) in judged {
            let (Some(query), Some(Some(f))) = (&queries[i], facts.get(i)) else {
                return Err(HandlerError::transient("the facts of a queued proposal are missing"));
            };
            let facts = proposal::to_policy_facts(f.clone(), query);
            let story = stories.get(&events[i].correlation_id).map(Vec::as_slice).unwrap_or_default();
            let out = self.judge(&events[i], story, proposal, facts, (read, facts_took)).instrument(span).await?;
            outputs[i] = Some(out);
        }
        Ok(outputs.into_iter().map(Option::unwrap_or_default).collect())
    }
}

fn is_proposal(event: &RecordedEvent) -> bool {
    matches!(EventType::parse(&event.event_type), Some(EventType::Action(_, Stage::Proposed)))
}

impl Handler for Reviewer {
    async fn handle(&self, event: &RecordedEvent) -> Result<Append, HandlerError> {
        if !is_proposal(event) {
            // An execution or a rejection: nothing to judge; the commit folds it
            // into the facts.
            return Ok(Append::nothing());
        }
        let started = std::time::Instant::now();
        let story = self.store.read_correlation(&event.correlation_id).await?;
        if let Some(out) = Self::without_judging(event, &story) {
            return Ok(out);
        }
        let proposal = proposal::from_event(event);
        let read = started.elapsed();
        let facts = proposal::facts_for(&self.store, SUBSCRIPTION, event, &proposal).await?;
        let facts_took = started.elapsed() - read;
        self.judge(event, &story, proposal, facts, (read, facts_took)).await
    }

    async fn handle_batch(&self, events: &[RecordedEvent]) -> Option<Result<Vec<Append>, HandlerError>> {
        Some(self.judge_batch(events).await)
    }

    /// A proposal that can never be judged (its facts cannot be read, its decision
    /// cannot be stored) goes to a person, with the reason.
    fn on_parked(&self, event: &RecordedEvent, reason: &str) -> Vec<NewEvent> {
        let reason = format!("Review-E could not judge this proposal ({reason}); a person decides");
        escalation_event(event, bookkeeper_core::roles::Role::ReviewE.actor(), &reason, "review-e.parked")
            .into_iter()
            .collect()
    }
}
