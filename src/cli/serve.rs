//! `bookkeeper serve <service>`: one service in this process.

use std::process::ExitCode;

use anyhow::Context;
use bookkeeper_core::config::Settings;
use bookkeeper_core::Store;
use clap::Subcommand;

/// The services `serve` can run.
#[derive(Debug, Subcommand)]
pub enum ServeCommand {
    /// Review-E: judges proposals with the active policies; human review and
    /// policy management over HTTP. Configured by REVIEW_E_* variables.
    ReviewE,
    /// Accounting API: executes approved actions against Fiken and Folio; documents
    /// and read-only queries over HTTP. Configured by ACCOUNTING_API_*, FIKEN_* and
    /// FOLIO_* variables; without credentials it runs against the local sandbox.
    AccountingApi,
    /// Book-E: the conversation (HTTP door `POST /chat`; Discord when configured).
    /// Configured by BOOK_E_* and ACCOUNTING_API_URL.
    BookE,
    /// Cost API: monthly costs from executed actions; reports closed months.
    /// Configured by COST_API_* variables.
    CostApi,
    /// CronJob: runs the compliance checks on CRON_SCHEDULE (default 06:00 Europe/Oslo).
    Cron,
}

pub async fn run(command: ServeCommand, store: Store, settings: &Settings) -> anyhow::Result<ExitCode> {
    // Said at every start, where an operator looks when a service slows down.
    for warning in store.server_warnings().await.unwrap_or_default() {
        tracing::warn!("{warning}");
    }
    match command {
        ServeCommand::ReviewE => {
            let config = review_e::Config::from_settings(settings)?;
            let service = review_e::ReviewE::build(config, store).await?;
            let active = service.registry().current();
            eprintln!(
                "Review-E listening on http://127.0.0.1:{} ({} active policies)",
                service.port(),
                active.set.len()
            );
            service.run_until_stopped(super::shutdown_signal()).await.context("Review-E failed")?;
            Ok(ExitCode::SUCCESS)
        }
        ServeCommand::AccountingApi => {
            let config = accounting_api::Config::from_settings(settings, false)?;
            let service = accounting_api::AccountingApi::build(config, store).await?;
            let sandbox = service.sandbox();
            let mut labels = Vec::new();
            if let Some(fake) = &sandbox.fiken {
                labels.push(format!("Fiken SANDBOX at {}", fake.base_url()));
            }
            if let Some(fake) = &sandbox.folio {
                labels.push(format!("Folio SANDBOX at {}", fake.base_url()));
            }
            let connectors = if labels.is_empty() { "live Fiken and Folio".to_string() } else { labels.join(", ") };
            eprintln!("Accounting API listening on http://127.0.0.1:{} ({connectors})", service.port());
            if service.is_sandbox() {
                tracing::warn!("running against the local SANDBOX: nothing reaches the real Fiken or Folio");
            }
            service.run_until_stopped(super::shutdown_signal()).await.context("the Accounting API failed")?;
            Ok(ExitCode::SUCCESS)
        }
        ServeCommand::CostApi => {
            let config = cost_api::Config::from_settings(settings)?;
            let service = cost_api::CostApi::build(config, store).await?;
            eprintln!("Cost API listening on http://127.0.0.1:{}", service.port());
            service.run_until_stopped(super::shutdown_signal()).await.context("the Cost API failed")?;
            Ok(ExitCode::SUCCESS)
        }
        ServeCommand::Cron => {
            let config = bookkeeper_cron::Config::from_settings(settings)?;
            let next = config.next_run(chrono::Utc::now())?;
            eprintln!("CronJob scheduled ({} in {}); next run {next}", config.schedule, config.timezone);
            let addr = config.addr;
            let stop = bookkeeper_core::shutdown::StopSignal::new();
            let health = tokio::spawn(bookkeeper_cron::serve_health(addr, store.clone(), stop.stopped()));
            let checks = bookkeeper_cron::Checks::new(store, config)?;
            let outcome = checks.run_on_schedule(super::shutdown_signal()).await;
            stop.stop();
            health.await.ok();
            outcome.context("the CronJob failed")?;
            Ok(ExitCode::SUCCESS)
        }
        ServeCommand::BookE => {
            let config = book_e::Config::from_settings(settings)?;
            let accounting = config.accounting_url.clone();
            let service = book_e::BookE::build(config, store).await?;
            eprintln!("Book-E listening on http://127.0.0.1:{} (Accounting API at {accounting})", service.port());
            service.run_until_stopped(super::shutdown_signal()).await.context("Book-E failed")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
