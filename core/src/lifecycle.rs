//! The lifecycle of an action, once for every service.
//!
//! - [`EventType`]: the closed set of event types this release knows, with one
//!   parser from a type's name and one way back. Nothing decides by a name's
//!   suffix: `ComplianceCheckApproved` is not a decision, it is an unknown type.
//! - [`ActionState::fold`]: one pure fold from an action's story (its events in
//!   read order) to where it stands. Review-E, the Accounting API, Book-E, the
//!   Cost API, the CronJob and `audit` all decide from it.
//!
//! The fold is strict where trust is at stake: a decision counts only if it names
//! a proposal of this action (new decisions name it in their payload, older ones
//! in their metadata or causation id); an event out of order (an execution with no
//! approval in force, a rejection after the execution started) is kept in
//! [`ActionState::ignored`] with the reason, shown and otherwise ignored, as is an
//! event of a type this release does not know.

use std::fmt;

use serde::Serialize;
use uuid::Uuid;

use crate::domain::{ActionKind, Stage};
use crate::event::RecordedEvent;

/// Every event type this release knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// A stage of an action, e.g. `ReceiptAttachmentApproved`.
    Action(ActionKind, Stage),
    /// Review-E published a policy into the active set.
    PolicyPublished,
    /// Review-E retired a policy from the active set.
    PolicyRetired,
    /// The CronJob's daily compliance checks.
    ComplianceCheckCompleted,
    /// The Cost API's monthly totals.
    MonthlyCostReport,
    /// A subscription gave up on an event it can never handle and moved past it.
    SubscriptionEventParked,
    /// A one-time sign-in link to the review desk was issued (by Review-E, or by
    /// an operator with Review-E's database role): only an issued link signs in.
    DeskSignInLinkIssued,
    /// A person signed in to the review desk (a session began).
    DeskSessionStarted,
    /// A person signed out of the review desk (the session ends on every replica).
    DeskSessionEnded,
}

impl EventType {
    /// Every type of the closed set.
    pub fn all() -> Vec<EventType> {
        let mut all: Vec<EventType> = ActionKind::ALL
            .iter()
            .flat_map(|kind| Stage::ALL.iter().map(|stage| EventType::Action(*kind, *stage)))
            .collect();
        all.extend([
            EventType::PolicyPublished,
            EventType::PolicyRetired,
            EventType::ComplianceCheckCompleted,
            EventType::MonthlyCostReport,
            EventType::SubscriptionEventParked,
            EventType::DeskSignInLinkIssued,
            EventType::DeskSessionStarted,
            EventType::DeskSessionEnded,
        ]);
        all
    }

    /// The type named exactly `name`, if this release knows it.
    pub fn parse(name: &str) -> Option<EventType> {
        if let Some((kind, stage)) = ActionKind::parse(name) {
            return Some(EventType::Action(kind, stage));
        }
        Some(match name {
            "PolicyPublished" => EventType::PolicyPublished,
            "PolicyRetired" => EventType::PolicyRetired,
            "ComplianceCheckCompleted" => EventType::ComplianceCheckCompleted,
            "MonthlyCostReport" => EventType::MonthlyCostReport,
            "SubscriptionEventParked" => EventType::SubscriptionEventParked,
            "DeskSignInLinkIssued" => EventType::DeskSignInLinkIssued,
            "DeskSessionStarted" => EventType::DeskSessionStarted,
            "DeskSessionEnded" => EventType::DeskSessionEnded,
            _ => return None,
        })
    }

    /// The type's name in the log.
    pub fn name(self) -> String {
        match self {
            EventType::Action(kind, stage) => kind.event_type(stage),
            EventType::PolicyPublished => "PolicyPublished".into(),
            EventType::PolicyRetired => "PolicyRetired".into(),
            EventType::ComplianceCheckCompleted => "ComplianceCheckCompleted".into(),
            EventType::MonthlyCostReport => "MonthlyCostReport".into(),
            EventType::SubscriptionEventParked => "SubscriptionEventParked".into(),
            EventType::DeskSignInLinkIssued => "DeskSignInLinkIssued".into(),
            EventType::DeskSessionStarted => "DeskSessionStarted".into(),
            EventType::DeskSessionEnded => "DeskSessionEnded".into(),
        }
    }

    /// Whether events of this type count in a story's version.
    pub fn is_versioned(self) -> bool {
        // A desk session's story counts only the desk's own events: another role
        // appending beside them cannot block a sign-in link or a session.
        matches!(
            self,
            EventType::Action(..)
                | EventType::PolicyPublished
                | EventType::PolicyRetired
                | EventType::DeskSignInLinkIssued
                | EventType::DeskSessionStarted
                | EventType::DeskSessionEnded
        )
    }

    /// The names of every versioned type ([`version`]).
    pub fn versioned() -> Vec<String> {
        EventType::all().into_iter().filter(|t| t.is_versioned()).map(EventType::name).collect()
    }

    /// The names of every action's event at these stages, for a subscription's
    /// filter: exact names, never a pattern.
    pub fn action_types(stages: &[Stage]) -> Vec<String> {
        ActionKind::ALL.iter().flat_map(|kind| stages.iter().map(|stage| kind.event_type(*stage))).collect()
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// A story's version: how many of its events change what the story says (an
/// action's lifecycle, a policy's publications and retirements); what
/// [`crate::ExpectedVersion::Lifecycle`] counts. Other events under the same id (a
/// park record, a compliance check) do not move it.
pub fn version(story: &[RecordedEvent]) -> i64 {
    story.iter().filter(|e| EventType::parse(&e.event_type).is_some_and(EventType::is_versioned)).count() as i64
}

/// How many proposals and decisions an action's story holds: what
/// [`crate::ExpectedVersion::Decisions`] counts.
pub fn decisions_version(story: &[RecordedEvent]) -> i64 {
    story
        .iter()
        .filter(|e| {
            matches!(stage(&e.event_type), Some(Stage::Proposed | Stage::Approved | Stage::Rejected | Stage::Escalated))
        })
        .count() as i64
}

/// The stage of an action's event type, if it is one (exactly, never by suffix).
pub fn stage(event_type: &str) -> Option<Stage> {
    ActionKind::parse(event_type).map(|(_, stage)| stage)
}

/// The proposal a decision judged, as the decision names it: `proposal_event_id`
/// in its payload (every decision this release writes), else in its metadata
/// (automatic decisions of earlier releases), else its causation id (people's
/// decisions of earlier releases).
pub fn judged_proposal(decision: &RecordedEvent) -> Option<Uuid> {
    let named =
        |v: &serde_json::Value| v.get("proposal_event_id").and_then(|id| id.as_str()).and_then(|s| s.parse().ok());
    named(&decision.payload).or_else(|| named(&decision.metadata)).or(decision.causation_id)
}

/// Whether an actor names a person (`user:<id>`).
pub fn is_person(actor: &str) -> bool {
    // The same rule as the database's `bookkeeper_is_person`: `user:` and an id of
    // visible characters.
    actor.strip_prefix("user:").is_some_and(|id| {
        !id.is_empty()
            && id.chars().all(|c| c.is_ascii_graphic() || (!c.is_ascii() && !c.is_whitespace() && !c.is_control()))
    })
}

/// An approval or a rejection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Approved: to be executed.
    Approved,
    /// Rejected: never to be executed.
    Rejected,
}

/// The decision in force.
#[derive(Debug, Clone, PartialEq)]
pub struct Decided<'a> {
    /// Approved or rejected.
    pub verdict: Verdict,
    /// The decision event.
    pub event: &'a RecordedEvent,
    /// The proposal it judged (one of the action's proposals).
    pub proposal: &'a RecordedEvent,
    /// Whether a person decided (actor `user:<id>`), not a policy.
    pub by_person: bool,
    /// A rejection that stopped an approved action before it was executed.
    pub emergency_stop: bool,
}

/// An event the fold did not apply, with the reason: shown, never acted on.
#[derive(Debug, Clone, PartialEq)]
pub struct Ignored<'a> {
    /// The event.
    pub event: &'a RecordedEvent,
    /// Why it does not count.
    pub why: String,
}

/// Where an action stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// No proposal with this correlation id (only other events, or none).
    Unproposed,
    /// A document was read; the person who sent it has not confirmed it, so
    /// nothing is proposed yet.
    AwaitingConfirmation,
    /// Proposed; no decision yet.
    AwaitingDecision,
    /// A policy (or a parked event) sent it to a person, who has not decided yet.
    Escalated,
    /// Approved; not executed yet.
    Approved,
    /// An execution attempt is under way (claimed, or failed and to be retried).
    Executing,
    /// Carried out.
    Executed,
    /// Rejected (before or after an approval); never to be executed.
    Rejected,
    /// Execution failed for good; a person may approve a retry.
    FailedFinally,
    /// The Accounting API refused to carry out the approval in force, and said why.
    Skipped,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        f.write_str(&s)
    }
}

/// An action's state, folded from its story.
#[derive(Debug, Clone, Default)]
pub struct ActionState<'a> {
    /// The action's kind, from its first proposal.
    pub kind: Option<ActionKind>,
    /// What Book-E read from the document, when the action began as a reading
    /// (the first `...Read` event, before any proposal).
    pub reading: Option<&'a RecordedEvent>,
    /// Every proposal event, in read order. More than one only in history written
    /// before the store refused a second proposal for a correlation id.
    pub proposals: Vec<&'a RecordedEvent>,
    /// The escalation in force, if no decision came after it.
    pub escalation: Option<&'a RecordedEvent>,
    /// The decision in force.
    pub decision: Option<Decided<'a>>,
    /// Execution attempts claimed under the approval in force and before it.
    pub attempts: u32,
    /// Whether an attempt is under way (claimed, or failed and to be retried).
    pub under_way: bool,
    /// The execution, once carried out.
    pub executed: Option<&'a RecordedEvent>,
    /// The final failure of the approval in force.
    pub failed_finally: Option<&'a RecordedEvent>,
    /// The Accounting API's refusal of the approval in force.
    pub skipped: Option<&'a RecordedEvent>,
    /// Events that subscriptions parked in this action, with their reasons.
    pub parked: Vec<&'a RecordedEvent>,
    /// Events that do not count, with why.
    pub ignored: Vec<Ignored<'a>>,
}

impl<'a> ActionState<'a> {
    /// Folds an action's story, in read order.
    pub fn fold(story: &'a [RecordedEvent]) -> ActionState<'a> {
        let mut state = ActionState::default();
        for event in story {
            state.apply(event);
        }
        state
    }

    fn ignore(&mut self, event: &'a RecordedEvent, why: impl Into<String>) {
        self.ignored.push(Ignored { event, why: why.into() });
    }

    fn bound(&self, decision: &RecordedEvent) -> Option<&'a RecordedEvent> {
        let named = judged_proposal(decision)?;
        self.proposals.iter().copied().find(|p| p.event_id == named)
    }

    fn apply(&mut self, event: &'a RecordedEvent) {
        let Some(kind_stage) = EventType::parse(&event.event_type) else {
            return self.ignore(event, "a type this release does not know");
        };
        let (kind, stage) = match kind_stage {
            EventType::Action(kind, stage) => (kind, stage),
            EventType::SubscriptionEventParked => return self.parked.push(event),
            other => return self.ignore(event, format!("`{other}` is not part of an action's lifecycle")),
        };
        if !matches!(stage, Stage::Proposed | Stage::Read) && self.kind.is_some_and(|k| k != kind) {
            return self.ignore(event, "of another kind of action than its proposal");
        }
        match stage {
            Stage::Read => {
                if !self.proposals.is_empty() {
                    return self.ignore(event, "a reading after the proposal");
                }
                if self.reading.is_some() {
                    return self.ignore(event, "a second reading of the action");
                }
                if self.kind.is_none() {
                    self.kind = Some(kind);
                }
                self.reading = Some(event);
            }
            Stage::Proposed => {
                if self.reading.is_some() && self.kind != Some(kind) {
                    return self.ignore(event, "of another kind of action than its reading");
                }
                if self.kind.is_none() {
                    self.kind = Some(kind);
                }
                self.proposals.push(event);
            }
            Stage::Escalated => match self.bound(event) {
                None => self.ignore(event, "names no proposal of this action"),
                Some(_) if self.decision.is_some() => self.ignore(event, "escalated after a decision"),
                Some(_) => self.escalation = Some(event),
            },
            Stage::Approved => self.approve(event),
            Stage::Rejected => self.reject(event),
            Stage::ExecutionStarted => {
                if !matches!(self.phase(), Phase::Approved | Phase::Executing) {
                    return self.ignore(event, "an execution started without an approval in force");
                }
                self.attempts += 1;
                self.under_way = true;
            }
            Stage::ExecutionFailed => {
                let is_final = event.payload.get("final").and_then(|f| f.as_bool()).unwrap_or(false);
                // A final failure may come without a claim: the Accounting API
                // refuses some approvals before sending anything (a bad payload, a
                // missing document, a parked approval).
                let before_any_attempt = is_final && self.phase() == Phase::Approved;
                if !self.under_way && !before_any_attempt {
                    return self.ignore(event, "a failure of no attempt under way");
                }
                if is_final {
                    self.under_way = false;
                    self.failed_finally = Some(event);
                }
            }
            Stage::Executed => {
                if !self.under_way {
                    return self.ignore(event, "executed without an attempt under way");
                }
                self.under_way = false;
                self.executed = Some(event);
            }
            Stage::ExecutionSkipped => {
                if self.phase() == Phase::Approved {
                    self.skipped = Some(event);
                }
            }
        }
    }

    fn approve(&mut self, event: &'a RecordedEvent) {
        let Some(proposal) = self.bound(event) else {
            return self.ignore(event, "names no proposal of this action");
        };
        let by_person = is_person(&event.actor);
        // Review-E refuses self-approval by canonical id; this catches it even in
        // an event Review-E's code did not write (a compromised role, old history).
        if by_person && proposal.payload.get("requested_by").and_then(|r| r.as_str()) == Some(event.actor.as_str()) {
            return self.ignore(event, "approved by its own requester");
        }
        match self.phase() {
            Phase::AwaitingDecision | Phase::Escalated => {}
            // A person may approve a retry after a final failure (or a refusal):
            // a new decision, with the attempts so far counted on.
            Phase::FailedFinally | Phase::Skipped if by_person => {
                self.failed_finally = None;
                self.skipped = None;
            }
            other => return self.ignore(event, format!("an approval while the action is {other}")),
        }
        self.escalation = None;
        self.decision = Some(Decided { verdict: Verdict::Approved, event, proposal, by_person, emergency_stop: false });
    }

    fn reject(&mut self, event: &'a RecordedEvent) {
        let Some(proposal) = self.bound(event) else {
            return self.ignore(event, "names no proposal of this action");
        };
        let phase = self.phase();
        let emergency_stop = match phase {
            Phase::AwaitingDecision | Phase::Escalated => false,
            Phase::Approved | Phase::FailedFinally | Phase::Skipped => true,
            other => return self.ignore(event, format!("a rejection while the action is {other}")),
        };
        self.escalation = None;
        self.decision = Some(Decided {
            verdict: Verdict::Rejected,
            event,
            proposal,
            by_person: is_person(&event.actor),
            emergency_stop,
        });
    }

    /// Where the action stands.
    pub fn phase(&self) -> Phase {
        if self.proposals.is_empty() {
            return if self.reading.is_some() { Phase::AwaitingConfirmation } else { Phase::Unproposed };
        }
        if self.executed.is_some() {
            return Phase::Executed;
        }
        if self.under_way {
            return Phase::Executing;
        }
        match &self.decision {
            Some(d) if d.verdict == Verdict::Rejected => Phase::Rejected,
            Some(_) if self.failed_finally.is_some() => Phase::FailedFinally,
            Some(_) if self.skipped.is_some() => Phase::Skipped,
            Some(_) => Phase::Approved,
            None if self.escalation.is_some() => Phase::Escalated,
            None => Phase::AwaitingDecision,
        }
    }

    /// The proposal that counts: the one the decision in force judged, else the
    /// first in read order.
    pub fn proposal(&self) -> Option<&'a RecordedEvent> {
        self.decision.as_ref().map(|d| d.proposal).or_else(|| self.proposals.first().copied())
    }

    /// Whether more than one proposal shares this correlation id (history written
    /// before the store refused that): no such action is executed without a person.
    pub fn has_rival_proposals(&self) -> bool {
        self.proposals.len() > 1
    }

    /// The approval in force, if the action is approved and not rejected since.
    pub fn approval(&self) -> Option<&Decided<'a>> {
        self.decision.as_ref().filter(|d| d.verdict == Verdict::Approved)
    }

    /// Whether a person or a policy has approved or rejected it (an escalation is
    /// not a decision).
    pub fn is_decided(&self) -> bool {
        self.decision.is_some()
    }

    /// Whether `event` (one of the story's) counts: not ignored by the fold.
    pub fn counts(&self, event: &RecordedEvent) -> bool {
        !self.ignored.iter().any(|i| i.event.event_id == event.event_id)
    }

    /// Who asked for it (`requested_by` of the proposal that counts).
    pub fn requested_by(&self) -> Option<&'a str> {
        self.proposal()?.payload.get("requested_by")?.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A story told as a list of (type, actor, payload) with causation and
    /// judged proposals filled in as the services write them.
    struct Story {
        events: Vec<RecordedEvent>,
    }

    impl Story {
        fn given() -> Story {
            Story { events: Vec::new() }
        }

        fn event(mut self, event_type: &str, actor: &str, payload: serde_json::Value) -> Story {
            let position = self.events.len() as i64 + 1;
            self.events.push(RecordedEvent {
                position,
                transaction_id: 0,
                event_id: Uuid::new_v4(),
                event_type: event_type.into(),
                actor: actor.into(),
                status: "X".into(),
                correlation_id: "c".into(),
                causation_id: None,
                payload,
                metadata: json!({}),
                created_at: chrono::Utc::now(),
            });
            self
        }

        fn proposed(self, minor: i64) -> Story {
            self.event(
                "InvoiceRegistrationProposed",
                "book-e",
                json!({"requested_by": "user:ola", "amount": {"minor": minor}}),
            )
        }

        /// A decision naming the `nth` proposal (0 = first).
        fn decided(self, stage: &str, actor: &str, nth: usize) -> Story {
            let id =
                self.events.iter().filter(|e| e.event_type == "InvoiceRegistrationProposed").nth(nth).unwrap().event_id;
            self.event(&format!("InvoiceRegistration{stage}"), actor, json!({"reason": "r", "proposal_event_id": id}))
        }

        fn then(&self) -> ActionState<'_> {
            ActionState::fold(&self.events)
        }
    }

    #[test]
    fn an_automatic_approval_then_an_execution() {
        let s = Story::given()
            .proposed(100)
            .decided("Approved", "system:auto", 0)
            .event("InvoiceRegistrationExecutionStarted", "system", json!({"attempt": 1}))
            .event("InvoiceRegistrationExecuted", "system", json!({}));
        let state = s.then();
        assert_eq!(state.phase(), Phase::Executed);
        assert_eq!(state.attempts, 1);
        assert!(!state.approval().unwrap().by_person);
        assert!(state.ignored.is_empty());
    }

    #[test]
    fn escalated_waits_for_a_person_and_a_person_approves() {
        let s = Story::given().proposed(100).decided("Escalated", "system:auto", 0);
        assert_eq!(s.then().phase(), Phase::Escalated);
        assert!(!s.then().is_decided());
        let s = s.decided("Approved", "user:kari", 0);
        assert_eq!(s.then().phase(), Phase::Approved);
        assert!(s.then().approval().unwrap().by_person);
    }

    #[test]
    fn a_rejection_after_an_approval_is_an_emergency_stop_but_not_after_the_claim() {
        let s = Story::given().proposed(100).decided("Approved", "system:auto", 0).decided("Rejected", "user:kari", 0);
        assert_eq!(s.then().phase(), Phase::Rejected);
        assert!(s.then().decision.unwrap().emergency_stop);

        let s = Story::given()
            .proposed(100)
            .decided("Approved", "system:auto", 0)
            .event("InvoiceRegistrationExecutionStarted", "system", json!({}))
            .decided("Rejected", "user:kari", 0);
        assert_eq!(s.then().phase(), Phase::Executing, "too late to stop");
        assert_eq!(s.then().ignored.len(), 1);
    }

    #[test]
    fn a_decision_that_names_no_proposal_of_the_action_does_not_count() {
        let s =
            Story::given().proposed(100).event("InvoiceRegistrationApproved", "system:auto", json!({"reason": "x"}));
        assert_eq!(s.then().phase(), Phase::AwaitingDecision);
        assert_eq!(s.then().ignored[0].why, "names no proposal of this action");
        let s = Story::given().proposed(100).event(
            "InvoiceRegistrationApproved",
            "system:auto",
            json!({"reason": "x", "proposal_event_id": Uuid::new_v4()}),
        );
        assert_eq!(s.then().phase(), Phase::AwaitingDecision);
    }

    #[test]
    fn older_decisions_name_their_proposal_in_metadata_or_causation() {
        let mut s =
            Story::given().proposed(100).event("InvoiceRegistrationApproved", "user:kari", json!({"reason": "x"}));
        s.events[1].causation_id = Some(s.events[0].event_id);
        assert_eq!(s.then().phase(), Phase::Approved);
        let mut s =
            Story::given().proposed(100).event("InvoiceRegistrationApproved", "system:auto", json!({"reason": "x"}));
        s.events[1].metadata = json!({"proposal_event_id": s.events[0].event_id});
        assert_eq!(s.then().phase(), Phase::Approved);
    }

    #[test]
    fn with_two_proposals_the_decision_says_which_one_counts() {
        let s = Story::given().proposed(100).proposed(900_000).decided("Approved", "system:auto", 0);
        let state = s.then();
        assert!(state.has_rival_proposals());
        assert_eq!(state.proposal().unwrap().payload["amount"]["minor"], json!(100));
        let s = Story::given().proposed(100).proposed(900_000).decided("Approved", "user:kari", 1);
        assert_eq!(s.then().proposal().unwrap().payload["amount"]["minor"], json!(900_000));
    }

    #[test]
    fn names_that_merely_end_like_a_decision_are_not_decisions() {
        let s = Story::given().proposed(100).event("ComplianceCheckApproved", "cron", json!({})).event(
            "XInvoiceRegistrationRejected",
            "book-e",
            json!({}),
        );
        let state = s.then();
        assert_eq!(state.phase(), Phase::AwaitingDecision);
        assert_eq!(state.ignored.len(), 2);
        assert!(EventType::parse("ComplianceCheckApproved").is_none());
    }

    #[test]
    fn executions_out_of_order_are_ignored() {
        let s = Story::given().proposed(100).event("InvoiceRegistrationExecutionStarted", "system", json!({})).event(
            "InvoiceRegistrationExecuted",
            "system",
            json!({}),
        );
        assert_eq!(s.then().phase(), Phase::AwaitingDecision);
        assert_eq!(s.then().ignored.len(), 2);
    }

    #[test]
    fn a_final_failure_can_be_retried_by_a_person_only() {
        let failed = Story::given()
            .proposed(100)
            .decided("Approved", "system:auto", 0)
            .event("InvoiceRegistrationExecutionStarted", "system", json!({}))
            .event("InvoiceRegistrationExecutionFailed", "system", json!({"final": false}))
            .event("InvoiceRegistrationExecutionStarted", "system", json!({}))
            .event("InvoiceRegistrationExecutionFailed", "system", json!({"final": true}));
        assert_eq!(failed.then().phase(), Phase::FailedFinally);
        assert_eq!(failed.then().attempts, 2);
        let by_policy = failed.decided("Approved", "system:auto", 0);
        assert_eq!(by_policy.then().phase(), Phase::FailedFinally);
        let by_person = by_policy.decided("Approved", "user:kari", 0);
        assert_eq!(by_person.then().phase(), Phase::Approved);
        assert_eq!(by_person.then().attempts, 2, "attempts count on");
    }

    #[test]
    fn a_requester_approving_their_own_proposal_does_not_count() {
        let s = Story::given().proposed(100).decided("Approved", "user:ola", 0);
        assert_eq!(s.then().phase(), Phase::AwaitingDecision);
        assert_eq!(s.then().ignored[0].why, "approved by its own requester");
    }

    #[test]
    fn a_second_approval_and_an_approval_after_a_rejection_do_not_count() {
        let s = Story::given().proposed(100).decided("Rejected", "system:auto", 0).decided("Approved", "user:kari", 0);
        assert_eq!(s.then().phase(), Phase::Rejected);
        let s = Story::given().proposed(100).decided("Approved", "user:a", 0).decided("Approved", "user:b", 0);
        assert_eq!(s.then().approval().unwrap().event.actor, "user:a");
    }

    #[test]
    fn every_type_of_the_closed_set_parses_back_to_itself() {
        for t in EventType::all() {
            assert_eq!(EventType::parse(&t.name()), Some(t));
        }
        assert_eq!(EventType::parse("SomethingNew"), None);
        // 2 kinds of action x 9 stages, and 8 other types.
        assert_eq!(EventType::all().len(), 26);
    }
}
