//! `bookkeeper desk link`: a one-time sign-in link to the review desk.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bookkeeper_core::config::Settings;
use bookkeeper_core::people::{Directory, Right};
use clap::Subcommand;
use review_e::desk::session::SessionKey;

/// Subcommands of `bookkeeper desk`.
#[derive(Debug, Subcommand)]
pub enum DeskCommand {
    /// Prints a sign-in link for a person, valid once for 15 minutes. Needs the
    /// desk's key (`REVIEW_E_DESK_SESSION_KEY`, the one Review-E has) and its
    /// address (`REVIEW_E_DESK_URL`, or `--url`).
    Link {
        /// The person's id in the people directory.
        person: String,
        /// The desk's address, e.g. `https://books.example.com/desk`.
        #[arg(long)]
        url: Option<String>,
    },
}

pub fn run(command: DeskCommand, settings: &Settings) -> anyhow::Result<ExitCode> {
    match command {
        DeskCommand::Link { person, url } => {
            let key = settings
                .secret("REVIEW_E_DESK_SESSION_KEY")
                .context("set REVIEW_E_DESK_SESSION_KEY to the key Review-E signs desk sessions with")?;
            let key = SessionKey::new(key).map_err(|e| anyhow::anyhow!(e))?;
            let url = url
                .or_else(|| settings.text("REVIEW_E_DESK_URL"))
                .context("name the desk's address with --url or REVIEW_E_DESK_URL")?;
            // With the directory at hand, refuse a link that could not sign anyone in.
            if let Some(file) = settings.text("BOOKKEEPER_PEOPLE").map(PathBuf::from) {
                let directory = Directory::load(&file)?;
                let known = directory.person(&person).context("no such person in the people directory")?;
                if !known.may(Right::Review) && !known.may(Right::Publish) {
                    anyhow::bail!("{person} may neither review nor publish, so the desk would not let them in");
                }
            }
            println!("{}", review_e::desk::sign_in_link(&key, &url, &person));
            Ok(ExitCode::SUCCESS)
        }
    }
}
