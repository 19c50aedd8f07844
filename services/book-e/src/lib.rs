//! Book-E: how people meet Bookkeeper. A message (a receipt dropped in chat, a
//! command) becomes a proposal event; later Book-E tells them what happened.
//!
//! - [`command`]: what a person asked for, parsed deterministically.
//! - [`conversation`]: the core every door shares: message in, answer out; it
//!   may append `...Proposed` events and nothing else.
//! - [`accounting`]: the Accounting API's reads and documents, over HTTP.
//! - [`render`]: events in words.
//! - [`http`]: the HTTP door (`POST /chat`), used by `bookkeeper chat`.
//! - [`discord`]: the Discord door (serenity) and the notifications posted there.
//!
//! [`BookE`] wires them into one service.

// Amounts in code are written kroner_øre (499_00 is 499,00 kr).
#![allow(clippy::inconsistent_digit_grouping)]

pub mod accounting;
pub mod command;
pub mod conversation;
pub mod discord;
pub mod http;
pub mod render;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use bookkeeper_core::config::Settings;
use bookkeeper_core::people::{self, Directory, Door, LegacyTokens, Right};
use bookkeeper_core::shutdown::StopSignal;
use bookkeeper_core::{Store, Subscription, SubscriptionOptions};
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;

use crate::accounting::AccountingReads;
use crate::conversation::{Conversation, ConversationConfig};
use crate::discord::{DiscordConfig, DiscordDoor};

/// Book-E's configuration (setting names in brackets; see docs/configuration.md).
/// `Debug` never prints a secret.
#[derive(Clone)]
pub struct Config {
    /// Where the HTTP door listens (`BOOK_E_ADDR`, default 127.0.0.1:8083).
    pub addr: SocketAddr,
    /// Who may talk to Book-E, and how each person is known on Discord
    /// (`BOOKKEEPER_PEOPLE`; the deprecated `BOOK_E_USER_TOKENS` is mapped onto it).
    pub people: Directory,
    /// The Accounting API (`ACCOUNTING_API_URL`, default http://127.0.0.1:8082).
    pub accounting_url: String,
    /// Its token, if it requires one (`ACCOUNTING_API_TOKEN`).
    pub accounting_token: Option<SecretString>,
    /// Conversation settings (`BOOK_E_MATCH_DAYS`, `BOOK_E_DEFAULT_ACCOUNT`).
    pub conversation: ConversationConfig,
    /// Discord, when `DISCORD_TOKEN` is set.
    pub discord: Option<DiscordConfig>,
    /// How long a dead replica's claim on the notifier lasts (`BOOKKEEPER_LEASE_TTL_SECS`).
    pub lease_ttl: std::time::Duration,
    /// Whether to read documents sent without their fields (`BOOK_E_READ_DOCUMENTS`).
    pub read_documents: bool,
    /// How long reading one photo or scan may take before Book-E answers with
    /// what it has (`BOOK_E_READING_BUDGET_MS`).
    pub reading_budget: std::time::Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The people by id only: the directory's token hashes stay out of logs.
        let people: Vec<&str> = self.people.people().iter().map(|p| p.id.as_str()).collect();
        f.debug_struct("Config")
            .field("addr", &self.addr)
            .field("people", &people)
            .field("accounting_url", &self.accounting_url)
            .field("accounting_token", &self.accounting_token)
            .field("conversation", &self.conversation)
            .field("discord", &self.discord)
            .field("read_documents", &self.read_documents)
            .field("reading_budget", &self.reading_budget)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 8083)),
            people: Directory::default(),
            accounting_url: "http://127.0.0.1:8082".into(),
            accounting_token: None,
            conversation: ConversationConfig::default(),
            discord: None,
            lease_ttl: bookkeeper_core::SubscriptionOptions::default().lease_ttl,
            read_documents: true,
            reading_budget: bookkeeper_reader::DEFAULT_BUDGET,
        }
    }
}

impl Config {
    /// The configuration from `settings` (see docs/configuration.md).
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Config> {
        let mut config = Config::default();
        if let Some(addr) = settings.parsed("BOOK_E_ADDR", "must be host:port")? {
            config.addr = addr;
        }
        let (people, warnings) = people::from_settings(
            settings,
            &[LegacyTokens { var: "BOOK_E_USER_TOKENS", door: Door::BookE, right: Right::Propose }],
        )
        .map_err(|e| anyhow::anyhow!(e))?;
        for w in warnings {
            tracing::warn!("{w}");
        }
        config.people = people;
        if let Some(url) = settings.text("ACCOUNTING_API_URL") {
            config.accounting_url = url;
        }
        config.accounting_token = settings.secret("ACCOUNTING_API_TOKEN");
        if let Some(days) = settings.number("BOOK_E_MATCH_DAYS")? {
            config.conversation.match_days = days;
        }
        if let Some(account) = settings.text("BOOK_E_DEFAULT_ACCOUNT") {
            config.conversation.default_account = account;
        }
        config.read_documents = settings.flag("BOOK_E_READ_DOCUMENTS")?.unwrap_or(true);
        if let Some(ms) = settings.number("BOOK_E_READING_BUDGET_MS")? {
            // A minute bounds a stuck tool; a longer wait is a person left waiting.
            anyhow::ensure!(ms <= 60_000, "BOOK_E_READING_BUDGET_MS must be at most 60000 (a minute), not {ms}");
            config.reading_budget = std::time::Duration::from_millis(ms);
        }
        config.discord = DiscordConfig::from_settings(settings)?;
        config.lease_ttl = bookkeeper_core::config::lease_ttl(settings)?;
        Ok(config)
    }
}

impl DiscordConfig {
    /// Discord's settings, when `DISCORD_TOKEN` is set.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Option<DiscordConfig>> {
        let Some(token) = settings.secret("DISCORD_TOKEN") else { return Ok(None) };
        let id = |var: &str| -> anyhow::Result<u64> {
            settings.number(var)?.with_context(|| format!("{var} is required with DISCORD_TOKEN (a Discord id)"))
        };
        let finance_channel = id("DISCORD_FINANCE_CHANNEL_ID")?;
        let reviewer_tokens = tokens_by_discord_id(settings, "BOOK_E_REVIEWER_TOKENS")?;
        if !reviewer_tokens.is_empty() {
            tracing::warn!(
                "BOOK_E_REVIEWER_TOKENS is deprecated and goes in the next release: Book-E should hold no reviewer's \
                 credential. Set Discord's interactions endpoint to Book-E's /discord/interactions \
                 (DISCORD_PUBLIC_KEY), list reviewers' Discord ids in the people directory (BOOKKEEPER_PEOPLE), and \
                 Review-E checks each press itself"
            );
        }
        Ok(Some(DiscordConfig {
            token,
            application_id: id("DISCORD_APPLICATION_ID")?,
            guild_id: id("DISCORD_GUILD_ID")?,
            finance_channel,
            reviewers_channel: id("DISCORD_REVIEWERS_CHANNEL_ID")?,
            reports_channel: settings.number("DISCORD_REPORTS_CHANNEL_ID")?.unwrap_or(finance_channel),
            reviewer_role: id("DISCORD_REVIEWER_ROLE_ID")?,
            reviewer_tokens,
            review_e_url: settings.text("REVIEW_E_URL").unwrap_or_else(|| "http://127.0.0.1:8081".into()),
            api_base: settings.text("BOOK_E_DISCORD_API_URL"),
            watch_finance_channel: settings.flag("BOOK_E_WATCH_FINANCE_CHANNEL")?.unwrap_or(true),
            report_all_clear: settings.flag("BOOK_E_REPORT_ALL_CLEAR")?.unwrap_or(false),
            public_key: match settings.text("DISCORD_PUBLIC_KEY") {
                Some(key) if discord::verifier(&key).is_none() => {
                    anyhow::bail!("DISCORD_PUBLIC_KEY must be the application's Ed25519 public key, 64 hex digits")
                }
                key => key,
            },
            asserted_press_token: settings.secret("BOOK_E_ASSERTED_PRESS_TOKEN"),
        }))
    }
}

/// `discord_user_id:review_e_token,...`: which Review-E identity each reviewer presses buttons as.
fn tokens_by_discord_id(settings: &Settings, var: &str) -> anyhow::Result<HashMap<u64, SecretString>> {
    settings
        .secret(var)
        .map(|s| s.expose_secret().clone())
        .unwrap_or_default()
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .enumerate()
        .map(|(i, pair)| match pair.trim().split_once(':') {
            Some((user, token)) if token.len() >= 16 => user
                .parse::<u64>()
                .map(|u| (u, SecretString::new(token.to_string())))
                .map_err(|_| anyhow::anyhow!("{var}: entry {} must start with a Discord user id", i + 1)),
            _ => anyhow::bail!("{var}: entry {} must be `discord_user_id:token` with a token of 16+ characters", i + 1),
        })
        .collect()
}

/// A running Book-E.
pub struct BookE {
    listener: TcpListener,
    state: http::AppState,
    discord: Option<DiscordDoor>,
    lease_ttl: std::time::Duration,
}

impl BookE {
    /// Binds the HTTP door (port 0 picks a free one).
    pub async fn build(config: Config, store: Store) -> anyhow::Result<BookE> {
        let accounting = AccountingReads::new(
            &config.accounting_url,
            config.accounting_token.clone(),
            std::time::Duration::from_secs(15),
        )?;
        let reader = if config.read_documents {
            let reader = bookkeeper_reader::Reader::detect().with_budget(Some(config.reading_budget));
            if reader.has_pdf() || reader.has_ocr() {
                tracing::info!("document reader: {}", reader.describe());
                Some(Arc::new(reader))
            } else {
                tracing::warn!("document reader: {}", reader.describe());
                None
            }
        } else {
            None
        };
        let conversation =
            Conversation::new(store.clone(), accounting.clone(), config.conversation.clone()).with_reader(reader);
        let listener =
            TcpListener::bind(config.addr).await.with_context(|| format!("binding Book-E to {}", config.addr))?;
        let people = Arc::new(config.people);
        let discord = config
            .discord
            .map(|d| DiscordDoor::new(d, conversation.clone(), accounting.clone()).with_people(people.clone()));
        let state = http::AppState { conversation, store, accounting, people, discord: discord.clone() };
        Ok(BookE { listener, state, discord, lease_ttl: config.lease_ttl })
    }

    /// The port the HTTP door listens on.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or_default()
    }

    /// Whether the Discord door is configured.
    pub fn has_discord(&self) -> bool {
        self.discord.is_some()
    }

    /// Runs until `shutdown` resolves: the HTTP door and, when configured, the
    /// Discord gateway and the notification subscription.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stop = StopSignal::new();
        let mut tasks = Vec::new();
        match self.discord {
            Some(door) => {
                let notifications = Subscription::new(
                    self.state.store.clone(),
                    discord::SUBSCRIPTION,
                    discord::follows(),
                    door.notifier(self.state.store.clone()),
                )
                .with_options(SubscriptionOptions { lease_ttl: self.lease_ttl, ..discord::notifier_options() });
                tasks.push(tokio::spawn(notifications.run(stop.stopped())));
                let gateway = door.run(stop.stopped());
                tasks.push(tokio::spawn(async move {
                    if let Err(e) = gateway.await {
                        tracing::error!(error = %e, "the Discord door stopped");
                    }
                }));
            }
            None => tracing::warn!("DISCORD_TOKEN is not set: Book-E runs without Discord (HTTP door only)"),
        }
        let server = axum::serve(self.listener, http::router(self.state)).with_graceful_shutdown(stop.stopped());
        let server = tokio::spawn(async move { server.await });
        shutdown.await;
        stop.stop();
        for task in tasks {
            task.await.ok();
        }
        server.await.ok();
        tracing::info!("Book-E stopped");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reading_budget_is_a_setting_with_a_bound() {
        let budget = |text: &str| {
            Config::from_settings(&Settings::parse_file("bk.env", text).expect("settings"))
                .map(|c| c.reading_budget)
                .map_err(|e| e.to_string())
        };
        assert_eq!(budget(""), Ok(bookkeeper_reader::DEFAULT_BUDGET));
        assert_eq!(budget("BOOK_E_READING_BUDGET_MS=4000"), Ok(std::time::Duration::from_secs(4)));
        assert_eq!(budget("BOOK_E_READING_BUDGET_MS=0"), Ok(std::time::Duration::ZERO));
        let too_long = budget("BOOK_E_READING_BUDGET_MS=3600000").unwrap_err();
        assert!(too_long.contains("at most 60000"), "{too_long}");
        let not_a_number = budget("BOOK_E_READING_BUDGET_MS=2s").unwrap_err();
        assert!(not_a_number.contains("BOOK_E_READING_BUDGET_MS"), "{not_a_number}");
    }
}
