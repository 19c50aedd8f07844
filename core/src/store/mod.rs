//! The event store: one interface over two backends.
//!
//! [`Store`] is what services hold. It appends batches atomically and
//! idempotently, reads in commit-safe order, and wakes readers when something new
//! may be there. PostgreSQL is the production backend, shared by separate
//! processes; SQLite is the embedded default, one file, every service in one
//! process. `DATABASE_URL` chooses.

mod derived;
pub mod facts;
mod postgres;
mod sqlite;
mod tally;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use uuid::Uuid;

use crate::error::StoreError;
use crate::event::{Cursor, NewEvent, RecordedEvent, TypeFilter};
use crate::retry::Backoff;

/// Largest blob accepted (receipt scans, invoice PDFs, policy components).
pub const MAX_BLOB_BYTES: usize = 25 * 1024 * 1024;

/// A stored binary object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// Lower-case hex SHA-256 of `bytes`: its name.
    pub sha256: String,
    /// MIME type given when it was stored.
    pub content_type: String,
    /// The content.
    pub bytes: Vec<u8>,
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// What facts about a proposal to compute, from the log before it.
#[derive(Debug, Clone)]
pub struct FactsQuery {
    /// Only events before this one in read order count (the proposal itself).
    pub before: Cursor,
    /// The proposal's correlation id (excluded).
    pub correlation_id: String,
    /// Vendor name (matched case-insensitively when there is no org number).
    pub vendor_name: Option<String>,
    /// Vendor organisation number (matched exactly when given).
    pub vendor_org: Option<String>,
    /// Expense account.
    pub account: Option<String>,
    /// Supplier invoice number.
    pub invoice_number: Option<String>,
    /// The requesting person, `user:<id>`.
    pub requested_by: Option<String>,
    /// The proposal's date (UTC).
    pub today: chrono::NaiveDate,
}

/// Facts about a proposal, computed from earlier events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProposalFacts {
    /// Executed earlier proposals for the same vendor.
    pub vendor_payments: i64,
    /// Their total, minor units.
    pub vendor_total_minor: i64,
    /// The largest, minor units.
    pub vendor_largest_minor: i64,
    /// The date of the latest, `YYYY-MM-DD`.
    pub vendor_last_paid: Option<String>,
    /// Executed spending on the account in today's month, minor units.
    pub account_month_to_date_minor: i64,
    /// Same vendor and invoice number executed before.
    pub duplicate_invoice_registered: bool,
    /// Same vendor and invoice number in another proposal neither executed nor rejected.
    pub duplicate_invoice_proposed: bool,
    /// Proposals by the same requester in the 30 days up to today.
    pub requester_last_30_days: i64,
    /// Proposals by the same requester today.
    pub requester_today: i64,
}

/// The columns of the facts query, in order (the same on both backends).
pub(crate) type FactsRow = (i64, i64, i64, Option<String>, i64, bool, bool, i64, i64);

impl From<FactsRow> for ProposalFacts {
    fn from(row: FactsRow) -> Self {
        ProposalFacts {
            vendor_payments: row.0,
            vendor_total_minor: row.1,
            vendor_largest_minor: row.2,
            vendor_last_paid: row.3,
            account_month_to_date_minor: row.4,
            duplicate_invoice_registered: row.5,
            duplicate_invoice_proposed: row.6,
            requester_last_30_days: row.7,
            requester_today: row.8,
        }
    }
}

/// What a commit of the subscription that keeps the facts folds: the events it
/// handled, or none (a commit that only moves past events of other types).
#[derive(Debug, Clone)]
pub(crate) struct FactsStep<'a> {
    pub events: Vec<&'a RecordedEvent>,
}

/// Events read per page while the tally catches up.
const TALLY_PAGE: usize = 2000;

/// The URL used when `DATABASE_URL` is unset: a file next to where you run it.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://bookkeeper.db";

/// What a correlation's stream must look like for an append to go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// No event with this correlation id exists yet.
    NoEvents,
    /// Exactly this many events with this correlation id exist.
    Exactly(i64),
    /// Exactly this many events that change what a story says (an action's
    /// lifecycle, a policy's changes: [`crate::lifecycle::version`]) exist with this
    /// correlation id. Other events in the story (a park record, a role's own event
    /// under the same id) do not move it, so no role can keep a decision, an
    /// execution or a policy change from landing by appending beside it.
    Lifecycle(i64),
    /// Exactly this many proposals and decisions exist with this correlation id
    /// ([`crate::lifecycle::decisions_version`]): what a decision races with. No
    /// other role's events (an executor's, a park record) move it.
    Decisions(i64),
}

/// The stages a decision races with.
const DECIDING: [crate::domain::Stage; 4] = [
    crate::domain::Stage::Proposed,
    crate::domain::Stage::Approved,
    crate::domain::Stage::Rejected,
    crate::domain::Stage::Escalated,
];

impl ExpectedVersion {
    fn admits(self, actual: i64) -> bool {
        match self {
            ExpectedVersion::NoEvents => actual == 0,
            ExpectedVersion::Exactly(n) | ExpectedVersion::Lifecycle(n) | ExpectedVersion::Decisions(n) => actual == n,
        }
    }

    fn describe(self) -> String {
        match self {
            ExpectedVersion::NoEvents => "no events".into(),
            ExpectedVersion::Exactly(n) => n.to_string(),
            ExpectedVersion::Lifecycle(n) => format!("{n} lifecycle events"),
            ExpectedVersion::Decisions(n) => format!("{n} proposals and decisions"),
        }
    }

    /// The event types the version counts (`None`: every event).
    pub(crate) fn counted_types(self) -> Option<Vec<String>> {
        match self {
            ExpectedVersion::Lifecycle(_) => Some(crate::lifecycle::EventType::versioned()),
            ExpectedVersion::Decisions(_) => Some(crate::lifecycle::EventType::action_types(&DECIDING)),
            _ => None,
        }
    }
}

/// A batch to append: all of it or none of it is written.
#[derive(Debug, Clone, Default)]
pub struct Append {
    /// Events in the order they should be read.
    pub events: Vec<NewEvent>,
    /// Optional optimistic-concurrency expectations, per correlation id.
    pub expected: BTreeMap<String, ExpectedVersion>,
}

impl Append {
    /// A batch of these events, with no version expectations.
    pub fn new(events: Vec<NewEvent>) -> Self {
        Append { events, expected: BTreeMap::new() }
    }

    /// A batch of one event.
    pub fn one(event: NewEvent) -> Self {
        Append::new(vec![event])
    }

    /// Nothing to append (a handler that only moves its checkpoint).
    pub fn nothing() -> Self {
        Append::default()
    }

    /// Requires the correlation to be at `version` when the batch lands (else the
    /// append fails with a version conflict and writes nothing).
    pub fn expecting(mut self, correlation_id: impl Into<String>, version: ExpectedVersion) -> Self {
        self.expected.insert(correlation_id.into(), version);
        self
    }

    /// The old name of [`Append::expecting`], which read like `Result::expect`.
    #[deprecated(note = "use Append::expecting")]
    pub fn expect(self, correlation_id: impl Into<String>, version: ExpectedVersion) -> Self {
        self.expecting(correlation_id, version)
    }

    /// One batch of several handlers' outputs, in order: all their events, and
    /// each one's expectations. `None` when two expect different versions of the
    /// same correlation (they cannot both hold).
    pub fn merged(parts: Vec<Append>) -> Option<Append> {
        let mut all = Append::nothing();
        for part in parts {
            for (correlation_id, version) in part.expected {
                match all.expected.get(&correlation_id) {
                    Some(existing) if *existing != version => return None,
                    _ => {
                        all.expected.insert(correlation_id, version);
                    }
                }
            }
            all.events.extend(part.events);
        }
        Some(all)
    }

    /// The same batch with fresh random event ids (causation kept). For when a
    /// derived id is already taken by another event (a writer that guessed it):
    /// the batch is then written under new ids instead of never. Safe where the
    /// batch carries an expectation, which refuses a second copy, or where a second
    /// copy is harmless.
    pub fn with_fresh_ids(mut self) -> Self {
        for event in &mut self.events {
            event.event_id = Uuid::new_v4();
        }
        self
    }

    fn validate(&self) -> Result<(), StoreError> {
        for (index, event) in self.events.iter().enumerate() {
            event.validate().map_err(|source| StoreError::Invalid { index, source })?;
        }
        Ok(())
    }
}

/// The outcome of appending one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Appended {
    /// The event's id.
    pub event_id: Uuid,
    /// Its position in the log.
    pub position: i64,
    /// True when the event was already stored and nothing was written.
    pub duplicate: bool,
}

/// One page of events in read order.
#[derive(Debug, Clone)]
pub struct ReadBatch {
    /// Events after the requested cursor, in read order.
    pub events: Vec<RecordedEvent>,
    /// Where the next read should start. Past the last event returned, and, when
    /// the page was not full, past every settled event that did not match.
    pub next: Cursor,
    /// True when committed events exist that are not yet safe to read because an
    /// older transaction is still open; read again shortly.
    pub held_back: bool,
}

/// Counts for `bookkeeper stats`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Total events in the log.
    pub events: i64,
    /// Events per (type, status).
    pub by_type_and_status: Vec<(String, String, i64)>,
    /// Proposals without a decision.
    pub pending_reviews: i64,
    /// Of those, escalated to a person.
    pub escalated_pending: i64,
    /// Decided proposals whose latest decision is an approval.
    pub approved: i64,
    /// Of those, approved by a policy without a person.
    pub auto_approved: i64,
    /// Decided proposals whose latest decision is a rejection.
    pub rejected: i64,
    /// approved / (approved + rejected), when anything was decided.
    pub approval_rate: Option<f64>,
    /// Each subscription: name, checkpoint position, handled count, last error.
    pub subscriptions: Vec<SubscriptionStatus>,
    /// Events subscriptions parked (gave up on, with a reason), per subscription.
    #[serde(default)]
    pub parked: Vec<ParkedStatus>,
}

/// The events one subscription parked.
#[derive(Debug, Clone, Serialize)]
pub struct ParkedStatus {
    /// Subscription name.
    pub subscription: String,
    /// How many events it parked.
    pub count: i64,
    /// The latest one: its position in the log, its action, and why.
    pub last_position: i64,
    /// The correlation id of the latest one.
    pub last_correlation_id: String,
    /// Why it was parked.
    pub last_reason: String,
}

/// Where a durable subscription stands.
#[derive(Debug, Clone, Serialize)]
pub struct SubscriptionStatus {
    /// Subscription name.
    pub name: String,
    /// Position of the last event it handled or passed.
    pub position: i64,
    /// Events handled so far.
    pub handled: i64,
    /// Whoever holds the lease now, if anyone.
    pub lease_holder: Option<String>,
    /// The last handler error, while it keeps failing.
    pub last_error: Option<String>,
    /// Events in the log after its checkpoint (of any type): how far behind it is.
    pub lag: i64,
}

/// A proposal waiting for a decision (the `pending_reviews` view).
#[derive(Debug, Clone, Serialize)]
pub struct PendingReview {
    /// The proposal's correlation id.
    pub correlation_id: String,
    /// `...Proposed` type.
    pub proposal_type: String,
    /// Who proposed it.
    pub proposed_by: String,
    /// When.
    pub proposed_at: chrono::DateTime<chrono::Utc>,
    /// Whether a policy sent it to a person.
    pub escalated: bool,
}

#[derive(Clone)]
pub(crate) enum Backend {
    Postgres(postgres::PgBackend),
    Sqlite(sqlite::SqliteBackend),
}

/// Counts the events of a committed append, by type.
pub(crate) fn count_appended(append: &Append) {
    for e in &append.events {
        crate::metrics::count(
            "bookkeeper_events_appended_total",
            "Events this process appended to the log, by type.",
            &[("type", &e.event_type)],
        );
    }
}

/// Handle on the event log. Cheap to clone; clones share connections and wake-ups.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    /// The counts kept for `stats`, `/metrics` and the pending list, shared by
    /// every clone of this store (`tally.rs`).
    tally: Arc<tokio::sync::Mutex<TallyCache>>,
}

/// This process's tally, and when it was last saved beside the log.
#[derive(Default)]
struct TallyCache {
    tally: Option<tally::Tally>,
    saved: Option<(std::time::Instant, Cursor, usize)>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("backend", &self.backend_name()).finish()
    }
}

/// Pool settings common to both backends.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// How long to wait for a connection before reporting the database unavailable.
    pub acquire_timeout: Duration,
    /// How this store's appends wake readers in other processes.
    pub announce: Announce,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions { max_connections: 10, acquire_timeout: Duration::from_secs(5), announce: Announce::default() }
    }
}

/// How appends wake readers in other processes (PostgreSQL; SQLite readers are
/// in this process and always woken at once).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Announce {
    /// A background task sends one NOTIFY after commits: appenders pay nothing
    /// and a burst shares one NOTIFY. For long-lived processes (the services).
    #[default]
    AfterCommit,
    /// Each append's own transaction carries its NOTIFY, delivered by the commit
    /// itself: readers are woken as the append becomes visible, even when the
    /// process exits right after. For short-lived processes (`bookkeeper events
    /// append`, an import script); it costs each append a round trip and takes
    /// PostgreSQL's notify lock across the commit.
    WithCommit,
}

impl Store {
    /// Opens the store at `url` (`postgres://...` or `sqlite://...`). Does not
    /// migrate; see [`Store::migrate`] and [`Store::ensure_migrated`].
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        Store::connect_with(url, ConnectOptions::default()).await
    }

    /// Opens the store with explicit pool settings.
    pub async fn connect_with(url: &str, options: ConnectOptions) -> Result<Store, StoreError> {
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres(postgres::PgBackend::connect(url, &options).await?)
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite(sqlite::SqliteBackend::connect(url, &options).await?)
        } else {
            let scheme = url.split(':').next().unwrap_or_default().to_string();
            return Err(StoreError::UnsupportedUrl(scheme));
        };
        Ok(Store { backend, tally: Default::default() })
    }

    /// Opens the store, retrying with backoff while the database is unreachable,
    /// and logging each failed attempt. Gives up after `give_up_after`.
    pub async fn connect_with_retry(
        url: &str,
        options: ConnectOptions,
        give_up_after: Duration,
    ) -> Result<Store, StoreError> {
        let backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        let started = tokio::time::Instant::now();
        let mut attempt = 0u32;
        loop {
            match Store::connect_with(url, options.clone()).await {
                Ok(store) => return Ok(store),
                Err(e) if e.is_retryable() && started.elapsed() < give_up_after => {
                    let left = give_up_after.saturating_sub(started.elapsed());
                    let delay = backoff.delay(attempt).min(left);
                    tracing::warn!(error = %e, attempt, retry_in_ms = delay.as_millis() as u64,
                        "database unavailable; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `postgres` or `sqlite`.
    pub fn backend_name(&self) -> &'static str {
        match &self.backend {
            Backend::Postgres(_) => "postgres",
            Backend::Sqlite(_) => "sqlite",
        }
    }

    /// Applies every pending migration of this backend.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Postgres(b) => b.migrate().await,
            Backend::Sqlite(b) => b.migrate().await,
        }
    }

    /// Applies pending migrations when this connection may; otherwise fails with
    /// [`StoreError::NotMigrated`] if any are pending. Services call this at
    /// start, so the embedded setup migrates itself while a service running under
    /// its own restricted role only checks.
    pub async fn ensure_migrated(&self) -> Result<(), StoreError> {
        let pending = self.pending_migrations().await?;
        if pending == 0 {
            return Ok(());
        }
        match self.migrate().await {
            Ok(()) => Ok(()),
            Err(StoreError::Migration(e)) if is_permission_error(&e) => Err(StoreError::NotMigrated { pending }),
            Err(e) => Err(e),
        }
    }

    /// What in the database server's settings will hurt this log as it grows,
    /// in words for an operator (empty when nothing). PostgreSQL with autovacuum
    /// off never analyzes the log's tables, so plans cached while they were small
    /// (sequential scans) stay in use as they grow, and every service slows down.
    pub async fn server_warnings(&self) -> Result<Vec<String>, StoreError> {
        match &self.backend {
            Backend::Postgres(b) => b.server_warnings().await,
            Backend::Sqlite(_) => Ok(Vec::new()),
        }
    }

    /// How many migrations embedded in this binary are not applied yet.
    pub async fn pending_migrations(&self) -> Result<usize, StoreError> {
        match &self.backend {
            Backend::Postgres(b) => b.pending_migrations().await,
            Backend::Sqlite(b) => b.pending_migrations().await,
        }
    }

    /// [`Store::append`], and when an event id of the batch is already taken by a
    /// different event (a derived id someone guessed and used first), the batch
    /// again under fresh ids ([`Append::with_fresh_ids`]).
    pub async fn append_past_squatters(&self, append: Append) -> Result<Vec<Appended>, StoreError> {
        match self.append(append.clone()).await {
            Err(StoreError::EventIdReused { event_id }) => {
                tracing::warn!(%event_id, "an event id is already taken by another event; appending under fresh ids");
                self.append(append.with_fresh_ids()).await
            }
            other => other,
        }
    }

    /// Appends a batch atomically. Events already stored (same `event_id`, same
    /// content) are not written again and report their existing position.
    pub async fn append(&self, append: Append) -> Result<Vec<Appended>, StoreError> {
        append.validate()?;
        if append.events.is_empty() {
            return Ok(Vec::new());
        }
        let appended = match &self.backend {
            Backend::Postgres(b) => b.append(&append).await,
            Backend::Sqlite(b) => b.append(&append).await,
        };
        if appended.is_ok() {
            count_appended(&append);
        }
        appended
    }

    /// Appends events with no version expectations.
    pub async fn append_events(&self, events: Vec<NewEvent>) -> Result<Vec<Appended>, StoreError> {
        self.append(Append::new(events)).await
    }

    /// Reads up to `limit` events after `after` that pass `filter`, in read order,
    /// never returning an event while an older transaction could still commit one
    /// before it.
    pub async fn read(&self, after: Cursor, filter: &TypeFilter, limit: usize) -> Result<ReadBatch, StoreError> {
        let limit = limit.clamp(1, 10_000) as i64;
        match &self.backend {
            Backend::Postgres(b) => b.read(after, filter, limit).await,
            Backend::Sqlite(b) => b.read(after, filter, limit).await,
        }
    }

    /// Like [`Store::read`], but when committed events wait behind an older open
    /// transaction (`held_back`), waits up to `patience` for them to become
    /// readable. For one-shot readers (`events tail` without `--follow`, tests)
    /// that want "everything committed so far" rather than "everything settled".
    pub async fn read_waiting(
        &self,
        after: Cursor,
        filter: &TypeFilter,
        limit: usize,
        patience: Duration,
    ) -> Result<ReadBatch, StoreError> {
        let deadline = tokio::time::Instant::now() + patience;
        let mut pause = Duration::from_millis(1);
        loop {
            let batch = self.read(after, filter, limit).await?;
            if !batch.held_back || tokio::time::Instant::now() >= deadline {
                return Ok(batch);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// Every event of one action, in read order.
    pub async fn read_correlation(&self, correlation_id: &str) -> Result<Vec<RecordedEvent>, StoreError> {
        match &self.backend {
            Backend::Postgres(b) => b.read_correlation(correlation_id).await,
            Backend::Sqlite(b) => b.read_correlation(correlation_id).await,
        }
    }

    /// The number of events with this correlation id: the version that
    /// [`ExpectedVersion::Exactly`] compares against.
    pub async fn version(&self, correlation_id: &str) -> Result<i64, StoreError> {
        match &self.backend {
            Backend::Postgres(b) => b.version(correlation_id).await,
            Backend::Sqlite(b) => b.version(correlation_id).await,
        }
    }

    /// The number of events with this correlation id that count in a story's
    /// version ([`crate::lifecycle::version`]): what [`ExpectedVersion::Lifecycle`]
    /// compares against. Counts committed events a read may still hold back.
    pub async fn lifecycle_version(&self, correlation_id: &str) -> Result<i64, StoreError> {
        let types = ExpectedVersion::Lifecycle(0).counted_types().unwrap_or_default();
        match &self.backend {
            Backend::Postgres(b) => b.version_of(correlation_id, types).await,
            Backend::Sqlite(b) => b.version_of(correlation_id, types).await,
        }
    }

    /// Whether the log answers a query now (for readiness probes).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.version("").await.map(|_| ())
    }

    /// The read-order cursor of the event at `position`, for resuming "after
    /// position N". Position 0 means the start of the log.
    pub async fn cursor_at(&self, position: i64) -> Result<Cursor, StoreError> {
        if position <= 0 {
            return Ok(Cursor::START);
        }
        let found = match &self.backend {
            Backend::Postgres(b) => b.transaction_of(position).await?,
            Backend::Sqlite(b) => b.transaction_of(position).await?,
        };
        found.map(|transaction_id| Cursor { transaction_id, position }).ok_or(StoreError::UnknownPosition(position))
    }

    /// A receiver that changes whenever new events may be readable: on PostgreSQL
    /// after a NOTIFY from any process (and after this process appends), on SQLite
    /// after an append through any store on the same file in this process. Readers
    /// still poll, so a lost wake-up only delays.
    pub fn wakeups(&self) -> watch::Receiver<u64> {
        match &self.backend {
            Backend::Postgres(b) => b.wakeups(),
            Backend::Sqlite(b) => b.wakeups(),
        }
    }

    /// Counts per type and status, pending reviews, the approval rate, and where
    /// every subscription stands. From the kept tally: the cost follows what was
    /// appended since the last call, not the length of the log.
    pub async fn stats(&self) -> Result<Stats, StoreError> {
        let mut cache = self.tally.lock().await;
        let tally = self.tally_up(&mut cache).await?;
        let by_type_and_status = tally.by_type_and_status();
        let decided = tally.approved + tally.rejected;
        let stats = Stats {
            events: by_type_and_status.iter().map(|(_, _, n)| n).sum(),
            by_type_and_status,
            pending_reviews: tally.pending.len() as i64,
            escalated_pending: tally.pending.values().filter(|w| w.escalated).count() as i64,
            approved: tally.approved,
            auto_approved: tally.auto_approved,
            rejected: tally.rejected,
            approval_rate: (decided > 0).then(|| tally.approved as f64 / decided as f64),
            subscriptions: Vec::new(),
            parked: tally.parked_status(),
        };
        drop(cache);
        let subscriptions = match &self.backend {
            Backend::Postgres(b) => b.subscription_statuses().await?,
            Backend::Sqlite(b) => b.subscription_statuses().await?,
        };
        Ok(Stats { subscriptions, ..stats })
    }

    /// [`Store::stats`] computed by the views over the whole log: the definition
    /// the kept tally must equal (tests compare them), slower the longer the log.
    pub async fn stats_by_scan(&self) -> Result<Stats, StoreError> {
        let mut stats = match &self.backend {
            Backend::Postgres(b) => b.stats().await?,
            Backend::Sqlite(b) => b.stats().await?,
        };
        stats.parked = self.parked().await?;
        Ok(stats)
    }

    /// Parked events per subscription (records are few: one per event that could
    /// never be handled).
    async fn parked(&self) -> Result<Vec<ParkedStatus>, StoreError> {
        let filter = TypeFilter::of([crate::lifecycle::EventType::SubscriptionEventParked.name()]);
        let mut by_subscription: std::collections::BTreeMap<String, ParkedStatus> = Default::default();
        let mut cursor = Cursor::START;
        loop {
            let batch = self.read(cursor, &filter, 1000).await?;
            if batch.events.is_empty() {
                break;
            }
            for e in &batch.events {
                let subscription = e.payload.get("subscription").and_then(|s| s.as_str()).unwrap_or("?").to_string();
                let entry = by_subscription.entry(subscription.clone()).or_insert_with(|| ParkedStatus {
                    subscription,
                    count: 0,
                    last_position: 0,
                    last_correlation_id: String::new(),
                    last_reason: String::new(),
                });
                entry.count += 1;
                entry.last_position = e.payload.get("position").and_then(|p| p.as_i64()).unwrap_or(e.position);
                entry.last_correlation_id = e.correlation_id.clone();
                entry.last_reason = e.reason().unwrap_or_default().to_string();
            }
            cursor = batch.next;
        }
        Ok(by_subscription.into_values().collect())
    }

    /// Proposals with no decision yet, oldest first (from the kept tally).
    pub async fn pending_reviews(&self) -> Result<Vec<PendingReview>, StoreError> {
        let mut cache = self.tally.lock().await;
        Ok(self.tally_up(&mut cache).await?.pending_reviews())
    }

    /// [`Store::pending_reviews`] by the view over the whole log.
    pub async fn pending_reviews_by_scan(&self) -> Result<Vec<PendingReview>, StoreError> {
        match &self.backend {
            Backend::Postgres(b) => b.pending_reviews().await,
            Backend::Sqlite(b) => b.pending_reviews().await,
        }
    }

    /// Brings this process's tally up to the log's settled end: loads the saved
    /// one on first use (or starts from the beginning), folds what came after,
    /// and saves it beside the log now and then (every 10,000 events or minute).
    async fn tally_up<'a>(&self, cache: &'a mut TallyCache) -> Result<&'a tally::Tally, StoreError> {
        if cache.tally.is_none() {
            let saved = self.load_read_model(tally::READ_MODEL).await?;
            let loaded = saved
                .and_then(|(_, state)| serde_json::from_value::<tally::Tally>(state).ok())
                .filter(tally::Tally::is_current);
            cache.saved = loaded.as_ref().map(|t| (std::time::Instant::now(), t.at, 0));
            cache.tally = loaded;
        }
        let tally = cache.tally.get_or_insert_with(tally::Tally::new);
        let all = TypeFilter::all();
        let mut folded = 0usize;
        loop {
            // Everything committed so far, as the views would count it: wait briefly
            // for events held back behind a transaction still open elsewhere.
            let page = self.read_waiting(tally.at, &all, TALLY_PAGE, Duration::from_secs(2)).await?;
            let Some(last) = page.events.last().map(RecordedEvent::cursor) else { break };
            let touched: std::collections::BTreeSet<String> =
                page.events.iter().filter(|e| tally::touches_standing(e)).map(|e| e.correlation_id.clone()).collect();
            let touched: Vec<String> = touched.into_iter().collect();
            let mut stories: std::collections::HashMap<String, Vec<RecordedEvent>> = Default::default();
            for ids in touched.chunks(500) {
                for e in self.read_correlations(ids).await? {
                    stories.entry(e.correlation_id.clone()).or_default().push(e);
                }
            }
            // Every read is done: the page is applied whole or not at all (an error
            // or a dropped call above leaves the tally as it was).
            tally.count(&page.events);
            for id in &touched {
                tally.restand(id, stories.get(id).map(Vec::as_slice).unwrap_or_default(), last);
            }
            tally.at = last;
            folded += page.events.len();
            if page.events.len() < TALLY_PAGE {
                break;
            }
        }
        let (since, at, unsaved) = cache.saved.unwrap_or((std::time::Instant::now(), Cursor::START, 0));
        let unsaved = unsaved + folded;
        if tally.at != at && (unsaved >= 10_000 || since.elapsed() >= Duration::from_secs(60) || cache.saved.is_none())
        {
            let state = serde_json::to_value(&*tally).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            match self.save_read_model(tally::READ_MODEL, tally.at, &state).await {
                Ok(()) => cache.saved = Some((std::time::Instant::now(), tally.at, 0)),
                // A read-only replica, a role without the grant: the counts are
                // still right, only a restart reads more.
                Err(e) => tracing::warn!(error = %e, "could not save the stats tally; it is kept in memory"),
            }
        } else if let Some(saved) = cache.saved.as_mut() {
            saved.2 = unsaved;
        }
        Ok(tally)
    }

    /// Stores bytes under their SHA-256 and returns it. Storing the same bytes again
    /// writes nothing.
    pub async fn put_blob(&self, bytes: &[u8], content_type: &str) -> Result<String, StoreError> {
        if bytes.len() > MAX_BLOB_BYTES {
            return Err(StoreError::Invalid {
                index: 0,
                source: crate::ValidationError::TooLarge { field: "blob", max: MAX_BLOB_BYTES, actual: bytes.len() },
            });
        }
        let sha256 = sha256_hex(bytes);
        match &self.backend {
            Backend::Postgres(b) => b.put_blob(&sha256, bytes, content_type).await?,
            Backend::Sqlite(b) => b.put_blob(&sha256, bytes, content_type).await?,
        }
        Ok(sha256)
    }

    /// A read model this role saved (`save_read_model`), with the cursor it is
    /// complete up to; `None` when there is none (build it from the log).
    pub async fn load_read_model(&self, name: &str) -> Result<Option<(Cursor, serde_json::Value)>, StoreError> {
        match &self.backend {
            Backend::Postgres(b) => b.load_read_model(name).await,
            Backend::Sqlite(b) => b.load_read_model(name).await,
        }
    }

    /// Saves a read model complete up to `at`, replacing this role's earlier one.
    pub async fn save_read_model(&self, name: &str, at: Cursor, state: &serde_json::Value) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Postgres(b) => b.save_read_model(name, at, state).await,
            Backend::Sqlite(b) => b.save_read_model(name, at, state).await,
        }
    }

    /// A compiled policy component this role saved for the component `digest` and
    /// the engine `engine` (a fingerprint of the compiler and its settings).
    /// Only Review-E's role can read or write these: an artifact is native code.
    pub async fn compiled_policy(&self, digest: &str, engine: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match &self.backend {
            Backend::Postgres(b) => b.compiled_policy(digest, engine).await,
            Backend::Sqlite(b) => b.compiled_policy(digest, engine).await,
        }
    }

    /// Saves a compiled policy component, replacing this role's earlier one for
    /// the same component and engine.
    pub async fn save_compiled_policy(&self, digest: &str, engine: &str, artifact: &[u8]) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Postgres(b) => b.save_compiled_policy(digest, engine, artifact).await,
            Backend::Sqlite(b) => b.save_compiled_policy(digest, engine, artifact).await,
        }
    }

    /// Throws away this role's compiled policies last used before `unused_since`,
    /// except those of `engine` for the components `in_use` (the digests in
    /// force), which count as used now. Any row may go: a policy whose
    /// compilation is gone is compiled again when next needed.
    pub async fn prune_compiled_policies(
        &self,
        engine: &str,
        in_use: &[String],
        unused_since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Pruned, StoreError> {
        match &self.backend {
            Backend::Postgres(b) => b.prune_compiled_policies(engine, in_use, unused_since).await,
            Backend::Sqlite(b) => b.prune_compiled_policies(engine, in_use, unused_since).await,
        }
    }

    /// The blob with this SHA-256, if stored; its bytes are checked against the hash.
    pub async fn get_blob(&self, sha256: &str) -> Result<Option<Blob>, StoreError> {
        let blob = match &self.backend {
            Backend::Postgres(b) => b.get_blob(sha256).await?,
            Backend::Sqlite(b) => b.get_blob(sha256).await?,
        };
        match blob {
            Some(blob) if sha256_hex(&blob.bytes) != blob.sha256 => {
                Err(StoreError::Corrupt(format!("blob {sha256} does not match its hash")))
            }
            other => Ok(other),
        }
    }

    /// Facts about a proposal from the events before it, scanning the log: the
    /// definition of the facts, slower the longer the history. Review-E reads the
    /// kept read model instead ([`Store::proposal_facts`]); tests hold the two equal.
    pub async fn proposal_facts_by_scan(&self, query: &FactsQuery) -> Result<ProposalFacts, StoreError> {
        match &self.backend {
            Backend::Postgres(b) => b.proposal_facts(query).await,
            Backend::Sqlite(b) => b.proposal_facts(query).await,
        }
    }

    /// The event with this id, if stored.
    pub async fn event(&self, event_id: Uuid) -> Result<Option<RecordedEvent>, StoreError> {
        match &self.backend {
            Backend::Postgres(b) => b.event(event_id).await,
            Backend::Sqlite(b) => b.event(event_id).await,
        }
    }

    // ---- subscription bookkeeping (used by `crate::subscription`) ----

    pub(crate) async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Cursor>, StoreError> {
        let ttl_ms = ttl.as_millis() as i64;
        match &self.backend {
            Backend::Postgres(b) => b.acquire_lease(name, holder, ttl_ms).await,
            Backend::Sqlite(b) => b.acquire_lease(name, holder, ttl_ms).await,
        }
    }

    pub(crate) async fn renew_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, StoreError> {
        let ttl_ms = ttl.as_millis() as i64;
        match &self.backend {
            Backend::Postgres(b) => b.renew_lease(name, holder, ttl_ms).await,
            Backend::Sqlite(b) => b.renew_lease(name, holder, ttl_ms).await,
        }
    }

    pub(crate) async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Postgres(b) => b.release_lease(name, holder).await,
            Backend::Sqlite(b) => b.release_lease(name, holder).await,
        }
    }

    /// Appends a handler's events and moves its checkpoint in one transaction,
    /// only if `holder` still holds the lease.
    pub(crate) async fn commit_handled(
        &self,
        name: &str,
        holder: &str,
        checkpoint: Cursor,
        handled: i64,
        append: &Append,
        facts: Option<FactsStep<'_>>,
    ) -> Result<Vec<Appended>, StoreError> {
        append.validate()?;
        match &self.backend {
            Backend::Postgres(b) => b.commit_handled(name, holder, checkpoint, handled, append, facts).await,
            Backend::Sqlite(b) => b.commit_handled(name, holder, checkpoint, handled, append, facts).await,
        }
    }

    // ---- the facts read model (`facts`) ----

    /// The facts about a proposal from the kept read model: what
    /// [`Store::proposal_facts_by_scan`] says, at the cost of a few key lookups.
    /// `subscription` is the one keeping the facts: they describe the log up to its
    /// checkpoint, which is the proposal in hand's place for its lease holder.
    /// [`StoreError::FactsBehind`] when they are not folded that far yet.
    pub async fn proposal_facts(&self, query: &FactsQuery, subscription: &str) -> Result<ProposalFacts, StoreError> {
        match &self.backend {
            Backend::Postgres(b) => b.kept_facts(&facts::Lookup::of(query), subscription).await,
            Backend::Sqlite(b) => b.kept_facts(&facts::Lookup::of(query), subscription).await,
        }
    }

    /// The facts of each proposal among `events` (a batch read together after
    /// `subscription`'s checkpoint, in read order; `queries[i]` for the proposals),
    /// each as of just before it: the kept tables and what the batch's earlier
    /// events change, as if each had been committed alone.
    pub async fn proposal_facts_in_batch(
        &self,
        subscription: &str,
        events: &[RecordedEvent],
        queries: &[Option<FactsQuery>],
    ) -> Result<Vec<Option<ProposalFacts>>, StoreError> {
        let lookups: Vec<Option<facts::Lookup>> = queries.iter().map(|q| q.as_ref().map(facts::Lookup::of)).collect();
        match &self.backend {
            Backend::Postgres(b) => b.facts_in_batch(events, &lookups, subscription).await,
            Backend::Sqlite(b) => b.facts_in_batch(events, &lookups, subscription).await,
        }
    }

    /// Every event of these actions, in read order (chunked by the caller).
    pub async fn read_correlations(&self, correlation_ids: &[String]) -> Result<Vec<RecordedEvent>, StoreError> {
        match &self.backend {
            Backend::Postgres(b) => b.read_correlations(correlation_ids).await,
            Backend::Sqlite(b) => b.read_correlations(correlation_ids).await,
        }
    }

    /// How far the facts are folded, beside `subscription`'s checkpoint.
    pub async fn facts_progress(&self, subscription: &str) -> Result<facts::FactsProgress, StoreError> {
        let (folded, checkpoint) = match &self.backend {
            Backend::Postgres(b) => b.facts_progress(subscription).await?,
            Backend::Sqlite(b) => b.facts_progress(subscription).await?,
        };
        Ok(facts::FactsProgress { folded, checkpoint })
    }

    /// Empties the facts read model, to be folded again from the start of the log
    /// by whoever holds the keeping subscription's lease. One transaction.
    pub async fn reset_facts(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Postgres(b) => b.reset_facts().await,
            Backend::Sqlite(b) => b.reset_facts().await,
        }
    }

    /// Empties the facts read model and folds it again from the log, online:
    /// under `subscription`'s lease when it is free (renewed while folding, so a
    /// Review-E starting meanwhile waits), or else left to the running consumer
    /// holding it, which folds it before its next decision.
    pub async fn rebuild_facts(
        &self,
        subscription: &str,
        on_batch: impl FnMut(facts::FactsProgress) + Send,
    ) -> Result<facts::Rebuilt, StoreError> {
        self.reset_facts().await?;
        let holder = format!("facts-rebuild:{}:{}", std::process::id(), Uuid::new_v4());
        let ttl = Duration::from_secs(30);
        if self.acquire_lease(subscription, &holder, ttl).await?.is_none() {
            return Ok(facts::Rebuilt::LeftToHolder);
        }
        let renewing = {
            let (store, name, holder) = (self.clone(), subscription.to_string(), holder.clone());
            TaskGuard(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(ttl / 3).await;
                    if !matches!(store.renew_lease(&name, &holder, ttl).await, Ok(true)) {
                        return;
                    }
                }
            }))
        };
        let folded = self.catch_up_facts(subscription, &holder, 1000, on_batch).await;
        drop(renewing);
        self.release_lease(subscription, &holder).await?;
        Ok(facts::Rebuilt::Folded(folded?))
    }

    /// Folds the facts up to `subscription`'s checkpoint, in transactions of at
    /// most `batch` events (each checks that `holder` still holds the lease, so no
    /// statement runs long and a consumer that lost its lease stops). Returns the
    /// number of events folded; `on_batch` hears the progress after each batch.
    pub async fn catch_up_facts(
        &self,
        subscription: &str,
        holder: &str,
        batch: usize,
        mut on_batch: impl FnMut(facts::FactsProgress) + Send,
    ) -> Result<u64, StoreError> {
        let filter = facts::filter();
        let mut folded = 0u64;
        loop {
            let progress = self.facts_progress(subscription).await?;
            if progress.in_sync() {
                return Ok(folded);
            }
            if progress.folded > progress.checkpoint {
                // Ahead of the checkpoint (it was moved back): start again.
                self.reset_facts().await?;
                continue;
            }
            let from = progress.folded;
            let page = self.read(from, &filter, batch.max(1)).await?;
            let full = page.events.len() >= batch.max(1);
            let read = page.events.len();
            let events: Vec<RecordedEvent> =
                page.events.into_iter().filter(|e| e.cursor() <= progress.checkpoint).collect();
            let reached = match events.last() {
                Some(last) if full && events.len() == read => last.cursor(),
                _ => progress.checkpoint,
            };
            let done = match &self.backend {
                Backend::Postgres(b) => b.fold_facts(subscription, holder, from, &events, reached).await?,
                Backend::Sqlite(b) => b.fold_facts(subscription, holder, from, &events, reached).await?,
            };
            if done {
                folded += events.len() as u64;
                on_batch(facts::FactsProgress { folded: reached, checkpoint: progress.checkpoint });
            }
        }
    }

    pub(crate) async fn record_failure(&self, name: &str, holder: &str, error: &str) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Postgres(b) => b.record_failure(name, holder, error).await,
            Backend::Sqlite(b) => b.record_failure(name, holder, error).await,
        }
    }

    /// Raw access for tests and benchmarks that must compare against bare SQL.
    #[cfg(feature = "test-support")]
    pub fn pg_pool(&self) -> Option<&sqlx::PgPool> {
        match &self.backend {
            Backend::Postgres(b) => Some(b.pool()),
            Backend::Sqlite(_) => None,
        }
    }

    /// Raw access for tests that must show the database itself refuses changes.
    #[cfg(feature = "test-support")]
    pub fn sqlite_pool(&self) -> Option<&sqlx::SqlitePool> {
        match &self.backend {
            Backend::Sqlite(b) => Some(b.pool()),
            Backend::Postgres(_) => None,
        }
    }

    /// Closes every connection.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Postgres(b) => b.close().await,
            Backend::Sqlite(b) => b.close().await,
        }
    }
}

fn is_permission_error(e: &sqlx::migrate::MigrateError) -> bool {
    let text = e.to_string();
    text.contains("permission denied") || text.contains("must be owner")
}

/// Compares a stored duplicate with the event being appended: same id but a
/// different type, correlation or payload is a writer bug, not a retry.
fn same_event(new: &NewEvent, stored_type: &str, stored_correlation: &str, stored_payload: &serde_json::Value) -> bool {
    new.event_type == stored_type && new.correlation_id == stored_correlation && &new.payload == stored_payload
}

/// Keeps a background task alive exactly as long as the store that owns it.
struct TaskGuard(tokio::task::JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Shared wake-up channel plus the tasks feeding it.
struct Wakeups {
    tx: watch::Sender<u64>,
}

impl Wakeups {
    fn new() -> Arc<Self> {
        Arc::new(Wakeups { tx: watch::Sender::new(0) })
    }

    fn bump(&self) {
        self.tx.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }
}

/// What [`Store::prune_compiled_policies`] threw away.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Compiled policies removed.
    pub rows: u64,
    /// Their size.
    pub bytes: u64,
}
