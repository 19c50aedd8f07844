//! Book-E: how people meet Bookkeeper. A message (a receipt dropped in chat, a
//! command) becomes a proposal event; later Book-E tells them what happened.
//!
//! - [`command`]: what a person asked for, parsed deterministically.
//! - [`conversation`]: the core every door shares: message in, answer out; it
//!   may append `...Proposed` events and nothing else.
//! - [`accounting`]: the Accounting API's reads and documents, over HTTP.
//! - [`render`]: events in words.
//! - [`http`]: the HTTP door (`POST /chat`), used by `bookkeeper chat`.
//!
//! [`BookE`] wires them into one service.

// Amounts in code are written kroner_øre (499_00 is 499,00 kr).
#![allow(clippy::inconsistent_digit_grouping)]

pub mod accounting;
pub mod command;
pub mod conversation;
pub mod http;
pub mod render;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use bookkeeper_core::config::{env_number, env_text, env_tokens};
use bookkeeper_core::Store;
use tokio::net::TcpListener;

use crate::accounting::AccountingReads;
use crate::conversation::{Conversation, ConversationConfig};

/// Book-E's configuration. Environment variable names in brackets; `Debug`
/// never prints a token.
#[derive(Clone)]
pub struct Config {
    /// Where the HTTP door listens (`BOOK_E_ADDR`, default 127.0.0.1:8083).
    pub addr: SocketAddr,
    /// Bearer token -> user id for the HTTP door (`BOOK_E_USER_TOKENS=token:user,...`).
    pub users: HashMap<String, String>,
    /// The Accounting API (`ACCOUNTING_API_URL`, default http://127.0.0.1:8082).
    pub accounting_url: String,
    /// Its token, if it requires one (`ACCOUNTING_API_TOKEN`).
    pub accounting_token: Option<String>,
    /// Conversation settings (`BOOK_E_MATCH_DAYS`, `BOOK_E_DEFAULT_ACCOUNT`).
    pub conversation: ConversationConfig,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut users: Vec<&String> = self.users.values().collect();
        users.sort();
        f.debug_struct("Config")
            .field("addr", &self.addr)
            .field("users", &users)
            .field("accounting_url", &self.accounting_url)
            .field("accounting_token", &self.accounting_token.as_ref().map(|_| "***"))
            .field("conversation", &self.conversation)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 8083)),
            users: HashMap::new(),
            accounting_url: "http://127.0.0.1:8082".into(),
            accounting_token: None,
            conversation: ConversationConfig::default(),
        }
    }
}

impl Config {
    /// Reads the configuration from the environment.
    pub fn from_env() -> anyhow::Result<Config> {
        let mut config = Config::default();
        if let Some(addr) = env_text("BOOK_E_ADDR") {
            config.addr = addr.parse().with_context(|| format!("BOOK_E_ADDR `{addr}` is not host:port"))?;
        }
        config.users = env_tokens("BOOK_E_USER_TOKENS")?;
        if let Some(url) = env_text("ACCOUNTING_API_URL") {
            config.accounting_url = url;
        }
        config.accounting_token = env_text("ACCOUNTING_API_TOKEN");
        if let Some(days) = env_number("BOOK_E_MATCH_DAYS")? {
            config.conversation.match_days = days;
        }
        if let Some(account) = env_text("BOOK_E_DEFAULT_ACCOUNT") {
            config.conversation.default_account = account;
        }
        Ok(config)
    }
}

/// A running Book-E.
pub struct BookE {
    listener: TcpListener,
    state: http::AppState,
}

impl BookE {
    /// Binds the HTTP door (port 0 picks a free one).
    pub async fn build(config: Config, store: Store) -> anyhow::Result<BookE> {
        let accounting = AccountingReads::new(&config.accounting_url, config.accounting_token.clone())?;
        let conversation = Conversation::new(store.clone(), accounting.clone(), config.conversation.clone());
        let listener =
            TcpListener::bind(config.addr).await.with_context(|| format!("binding Book-E to {}", config.addr))?;
        let state = http::AppState { conversation, store, accounting, users: Arc::new(config.users) };
        Ok(BookE { listener, state })
    }

    /// The port the HTTP door listens on.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or_default()
    }

    /// Runs until `shutdown` resolves.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        axum::serve(self.listener, http::router(self.state))
            .with_graceful_shutdown(shutdown)
            .await
            .context("Book-E's HTTP door failed")?;
        tracing::info!("Book-E stopped");
        Ok(())
    }
}
