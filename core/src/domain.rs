//! Typed payloads of the domain events. The envelope ([`crate::event`]) is the
//! same for every event; these types are what goes in `payload`.
//!
//! Payloads are the one serialized, versioned boundary between services: add
//! fields with `#[serde(default)]`, never rename or repurpose one. Unknown event
//! types still read fine as raw [`RecordedEvent`]s ([`DomainEvent::Other`]).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::event::{status, NewEvent, RecordedEvent};
pub use crate::reading::{ConfirmedReading, Reading};

/// An amount in minor units (øre for NOK), never a float: the policy SDK's type,
/// so a proposal's amount and what a policy is shown are one and the same.
pub use bookkeeper_policy_sdk::Money;

/// Who was paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vendor {
    /// Display name.
    pub name: String,
    /// Norwegian organisation number, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_number: Option<String>,
}

/// A stored document (receipt image, invoice PDF), referred to by content hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentRef {
    /// Lower-case hex SHA-256 of the bytes.
    pub sha256: String,
    /// Original file name.
    pub filename: String,
    /// MIME type.
    pub content_type: String,
}

/// What a receipt should be attached to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AttachmentTarget {
    /// A bank event (transaction) at Folio.
    FolioEvent {
        /// Folio's event id.
        event_id: String,
    },
    /// A purchase in Fiken.
    FikenPurchase {
        /// Fiken's purchase id.
        purchase_id: i64,
    },
}

/// The kinds of action that go through propose, review, execute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ActionKind {
    /// Attach a receipt to a bank transaction or purchase.
    ReceiptAttachment,
    /// Register a supplier invoice as a purchase.
    InvoiceRegistration,
}

impl ActionKind {
    /// Every kind.
    pub const ALL: [ActionKind; 2] = [ActionKind::ReceiptAttachment, ActionKind::InvoiceRegistration];

    /// The action's name, which every one of its event types starts with:
    /// `ReceiptAttachment`.
    pub fn name(self) -> &'static str {
        match self {
            ActionKind::ReceiptAttachment => "ReceiptAttachment",
            ActionKind::InvoiceRegistration => "InvoiceRegistration",
        }
    }

    /// The event type of this action at `stage`, e.g. `ReceiptAttachmentApproved`.
    pub fn event_type(self, stage: Stage) -> String {
        format!("{}{}", self.name(), stage.suffix())
    }

    /// Splits an event type into its action kind and stage, if it is one.
    pub fn parse(event_type: &str) -> Option<(ActionKind, Stage)> {
        ActionKind::ALL.iter().find_map(|kind| {
            let rest = event_type.strip_prefix(kind.name())?;
            Stage::ALL.iter().find(|s| s.suffix() == rest).map(|s| (*kind, *s))
        })
    }
}

/// Where an action is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Stage {
    /// Book-E read the document and waits for the person to confirm what it
    /// read: nothing is proposed yet, and nothing decides on a reading.
    Read,
    /// Book-E proposed it.
    Proposed,
    /// A policy or a person approved it.
    Approved,
    /// A policy or a person rejected it.
    Rejected,
    /// A policy asked a person to decide.
    Escalated,
    /// The Accounting API claimed it and is about to call Fiken or Folio; from
    /// here on it can no longer be stopped by a rejection.
    ExecutionStarted,
    /// The Accounting API carried it out.
    Executed,
    /// Carrying it out failed (maybe to be retried).
    ExecutionFailed,
    /// The Accounting API did not carry it out, and says why (rejected meanwhile, ...).
    ExecutionSkipped,
}

impl Stage {
    /// Every stage.
    pub const ALL: [Stage; 9] = [
        Stage::Read,
        Stage::Proposed,
        Stage::Approved,
        Stage::Rejected,
        Stage::Escalated,
        Stage::ExecutionStarted,
        Stage::Executed,
        Stage::ExecutionFailed,
        Stage::ExecutionSkipped,
    ];

    fn suffix(self) -> &'static str {
        match self {
            Stage::Read => "Read",
            Stage::Proposed => "Proposed",
            Stage::Approved => "Approved",
            Stage::Rejected => "Rejected",
            Stage::Escalated => "Escalated",
            Stage::ExecutionStarted => "ExecutionStarted",
            Stage::Executed => "Executed",
            Stage::ExecutionFailed => "ExecutionFailed",
            Stage::ExecutionSkipped => "ExecutionSkipped",
        }
    }
}

/// A payload with a fixed event type.
pub trait Payload: Serialize + DeserializeOwned {
    /// The event type this payload travels under.
    const TYPE: &'static str;
    /// The status such an event carries.
    const STATUS: &'static str;

    /// Wraps the payload in a new event.
    fn into_event(self, actor: impl Into<String>, correlation_id: impl Into<String>) -> NewEvent {
        let payload = serde_json::to_value(&self).unwrap_or_else(|_| serde_json::json!({}));
        NewEvent::new(Self::TYPE, actor, Self::STATUS, correlation_id).with_payload(payload)
    }
}

/// Book-E proposes attaching a receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptAttachmentProposed {
    /// The person who asked (`user:<id>`).
    pub requested_by: String,
    /// The receipt.
    pub receipt: DocumentRef,
    /// Where it goes.
    pub target: AttachmentTarget,
    /// The amount on the receipt, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Money>,
    /// The vendor, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<Vendor>,
    /// The receipt date, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<NaiveDate>,
    /// Free text from the person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// When the receipt was read by machine: what was read and what the person
    /// confirmed or corrected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reading: Option<ConfirmedReading>,
}

/// Payload of `ReceiptAttachmentRead` and `InvoiceRegistrationRead`: what Book-E
/// read from a document, waiting for the person who sent it to confirm or
/// correct it. The proposal that follows (same correlation id) records what
/// they confirmed ([`ConfirmedReading`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentRead {
    /// The person who sent the document (`user:<id>`): only they may confirm.
    pub requested_by: String,
    /// The document read.
    pub document: DocumentRef,
    /// What was read, each field with its confidence.
    pub read: Reading,
    /// The reader and its engines, with versions.
    pub reader: String,
    /// For a receipt: the bank transaction (Folio event id) it matches, if one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction: Option<String>,
    /// What the person wrote with the document (`vendor=...`), as options by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub given: BTreeMap<String, String>,
}

impl Payload for ReceiptAttachmentProposed {
    const TYPE: &'static str = "ReceiptAttachmentProposed";
    const STATUS: &'static str = status::PROPOSED;
}

/// Book-E proposes registering a supplier invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceRegistrationProposed {
    /// The person who asked.
    pub requested_by: String,
    /// The invoice document.
    pub document: DocumentRef,
    /// The supplier.
    pub vendor: Vendor,
    /// The supplier's invoice number.
    pub invoice_number: String,
    /// Total including VAT.
    pub amount: Money,
    /// Invoice date.
    pub invoice_date: NaiveDate,
    /// Due date.
    pub due_date: NaiveDate,
    /// Expense account code in the chart of accounts, e.g. `6540`.
    pub account: String,
    /// What was bought.
    #[serde(default)]
    pub description: String,
    /// Fiken's VAT type of the purchase (`HIGH` 25 %, `MEDIUM` 15 %, `LOW` 12 %,
    /// `NONE`, ...); absent means `HIGH`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vat_type: Option<String>,
    /// When the invoice was read by machine: what was read and what the person
    /// confirmed or corrected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reading: Option<ConfirmedReading>,
}

impl InvoiceRegistrationProposed {
    /// The VAT type, `HIGH` unless the proposal says otherwise.
    pub fn vat_type(&self) -> &str {
        self.vat_type.as_deref().unwrap_or("HIGH")
    }
}

impl Payload for InvoiceRegistrationProposed {
    const TYPE: &'static str = "InvoiceRegistrationProposed";
    const STATUS: &'static str = status::PROPOSED;
}

/// The old name of [`DecisionPayload`]; "decision" alone is a policy's
/// (`bookkeeper_policy_sdk::Decision`).
#[deprecated(note = "use DecisionPayload")]
pub type Decision = DecisionPayload;

/// Payload of every `...Approved`, `...Rejected` and `...Escalated` event: what a
/// decision in the log says (a policy's own answer is `bookkeeper_policy_sdk::Decision`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionPayload {
    /// Why, in words a person understands.
    pub reason: String,
    /// The person who decided, for human decisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewer: Option<String>,
    /// The proposal event judged (every decision from this release on; older ones
    /// name it in their metadata or causation id: [`crate::lifecycle::judged_proposal`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposal_event_id: Option<uuid::Uuid>,
}

/// Payload of every `...ExecutionStarted` event: one attempt claimed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionStart {
    /// Which attempt this is, from 1.
    pub attempt: u32,
    /// Stable for every attempt of one action (derived from its correlation id):
    /// sent to Fiken/Folio where they keep it, and looked for before a retry.
    pub idempotency_key: String,
    /// True when an earlier attempt may have reached the remote system, so this
    /// attempt looked at the remote state before acting.
    #[serde(default)]
    pub resumed: bool,
}

/// Payload of every `...Executed` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Execution {
    /// Ids at Fiken or Folio, by name (`fiken_purchase_id`, ...).
    #[serde(default)]
    pub remote_ids: BTreeMap<String, String>,
    /// The attempt that succeeded, from 1.
    #[serde(default)]
    pub attempt: u32,
    /// True when the effect was found already done at the remote system (an
    /// earlier attempt landed but its answer was lost), so nothing was sent again.
    #[serde(default)]
    pub found_existing: bool,
}

/// Payload of every `...ExecutionSkipped` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionSkip {
    /// Why it was not carried out.
    pub reason: String,
}

/// Payload of every `...ExecutionFailed` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionFailure {
    /// What went wrong.
    pub error: String,
    /// Whether trying again may succeed.
    pub retryable: bool,
    /// Which attempt this was, from 1.
    pub attempt: u32,
    /// True when no further attempt will be made.
    #[serde(rename = "final")]
    pub is_final: bool,
    /// When not final: about how long until the next attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_in_ms: Option<u64>,
}

/// One thing a compliance check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Which check, e.g. `missing_receipts`.
    pub check: String,
    /// How many items need attention.
    pub count: u32,
    /// Their ids.
    #[serde(default)]
    pub ids: Vec<String>,
    /// Set when the check could not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// CronJob's daily result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplianceCheckCompleted {
    /// One entry per check.
    pub findings: Vec<Finding>,
}

impl Payload for ComplianceCheckCompleted {
    const TYPE: &'static str = "ComplianceCheckCompleted";
    const STATUS: &'static str = status::COMPLETED;
}

/// The Cost API's monthly totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonthlyCostReport {
    /// `YYYY-MM`.
    pub month: String,
    /// Currency of every amount below.
    pub currency: String,
    /// Total in minor units.
    pub total_minor: i64,
    /// Minor units per account code.
    pub by_account: BTreeMap<String, i64>,
    /// Minor units per vendor name.
    pub by_vendor: BTreeMap<String, i64>,
}

impl Payload for MonthlyCostReport {
    const TYPE: &'static str = "MonthlyCostReport";
    const STATUS: &'static str = status::REPORTED;
}

/// A recorded event, read as the domain type its `type` names.
#[derive(Debug, Clone, PartialEq)]
pub enum DomainEvent {
    /// See [`ReceiptAttachmentProposed`].
    ReceiptAttachmentProposed(ReceiptAttachmentProposed),
    /// See [`InvoiceRegistrationProposed`].
    InvoiceRegistrationProposed(InvoiceRegistrationProposed),
    /// An approval, rejection or escalation of an action.
    Decided(ActionKind, Stage, DecisionPayload),
    /// An action carried out.
    Executed(ActionKind, Execution),
    /// An attempt that failed.
    ExecutionFailed(ActionKind, ExecutionFailure),
    /// An attempt claimed.
    ExecutionStarted(ActionKind, ExecutionStart),
    /// Not carried out, with the reason.
    ExecutionSkipped(ActionKind, ExecutionSkip),
    /// See [`ComplianceCheckCompleted`].
    ComplianceCheckCompleted(ComplianceCheckCompleted),
    /// See [`MonthlyCostReport`].
    MonthlyCostReport(MonthlyCostReport),
    /// A type this version does not know; the raw event has everything.
    Other,
}

/// A known event type whose payload does not have the expected shape.
#[derive(Debug, thiserror::Error)]
#[error("payload of `{event_type}` at position {position} does not match its type: {source}")]
pub struct PayloadError {
    /// The event type.
    pub event_type: String,
    /// Where it is in the log.
    pub position: i64,
    #[source]
    source: serde_json::Error,
}

impl DomainEvent {
    /// Reads a recorded event's payload as its domain type.
    pub fn from_recorded(event: &RecordedEvent) -> Result<DomainEvent, PayloadError> {
        let fail = |source| PayloadError { event_type: event.event_type.clone(), position: event.position, source };
        fn parse<T: DeserializeOwned>(v: &serde_json::Value) -> Result<T, serde_json::Error> {
            T::deserialize(v)
        }
        let p = &event.payload;
        Ok(match event.event_type.as_str() {
            ReceiptAttachmentProposed::TYPE => DomainEvent::ReceiptAttachmentProposed(parse(p).map_err(fail)?),
            InvoiceRegistrationProposed::TYPE => DomainEvent::InvoiceRegistrationProposed(parse(p).map_err(fail)?),
            ComplianceCheckCompleted::TYPE => DomainEvent::ComplianceCheckCompleted(parse(p).map_err(fail)?),
            MonthlyCostReport::TYPE => DomainEvent::MonthlyCostReport(parse(p).map_err(fail)?),
            other => match ActionKind::parse(other) {
                Some((kind, stage @ (Stage::Approved | Stage::Rejected | Stage::Escalated))) => {
                    DomainEvent::Decided(kind, stage, parse(p).map_err(fail)?)
                }
                Some((kind, Stage::Executed)) => DomainEvent::Executed(kind, parse(p).map_err(fail)?),
                Some((kind, Stage::ExecutionFailed)) => DomainEvent::ExecutionFailed(kind, parse(p).map_err(fail)?),
                Some((kind, Stage::ExecutionStarted)) => DomainEvent::ExecutionStarted(kind, parse(p).map_err(fail)?),
                Some((kind, Stage::ExecutionSkipped)) => DomainEvent::ExecutionSkipped(kind, parse(p).map_err(fail)?),
                _ => DomainEvent::Other,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn recorded(event: NewEvent) -> RecordedEvent {
        RecordedEvent {
            position: 1,
            transaction_id: 0,
            event_id: event.event_id,
            event_type: event.event_type,
            actor: event.actor,
            status: event.status,
            correlation_id: event.correlation_id,
            causation_id: event.causation_id,
            payload: event.payload,
            metadata: event.metadata,
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn proposals_round_trip_through_json() {
        let p = InvoiceRegistrationProposed {
            requested_by: "user:42".into(),
            document: DocumentRef {
                sha256: "ab".repeat(32),
                filename: "inv.pdf".into(),
                content_type: "application/pdf".into(),
            },
            vendor: Vendor { name: "Kontorleverandøren AS".into(), organization_number: Some("912345678".into()) },
            invoice_number: "F-1001".into(),
            amount: Money::nok(124_900),
            invoice_date: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
            due_date: NaiveDate::from_ymd_opt(2026, 11, 15).unwrap(),
            account: "6540".into(),
            description: "Chairs".into(),
            vat_type: None,
            reading: None,
        };
        let event = p.clone().into_event("book-e", "c-1");
        assert_eq!(event.event_type, "InvoiceRegistrationProposed");
        assert_eq!(event.status, "PROPOSED");
        assert_eq!(event.payload["amount"], json!({"minor": 124900, "currency": "NOK"}));
        match DomainEvent::from_recorded(&recorded(event)).unwrap() {
            DomainEvent::InvoiceRegistrationProposed(back) => assert_eq!(back, p),
            other => panic!("read back as {other:?}"),
        }
    }

    #[test]
    fn decisions_are_read_by_kind_and_stage() {
        let e = NewEvent::new("ReceiptAttachmentRejected", "system:auto", "REJECTED", "c")
            .with_payload(json!({"reason": "duplicate"}));
        assert_eq!(
            DomainEvent::from_recorded(&recorded(e)).unwrap(),
            DomainEvent::Decided(
                ActionKind::ReceiptAttachment,
                Stage::Rejected,
                DecisionPayload { reason: "duplicate".into(), reviewer: None, proposal_event_id: None }
            )
        );
    }

    #[test]
    fn unknown_types_are_other_and_bad_payloads_are_errors() {
        let e = NewEvent::new("SomethingNew", "x", "Y", "c");
        assert_eq!(DomainEvent::from_recorded(&recorded(e)).unwrap(), DomainEvent::Other);
        let bad = NewEvent::new("ReceiptAttachmentExecutionFailed", "system", "FAILED", "c")
            .with_payload(json!({"error": 5}));
        let err = DomainEvent::from_recorded(&recorded(bad)).unwrap_err();
        assert!(err.to_string().contains("ReceiptAttachmentExecutionFailed"));
    }

    #[test]
    fn money_displays_without_floats() {
        assert_eq!(Money::nok(124_905).to_string(), "1249.05 NOK");
        assert_eq!(Money::nok(-5).to_string(), "-0.05 NOK");
    }

    #[test]
    fn action_types_parse_both_ways() {
        for kind in ActionKind::ALL {
            for stage in Stage::ALL {
                assert_eq!(ActionKind::parse(&kind.event_type(stage)), Some((kind, stage)));
            }
        }
        assert_eq!(ActionKind::parse("ReceiptAttachment"), None);
    }
}
