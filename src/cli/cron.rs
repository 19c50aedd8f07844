//! `bookkeeper cron run-once`: the compliance checks, once (a Kubernetes CronJob
//! runs this). `bookkeeper serve cron` keeps the schedule instead.

use std::process::ExitCode;

use bookkeeper_core::config::Settings;
use bookkeeper_core::Store;
use clap::Subcommand;

/// `cron` subcommands.
#[derive(Debug, Subcommand)]
pub enum CronCommand {
    /// Run every compliance check once, record the result in the log, print it and exit.
    /// Configured by CRON_* and ACCOUNTING_API_URL.
    RunOnce,
}

pub async fn run(command: CronCommand, store: Store, settings: &Settings) -> anyhow::Result<ExitCode> {
    match command {
        CronCommand::RunOnce => {
            let checks = bookkeeper_cron::Checks::new(store, bookkeeper_cron::Config::from_settings(settings)?)?;
            let result = checks.run_once().await?;
            println!("{}", bookkeeper_cron::summary(&result));
            Ok(ExitCode::SUCCESS)
        }
    }
}
