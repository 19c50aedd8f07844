//! Monthly budget: ask a person before spending on an account would pass its
//! budget for the month. Budgets are part of the policy: change them by
//! publishing a new version.

use bookkeeper_policy_sdk::{Decision, Facts, Metadata, Money, Policy, Proposal};

/// Monthly budgets per expense account (Norwegian standard chart), in øre.
const BUDGETS: &[(&str, &str, i64)] = &[
    ("6540", "inventar", 20_000 * 100),
    ("6800", "kontorrekvisita", 5_000 * 100),
    ("6860", "møter og kurs", 10_000 * 100),
    ("7140", "reisekostnad", 15_000 * 100),
    ("7350", "representasjon", 3_000 * 100),
];

pub struct MonthlyBudget;

impl Policy for MonthlyBudget {
    fn metadata() -> Metadata {
        Metadata::new(
            "monthly-budget",
            "1.0.0",
            "Escalates when month-to-date spend on an account would pass its budget",
        )
    }

    fn evaluate(proposal: &Proposal, facts: &Facts) -> Decision {
        let Some(account) = proposal.account.as_deref() else {
            if proposal.proposal_type == "InvoiceRegistrationProposed" {
                return Decision::escalate("the invoice names no expense account, so its budget cannot be checked");
            }
            return Decision::approve("no expense account given; no monthly budget applies");
        };
        let Some((_, label, budget)) = BUDGETS.iter().find(|(code, _, _)| *code == account) else {
            return Decision::approve(format!("account {account} has no monthly budget"));
        };
        let Some(amount) = &proposal.amount else {
            return Decision::escalate(format!(
                "the amount is unknown; account {account} ({label}) has a monthly budget"
            ));
        };
        if amount.currency != "NOK" {
            return Decision::escalate(format!("budgets are in NOK; this is {}", amount.currency));
        }
        let after = facts.account_month_to_date_minor.saturating_add(amount.minor);
        if after > *budget {
            return Decision::escalate(format!(
                "{amount} would bring account {account} ({label}) to {} this month, over its {} budget",
                Money::nok(after),
                Money::nok(*budget)
            ));
        }
        Decision::approve(format!(
            "account {account} ({label}) stays within budget: {} of {} this month",
            Money::nok(after),
            Money::nok(*budget)
        ))
    }
}

bookkeeper_policy_sdk::export_policy!(MonthlyBudget);

#[cfg(test)]
mod tests {
    #[test]
    fn recorded_cases() {
        bookkeeper_policy_sdk::testing::check_cases::<super::MonthlyBudget>(include_str!("../cases.json"));
    }
}
