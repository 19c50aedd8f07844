//! The facts read model: what Review-E gives policies about a proposal's history
//! (per vendor, per account and month, per vendor and invoice number, per
//! requester and day), kept in tables instead of scanned from the log for every
//! proposal, so a decision costs the same after ten years as on the first day.
//!
//! One fold, written once against [`Tables`], runs on three stores: PostgreSQL and
//! SQLite (inside the transaction that moves Review-E's checkpoint past the event,
//! so the tables always describe the log exactly up to that checkpoint), and
//! [`FactsModel`] in memory, the fold from scratch that tests and `bookkeeper facts
//! verify` compare the kept tables with. What the facts mean is defined by
//! [`super::Store::proposal_facts_by_scan`], the query over the log that this
//! replaces; tests hold the two equal on random histories.
//!
//! The fold never fails on what an event holds: text keys are bounded, sums
//! saturate, a proposal folded twice counts once. A fold that could fail would
//! stop every decision after the event.

use std::collections::{BTreeMap, HashMap};

use chrono::{Datelike, NaiveDate};

use super::{FactsQuery, ProposalFacts};
use crate::domain::Stage;
use crate::error::StoreError;
use crate::event::{Cursor, RecordedEvent, TypeFilter};
use crate::lifecycle::EventType;

/// The event types the facts are folded from: every action's proposals,
/// executions and rejections.
pub fn filter() -> TypeFilter {
    TypeFilter::of(EventType::action_types(&[Stage::Proposed, Stage::Executed, Stage::Rejected]))
}

/// Longest text kept as a key as it is; a longer one is kept as its SHA-256, so
/// no hostile vendor name or invoice number exceeds what an index row may hold.
const MAX_KEY_BYTES: usize = 256;

/// What one event changes in the facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Folded {
    /// A proposal, with what its facts are keyed by.
    Proposal(ProposalRow),
    /// An action was executed.
    Executed(String),
    /// An action was rejected.
    Rejected(String),
}

/// A proposal as the facts see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProposalRow {
    pub event_id: String,
    pub correlation_id: String,
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub amount_minor: Option<i64>,
    /// `name:<lower-case name>`.
    pub vendor_by_name: Option<String>,
    /// `org:<organisation number>`.
    pub vendor_by_org: Option<String>,
    pub account: Option<String>,
    pub invoice_number: Option<String>,
    pub requested_by: Option<String>,
}

impl ProposalRow {
    fn vendors(&self) -> impl Iterator<Item = &String> {
        self.vendor_by_name.iter().chain(self.vendor_by_org.iter())
    }
}

/// Bounds a text used as a key (see [`MAX_KEY_BYTES`]).
fn key(text: String) -> String {
    if text.len() <= MAX_KEY_BYTES {
        text
    } else {
        format!("sha256:{}", super::sha256_hex(text.as_bytes()))
    }
}

fn vendor_by_name(name: &str) -> String {
    key(format!("name:{}", name.to_lowercase()))
}

fn vendor_by_org(org: &str) -> String {
    key(format!("org:{org}"))
}

/// An amount as the facts count it: an integer (or a string of at most 18
/// digits, as an operator's manual append may write it); anything else is no
/// amount, never a failure.
fn amount(value: Option<&serde_json::Value>) -> Option<i64> {
    match value? {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => {
            let digits = s.strip_prefix('-').unwrap_or(s);
            let plain = !digits.is_empty() && digits.len() <= 18 && digits.bytes().all(|b| b.is_ascii_digit());
            if plain {
                s.parse().ok()
            } else {
                None
            }
        }
        _ => None,
    }
}

/// What `event` changes in the facts, if anything.
pub(crate) fn parse(event: &RecordedEvent) -> Option<Folded> {
    let Some(EventType::Action(_, stage)) = EventType::parse(&event.event_type) else {
        return None;
    };
    let p = &event.payload;
    let text = |value: Option<&serde_json::Value>| value.and_then(|v| v.as_str()).map(str::to_string);
    match stage {
        Stage::Proposed => Some(Folded::Proposal(ProposalRow {
            event_id: event.event_id.to_string(),
            correlation_id: event.correlation_id.clone(),
            day: day(event.created_at.date_naive()),
            amount_minor: amount(p.pointer("/amount/minor")),
            vendor_by_name: text(p.pointer("/vendor/name")).map(|n| vendor_by_name(&n)),
            vendor_by_org: text(p.pointer("/vendor/organization_number")).map(|o| vendor_by_org(&o)),
            account: text(p.get("account")).map(key),
            invoice_number: text(p.get("invoice_number")).map(key),
            requested_by: text(p.get("requested_by")).map(key),
        })),
        Stage::Executed => Some(Folded::Executed(event.correlation_id.clone())),
        Stage::Rejected => Some(Folded::Rejected(event.correlation_id.clone())),
        _ => None,
    }
}

fn day(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

fn month_of(day: &str) -> &str {
    day.get(..7).unwrap_or(day)
}

/// Where a facts query looks, keyed like the tables.
pub(crate) struct Lookup {
    /// The vendor key: by organisation number when the proposal has one, else by name.
    pub vendor: Option<String>,
    pub account: Option<String>,
    /// `YYYY-MM` of the proposal's day.
    pub month: String,
    pub invoice_number: Option<String>,
    pub requested_by: Option<String>,
    /// The first day of the requester's 30-day window, `YYYY-MM-DD`.
    pub window_from: String,
    /// The proposal's day, `YYYY-MM-DD`.
    pub today: String,
}

impl Lookup {
    pub(crate) fn of(q: &FactsQuery) -> Lookup {
        let today = day(q.today);
        let from = q.today.checked_sub_days(chrono::Days::new(29)).unwrap_or(q.today);
        Lookup {
            vendor: match (&q.vendor_org, &q.vendor_name) {
                (Some(org), _) => Some(vendor_by_org(org)),
                (None, Some(name)) => Some(vendor_by_name(name)),
                (None, None) => None,
            },
            account: q.account.clone().map(key),
            month: format!("{:04}-{:02}", q.today.year(), q.today.month()),
            invoice_number: q.invoice_number.clone().map(key),
            requested_by: q.requested_by.clone().map(key),
            window_from: day(from),
            today,
        }
    }
}

/// The facts' storage: the fold reads and changes it only through these.
pub(crate) trait Tables {
    /// Whether the action was executed and rejected, as folded so far.
    async fn action(&mut self, correlation_id: &str) -> Result<(bool, bool), StoreError>;
    async fn set_action(&mut self, correlation_id: &str, executed: bool, rejected: bool) -> Result<(), StoreError>;
    /// Records a proposal; false when it was recorded already.
    async fn add_proposal(&mut self, row: &ProposalRow) -> Result<bool, StoreError>;
    async fn proposals_of(&mut self, correlation_id: &str) -> Result<Vec<ProposalRow>, StoreError>;
    /// One more executed payment to a vendor key.
    async fn add_payment(&mut self, vendor: &str, amount: Option<i64>, day: &str) -> Result<(), StoreError>;
    async fn add_spending(&mut self, account: &str, month: &str, amount: i64) -> Result<(), StoreError>;
    async fn add_invoice(&mut self, vendor: &str, number: &str, registered: i64, open: i64) -> Result<(), StoreError>;
    async fn add_request(&mut self, requested_by: &str, day: &str) -> Result<(), StoreError>;
}

/// Folds one event into the facts.
pub(crate) async fn fold<T: Tables>(tables: &mut T, event: &RecordedEvent) -> Result<(), StoreError> {
    match parse(event) {
        None => Ok(()),
        Some(Folded::Proposal(row)) => {
            if !tables.add_proposal(&row).await? {
                return Ok(());
            }
            if let Some(by) = &row.requested_by {
                tables.add_request(by, &row.day).await?;
            }
            let (executed, rejected) = tables.action(&row.correlation_id).await?;
            if executed {
                count_executed(tables, &row).await?;
            } else if !rejected {
                count_open(tables, &row, 1).await?;
            }
            Ok(())
        }
        Some(Folded::Executed(correlation_id)) => {
            let (executed, rejected) = tables.action(&correlation_id).await?;
            if executed {
                return Ok(());
            }
            tables.set_action(&correlation_id, true, rejected).await?;
            for row in tables.proposals_of(&correlation_id).await? {
                count_executed(tables, &row).await?;
                if !rejected {
                    count_open(tables, &row, -1).await?;
                }
            }
            Ok(())
        }
        Some(Folded::Rejected(correlation_id)) => {
            let (executed, rejected) = tables.action(&correlation_id).await?;
            if rejected {
                return Ok(());
            }
            tables.set_action(&correlation_id, executed, true).await?;
            if !executed {
                for row in tables.proposals_of(&correlation_id).await? {
                    count_open(tables, &row, -1).await?;
                }
            }
            Ok(())
        }
    }
}

async fn count_executed<T: Tables>(tables: &mut T, row: &ProposalRow) -> Result<(), StoreError> {
    for vendor in row.vendors() {
        tables.add_payment(vendor, row.amount_minor, &row.day).await?;
        if let Some(number) = &row.invoice_number {
            tables.add_invoice(vendor, number, 1, 0).await?;
        }
    }
    if let (Some(account), Some(amount)) = (&row.account, row.amount_minor) {
        tables.add_spending(account, month_of(&row.day), amount).await?;
    }
    Ok(())
}

async fn count_open<T: Tables>(tables: &mut T, row: &ProposalRow, delta: i64) -> Result<(), StoreError> {
    if let Some(number) = &row.invoice_number {
        for vendor in row.vendors() {
            tables.add_invoice(vendor, number, 0, delta).await?;
        }
    }
    Ok(())
}

/// One vendor key's executed payments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Payments {
    count: i64,
    total: i64,
    largest: Option<i64>,
    last_paid: Option<String>,
}

/// The facts folded in memory: the fold from scratch the kept tables must equal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FactsModel {
    actions: HashMap<String, (bool, bool)>,
    proposals: HashMap<String, Vec<ProposalRow>>,
    proposal_ids: std::collections::HashSet<String>,
    vendors: BTreeMap<String, Payments>,
    spending: BTreeMap<(String, String), i64>,
    invoices: BTreeMap<(String, String), (i64, i64)>,
    requests: BTreeMap<(String, String), i64>,
}

impl FactsModel {
    /// Folds one event (any event; those that are no facts' business change nothing).
    pub async fn fold(&mut self, event: &RecordedEvent) -> Result<(), StoreError> {
        fold(self, event).await
    }

    /// The facts about a proposal after everything folded so far.
    pub fn facts(&self, q: &FactsQuery) -> ProposalFacts {
        let l = Lookup::of(q);
        let vendor = l.vendor.as_ref().and_then(|v| self.vendors.get(v)).cloned().unwrap_or_default();
        let invoice = match (&l.vendor, &l.invoice_number) {
            (Some(v), Some(n)) => self.invoices.get(&(v.clone(), n.clone())).copied().unwrap_or_default(),
            _ => (0, 0),
        };
        let requests = |from: &str, to: &str| match &l.requested_by {
            Some(by) => self
                .requests
                .range((by.clone(), from.to_string())..=(by.clone(), to.to_string()))
                .fold(0i64, |sum, (_, n)| sum.saturating_add(*n)),
            None => 0,
        };
        ProposalFacts {
            vendor_payments: vendor.count,
            vendor_total_minor: vendor.total,
            vendor_largest_minor: vendor.largest.unwrap_or(0),
            vendor_last_paid: vendor.last_paid,
            account_month_to_date_minor: l
                .account
                .as_ref()
                .and_then(|a| self.spending.get(&(a.clone(), l.month.clone())))
                .copied()
                .unwrap_or(0),
            duplicate_invoice_registered: invoice.0 > 0,
            duplicate_invoice_proposed: invoice.1 > 0,
            requester_last_30_days: requests(&l.window_from, &l.today),
            requester_today: requests(&l.today, &l.today),
        }
    }
}

impl Tables for FactsModel {
    async fn action(&mut self, correlation_id: &str) -> Result<(bool, bool), StoreError> {
        Ok(self.actions.get(correlation_id).copied().unwrap_or_default())
    }

    async fn set_action(&mut self, correlation_id: &str, executed: bool, rejected: bool) -> Result<(), StoreError> {
        self.actions.insert(correlation_id.to_string(), (executed, rejected));
        Ok(())
    }

    async fn add_proposal(&mut self, row: &ProposalRow) -> Result<bool, StoreError> {
        if !self.proposal_ids.insert(row.event_id.clone()) {
            return Ok(false);
        }
        self.proposals.entry(row.correlation_id.clone()).or_default().push(row.clone());
        Ok(true)
    }

    async fn proposals_of(&mut self, correlation_id: &str) -> Result<Vec<ProposalRow>, StoreError> {
        Ok(self.proposals.get(correlation_id).cloned().unwrap_or_default())
    }

    async fn add_payment(&mut self, vendor: &str, amount: Option<i64>, day: &str) -> Result<(), StoreError> {
        let p = self.vendors.entry(vendor.to_string()).or_default();
        p.count += 1;
        p.total = p.total.saturating_add(amount.unwrap_or(0));
        p.largest = match (p.largest, amount) {
            (Some(l), Some(a)) => Some(l.max(a)),
            (l, a) => l.or(a),
        };
        if p.last_paid.as_deref().is_none_or(|last| day > last) {
            p.last_paid = Some(day.to_string());
        }
        Ok(())
    }

    async fn add_spending(&mut self, account: &str, month: &str, amount: i64) -> Result<(), StoreError> {
        let total = self.spending.entry((account.to_string(), month.to_string())).or_default();
        *total = total.saturating_add(amount);
        Ok(())
    }

    async fn add_invoice(&mut self, vendor: &str, number: &str, registered: i64, open: i64) -> Result<(), StoreError> {
        let counts = self.invoices.entry((vendor.to_string(), number.to_string())).or_default();
        counts.0 += registered;
        counts.1 += open;
        Ok(())
    }

    async fn add_request(&mut self, requested_by: &str, day: &str) -> Result<(), StoreError> {
        *self.requests.entry((requested_by.to_string(), day.to_string())).or_default() += 1;
        Ok(())
    }
}

/// What `bookkeeper facts rebuild` did after emptying the facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rebuilt {
    /// It held the lease and folded this many events.
    Folded(u64),
    /// A running Review-E holds the lease; it folds them before its next decision.
    LeftToHolder,
}

/// How far the kept facts are folded, beside the checkpoint they must reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct FactsProgress {
    /// The last event folded ([`Cursor::START`]: none; never built, or reset by a
    /// rebuild).
    pub folded: Cursor,
    /// Review-E's checkpoint: what the facts must be folded up to before the next
    /// proposal is judged.
    pub checkpoint: Cursor,
}

impl FactsProgress {
    /// Whether the facts describe the log exactly up to the checkpoint.
    pub fn in_sync(&self) -> bool {
        self.folded == self.checkpoint
    }
}

/// The SQL both backends run (PostgreSQL placeholders; SQLite's are derived).
pub(crate) mod sql {
    /// Saturating `old + new` of a bigint column in an upsert.
    macro_rules! saturating_add {
        ($table:literal, $column:literal) => {
            concat!(
                $column, " = CASE WHEN excluded.", $column, " > 0 AND ", $table, ".", $column,
                " > 9223372036854775807 - excluded.", $column, " THEN 9223372036854775807 WHEN excluded.", $column,
                " < 0 AND ", $table, ".", $column, " < -9223372036854775808 - excluded.", $column,
                " THEN -9223372036854775808 ELSE ", $table, ".", $column, " + excluded.", $column, " END"
            )
        };
    }

    pub const ACTION: &str = "SELECT executed, rejected FROM facts_actions WHERE correlation_id = $1";
    pub const SET_ACTION: &str = "INSERT INTO facts_actions (correlation_id, executed, rejected) VALUES ($1, $2, $3)
        ON CONFLICT (correlation_id) DO UPDATE SET executed = excluded.executed, rejected = excluded.rejected";
    pub const ADD_PROPOSAL: &str = "INSERT INTO facts_proposals
        (event_id, correlation_id, day, amount_minor, vendor_by_name, vendor_by_org, account, invoice_number)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (event_id) DO NOTHING";
    pub const PROPOSALS_OF: &str = "SELECT event_id, correlation_id, day, amount_minor, vendor_by_name, vendor_by_org,
        account, invoice_number FROM facts_proposals WHERE correlation_id = $1 ORDER BY event_id";
    pub const ADD_PAYMENT: &str = concat!(
        "INSERT INTO facts_vendors (vendor, payments, total_minor, largest_minor, last_paid)
        VALUES ($1, 1, $2, $3, $4) ON CONFLICT (vendor) DO UPDATE SET payments = facts_vendors.payments + 1, ",
        saturating_add!("facts_vendors", "total_minor"),
        ", largest_minor = CASE WHEN excluded.largest_minor IS NULL THEN facts_vendors.largest_minor
            WHEN facts_vendors.largest_minor IS NULL OR excluded.largest_minor > facts_vendors.largest_minor
            THEN excluded.largest_minor ELSE facts_vendors.largest_minor END,
          last_paid = CASE WHEN facts_vendors.last_paid IS NULL OR excluded.last_paid > facts_vendors.last_paid
            THEN excluded.last_paid ELSE facts_vendors.last_paid END"
    );
    pub const ADD_SPENDING: &str = concat!(
        "INSERT INTO facts_account_months (account, month, total_minor) VALUES ($1, $2, $3)
        ON CONFLICT (account, month) DO UPDATE SET ",
        saturating_add!("facts_account_months", "total_minor")
    );
    pub const ADD_INVOICE: &str = "INSERT INTO facts_invoices (vendor, invoice_number, registered, open)
        VALUES ($1, $2, $3, $4) ON CONFLICT (vendor, invoice_number) DO UPDATE
        SET registered = facts_invoices.registered + excluded.registered, open = facts_invoices.open + excluded.open";
    pub const ADD_REQUEST: &str = "INSERT INTO facts_requester_days (requested_by, day, proposals) VALUES ($1, $2, 1)
        ON CONFLICT (requested_by, day) DO UPDATE SET proposals = facts_requester_days.proposals + 1";
    /// Moves the progress with the checkpoint, only when it stands at the
    /// checkpoint now ($3: the subscription): the facts are in sync.
    pub const ADVANCE: &str = "UPDATE facts_progress SET last_transaction_id = $1, last_position = $2
        WHERE id = 1 AND (last_transaction_id, last_position) =
            (SELECT last_transaction_id, last_position FROM subscriptions WHERE name = $3)";
    pub const PROGRESS: &str = "SELECT f.last_transaction_id, f.last_position,
        coalesce(s.last_transaction_id, 0), coalesce(s.last_position, 0)
        FROM facts_progress f LEFT JOIN subscriptions s ON s.name = $1 WHERE f.id = 1";
    /// Whether `$2` holds subscription `$1`'s lease (a catch-up commits only then).
    pub const HOLDS_LEASE: &str = "SELECT count(*) FROM subscriptions WHERE name = $1 AND lease_holder = $2";
    /// The facts of one proposal: $1 vendor key, $2 account, $3 month, $4 invoice
    /// number, $5 requester, $6 first day of the window, $7 today, $8 subscription.
    pub const FACTS: &str = "SELECT
        (SELECT payments FROM facts_vendors WHERE vendor = $1),
        (SELECT total_minor FROM facts_vendors WHERE vendor = $1),
        (SELECT largest_minor FROM facts_vendors WHERE vendor = $1),
        (SELECT last_paid FROM facts_vendors WHERE vendor = $1),
        (SELECT total_minor FROM facts_account_months WHERE account = $2 AND month = $3),
        (SELECT registered FROM facts_invoices WHERE vendor = $1 AND invoice_number = $4),
        (SELECT open FROM facts_invoices WHERE vendor = $1 AND invoice_number = $4),
        (SELECT CAST(sum(proposals) AS BIGINT) FROM facts_requester_days
            WHERE requested_by = $5 AND day BETWEEN $6 AND $7),
        (SELECT proposals FROM facts_requester_days WHERE requested_by = $5 AND day = $7),
        (SELECT last_transaction_id FROM facts_progress WHERE id = 1),
        (SELECT last_position FROM facts_progress WHERE id = 1),
        (SELECT last_transaction_id FROM subscriptions WHERE name = $8),
        (SELECT last_position FROM subscriptions WHERE name = $8)";
    /// The tables a rebuild empties.
    pub const TABLES: [&str; 6] = [
        "facts_proposals",
        "facts_actions",
        "facts_vendors",
        "facts_account_months",
        "facts_invoices",
        "facts_requester_days",
    ];
}

/// The columns of [`sql::FACTS`].
pub(crate) type KeptRow = (
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

/// The facts from a [`sql::FACTS`] row, or [`StoreError::FactsBehind`] when the
/// tables are not folded up to the checkpoint.
pub(crate) fn from_kept(row: KeptRow) -> Result<ProposalFacts, StoreError> {
    let folded = Cursor { transaction_id: row.9.unwrap_or(0), position: row.10.unwrap_or(0) };
    let checkpoint = Cursor { transaction_id: row.11.unwrap_or(0), position: row.12.unwrap_or(0) };
    if folded != checkpoint {
        return Err(StoreError::FactsBehind { folded, checkpoint });
    }
    Ok(ProposalFacts {
        vendor_payments: row.0.unwrap_or(0),
        vendor_total_minor: row.1.unwrap_or(0),
        vendor_largest_minor: row.2.unwrap_or(0),
        vendor_last_paid: row.3,
        account_month_to_date_minor: row.4.unwrap_or(0),
        duplicate_invoice_registered: row.5.unwrap_or(0) > 0,
        duplicate_invoice_proposed: row.6.unwrap_or(0) > 0,
        requester_last_30_days: row.7.unwrap_or(0),
        requester_today: row.8.unwrap_or(0),
    })
}

/// The columns of [`sql::PROPOSALS_OF`].
pub(crate) type ProposalColumns =
    (String, String, String, Option<i64>, Option<String>, Option<String>, Option<String>, Option<String>);

pub(crate) fn proposal_row(c: ProposalColumns) -> ProposalRow {
    ProposalRow {
        event_id: c.0,
        correlation_id: c.1,
        day: c.2,
        amount_minor: c.3,
        vendor_by_name: c.4,
        vendor_by_org: c.5,
        account: c.6,
        invoice_number: c.7,
        // Only a proposal's own fold counts its requester.
        requested_by: None,
    }
}

/// [`Tables`] over a backend's connection, with that backend's placeholders.
macro_rules! tables_on {
    ($conn:ty, $sql:path) => {
        impl crate::store::facts::Tables for $conn {
            async fn action(&mut self, correlation_id: &str) -> Result<(bool, bool), StoreError> {
                let row: Option<(bool, bool)> = sqlx::query_as(&*$sql(crate::store::facts::sql::ACTION))
                    .bind(correlation_id)
                    .fetch_optional(&mut *self)
                    .await?;
                Ok(row.unwrap_or_default())
            }

            async fn set_action(
                &mut self,
                correlation_id: &str,
                executed: bool,
                rejected: bool,
            ) -> Result<(), StoreError> {
                sqlx::query(&*$sql(crate::store::facts::sql::SET_ACTION))
                    .bind(correlation_id)
                    .bind(executed)
                    .bind(rejected)
                    .execute(&mut *self)
                    .await?;
                Ok(())
            }

            async fn add_proposal(&mut self, row: &crate::store::facts::ProposalRow) -> Result<bool, StoreError> {
                let done = sqlx::query(&*$sql(crate::store::facts::sql::ADD_PROPOSAL))
                    .bind(&row.event_id)
                    .bind(&row.correlation_id)
                    .bind(&row.day)
                    .bind(row.amount_minor)
                    .bind(&row.vendor_by_name)
                    .bind(&row.vendor_by_org)
                    .bind(&row.account)
                    .bind(&row.invoice_number)
                    .execute(&mut *self)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn proposals_of(
                &mut self,
                correlation_id: &str,
            ) -> Result<Vec<crate::store::facts::ProposalRow>, StoreError> {
                let rows: Vec<crate::store::facts::ProposalColumns> =
                    sqlx::query_as(&*$sql(crate::store::facts::sql::PROPOSALS_OF))
                        .bind(correlation_id)
                        .fetch_all(&mut *self)
                        .await?;
                Ok(rows.into_iter().map(crate::store::facts::proposal_row).collect())
            }

            async fn add_payment(&mut self, vendor: &str, amount: Option<i64>, day: &str) -> Result<(), StoreError> {
                sqlx::query(&*$sql(crate::store::facts::sql::ADD_PAYMENT))
                    .bind(vendor)
                    .bind(amount.unwrap_or(0))
                    .bind(amount)
                    .bind(day)
                    .execute(&mut *self)
                    .await?;
                Ok(())
            }

            async fn add_spending(&mut self, account: &str, month: &str, amount: i64) -> Result<(), StoreError> {
                sqlx::query(&*$sql(crate::store::facts::sql::ADD_SPENDING))
                    .bind(account)
                    .bind(month)
                    .bind(amount)
                    .execute(&mut *self)
                    .await?;
                Ok(())
            }

            async fn add_invoice(
                &mut self,
                vendor: &str,
                number: &str,
                registered: i64,
                open: i64,
            ) -> Result<(), StoreError> {
                sqlx::query(&*$sql(crate::store::facts::sql::ADD_INVOICE))
                    .bind(vendor)
                    .bind(number)
                    .bind(registered)
                    .bind(open)
                    .execute(&mut *self)
                    .await?;
                Ok(())
            }

            async fn add_request(&mut self, requested_by: &str, day: &str) -> Result<(), StoreError> {
                sqlx::query(&*$sql(crate::store::facts::sql::ADD_REQUEST))
                    .bind(requested_by)
                    .bind(day)
                    .execute(&mut *self)
                    .await?;
                Ok(())
            }
        }
    };
}
pub(crate) use tables_on;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn amounts_are_integers_or_plain_digits_and_nothing_else_fails() {
        assert_eq!(amount(Some(&json!(12_900))), Some(12_900));
        assert_eq!(amount(Some(&json!("-42"))), Some(-42));
        assert_eq!(amount(Some(&json!("12.5"))), None);
        assert_eq!(amount(Some(&json!(12.5))), None);
        assert_eq!(amount(Some(&json!("1234567890123456789"))), None);
        assert_eq!(amount(Some(&json!({"minor": 1}))), None);
        assert_eq!(amount(None), None);
    }

    fn proposal(corr: &str, day: &str, payload: serde_json::Value) -> RecordedEvent {
        RecordedEvent {
            position: 0,
            transaction_id: 0,
            event_id: uuid::Uuid::new_v4(),
            event_type: "InvoiceRegistrationProposed".into(),
            actor: "book-e".into(),
            status: "PROPOSED".into(),
            correlation_id: corr.into(),
            causation_id: None,
            payload,
            metadata: json!({}),
            created_at: format!("{day}T12:00:00Z").parse().unwrap(),
        }
    }

    fn executed(corr: &str) -> RecordedEvent {
        let mut e = proposal(corr, "2026-01-01", json!({}));
        e.event_type = "InvoiceRegistrationExecuted".into();
        e
    }

    #[tokio::test]
    async fn windows_are_the_requesters_30_days_and_the_accounts_calendar_month() {
        let mut model = FactsModel::default();
        let p = |minor: i64| json!({"requested_by": "user:ola", "account": "6800", "amount": {"minor": minor}});
        for (corr, day, minor) in
            [("a", "2026-10-31", 1), ("b", "2026-11-01", 10), ("c", "2026-11-30", 100), ("d", "2026-12-01", 1000)]
        {
            model.fold(&proposal(corr, day, p(minor))).await.unwrap();
            model.fold(&executed(corr)).await.unwrap();
        }
        let q = |today: &str| FactsQuery {
            before: Cursor::START,
            correlation_id: "me".into(),
            vendor_name: None,
            vendor_org: None,
            account: Some("6800".into()),
            invoice_number: None,
            requested_by: Some("user:ola".into()),
            today: today.parse().unwrap(),
        };
        let f = model.facts(&q("2026-11-30"));
        // 30 days up to Nov 30 start on Nov 1: Oct 31 is outside, Dec 1 is after.
        assert_eq!((f.requester_last_30_days, f.requester_today), (2, 1));
        assert_eq!(f.account_month_to_date_minor, 110, "November's executed spending");
        let f = model.facts(&q("2026-12-01"));
        // Up to Dec 1: Nov 2 to Dec 1.
        assert_eq!((f.requester_last_30_days, f.account_month_to_date_minor), (2, 1000));
        // Executed twice, proposed once: counted once.
        model.fold(&executed("d")).await.unwrap();
        assert_eq!(model.facts(&q("2026-12-01")).account_month_to_date_minor, 1000);
    }

    #[test]
    fn a_long_key_is_kept_as_its_hash_and_still_matches() {
        let long = "Å".repeat(1000);
        let kept = vendor_by_name(&long);
        assert!(kept.starts_with("sha256:") && kept.len() < MAX_KEY_BYTES);
        assert_eq!(kept, vendor_by_name(&long.to_lowercase()));
        assert_eq!(vendor_by_name("KIWI"), "name:kiwi");
    }
}
