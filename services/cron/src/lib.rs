//! CronJob: the daily compliance checks.
//!
//! Each run reads through the Accounting API's HTTP reads and the log's views,
//! and appends one `ComplianceCheckCompleted` event with a finding per check
//! (how many items need attention, and their ids). A check that cannot reach its
//! source says so in its finding (`error`) instead of failing the run silently.
//! Book-E posts the summary. `bookkeeper cron run-once` runs it once (for a
//! Kubernetes CronJob); `bookkeeper serve cron` keeps the schedule.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use bookkeeper_core::config::Settings;
use bookkeeper_core::domain::{ComplianceCheckCompleted, Finding, Payload, Stage};
use bookkeeper_core::event::actor;
use bookkeeper_core::{ActionState, Append, Clock, Cursor, EventType, Phase, Store, TypeFilter};
use bookkeeper_http::accounting::{AccountingReads, ReadError};
use chrono::{DateTime, Utc};
use secrecy::SecretString;

/// Configuration (environment variable names in brackets).
#[derive(Debug, Clone)]
pub struct Config {
    /// Where `serve cron` answers its health probes (`CRON_ADDR`, default 127.0.0.1:8085).
    pub addr: std::net::SocketAddr,
    /// When to run (`CRON_SCHEDULE`, a cron expression with seconds; default every day at 06:00).
    pub schedule: String,
    /// The time zone of the schedule (`CRON_TIMEZONE`, default Europe/Oslo).
    pub timezone: chrono_tz::Tz,
    /// The Accounting API (`ACCOUNTING_API_URL`, `ACCOUNTING_API_TOKEN`).
    pub accounting_url: String,
    /// Its token, if it requires one.
    pub accounting_token: Option<SecretString>,
    /// A bank transaction without a receipt is flagged after this many days (`CRON_RECEIPT_DAYS`, 7).
    pub receipt_days: u64,
    /// A proposal waiting for a person is flagged after this many hours (`CRON_REVIEW_HOURS`, 24).
    pub review_hours: u64,
    /// Failed executions of the last this many days are listed (`CRON_FAILED_DAYS`, 30).
    pub failed_days: u64,
    /// The bank balance is flagged below this many minor units (`CRON_MIN_BALANCE_MINOR`, 0).
    pub min_balance_minor: i64,
    /// Now, for which reviews have waited too long and which failures are recent.
    pub clock: Clock,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], 8085)),
            schedule: "0 0 6 * * *".into(),
            timezone: chrono_tz::Europe::Oslo,
            accounting_url: "http://127.0.0.1:8082".into(),
            accounting_token: None,
            receipt_days: 7,
            review_hours: 24,
            failed_days: 30,
            min_balance_minor: 0,
            clock: Clock::system(),
        }
    }
}

impl Config {
    /// The configuration from `settings` (see docs/configuration.md), with the
    /// schedule checked.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Config> {
        let mut c = Config::default();
        if let Some(addr) = settings.parsed("CRON_ADDR", "must be host:port")? {
            c.addr = addr;
        }
        if let Some(s) = settings.text("CRON_SCHEDULE") {
            c.schedule = s;
        }
        if let Some(tz) = settings.parsed("CRON_TIMEZONE", "must be a time zone like Europe/Oslo")? {
            c.timezone = tz;
        }
        if let Some(url) = settings.text("ACCOUNTING_API_URL") {
            c.accounting_url = url;
        }
        c.accounting_token = settings.secret("ACCOUNTING_API_TOKEN");
        c.receipt_days = settings.number("CRON_RECEIPT_DAYS")?.unwrap_or(c.receipt_days);
        c.review_hours = settings.number("CRON_REVIEW_HOURS")?.unwrap_or(c.review_hours);
        c.failed_days = settings.number("CRON_FAILED_DAYS")?.unwrap_or(c.failed_days);
        if let Some(v) = settings.parsed("CRON_MIN_BALANCE_MINOR", "must be a whole number of minor units")? {
            c.min_balance_minor = v;
        }
        c.parsed_schedule()?;
        Ok(c)
    }

    fn parsed_schedule(&self) -> anyhow::Result<cron::Schedule> {
        cron::Schedule::from_str(&self.schedule).with_context(|| {
            format!("CRON_SCHEDULE `{}` is not a cron expression (sec min hour day month weekday)", self.schedule)
        })
    }

    /// The next run after `now`.
    pub fn next_run(&self, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
        let schedule = self.parsed_schedule()?;
        schedule
            .after(&now.with_timezone(&self.timezone))
            .next()
            .map(|t| t.with_timezone(&Utc))
            .context("the schedule has no future run")
    }
}

/// Runs the checks.
pub struct Checks {
    store: Store,
    accounting: AccountingReads,
    config: Config,
}

impl Checks {
    /// Checks reading `store` and the Accounting API.
    pub fn new(store: Store, config: Config) -> anyhow::Result<Checks> {
        let accounting =
            AccountingReads::new(&config.accounting_url, config.accounting_token.clone(), Duration::from_secs(60))?;
        Ok(Checks { store, accounting, config })
    }

    fn finding(check: &str, result: Result<Vec<String>, String>) -> Finding {
        match result {
            Ok(ids) => Finding { check: check.into(), count: ids.len() as u32, ids, error: None },
            Err(error) => {
                tracing::warn!(check, %error, "a compliance check could not run");
                Finding { check: check.into(), count: 0, ids: vec![], error: Some(error) }
            }
        }
    }

    async fn missing_receipts(&self) -> Result<Vec<String>, String> {
        let days = self.config.receipt_days;
        let lookback = (days + 90).min(366);
        let m = self.accounting.missing_receipts(days, lookback).await.map_err(read_error)?;
        Ok(m.transactions.into_iter().map(|t| t.id).collect())
    }

    async fn waiting_reviews(&self, now: DateTime<Utc>) -> Result<Vec<String>, String> {
        let limit = now - chrono::Duration::hours(self.config.review_hours as i64);
        let pending = self.store.pending_reviews().await.map_err(|e| format!("the log is unavailable: {e}"))?;
        Ok(pending.into_iter().filter(|p| p.escalated && p.proposed_at < limit).map(|p| p.correlation_id).collect())
    }

    async fn failed_executions(&self, now: DateTime<Utc>) -> Result<Vec<String>, String> {
        let since = now - chrono::Duration::days(self.config.failed_days as i64);
        let filter = TypeFilter::of(EventType::action_types(&[Stage::ExecutionFailed]));
        let mut cursor = Cursor::START;
        let mut ids = Vec::new();
        loop {
            let batch =
                self.store.read(cursor, &filter, 1000).await.map_err(|e| format!("the log is unavailable: {e}"))?;
            for e in &batch.events {
                let is_final = e.payload.get("final").and_then(|f| f.as_bool()).unwrap_or(false);
                if !is_final || e.created_at < since || ids.contains(&e.correlation_id) {
                    continue;
                }
                // Still failed: not retried since by a person's new approval.
                let story = self
                    .store
                    .read_correlation(&e.correlation_id)
                    .await
                    .map_err(|e| format!("the log is unavailable: {e}"))?;
                if ActionState::fold(&story).phase() == Phase::FailedFinally {
                    ids.push(e.correlation_id.clone());
                }
            }
            if batch.events.is_empty() {
                return Ok(ids);
            }
            cursor = batch.next;
        }
    }

    async fn low_balance(&self) -> Result<Vec<String>, String> {
        let b = self.accounting.balance().await.map_err(read_error)?;
        Ok(if b.total_minor < self.config.min_balance_minor {
            b.accounts.into_iter().map(|a| a.account_number).collect()
        } else {
            vec![]
        })
    }

    /// Runs every check and records the result as one event; returns it.
    pub async fn run_once(&self) -> anyhow::Result<ComplianceCheckCompleted> {
        let now = self.config.clock.now();
        let result = ComplianceCheckCompleted {
            findings: vec![
                Self::finding("missing_receipts", self.missing_receipts().await),
                Self::finding("waiting_reviews", self.waiting_reviews(now).await),
                Self::finding("failed_executions", self.failed_executions(now).await),
                Self::finding("low_balance", self.low_balance().await),
            ],
        };
        let cid = format!("compliance-{}-{}", now.format("%Y-%m-%d"), &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let event = result.clone().into_event(actor::CRON, &cid).with_metadata(
            serde_json::json!({"checked_at": now, "settings": {
                "receipt_days": self.config.receipt_days, "review_hours": self.config.review_hours,
                "failed_days": self.config.failed_days, "min_balance_minor": self.config.min_balance_minor}}),
        );
        self.store.append(Append::one(event)).await.context("recording the compliance result in the log")?;
        tracing::info!(correlation_id = %cid, "compliance checks recorded");
        Ok(result)
    }

    /// Runs on the schedule until `shutdown`.
    pub async fn run_on_schedule(&self, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        tokio::pin!(shutdown);
        loop {
            let next = self.config.next_run(Utc::now())?;
            let wait = (next - Utc::now()).to_std().unwrap_or_default();
            tracing::info!(next = %next, "next compliance run");
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
            if let Err(e) = self.run_once().await {
                // The log is down: say so and try again at the next run.
                tracing::error!(error = %e, "the compliance run could not be recorded");
            }
        }
    }
}

/// Why a read of the Accounting API failed, as a finding says it.
fn read_error(e: ReadError) -> String {
    match e {
        ReadError::Unavailable(why) if why == "not reachable" || why == "timed out" => {
            format!("the Accounting API is {why}")
        }
        other => format!("the Accounting API: {other}"),
    }
}

/// The CronJob's health endpoints while it keeps its schedule (`serve cron`):
/// the shared ops routes (`/healthz`, `/readyz`, `/metrics`) on `addr` (`CRON_ADDR`).
pub async fn serve_health(
    addr: std::net::SocketAddr,
    store: Store,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = bookkeeper_http::edge(bookkeeper_http::Ops::new(store).router(), "cron");
    let listener =
        tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding the CronJob to {addr}"))?;
    eprintln!("CronJob health listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await?;
    Ok(())
}

/// One line per finding, for people.
pub fn summary(result: &ComplianceCheckCompleted) -> String {
    result
        .findings
        .iter()
        .map(|f| match &f.error {
            Some(e) => format!("{:<18} could not run: {e}", f.check),
            None => format!("{:<18} {}", f.check, f.count),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_schedule_is_six_in_the_morning_in_oslo() {
        let c = Config::default();
        // 2026-11-25 10:00 UTC is 11:00 in Oslo (winter): next is 06:00 Oslo = 05:00 UTC tomorrow.
        let now = DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(c.next_run(now).unwrap().to_rfc3339(), "2026-11-26T05:00:00+00:00");
        // In summer Oslo is UTC+2: 04:00 UTC.
        let june = DateTime::parse_from_rfc3339("2026-06-10T10:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(c.next_run(june).unwrap().to_rfc3339(), "2026-06-11T04:00:00+00:00");
        let bad = Config { schedule: "every morning".into(), ..Config::default() };
        assert!(bad.next_run(now).unwrap_err().to_string().contains("not a cron expression"));
    }
}
