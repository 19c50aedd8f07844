//! Looking back: `replay` asks what a candidate policy would have changed, and
//! `verify` re-runs recorded automatic decisions to prove they come out the same.
//!
//! Both rebuild each proposal from its recorded event and use the facts recorded
//! in the decision, and load the recorded policies by digest from the blob store,
//! so they judge the past exactly as it was judged.

use std::collections::HashMap;

use bookkeeper_core::domain::{ActionKind, Stage};
use bookkeeper_core::event::actor;
use bookkeeper_core::lifecycle::judged_proposal;
use bookkeeper_core::{Cursor, EventType, RecordedEvent, Store, StoreError, TypeFilter};
use bookkeeper_policy_sdk::{Decision, Outcome};
use chrono::NaiveDate;

use crate::decide::DecisionRecord;
use crate::policy::{combine, LoadedPolicy, Mode, PolicyEngine, PolicySet};
use crate::proposal;

/// A recorded automatic decision with the proposal it judged.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The proposal event.
    pub proposal: RecordedEvent,
    /// The automatic decision event.
    pub decision: RecordedEvent,
    /// What the decision recorded.
    pub record: DecisionRecord,
}

impl Recorded {
    /// The outcome the decision event stands for.
    pub fn outcome(&self) -> Outcome {
        outcome_of(&self.decision.event_type)
    }
}

fn outcome_of(event_type: &str) -> Outcome {
    match ActionKind::parse(event_type) {
        Some((_, Stage::Approved)) => Outcome::Approve,
        Some((_, Stage::Rejected)) => Outcome::Reject,
        _ => Outcome::Escalate,
    }
}

/// Every automatic decision with its proposal, in log order, from `since` on.
pub async fn history(store: &Store, since: Option<NaiveDate>) -> Result<Vec<Recorded>, StoreError> {
    let mut proposals: HashMap<String, RecordedEvent> = HashMap::new();
    let mut out = Vec::new();
    let filter =
        TypeFilter::of(EventType::action_types(&[Stage::Proposed, Stage::Approved, Stage::Rejected, Stage::Escalated]));
    let mut cursor = Cursor::START;
    loop {
        let batch = store.read_waiting(cursor, &filter, 1000, std::time::Duration::from_secs(5)).await?;
        if batch.events.is_empty() {
            return Ok(out);
        }
        for event in batch.events {
            cursor = event.cursor();
            if matches!(ActionKind::parse(&event.event_type), Some((_, Stage::Proposed))) {
                if since.is_none_or(|d| event.created_at.date_naive() >= d) {
                    proposals.entry(event.correlation_id.clone()).or_insert(event);
                }
            } else if event.actor == actor::SYSTEM_AUTO {
                // The proposal the decision judged, not merely the first of its id.
                let Some(p) = proposals.get(&event.correlation_id) else { continue };
                if judged_proposal(&event) != Some(p.event_id) {
                    continue;
                }
                if let Ok(record) = serde_json::from_value::<DecisionRecord>(event.metadata.clone()) {
                    out.push(Recorded { proposal: p.clone(), decision: event, record });
                }
            }
        }
    }
}

/// Loads recorded policies by digest, once each.
pub struct Archive<'a> {
    store: &'a Store,
    engine: &'a PolicyEngine,
    loaded: HashMap<String, Result<LoadedPolicy, String>>,
    limits: Option<HashMap<String, crate::policy::Limits>>,
}

impl<'a> Archive<'a> {
    /// An archive reading components from `store`.
    pub fn new(store: &'a Store, engine: &'a PolicyEngine) -> Self {
        Archive { store, engine, loaded: HashMap::new(), limits: None }
    }

    /// The policy with this digest, as it was published.
    pub async fn get(&mut self, digest: &str) -> Result<LoadedPolicy, String> {
        if let Some(found) = self.loaded.get(digest) {
            return found.clone();
        }
        let loaded = match self.store.get_blob(digest).await {
            // Under the limits its publication recorded, so a decision that
            // hit one then (a timeout, the memory cap) hits it again.
            Ok(Some(blob)) => {
                // Never above this engine's maxima (its sandbox slots are sized
                // to them); `engine_for_history` makes one that fits them all.
                let limits = self.recorded_limits().await.get(digest).copied().unwrap_or(*self.engine.defaults());
                let limits = limits.min(*self.engine.maxima());
                self.engine.load_limited(&blob.bytes, limits, None).map(|l| l.policy).map_err(|e| e.to_string())
            }
            Ok(None) => Err(format!("component {digest} is not stored")),
            Err(e) => Err(e.to_string()),
        };
        self.loaded.insert(digest.to_string(), loaded.clone());
        loaded
    }

    /// The limits each component was published under, by digest (the last
    /// publication of it), read from the log once.
    async fn recorded_limits(&mut self) -> &HashMap<String, crate::policy::Limits> {
        if self.limits.is_none() {
            let defaults = *self.engine.defaults();
            self.limits = Some(published_limits(self.store, &defaults).await.unwrap_or_default());
        }
        self.limits.get_or_insert_default()
    }

    /// The set a decision was made with, optionally with `candidate` in place of
    /// the policy of the same name (or added).
    pub async fn set_of(
        &mut self,
        record: &DecisionRecord,
        candidate: Option<&LoadedPolicy>,
    ) -> Result<PolicySet, String> {
        let mut set = PolicySet::empty();
        for member in &record.policy_set {
            if candidate.is_some_and(|c| c.metadata.name == member.name) {
                continue;
            }
            set = set.with(self.get(&member.digest).await?, member.mode);
        }
        if let Some(c) = candidate {
            set = set.with(c.clone(), Mode::Enforcing);
        }
        Ok(set)
    }
}

/// The limits each published component runs under, by digest (its last
/// publication; `defaults` for one from before per-policy limits).
async fn published_limits(
    store: &Store,
    defaults: &crate::policy::Limits,
) -> Result<HashMap<String, crate::policy::Limits>, StoreError> {
    let mut limits = HashMap::new();
    let filter = TypeFilter::of([crate::registry::PUBLISHED]);
    let mut cursor = Cursor::START;
    loop {
        let batch = store.read(cursor, &filter, 500).await?;
        if batch.events.is_empty() {
            return Ok(limits);
        }
        for event in &batch.events {
            cursor = event.cursor();
            if let Ok(p) = serde_json::from_value::<crate::registry::Published>(event.payload.clone()) {
                limits.insert(p.digest.clone(), p.limits.map(crate::policy::Limits::from).unwrap_or(*defaults));
            }
        }
    }
}

/// An engine for looking back at `store`'s history outside Review-E (`policy
/// replay`, `policy verify`): `defaults` for policies from before per-policy
/// limits, and maxima that admit every limit any publication recorded, so each
/// recorded policy re-runs under exactly the limits it decided under.
pub async fn engine_for_history(store: &Store, defaults: crate::policy::Limits) -> anyhow::Result<PolicyEngine> {
    let recorded = published_limits(store, &defaults).await?;
    let maxima = recorded.values().fold(crate::policy::Limits::default_maxima().max(defaults), |m, l| m.max(*l));
    PolicyEngine::with_maxima(defaults, maxima)
}

/// One past decision a candidate would change.
#[derive(Debug, Clone)]
pub struct Change {
    /// The proposal's correlation id.
    pub correlation_id: String,
    /// When it was proposed.
    pub proposed_at: chrono::DateTime<chrono::Utc>,
    /// What was decided.
    pub recorded: Outcome,
    /// What the set with the candidate decides.
    pub candidate: Outcome,
    /// The candidate set's reason.
    pub reason: String,
    /// Facts the candidate's contract has that this decision's record lacks
    /// (it was recorded before they existed): the candidate was given `none`.
    pub lacking: Vec<&'static str>,
}

/// The result of a replay.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    /// Decisions replayed.
    pub replayed: usize,
    /// Those that would change.
    pub changes: Vec<Change>,
    /// Decisions that could not be replayed (a recorded policy is missing), with why.
    pub skipped: Vec<(String, String)>,
    /// Decisions replayed whose record lacks facts the candidate's contract
    /// has, with those facts, changed or not: the candidate saw `none` there.
    pub lacking: Vec<(String, Vec<&'static str>)>,
}

/// Re-decides every recorded automatic decision with `candidate` in the set it was
/// made with. `progress` is called with (done, total).
pub async fn replay(
    store: &Store,
    engine: &PolicyEngine,
    candidate: &LoadedPolicy,
    since: Option<NaiveDate>,
    mut progress: impl FnMut(usize, usize),
) -> Result<Replay, StoreError> {
    let history = history(store, since).await?;
    let mut archive = Archive::new(store, engine);
    let mut result = Replay::default();
    for (i, recorded) in history.iter().enumerate() {
        progress(i, history.len());
        let set = match archive.set_of(&recorded.record, Some(candidate)).await {
            Ok(set) => set,
            Err(why) => {
                result.skipped.push((recorded.proposal.correlation_id.clone(), why));
                continue;
            }
        };
        let p = proposal::from_event(&recorded.proposal);
        let combined = set.evaluate(&p, &recorded.record.facts);
        result.replayed += 1;
        let lacking = candidate.contract.lacking(&recorded.record.facts);
        if !lacking.is_empty() {
            result.lacking.push((recorded.proposal.correlation_id.clone(), lacking.clone()));
        }
        if combined.outcome != recorded.outcome() {
            result.changes.push(Change {
                correlation_id: recorded.proposal.correlation_id.clone(),
                proposed_at: recorded.proposal.created_at,
                recorded: recorded.outcome(),
                candidate: combined.outcome,
                reason: combined.reason,
                lacking,
            });
        }
    }
    progress(history.len(), history.len());
    Ok(result)
}

/// A recorded decision that did not come out the same.
#[derive(Debug, Clone)]
pub struct Mismatch {
    /// The proposal's correlation id.
    pub correlation_id: String,
    /// What differs.
    pub detail: String,
}

/// The result of a verification.
#[derive(Debug, Clone, Default)]
pub struct Verification {
    /// Decisions checked.
    pub checked: usize,
    /// Those that did not reproduce.
    pub mismatches: Vec<Mismatch>,
}

/// Re-runs every recorded automatic decision with the recorded policy digests and
/// facts, and reports every decision whose verdicts or outcome differ.
pub async fn verify(
    store: &Store,
    engine: &PolicyEngine,
    mut progress: impl FnMut(usize, usize),
) -> Result<Verification, StoreError> {
    let history = history(store, None).await?;
    let mut archive = Archive::new(store, engine);
    let mut result = Verification::default();
    for (i, recorded) in history.iter().enumerate() {
        progress(i, history.len());
        result.checked += 1;
        let id = recorded.proposal.correlation_id.clone();
        let p = proposal::from_event(&recorded.proposal);
        let mut verdicts = Vec::new();
        for verdict in &recorded.record.verdicts {
            let policy = match archive.get(&verdict.digest).await {
                Ok(p) => p,
                Err(why) => {
                    result
                        .mismatches
                        .push(Mismatch { correlation_id: id.clone(), detail: format!("{}: {why}", verdict.policy) });
                    continue;
                }
            };
            let (now, _) = policy.evaluate(&p, &recorded.record.facts);
            let same = match (&now, &verdict.fault) {
                (Err(_), Some(_)) => true,
                (Ok(d), None) => {
                    d.outcome() == verdict.outcome
                        && bookkeeper_core::subscription::safe_text(d.reason(), bookkeeper_policy_sdk::MAX_REASON_CHARS)
                            == verdict.reason
                }
                _ => false,
            };
            if !same {
                result.mismatches.push(Mismatch {
                    correlation_id: id.clone(),
                    detail: format!(
                        "{} {}: recorded {} ({}), now {}",
                        verdict.policy,
                        verdict.version,
                        verdict.outcome,
                        verdict.reason,
                        describe(&now)
                    ),
                });
            }
            let mut again = verdict.clone();
            if let Ok(d) = &now {
                again.outcome = d.outcome();
                again.reason = d.reason().to_string();
            }
            verdicts.push(again);
        }
        let combined = combine(verdicts);
        if combined.outcome != recorded.outcome() {
            result.mismatches.push(Mismatch {
                correlation_id: id,
                detail: format!("decision recorded as {}, re-runs as {}", recorded.outcome(), combined.outcome),
            });
        }
    }
    progress(history.len(), history.len());
    Ok(result)
}

fn describe(result: &Result<Decision, crate::policy::Fault>) -> String {
    match result {
        Ok(d) => format!("{} ({})", d.outcome(), d.reason()),
        Err(f) => format!("fault: {f}"),
    }
}
