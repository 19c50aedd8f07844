//! `bookkeeper serve <service>`: one service in this process.

use std::process::ExitCode;

use anyhow::Context;
use bookkeeper_core::Store;
use clap::Subcommand;

/// The services `serve` can run.
#[derive(Debug, Subcommand)]
pub enum ServeCommand {
    /// Review-E: judges proposals with the active policies; human review and
    /// policy management over HTTP. Configured by REVIEW_E_* variables.
    ReviewE,
}

pub async fn run(command: ServeCommand, store: Store) -> anyhow::Result<ExitCode> {
    match command {
        ServeCommand::ReviewE => {
            let config = review_e::Config::from_env()?;
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
    }
}
