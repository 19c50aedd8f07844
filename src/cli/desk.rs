//! `bookkeeper desk link`: a one-time sign-in link to the review desk.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bookkeeper_core::config::Settings;
use bookkeeper_core::event::actor;
use bookkeeper_core::people::{Directory, Right};
use bookkeeper_core::Store;
use clap::Subcommand;
use review_e::desk::session::SessionKey;

/// Subcommands of `bookkeeper desk`.
#[derive(Debug, Subcommand)]
pub enum DeskCommand {
    /// Issues a sign-in link for a person, valid once for 15 minutes, recorded in
    /// the log as issued by you. Needs the desk's key (`REVIEW_E_DESK_SESSION_KEY`),
    /// its address (`REVIEW_E_DESK_URL`, or `--url`) and Review-E's database
    /// (`DATABASE_URL` of the `review_e` role): the key alone signs nobody in.
    Link {
        /// The person's id in the people directory.
        person: String,
        /// Who issues it (your id in the people directory), recorded with the link.
        #[arg(long = "by")]
        issued_by: String,
        /// The desk's address, e.g. `https://books.example.com/desk`.
        #[arg(long)]
        url: Option<String>,
    },
}

pub async fn run(command: DeskCommand, store: Store, settings: &Settings) -> anyhow::Result<ExitCode> {
    match command {
        DeskCommand::Link { person, issued_by, url } => {
            let issued_by = issued_by.trim().trim_start_matches("user:").to_string();
            if issued_by.is_empty() || !issued_by.chars().all(|c| c.is_ascii_graphic()) {
                anyhow::bail!("--by: your id in the people directory (visible characters, no spaces)");
            }
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
                directory.person(&issued_by).context("--by: no such person in the people directory")?;
            }
            let link = review_e::desk::issue_sign_in_link(&store, &key, &url, &person, &actor::user(&issued_by))
                .await
                .context("recording the link in the log (use Review-E's database role)")?;
            println!("{link}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
