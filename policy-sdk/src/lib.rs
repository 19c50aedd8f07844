//! Write Bookkeeper approval policies in Rust.
//!
//! A policy is an ordinary Rust type implementing [`Policy`]: it states what it is
//! ([`Policy::metadata`]) and judges one proposal given the facts Review-E computed
//! ([`Policy::evaluate`]). [`export_policy!`] turns it into a WebAssembly component
//! exporting the `bookkeeper:policy` world (see `wit/policy.wit`, the source of
//! truth), and [`testing::check_cases`] runs its recorded cases natively, so
//! `cargo test` tests the same logic the component runs.
//!
//! ```
//! use bookkeeper_policy_sdk::{Decision, Facts, Metadata, Policy, Proposal};
//!
//! pub struct NoWeekendInvoices;
//!
//! impl Policy for NoWeekendInvoices {
//!     fn metadata() -> Metadata {
//!         Metadata::new("no-weekend", "1.0.0", "Escalates invoices dated on a Sunday")
//!             .applies_to(["InvoiceRegistrationProposed"])
//!     }
//!
//!     fn evaluate(proposal: &Proposal, _facts: &Facts) -> Decision {
//!         match proposal.invoice_date.as_deref() {
//!             Some("2026-11-29") => Decision::escalate("dated on a Sunday"),
//!             _ => Decision::approve("dated on a working day"),
//!         }
//!     }
//! }
//! ```

/// This SDK's release (`bookkeeper policy new` names it in a new policy's manifest).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

use std::fmt;

use serde::{Deserialize, Serialize};

pub mod testing;

#[cfg(feature = "guest")]
#[doc(hidden)]
pub mod guest;

/// The longest reason Review-E accepts, in characters. Longer reasons are a policy
/// fault (the proposal is escalated); the constructors below truncate for you.
pub const MAX_REASON_CHARS: usize = 500;

/// An approval policy. Both functions must depend only on their arguments.
pub trait Policy {
    /// Who the policy is and what it judges; called once when it is loaded.
    fn metadata() -> Metadata;
    /// Judges one proposal.
    fn evaluate(proposal: &Proposal, facts: &Facts) -> Decision;
}

/// An amount in minor units (øre for NOK). Never a float. The one money type:
/// Bookkeeper's events carry it too (`bookkeeper_core::domain::Money`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// Minor units: 12_345 is 123.45.
    pub minor: i64,
    /// ISO 4217 code.
    pub currency: String,
}

impl Money {
    /// An amount in NOK, from øre.
    pub fn nok(minor: i64) -> Money {
        Money { minor, currency: "NOK".into() }
    }

    /// Whole kroner, in øre: `Money::kroner(1000)` is 1 000,00 kr.
    pub fn kroner(kroner: i64) -> Money {
        Money::nok(kroner.saturating_mul(100))
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        write!(f, "{sign}{}.{:02} {}", abs / 100, abs % 100, self.currency)
    }
}

/// Who is to be paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vendor {
    /// Display name.
    pub name: String,
    /// Organisation number, when known.
    #[serde(default)]
    pub organization_number: Option<String>,
}

/// The action to judge. Field meanings are documented in `wit/policy.wit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// `ReceiptAttachmentProposed`, `InvoiceRegistrationProposed`, ...
    pub proposal_type: String,
    /// The action's correlation id.
    #[serde(default)]
    pub correlation_id: String,
    /// The proposing service.
    #[serde(default = "book_e")]
    pub proposed_by: String,
    /// The person who asked, `user:<id>`.
    #[serde(default)]
    pub requested_by: String,
    /// The amount.
    #[serde(default)]
    pub amount: Option<Money>,
    /// The vendor.
    #[serde(default)]
    pub vendor: Option<Vendor>,
    /// Expense account code.
    #[serde(default)]
    pub account: Option<String>,
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
    /// Supplier's invoice number.
    #[serde(default)]
    pub invoice_number: Option<String>,
    /// `YYYY-MM-DD`.
    #[serde(default)]
    pub invoice_date: Option<String>,
    /// `YYYY-MM-DD`.
    #[serde(default)]
    pub due_date: Option<String>,
    /// A document is attached.
    #[serde(default)]
    pub has_document: bool,
    /// The attached document's content type, when one is attached (contract 0.2.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_type: Option<String>,
    /// The raw payload, JSON text.
    #[serde(default = "empty_json")]
    pub payload_json: String,
}

fn book_e() -> String {
    "book-e".into()
}

fn empty_json() -> String {
    "{}".into()
}

/// Earlier payments to the proposal's vendor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VendorHistory {
    /// Executed actions for this vendor.
    #[serde(default)]
    pub payments: u32,
    /// Their total, minor units.
    #[serde(default)]
    pub total_minor: i64,
    /// The largest one, minor units.
    #[serde(default)]
    pub largest_minor: i64,
    /// Date of the latest one.
    #[serde(default)]
    pub last_paid: Option<String>,
}

/// What Review-E computed from the log. Field meanings are in `wit/policy.wit`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    /// The proposal's date, `YYYY-MM-DD`.
    #[serde(default)]
    pub today: String,
    /// Earlier payments to this vendor.
    #[serde(default)]
    pub vendor_history: VendorHistory,
    /// Executed spending on the account this month so far, minor units.
    #[serde(default)]
    pub account_month_to_date_minor: i64,
    /// Same vendor + invoice number already registered.
    #[serde(default)]
    pub duplicate_invoice_registered: bool,
    /// Same vendor + invoice number in another live proposal.
    #[serde(default)]
    pub duplicate_invoice_proposed: bool,
    /// The requester's proposals in the last 30 days.
    #[serde(default)]
    pub requester_proposals_last_30_days: u32,
    /// The requester's proposals today.
    #[serde(default)]
    pub requester_proposals_today: u32,
    /// The ISO weekday of `today`, 1 = Monday ... 7 = Sunday (contract 0.2.0).
    /// `None` in a decision recorded before the fact existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekday: Option<u8>,
}

impl Facts {
    /// The facts added after contract 0.1.0 that these facts lack, by their WIT
    /// names: what a policy built against a later contract is given `none` for.
    pub fn lacking(&self) -> Vec<&'static str> {
        let mut missing = Vec::new();
        if self.weekday.is_none() {
            missing.push("weekday");
        }
        missing
    }
}

/// The three outcomes, without a reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Carry it out.
    Approve,
    /// Refuse it.
    Reject,
    /// Ask a person.
    Escalate,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Approve => "approve",
            Outcome::Reject => "reject",
            Outcome::Escalate => "escalate",
        })
    }
}

/// A verdict with its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "outcome", content = "reason")]
pub enum Decision {
    /// Carry it out without asking anyone.
    Approve(String),
    /// Refuse it.
    Reject(String),
    /// Ask a person.
    Escalate(String),
}

impl Decision {
    /// Approve, with a reason (truncated to [`MAX_REASON_CHARS`]).
    pub fn approve(reason: impl Into<String>) -> Decision {
        Decision::Approve(bounded(reason.into()))
    }

    /// Reject, with a reason (truncated to [`MAX_REASON_CHARS`]).
    pub fn reject(reason: impl Into<String>) -> Decision {
        Decision::Reject(bounded(reason.into()))
    }

    /// Escalate to a person, with a reason (truncated to [`MAX_REASON_CHARS`]).
    pub fn escalate(reason: impl Into<String>) -> Decision {
        Decision::Escalate(bounded(reason.into()))
    }

    /// The outcome alone.
    pub fn outcome(&self) -> Outcome {
        match self {
            Decision::Approve(_) => Outcome::Approve,
            Decision::Reject(_) => Outcome::Reject,
            Decision::Escalate(_) => Outcome::Escalate,
        }
    }

    /// The reason.
    pub fn reason(&self) -> &str {
        match self {
            Decision::Approve(r) | Decision::Reject(r) | Decision::Escalate(r) => r,
        }
    }
}

fn bounded(mut reason: String) -> String {
    if reason.chars().count() > MAX_REASON_CHARS {
        reason = reason.chars().take(MAX_REASON_CHARS - 1).collect();
        reason.push('…');
    }
    reason
}

/// Who a policy is and what it judges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Unique name; publishing the same name replaces the policy.
    pub name: String,
    /// The policy's version.
    pub version: String,
    /// What it does, for the people reading decisions.
    pub description: String,
    /// Proposal types it judges; `*` for all.
    pub applies_to: Vec<String>,
}

impl Metadata {
    /// Metadata applying to every proposal type until [`Metadata::applies_to`] narrows it.
    pub fn new(name: impl Into<String>, version: impl Into<String>, description: impl Into<String>) -> Metadata {
        Metadata {
            name: name.into(),
            version: version.into(),
            description: description.into(),
            applies_to: vec!["*".into()],
        }
    }

    /// Restricts the policy to these proposal types.
    pub fn applies_to<I, S>(mut self, types: I) -> Metadata
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.applies_to = types.into_iter().map(Into::into).collect();
        self
    }

    /// Whether the policy judges this proposal type.
    pub fn judges(&self, proposal_type: &str) -> bool {
        self.applies_to.iter().any(|t| t == "*" || t == proposal_type)
    }
}

/// Makes a [`Policy`] the component's exports. Call it once, in the policy crate:
/// `bookkeeper_policy_sdk::export_policy!(SmallReceipts);`. On non-wasm targets it
/// expands to nothing, so native tests build as usual.
#[macro_export]
macro_rules! export_policy {
    ($policy:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct BookkeeperPolicyExport;
            impl $crate::guest::Guest for BookkeeperPolicyExport {
                fn metadata() -> $crate::guest::WitMetadata {
                    $crate::guest::metadata_to_wit(<$policy as $crate::Policy>::metadata())
                }
                fn evaluate(proposal: $crate::guest::WitProposal, facts: $crate::guest::WitFacts) -> $crate::guest::WitDecision {
                    let proposal = $crate::guest::proposal_from_wit(proposal);
                    let facts = $crate::guest::facts_from_wit(facts);
                    $crate::guest::decision_to_wit(<$policy as $crate::Policy>::evaluate(&proposal, &facts))
                }
            }
            $crate::guest::bindings::__export_policy_world!(BookkeeperPolicyExport with_types_in $crate::guest::bindings);
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_bounded() {
        let d = Decision::reject("x".repeat(2000));
        assert_eq!(d.reason().chars().count(), MAX_REASON_CHARS);
        assert!(d.reason().ends_with('…'));
        assert_eq!(Decision::approve("ok").reason(), "ok");
    }

    #[test]
    fn money_is_exact() {
        assert_eq!(Money::kroner(1000), Money::nok(100_000));
        assert_eq!(Money::nok(12_345).to_string(), "123.45 NOK");
    }

    #[test]
    fn metadata_applies_to_types() {
        let m = Metadata::new("x", "1", "d");
        assert!(m.judges("Anything"));
        let m = m.applies_to(["InvoiceRegistrationProposed"]);
        assert!(m.judges("InvoiceRegistrationProposed"));
        assert!(!m.judges("ReceiptAttachmentProposed"));
    }

    #[test]
    fn decisions_serialise_as_outcome_and_reason() {
        let json = serde_json::to_value(Decision::escalate("ask")).unwrap();
        assert_eq!(json, serde_json::json!({"outcome": "escalate", "reason": "ask"}));
    }
}
