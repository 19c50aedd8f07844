//! Review-E judges every proposal with approval policies compiled to
//! WebAssembly, and lets people decide what no policy approves.
//!
//! - [`policy`]: the sandbox (wasmtime) and how verdicts combine.
//! - [`registry`]: the active policy set, followed from `Policy*` events.
//! - [`publish`] and [`folder`]: changing the rules, by upload or by file.
//! - [`decide`]: the subscription that turns proposals into decisions.
//! - [`review`] and [`http`]: decisions by people, over HTTP.
//! - [`desk`]: the review desk, web pages for reviewers and policy authors.
//!
//! [`ReviewE`] wires them into one service.

pub mod backtest;
pub mod decide;
pub mod desk;
pub mod folder;
pub mod http;
pub mod policy;
pub mod press;
pub mod proposal;
pub mod publish;
pub mod registry;
pub mod review;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bookkeeper_core::config::Settings;
use bookkeeper_core::roles::Role;
use bookkeeper_core::shutdown::{until_shutdown, StopSignal};
use bookkeeper_core::{Store, SubscriptionOptions};
use secrecy::SecretString;
use tokio::net::TcpListener;

use bookkeeper_core::people::{self, Directory, Door, LegacyTokens, Right};

use crate::policy::{Limits, PolicyEngine};
use crate::press::PressConfig;
use crate::registry::Registry;

/// Review-E's configuration. Environment variable names in brackets. Its `Debug`
/// output names reviewers and authors but never prints their tokens.
#[derive(Clone)]
pub struct Config {
    /// Where the HTTP API listens (`REVIEW_E_ADDR`, default 127.0.0.1:8081).
    pub addr: SocketAddr,
    /// The watched policy folder, if any (`REVIEW_E_POLICY_DIR`).
    pub policy_dir: Option<PathBuf>,
    /// Who may review and publish (`BOOKKEEPER_PEOPLE`; the deprecated
    /// `REVIEW_E_REVIEWER_TOKENS` and `REVIEW_E_AUTHOR_TOKENS` are mapped onto it).
    pub people: Directory,
    /// How Discord presses are checked (`DISCORD_PUBLIC_KEY`, `DISCORD_GUILD_ID`,
    /// `DISCORD_REVIEWER_ROLE_ID`, `DISCORD_APPLICATION_ID`, `REVIEW_E_PRESS_WINDOW_SECS`).
    pub presses: Option<PressConfig>,
    /// The token Book-E presents for presses it saw over the gateway
    /// (`REVIEW_E_ASSERTED_PRESS_TOKEN`); none, or `REVIEW_E_ALLOW_ASSERTED_PRESSES=0`:
    /// such presses are refused.
    pub asserted_press_token: Option<SecretString>,
    /// The limits of a policy whose author asks for none (`REVIEW_E_POLICY_DEADLINE_MS`,
    /// `REVIEW_E_POLICY_MEMORY_MB`, `REVIEW_E_MAX_POLICY_BYTES`, `REVIEW_E_POLICY_CORE_INSTANCES`).
    pub limits: Limits,
    /// The most any policy may ask for (`REVIEW_E_POLICY_MAX_*`).
    pub max_limits: Limits,
    /// How often the subscription polls without a wake-up.
    pub poll_interval: Duration,
    /// How long a dead replica's claim on deciding lasts (`BOOKKEEPER_LEASE_TTL_SECS`).
    pub lease_ttl: Duration,
    /// The review desk (`REVIEW_E_DESK_*`).
    pub desk: desk::DeskConfig,
    /// How long a compiled policy no policy in force needs is kept
    /// (`REVIEW_E_COMPILE_CACHE_KEEP_DAYS`).
    pub compile_cache_keep: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let people: Vec<&str> = self.people.people().iter().map(|p| p.id.as_str()).collect();
        f.debug_struct("Config")
            .field("addr", &self.addr)
            .field("policy_dir", &self.policy_dir)
            .field("people", &people)
            .field("presses", &self.presses)
            .field("asserted_presses", &self.asserted_press_token.is_some())
            .field("limits", &self.limits)
            .field("max_limits", &self.max_limits)
            .field("poll_interval", &self.poll_interval)
            .field("desk", &self.desk)
            .field("compile_cache_keep", &self.compile_cache_keep)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 8081)),
            policy_dir: None,
            people: Directory::default(),
            presses: None,
            asserted_press_token: None,
            limits: Limits::default(),
            max_limits: Limits::default_maxima(),
            poll_interval: Duration::from_secs(1),
            lease_ttl: SubscriptionOptions::default().lease_ttl,
            desk: desk::DeskConfig::default(),
            compile_cache_keep: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

impl Config {
    /// The configuration from `settings` (see docs/configuration.md).
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Config> {
        let mut config = Config::default();
        if let Some(addr) = settings.parsed("REVIEW_E_ADDR", "must be host:port")? {
            config.addr = addr;
        }
        config.policy_dir = settings.text("REVIEW_E_POLICY_DIR").map(PathBuf::from);
        let (people, warnings) = people::from_settings(
            settings,
            &[
                LegacyTokens { var: "REVIEW_E_REVIEWER_TOKENS", door: Door::ReviewE, right: Right::Review },
                LegacyTokens { var: "REVIEW_E_AUTHOR_TOKENS", door: Door::ReviewE, right: Right::Publish },
            ],
        )
        .map_err(|e| anyhow::anyhow!(e))?;
        for w in warnings {
            tracing::warn!("{w}");
        }
        config.people = people;
        if let Some(key) = settings.text("DISCORD_PUBLIC_KEY") {
            let id = |var: &str| -> anyhow::Result<String> {
                settings.text(var).with_context(|| format!("{var} is required with DISCORD_PUBLIC_KEY (a Discord id)"))
            };
            config.presses = Some(PressConfig {
                public_key: press::public_key(&key).map_err(|e| anyhow::anyhow!(e))?,
                guild_id: id("DISCORD_GUILD_ID")?,
                reviewer_role: id("DISCORD_REVIEWER_ROLE_ID")?,
                application_id: settings.text("DISCORD_APPLICATION_ID"),
                window: Duration::from_secs(settings.number("REVIEW_E_PRESS_WINDOW_SECS")?.unwrap_or(300).max(1)),
            });
        }
        let allow_asserted = settings.flag("REVIEW_E_ALLOW_ASSERTED_PRESSES")?.unwrap_or(true);
        config.asserted_press_token = settings.secret("REVIEW_E_ASSERTED_PRESS_TOKEN").filter(|_| allow_asserted);
        config.limits = limits_from(
            settings,
            Limits::default(),
            [
                "REVIEW_E_POLICY_DEADLINE_MS",
                "REVIEW_E_POLICY_MEMORY_MB",
                "REVIEW_E_MAX_POLICY_BYTES",
                "REVIEW_E_POLICY_CORE_INSTANCES",
            ],
        )?;
        config.max_limits = limits_from(
            settings,
            Limits::default_maxima().max(config.limits),
            [
                "REVIEW_E_POLICY_MAX_DEADLINE_MS",
                "REVIEW_E_POLICY_MAX_MEMORY_MB",
                "REVIEW_E_POLICY_MAX_COMPONENT_BYTES",
                "REVIEW_E_POLICY_MAX_CORE_INSTANCES",
            ],
        )?;
        // Before per-policy limits these three were the only caps. An operator
        // who set one and no maximum keeps it as a cap, not merely a default:
        // an upgrade must not loosen what they tightened.
        for (old, new) in [
            ("REVIEW_E_POLICY_DEADLINE_MS", "REVIEW_E_POLICY_MAX_DEADLINE_MS"),
            ("REVIEW_E_POLICY_MEMORY_MB", "REVIEW_E_POLICY_MAX_MEMORY_MB"),
            ("REVIEW_E_MAX_POLICY_BYTES", "REVIEW_E_POLICY_MAX_COMPONENT_BYTES"),
        ] {
            if settings.text(old).is_some() && settings.text(new).is_none() {
                match old {
                    "REVIEW_E_POLICY_DEADLINE_MS" => config.max_limits.deadline = config.limits.deadline,
                    "REVIEW_E_POLICY_MEMORY_MB" => config.max_limits.memory_bytes = config.limits.memory_bytes,
                    _ => config.max_limits.component_bytes = config.limits.component_bytes,
                }
                tracing::warn!(
                    "{old} is now the default a policy gets when its author asks for none; as {new} is not set, \
                     it is also the most any policy may ask for (set {new} to let authors ask for more)"
                );
            }
        }
        if let Some(above) = config.limits.above(&config.max_limits) {
            anyhow::bail!("a default policy limit is above its maximum ({above}): raise REVIEW_E_POLICY_MAX_* or lower the default");
        }
        if config.max_limits.component_bytes > bookkeeper_core::store::MAX_BLOB_BYTES {
            anyhow::bail!(
                "REVIEW_E_POLICY_MAX_COMPONENT_BYTES is above {} (the largest component the log can store)",
                bookkeeper_core::store::MAX_BLOB_BYTES
            );
        }
        config.lease_ttl = bookkeeper_core::config::lease_ttl(settings)?;
        if let Some(key) = settings.secret("REVIEW_E_DESK_SESSION_KEY") {
            config.desk.key = Some(desk::session::SessionKey::new(key).map_err(|e| anyhow::anyhow!(e))?);
        }
        if let Some(days) = settings.number("REVIEW_E_COMPILE_CACHE_KEEP_DAYS")? {
            if days == 0 {
                anyhow::bail!("REVIEW_E_COMPILE_CACHE_KEEP_DAYS must be at least 1 (a day)");
            }
            config.compile_cache_keep = Duration::from_secs(days.min(3650) * 24 * 3600);
        }
        if let Some(secs) = settings.number("REVIEW_E_DESK_SESSION_SECS")? {
            config.desk.session_lifetime = Duration::from_secs(secs.clamp(60, 30 * 24 * 3600));
        }
        config.desk.public_url = settings.text("REVIEW_E_DESK_URL").map(|u| u.trim_end_matches('/').to_string());
        if let Some(program) = settings.text("REVIEW_E_DESK_PDFTOPPM") {
            config.desk.pdftoppm = PathBuf::from(program);
        }
        Ok(config)
    }
}

/// Limits from four settings (deadline in ms, memory in MiB, component in bytes,
/// core instances), each replacing the one in `base` when set.
fn limits_from(settings: &Settings, base: Limits, vars: [&str; 4]) -> anyhow::Result<Limits> {
    let mut limits = base;
    let [deadline, memory, component, instances] = vars;
    if let Some(ms) = settings.number(deadline)? {
        limits.deadline = Duration::from_millis(ms.max(1));
    }
    if let Some(mb) = settings.number(memory)? {
        limits.memory_bytes = usize::try_from(mb.max(1)).unwrap_or(usize::MAX / (1 << 20)).saturating_mul(1 << 20);
    }
    if let Some(bytes) = settings.number(component)? {
        limits.component_bytes = usize::try_from(bytes.max(1)).unwrap_or(usize::MAX);
    }
    if let Some(n) = settings.number(instances)? {
        limits.core_instances = u32::try_from(n.max(1)).unwrap_or(u32::MAX);
    }
    Ok(limits)
}

/// A running Review-E: HTTP API, policy follower, folder watcher, and the
/// subscription that decides.
pub struct ReviewE {
    listener: TcpListener,
    store: Store,
    registry: Registry,
    desk: Arc<desk::Desk>,
    config: Config,
}

impl ReviewE {
    /// Binds the listener (port 0 picks a free one) and loads the current policy set.
    pub async fn build(config: Config, store: Store) -> anyhow::Result<ReviewE> {
        let engine = PolicyEngine::with_maxima(config.limits, config.max_limits.max(config.limits))
            .context("starting the policy engine")?;
        let registry = Registry::new(engine);
        registry.catch_up(&store).await.context("loading the published policies")?;
        let listener =
            TcpListener::bind(config.addr).await.with_context(|| format!("binding Review-E to {}", config.addr))?;
        let desk = Arc::new(desk::Desk::new(&config.desk));
        Ok(ReviewE { listener, store, registry, desk, config })
    }

    /// The port the API listens on.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or_default()
    }

    /// The desk's address: `REVIEW_E_DESK_URL`, or this listener's.
    pub fn desk_url(&self) -> String {
        self.config.desk.public_url.clone().unwrap_or_else(|| format!("http://127.0.0.1:{}/desk", self.port()))
    }

    /// A one-time sign-in link to the desk for `person` (a canonical id), valid
    /// for 15 minutes, issued by Review-E (what `up` prints for its local reviewer).
    pub async fn desk_sign_in_link(&self, person: &str) -> Result<String, bookkeeper_core::StoreError> {
        desk::issue_sign_in_link(&self.store, self.desk.key(), &self.desk_url(), person, Role::ReviewE.actor()).await
    }

    /// The policy registry (for tests and the binary's `up`).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The deciding subscription, as [`ReviewE::run_until_stopped`] runs it: a test
    /// can step or drain it instead of waiting for the running loop.
    pub fn decider(&self) -> bookkeeper_core::Subscription<decide::Reviewer> {
        let options = SubscriptionOptions {
            poll_interval: self.config.poll_interval,
            park_as: Some(Role::ReviewE.actor().into()),
            keeps_facts: true,
            lease_ttl: self.config.lease_ttl,
            ..Default::default()
        };
        decide::subscription(self.store.clone(), self.registry.clone(), options)
    }

    /// Runs until `shutdown` resolves; the event in hand is finished first.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stop = StopSignal::new();
        let decider = self.decider();
        let state = http::AppState {
            store: self.store.clone(),
            registry: self.registry.clone(),
            people: Arc::new(self.config.people.clone()),
            presses: self.config.presses.clone().map(Arc::new),
            asserted_press_token: self.config.asserted_press_token.clone(),
            desk: self.desk.clone(),
        };
        let app = http::router(state, self.config.max_limits.max(self.config.limits).component_bytes);
        let server = axum::serve(self.listener, app).with_graceful_shutdown(stop.stopped());
        let follower = tokio::spawn(self.registry.clone().follow(self.store.clone(), stop.stopped()));
        let watcher = self
            .config
            .policy_dir
            .clone()
            .map(|dir| tokio::spawn(folder::watch(dir, self.store.clone(), self.registry.clone(), stop.stopped())));
        let pruning = tokio::spawn(self.registry.clone().prune_compile_cache_daily(
            self.store.clone(),
            self.config.compile_cache_keep,
            stop.stopped(),
        ));
        let mut deciding = tokio::spawn(decider.run(stop.stopped()));
        let server = tokio::spawn(async move { server.await });
        let outcome = until_shutdown(shutdown, &mut deciding, "deciding subscription", &stop).await;
        tracing::info!("Review-E stopping");
        if let Err(died) = outcome {
            follower.await.ok();
            return Err(died.into());
        }
        deciding.await.ok();
        follower.await.ok();
        pruning.await.ok();
        if let Some(w) = watcher {
            w.await.ok();
        }
        server.await.context("the HTTP server task failed")?.context("the HTTP server failed")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bookkeeper_core::people::from_legacy_token;

    #[test]
    fn tokens_never_print() {
        let kari = from_legacy_token("kari", Door::ReviewE, "s3cret-token-0123456789", Right::Review);
        let config = Config { people: Directory::new(vec![kari]).unwrap(), ..Config::default() };
        let printed = format!("{config:?}");
        assert!(printed.contains("kari") && !printed.contains("s3cret"), "{printed}");
        let err = bookkeeper_core::config::parse_tokens("T", "short:kari").unwrap_err().to_string();
        assert!(err.contains("at least 16 characters") && !err.contains("short"), "{err}");
    }
}
