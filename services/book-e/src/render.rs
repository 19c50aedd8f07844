//! Events in words people read. One place, so every door says the same thing.

use bookkeeper_core::domain::{ActionKind, Money, Stage};
use bookkeeper_core::event::actor;
use bookkeeper_core::EventType;
use bookkeeper_core::RecordedEvent;
use serde_json::Value;

use crate::accounting::Transaction;

/// A bank transaction in one line: `2026-11-24 KIWI MAJORSTUEN 499.00 NOK`.
pub fn transaction(t: &Transaction) -> String {
    let name = t.creditor.as_deref().unwrap_or(&t.description);
    format!("{} {name} {}", t.booking_date, Money { minor: -t.amount_minor, currency: t.currency.clone() })
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(|x| x.as_str())
}

fn action(kind: ActionKind) -> &'static str {
    match kind {
        ActionKind::ReceiptAttachment => "receipt",
        ActionKind::InvoiceRegistration => "invoice",
    }
}

/// What a proposal asks for, in a few words.
pub fn proposal_summary(e: &RecordedEvent) -> String {
    let p = &e.payload;
    let amount = p
        .get("amount")
        .and_then(|a| serde_json::from_value::<Money>(a.clone()).ok())
        .map(|m| m.to_string())
        .unwrap_or_else(|| "no amount".into());
    let vendor = p.get("vendor").and_then(|v| text(v, "name")).unwrap_or("an unknown vendor");
    match text(p, "invoice_number") {
        Some(number) => format!("invoice {number} from {vendor}, {amount}"),
        None => format!("receipt from {vendor}, {amount}"),
    }
}

fn remote(ids: &Value) -> String {
    let Some(map) = ids.as_object() else { return String::new() };
    let mut parts = Vec::new();
    if let Some(id) = map.get("fiken_purchase_id").and_then(|v| v.as_str()) {
        parts.push(format!("Fiken purchase {id}"));
    }
    if let Some(id) = map.get("folio_attachment_id").and_then(|v| v.as_str()) {
        parts.push(format!("Folio attachment {id}"));
    }
    parts.join(", ")
}

/// One event of a proposal's story, as a sentence.
pub fn describe(e: &RecordedEvent) -> String {
    let p = &e.payload;
    let reason = e.reason().unwrap_or("no reason given");
    if e.event_type == EventType::SubscriptionEventParked.name() {
        return format!(
            "{} could not handle it and set it aside ({reason}); a person follows up",
            text(p, "subscription").unwrap_or("a service")
        );
    }
    let Some((kind, stage)) = ActionKind::parse(&e.event_type) else {
        return format!("{} ({}, {})", e.event_type, e.actor, e.status);
    };
    let what = action(kind);
    match stage {
        Stage::Read => format!(
            "{} read by {} for {}, waiting for them to confirm it",
            capitalise(what),
            e.actor,
            text(p, "requested_by").unwrap_or("someone")
        ),
        Stage::Proposed => format!(
            "{} proposed by {} for {}: {}",
            capitalise(what),
            e.actor,
            text(p, "requested_by").unwrap_or("someone"),
            proposal_summary(e)
        ),
        Stage::Approved if e.actor == actor::SYSTEM_AUTO => format!("Approved automatically: {reason}"),
        Stage::Approved => format!("Approved by {}: {reason}", e.actor),
        Stage::Rejected if e.actor == actor::SYSTEM_AUTO => format!("Rejected automatically: {reason}"),
        Stage::Rejected => format!("Rejected by {}: {reason}", e.actor),
        Stage::Escalated => format!("Sent to a reviewer: {reason}"),
        Stage::ExecutionStarted => {
            format!("Being carried out (attempt {})", p.get("attempt").and_then(|a| a.as_u64()).unwrap_or(1))
        }
        Stage::Executed => {
            let at = remote(p.get("remote_ids").unwrap_or(&Value::Null));
            if at.is_empty() {
                "Done".to_string()
            } else {
                format!("Done: {at}")
            }
        }
        Stage::ExecutionFailed => {
            let error = text(p, "error").unwrap_or("unknown error");
            let attempt = p.get("attempt").and_then(|a| a.as_u64()).unwrap_or(1);
            if p.get("final").and_then(|f| f.as_bool()).unwrap_or(true) {
                format!("Failed for good after attempt {attempt}: {error}. Nothing more will be tried; a person must look at it.")
            } else {
                format!("Attempt {attempt} failed: {error}. It will be retried.")
            }
        }
        Stage::ExecutionSkipped => format!("Not carried out: {}", text(p, "reason").unwrap_or("no reason given")),
    }
}

/// What to tell the person who asked, for the events they care about (`None` for
/// the rest: a proposal they made themselves, the start of an attempt).
pub fn notification(e: &RecordedEvent) -> Option<String> {
    if e.event_type == EventType::SubscriptionEventParked.name() {
        return Some(format!("Your request: {}", describe(e)));
    }
    let (kind, stage) = ActionKind::parse(&e.event_type)?;
    match stage {
        Stage::Read | Stage::Proposed | Stage::ExecutionStarted => None,
        _ => Some(format!("Your {}: {}", action(kind), describe(e))),
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
