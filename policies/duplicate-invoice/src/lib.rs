//! Duplicate invoice: never pay the same supplier invoice twice.

use bookkeeper_policy_sdk::{Decision, Facts, Metadata, Policy, Proposal};

pub struct DuplicateInvoice;

impl Policy for DuplicateInvoice {
    fn metadata() -> Metadata {
        Metadata::new(
            "duplicate-invoice",
            "1.0.0",
            "Rejects an invoice whose vendor and invoice number were already registered",
        )
        .applies_to(["InvoiceRegistrationProposed"])
    }

    fn evaluate(proposal: &Proposal, facts: &Facts) -> Decision {
        let vendor = proposal.vendor.as_ref().map(|v| v.name.as_str()).unwrap_or("an unknown vendor");
        let number = match proposal.invoice_number.as_deref().map(str::trim) {
            Some(n) if !n.is_empty() => n,
            _ => return Decision::escalate(format!("the invoice from {vendor} has no invoice number to check")),
        };
        if facts.duplicate_invoice_registered {
            return Decision::reject(format!("invoice {number} from {vendor} is already registered"));
        }
        if facts.duplicate_invoice_proposed {
            return Decision::escalate(format!("another proposal for invoice {number} from {vendor} is still open"));
        }
        Decision::approve(format!("invoice {number} from {vendor} has not been registered before"))
    }
}

bookkeeper_policy_sdk::export_policy!(DuplicateInvoice);

#[cfg(test)]
mod tests {
    #[test]
    fn recorded_cases() {
        bookkeeper_policy_sdk::testing::check_cases::<super::DuplicateInvoice>(include_str!("../cases.json"));
    }
}
