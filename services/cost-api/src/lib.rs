//! The Cost API: monthly costs from executed actions.
//!
//! It was added without changing any other service, which is the point of the
//! design: it reads `ReceiptAttachmentExecuted` and `InvoiceRegistrationExecuted`
//! (and their proposals) from the log, keeps its own read model
//! ([`ledger::Ledger`], saved beside the log and resumed at start), appends
//! `MonthlyCostReport` when a month closes (and on demand), and serves
//! `GET /costs/monthly?month=YYYY-MM`. Its database role may append nothing else.

pub mod ledger;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use bookkeeper_core::config::Settings;
use bookkeeper_core::domain::{MonthlyCostReport, Payload};
use bookkeeper_core::event::actor;
use bookkeeper_core::shutdown::StopSignal;
use bookkeeper_core::{ActionState, Append, Clock, Cursor, Store, StoreError, TypeFilter};
use bookkeeper_http::{auth, ApiError, Ops};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::ledger::{cost_of, month_of, Ledger};

/// Configuration (setting names in brackets; see docs/configuration.md).
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the API listens (`COST_API_ADDR`, default 127.0.0.1:8084).
    pub addr: SocketAddr,
    /// Bearer token for `POST /costs/monthly/report` (`COST_API_TOKEN`), if any.
    pub token: Option<SecretString>,
    /// How often to look for closed months to report (`COST_API_CLOSE_CHECK_SECS`, default 60).
    pub close_check: Duration,
    /// How often to look for new events without a wake-up.
    pub poll_interval: Duration,
    /// Today, for which months are closed and the default month of a query.
    pub clock: Clock,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 8084)),
            token: None,
            close_check: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
            clock: Clock::system(),
        }
    }
}

impl Config {
    /// The configuration from `settings`; `COST_API_TOKEN` is required
    /// (`bookkeeper up` sets a local one).
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Config> {
        let mut config = Config::default();
        if let Some(addr) = settings.parsed("COST_API_ADDR", "must be host:port")? {
            config.addr = addr;
        }
        config.token = settings.secret("COST_API_TOKEN");
        match &config.token {
            None => anyhow::bail!(
                "COST_API_TOKEN is required: it guards the reports this service appends to the log \
                 (`bookkeeper up` sets one for you)"
            ),
            Some(t) if t.expose_secret().len() < 16 => anyhow::bail!("COST_API_TOKEN must be at least 16 characters"),
            Some(_) => {}
        }
        if let Some(secs) = settings.number("COST_API_CLOSE_CHECK_SECS")? {
            config.close_check = Duration::from_secs(secs.max(1));
        }
        Ok(config)
    }
}

/// How many ids of its chain a month-close report tries before giving up (the
/// on-demand report still works then).
const MONTH_CLOSE_IDS: u32 = 16;

/// How often the ledger is saved while the log is being read.
const SAVE_EVERY: Duration = Duration::from_secs(5);

/// The event types the read model follows.
pub const FOLLOWS: [&str; 2] = ["ReceiptAttachmentExecuted", "InvoiceRegistrationExecuted"];

#[derive(Clone)]
struct Shared {
    store: Store,
    ledger: Arc<RwLock<Ledger>>,
    /// (month, currency) already reported at month close.
    closed: Arc<RwLock<HashSet<(String, String)>>>,
    caught_up: Arc<AtomicBool>,
    /// Where the saved ledger this process resumed from was complete up to.
    resumed_from: Arc<RwLock<Option<Cursor>>>,
    token: Option<SecretString>,
    clock: Clock,
}

impl Shared {
    fn ledger(&self) -> std::sync::RwLockReadGuard<'_, Ledger> {
        self.ledger.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads executed actions after `cursor` into the ledger; returns the new cursor
    /// and whether events wait behind an open transaction.
    async fn follow(&self, cursor: Cursor) -> Result<(Cursor, bool), StoreError> {
        let filter = TypeFilter::of(FOLLOWS);
        let batch = self.store.read(cursor, &filter, 500).await?;
        for executed in &batch.events {
            let story = self.store.read_correlation(&executed.correlation_id).await?;
            let action = ActionState::fold(&story);
            // Only the execution the lifecycle counts, at the proposal its approval judged.
            let counted = action.executed.is_some_and(|e| e.event_id == executed.event_id);
            let cost = action.proposal().filter(|_| counted).and_then(|p| cost_of(executed, p));
            if let Some(cost) = cost {
                self.ledger.write().unwrap_or_else(|p| p.into_inner()).add(&executed.correlation_id, cost);
            }
        }
        Ok((batch.next, batch.held_back))
    }

    /// The saved ledger, if there is one this release can read: where to resume.
    async fn resume(&self) -> Cursor {
        match self.store.load_read_model(ledger::READ_MODEL).await {
            Ok(Some((at, saved))) => match Ledger::from_saved(saved) {
                Some((ledger, closed)) => {
                    *self.ledger.write().unwrap_or_else(|p| p.into_inner()) = ledger;
                    *self.closed.write().unwrap_or_else(|p| p.into_inner()) = closed;
                    *self.resumed_from.write().unwrap_or_else(|p| p.into_inner()) = Some(at);
                    tracing::info!(position = at.position, "cost read model resumed from its saved ledger");
                    at
                }
                None => {
                    tracing::warn!("the saved ledger is not in this release's form; rebuilding it from the log");
                    Cursor::START
                }
            },
            Ok(None) => {
                tracing::info!("no saved ledger; building it from the whole log (once)");
                Cursor::START
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not read the saved ledger; building it from the log");
                Cursor::START
            }
        }
    }

    /// Saves the ledger as complete up to `at`.
    async fn save(&self, at: Cursor) {
        let state = {
            let closed = self.closed.read().unwrap_or_else(|p| p.into_inner());
            self.ledger().to_saved(&closed)
        };
        if let Err(e) = self.store.save_read_model(ledger::READ_MODEL, at, &state).await {
            tracing::warn!(error = %e, "could not save the ledger; a restart reads more of the log");
        }
    }

    /// Month-close reports in the log after `from` (so a restart does not repeat them).
    async fn load_closed(&self, from: Cursor) -> Result<(), StoreError> {
        let filter = TypeFilter::of([MonthlyCostReport::TYPE]);
        let mut cursor = from;
        loop {
            let batch = self.store.read(cursor, &filter, 500).await?;
            for e in &batch.events {
                if e.metadata.get("trigger").and_then(|t| t.as_str()) == Some("month-closed") {
                    let month = e.payload.get("month").and_then(|m| m.as_str()).unwrap_or_default();
                    let currency = e.payload.get("currency").and_then(|m| m.as_str()).unwrap_or_default();
                    self.closed.write().unwrap_or_else(|p| p.into_inner()).insert((month.into(), currency.into()));
                }
            }
            if batch.events.is_empty() {
                return Ok(());
            }
            cursor = batch.next;
        }
    }

    /// Appends the report of every month before this one not reported yet. The
    /// event id is derived from the month and currency, so two replicas closing
    /// the same month append it once.
    async fn close_months(&self) -> Result<usize, StoreError> {
        let current = month_of(self.clock.today());
        let reports: Vec<MonthlyCostReport> = {
            let ledger = self.ledger();
            let closed = self.closed.read().unwrap_or_else(|p| p.into_inner());
            ledger
                .months()
                .into_iter()
                .filter(|m| *m < current)
                .flat_map(|m| ledger.reports(&m))
                .filter(|r| !closed.contains(&(r.month.clone(), r.currency.clone())))
                .collect()
        };
        let mut appended = 0;
        for report in reports {
            let key = (report.month.clone(), report.currency.clone());
            let event = report
                .into_event(actor::COST_API, format!("cost-report-{}-{}", key.0, key.1))
                .with_metadata(json!({"trigger": "month-closed"}));
            // The id is derived from month and currency, so replicas closing the same
            // month append it once. Anyone can guess it and store another event under
            // it first: then the next id of the same chain, which every replica
            // computes alike, until one is free or already ours.
            for k in 0..MONTH_CLOSE_IDS {
                let seed = if k == 0 {
                    format!("cost-api.month-closed:{}:{}", key.0, key.1)
                } else {
                    format!("cost-api.month-closed:{}:{}:{k}", key.0, key.1)
                };
                let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, seed.as_bytes());
                match self.store.append(Append::one(event.clone().with_id(id))).await {
                    Ok(_) => {
                        tracing::info!(month = %key.0, currency = %key.1, "month closed; cost report appended");
                        appended += 1;
                        break;
                    }
                    Err(StoreError::EventIdReused { .. }) => {
                        let ours = self
                            .store
                            .event(id)
                            .await?
                            .is_some_and(|e| e.event_type == MonthlyCostReport::TYPE && e.actor == actor::COST_API);
                        if ours {
                            break; // another replica reported it first, with what it knew then
                        }
                        tracing::warn!(month = %key.0, k, "the month-close report's id is taken by another event; trying the next");
                    }
                    Err(e) => return Err(e),
                }
            }
            self.closed.write().unwrap_or_else(|p| p.into_inner()).insert(key);
        }
        Ok(appended)
    }
}

/// A running Cost API.
pub struct CostApi {
    listener: tokio::net::TcpListener,
    shared: Shared,
    config: Config,
}

impl CostApi {
    /// Binds the listener (port 0 picks a free one).
    pub async fn build(config: Config, store: Store) -> anyhow::Result<CostApi> {
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("binding the Cost API to {}", config.addr))?;
        let shared = Shared {
            store,
            ledger: Arc::default(),
            closed: Arc::default(),
            caught_up: Arc::default(),
            resumed_from: Arc::default(),
            token: config.token.clone(),
            clock: config.clock.clone(),
        };
        Ok(CostApi { listener, shared, config })
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or_default()
    }

    /// Runs until `shutdown`: catches up from the start of the log, follows it,
    /// closes months, serves HTTP.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let shared = self.shared.clone();
        let poll = self.config.poll_interval;
        let close_check = self.config.close_check;
        let stop = StopSignal::new();
        let follower_signal = stop.clone();
        let follower = tokio::spawn(async move {
            let follower_stop = follower_signal.stopped();
            tokio::pin!(follower_stop);
            let mut wakeups = shared.store.wakeups();
            let resumed = shared.resume().await;
            let mut cursor = resumed;
            let mut saved = resumed;
            let mut last_save = tokio::time::Instant::now();
            let mut last_close = tokio::time::Instant::now() - close_check;
            let mut failures = 0u32;
            loop {
                let wait = match shared.follow(cursor).await {
                    Ok((next, held_back)) => {
                        failures = 0;
                        let moved = next != cursor;
                        cursor = next;
                        // Saved when caught up, and every few seconds while reading.
                        if cursor != saved && (!moved || last_save.elapsed() >= SAVE_EVERY) {
                            shared.save(cursor).await;
                            saved = cursor;
                            last_save = tokio::time::Instant::now();
                        }
                        if !moved && !held_back && !shared.caught_up.swap(true, Ordering::SeqCst) {
                            if let Err(e) = shared.load_closed(resumed).await {
                                tracing::warn!(error = %e, "could not read earlier cost reports");
                                shared.caught_up.store(false, Ordering::SeqCst);
                            }
                            tracing::info!("cost read model caught up with the log");
                        }
                        if shared.caught_up.load(Ordering::SeqCst) && last_close.elapsed() >= close_check {
                            last_close = tokio::time::Instant::now();
                            if let Err(e) = shared.close_months().await {
                                tracing::warn!(error = %e, "closing months failed; will try again");
                            }
                        }
                        if moved {
                            Duration::ZERO
                        } else if held_back {
                            Duration::from_millis(5)
                        } else {
                            poll.min(close_check)
                        }
                    }
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        let delay = bookkeeper_core::retry::Backoff::default().delay(failures);
                        tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "reading the log failed");
                        delay
                    }
                };
                if wait.is_zero() {
                    if follower_signal.is_stopped() {
                        break;
                    }
                    continue;
                }
                tokio::select! {
                    _ = &mut follower_stop => break,
                    _ = wakeups.changed() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            // What was read since the last save is kept for the next start.
            if cursor != saved {
                shared.save(cursor).await;
            }
        });
        let server = axum::serve(self.listener, router(self.shared)).with_graceful_shutdown(stop.stopped());
        let server = tokio::spawn(async move { server.await });
        shutdown.await;
        stop.stop();
        follower.await.ok();

        server.await.ok();
        tracing::info!("Cost API stopped");
        Ok(())
    }
}

fn router(shared: Shared) -> Router {
    let ready = shared.clone();
    let ops = Ops::new(shared.store.clone()).ready_when(move || {
        let shared = ready.clone();
        async move {
            if !shared.caught_up.load(Ordering::SeqCst) {
                return Err("still reading the history".to_string());
            }
            let resumed = *shared.resumed_from.read().unwrap_or_else(|p| p.into_inner());
            let resumed = resumed.map(|c| json!({"transaction_id": c.transaction_id, "position": c.position}));
            Ok(Map::from_iter([("resumed_from".to_string(), resumed.unwrap_or(Value::Null))]))
        }
    });
    let app = Router::new()
        .route("/costs/monthly", get(monthly))
        .route("/costs/monthly/report", post(report))
        .with_state(shared)
        .merge(ops.router());
    bookkeeper_http::edge(app, "cost-api")
}

#[derive(Deserialize)]
struct MonthQuery {
    month: Option<String>,
}

fn parse_month(q: &MonthQuery, today: chrono::NaiveDate) -> Result<String, ApiError> {
    let month = q.month.clone().unwrap_or_else(|| month_of(today));
    let ok = chrono::NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").is_ok() && month.len() == 7;
    if ok {
        Ok(month)
    } else {
        Err(ApiError::bad_request(format!("`month` must look like 2026-11, not `{month}`")))
    }
}

async fn monthly(State(shared): State<Shared>, Query(q): Query<MonthQuery>) -> Result<Json<Value>, ApiError> {
    let month = parse_month(&q, shared.clock.today())?;
    if !shared.caught_up.load(Ordering::SeqCst) {
        return Err(ApiError::unavailable("still reading the history; try again shortly"));
    }
    let costs: Vec<Value> = shared
        .ledger()
        .month(&month)
        .into_iter()
        .map(|(currency, c)| {
            json!({"currency": currency, "total_minor": c.total_minor, "by_account": c.by_account,
                   "by_vendor": c.by_vendor, "actions": c.actions})
        })
        .collect();
    Ok(Json(json!({"month": month, "costs": costs})))
}

async fn report(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<MonthQuery>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    auth::check_service_token(shared.token.as_ref(), &headers)?;
    let month = parse_month(&q, shared.clock.today())?;
    let reports = shared.ledger().reports(&month);
    if reports.is_empty() {
        return Err(ApiError::not_found(format!("no executed costs in {month}")));
    }
    let events = reports
        .into_iter()
        .map(|r| {
            let cid = format!("cost-report-{}-{}", r.month, r.currency);
            r.into_event(actor::COST_API, cid).with_metadata(json!({"trigger": "on-demand"}))
        })
        .collect();
    let appended = shared.store.append(Append::new(events)).await?;
    let positions: Vec<i64> = appended.iter().map(|a| a.position).collect();
    Ok((StatusCode::CREATED, Json(json!({"month": month, "positions": positions}))))
}
