//! `bookkeeper-bench`: Bookkeeper's benchmarks, a binary of their own so the
//! shipped `bookkeeper` carries none of them (nor the native policy they measure
//! against). `bookkeeper bench ...` runs this binary when it sits beside
//! `bookkeeper`; the figures and how to read them are in docs/benchmarks.md.
//!
//! Every figure is measured beside a floor in the same run and reported as a ratio.

mod accounting;
mod decisions;
mod languages;
mod policy;
mod receipts;
mod store;
mod system;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// Measure Bookkeeper against its floors (PostgreSQL: `DATABASE_URL`).
#[derive(Debug, Parser)]
#[command(
    name = "bookkeeper-bench",
    version,
    about = "Bookkeeper's benchmarks, each figure beside a floor measured in the same run"
)]
struct Cli {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// The event store on PostgreSQL against raw SQL floors.
    Store(store::StoreBenchArgs),
    /// Policy evaluation against native Rust; decision round trip and swap latency on PostgreSQL.
    Policy(policy::PolicyBenchArgs),
    /// One rule in Rust, Python and JavaScript: instantiation and call, and the
    /// first decision after a restart with and without the compile cache.
    Languages(languages::LanguagesBenchArgs),
    /// The document reader on the labelled receipts and invoices: per-field
    /// accuracy for PDFs, photos and scans, and the time per document, beside a
    /// floor of raw OCR and plain regular expressions.
    Receipts(receipts::ReceiptsBenchArgs),
    /// The Accounting API executing approvals against the local fakes, against the
    /// same remote calls made directly; its overhead per action (PostgreSQL).
    Accounting(accounting::AccountingBenchArgs),
    /// Proposal -> decision latency as the log grows (0, 100k, 1M earlier events),
    /// each beside its floor measured at the same size (PostgreSQL).
    Decisions(decisions::DecisionsBenchArgs),
    /// The whole write path with Review-E and the Accounting API as processes:
    /// sustained proposals per second and proposal -> executed latency (PostgreSQL).
    System(system::SystemBenchArgs),
}

/// The `bookkeeper` binary the benchmarks run as processes: the one beside this
/// binary (they are built together).
pub fn bookkeeper_binary() -> anyhow::Result<PathBuf> {
    let beside = std::env::current_exe().context("finding this binary")?.with_file_name("bookkeeper");
    anyhow::ensure!(
        beside.is_file(),
        "no `bookkeeper` binary beside this one at {}: build both (`cargo build --release --bins`)",
        beside.display()
    );
    Ok(beside)
}

/// An example policy's component, as shipped inside `bookkeeper`.
pub fn example(name: &str) -> anyhow::Result<&'static [u8]> {
    bookkeeper_example_policies::example(name)
        .map(|e| e.component)
        .with_context(|| format!("no example policy `{name}`"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match bookkeeper_core::config::Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = settings.text("BOOKKEEPER_LOG").and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok());
    tracing_subscriber::fmt()
        .with_env_filter(filter.unwrap_or_else(|| tracing_subscriber::EnvFilter::new("warn")))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            BenchCommand::Store(args) => store::store(args).await,
            BenchCommand::Policy(args) => policy::policy(args).await,
            BenchCommand::Languages(args) => languages::languages(args).await,
            BenchCommand::Receipts(args) => receipts::receipts(args).await,
            BenchCommand::Accounting(args) => accounting::accounting(args).await,
            BenchCommand::Decisions(args) => decisions::decisions(args).await,
            BenchCommand::System(args) => system::system(args).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
