//! The command line. Subcommand names and flags are a contract other tools rely on.

mod bench;
mod chat;
mod config;
mod connect;
mod cron;
mod demo;
mod desk;
mod events;
mod facts;
mod people;
mod policy;
mod receipt;
mod report;
mod serve;
mod up;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use bookkeeper_core::config::{ConfigError, Origin, Settings};
use bookkeeper_core::store::{Announce, ConnectOptions};
use bookkeeper_core::Store;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Bookkeeper: bookkeeping automation between Folio and Fiken, over one
/// append-only event log.
#[derive(Debug, Parser)]
#[command(name = "bookkeeper", version, about)]
pub struct Cli {
    /// Where the event log lives: postgres://... or sqlite://FILE.
    /// Defaults to the embedded sqlite://bookkeeper.db.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    database_url: Option<String>,

    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true, env = "BOOKKEEPER_LOG_FORMAT")]
    log_format: LogFormat,

    /// A configuration file of `NAME=value` lines (any setting of
    /// docs/configuration.md); the environment wins over it.
    #[arg(long, global = true, env = "BOOKKEEPER_CONFIG")]
    config: Option<std::path::PathBuf>,

    /// How long to keep retrying while the database is unreachable.
    #[arg(long, default_value = "30s", value_parser = parse_duration, global = true)]
    connect_timeout: Duration,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply pending database migrations (run as the database owner).
    Migrate,
    /// Append and read raw events.
    #[command(subcommand)]
    Events(EventsCommand),
    /// The whole story of one action, in order.
    Audit(report::AuditArgs),
    /// Counts per type and status, pending reviews, approval rate, subscriptions.
    Stats(report::StatsArgs),
    /// Measure the system against its floors: runs `bookkeeper-bench` (built
    /// beside this binary; the benchmarks are not part of it).
    Bench(bench::BenchArgs),
    /// Write, build and test approval policies.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Everything in one process: every service on the embedded log, with the
    /// sandbox Fiken and Folio and the example policies. Try Bookkeeper with this.
    Up(up::UpArgs),
    /// `up`, the scripted demo through the live system, then stop.
    Demo,
    /// Compliance checks.
    #[command(subcommand)]
    Cron(cron::CronCommand),
    /// Talk to Book-E (a running one, over its HTTP door): one message, or a prompt.
    Chat(chat::ChatArgs),
    /// Run one service (for a deployment with one process per service).
    #[command(subcommand)]
    Serve(serve::ServeCommand),
    /// The people directory: hash a token, check a file.
    #[command(subcommand)]
    People(people::PeopleCommand),
    /// Receipts and invoices: read one (what Book-E would read from it).
    #[command(subcommand)]
    Receipt(receipt::ReceiptCommand),
    /// The review desk (Review-E's web pages): a sign-in link for a person.
    #[command(subcommand)]
    Desk(desk::DeskCommand),
    /// Going live: check real credentials for Fiken, Folio or Discord (read-only).
    #[command(subcommand)]
    Connect(connect::ConnectCommand),
    /// The facts Review-E judges with, kept beside the log: status, rebuild.
    #[command(subcommand)]
    Facts(facts::FactsCommand),
    /// The effective configuration: every setting, its value (secrets redacted)
    /// and where it came from.
    Config(config::ConfigArgs),
}

#[derive(Debug, Subcommand)]
enum EventsCommand {
    /// Append events given as JSON lines on stdin; prints each one's position.
    Append(events::AppendArgs),
    /// Print events in read order, optionally following new ones.
    Tail(events::TailArgs),
}

/// Options shared by commands that print either a table or JSON.
#[derive(Debug, Args)]
struct OutputArgs {
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
}

/// The settings of this process, loaded once: the configuration file (`--config`
/// or `BOOKKEEPER_CONFIG`), then the environment, then `--database-url`.
pub fn load_settings(cli: &Cli) -> Result<Settings, ConfigError> {
    let mut settings = Settings::load_from(cli.config.as_deref())?;
    if let Some(url) = &cli.database_url {
        settings.set("DATABASE_URL", url.clone(), Origin::Flag);
    }
    Ok(settings)
}

pub fn init_logging(cli: &Cli, settings: &Settings) {
    use tracing_subscriber::EnvFilter;
    let filter = settings.text("BOOKKEEPER_LOG").and_then(|f| EnvFilter::try_new(f).ok());
    let filter = filter.unwrap_or_else(|| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

pub async fn run(cli: Cli, settings: Settings) -> anyhow::Result<ExitCode> {
    let url = settings.database_url();
    let command = match cli.command {
        Command::Bench(args) => return bench::run(args),
        Command::Chat(args) => return chat::run(args).await,
        Command::Connect(command) => return connect::run(command, &settings).await,
        Command::People(command) => return people::run(command, &settings),
        Command::Config(args) => return config::run(args, &settings),
        Command::Receipt(command) => return receipt::run(command),
        Command::Policy(command) if command.is_local() => return policy::run(command, None).await,
        other => other,
    };
    // The services run for a long time and announce appends after commit; a
    // one-shot command may exit right after its append, so its commits carry
    // their own NOTIFY.
    let announce = match &command {
        Command::Serve(_) | Command::Up(_) | Command::Demo => Announce::AfterCommit,
        _ => Announce::WithCommit,
    };
    let options = ConnectOptions { announce, ..ConnectOptions::default() };
    let store = Store::connect_with_retry(url.expose(), options, cli.connect_timeout)
        .await
        .with_context(|| format!("cannot open the event log at {url}"))?;
    if let Command::Migrate = command {
        let pending = store.pending_migrations().await?;
        store.migrate().await.with_context(|| format!("migrating {url}"))?;
        eprintln!("{url}: {pending} migration(s) applied; schema is up to date");
        return Ok(ExitCode::SUCCESS);
    }
    store.ensure_migrated().await.with_context(|| format!("preparing {url}"))?;
    let closer = store.clone();
    let outcome = match command {
        Command::Events(EventsCommand::Append(args)) => events::append(&store, args).await,
        Command::Policy(command) => policy::run(command, Some(store)).await,
        Command::Serve(command) => serve::run(command, store, &settings).await,
        Command::Cron(command) => cron::run(command, store, &settings).await,
        Command::Up(args) => up::run(args, store, &settings).await,
        Command::Demo => up::run(up::UpArgs::demo_only(), store, &settings).await,
        Command::Events(EventsCommand::Tail(args)) => events::tail(&store, args).await,
        Command::Audit(args) => report::audit(&store, args).await,
        Command::Stats(args) => report::stats(&store, args).await,
        Command::Facts(command) => facts::run(command, &store).await,
        Command::Desk(command) => desk::run(command, store, &settings).await,
        Command::Migrate
        | Command::Bench(_)
        | Command::Chat(_)
        | Command::People(_)
        | Command::Connect(_)
        | Command::Config(_)
        | Command::Receipt(_) => {
            Ok(ExitCode::SUCCESS) // handled above
        }
    };
    // Sends what is still due before the process exits (the NOTIFY of the last
    // appends, so followers elsewhere see them now rather than at their next poll).
    closer.close().await;
    outcome
}

/// Parses a duration: `500ms`, `30s`, `5m`, `1h 30m` (humantime's forms), or a
/// bare number of seconds (as earlier releases took it).
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map(Duration::from_secs).map_err(|_| format!("`{text}` is too large a number of seconds"));
    }
    humantime::parse_duration(text).map_err(|e| format!("`{text}` is not a duration like 500ms, 30s or 5m: {e}"))
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("").is_err());
    }
}
