//! The event envelope: what every entry in the log carries, whatever its payload.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::ValidationError;

/// Largest accepted payload, in bytes of its JSON text.
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;
/// Largest accepted metadata object, in bytes of its JSON text.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;
/// Longest accepted event type and actor.
pub const MAX_NAME_CHARS: usize = 128;
/// Longest accepted status.
pub const MAX_STATUS_CHARS: usize = 64;
/// Longest accepted correlation id.
pub const MAX_CORRELATION_CHARS: usize = 200;

/// Well-known statuses. The column is free text so new services can add their own;
/// these are the ones the existing services write and the views understand.
pub mod status {
    pub const READ: &str = "READ";
    pub const PROPOSED: &str = "PROPOSED";
    pub const AUTO_APPROVED: &str = "AUTO_APPROVED";
    pub const APPROVED: &str = "APPROVED";
    pub const REJECTED: &str = "REJECTED";
    pub const ESCALATED: &str = "ESCALATED";
    pub const EXECUTING: &str = "EXECUTING";
    pub const EXECUTED: &str = "EXECUTED";
    pub const FAILED: &str = "FAILED";
    pub const SKIPPED: &str = "SKIPPED";
    pub const COMPLETED: &str = "COMPLETED";
    pub const REPORTED: &str = "REPORTED";
    pub const PARKED: &str = "PARKED";
    pub const ISSUED: &str = "ISSUED";
    pub const SIGNED_IN: &str = "SIGNED_IN";
    pub const SIGNED_OUT: &str = "SIGNED_OUT";
}

/// Well-known actors.
pub mod actor {
    pub const BOOK_E: &str = "book-e";
    pub const REVIEW_E: &str = "review-e";
    pub const SYSTEM_AUTO: &str = "system:auto";
    pub const SYSTEM: &str = "system";
    pub const CRON: &str = "cron";
    pub const COST_API: &str = "cost-api";

    /// The actor name of a person, as `user:<id>`.
    pub fn user(id: &str) -> String {
        format!("user:{id}")
    }
}

/// An event a writer wants to append. The writer chooses `event_id`, so a retried
/// append of the same event is recognised and written once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    /// Chosen by the writer; the idempotency key of the append.
    pub event_id: Uuid,
    /// Past-tense name, e.g. `ReceiptAttachmentProposed`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Who did it: `book-e`, `system:auto`, `user:<id>`, ...
    pub actor: String,
    /// Where the action stands after this event: `PROPOSED`, `EXECUTED`, ...
    pub status: String,
    /// Shared by every event of one action.
    pub correlation_id: String,
    /// The event that caused this one, if any.
    #[serde(default)]
    pub causation_id: Option<Uuid>,
    /// The domain data, a JSON object.
    #[serde(default = "empty_object")]
    pub payload: Value,
    /// Operational data (trace id, policy digest, ...), a JSON object.
    #[serde(default = "empty_object")]
    pub metadata: Value,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

impl NewEvent {
    /// A new event with a fresh id, an empty payload and empty metadata.
    pub fn new(
        event_type: impl Into<String>,
        actor: impl Into<String>,
        status: impl Into<String>,
        correlation_id: impl Into<String>,
    ) -> Self {
        NewEvent {
            event_id: Uuid::new_v4(),
            event_type: event_type.into(),
            actor: actor.into(),
            status: status.into(),
            correlation_id: correlation_id.into(),
            causation_id: None,
            payload: empty_object(),
            metadata: empty_object(),
        }
    }

    /// Sets the payload.
    pub fn with_payload(mut self, payload: Value) -> Self {
        self.payload = payload;
        self
    }

    /// Sets the metadata.
    pub fn with_metadata(mut self, metadata: Value) -> Self {
        self.metadata = metadata;
        self
    }

    /// Names the event that caused this one.
    pub fn caused_by(mut self, causation_id: Uuid) -> Self {
        self.causation_id = Some(causation_id);
        self
    }

    /// Gives the event an id derived from the event that caused it and what this
    /// writer does with it, and names that event as its cause. A handler that is
    /// run twice for the same event (after a crash or a lost commit) then appends
    /// the same id twice, and the store keeps one.
    pub fn derived_from(mut self, cause: Uuid, purpose: &str) -> Self {
        self.event_id = derived_event_id(cause, purpose);
        self.causation_id = Some(cause);
        self
    }

    /// Sets the event id (for a writer that derives it, e.g. from a request id).
    pub fn with_id(mut self, event_id: Uuid) -> Self {
        self.event_id = event_id;
        self
    }

    /// Checks the limits the store enforces, so a bad event is refused with a clear
    /// reason before anything is sent to the database.
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_name("type", &self.event_type, MAX_NAME_CHARS)?;
        check_name("actor", &self.actor, MAX_NAME_CHARS)?;
        check_name("status", &self.status, MAX_STATUS_CHARS)?;
        check_name("correlation_id", &self.correlation_id, MAX_CORRELATION_CHARS)?;
        check_object("payload", &self.payload, MAX_PAYLOAD_BYTES)?;
        check_object("metadata", &self.metadata, MAX_METADATA_BYTES)?;
        Ok(())
    }
}

/// Namespace of derived event ids (a fixed, random UUID).
const DERIVED_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6b1f_4d8e_2c0a_4f57_9e3b_51c2_a7d4_0e91);

/// A stable event id for "the event `purpose` produced in response to `cause`".
pub fn derived_event_id(cause: Uuid, purpose: &str) -> Uuid {
    let mut name = Vec::with_capacity(16 + purpose.len());
    name.extend_from_slice(cause.as_bytes());
    name.extend_from_slice(purpose.as_bytes());
    Uuid::new_v5(&DERIVED_ID_NAMESPACE, &name)
}

fn check_name(field: &'static str, value: &str, max: usize) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(ValidationError::Empty { field });
    }
    let chars = value.chars().count();
    if chars > max {
        return Err(ValidationError::TooLong { field, max, actual: chars });
    }
    if value.chars().any(|c| c.is_control()) {
        return Err(ValidationError::ControlCharacter { field });
    }
    Ok(())
}

fn check_object(field: &'static str, value: &Value, max: usize) -> Result<(), ValidationError> {
    if !value.is_object() {
        return Err(ValidationError::NotAnObject { field });
    }
    // serde_json's output length equals what both backends store as text;
    // count it without building the string.
    let mut counter = ByteCounter(0);
    let bytes = match serde_json::to_writer(&mut counter, value) {
        Ok(()) => counter.0,
        Err(_) => usize::MAX,
    };
    if bytes > max {
        return Err(ValidationError::TooLarge { field, max, actual: bytes });
    }
    Ok(())
}

struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Where a reader stands in the log: the last event it has seen, in read order.
///
/// Read order is `(transaction_id, position)`. On PostgreSQL `transaction_id` is
/// the appending transaction's id; on SQLite it is always 0 and read order is
/// position order. See ARCHITECTURE.md, "Commit-ordered reads".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Cursor {
    /// Transaction id of the last event seen (0 on SQLite).
    pub transaction_id: i64,
    /// Position of the last event seen.
    pub position: i64,
}

impl Cursor {
    /// Before the first event.
    pub const START: Cursor = Cursor { transaction_id: 0, position: 0 };
}

/// An event as stored, with everything the database assigned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// Global identity of the event in the log, assigned at append.
    pub position: i64,
    /// The appending transaction (PostgreSQL) or 0 (SQLite); with `position`, the
    /// read order.
    pub transaction_id: i64,
    /// The writer-chosen id.
    pub event_id: Uuid,
    /// Event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Who did it.
    pub actor: String,
    /// Where the action stands.
    pub status: String,
    /// The action this event belongs to.
    pub correlation_id: String,
    /// The event that caused this one.
    pub causation_id: Option<Uuid>,
    /// Domain data.
    pub payload: Value,
    /// Operational data.
    pub metadata: Value,
    /// When the database recorded it.
    pub created_at: DateTime<Utc>,
}

impl RecordedEvent {
    /// This event's place in read order.
    pub fn cursor(&self) -> Cursor {
        Cursor { transaction_id: self.transaction_id, position: self.position }
    }

    /// A human-readable reason, when the payload carries one (decisions, failures).
    pub fn reason(&self) -> Option<&str> {
        ["reason", "error", "message"].iter().find_map(|k| self.payload.get(*k).and_then(Value::as_str))
    }
}

/// Which event types a reader wants. An entry that starts with `*` matches by
/// suffix (`*Proposed` matches `ReceiptAttachmentProposed`); others match exactly.
/// An empty filter matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeFilter {
    exact: Vec<String>,
    suffixes: Vec<String>,
}

impl TypeFilter {
    /// Every event.
    pub fn all() -> Self {
        TypeFilter::default()
    }

    /// Only the given types or `*Suffix` patterns.
    pub fn of<I, S>(types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut filter = TypeFilter::default();
        for t in types {
            let t: String = t.into();
            match t.strip_prefix('*') {
                Some(suffix) => filter.suffixes.push(suffix.to_string()),
                None => filter.exact.push(t),
            }
        }
        filter
    }

    /// True when the filter lets every event through.
    pub fn is_all(&self) -> bool {
        self.exact.is_empty() && self.suffixes.is_empty()
    }

    /// Whether an event type passes the filter.
    pub fn matches(&self, event_type: &str) -> bool {
        self.is_all()
            || self.exact.iter().any(|t| t == event_type)
            || self.suffixes.iter().any(|s| event_type.ends_with(s.as_str()))
    }

    pub(crate) fn exact(&self) -> &[String] {
        &self.exact
    }

    /// Suffixes as SQL `LIKE` patterns, with LIKE's own wildcards escaped.
    pub(crate) fn like_patterns(&self) -> Vec<String> {
        self.suffixes
            .iter()
            .map(|s| {
                let escaped = s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
                format!("%{escaped}")
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event() -> NewEvent {
        NewEvent::new("ReceiptAttachmentProposed", "book-e", "PROPOSED", "c-1").with_payload(json!({"amount": 100}))
    }

    #[test]
    fn a_well_formed_event_is_valid() {
        assert_eq!(event().validate(), Ok(()));
    }

    #[test]
    fn empty_names_are_refused_by_field() {
        let mut e = event();
        e.event_type = " ".into();
        assert_eq!(e.validate(), Err(ValidationError::Empty { field: "type" }));
        let mut e = event();
        e.actor = String::new();
        assert_eq!(e.validate(), Err(ValidationError::Empty { field: "actor" }));
    }

    #[test]
    fn oversized_payload_is_refused_with_sizes() {
        let e = event().with_payload(json!({"blob": "x".repeat(MAX_PAYLOAD_BYTES)}));
        match e.validate() {
            Err(ValidationError::TooLarge { field: "payload", max, actual }) => {
                assert_eq!(max, MAX_PAYLOAD_BYTES);
                assert!(actual > max);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[test]
    fn payload_must_be_an_object() {
        let e = event().with_payload(json!([1, 2]));
        assert_eq!(e.validate(), Err(ValidationError::NotAnObject { field: "payload" }));
    }

    #[test]
    fn type_filter_matches_exact_and_suffix() {
        let f = TypeFilter::of(["*Proposed", "ComplianceCheckCompleted"]);
        assert!(f.matches("InvoiceRegistrationProposed"));
        assert!(f.matches("ComplianceCheckCompleted"));
        assert!(!f.matches("InvoiceRegistrationApproved"));
        assert!(TypeFilter::all().matches("Anything"));
        assert_eq!(TypeFilter::of(["*a_b%"]).like_patterns(), vec!["%a\\_b\\%".to_string()]);
    }

    #[test]
    fn derived_ids_are_stable_per_cause_and_purpose() {
        let cause = Uuid::new_v4();
        let a = event().derived_from(cause, "review-e.decision");
        let b = event().derived_from(cause, "review-e.decision");
        let c = event().derived_from(cause, "accounting-api.execution");
        assert_eq!(a.event_id, b.event_id);
        assert_ne!(a.event_id, c.event_id);
        assert_eq!(a.causation_id, Some(cause));
        assert_ne!(derived_event_id(Uuid::new_v4(), "x"), derived_event_id(Uuid::new_v4(), "x"));
    }

    #[test]
    fn new_event_json_uses_the_envelope_names() {
        let e = event();
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "ReceiptAttachmentProposed");
        let back: NewEvent = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }
}
