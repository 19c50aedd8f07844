//! `bookkeeper people hash|check`: preparing the people directory.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bookkeeper_core::people::{Directory, TokenHash};
use clap::Subcommand;

/// Subcommands of `bookkeeper people`.
#[derive(Debug, Subcommand)]
pub enum PeopleCommand {
    /// Reads a token from stdin (never from the command line, so it stays out of
    /// the shell's history) and prints the hash to put in the directory.
    Hash,
    /// Checks a directory file and lists who is in it, with their rights and doors.
    Check {
        /// The file (default: `BOOKKEEPER_PEOPLE`).
        file: Option<PathBuf>,
    },
}

pub fn run(command: PeopleCommand, settings: &bookkeeper_core::config::Settings) -> anyhow::Result<ExitCode> {
    match command {
        PeopleCommand::Hash => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).context("reading the token from stdin")?;
            let token = line.trim_end_matches(['\n', '\r']);
            if token.len() < 16 {
                anyhow::bail!("a token must be at least 16 characters");
            }
            println!("{}", String::from(TokenHash::of(token)));
            Ok(ExitCode::SUCCESS)
        }
        PeopleCommand::Check { file } => {
            let file = file
                .or_else(|| settings.text("BOOKKEEPER_PEOPLE").map(PathBuf::from))
                .context("name the file, or set BOOKKEEPER_PEOPLE")?;
            let directory = Directory::load(&file)?;
            println!("{:<20} {:<28} {:<24} DISCORD", "PERSON", "RIGHTS", "DOORS");
            for p in directory.people() {
                let rights: Vec<String> =
                    p.rights.iter().filter_map(|r| serde_json::to_value(r).ok()?.as_str().map(String::from)).collect();
                let doors: Vec<&str> = p.tokens.keys().map(|d| d.name()).collect();
                println!("{:<20} {:<28} {:<24} {}", p.id, rights.join(","), doors.join(","), p.discord.join(","));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
