//! Who may append what: the database roles of the services and, for each, the
//! exact event types it may append with their actors and statuses.
//!
//! The database enforces this (row-level security, `migrations/postgres/0007`);
//! this table is the same rule in Rust, so a test can append as every role every
//! type of the closed set ([`EventType::all`]) and prove the two agree. Among the
//! service roles only `review_e` may append a decision.

use crate::domain::Stage;
use crate::event::status;
use crate::lifecycle::{is_person, EventType};

/// An actor a rule admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// Exactly this name.
    Named(&'static str),
    /// A person, `user:<id>`.
    Person,
}

impl Actor {
    /// Whether `actor` is admitted.
    pub fn admits(self, actor: &str) -> bool {
        match self {
            Actor::Named(name) => actor == name,
            Actor::Person => is_person(actor),
        }
    }
}

/// One thing a role may append: a type, the actors and the status it must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// The event type.
    pub event_type: EventType,
    /// Who the event may name as its actor.
    pub actor: Actor,
    /// The status it must carry.
    pub status: &'static str,
}

/// A service's database role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Book-E: proposals.
    BookE,
    /// Review-E: decisions and policy changes.
    ReviewE,
    /// The Accounting API: execution outcomes.
    AccountingApi,
    /// The CronJob: compliance checks.
    Cron,
    /// The Cost API: monthly reports.
    CostApi,
}

impl Role {
    /// Every service role.
    pub const ALL: [Role; 5] = [Role::BookE, Role::ReviewE, Role::AccountingApi, Role::Cron, Role::CostApi];

    /// The database role's name.
    pub fn name(self) -> &'static str {
        match self {
            Role::BookE => "book_e",
            Role::ReviewE => "review_e",
            Role::AccountingApi => "accounting_api",
            Role::Cron => "cron",
            Role::CostApi => "cost_api",
        }
    }

    /// The actor of the service's own events (its parked events among them).
    pub fn actor(self) -> &'static str {
        match self {
            Role::BookE => "book-e",
            Role::ReviewE => "review-e",
            Role::AccountingApi => "accounting-api",
            Role::Cron => "cron",
            Role::CostApi => "cost-api",
        }
    }

    /// Everything the role may append.
    pub fn grants(self) -> Vec<Grant> {
        use crate::domain::ActionKind;
        let grant = |event_type, actor, status| Grant { event_type, actor, status };
        let each_kind = |stage: Stage, actor: Actor, status: &'static str| -> Vec<Grant> {
            ActionKind::ALL.iter().map(|k| grant(EventType::Action(*k, stage), actor, status)).collect()
        };
        let parked = |actor| grant(EventType::SubscriptionEventParked, Actor::Named(actor), status::PARKED);
        let mut out = Vec::new();
        match self {
            Role::BookE => {
                out.extend(each_kind(Stage::Read, Actor::Named("book-e"), status::READ));
                out.extend(each_kind(Stage::Proposed, Actor::Named("book-e"), status::PROPOSED));
                out.push(parked("book-e"));
            }
            Role::ReviewE => {
                out.extend(each_kind(Stage::Approved, Actor::Named("system:auto"), status::AUTO_APPROVED));
                out.extend(each_kind(Stage::Approved, Actor::Person, status::APPROVED));
                out.extend(each_kind(Stage::Rejected, Actor::Named("system:auto"), status::REJECTED));
                out.extend(each_kind(Stage::Rejected, Actor::Person, status::REJECTED));
                out.extend(each_kind(Stage::Escalated, Actor::Named("system:auto"), status::ESCALATED));
                out.extend(each_kind(Stage::Escalated, Actor::Named("review-e"), status::ESCALATED));
                for (t, s) in [(EventType::PolicyPublished, "PUBLISHED"), (EventType::PolicyRetired, "RETIRED")] {
                    out.push(grant(t, Actor::Named("review-e"), s));
                    out.push(grant(t, Actor::Person, s));
                }
                out.push(grant(EventType::DeskSignInLinkIssued, Actor::Named("review-e"), status::ISSUED));
                out.push(grant(EventType::DeskSignInLinkIssued, Actor::Person, status::ISSUED));
                out.push(grant(EventType::DeskSessionStarted, Actor::Person, status::SIGNED_IN));
                out.push(grant(EventType::DeskSessionEnded, Actor::Person, status::SIGNED_OUT));
                out.push(parked("review-e"));
            }
            Role::AccountingApi => {
                out.extend(each_kind(Stage::ExecutionStarted, Actor::Named("system"), status::EXECUTING));
                out.extend(each_kind(Stage::Executed, Actor::Named("system"), status::EXECUTED));
                out.extend(each_kind(Stage::ExecutionFailed, Actor::Named("system"), status::FAILED));
                out.extend(each_kind(Stage::ExecutionSkipped, Actor::Named("system"), status::SKIPPED));
                out.push(parked("accounting-api"));
            }
            Role::Cron => out.push(grant(EventType::ComplianceCheckCompleted, Actor::Named("cron"), status::COMPLETED)),
            Role::CostApi => out.push(grant(EventType::MonthlyCostReport, Actor::Named("cost-api"), status::REPORTED)),
        }
        out
    }

    /// Whether the role may append an event of this type, actor and status.
    pub fn may_append(self, event_type: &str, actor: &str, status: &str) -> bool {
        let Some(t) = EventType::parse(event_type) else { return false };
        self.grants().iter().any(|g| g.event_type == t && g.actor.admits(actor) && g.status == status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_review_e_may_decide() {
        for role in Role::ALL {
            let decides = role.grants().iter().any(|g| {
                matches!(g.event_type, EventType::Action(_, Stage::Approved | Stage::Rejected | Stage::Escalated))
            });
            assert_eq!(decides, role == Role::ReviewE, "{role:?}");
        }
    }

    #[test]
    fn a_person_is_user_and_an_id() {
        assert!(Role::ReviewE.may_append("InvoiceRegistrationApproved", "user:kari", "APPROVED"));
        assert!(!Role::ReviewE.may_append("InvoiceRegistrationApproved", "user:", "APPROVED"));
        assert!(!Role::ReviewE.may_append("InvoiceRegistrationApproved", "system:auto", "APPROVED"));
        assert!(!Role::Cron.may_append("ComplianceCheckApproved", "cron", "COMPLETED"));
    }
}
