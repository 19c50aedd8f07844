//! The Accounting API: the only part of Bookkeeper that changes the books.
//!
//! - [`execute`]: the subscription to `*Approved` that carries actions out
//!   against Fiken and Folio exactly once, and records the outcome as events.
//! - [`http`]: documents (`POST /documents`) and read-only queries.
//! - [`fiken`], [`folio`]: typed clients, and the faithful local fakes that are
//!   the sandbox and what the tests run against.
//! - [`documents`]: content-checked documents (amounts: `bookkeeper_core::money`).
//!
//! [`AccountingApi`] wires them into one service.

// Amounts in code are written kroner_øre (499_00 is 499,00 kr), which clippy
// reads as inconsistent grouping.
#![allow(clippy::inconsistent_digit_grouping)]

pub mod connect;
pub mod documents;
pub mod execute;
pub mod fiken;
pub mod folio;
pub mod http;

mod openapi;
pub mod retry;
pub mod sandbox;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bookkeeper_core::config::Settings;
use bookkeeper_core::domain::Stage;
use bookkeeper_core::roles::Role;
use bookkeeper_core::shutdown::{until_shutdown, StopSignal};
use bookkeeper_core::{Clock, EventType, Store, Subscription, SubscriptionOptions, TypeFilter};
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;

use crate::execute::{Connectors, ExecutionOptions, Executor};
use crate::fiken::fake::FakeFiken;
use crate::fiken::{FikenClient, Token};
use crate::folio::fake::FakeFolio;
use crate::folio::{ApiKey, FolioClient};
use crate::retry::RetryPolicy;

/// Fiken's production API.
pub const FIKEN_BASE_URL: &str = "https://api.fiken.no/api/v2";
/// Folio's production API.
pub const FOLIO_BASE_URL: &str = "https://api.folio.no/v2";

/// How to reach Fiken: real credentials, or the local sandbox.
#[derive(Clone, Debug)]
pub enum FikenConfig {
    /// The real thing (or any server speaking its API).
    Live {
        /// `FIKEN_BASE_URL`, default [`FIKEN_BASE_URL`].
        base_url: String,
        /// `FIKEN_COMPANY`: the company slug.
        company: String,
        /// `FIKEN_TOKEN`.
        token: Token,
    },
    /// The fake, started in this process on `addr` (`FIKEN_SANDBOX_ADDR`, default a free port).
    Sandbox {
        /// Where the fake listens.
        addr: SocketAddr,
    },
}

/// How to reach Folio: real credentials, or the local sandbox.
#[derive(Clone, Debug)]
pub enum FolioConfig {
    /// The real thing.
    Live {
        /// `FOLIO_BASE_URL`, default [`FOLIO_BASE_URL`].
        base_url: String,
        /// `FOLIO_API_KEY`.
        key: ApiKey,
    },
    /// The fake with a sandbox company (`FOLIO_SANDBOX_ADDR`, default a free port).
    Sandbox {
        /// Where the fake listens.
        addr: SocketAddr,
    },
}

/// The Accounting API's configuration (setting names in brackets; see
/// docs/configuration.md). `Debug` never prints a secret.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the HTTP API listens (`ACCOUNTING_API_ADDR`, default 127.0.0.1:8082).
    pub addr: SocketAddr,
    /// Bearer token HTTP callers must present (`ACCOUNTING_API_TOKEN`), if any.
    pub token: Option<SecretString>,
    /// Fiken.
    pub fiken: FikenConfig,
    /// Folio.
    pub folio: FolioConfig,
    /// Pacing of Fiken requests (`FIKEN_SPACING_MS`, default 250: Fiken's 4/s).
    pub fiken_spacing: Duration,
    /// HTTP retries and timeouts of both clients (`ACCOUNTING_API_HTTP_TIMEOUT_MS`).
    pub http: RetryPolicy,
    /// Attempts per action and the delay between them (`ACCOUNTING_API_MAX_ATTEMPTS`,
    /// `ACCOUNTING_API_RETRY_BASE_MS`, `ACCOUNTING_API_RETRY_CAP_MS`).
    pub execution: ExecutionOptions,
    /// Largest document accepted (`ACCOUNTING_API_MAX_DOCUMENT_BYTES`, default 20 MiB).
    pub max_document_bytes: usize,
    /// How often the subscription polls without a wake-up.
    pub poll_interval: Duration,
    /// How long a dead replica's claim on the executor lasts (`BOOKKEEPER_LEASE_TTL_SECS`).
    pub lease_ttl: Duration,
    /// Today, for the default periods of the HTTP reads.
    pub clock: Clock,
}

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

impl Default for Config {
    /// Sandbox connectors on free ports, listening on 127.0.0.1:8082.
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 8082)),
            token: None,
            fiken: FikenConfig::Sandbox { addr: any_port() },
            folio: FolioConfig::Sandbox { addr: any_port() },
            fiken_spacing: fiken::SPACING,
            http: RetryPolicy::default(),
            execution: ExecutionOptions::default(),
            max_document_bytes: documents::DEFAULT_MAX_BYTES,
            poll_interval: Duration::from_secs(1),
            lease_ttl: SubscriptionOptions::default().lease_ttl,
            clock: Clock::system(),
        }
    }
}

impl Config {
    /// The configuration from `settings`. The sandbox is chosen explicitly
    /// (`ACCOUNTING_API_SANDBOX=1`, or `sandbox_allowed` for `up`): a missing
    /// `FIKEN_TOKEN` or `FOLIO_API_KEY` then means that connector's local fake;
    /// without it, a missing credential is an error, so real approvals never run
    /// against the sandbox by mistake. Outside the sandbox `ACCOUNTING_API_TOKEN`
    /// is required.
    pub fn from_settings(settings: &Settings, sandbox_allowed: bool) -> anyhow::Result<Config> {
        let sandbox = sandbox_allowed || settings.flag("ACCOUNTING_API_SANDBOX")?.unwrap_or(false);
        let allow_mixed = settings.flag("ACCOUNTING_API_SANDBOX_MIXED")?.unwrap_or(false);
        let mut config = Config::default();
        if let Some(addr) = settings.parsed("ACCOUNTING_API_ADDR", "must be host:port")? {
            config.addr = addr;
        }
        config.token = settings.secret("ACCOUNTING_API_TOKEN");
        if config.token.as_ref().is_some_and(|t| t.expose_secret().len() < 16) {
            anyhow::bail!("ACCOUNTING_API_TOKEN must be at least 16 characters");
        }
        let sandbox_addr = |var: &str| -> anyhow::Result<SocketAddr> {
            Ok(settings.parsed(var, "must be host:port")?.unwrap_or_else(any_port))
        };
        let missing = |what: &str, var: &str| {
            anyhow::anyhow!(
                "{var} is not set: give {what}'s credentials, or set ACCOUNTING_API_SANDBOX=1 to run against the \
                 local sandbox (no real {what})"
            )
        };
        config.fiken = match settings.secret("FIKEN_TOKEN") {
            Some(token) => FikenConfig::Live {
                base_url: settings.text("FIKEN_BASE_URL").unwrap_or_else(|| FIKEN_BASE_URL.into()),
                company: settings
                    .text("FIKEN_COMPANY")
                    .context("FIKEN_COMPANY (the company slug) is required with FIKEN_TOKEN")?,
                token: Token::from(token),
            },
            None if sandbox => FikenConfig::Sandbox { addr: sandbox_addr("FIKEN_SANDBOX_ADDR")? },
            None => return Err(missing("Fiken", "FIKEN_TOKEN")),
        };
        config.folio = match settings.secret("FOLIO_API_KEY") {
            Some(key) => FolioConfig::Live {
                base_url: settings.text("FOLIO_BASE_URL").unwrap_or_else(|| FOLIO_BASE_URL.into()),
                key: ApiKey::from(key),
            },
            None if sandbox => FolioConfig::Sandbox { addr: sandbox_addr("FOLIO_SANDBOX_ADDR")? },
            None => return Err(missing("Folio", "FOLIO_API_KEY")),
        };
        let fiken_live = matches!(config.fiken, FikenConfig::Live { .. });
        let folio_live = matches!(config.folio, FolioConfig::Live { .. });
        if fiken_live != folio_live && !allow_mixed {
            anyhow::bail!(
                "one connector is live and the other the sandbox ({}): give both credentials, or neither \
                 (set ACCOUNTING_API_SANDBOX_MIXED=1 to mean it)",
                if fiken_live { "FOLIO_API_KEY is missing" } else { "FIKEN_TOKEN is missing" }
            );
        }
        let live = fiken_live || folio_live;
        if live && config.token.is_none() {
            anyhow::bail!(
                "ACCOUNTING_API_TOKEN is required outside the sandbox: without it anyone who reaches the Accounting \
                 API reads the bank and uploads documents"
            );
        }
        if let Some(ms) = settings.number("FIKEN_SPACING_MS")? {
            config.fiken_spacing = Duration::from_millis(ms);
        }
        if let Some(ms) = settings.number("ACCOUNTING_API_HTTP_TIMEOUT_MS")? {
            config.http.timeout = Duration::from_millis(ms.max(1));
        }
        if let Some(n) = settings.number("ACCOUNTING_API_MAX_ATTEMPTS")? {
            config.execution.max_attempts = u32::try_from(n).unwrap_or(u32::MAX).max(1);
        }
        if let Some(ms) = settings.number("ACCOUNTING_API_RETRY_BASE_MS")? {
            config.execution.backoff.base = Duration::from_millis(ms);
        }
        if let Some(ms) = settings.number("ACCOUNTING_API_RETRY_CAP_MS")? {
            config.execution.backoff.cap = Duration::from_millis(ms);
        }
        if let Some(bytes) = settings.number("ACCOUNTING_API_MAX_DOCUMENT_BYTES")? {
            config.max_document_bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
        }
        config.lease_ttl = bookkeeper_core::config::lease_ttl(settings)?;
        Ok(config)
    }
}

/// The fakes this process runs when a connector has no credentials. Shared, so a
/// demo or a test can steer them while the service runs.
#[derive(Default, Clone)]
pub struct Sandbox {
    /// The fake Fiken, if Fiken is sandboxed.
    pub fiken: Option<Arc<FakeFiken>>,
    /// The fake Folio, if Folio is sandboxed.
    pub folio: Option<Arc<FakeFolio>>,
}

/// A running Accounting API: the HTTP API and the executing subscription.
pub struct AccountingApi {
    listener: TcpListener,
    store: Store,
    config: Config,
    connectors: Connectors,
    sandbox: Sandbox,
}

impl AccountingApi {
    /// Starts the sandbox fakes the configuration asks for, builds the clients and
    /// binds the listener (port 0 picks a free one).
    pub async fn build(config: Config, store: Store) -> anyhow::Result<AccountingApi> {
        let mut sandbox = Sandbox::default();
        let fiken = match &config.fiken {
            FikenConfig::Live { base_url, company, token } => {
                FikenClient::new(base_url, company, token.clone(), config.http.clone(), config.fiken_spacing)?
            }
            FikenConfig::Sandbox { addr } => {
                let fake =
                    FakeFiken::start(*addr).await.with_context(|| format!("starting the sandbox Fiken on {addr}"))?;
                let client = FikenClient::new(
                    fake.base_url(),
                    fiken::fake::SANDBOX_COMPANY,
                    Token::new(format!("sandbox-{}", uuid::Uuid::new_v4())),
                    config.http.clone(),
                    config.fiken_spacing,
                )?;
                sandbox.fiken = Some(Arc::new(fake));
                client
            }
        };
        let folio = match &config.folio {
            FolioConfig::Live { base_url, key } => FolioClient::new(base_url, key.clone(), config.http.clone())?,
            FolioConfig::Sandbox { addr } => {
                let fake =
                    FakeFolio::sandbox(*addr).await.with_context(|| format!("starting the sandbox Folio on {addr}"))?;
                let client = FolioClient::new(fake.base_url(), ApiKey::new("sandbox"), config.http.clone())?;
                sandbox.folio = Some(Arc::new(fake));
                client
            }
        };
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("binding the Accounting API to {}", config.addr))?;
        Ok(AccountingApi { listener, store, config, connectors: Connectors { fiken, folio }, sandbox })
    }

    /// The port the API listens on.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or_default()
    }

    /// The sandbox fakes running in this process (none with real credentials).
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// Whether any connector is the sandbox.
    pub fn is_sandbox(&self) -> bool {
        self.sandbox.fiken.is_some() || self.sandbox.folio.is_some()
    }

    /// The executing subscription, as [`AccountingApi::run_until_stopped`] runs it:
    /// a test can step or drain it instead of waiting for the running loop.
    pub fn executor(&self) -> Subscription<Executor> {
        let options = SubscriptionOptions {
            poll_interval: self.config.poll_interval,
            retry: self.config.execution.backoff,
            park_as: Some(Role::AccountingApi.actor().into()),
            lease_ttl: self.config.lease_ttl,
            ..Default::default()
        };
        Subscription::new(
            self.store.clone(),
            execute::SUBSCRIPTION,
            TypeFilter::of(EventType::action_types(&[Stage::Approved])),
            Executor::new(self.store.clone(), self.connectors.clone(), self.config.execution),
        )
        .with_options(options)
    }

    /// Runs until `shutdown` resolves. The action in hand is finished and recorded
    /// first; the sandbox fakes stop last.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stop = StopSignal::new();
        let executor = self.executor();
        let sandboxed = self.is_sandbox();
        let state = http::AppState {
            store: self.store.clone(),
            connectors: self.connectors.clone(),
            sandbox: sandboxed,
            max_document_bytes: self.config.max_document_bytes,
            token: self.config.token.clone(),
            clock: self.config.clock.clone(),
        };
        let server = axum::serve(self.listener, http::router(state)).with_graceful_shutdown(stop.stopped());
        let mut executing = tokio::spawn(executor.run(stop.stopped()));
        let server = tokio::spawn(async move { server.await });
        let outcome = until_shutdown(shutdown, &mut executing, "executing subscription", &stop).await;
        tracing::info!("Accounting API stopping");
        outcome?;
        executing.await.ok();
        server.await.ok();
        drop(self.sandbox);
        Ok(())
    }
}
