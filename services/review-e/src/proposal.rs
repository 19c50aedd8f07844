//! From a `...Proposed` event to what a policy sees: the proposal and its facts.
//!
//! The mapping reads the payload loosely (any proposal type with the usual field
//! names works), and is deterministic: `policy replay` and `policy verify` rebuild
//! the same proposal from the same recorded event.

use bookkeeper_core::store::{FactsQuery, ProposalFacts};
use bookkeeper_core::{RecordedEvent, Store, StoreError};
use bookkeeper_policy_sdk::{Facts, Money, Proposal, Vendor, VendorHistory};
use chrono::Datelike;
use serde_json::Value;

/// The proposal a policy judges, built from its event.
pub fn from_event(event: &RecordedEvent) -> Proposal {
    let p = &event.payload;
    let text = |key: &str| p.get(key).and_then(Value::as_str).map(str::to_string);
    let amount = p.get("amount").and_then(|a| {
        Some(Money { minor: a.get("minor")?.as_i64()?, currency: a.get("currency")?.as_str()?.to_string() })
    });
    let vendor = p.get("vendor").and_then(|v| {
        Some(Vendor {
            name: v.get("name")?.as_str()?.to_string(),
            organization_number: v.get("organization_number").and_then(Value::as_str).map(str::to_string),
        })
    });
    let document = ["receipt", "document"].iter().find_map(|k| {
        let d = p.get(*k)?;
        d.get("sha256").and_then(Value::as_str).is_some_and(|s| !s.is_empty()).then_some(d)
    });
    let has_document = document.is_some();
    // The stored content type, parsed into the closed set Bookkeeper keeps; a
    // type outside it is not passed on as if it were known.
    let document_type = document
        .and_then(|d| d.get("content_type"))
        .and_then(Value::as_str)
        .and_then(bookkeeper_core::document::DocumentType::from_mime)
        .map(|t| t.mime().to_string());
    Proposal {
        proposal_type: event.event_type.clone(),
        correlation_id: event.correlation_id.clone(),
        proposed_by: event.actor.clone(),
        requested_by: text("requested_by").unwrap_or_default(),
        amount,
        vendor,
        account: text("account"),
        description: text("description").or_else(|| text("note")),
        invoice_number: text("invoice_number"),
        invoice_date: text("invoice_date"),
        due_date: text("due_date"),
        has_document,
        document_type,
        payload_json: p.to_string(),
    }
}

/// The facts for a proposal, as of the events before it.
/// They come from the facts read model `subscription` keeps, which its lease
/// holder sees folded exactly up to the event in hand.
pub async fn facts_for(
    store: &Store,
    subscription: &str,
    event: &RecordedEvent,
    proposal: &Proposal,
) -> Result<Facts, StoreError> {
    let query = query_for(event, proposal);
    Ok(to_policy_facts(store.proposal_facts(&query, subscription).await?, &query))
}

/// What to ask the facts read model about a proposal.
pub fn query_for(event: &RecordedEvent, proposal: &Proposal) -> FactsQuery {
    FactsQuery {
        before: event.cursor(),
        correlation_id: event.correlation_id.clone(),
        vendor_name: proposal.vendor.as_ref().map(|v| v.name.clone()),
        vendor_org: proposal.vendor.as_ref().and_then(|v| v.organization_number.clone()),
        account: proposal.account.clone(),
        invoice_number: proposal.invoice_number.clone(),
        requested_by: Some(proposal.requested_by.clone()).filter(|r| !r.is_empty()),
        today: event.created_at.date_naive(),
    }
}

/// The facts as policies see them.
pub fn to_policy_facts(f: ProposalFacts, query: &FactsQuery) -> Facts {
    let today = query.today.format("%Y-%m-%d").to_string();
    let count = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
    Facts {
        today,
        vendor_history: VendorHistory {
            payments: count(f.vendor_payments),
            total_minor: f.vendor_total_minor,
            largest_minor: f.vendor_largest_minor,
            last_paid: f.vendor_last_paid,
        },
        account_month_to_date_minor: f.account_month_to_date_minor,
        duplicate_invoice_registered: f.duplicate_invoice_registered,
        duplicate_invoice_proposed: f.duplicate_invoice_proposed,
        requester_proposals_last_30_days: count(f.requester_last_30_days),
        requester_proposals_today: count(f.requester_today),
        weekday: Some(query.today.weekday().number_from_monday() as u8),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_receipt_proposal_maps_to_what_policies_see() {
        let event = RecordedEvent {
            position: 7,
            transaction_id: 0,
            event_id: uuid::Uuid::new_v4(),
            event_type: "ReceiptAttachmentProposed".into(),
            actor: "book-e".into(),
            status: "PROPOSED".into(),
            correlation_id: "c-9".into(),
            causation_id: None,
            payload: json!({
                "requested_by": "user:ola",
                "receipt": {"sha256": "ab", "filename": "r.jpg", "content_type": "image/jpeg"},
                "amount": {"minor": 12_900, "currency": "NOK"},
                "vendor": {"name": "Kiwi"},
                "note": "team lunch"
            }),
            metadata: json!({}),
            created_at: chrono::Utc::now(),
        };
        let p = from_event(&event);
        assert_eq!(p.requested_by, "user:ola");
        assert_eq!(p.amount, Some(Money::nok(12_900)));
        assert_eq!(p.vendor.unwrap().name, "Kiwi");
        assert!(p.has_document);
        assert_eq!(p.document_type.as_deref(), Some("image/jpeg"));
        assert_eq!(p.description.as_deref(), Some("team lunch"));
    }
}
