//! Durable, named subscriptions: a handler sees every matching event once per
//! checkpoint, in read order, across restarts and replicas.
//!
//! - The checkpoint lives in the database (`subscriptions`), and moves in the same
//!   transaction as the events the handler appends.
//! - One consumer per name at a time: a lease row, renewed by a heartbeat and
//!   checked again at every commit, so a consumer that lost it cannot commit.
//! - Wake-ups come from LISTEN/NOTIFY (PostgreSQL) or in-process (SQLite); the
//!   loop also polls, so a lost wake-up only delays.
//! - A failing handler does not move the checkpoint; the event is retried with
//!   backoff, and the error is kept on the subscription row for operators.
//! - Transient failures (the database away, a remote 5xx or timeout) are retried
//!   for as long as it takes. A permanent one (anything a retry cannot change: a
//!   payload no query can read, a value the database refuses, a clashing event id)
//!   is retried a few times, then the event is *parked*: a `SubscriptionEventParked`
//!   event by the service's own role says which subscription, which position and
//!   why, the handler appends what its service does about it (Review-E escalates
//!   to a person, the Accounting API records a final failure), and the checkpoint
//!   moves on, so one poison event never stops everything after it.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::Instrument;
use uuid::Uuid;

use crate::error::StoreError;
use crate::event::{status, Cursor, NewEvent, RecordedEvent, TypeFilter};
use crate::lifecycle::EventType;
use crate::retry::Backoff;
use crate::store::{Append, Store};

/// A handler's failure. The event will be offered again after a backoff; a
/// permanent one only a few times, then it is parked.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct HandlerError {
    /// What went wrong, for the log and the subscription row.
    pub message: String,
    /// Whether no retry can change the outcome.
    pub permanent: bool,
}

impl HandlerError {
    /// A failure that may pass (the database away, a remote 5xx, a timeout).
    pub fn transient(message: impl Into<String>) -> Self {
        HandlerError { message: message.into(), permanent: false }
    }

    /// A failure no retry can change (bad input, a value the database refuses).
    pub fn permanent(message: impl Into<String>) -> Self {
        HandlerError { message: message.into(), permanent: true }
    }

    /// A transient failure described by any error.
    pub fn from_error(e: impl std::fmt::Display) -> Self {
        HandlerError::transient(e.to_string())
    }
}

impl From<StoreError> for HandlerError {
    fn from(e: StoreError) -> Self {
        let permanent = is_permanent(&e);
        HandlerError { message: e.to_string(), permanent }
    }
}

/// Whether a store error is one no retry can change.
fn is_permanent(e: &StoreError) -> bool {
    !e.is_retryable()
        && !matches!(e, StoreError::LeaseLost(_) | StoreError::NotMigrated { .. } | StoreError::Migration(_))
}

/// Whether a refusal is about the event in hand (its id, its content, a
/// constraint on its story), not about this service's role or the schema.
fn is_about_this_event(e: &StoreError) -> bool {
    match e {
        StoreError::EventIdReused { .. }
        | StoreError::Invalid { .. }
        | StoreError::ProposalExists { .. }
        | StoreError::AppendOnly(_) => true,
        // Integrity constraints (23), data exceptions (22), an exception raised by a trigger.
        StoreError::Database(sqlx::Error::Database(db)) => {
            db.code().is_some_and(|c| c.starts_with("23") || c.starts_with("22") || c == "P0001")
        }
        _ => false,
    }
}

/// Longest reason kept in a park record.
const MAX_PARK_REASON_CHARS: usize = 1000;

/// What a subscription does with each event. The returned batch is appended in
/// the same transaction that moves the checkpoint past the event.
pub trait Handler: Send + Sync {
    /// Handles one event. Side effects outside the database must be idempotent:
    /// after a crash between the effect and the commit, the event comes again.
    fn handle(&self, event: &RecordedEvent) -> impl Future<Output = Result<Append, HandlerError>> + Send;

    /// Handles events read together while they queue, each as if the ones before
    /// it were committed; their outputs (one per event, in order) then commit in
    /// one transaction with the checkpoint past the last. Outputs for only the
    /// first `n` events (at least one) commit those, and the rest are read again.
    /// `None` (the default): one at a time. Any failure, or a refused commit,
    /// falls back to one at a time, where retries and parking apply, so a batch
    /// never loses an event.
    fn handle_batch(
        &self,
        events: &[RecordedEvent],
    ) -> impl Future<Output = Option<Result<Vec<Append>, HandlerError>>> + Send {
        let _ = events;
        async { None }
    }

    /// What the service appends when `event` is parked, beside the park record,
    /// in the same transaction (Review-E: an escalation to a person; the
    /// Accounting API: a final failure). `reason` is already safe to store.
    fn on_parked(&self, event: &RecordedEvent, reason: &str) -> Vec<NewEvent> {
        let _ = (event, reason);
        Vec::new()
    }
}

/// Tuning of a subscription loop.
#[derive(Debug, Clone)]
pub struct SubscriptionOptions {
    /// Events read per round trip.
    pub batch_size: usize,
    /// How often to look even without a wake-up.
    pub poll_interval: Duration,
    /// How long a lease lasts without renewal before another consumer may take it.
    pub lease_ttl: Duration,
    /// Delay between retries of a failing event.
    pub retry: Backoff,
    /// The actor of this service's park records. `None`: never park, retry every
    /// failure for as long as it takes.
    pub park_as: Option<String>,
    /// Permanent failures of one event before it is parked.
    pub park_after: u32,
    /// Whether this subscription keeps the facts read model ([`crate::store::facts`]):
    /// every commit folds the event it moves past, and the facts are caught up
    /// to the checkpoint when the lease is taken, after a failure, and every
    /// second (a rebuild may have emptied them). Only Review-E's does.
    pub keeps_facts: bool,
}

impl Default for SubscriptionOptions {
    /// Batches of 100, a poll every second, and a 15 s lease: a replica takes over
    /// from one that died after at most that long. Services set the lease from
    /// `BOOKKEEPER_LEASE_TTL_SECS` ([`crate::config::lease_ttl`]).
    fn default() -> Self {
        SubscriptionOptions {
            batch_size: 100,
            poll_interval: Duration::from_secs(1),
            lease_ttl: Duration::from_secs(15),
            retry: Backoff::default(),
            park_as: None,
            park_after: 3,
            keeps_facts: false,
        }
    }
}

/// What one [`Subscription::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    /// Handled this many events (and committed each).
    Handled(usize),
    /// Nothing new to handle. `held_back` means newer events exist but wait on an
    /// older open transaction; look again soon.
    CaughtUp {
        /// Events are waiting behind an open transaction.
        held_back: bool,
    },
    /// Another consumer holds this subscription's lease.
    Standby,
}

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    /// The handler failed on the event at this position; it will be retried.
    #[error("handler failed on event at position {position} ({event_type}): {source}")]
    Handler {
        /// Position of the event that failed.
        position: i64,
        /// Its type.
        event_type: String,
        #[source]
        source: HandlerError,
    },
    /// The store failed (unreachable database, lost lease, ...).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A named, durable subscription to a set of event types.
pub struct Subscription<H> {
    store: Store,
    name: String,
    filter: TypeFilter,
    handler: H,
    options: SubscriptionOptions,
    holder: String,
    cursor: Option<Cursor>,
    heartbeat: Option<Heartbeat>,
    wakeups: watch::Receiver<u64>,
    idle_persisted: Option<std::time::Instant>,
    /// The event failing permanently now (its position) and how often it failed.
    permanent_failures: Option<(i64, u32)>,
    /// When the facts were last seen in step with the checkpoint (`None`: look now).
    facts_checked: Option<std::time::Instant>,
}

/// How often a facts-keeping subscription checks that the facts are in step.
const FACTS_CHECK: Duration = Duration::from_secs(1);
/// Events folded per transaction while the facts catch up.
const FACTS_BATCH: usize = 500;

/// How often a subscription that skips non-matching events persists how far it got.
const IDLE_PERSIST: Duration = Duration::from_secs(1);

struct Heartbeat {
    lost: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<H: Handler> Subscription<H> {
    /// A subscription called `name` (e.g. `review-e.proposals`) to the events
    /// `filter` lets through.
    pub fn new(store: Store, name: impl Into<String>, filter: TypeFilter, handler: H) -> Self {
        let wakeups = store.wakeups();
        Subscription {
            store,
            name: name.into(),
            filter,
            handler,
            options: SubscriptionOptions::default(),
            holder: format!("{}:{}", std::process::id(), Uuid::new_v4()),
            cursor: None,
            heartbeat: None,
            wakeups,
            idle_persisted: None,
            permanent_failures: None,
            facts_checked: None,
        }
    }

    /// Replaces the default tuning.
    pub fn with_options(mut self, options: SubscriptionOptions) -> Self {
        self.options = options;
        self
    }

    /// The subscription's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The handler, e.g. to inspect a read model it keeps.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// Whether this consumer holds the lease now.
    pub fn is_active(&self) -> bool {
        self.cursor.is_some()
    }

    /// Does one unit of work: take the lease if free, read one batch, handle and
    /// commit each event. Tests call this until [`StepOutcome::CaughtUp`] instead
    /// of sleeping.
    pub async fn step(&mut self) -> Result<StepOutcome, SubscriptionError> {
        if self.heartbeat.as_ref().is_some_and(|h| h.lost.load(Ordering::SeqCst)) {
            tracing::warn!(subscription = %self.name, "lease lost; standing by");
            self.cursor = None;
            self.heartbeat = None;
        }
        let mut cursor = match self.cursor {
            Some(c) => c,
            None => match self.store.acquire_lease(&self.name, &self.holder, self.options.lease_ttl).await? {
                Some(c) => {
                    tracing::info!(subscription = %self.name, position = c.position, "lease acquired");
                    self.heartbeat = Some(self.start_heartbeat());
                    self.cursor = Some(c);
                    self.facts_checked = None;
                    c
                }
                None => return Ok(StepOutcome::Standby),
            },
        };
        if self.options.keeps_facts && self.facts_checked.is_none_or(|at| at.elapsed() >= FACTS_CHECK) {
            self.catch_up_facts().await?;
        }

        let batch = self.store.read(cursor, &self.filter, self.options.batch_size).await?;
        if batch.events.len() > 1 {
            if let Some(n) = self.handle_together(&batch.events).await? {
                return Ok(StepOutcome::Handled(n));
            }
        }
        let mut handled = 0;
        for event in &batch.events {
            let span = tracing::info_span!("handle_event",
                subscription = %self.name,
                correlation_id = %event.correlation_id,
                event_type = %event.event_type,
                position = event.position);
            // `instrument`, not `span.enter()`: a guard held across an await moves
            // between worker threads and corrupts the span registry.
            self.handle_one(event).instrument(span).await?;
            cursor = event.cursor();
            handled += 1;
        }
        if handled > 0 {
            return Ok(StepOutcome::Handled(handled));
        }
        if batch.next > cursor {
            // Nothing matched, but the log moved on. Move on in memory at once, and
            // persist it at most every IDLE_PERSIST, so a restart does not rescan
            // much and a busy log does not cost a commit per wake-up.
            self.cursor = Some(batch.next);
            if self.idle_persisted.is_none_or(|at| at.elapsed() >= IDLE_PERSIST) {
                self.store
                    .commit_handled(&self.name, &self.holder, batch.next, 0, &Append::nothing(), self.facts_step(None))
                    .await?;
                self.idle_persisted = Some(std::time::Instant::now());
            }
        }
        // Idle: a cheap moment to look whether the facts fell behind meanwhile
        // (a rebuild while only executions came by).
        self.facts_checked = None;
        Ok(StepOutcome::CaughtUp { held_back: batch.held_back })
    }

    /// A queue: handles `events` as one batch and commits them together, if the
    /// handler can. `None`: handle them one at a time instead (nothing was
    /// committed).
    async fn handle_together(&mut self, events: &[RecordedEvent]) -> Result<Option<usize>, SubscriptionError> {
        let span = tracing::info_span!("handle_batch", subscription = %self.name, events = events.len(),
            first = events.first().map(|e| e.position), last = events.last().map(|e| e.position));
        let handling = std::time::Instant::now();
        let outputs = match self.handler.handle_batch(events).instrument(span.clone()).await {
            None => return Ok(None),
            Some(Ok(outputs)) if !outputs.is_empty() && outputs.len() <= events.len() => outputs,
            Some(Ok(_)) | Some(Err(_)) => return Ok(None),
        };
        // A prefix: the handler stopped early (the Accounting API at a failure
        // that must be retried on its own); the rest are read again.
        let events = &events[..outputs.len()];
        let Some(merged) = Append::merged(outputs) else { return Ok(None) };
        let Some(last) = events.last().map(RecordedEvent::cursor) else { return Ok(None) };
        let step = self.facts_step_all(events);
        let committed =
            self.store.commit_handled(&self.name, &self.holder, last, events.len() as i64, &merged, step).await;
        match committed {
            Ok(_) => {}
            // Refused as a whole, nothing written: each on its own shows which and why.
            Err(StoreError::VersionConflict { .. } | StoreError::EventIdReused { .. }) => return Ok(None),
            Err(e) if is_permanent(&e) => return Ok(None),
            Err(e) => {
                // The outcome is unknown: re-read the checkpoint before going on.
                self.cursor = None;
                self.heartbeat = None;
                return Err(e.into());
            }
        }
        self.permanent_failures = None;
        crate::store::count_appended(&merged);
        self.cursor = Some(last);
        for event in events {
            crate::metrics::count(
                "bookkeeper_events_handled_total",
                "Events handled and committed by a subscription, by event type.",
                &[("subscription", &self.name), ("type", &event.event_type)],
            );
        }
        crate::metrics::observe(
            "bookkeeper_handler_batch_seconds",
            "Time from handing a queued batch to the handler to its committed checkpoint.",
            &[("subscription", &self.name)],
            handling.elapsed(),
        );
        span.in_scope(|| tracing::debug!(took_us = handling.elapsed().as_micros() as u64, "batch committed"));
        Ok(Some(events.len()))
    }

    /// Folds the facts up to the checkpoint if they are behind it (a first start
    /// after the upgrade that added them, a rebuild), saying so in the log.
    async fn catch_up_facts(&mut self) -> Result<(), SubscriptionError> {
        let progress = self.store.facts_progress(&self.name).await?;
        if !progress.in_sync() {
            tracing::info!(subscription = %self.name, folded = progress.folded.position,
                checkpoint = progress.checkpoint.position,
                "the facts read model is behind the checkpoint (first start after the upgrade, or a rebuild); folding the log into it before judging");
            let started = std::time::Instant::now();
            let name = self.name.clone();
            let folded = self
                .store
                .catch_up_facts(&self.name, &self.holder, FACTS_BATCH, |p| {
                    tracing::info!(subscription = %name, folded = p.folded.position,
                        checkpoint = p.checkpoint.position, "facts read model catching up");
                })
                .await?;
            tracing::info!(subscription = %self.name, events = folded, took_ms = started.elapsed().as_millis() as u64,
                "the facts read model is in step with the checkpoint");
        }
        self.facts_checked = Some(std::time::Instant::now());
        Ok(())
    }

    /// What this subscription's commit of `event` folds into the facts.
    fn facts_step<'a>(&self, event: Option<&'a RecordedEvent>) -> Option<crate::store::FactsStep<'a>> {
        self.options.keeps_facts.then(|| crate::store::FactsStep { events: event.into_iter().collect() })
    }

    /// What this subscription's commit of a batch folds into the facts.
    fn facts_step_all<'a>(&self, events: &'a [RecordedEvent]) -> Option<crate::store::FactsStep<'a>> {
        self.options.keeps_facts.then(|| crate::store::FactsStep { events: events.iter().collect() })
    }

    /// Hands one event to the handler and commits its output with the checkpoint;
    /// parks it instead after repeated permanent failures.
    async fn handle_one(&mut self, event: &RecordedEvent) -> Result<(), SubscriptionError> {
        let handling = std::time::Instant::now();
        let out = match self.handler.handle(event).await {
            Ok(out) => out,
            Err(source) => return self.failed(event, source).await,
        };
        let committing = std::time::Instant::now();
        let mut out = out;
        let mut committed = self
            .store
            .commit_handled(&self.name, &self.holder, event.cursor(), 1, &out, self.facts_step(Some(event)))
            .await;
        if let Err(StoreError::EventIdReused { event_id }) = &committed {
            // An id this handler derives was taken first by another event (a writer
            // that guessed it): write the output under fresh ids rather than never.
            // Handlers' expectations refuse a second copy after a lost answer.
            tracing::warn!(%event_id, "a derived event id is taken by another event; committing under fresh ids");
            out = out.with_fresh_ids();
            committed = self
                .store
                .commit_handled(&self.name, &self.holder, event.cursor(), 1, &out, self.facts_step(Some(event)))
                .await;
        }
        tracing::debug!(commit_us = committing.elapsed().as_micros() as u64, "handled and committed");
        if let Err(e) = committed {
            // The commit may have succeeded even though we saw an error (the
            // connection dropped before the reply). Forget the cursor, so the
            // next step re-reads the checkpoint from the database instead of
            // handling this event again on a guess.
            if is_permanent(&e) {
                // The database refuses what the handler wants stored: no retry
                // changes that.
                let source = HandlerError::permanent(format!("its output cannot be stored: {e}"));
                return self.failed(event, source).await;
            }
            self.cursor = None;
            self.heartbeat = None;
            return Err(e.into());
        }
        self.permanent_failures = None;
        crate::store::count_appended(&out);
        self.cursor = Some(event.cursor());
        crate::metrics::count(
            "bookkeeper_events_handled_total",
            "Events handled and committed by a subscription, by event type.",
            &[("subscription", &self.name), ("type", &event.event_type)],
        );
        crate::metrics::observe(
            "bookkeeper_handler_seconds",
            "Time from handing an event to the handler to its committed checkpoint.",
            &[("subscription", &self.name)],
            handling.elapsed(),
        );
        Ok(())
    }

    /// Records a failure; parks the event once it has failed permanently
    /// `park_after` times (and the subscription may park).
    async fn failed(&mut self, event: &RecordedEvent, source: HandlerError) -> Result<(), SubscriptionError> {
        let message = source.message.clone();
        // The facts may be why (a rebuild emptied them): look before the retry.
        self.facts_checked = None;
        if let Err(e) = self.store.record_failure(&self.name, &self.holder, &message).await {
            tracing::warn!(error = %e, "could not record the handler failure");
        }
        let failures = if source.permanent {
            let n = match self.permanent_failures {
                Some((position, n)) if position == event.position => n + 1,
                _ => 1,
            };
            self.permanent_failures = Some((event.position, n));
            n
        } else {
            0
        };
        if let Some(actor) = self.options.park_as.clone().filter(|_| source.permanent) {
            if failures >= self.options.park_after.max(1) {
                return self.park(event, &actor, &message, failures).await;
            }
        }
        Err(SubscriptionError::Handler { position: event.position, event_type: event.event_type.clone(), source })
    }

    /// Moves past an event that can never be handled, leaving a record of it.
    async fn park(
        &mut self,
        event: &RecordedEvent,
        actor: &str,
        message: &str,
        attempts: u32,
    ) -> Result<(), SubscriptionError> {
        let reason = safe_text(message, MAX_PARK_REASON_CHARS);
        let record =
            NewEvent::new(EventType::SubscriptionEventParked.name(), actor, status::PARKED, &event.correlation_id)
                .with_payload(serde_json::json!({
                    "subscription": self.name,
                    "position": event.position,
                    "event_id": event.event_id,
                    "event_type": event.event_type,
                    "reason": reason,
                    "attempts": attempts,
                }))
                .derived_from(event.event_id, &format!("{}.parked", self.name));
        let mut events = vec![record.clone()];
        events.extend(self.handler.on_parked(event, &reason));
        // Each try falls back further: fresh ids if one is taken; then the record
        // alone (what the service wanted to do about it is refused too), under a
        // fresh id if need be. Only a transient failure keeps the event in place.
        let tries = [
            Append::new(events.clone()),
            Append::new(events).with_fresh_ids(),
            Append::one(record.clone()),
            Append::one(record).with_fresh_ids(),
        ];
        let mut committed = Ok(());
        for attempt in tries {
            committed = self
                .store
                .commit_handled(&self.name, &self.holder, event.cursor(), 1, &attempt, self.facts_step(Some(event)))
                .await
                .map(|_| ());
            match &committed {
                Ok(()) => break,
                Err(e) if is_permanent(e) => {
                    tracing::warn!(error = %e, "the park record was refused; trying with less")
                }
                Err(_) => break,
            }
        }
        if let Err(e) = &committed {
            // Moving on without a record only for a refusal of this event's story
            // itself; a wrong role or schema would skip everything, so it stops
            // and says so instead.
            if !is_permanent(e) || !is_about_this_event(e) {
                self.cursor = None;
                self.heartbeat = None;
                return Err(committed.unwrap_err().into());
            }
            // Even the bare record is refused for good (the database refuses every
            // event in this story): move on anyway, and say so on the subscription
            // row and in the log, rather than stop everything after it. The event
            // itself stays in the log.
            let refused = e.to_string();
            self.store
                .commit_handled(
                    &self.name,
                    &self.holder,
                    event.cursor(),
                    1,
                    &Append::nothing(),
                    self.facts_step(Some(event)),
                )
                .await?;
            let note = safe_text(
                &format!("parked position {} without a record ({refused}): {reason}", event.position),
                MAX_PARK_REASON_CHARS,
            );
            if let Err(e) = self.store.record_failure(&self.name, &self.holder, &note).await {
                tracing::warn!(error = %e, "could not record the parked event on the subscription");
            }
        }
        tracing::error!(subscription = %self.name, position = event.position, %reason, attempts,
            "event parked: it can never be handled; moved past it");
        crate::metrics::count(
            "bookkeeper_events_parked_total",
            "Events a subscription parked after permanent failures, by event type.",
            &[("subscription", &self.name), ("type", &event.event_type)],
        );
        self.permanent_failures = None;
        self.cursor = Some(event.cursor());
        Ok(())
    }

    /// Steps until caught up (or standing by); returns how many events were handled.
    pub async fn drain(&mut self) -> Result<usize, SubscriptionError> {
        let mut total = 0;
        loop {
            match self.step().await? {
                StepOutcome::Handled(n) => total += n,
                StepOutcome::CaughtUp { held_back: true } => tokio::time::sleep(Duration::from_millis(5)).await,
                StepOutcome::CaughtUp { held_back: false } | StepOutcome::Standby => return Ok(total),
            }
        }
    }

    /// Runs until `shutdown` resolves: handles events as they arrive, retries
    /// failures with backoff, stands by while another replica is active. The event
    /// in hand is finished and committed before it returns.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut failures = 0u32;
        let mut held_back_wait = Duration::from_millis(1);
        loop {
            let wait = match self.step().await {
                Ok(StepOutcome::Handled(_)) => {
                    failures = 0;
                    held_back_wait = Duration::from_millis(1);
                    Duration::ZERO
                }
                Ok(StepOutcome::CaughtUp { held_back: true }) => {
                    failures = 0;
                    held_back_wait = (held_back_wait * 2).min(self.options.poll_interval);
                    tracing::debug!(subscription = %self.name, wait_us = held_back_wait.as_micros() as u64,
                        "events wait behind an open transaction");
                    held_back_wait
                }
                Ok(StepOutcome::CaughtUp { held_back: false }) => {
                    failures = 0;
                    held_back_wait = Duration::from_millis(1);
                    self.options.poll_interval
                }
                Ok(StepOutcome::Standby) => self.options.lease_ttl / 3,
                Err(e) => {
                    let delay = self.options.retry.delay(failures);
                    tracing::warn!(subscription = %self.name, error = %e, attempt = failures + 1,
                        retry_in_ms = delay.as_millis() as u64, "subscription step failed; retrying");
                    failures = failures.saturating_add(1);
                    delay
                }
            };
            if wait.is_zero() {
                // Busy: still let a shutdown in between batches.
                if futures_now(&mut shutdown) {
                    break;
                }
                continue;
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = self.wakeups.changed() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        if self.cursor.is_some() {
            if let Err(e) = self.store.release_lease(&self.name, &self.holder).await {
                tracing::warn!(subscription = %self.name, error = %e, "could not release lease; it will expire");
            }
        }
        tracing::info!(subscription = %self.name, "subscription stopped");
    }

    fn start_heartbeat(&self) -> Heartbeat {
        let lost = Arc::new(AtomicBool::new(false));
        let store = self.store.clone();
        let name = self.name.clone();
        let holder = self.holder.clone();
        let ttl = self.options.lease_ttl;
        let flag = lost.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(ttl / 3);
            tick.tick().await;
            loop {
                tick.tick().await;
                match store.renew_lease(&name, &holder, ttl).await {
                    Ok(true) => {}
                    Ok(false) => {
                        flag.store(true, Ordering::SeqCst);
                        return;
                    }
                    Err(e) => tracing::warn!(subscription = %name, error = %e, "lease renewal failed"),
                }
            }
        });
        Heartbeat { lost, task }
    }
}

/// Text that is safe to store and show: control characters replaced, at most
/// `max` characters.
pub fn safe_text(text: &str, max: usize) -> String {
    let mut out: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).take(max).collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

/// Polls a future once without waiting.
fn futures_now<F: Future + Unpin>(f: &mut F) -> bool {
    use std::task::{Context, Poll, Waker};
    let mut cx = Context::from_waker(Waker::noop());
    matches!(std::pin::Pin::new(f).poll(&mut cx), Poll::Ready(_))
}
