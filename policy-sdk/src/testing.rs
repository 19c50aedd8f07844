//! Recorded cases: proposals with facts and the decision expected of a policy.
//!
//! The same cases file drives a policy's native unit test
//! ([`check_cases`]) and `bookkeeper policy test`, which runs the built
//! component. Format (JSON):
//!
//! ```json
//! { "cases": [
//!     { "name": "small receipt from a known vendor",
//!       "proposal": { "proposal_type": "ReceiptAttachmentProposed",
//!                     "amount": { "minor": 49900, "currency": "NOK" },
//!                     "vendor": { "name": "Kiwi" }, "has_document": true },
//!       "facts": { "today": "2026-11-25", "vendor_history": { "payments": 3 } },
//!       "expect": "approve",
//!       "reason_contains": "known vendor" } ] }
//! ```

use serde::{Deserialize, Serialize};

use crate::{Decision, Facts, Outcome, Policy, Proposal};

/// A cases file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cases {
    /// The cases, in order.
    pub cases: Vec<Case>,
}

/// One recorded case.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Case {
    /// What the case is about.
    pub name: String,
    /// The proposal.
    pub proposal: Proposal,
    /// The facts Review-E would compute.
    #[serde(default)]
    pub facts: Facts,
    /// The expected outcome.
    pub expect: Outcome,
    /// Text the reason must contain, if given.
    #[serde(default)]
    pub reason_contains: Option<String>,
}

impl Case {
    /// Whether `actual` is what this case expects.
    pub fn accepts(&self, actual: &Decision) -> bool {
        actual.outcome() == self.expect
            && self.reason_contains.as_deref().is_none_or(|needle| actual.reason().contains(needle))
    }
}

/// Parses a cases file.
pub fn parse_cases(json: &str) -> Result<Cases, String> {
    serde_json::from_str(json).map_err(|e| format!("invalid cases file: {e}"))
}

/// Runs every case against `P` natively. Returns the number of cases run, or a
/// report of every mismatch.
pub fn run_cases<P: Policy>(cases_json: &str) -> Result<usize, String> {
    let cases = parse_cases(cases_json)?;
    let mut failures = Vec::new();
    for case in &cases.cases {
        let actual = P::evaluate(&case.proposal, &case.facts);
        if !case.accepts(&actual) {
            failures.push(format!(
                "  {}: expected {}{}, got {} ({})",
                case.name,
                case.expect,
                case.reason_contains.as_deref().map(|r| format!(" with reason containing {r:?}")).unwrap_or_default(),
                actual.outcome(),
                actual.reason()
            ));
        }
    }
    if failures.is_empty() {
        Ok(cases.cases.len())
    } else {
        Err(format!("{} of {} cases failed:\n{}", failures.len(), cases.cases.len(), failures.join("\n")))
    }
}

/// Panics with a readable report unless every case passes: the body of a
/// policy's `#[test]`.
pub fn check_cases<P: Policy>(cases_json: &str) {
    match run_cases::<P>(cases_json) {
        Ok(n) => assert!(n > 0, "the cases file has no cases"),
        Err(report) => panic!("{report}"),
    }
}
