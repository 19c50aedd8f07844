//! New or unusual vendor: a person looks at the first payment to a vendor, and
//! at any amount far above what we have paid that vendor before.

use bookkeeper_policy_sdk::{Decision, Facts, Metadata, Money, Policy, Proposal};

/// An amount above this many times the largest earlier payment is unusual.
const FACTOR: i64 = 3;

pub struct UnusualVendor;

impl Policy for UnusualVendor {
    fn metadata() -> Metadata {
        Metadata::new(
            "unusual-vendor",
            "1.0.0",
            "Escalates the first payment to a vendor and amounts far above its history",
        )
    }

    fn evaluate(proposal: &Proposal, facts: &Facts) -> Decision {
        let Some(vendor) = &proposal.vendor else {
            return Decision::escalate("the vendor is unknown");
        };
        let history = &facts.vendor_history;
        if history.payments == 0 {
            return Decision::escalate(format!("first payment to {}", vendor.name));
        }
        let Some(amount) = &proposal.amount else {
            return Decision::escalate(format!("the amount for {} is unknown", vendor.name));
        };
        let ceiling = history.largest_minor.saturating_mul(FACTOR);
        if amount.minor > ceiling {
            return Decision::escalate(format!(
                "{amount} to {} is more than {FACTOR} times the largest earlier payment ({})",
                vendor.name,
                Money::nok(history.largest_minor)
            ));
        }
        Decision::approve(format!(
            "{} was paid {} times before (largest {}); {amount} is within that history",
            vendor.name,
            history.payments,
            Money::nok(history.largest_minor)
        ))
    }
}

bookkeeper_policy_sdk::export_policy!(UnusualVendor);

#[cfg(test)]
mod tests {
    #[test]
    fn recorded_cases() {
        bookkeeper_policy_sdk::testing::check_cases::<super::UnusualVendor>(include_str!("../cases.json"));
    }
}
