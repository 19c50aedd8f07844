//! README's "Going live": every command it shows exists as written, and the
//! `bookkeeper connect` ones pass against the fakes of Fiken, Folio and Discord
//! (and fail, saying what to do, when a setting is wrong).

use std::process::Output;

use accounting_api::fiken::fake::{FakeFiken, SANDBOX_COMPANY};
use accounting_api::folio::fake::FakeFolio;
use book_e::discord::fake::{FakeDiscord, Guild};

/// The commands in the section's code blocks, without comments or redirections.
fn going_live_commands() -> Vec<Vec<String>> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("\n## Going live\n").expect("README has a Going live section");
    let rest = &readme[start + 1..];
    let section = &rest[..rest[3..].find("\n## ").map(|i| i + 3).unwrap_or(rest.len())];
    let mut commands = Vec::new();
    let mut in_code = false;
    for line in section.lines() {
        let line = line.trim();
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if !in_code || !line.starts_with("bookkeeper ") {
            continue;
        }
        let line = line.split(" #").next().unwrap_or(line);
        let line = line.split(" < ").next().unwrap_or(line);
        commands.push(line.split_whitespace().skip(1).map(String::from).collect());
    }
    commands
}

struct Fakes {
    fiken: FakeFiken,
    folio: FakeFolio,
    discord: FakeDiscord,
}

async fn fakes() -> Fakes {
    let fiken = FakeFiken::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let folio = FakeFolio::sandbox("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let discord = FakeDiscord::start().await.unwrap();
    discord.accept_only("bot-token-of-the-test");
    discord.set_guild(Guild {
        id: 500,
        bot_id: 900,
        application_id: 800,
        application_flags: 1 << 18,
        verify_key: "ab".repeat(32),
        bot_is_member: true,
        channels: vec![(600, "finance".into()), (601, "reviewers".into())],
        categories: vec![(650, "Finance".into())],
        overwrites: vec![],
        roles: vec![(500, "@everyone".into(), (1 << 10) | (1 << 11) | (1 << 16)), (700, "Reviewers".into(), 0)],
        bot_roles: vec![],
        sessions_remaining: 1000,
    });
    Fakes { fiken, folio, discord }
}

async fn bookkeeper(args: &[String], f: &Fakes, overrides: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_bookkeeper"));
    cmd.args(args)
        .env("FIKEN_TOKEN", "fiken-token-of-the-test")
        .env("FIKEN_COMPANY", SANDBOX_COMPANY)
        .env("FIKEN_BASE_URL", f.fiken.base_url())
        .env("FOLIO_API_KEY", "folio-key-of-the-test")
        .env("FOLIO_BASE_URL", f.folio.base_url())
        .env("DISCORD_TOKEN", "bot-token-of-the-test")
        .env("DISCORD_APPLICATION_ID", "800")
        .env_remove("DISCORD_PUBLIC_KEY")
        .env("DISCORD_GUILD_ID", "500")
        .env("DISCORD_FINANCE_CHANNEL_ID", "600")
        .env("DISCORD_REVIEWERS_CHANNEL_ID", "601")
        .env("DISCORD_REVIEWER_ROLE_ID", "700")
        .env("BOOK_E_DISCORD_API_URL", f.discord.base_url())
        .env_remove("DISCORD_REPORTS_CHANNEL_ID")
        .env_remove("BOOK_E_WATCH_FINANCE_CHANNEL");
    for (k, v) in overrides {
        cmd.env(k, v);
    }
    cmd.output().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_going_live_command_exists_and_the_connect_checks_pass_against_the_fakes() {
    let commands = going_live_commands();
    let connects: Vec<&Vec<String>> = commands.iter().filter(|c| c[0] == "connect").collect();
    let systems: Vec<&str> = connects.iter().map(|c| c[1].as_str()).collect();
    assert_eq!(systems, ["fiken", "folio", "discord"], "step one checks each system");
    let f = fakes().await;
    for command in &commands {
        if command[0] == "connect" {
            let out = bookkeeper(command, &f, &[]).await;
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "bookkeeper {}: {stdout}{}",
                command.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(stdout.trim_end().ends_with("ready."), "{stdout}");
            assert!(!stdout.contains("token-of-the-test") && !stdout.contains("key-of-the-test"), "no secret printed");
        } else {
            let mut with_help = command.clone();
            with_help.push("--help".into());
            let out = bookkeeper(&with_help, &f, &[]).await;
            assert!(
                out.status.success(),
                "`bookkeeper {}` is not a command: {}",
                command.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_setting_fails_the_check_with_what_to_do() {
    let f = fakes().await;
    let args = |s: &str| vec!["connect".to_string(), s.to_string()];
    let out = bookkeeper(&args("fiken"), &f, &[("FIKEN_COMPANY", "not-our-company")]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL  company") && stdout.contains("what to do: set FIKEN_COMPANY to one of: sandbox-as"),
        "{stdout}"
    );

    let out = bookkeeper(&args("discord"), &f, &[("DISCORD_REVIEWER_ROLE_ID", "799")]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL  reviewer role") && stdout.contains("Reviewers (700)"), "{stdout}");

    let out = bookkeeper(&args("folio"), &f, &[("FOLIO_BASE_URL", "http://127.0.0.1:9/v2")]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("FOLIO_BASE_URL"));

    // A variable missing altogether is said as such.
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_bookkeeper"));
    let out = cmd.args(["connect", "fiken"]).env_remove("FIKEN_TOKEN").output().await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("FIKEN_TOKEN is not set"));
}
