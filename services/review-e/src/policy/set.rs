//! The active policy set and how verdicts combine into one decision.

use std::collections::BTreeMap;
use std::time::Duration;

use bookkeeper_core::subscription::safe_text;
use bookkeeper_policy_sdk::{Decision, Facts, Outcome, Proposal};
use serde::{Deserialize, Serialize};

use super::engine::LoadedPolicy;

/// Whether a policy decides or is only watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Its verdict counts.
    Enforcing,
    /// Evaluated and recorded beside the decision, but does not decide.
    Shadow,
}

/// An immutable set of loaded policies, keyed by name. A swap replaces the whole
/// set, so one proposal is always judged by one consistent set.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    policies: BTreeMap<String, (LoadedPolicy, Mode)>,
}

/// One policy's verdict on one proposal, as recorded in the decision's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Policy name.
    pub policy: String,
    /// Policy version.
    pub version: String,
    /// SHA-256 of the component.
    pub digest: String,
    /// Enforcing or shadow.
    pub mode: Mode,
    /// approve / reject / escalate; a fault counts as escalate.
    pub outcome: Outcome,
    /// The policy's reason, or what went wrong with it.
    pub reason: String,
    /// Set when the policy failed (timeout, trap, nonsense answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// Evaluation time in microseconds.
    pub micros: u64,
}

/// The decision of a whole set.
#[derive(Debug, Clone, PartialEq)]
pub struct Combined {
    /// The combined outcome.
    pub outcome: Outcome,
    /// Why, in words.
    pub reason: String,
    /// Every applicable policy's verdict, enforcing and shadow.
    pub verdicts: Vec<Verdict>,
}

impl PolicySet {
    /// An empty set (every proposal escalates).
    pub fn empty() -> PolicySet {
        PolicySet::default()
    }

    /// This set with `policy` added or replacing the one of the same name.
    pub fn with(&self, policy: LoadedPolicy, mode: Mode) -> PolicySet {
        let mut next = self.clone();
        next.policies.insert(policy.metadata.name.clone(), (policy, mode));
        next
    }

    /// This set without the policy called `name`.
    pub fn without(&self, name: &str) -> PolicySet {
        let mut next = self.clone();
        next.policies.remove(name);
        next
    }

    /// The policies, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&LoadedPolicy, Mode)> {
        self.policies.values().map(|(p, m)| (p, *m))
    }

    /// The policy called `name`.
    pub fn get(&self, name: &str) -> Option<(&LoadedPolicy, Mode)> {
        self.policies.get(name).map(|(p, m)| (p, *m))
    }

    /// Number of policies.
    pub fn len(&self) -> usize {
        self.policies.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Evaluates every applicable policy and combines the enforcing ones.
    pub fn evaluate(&self, proposal: &Proposal, facts: &Facts) -> Combined {
        let verdicts = self
            .iter()
            .filter(|(p, _)| p.metadata.judges(&proposal.proposal_type))
            .map(|(policy, mode)| {
                let (result, took) = policy.evaluate(proposal, facts);
                verdict(policy, mode, result, took)
            })
            .collect();
        combine(verdicts)
    }
}

fn verdict(policy: &LoadedPolicy, mode: Mode, result: Result<Decision, super::Fault>, took: Duration) -> Verdict {
    let (outcome, reason, fault) = match result {
        // Whatever a policy says is made safe before it is stored or shown: valid
        // text (the WIT string is), no control characters (PostgreSQL refuses NUL
        // in JSON, terminals and Discord misrender the rest), bounded.
        Ok(d) => (d.outcome(), safe_text(d.reason(), bookkeeper_policy_sdk::MAX_REASON_CHARS), None),
        Err(fault) => (
            Outcome::Escalate,
            format!("policy {} {} failed: {fault}", policy.metadata.name, policy.metadata.version),
            Some(fault.to_string()),
        ),
    };
    Verdict {
        policy: safe_text(&policy.metadata.name, 128),
        version: safe_text(&policy.metadata.version, 64),
        digest: policy.digest.clone(),
        mode,
        outcome,
        reason,
        fault,
        micros: took.as_micros() as u64,
    }
}

/// Any enforcing reject wins, then any escalate (a fault is one), then approve.
/// No enforcing policy that applies means escalate: the system fails closed.
pub fn combine(verdicts: Vec<Verdict>) -> Combined {
    let enforcing: Vec<&Verdict> = verdicts.iter().filter(|v| v.mode == Mode::Enforcing).collect();
    let pick = |outcome: Outcome| -> Vec<String> {
        enforcing.iter().filter(|v| v.outcome == outcome).map(|v| format!("{}: {}", v.policy, v.reason)).collect()
    };
    let (outcome, reason) = if enforcing.is_empty() {
        (Outcome::Escalate, "no enforcing policy applies to this proposal; a person decides".to_string())
    } else if !pick(Outcome::Reject).is_empty() {
        (Outcome::Reject, pick(Outcome::Reject).join("; "))
    } else if !pick(Outcome::Escalate).is_empty() {
        (Outcome::Escalate, pick(Outcome::Escalate).join("; "))
    } else {
        (Outcome::Approve, pick(Outcome::Approve).join("; "))
    };
    Combined { outcome, reason, verdicts }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(policy: &str, mode: Mode, outcome: Outcome) -> Verdict {
        Verdict {
            policy: policy.into(),
            version: "1".into(),
            digest: "d".into(),
            mode,
            outcome,
            reason: format!("{policy} says {outcome}"),
            fault: None,
            micros: 1,
        }
    }

    #[test]
    fn reject_beats_escalate_beats_approve() {
        use Mode::Enforcing as E;
        use Outcome::*;
        assert_eq!(combine(vec![v("a", E, Approve), v("b", E, Reject), v("c", E, Escalate)]).outcome, Reject);
        assert_eq!(combine(vec![v("a", E, Approve), v("c", E, Escalate)]).outcome, Escalate);
        let all = combine(vec![v("a", E, Approve), v("b", E, Approve)]);
        assert_eq!(all.outcome, Approve);
        assert_eq!(all.reason, "a: a says approve; b: b says approve");
    }

    #[test]
    fn no_enforcing_policy_fails_closed() {
        assert_eq!(combine(vec![]).outcome, Outcome::Escalate);
        let shadow_only = combine(vec![v("s", Mode::Shadow, Outcome::Approve)]);
        assert_eq!(shadow_only.outcome, Outcome::Escalate);
        assert_eq!(shadow_only.verdicts.len(), 1, "shadow verdicts are still recorded");
    }

    #[test]
    fn shadow_policies_do_not_decide() {
        let c = combine(vec![v("a", Mode::Enforcing, Outcome::Approve), v("s", Mode::Shadow, Outcome::Reject)]);
        assert_eq!(c.outcome, Outcome::Approve);
    }
}
