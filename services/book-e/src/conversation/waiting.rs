//! Which readings still wait for the person who sent them: what a plain "yes"
//! confirms. Kept by following the log from where it was last read (readings
//! and proposals only), and saved beside the log with that cursor, so a "yes"
//! costs what was appended since the last one, not every reading ever made,
//! and a restart resumes instead of reading the log again.
//!
//! It is an index, not a judge: the reading it names is checked against its own
//! story (sender, phase) before anything is proposed, so a stale or damaged
//! index can only fail to find a reading, never confirm someone else's. It keeps
//! each sender's newest [`PER_SENDER`] readings: a reading left unconfirmed past
//! that is still confirmed by `/confirm <id>`, and the index stays small however
//! many documents are dropped and never confirmed.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bookkeeper_core::domain::{ActionKind, Stage};
use bookkeeper_core::{Cursor, EventType, RecordedEvent, Store, StoreError, TypeFilter};
use serde::{Deserialize, Serialize};

/// The name the index is saved under (Book-E's own row: each role sees only its own).
pub const READ_MODEL: &str = "book-e.waiting-readings";

/// The saved form's version: a saved index of another form is rebuilt from the log.
const FORM: u32 = 2;

/// Readings kept per sender, the newest.
pub const PER_SENDER: usize = 50;

/// Events read per page while catching up.
const PAGE: usize = 1000;

/// How long a catch-up waits, at the log's end, for events committed behind an
/// older open transaction: a reading appended a moment ago must be seen by the
/// "yes" after it.
const PATIENCE: Duration = Duration::from_secs(2);

/// Saved at most this often (a restart reads at most this much more of the log).
const SAVE_EVERY: Duration = Duration::from_secs(30);

/// One waiting reading.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Entry {
    correlation_id: String,
    /// Only a proposal of the reading's own kind ends its wait (the lifecycle
    /// ignores one of another kind).
    kind: ActionKind,
}

/// Readings not yet proposed, per sender.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Waiting {
    form: u32,
    /// Complete up to here.
    at: Cursor,
    /// Sender (`user:<id>`) → read position → the reading.
    by_sender: BTreeMap<String, BTreeMap<i64, Entry>>,
    /// Correlation id → (sender, read position): where to forget it. Derived.
    #[serde(skip)]
    place: HashMap<String, (String, i64)>,
}

impl Waiting {
    /// An empty index before the first event.
    pub fn new() -> Waiting {
        Waiting { form: FORM, ..Waiting::default() }
    }

    /// The types the index follows.
    pub fn filter() -> TypeFilter {
        TypeFilter::of(EventType::action_types(&[Stage::Read, Stage::Proposed]))
    }

    /// Folds one event: a reading waits until a proposal of its kind, in its
    /// action, appears.
    pub fn apply(&mut self, event: &RecordedEvent) {
        match ActionKind::parse(&event.event_type) {
            Some((kind, Stage::Read)) => {
                let Some(sender) = event.payload.get("requested_by").and_then(|r| r.as_str()) else { return };
                if self.place.contains_key(&event.correlation_id) {
                    // A second reading of one action: the first is the one the lifecycle keeps.
                    return;
                }
                let readings = self.by_sender.entry(sender.to_string()).or_default();
                readings.insert(event.position, Entry { correlation_id: event.correlation_id.clone(), kind });
                self.place.insert(event.correlation_id.clone(), (sender.to_string(), event.position));
                while readings.len() > PER_SENDER {
                    if let Some((_, oldest)) = readings.pop_first() {
                        self.place.remove(&oldest.correlation_id);
                    }
                }
            }
            Some((kind, Stage::Proposed)) => {
                let waits_for_it = self.place.get(&event.correlation_id).and_then(|(sender, position)| {
                    self.by_sender.get(sender).and_then(|r| r.get(position)).map(|e| e.kind == kind)
                });
                if waits_for_it == Some(true) {
                    self.forget(&event.correlation_id);
                }
            }
            _ => {}
        }
        self.at = self.at.max(event.cursor());
    }

    /// Drops a reading (proposed, or found not waiting).
    pub fn forget(&mut self, correlation_id: &str) {
        let Some((sender, position)) = self.place.remove(correlation_id) else { return };
        if let Some(readings) = self.by_sender.get_mut(&sender) {
            readings.remove(&position);
            if readings.is_empty() {
                self.by_sender.remove(&sender);
            }
        }
    }

    /// The sender's waiting readings, newest first.
    pub fn of(&self, sender: &str) -> Vec<String> {
        self.by_sender
            .get(sender)
            .map(|r| r.values().rev().map(|e| e.correlation_id.clone()).collect())
            .unwrap_or_default()
    }

    /// How many readings wait, for everyone.
    pub fn count(&self) -> usize {
        self.place.len()
    }

    fn from_saved(state: serde_json::Value) -> Option<Waiting> {
        let mut w = serde_json::from_value::<Waiting>(state).ok().filter(|w| w.form == FORM)?;
        w.place = w
            .by_sender
            .iter()
            .flat_map(|(sender, readings)| {
                readings.iter().map(move |(position, e)| (e.correlation_id.clone(), (sender.clone(), *position)))
            })
            .collect();
        Some(w)
    }
}

/// The index after a catch-up.
#[derive(Debug)]
pub enum Current<'a> {
    /// Complete up to the log's end.
    Complete(&'a Waiting),
    /// Complete up to events still held back at the log's end.
    Incomplete,
}

/// The index with what it needs to stay current: loaded on first use, caught up
/// before each lookup.
#[derive(Debug, Default)]
pub struct WaitingReadings {
    index: Option<Waiting>,
    saved: Option<Instant>,
}

impl WaitingReadings {
    /// The index as of the log's end: loaded (or built) on first use, then only
    /// what came after is read. Each page read is applied whole, in place, so an
    /// error or a dropped request leaves it complete up to a cursor.
    ///
    /// `Incomplete` when events committed at the log's end were still held back
    /// behind an older open transaction after [`PATIENCE`]: the newest reading may
    /// be among them, so the caller must not take the newest it sees for the newest.
    pub async fn current(&mut self, store: &Store) -> Result<Current<'_>, StoreError> {
        if self.index.is_none() {
            self.index = Some(Self::load(store).await);
        }
        let index = self.index.get_or_insert_with(Waiting::new);
        let filter = Waiting::filter();
        let mut moved = false;
        let held_back = loop {
            let mut batch = store.read(index.at, &filter, PAGE).await?;
            let full = batch.events.len() == PAGE;
            if !full && batch.held_back {
                // At the end: wait briefly for what an older transaction holds back.
                batch = store.read_waiting(index.at, &filter, PAGE, PATIENCE).await?;
            }
            let full = full || batch.events.len() == PAGE;
            for event in &batch.events {
                index.apply(event);
            }
            moved |= batch.next > index.at || !batch.events.is_empty();
            index.at = index.at.max(batch.next);
            if !full {
                break batch.held_back;
            }
            if self.saved.is_none_or(|t| t.elapsed() >= SAVE_EVERY) {
                Self::save(index, store, &mut self.saved).await;
            }
        };
        if moved && self.saved.is_none_or(|t| t.elapsed() >= SAVE_EVERY) {
            Self::save(index, store, &mut self.saved).await;
        }
        Ok(if held_back { Current::Incomplete } else { Current::Complete(index) })
    }

    /// Drops an action the index named but whose story says it is not waiting.
    pub fn forget(&mut self, correlation_id: &str) {
        if let Some(index) = &mut self.index {
            index.forget(correlation_id);
        }
    }

    async fn load(store: &Store) -> Waiting {
        match store.load_read_model(READ_MODEL).await {
            Ok(Some((at, state))) => match Waiting::from_saved(state).filter(|w| w.at == at) {
                Some(w) => {
                    tracing::info!(
                        position = at.position,
                        waiting = w.count(),
                        "waiting readings resumed from their saved index"
                    );
                    w
                }
                None => {
                    tracing::warn!(
                        "the saved waiting readings are not in this release's form; rebuilding from the log"
                    );
                    Waiting::new()
                }
            },
            Ok(None) => Waiting::new(),
            Err(e) => {
                tracing::warn!(error = %e, "could not load the saved waiting readings; rebuilding from the log");
                Waiting::new()
            }
        }
    }

    async fn save(index: &Waiting, store: &Store, saved: &mut Option<Instant>) {
        let state = match serde_json::to_value(index) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "could not encode the waiting readings");
                return;
            }
        };
        match store.save_read_model(READ_MODEL, index.at, &state).await {
            Ok(()) => *saved = Some(Instant::now()),
            Err(e) => {
                tracing::warn!(error = %e, "could not save the waiting readings; a restart reads more of the log")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bookkeeper_core::domain::ActionKind;
    use serde_json::json;

    fn event(position: i64, kind: ActionKind, stage: Stage, correlation: &str, sender: &str) -> RecordedEvent {
        RecordedEvent {
            position,
            transaction_id: 0,
            event_id: uuid::Uuid::new_v4(),
            event_type: kind.event_type(stage),
            actor: "book-e".into(),
            status: "READ".into(),
            correlation_id: correlation.into(),
            causation_id: None,
            payload: json!({ "requested_by": sender }),
            metadata: json!({}),
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn a_reading_waits_until_its_action_is_proposed_and_the_newest_comes_first() {
        let mut w = Waiting::new();
        w.apply(&event(1, ActionKind::ReceiptAttachment, Stage::Read, "a", "user:kari"));
        w.apply(&event(2, ActionKind::InvoiceRegistration, Stage::Read, "b", "user:kari"));
        w.apply(&event(3, ActionKind::ReceiptAttachment, Stage::Read, "c", "user:ola"));
        assert_eq!(w.of("user:kari"), vec!["b".to_string(), "a".to_string()]);
        assert_eq!(w.of("user:ola"), vec!["c".to_string()]);
        w.apply(&event(4, ActionKind::InvoiceRegistration, Stage::Proposed, "b", "user:kari"));
        assert_eq!(w.of("user:kari"), vec!["a".to_string()]);
        assert_eq!(w.count(), 2);
        assert_eq!(w.at.position, 4);
        assert!(w.of("user:nobody").is_empty());
    }

    #[test]
    fn only_a_proposal_of_the_readings_kind_ends_its_wait() {
        let mut w = Waiting::new();
        w.apply(&event(1, ActionKind::ReceiptAttachment, Stage::Read, "a", "user:kari"));
        // The lifecycle ignores a proposal of another kind: the reading still waits.
        w.apply(&event(2, ActionKind::InvoiceRegistration, Stage::Proposed, "a", "user:kari"));
        assert_eq!(w.of("user:kari"), vec!["a".to_string()]);
        // A second reading of the same action is not a second reading to confirm.
        w.apply(&event(3, ActionKind::ReceiptAttachment, Stage::Read, "a", "user:kari"));
        assert_eq!(w.count(), 1);
        w.apply(&event(4, ActionKind::ReceiptAttachment, Stage::Proposed, "a", "user:kari"));
        assert_eq!(w.count(), 0);
        assert!(w.of("user:kari").is_empty());
    }

    #[test]
    fn a_sender_who_never_confirms_keeps_only_the_newest_readings() {
        let mut w = Waiting::new();
        for i in 0..(PER_SENDER as i64 + 30) {
            w.apply(&event(i + 1, ActionKind::ReceiptAttachment, Stage::Read, &format!("r{i}"), "user:ola"));
        }
        w.apply(&event(1000, ActionKind::ReceiptAttachment, Stage::Read, "k", "user:kari"));
        let ola = w.of("user:ola");
        assert_eq!(ola.len(), PER_SENDER);
        assert_eq!(ola[0], format!("r{}", PER_SENDER + 29), "the newest first");
        assert_eq!(w.of("user:kari"), vec!["k".to_string()], "another sender's are their own");
        assert_eq!(w.count(), PER_SENDER + 1);
        // A proposal of a reading no longer kept changes nothing.
        w.apply(&event(1001, ActionKind::ReceiptAttachment, Stage::Proposed, "r0", "user:ola"));
        assert_eq!(w.count(), PER_SENDER + 1);
    }

    #[test]
    fn a_saved_index_of_another_form_is_rebuilt() {
        let mut w = Waiting::new();
        w.apply(&event(1, ActionKind::ReceiptAttachment, Stage::Read, "a", "user:kari"));
        let saved = serde_json::to_value(&w).unwrap();
        let resumed = Waiting::from_saved(saved.clone()).expect("this form");
        assert_eq!(resumed, w);
        // What is derived comes back too: the resumed index forgets a proposed reading.
        let mut resumed = resumed;
        resumed.apply(&event(2, ActionKind::ReceiptAttachment, Stage::Proposed, "a", "user:kari"));
        assert_eq!(resumed.count(), 0);
        let mut other = saved;
        other["form"] = json!(FORM + 1);
        assert_eq!(Waiting::from_saved(other), None);
        assert_eq!(Waiting::from_saved(json!({"by_sender": 3})), None);
    }
}
