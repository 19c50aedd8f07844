//! `bookkeeper connect discord`: the bot's set-up checked against the fake
//! Discord (which answers in the shapes of Discord's document), passing and
//! failing in each way a new set-up does, each saying what to do.

use book_e::discord::connect::check;
use book_e::discord::fake::{FakeDiscord, Guild};
use book_e::discord::DiscordConfig;
use bookkeeper_core::connect::{Outcome, Report};

const GUILD: u64 = 500;
const FINANCE: u64 = 600;
const REVIEWERS: u64 = 601;
const REVIEWER_ROLE: u64 = 700;
const BOT_ROLE: u64 = 701;
const APP: u64 = 800;
const BOT: u64 = 900;
const TOKEN: &str = "bot-token-never-printed";
const KEY: &str = "2b6d7f8a0c3e5d1b9a7f6e4d2c0b8a6f4e2d0c8b6a4f2e0d8c6b4a2f0e8d6c4b";
const SEND: u64 = 1 << 11;
const VIEW_SEND_HISTORY: u64 = (1 << 10) | (1 << 11) | (1 << 16);

fn set_up() -> Guild {
    Guild {
        id: GUILD,
        bot_id: BOT,
        application_id: APP,
        application_flags: 1 << 19, // Message Content (limited), as a bot under 100 guilds has it
        verify_key: KEY.into(),
        bot_is_member: true,
        channels: vec![(FINANCE, "finance".into()), (REVIEWERS, "reviewers".into())],
        categories: vec![(650, "Finance".into())],
        overwrites: vec![],
        roles: vec![
            (GUILD, "@everyone".into(), 0),
            (REVIEWER_ROLE, "Reviewers".into(), 0),
            (BOT_ROLE, "Book-E".into(), VIEW_SEND_HISTORY),
        ],
        bot_roles: vec![BOT_ROLE],
        sessions_remaining: 998,
    }
}

fn config(fake: &FakeDiscord) -> DiscordConfig {
    DiscordConfig {
        token: TOKEN.to_string().into(),
        application_id: APP,
        guild_id: GUILD,
        finance_channel: FINANCE,
        reviewers_channel: REVIEWERS,
        reports_channel: FINANCE,
        reviewer_role: REVIEWER_ROLE,
        reviewer_tokens: Default::default(),
        review_e_url: "http://127.0.0.1:9".into(),
        api_base: Some(fake.base_url()),
        watch_finance_channel: true,
        report_all_clear: false,
        public_key: Some(KEY.into()),
        asserted_press_token: None,
    }
}

async fn fake() -> FakeDiscord {
    let fake = FakeDiscord::start().await.unwrap();
    fake.accept_only(TOKEN);
    fake.set_guild(set_up());
    fake
}

fn failure(report: &Report) -> (&'static str, String, String) {
    let i = report.checks.iter().position(|c| matches!(c.outcome, Outcome::Failed { .. })).expect("a failure");
    assert!(report.checks[i + 1..].iter().all(|c| c.outcome == Outcome::Skipped), "{report}");
    let Outcome::Failed { problem, fix } = &report.checks[i].outcome else { unreachable!() };
    assert!(!report.to_string().contains(TOKEN), "the token is never printed");
    (report.checks[i].name, problem.clone(), fix.clone())
}

#[tokio::test]
async fn a_bot_set_up_as_book_e_needs_is_ready() {
    let fake = fake().await;
    let report = check(&config(&fake)).await;
    assert!(report.passed(), "{report}");
    let text = report.to_string();
    assert!(text.contains("#finance, #reviewers") && text.contains("`Reviewers`"), "{text}");
}

#[tokio::test]
async fn a_refused_token() {
    let fake = fake().await;
    let mut c = config(&fake);
    c.token = "someone-elses-token".to_string().into();
    let (name, problem, fix) = failure(&check(&c).await);
    assert_eq!(name, "bot token");
    assert!(problem.contains("401") && fix.contains("Reset Token"), "{problem} / {fix}");
}

#[tokio::test]
async fn the_wrong_application_id_or_public_key() {
    let fake = fake().await;
    let mut c = config(&fake);
    c.application_id = 801;
    let (name, problem, fix) = failure(&check(&c).await);
    assert_eq!(name, "application");
    assert!(problem.contains("801") && fix.contains(&format!("DISCORD_APPLICATION_ID={APP}")), "{problem} / {fix}");
    let mut c = config(&fake);
    c.public_key = Some("0".repeat(64));
    let (name, problem, fix) = failure(&check(&c).await);
    assert_eq!(name, "application");
    assert!(problem.contains("DISCORD_PUBLIC_KEY") && fix.contains("Public Key"), "{problem} / {fix}");
}

#[tokio::test]
async fn the_message_content_intent_is_off() {
    let fake = fake().await;
    fake.change_guild(|g| g.application_flags = 0);
    let (name, problem, fix) = failure(&check(&config(&fake)).await);
    assert_eq!(name, "gateway intents");
    assert!(problem.contains("Message Content") && fix.contains("Privileged Gateway Intents"), "{problem} / {fix}");
    // Not needed when Book-E does not read the channel.
    let mut c = config(&fake);
    c.watch_finance_channel = false;
    assert!(check(&c).await.passed());
}

#[tokio::test]
async fn no_gateway_sessions_left() {
    let fake = fake().await;
    fake.change_guild(|g| g.sessions_remaining = 0);
    let (name, _, fix) = failure(&check(&config(&fake)).await);
    assert_eq!(name, "gateway sessions");
    assert!(fix.contains("minutes"), "{fix}");
}

#[tokio::test]
async fn the_bot_is_not_in_the_guild() {
    let fake = fake().await;
    fake.change_guild(|g| g.bot_is_member = false);
    let (name, problem, fix) = failure(&check(&config(&fake)).await);
    assert_eq!(name, "guild");
    assert!(
        problem.contains("not in guild 500") && fix.contains("oauth2/authorize?client_id=800"),
        "{problem} / {fix}"
    );
}

#[tokio::test]
async fn the_reviewer_role_does_not_exist() {
    let fake = fake().await;
    let mut c = config(&fake);
    c.reviewer_role = 799;
    let (name, problem, fix) = failure(&check(&c).await);
    assert_eq!(name, "reviewer role");
    assert!(problem.contains("799") && fix.contains("Reviewers (700)"), "{problem} / {fix}");
}

#[tokio::test]
async fn a_channel_that_is_not_there_or_not_allowed() {
    let fake = fake().await;
    let mut c = config(&fake);
    c.reviewers_channel = 699;
    let (name, problem, fix) = failure(&check(&c).await);
    assert_eq!(name, "channels and permissions");
    assert!(
        problem.contains("DISCORD_REVIEWERS_CHANNEL_ID 699") && fix.contains("#finance (600)"),
        "{problem} / {fix}"
    );

    // A category's id is no channel Book-E can post in.
    let mut c = config(&fake);
    c.reviewers_channel = 650;
    let (name, problem, fix) = failure(&check(&c).await);
    assert_eq!(name, "channels and permissions");
    assert!(
        problem.contains("650 (#Finance) is not a text channel") && fix.contains("text channel"),
        "{problem} / {fix}"
    );

    // The reviewers' channel denies the bot's role Send Messages.
    fake.change_guild(|g| g.overwrites = vec![(REVIEWERS, BOT_ROLE, 0, SEND)]);
    let (name, problem, fix) = failure(&check(&config(&fake)).await);
    assert_eq!(name, "channels and permissions");
    assert!(problem.contains("Send Messages in #reviewers") && fix.contains("Send Messages"), "{problem} / {fix}");
    // ... and a member overwrite for the bot allows it again.
    fake.change_guild(|g| g.overwrites.push((REVIEWERS, BOT, SEND, 0)));
    assert!(check(&config(&fake)).await.passed());
}
