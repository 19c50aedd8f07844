//! `bookkeeper connect fiken|folio|discord`: the first step of going live.
//! Read-only checks with the real credentials (from the same environment
//! variables the services read), each failure with what to do.

use std::process::ExitCode;

use accounting_api::fiken::{FikenClient, Token, SPACING};
use accounting_api::folio::{ApiKey, FolioClient};
use accounting_api::retry::RetryPolicy;
use accounting_api::{FIKEN_BASE_URL, FOLIO_BASE_URL};
use anyhow::Context;
use bookkeeper_core::config::Settings;
use clap::Subcommand;

/// Subcommands of `bookkeeper connect`.
#[derive(Debug, Subcommand)]
pub enum ConnectCommand {
    /// Fiken: the token (FIKEN_TOKEN), the company (FIKEN_COMPANY), its API
    /// module and bank accounts. FIKEN_BASE_URL for another server.
    Fiken,
    /// Folio: the API key (FOLIO_API_KEY) reads the accounts and recent
    /// transactions. FOLIO_BASE_URL for another server.
    Folio,
    /// Discord: the bot token, the application, the Message Content intent,
    /// the guild, the reviewer role, the channels and the bot's permissions in
    /// them (DISCORD_* as Book-E reads them).
    Discord,
}

pub async fn run(command: ConnectCommand, settings: &Settings) -> anyhow::Result<ExitCode> {
    let report = match command {
        ConnectCommand::Fiken => {
            let token =
                settings.secret("FIKEN_TOKEN").context("FIKEN_TOKEN is not set: give the Fiken API token to check")?;
            let company =
                settings.text("FIKEN_COMPANY").context("FIKEN_COMPANY (the company's slug in Fiken) is not set")?;
            let base = settings.text("FIKEN_BASE_URL").unwrap_or_else(|| FIKEN_BASE_URL.into());
            let client = FikenClient::new(base, &company, Token::from(token), RetryPolicy::default(), SPACING)?;
            accounting_api::connect::fiken(&client).await
        }
        ConnectCommand::Folio => {
            let key = settings
                .secret("FOLIO_API_KEY")
                .context("FOLIO_API_KEY is not set: give the Folio API key to check")?;
            let base = settings.text("FOLIO_BASE_URL").unwrap_or_else(|| FOLIO_BASE_URL.into());
            let client = FolioClient::new(base, ApiKey::from(key), RetryPolicy::default())?;
            accounting_api::connect::folio(&client, chrono::Utc::now().date_naive()).await
        }
        ConnectCommand::Discord => {
            let config = book_e::discord::DiscordConfig::from_settings(settings)?
                .context("DISCORD_TOKEN is not set: give the bot's token and the DISCORD_* ids to check")?;
            book_e::discord::connect::check(&config).await
        }
    };
    println!("{report}");
    Ok(if report.passed() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
