//! `bookkeeper facts status` and `bookkeeper facts rebuild`: the read model
//! Review-E judges proposals with (`bookkeeper_core::store::facts`).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use bookkeeper_core::store::facts::{FactsProgress, Rebuilt};
use bookkeeper_core::Store;
use clap::{Args, Subcommand};
use review_e::decide::SUBSCRIPTION;

/// `bookkeeper facts ...`.
#[derive(Debug, Subcommand)]
pub enum FactsCommand {
    /// How far the facts are folded, beside Review-E's checkpoint.
    Status,
    /// Empty the facts and fold them again from the log, online: under Review-E's
    /// lease when no Review-E runs, else by the running one before its next decision.
    Rebuild(RebuildArgs),
}

/// Arguments of `facts rebuild`.
#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// When a running Review-E folds them: how long to wait for it to finish.
    #[arg(long, default_value = "10m", value_parser = super::parse_duration)]
    wait: Duration,
}

pub async fn run(command: FactsCommand, store: &Store) -> anyhow::Result<ExitCode> {
    match command {
        FactsCommand::Status => {
            let progress = store.facts_progress(SUBSCRIPTION).await?;
            println!("{}", describe(&progress));
            Ok(ExitCode::SUCCESS)
        }
        FactsCommand::Rebuild(args) => rebuild(store, args).await,
    }
}

fn describe(p: &FactsProgress) -> String {
    if p.in_sync() {
        format!("in step: folded up to position {}, Review-E's checkpoint", p.checkpoint.position)
    } else {
        format!(
            "catching up: folded up to position {} of {} (Review-E judges the next proposal once they meet)",
            p.folded.position, p.checkpoint.position
        )
    }
}

async fn rebuild(store: &Store, args: RebuildArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let mut last_said = Instant::now();
    let outcome = store
        .rebuild_facts(SUBSCRIPTION, |p| {
            if last_said.elapsed() >= Duration::from_secs(2) {
                eprintln!("{}", describe(&p));
                last_said = Instant::now();
            }
        })
        .await?;
    match outcome {
        Rebuilt::Folded(events) => {
            eprintln!("rebuilt: {events} event(s) folded in {:.1} s", started.elapsed().as_secs_f64());
            Ok(ExitCode::SUCCESS)
        }
        Rebuilt::LeftToHolder => {
            eprintln!("emptied; the running Review-E holds the lease and folds them again now");
            let deadline = Instant::now() + args.wait;
            loop {
                let progress = store.facts_progress(SUBSCRIPTION).await?;
                if progress.in_sync() {
                    eprintln!("rebuilt by the running Review-E in {:.1} s", started.elapsed().as_secs_f64());
                    return Ok(ExitCode::SUCCESS);
                }
                if Instant::now() >= deadline {
                    eprintln!("still {}; see `bookkeeper facts status`", describe(&progress));
                    return Ok(ExitCode::FAILURE);
                }
                if last_said.elapsed() >= Duration::from_secs(2) {
                    eprintln!("{}", describe(&progress));
                    last_said = Instant::now();
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
