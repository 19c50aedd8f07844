//! Small receipts: attach a receipt without asking anyone when it is under
//! 1 000 NOK, a document is attached, and we have paid the vendor before.

use bookkeeper_policy_sdk::{Decision, Facts, Metadata, Money, Policy, Proposal};

/// The auto-approval limit: receipts at or above it go to a person.
const LIMIT: i64 = 1_000 * 100;

pub struct SmallReceipts;

impl Policy for SmallReceipts {
    fn metadata() -> Metadata {
        Metadata::new(
            "small-receipts",
            "1.0.0",
            "Approves receipts under 1 000 NOK with a document, from a known vendor",
        )
        .applies_to(["ReceiptAttachmentProposed"])
    }

    fn evaluate(proposal: &Proposal, facts: &Facts) -> Decision {
        if !proposal.has_document {
            return Decision::escalate("no receipt document is attached");
        }
        let Some(amount) = &proposal.amount else {
            return Decision::escalate("the receipt's amount is unknown");
        };
        if amount.currency != "NOK" {
            return Decision::escalate(format!("the receipt is in {}, not NOK", amount.currency));
        }
        if amount.minor <= 0 {
            return Decision::escalate(format!("{amount} is not a purchase (refund or zero)"));
        }
        if amount.minor >= LIMIT {
            return Decision::escalate(format!(
                "{amount} is at or above the {} auto-approval limit",
                Money::nok(LIMIT)
            ));
        }
        let Some(vendor) = &proposal.vendor else {
            return Decision::escalate("the vendor is unknown");
        };
        if facts.vendor_history.payments == 0 {
            return Decision::escalate(format!("first receipt from {}", vendor.name));
        }
        Decision::approve(format!(
            "{amount} from known vendor {} ({} earlier payments), under the {} limit",
            vendor.name,
            facts.vendor_history.payments,
            Money::nok(LIMIT)
        ))
    }
}

bookkeeper_policy_sdk::export_policy!(SmallReceipts);

#[cfg(test)]
mod tests {
    #[test]
    fn recorded_cases() {
        bookkeeper_policy_sdk::testing::check_cases::<super::SmallReceipts>(include_str!("../cases.json"));
    }
}
