//! The Cost API's read model: costs per month, account and vendor, built from
//! executed actions and their proposals. Kept in memory, and saved beside the
//! log with the cursor it is complete up to (`Store::save_read_model`), so a
//! restart resumes from there instead of reading the whole log again. The log
//! stays the truth: a saved ledger in a format this release does not know is
//! thrown away and rebuilt.

use std::collections::{BTreeMap, HashSet};

use bookkeeper_core::domain::MonthlyCostReport;
use bookkeeper_core::RecordedEvent;
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

/// Account code for receipts, which name none.
pub const RECEIPTS_ACCOUNT: &str = "receipts";

/// One month's costs in one currency.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonthCosts {
    /// Sum, minor units.
    pub total_minor: i64,
    /// Per account code.
    pub by_account: BTreeMap<String, i64>,
    /// Per vendor name.
    pub by_vendor: BTreeMap<String, i64>,
    /// How many executed actions.
    pub actions: u64,
}

/// Costs by (`YYYY-MM`, currency).
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    months: BTreeMap<(String, String), MonthCosts>,
    counted: HashSet<String>,
}

/// What one executed action cost, read from its proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cost {
    /// `YYYY-MM` of the document's date (invoice date, receipt date), else of the execution.
    pub month: String,
    /// ISO currency.
    pub currency: String,
    /// Minor units.
    pub minor: i64,
    /// Account code.
    pub account: String,
    /// Vendor name.
    pub vendor: String,
}

/// `YYYY-MM` of a date.
pub fn month_of(date: NaiveDate) -> String {
    format!("{:04}-{:02}", date.year(), date.month())
}

/// Reads the cost of an executed action from its proposal; `None` when the
/// proposal has no amount (nothing to count).
pub fn cost_of(executed: &RecordedEvent, proposal: &RecordedEvent) -> Option<Cost> {
    let p = &proposal.payload;
    let amount = p.get("amount")?;
    let minor = amount.get("minor")?.as_i64()?;
    let currency = amount.get("currency")?.as_str()?.to_string();
    let date = ["invoice_date", "date"]
        .iter()
        .find_map(|k| p.get(*k).and_then(|d| d.as_str()).and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()))
        .unwrap_or_else(|| executed.created_at.date_naive());
    Some(Cost {
        month: month_of(date),
        currency,
        minor,
        account: p.get("account").and_then(|a| a.as_str()).unwrap_or(RECEIPTS_ACCOUNT).to_string(),
        vendor: p.get("vendor").and_then(|v| v.get("name")).and_then(|n| n.as_str()).unwrap_or("unknown").to_string(),
    })
}

/// The name the ledger is saved under.
pub const READ_MODEL: &str = "cost-api.ledger";

/// The saved form's version: a saved ledger of another version is rebuilt.
pub const SAVED_VERSION: u32 = 1;

/// The ledger as saved. Which actions were counted is not kept: a resumed
/// ledger reads only events after its cursor, and the lifecycle counts one
/// execution per action.
#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    version: u32,
    months: Vec<(String, String, MonthCosts)>,
    /// (month, currency) already reported at month close.
    closed: Vec<(String, String)>,
}

impl Ledger {
    /// The saved form, with the months already reported at close.
    pub fn to_saved(&self, closed: &HashSet<(String, String)>) -> serde_json::Value {
        let mut closed: Vec<(String, String)> = closed.iter().cloned().collect();
        closed.sort();
        let saved = Saved {
            version: SAVED_VERSION,
            months: self.months.iter().map(|((m, c), costs)| (m.clone(), c.clone(), costs.clone())).collect(),
            closed,
        };
        serde_json::to_value(saved).unwrap_or_default()
    }

    /// A ledger (and the months reported) from its saved form; `None` when the
    /// form is not this release's.
    pub fn from_saved(value: serde_json::Value) -> Option<(Ledger, HashSet<(String, String)>)> {
        let saved: Saved = serde_json::from_value(value).ok()?;
        if saved.version != SAVED_VERSION {
            return None;
        }
        let months = saved.months.into_iter().map(|(m, c, costs)| ((m, c), costs)).collect();
        Some((Ledger { months, counted: HashSet::new() }, saved.closed.into_iter().collect()))
    }

    /// Counts one executed action once (by its correlation id: one action, one cost).
    pub fn add(&mut self, correlation_id: &str, cost: Cost) -> bool {
        if !self.counted.insert(correlation_id.to_string()) {
            return false;
        }
        let month = self.months.entry((cost.month, cost.currency)).or_default();
        month.total_minor += cost.minor;
        *month.by_account.entry(cost.account).or_default() += cost.minor;
        *month.by_vendor.entry(cost.vendor).or_default() += cost.minor;
        month.actions += 1;
        true
    }

    /// One month's costs per currency.
    pub fn month(&self, month: &str) -> Vec<(String, MonthCosts)> {
        self.months
            .iter()
            .filter(|((m, _), _)| m == month)
            .map(|((_, currency), costs)| (currency.clone(), costs.clone()))
            .collect()
    }

    /// Every month with costs.
    pub fn months(&self) -> Vec<String> {
        let mut months: Vec<String> = self.months.keys().map(|(m, _)| m.clone()).collect();
        months.dedup();
        months
    }

    /// The report of one month, one per currency.
    pub fn reports(&self, month: &str) -> Vec<MonthlyCostReport> {
        self.month(month)
            .into_iter()
            .map(|(currency, c)| MonthlyCostReport {
                month: month.to_string(),
                currency,
                total_minor: c.total_minor,
                by_account: c.by_account,
                by_vendor: c.by_vendor,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(month: &str, minor: i64, account: &str, vendor: &str) -> Cost {
        Cost { month: month.into(), currency: "NOK".into(), minor, account: account.into(), vendor: vendor.into() }
    }

    #[test]
    fn totals_by_account_and_vendor_count_each_action_once() {
        let mut l = Ledger::default();
        assert!(l.add("a", cost("2026-11", 100, "6540", "Kontor AS")));
        assert!(l.add("b", cost("2026-11", 50, "6540", "Kiwi")));
        assert!(l.add("c", cost("2026-11", 25, RECEIPTS_ACCOUNT, "Kiwi")));
        assert!(!l.add("a", cost("2026-11", 100, "6540", "Kontor AS")), "the same action twice counts once");
        assert!(l.add("d", cost("2026-12", 7, "6540", "X")));
        let nov = &l.reports("2026-11")[0];
        assert_eq!(nov.total_minor, 175);
        assert_eq!(nov.by_account["6540"], 150);
        assert_eq!(nov.by_vendor["Kiwi"], 75);
        assert_eq!(l.months(), ["2026-11", "2026-12"]);
        assert!(l.reports("2027-01").is_empty());

        // Saved and read back: the same totals; another version is not read.
        let closed: HashSet<(String, String)> = [("2026-11".to_string(), "NOK".to_string())].into();
        let (back, closed_back) = Ledger::from_saved(l.to_saved(&closed)).unwrap();
        assert_eq!((back.reports("2026-11"), closed_back), (l.reports("2026-11"), closed));
        let mut other = l.to_saved(&HashSet::new());
        other["version"] = 0.into();
        assert!(Ledger::from_saved(other).is_none());
        assert!(Ledger::from_saved(serde_json::json!({"months": "garbage"})).is_none());
    }
}
