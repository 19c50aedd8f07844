//! The facts read model: what Review-E gives policies about a proposal's history
//! (per vendor, per account and month, per vendor and invoice number, per
//! requester and day), kept in tables instead of scanned from the log for every
//! proposal, so a decision costs the same after ten years as on the first day.
//!
//! One fold, [`FactsModel::fold`], in memory. From scratch it is the reference
//! the kept tables must equal; for the tables, each backend seeds a model with the
//! stored state a batch of events touches, folds the batch, and adds the changes
//! to the tables in a few statements (`fold_in`), inside the transaction that
//! moves Review-E's checkpoint past the batch, so the tables always describe the
//! log exactly up to that checkpoint. What the facts mean is defined by
//! [`super::Store::proposal_facts_by_scan`], the query over the log that this
//! replaces; tests hold the two equal on random histories.
//!
//! The fold never fails on what an event holds: text keys are bounded, sums
//! saturate, a proposal folded twice counts once. A fold that could fail would
//! stop every decision after the event.

use std::collections::{BTreeMap, HashMap, HashSet};

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
    // A short text that looks like a kept hash is hashed too, so it cannot pose
    // as a long one.
    if text.len() <= MAX_KEY_BYTES && !text.starts_with("sha256:") {
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
    // At most 18 digits either way, as the definition's pattern reads them.
    const MAX: i64 = 999_999_999_999_999_999;
    match value? {
        serde_json::Value::Number(n) => n.as_i64().filter(|a| (-MAX..=MAX).contains(a)),
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
    // A key as the definition reads it (`->>`): a string's text, or a number's or
    // boolean's JSON text; anything else is no key.
    let text = |value: Option<&serde_json::Value>| match value? {
        serde_json::Value::String(s) => Some(s.clone()),
        v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)) => Some(v.to_string()),
        _ => None,
    };
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

impl FactsModel {
    /// Folds one event (any event; those that are no facts' business change nothing).
    pub fn fold(&mut self, event: &RecordedEvent) {
        match parse(event) {
            None => {}
            Some(Folded::Proposal(row)) => {
                if !self.proposal_ids.insert(row.event_id.clone()) {
                    return;
                }
                if let Some(by) = &row.requested_by {
                    *self.requests.entry((by.clone(), row.day.clone())).or_default() += 1;
                }
                let (executed, rejected) = self.action(&row.correlation_id);
                if executed {
                    self.count_executed(&row);
                } else if !rejected {
                    self.count_open(&row, 1);
                }
                self.proposals.entry(row.correlation_id.clone()).or_default().push(row);
            }
            Some(Folded::Executed(correlation_id)) => {
                let (executed, rejected) = self.action(&correlation_id);
                if executed {
                    return;
                }
                self.actions.insert(correlation_id.clone(), (true, rejected));
                for row in self.proposals.get(&correlation_id).cloned().unwrap_or_default() {
                    self.count_executed(&row);
                    if !rejected {
                        self.count_open(&row, -1);
                    }
                }
            }
            Some(Folded::Rejected(correlation_id)) => {
                let (executed, rejected) = self.action(&correlation_id);
                if rejected {
                    return;
                }
                self.actions.insert(correlation_id.clone(), (executed, true));
                if !executed {
                    for row in self.proposals.get(&correlation_id).cloned().unwrap_or_default() {
                        self.count_open(&row, -1);
                    }
                }
            }
        }
    }

    fn action(&self, correlation_id: &str) -> (bool, bool) {
        self.actions.get(correlation_id).copied().unwrap_or_default()
    }

    fn count_executed(&mut self, row: &ProposalRow) {
        for vendor in row.vendors() {
            self.vendors.entry(vendor.clone()).or_default().add(row.amount_minor, &row.day);
            if let Some(number) = &row.invoice_number {
                self.invoices.entry((vendor.clone(), number.clone())).or_default().0 += 1;
            }
        }
        if let (Some(account), Some(amount)) = (&row.account, row.amount_minor) {
            let total = self.spending.entry((account.clone(), month_of(&row.day).to_string())).or_default();
            *total = total.saturating_add(amount);
        }
    }

    fn count_open(&mut self, row: &ProposalRow, delta: i64) {
        if let Some(number) = &row.invoice_number {
            for vendor in row.vendors() {
                self.invoices.entry((vendor.clone(), number.clone())).or_default().1 += delta;
            }
        }
    }
}

/// One vendor key's executed payments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Payments {
    count: i64,
    total: i64,
    largest: Option<i64>,
    last_paid: Option<String>,
}

impl Payments {
    fn add(&mut self, amount: Option<i64>, day: &str) {
        self.count += 1;
        self.total = self.total.saturating_add(amount.unwrap_or(0));
        self.largest = match (self.largest, amount) {
            (Some(l), Some(a)) => Some(l.max(a)),
            (l, a) => l.or(a),
        };
        if self.last_paid.as_deref().is_none_or(|last| day > last) {
            self.last_paid = Some(day.to_string());
        }
    }
}

/// The facts folded in memory. From scratch (`default()` and every event of the
/// log), it is the fold the kept tables must equal; seeded from the tables with
/// what a batch of events touches ([`FactsModel::seeded`]), its aggregates are
/// the batch's changes, which the backends add to the tables in a few statements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FactsModel {
    actions: HashMap<String, (bool, bool)>,
    proposals: HashMap<String, Vec<ProposalRow>>,
    proposal_ids: HashSet<String>,
    vendors: BTreeMap<String, Payments>,
    spending: BTreeMap<(String, String), i64>,
    invoices: BTreeMap<(String, String), (i64, i64)>,
    requests: BTreeMap<(String, String), i64>,
    /// What was seeded from the tables: written back only where it changed.
    seeded_actions: HashMap<String, (bool, bool)>,
    seeded_proposals: HashSet<String>,
}

impl FactsModel {
    /// A model holding the stored state of some actions (their flags and
    /// proposals) and no aggregates: folding a batch into it leaves exactly the
    /// batch's changes.
    pub(crate) fn seeded(actions: Vec<(String, bool, bool)>, proposals: Vec<ProposalRow>) -> FactsModel {
        let mut model = FactsModel::default();
        for (correlation_id, executed, rejected) in actions {
            model.actions.insert(correlation_id.clone(), (executed, rejected));
            model.seeded_actions.insert(correlation_id, (executed, rejected));
        }
        for row in proposals {
            model.proposal_ids.insert(row.event_id.clone());
            model.seeded_proposals.insert(row.event_id.clone());
            model.proposals.entry(row.correlation_id.clone()).or_default().push(row);
        }
        model
    }

    /// The correlations whose stored state folding `events` needs.
    pub(crate) fn touched(events: &[&RecordedEvent]) -> Vec<String> {
        let set: std::collections::BTreeSet<&str> =
            events.iter().filter(|e| parse(e).is_some()).map(|e| e.correlation_id.as_str()).collect();
        set.into_iter().map(str::to_string).collect()
    }

    /// What to write back: new proposals, changed action flags, and the
    /// aggregates' increments.
    pub(crate) fn changes(&self) -> Changes<'_> {
        Changes {
            proposals: self
                .proposals
                .values()
                .flatten()
                .filter(|p| !self.seeded_proposals.contains(&p.event_id))
                .collect(),
            actions: self
                .actions
                .iter()
                .filter(|(c, flags)| self.seeded_actions.get(*c) != Some(flags))
                .map(|(c, (e, r))| (c.as_str(), *e, *r))
                .collect(),
            vendors: self
                .vendors
                .iter()
                .map(|(v, p)| (v.as_str(), p.count, p.total, p.largest, p.last_paid.as_deref()))
                .collect(),
            spending: self.spending.iter().map(|((a, m), t)| (a.as_str(), m.as_str(), *t)).collect(),
            invoices: self
                .invoices
                .iter()
                .filter(|(_, (r, o))| *r != 0 || *o != 0)
                .map(|((v, n), (r, o))| (v.as_str(), n.as_str(), *r, *o))
                .collect(),
            requests: self.requests.iter().map(|((b, d), n)| (b.as_str(), d.as_str(), *n)).collect(),
        }
    }

    /// The facts about a proposal after everything folded so far (from scratch).
    pub fn facts(&self, q: &FactsQuery) -> ProposalFacts {
        self.over(&Kept::default(), &Lookup::of(q))
    }

    /// The facts of the kept tables (`base`) with this model's changes on top: a
    /// batch's earlier events over what the tables held before the batch.
    pub(crate) fn over(&self, base: &Kept, l: &Lookup) -> ProposalFacts {
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
        let spending =
            l.account.as_ref().and_then(|a| self.spending.get(&(a.clone(), l.month.clone()))).copied().unwrap_or(0);
        let largest = match (base.largest, vendor.largest) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let last_paid = match (base.last_paid.clone(), vendor.last_paid) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        ProposalFacts {
            vendor_payments: base.payments + vendor.count,
            vendor_total_minor: base.total.saturating_add(vendor.total),
            vendor_largest_minor: largest.unwrap_or(0),
            vendor_last_paid: last_paid,
            account_month_to_date_minor: base.spending.saturating_add(spending),
            duplicate_invoice_registered: base.registered + invoice.0 > 0,
            duplicate_invoice_proposed: base.open + invoice.1 > 0,
            requester_last_30_days: base.last_30_days.saturating_add(requests(&l.window_from, &l.today)),
            requester_today: base.today.saturating_add(requests(&l.today, &l.today)),
        }
    }
}

/// What the kept tables say for one proposal's keys (zeros: nothing kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Kept {
    pub payments: i64,
    pub total: i64,
    pub largest: Option<i64>,
    pub last_paid: Option<String>,
    pub spending: i64,
    pub registered: i64,
    pub open: i64,
    pub last_30_days: i64,
    pub today: i64,
}

/// A vendor key's increments: payments, total, largest, latest day paid.
pub(crate) type VendorChange<'a> = (&'a str, i64, i64, Option<i64>, Option<&'a str>);

/// A batch's changes to the tables ([`FactsModel::changes`]).
pub(crate) struct Changes<'a> {
    pub proposals: Vec<&'a ProposalRow>,
    pub actions: Vec<(&'a str, bool, bool)>,
    pub vendors: Vec<VendorChange<'a>>,
    pub spending: Vec<(&'a str, &'a str, i64)>,
    pub invoices: Vec<(&'a str, &'a str, i64, i64)>,
    pub requests: Vec<(&'a str, &'a str, i64)>,
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
                $column,
                " = CASE WHEN excluded.",
                $column,
                " > 0 AND ",
                $table,
                ".",
                $column,
                " > 9223372036854775807 - excluded.",
                $column,
                " THEN 9223372036854775807 WHEN excluded.",
                $column,
                " < 0 AND ",
                $table,
                ".",
                $column,
                " < -9223372036854775808 - excluded.",
                $column,
                " THEN -9223372036854775808 ELSE ",
                $table,
                ".",
                $column,
                " + excluded.",
                $column,
                " END"
            )
        };
    }

    pub const LOAD_ACTIONS: &str =
        "SELECT correlation_id, executed, rejected FROM facts_actions WHERE correlation_id IN (";
    pub const LOAD_PROPOSALS: &str = "SELECT event_id, correlation_id, day, amount_minor, vendor_by_name,
        vendor_by_org, account, invoice_number FROM facts_proposals WHERE correlation_id IN (";
    pub const SAVE_PROPOSALS: &str = "INSERT INTO facts_proposals
        (event_id, correlation_id, day, amount_minor, vendor_by_name, vendor_by_org, account, invoice_number) ";
    pub const SAVE_PROPOSALS_END: &str = " ON CONFLICT (event_id) DO NOTHING";
    pub const SAVE_ACTIONS: &str = "INSERT INTO facts_actions (correlation_id, executed, rejected) ";
    pub const SAVE_ACTIONS_END: &str =
        " ON CONFLICT (correlation_id) DO UPDATE SET executed = excluded.executed, rejected = excluded.rejected";
    pub const SAVE_VENDORS: &str =
        "INSERT INTO facts_vendors (vendor, payments, total_minor, largest_minor, last_paid) ";
    pub const SAVE_VENDORS_END: &str = concat!(
        " ON CONFLICT (vendor) DO UPDATE SET payments = facts_vendors.payments + excluded.payments, ",
        saturating_add!("facts_vendors", "total_minor"),
        ", largest_minor = CASE WHEN excluded.largest_minor IS NULL THEN facts_vendors.largest_minor
            WHEN facts_vendors.largest_minor IS NULL OR excluded.largest_minor > facts_vendors.largest_minor
            THEN excluded.largest_minor ELSE facts_vendors.largest_minor END,
          last_paid = CASE WHEN facts_vendors.last_paid IS NULL OR excluded.last_paid > facts_vendors.last_paid
            THEN excluded.last_paid ELSE facts_vendors.last_paid END"
    );
    pub const SAVE_SPENDING: &str = "INSERT INTO facts_account_months (account, month, total_minor) ";
    pub const SAVE_SPENDING_END: &str =
        concat!(" ON CONFLICT (account, month) DO UPDATE SET ", saturating_add!("facts_account_months", "total_minor"));
    pub const SAVE_INVOICES: &str = "INSERT INTO facts_invoices (vendor, invoice_number, registered, open) ";
    pub const SAVE_INVOICES_END: &str = " ON CONFLICT (vendor, invoice_number) DO UPDATE
        SET registered = facts_invoices.registered + excluded.registered, open = facts_invoices.open + excluded.open";
    pub const SAVE_REQUESTS: &str = "INSERT INTO facts_requester_days (requested_by, day, proposals) ";
    pub const SAVE_REQUESTS_END: &str = " ON CONFLICT (requested_by, day) DO UPDATE
        SET proposals = facts_requester_days.proposals + excluded.proposals";
    /// Moves the progress with the checkpoint, only when it stands at the
    /// checkpoint now ($3: the subscription): the facts are in sync.
    pub const ADVANCE: &str = "UPDATE facts_progress SET last_transaction_id = $1, last_position = $2
        WHERE id = 1 AND (last_transaction_id, last_position) =
            (SELECT last_transaction_id, last_position FROM subscriptions WHERE name = $3)";
    /// Moves the progress from ($1, $2) to ($3, $4), only if it stands there.
    pub const MOVE_PROGRESS: &str = "UPDATE facts_progress SET last_transaction_id = $3, last_position = $4
        WHERE id = 1 AND last_transaction_id = $1 AND last_position = $2";
    pub const PROGRESS: &str = "SELECT f.last_transaction_id, f.last_position,
        coalesce(s.last_transaction_id, 0), coalesce(s.last_position, 0)
        FROM facts_progress f LEFT JOIN subscriptions s ON s.name = $1 WHERE f.id = 1";
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

/// What a [`sql::FACTS`] row says, or [`StoreError::FactsBehind`] when the
/// tables are not folded up to the checkpoint.
pub(crate) fn from_kept(row: KeptRow) -> Result<Kept, StoreError> {
    let folded = Cursor { transaction_id: row.9.unwrap_or(0), position: row.10.unwrap_or(0) };
    let checkpoint = Cursor { transaction_id: row.11.unwrap_or(0), position: row.12.unwrap_or(0) };
    if folded != checkpoint {
        return Err(StoreError::FactsBehind { folded, checkpoint });
    }
    Ok(Kept {
        payments: row.0.unwrap_or(0),
        total: row.1.unwrap_or(0),
        largest: row.2,
        last_paid: row.3,
        spending: row.4.unwrap_or(0),
        registered: row.5.unwrap_or(0),
        open: row.6.unwrap_or(0),
        last_30_days: row.7.unwrap_or(0),
        today: row.8.unwrap_or(0),
    })
}

/// The columns of [`sql::LOAD_PROPOSALS`].
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

/// Rows per statement when loading or saving a batch (well under both backends'
/// limits on bound parameters).
pub(crate) const CHUNK: usize = 500;

/// `fold_in(conn, events)` for a backend's connection: loads what folding the
/// events needs (the touched actions' flags and proposals), folds them in memory,
/// and writes the changes back, a few statements per batch whatever its size.
macro_rules! fold_in_on {
    ($conn:ty, $db:ty, $sql:path) => {
        /// Folds `events` into the facts tables, inside the caller's transaction.
        pub(crate) async fn fold_in(conn: &mut $conn, events: &[&RecordedEvent]) -> Result<(), StoreError> {
            let mut model = seed_in(conn, events).await?;
            for event in events {
                model.fold(event);
            }
            save_in(conn, &model).await
        }

        /// What the kept tables say for one proposal's keys (see `sql::FACTS`).
        pub(crate) async fn kept_in(
            conn: &mut $conn,
            l: &crate::store::facts::Lookup,
            subscription: &str,
        ) -> Result<crate::store::facts::Kept, StoreError> {
            let row: crate::store::facts::KeptRow = sqlx::query_as(&*$sql(crate::store::facts::sql::FACTS))
                .bind(&l.vendor)
                .bind(&l.account)
                .bind(&l.month)
                .bind(&l.invoice_number)
                .bind(&l.requested_by)
                .bind(&l.window_from)
                .bind(&l.today)
                .bind(subscription)
                .fetch_one(&mut *conn)
                .await?;
            crate::store::facts::from_kept(row)
        }

        /// Moves the progress from `from` to `to` and folds `events`, inside the
        /// caller's transaction; false (nothing done) when someone moved the
        /// progress meanwhile (a rebuild).
        pub(crate) async fn advance_in(
            conn: &mut $conn,
            from: Cursor,
            events: &[RecordedEvent],
            to: Cursor,
        ) -> Result<bool, StoreError> {
            let moved = sqlx::query(&*$sql(crate::store::facts::sql::MOVE_PROGRESS))
                .bind(from.transaction_id)
                .bind(from.position)
                .bind(to.transaction_id)
                .bind(to.position)
                .execute(&mut *conn)
                .await?;
            if moved.rows_affected() != 1 {
                return Ok(false);
            }
            fold_in(conn, &events.iter().collect::<Vec<_>>()).await?;
            Ok(true)
        }

        /// The facts of one proposal from the kept tables.
        pub(crate) async fn kept_facts_in(
            conn: &mut $conn,
            l: &crate::store::facts::Lookup,
            subscription: &str,
        ) -> Result<crate::store::ProposalFacts, StoreError> {
            let kept = kept_in(conn, l, subscription).await?;
            Ok(crate::store::facts::FactsModel::default().over(&kept, l))
        }

        /// The facts of each proposal among `events` (read together after the
        /// checkpoint, in read order), each as of just before it: the kept tables
        /// and what the earlier events of the batch change.
        pub(crate) async fn facts_in_batch_in(
            conn: &mut $conn,
            events: &[RecordedEvent],
            lookups: &[Option<crate::store::facts::Lookup>],
            subscription: &str,
        ) -> Result<Vec<Option<crate::store::ProposalFacts>>, StoreError> {
            let all: Vec<&RecordedEvent> = events.iter().collect();
            let mut model = seed_in(conn, &all).await?;
            let mut out = Vec::with_capacity(events.len());
            for (event, lookup) in events.iter().zip(lookups) {
                out.push(match lookup {
                    Some(l) => Some(model.over(&kept_in(conn, l, subscription).await?, l)),
                    None => None,
                });
                model.fold(event);
            }
            Ok(out)
        }

        /// A model seeded with the stored state `events` touch (their actions'
        /// flags and proposals), to fold them into.
        pub(crate) async fn seed_in(
            conn: &mut $conn,
            events: &[&RecordedEvent],
        ) -> Result<crate::store::facts::FactsModel, StoreError> {
            use crate::store::facts::{sql, FactsModel, ProposalColumns, CHUNK};
            let touched = FactsModel::touched(events);
            let mut actions: Vec<(String, bool, bool)> = Vec::new();
            let mut proposals = Vec::new();
            for chunk in touched.chunks(CHUNK) {
                for (prefix, is_actions) in [(sql::LOAD_ACTIONS, true), (sql::LOAD_PROPOSALS, false)] {
                    let mut q = sqlx::QueryBuilder::<$db>::new(prefix);
                    let mut list = q.separated(", ");
                    for c in chunk {
                        list.push_bind(c.clone());
                    }
                    q.push(")");
                    if is_actions {
                        actions.extend(q.build_query_as::<(String, bool, bool)>().fetch_all(&mut *conn).await?);
                    } else {
                        let rows = q.build_query_as::<ProposalColumns>().fetch_all(&mut *conn).await?;
                        proposals.extend(rows.into_iter().map(crate::store::facts::proposal_row));
                    }
                }
            }
            Ok(FactsModel::seeded(actions, proposals))
        }

        /// Adds a seeded model's changes to the tables.
        pub(crate) async fn save_in(
            conn: &mut $conn,
            model: &crate::store::facts::FactsModel,
        ) -> Result<(), StoreError> {
            use crate::store::facts::{sql, CHUNK};
            let changes = model.changes();
            for chunk in changes.proposals.chunks(CHUNK) {
                let mut q = sqlx::QueryBuilder::<$db>::new(sql::SAVE_PROPOSALS);
                q.push_values(chunk, |mut b, p| {
                    b.push_bind(p.event_id.clone())
                        .push_bind(p.correlation_id.clone())
                        .push_bind(p.day.clone())
                        .push_bind(p.amount_minor)
                        .push_bind(p.vendor_by_name.clone())
                        .push_bind(p.vendor_by_org.clone())
                        .push_bind(p.account.clone())
                        .push_bind(p.invoice_number.clone());
                });
                q.push(sql::SAVE_PROPOSALS_END);
                q.build().execute(&mut *conn).await?;
            }
            for chunk in changes.actions.chunks(CHUNK) {
                let mut q = sqlx::QueryBuilder::<$db>::new(sql::SAVE_ACTIONS);
                q.push_values(chunk, |mut b, (c, e, r)| {
                    b.push_bind(c.to_string()).push_bind(*e).push_bind(*r);
                });
                q.push(sql::SAVE_ACTIONS_END);
                q.build().execute(&mut *conn).await?;
            }
            for chunk in changes.vendors.chunks(CHUNK) {
                let mut q = sqlx::QueryBuilder::<$db>::new(sql::SAVE_VENDORS);
                q.push_values(chunk, |mut b, (v, n, t, l, d)| {
                    b.push_bind(v.to_string())
                        .push_bind(*n)
                        .push_bind(*t)
                        .push_bind(*l)
                        .push_bind(d.map(str::to_string));
                });
                q.push(sql::SAVE_VENDORS_END);
                q.build().execute(&mut *conn).await?;
            }
            for chunk in changes.spending.chunks(CHUNK) {
                let mut q = sqlx::QueryBuilder::<$db>::new(sql::SAVE_SPENDING);
                q.push_values(chunk, |mut b, (a, m, t)| {
                    b.push_bind(a.to_string()).push_bind(m.to_string()).push_bind(*t);
                });
                q.push(sql::SAVE_SPENDING_END);
                q.build().execute(&mut *conn).await?;
            }
            for chunk in changes.invoices.chunks(CHUNK) {
                let mut q = sqlx::QueryBuilder::<$db>::new(sql::SAVE_INVOICES);
                q.push_values(chunk, |mut b, (v, n, r, o)| {
                    b.push_bind(v.to_string()).push_bind(n.to_string()).push_bind(*r).push_bind(*o);
                });
                q.push(sql::SAVE_INVOICES_END);
                q.build().execute(&mut *conn).await?;
            }
            for chunk in changes.requests.chunks(CHUNK) {
                let mut q = sqlx::QueryBuilder::<$db>::new(sql::SAVE_REQUESTS);
                q.push_values(chunk, |mut b, (by, d, n)| {
                    b.push_bind(by.to_string()).push_bind(d.to_string()).push_bind(*n);
                });
                q.push(sql::SAVE_REQUESTS_END);
                q.build().execute(&mut *conn).await?;
            }
            Ok(())
        }
    };
}
pub(crate) use fold_in_on;

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
        assert_eq!(amount(Some(&json!(1_234_567_890_123_456_789_i64))), None);
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

    #[test]
    fn windows_are_the_requesters_30_days_and_the_accounts_calendar_month() {
        let mut model = FactsModel::default();
        let p = |minor: i64| json!({"requested_by": "user:ola", "account": "6800", "amount": {"minor": minor}});
        for (corr, day, minor) in
            [("a", "2026-10-31", 1), ("b", "2026-11-01", 10), ("c", "2026-11-30", 100), ("d", "2026-12-01", 1000)]
        {
            model.fold(&proposal(corr, day, p(minor)));
            model.fold(&executed(corr));
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
        model.fold(&executed("d"));
        assert_eq!(model.facts(&q("2026-12-01")).account_month_to_date_minor, 1000);
    }

    #[test]
    fn a_long_key_is_kept_as_its_hash_and_still_matches() {
        let long = "Å".repeat(1000);
        let kept = vendor_by_name(&long);
        assert!(kept.starts_with("sha256:") && kept.len() < MAX_KEY_BYTES);
        assert_eq!(kept, vendor_by_name(&long.to_lowercase()));
        assert_eq!(vendor_by_name("KIWI"), "name:kiwi");
        let posing = format!("sha256:{}", "0".repeat(64));
        assert_ne!(key(posing.clone()), posing, "a literal cannot pose as a kept hash");
    }
}
