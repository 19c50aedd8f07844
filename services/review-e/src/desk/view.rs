//! What the desk's pages show, read from the log: one action's story folded into
//! the facts a reviewer needs, the policy set and its history, shadow results and
//! the audit search.

use bookkeeper_core::domain::{ActionKind, DocumentRef, Stage};
use bookkeeper_core::event::actor;
use bookkeeper_core::lifecycle::judged_proposal;
use bookkeeper_core::{ActionState, Cursor, EventType, Phase, RecordedEvent, Store, StoreError, TypeFilter};
use bookkeeper_policy_sdk::{Outcome, Proposal};
use chrono::{DateTime, Utc};

use crate::backtest;
use crate::decide::DecisionRecord;
use crate::policy::{combine, Mode};
use crate::proposal;

/// One action as the desk shows it.
#[derive(Debug, Clone)]
pub struct ActionView {
    /// The correlation id.
    pub id: String,
    /// Receipt or invoice.
    pub kind: Option<ActionKind>,
    /// The proposal as the policies saw it.
    pub proposal: Proposal,
    /// When it was proposed.
    pub proposed_at: DateTime<Utc>,
    /// The document the proposal names.
    pub document: Option<DocumentRef>,
    /// Where it is now.
    pub phase: Phase,
    /// What the policies recorded when they judged it (facts and verdicts).
    pub record: Option<DecisionRecord>,
    /// The whole story, in log order.
    pub events: Vec<RecordedEvent>,
}

impl ActionView {
    /// The action a story tells, if it holds a proposal.
    pub fn of(events: Vec<RecordedEvent>) -> Option<ActionView> {
        let state = ActionState::fold(&events);
        let first = state.proposal()?;
        let payload = &first.payload;
        let document = ["document", "receipt"]
            .iter()
            .find_map(|k| payload.get(*k).and_then(|d| serde_json::from_value::<DocumentRef>(d.clone()).ok()));
        let record = events
            .iter()
            .rev()
            .filter(|e| e.actor == actor::SYSTEM_AUTO && judged_proposal(e) == Some(first.event_id))
            .find_map(|e| serde_json::from_value::<DecisionRecord>(e.metadata.clone()).ok());
        let view = ActionView {
            id: first.correlation_id.clone(),
            kind: state.kind,
            proposal: proposal::from_event(first),
            proposed_at: first.created_at,
            document,
            phase: state.phase(),
            record,
            events: Vec::new(),
        };
        Some(ActionView { events, ..view })
    }

    /// Reads and folds an action's story.
    pub async fn read(store: &Store, id: &str) -> Result<Option<ActionView>, StoreError> {
        Ok(ActionView::of(store.read_correlation(id).await?))
    }

    /// The requester's canonical id (`user:` taken off).
    pub fn requester(&self) -> &str {
        let r = self.proposal.requested_by.as_str();
        r.strip_prefix("user:").unwrap_or(r)
    }

    /// Whether a person may still approve it.
    pub fn approvable(&self) -> bool {
        matches!(self.phase, Phase::AwaitingDecision | Phase::Escalated | Phase::FailedFinally | Phase::Skipped)
    }

    /// Whether a person may still reject it: before execution, including the
    /// emergency stop of an approval not yet carried out.
    pub fn rejectable(&self) -> bool {
        self.approvable() || self.phase == Phase::Approved
    }

    /// The references at Fiken or Folio, once executed.
    pub fn remote_ids(&self) -> Vec<(String, String)> {
        self.events
            .iter()
            .filter(|e| matches!(ActionKind::parse(&e.event_type), Some((_, Stage::Executed))))
            .filter_map(|e| e.payload.get("remote_ids").and_then(|r| r.as_object()).cloned())
            .flat_map(|ids| {
                ids.into_iter().map(|(k, v)| (k, v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
            })
            .collect()
    }
}

/// Every change to the policy set, newest first.
pub async fn policy_history(store: &Store) -> Result<Vec<RecordedEvent>, StoreError> {
    let filter = TypeFilter::of([EventType::PolicyPublished.name(), EventType::PolicyRetired.name()]);
    let mut out = read_all(store, &filter).await?;
    out.reverse();
    Ok(out)
}

async fn read_all(store: &Store, filter: &TypeFilter) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut out = Vec::new();
    let mut cursor = Cursor::START;
    loop {
        let batch = store.read_waiting(cursor, filter, 1000, std::time::Duration::ZERO).await?;
        let Some(last) = batch.events.last() else { return Ok(out) };
        cursor = last.cursor();
        out.extend(batch.events);
    }
}

/// How a shadow policy would have changed decisions it saw.
#[derive(Debug, Clone, Default)]
pub struct ShadowResults {
    /// Proposals judged while it was in shadow.
    pub seen: usize,
    /// Those it would have decided differently had it been enforcing: id, what
    /// was decided, what would have been.
    pub different: Vec<(String, Outcome, Outcome)>,
}

/// The proposals judged with the policy of this digest in shadow, and which of
/// them its verdict, enforcing, would have decided otherwise.
pub async fn shadow_results(store: &Store, digest: &str) -> Result<ShadowResults, StoreError> {
    let mut results = ShadowResults::default();
    for recorded in backtest::history(store, None).await? {
        let verdicts = &recorded.record.verdicts;
        if !verdicts.iter().any(|v| v.digest == digest && v.mode == Mode::Shadow) {
            continue;
        }
        results.seen += 1;
        let promoted = verdicts
            .iter()
            .cloned()
            .map(|mut v| {
                if v.digest == digest {
                    v.mode = Mode::Enforcing;
                }
                v
            })
            .collect();
        let would = combine(promoted).outcome;
        if would != recorded.outcome() {
            results.different.push((recorded.proposal.correlation_id.clone(), recorded.outcome(), would));
        }
    }
    Ok(results)
}

/// The most actions an audit search lists.
pub const MAX_FOUND: usize = 50;

/// Actions whose correlation id is `query`, whose vendor's name contains it, or
/// whose invoice number is it (case ignored), newest first.
pub async fn find_actions(store: &Store, query: &str) -> Result<Vec<ActionView>, StoreError> {
    let q = query.trim().to_lowercase();
    if q.is_empty() {
        return Ok(Vec::new());
    }
    let filter = TypeFilter::of(EventType::action_types(&[Stage::Proposed]));
    let mut ids = Vec::new();
    for event in read_all(store, &filter).await?.into_iter().rev() {
        let p = proposal::from_event(&event);
        let vendor = p.vendor.as_ref().map(|v| v.name.to_lowercase()).unwrap_or_default();
        let invoice = p.invoice_number.as_deref().map(str::to_lowercase).unwrap_or_default();
        let hit = event.correlation_id.to_lowercase() == q || vendor.contains(&q) || invoice == q;
        if hit && !ids.contains(&event.correlation_id) {
            ids.push(event.correlation_id.clone());
            if ids.len() == MAX_FOUND {
                break;
            }
        }
    }
    let mut found = Vec::new();
    for id in ids {
        if let Some(view) = ActionView::read(store, &id).await? {
            found.push(view);
        }
    }
    Ok(found)
}
