//! Which readings still wait for the person who sent them: what a plain "yes"
//! confirms. Kept by following the log from where it was last read (readings
//! and proposals only), and saved beside the log with that cursor, so a "yes"
//! costs what was appended since the last one, not every reading ever made,
//! and a restart resumes instead of reading the log again.
//!
//! It is an index, not a judge: the reading it names is checked against its own
//! story (sender, phase) before anything is proposed, so a stale or damaged
//! index can only fail to find a reading, never confirm someone else's.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bookkeeper_core::domain::Stage;
use bookkeeper_core::{lifecycle, Cursor, EventType, RecordedEvent, Store, StoreError, TypeFilter};
use serde::{Deserialize, Serialize};

/// The name the index is saved under (Book-E's own row: each role sees only its own).
pub const READ_MODEL: &str = "book-e.waiting-readings";

/// The saved form's version: a saved index of another form is rebuilt from the log.
const FORM: u32 = 1;

/// Events read per page while catching up.
const PAGE: usize = 1000;

/// How long a catch-up waits for events committed behind an older open
/// transaction: a reading appended a moment ago must be seen by the "yes" after it.
const PATIENCE: Duration = Duration::from_secs(2);

/// Saved at most this often while catching up (and always when a catch-up ends
/// having moved).
const SAVE_EVERY: Duration = Duration::from_secs(30);

/// Readings not yet proposed, per sender.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Waiting {
    form: u32,
    /// Complete up to here.
    at: Cursor,
    /// Sender (`user:<id>`) → read position → correlation id.
    by_sender: BTreeMap<String, BTreeMap<i64, String>>,
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

    /// Folds one event: a reading waits until a proposal of its action appears.
    pub fn apply(&mut self, event: &RecordedEvent) {
        match lifecycle::stage(&event.event_type) {
            Some(Stage::Read) => {
                let Some(sender) = event.payload.get("requested_by").and_then(|r| r.as_str()) else { return };
                self.by_sender
                    .entry(sender.to_string())
                    .or_default()
                    .insert(event.position, event.correlation_id.clone());
            }
            Some(Stage::Proposed) => self.forget(&event.correlation_id),
            _ => {}
        }
        self.at = self.at.max(event.cursor());
    }

    /// Drops every waiting entry of an action (proposed, or found not waiting).
    pub fn forget(&mut self, correlation_id: &str) {
        for readings in self.by_sender.values_mut() {
            readings.retain(|_, c| c != correlation_id);
        }
        self.by_sender.retain(|_, readings| !readings.is_empty());
    }

    /// The sender's waiting readings, newest first.
    pub fn of(&self, sender: &str) -> Vec<String> {
        self.by_sender.get(sender).map(|r| r.values().rev().cloned().collect()).unwrap_or_default()
    }

    /// How many readings wait, for everyone.
    pub fn count(&self) -> usize {
        self.by_sender.values().map(BTreeMap::len).sum()
    }

    fn from_saved(state: serde_json::Value) -> Option<Waiting> {
        serde_json::from_value::<Waiting>(state).ok().filter(|w| w.form == FORM)
    }
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
    /// what came after is read. An error leaves it where it was.
    pub async fn current(&mut self, store: &Store) -> Result<&Waiting, StoreError> {
        let mut index = match self.index.take() {
            Some(index) => index,
            None => Self::load(store).await,
        };
        let at_start = index.at;
        let caught_up = Self::catch_up(&mut index, store, &mut self.saved).await;
        let moved = index.at > at_start;
        let index = self.index.insert(index);
        caught_up?;
        if moved {
            Self::save(index, store, &mut self.saved).await;
        }
        Ok(index)
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

    /// Reads what came after the index, page by page (each page applied whole),
    /// saving now and then on a long way.
    async fn catch_up(index: &mut Waiting, store: &Store, saved: &mut Option<Instant>) -> Result<(), StoreError> {
        let filter = Waiting::filter();
        loop {
            let batch = store.read_waiting(index.at, &filter, PAGE, PATIENCE).await?;
            let full = batch.events.len() == PAGE;
            for event in &batch.events {
                index.apply(event);
            }
            index.at = index.at.max(batch.next);
            if !full {
                return Ok(());
            }
            if saved.is_none_or(|t| t.elapsed() >= SAVE_EVERY) {
                Self::save(index, store, saved).await;
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
    fn a_saved_index_of_another_form_is_rebuilt() {
        let mut w = Waiting::new();
        w.apply(&event(1, ActionKind::ReceiptAttachment, Stage::Read, "a", "user:kari"));
        let saved = serde_json::to_value(&w).unwrap();
        assert_eq!(Waiting::from_saved(saved.clone()), Some(w));
        let mut other = saved;
        other["form"] = json!(FORM + 1);
        assert_eq!(Waiting::from_saved(other), None);
        assert_eq!(Waiting::from_saved(json!({"by_sender": 3})), None);
    }
}
