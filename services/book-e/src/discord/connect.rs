//! `bookkeeper connect discord`: read-only checks that the bot is set up as
//! Book-E needs, each failure with what to do. The calls are the ones
//! Discord's document defines for this (`/users/@me`, `/applications/@me`,
//! `/gateway/bot`, the guild, its roles and channels, the bot's member).

use bookkeeper_core::connect::Report;
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::DiscordConfig;

/// The checks, in order.
pub const CHECKS: [&str; 7] = [
    "bot token",
    "application",
    "gateway intents",
    "gateway sessions",
    "guild",
    "reviewer role",
    "channels and permissions",
];

/// Discord's permission bits Book-E needs in each of its channels.
const VIEW_CHANNEL: u64 = 1 << 10;
const SEND_MESSAGES: u64 = 1 << 11;
const READ_MESSAGE_HISTORY: u64 = 1 << 16;
const ADMINISTRATOR: u64 = 1 << 3;
/// The application flags that show the Message Content intent is on.
const GATEWAY_MESSAGE_CONTENT: u64 = 1 << 18;
const GATEWAY_MESSAGE_CONTENT_LIMITED: u64 = 1 << 19;

#[derive(Debug, Deserialize)]
struct User {
    id: String,
    username: String,
    #[serde(default)]
    bot: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct Application {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    flags: Option<u64>,
    #[serde(default)]
    verify_key: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SessionLimit {
    remaining: u64,
    reset_after: u64,
}

#[derive(Debug, Deserialize)]
struct GatewayBot {
    session_start_limit: SessionLimit,
}

#[derive(Debug, Deserialize)]
struct Guild {
    #[serde(default)]
    name: String,
}

#[derive(Debug, Deserialize)]
struct Role {
    id: String,
    name: String,
    permissions: String,
}

#[derive(Debug, Deserialize)]
struct Overwrite {
    id: String,
    #[serde(rename = "type")]
    kind: u8,
    allow: String,
    deny: String,
}

#[derive(Debug, Deserialize)]
struct Channel {
    id: String,
    /// 0 a text channel, 5 an announcement channel: the kinds Book-E can post in.
    #[serde(rename = "type", default)]
    kind: Option<u8>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    permission_overwrites: Option<Vec<Overwrite>>,
}

#[derive(Debug, Deserialize)]
struct Member {
    roles: Vec<String>,
}

enum Trouble {
    Refused(u16, String),
    Unreachable(String),
    Unreadable(String),
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, Trouble> {
        let response = self
            .http
            .get(format!("{}/api/v10{path}", self.base))
            .header(reqwest::header::AUTHORIZATION, format!("Bot {}", self.token))
            .send()
            .await
            .map_err(|e| {
                Trouble::Unreachable(if e.is_timeout() { "timed out".into() } else { "could not connect".into() })
            })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|_| Trouble::Unreachable("the answer was cut off".into()))?;
        if !status.is_success() {
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(String::from))
                .unwrap_or_default();
            return Err(Trouble::Refused(status.as_u16(), message));
        }
        serde_json::from_slice(&body).map_err(|e| Trouble::Unreadable(format!("{path}: {e}")))
    }
}

fn trouble(t: Trouble) -> (String, String) {
    match t {
        Trouble::Refused(401, _) => (
            "Discord refused DISCORD_TOKEN (401)".into(),
            "copy the bot's token (Developer Portal → your application → Bot → Reset Token) into DISCORD_TOKEN".into(),
        ),
        Trouble::Refused(status, message) => {
            (format!("Discord answered {status}: {message}"), "see Discord's message".into())
        }
        Trouble::Unreachable(why) => (
            format!("Discord could not be reached: {why}"),
            "check the network (and BOOK_E_DISCORD_API_URL, if set)".into(),
        ),
        Trouble::Unreadable(why) => (format!("an answer Book-E cannot read: {why}"), "report this; it is ours".into()),
    }
}

fn bits(text: &str) -> u64 {
    text.parse().unwrap_or(0)
}

fn invite(application_id: u64) -> String {
    let permissions = VIEW_CHANNEL | SEND_MESSAGES | READ_MESSAGE_HISTORY;
    format!(
        "https://discord.com/oauth2/authorize?client_id={application_id}&scope=bot+applications.commands&permissions={permissions}"
    )
}

/// What the bot may do in one channel: the guild's @everyone role, its own roles,
/// then the channel's overwrites (@everyone, its roles together, itself), as
/// Discord computes it.
fn permissions_in(channel: &Channel, roles: &[Role], member: &Member, guild_id: &str, bot_id: &str) -> u64 {
    let everyone = roles.iter().find(|r| r.id == guild_id).map(|r| bits(&r.permissions)).unwrap_or(0);
    let mut base = everyone;
    for r in roles.iter().filter(|r| member.roles.contains(&r.id)) {
        base |= bits(&r.permissions);
    }
    if base & ADMINISTRATOR != 0 {
        return u64::MAX;
    }
    let overwrites = channel.permission_overwrites.as_deref().unwrap_or_default();
    let mut p = base;
    if let Some(o) = overwrites.iter().find(|o| o.id == guild_id) {
        p = (p & !bits(&o.deny)) | bits(&o.allow);
    }
    let (mut allow, mut deny) = (0, 0);
    for o in overwrites.iter().filter(|o| o.kind == 0 && member.roles.contains(&o.id)) {
        allow |= bits(&o.allow);
        deny |= bits(&o.deny);
    }
    p = (p & !deny) | allow;
    if let Some(o) = overwrites.iter().find(|o| o.kind == 1 && o.id == bot_id) {
        p = (p & !bits(&o.deny)) | bits(&o.allow);
    }
    p
}

/// Checks the bot's set-up for `config`.
pub async fn check(config: &DiscordConfig) -> Report {
    let mut report = Report::new("Discord");
    let api = Api {
        http: reqwest::Client::builder().timeout(std::time::Duration::from_secs(15)).build().unwrap_or_default(),
        base: config.api_base.clone().unwrap_or_else(|| "https://discord.com".into()).trim_end_matches('/').to_string(),
        token: config.token.expose_secret().clone(),
    };
    macro_rules! step {
        ($index:expr, $call:expr) => {
            match $call {
                Ok(v) => v,
                Err(t) => {
                    let (problem, fix) = trouble(t);
                    report.fail(CHECKS[$index], problem, fix);
                    report.skip(&CHECKS[$index + 1..]);
                    return report;
                }
            }
        };
    }
    let me: User = step!(0, api.get("/users/@me").await);
    if me.bot != Some(true) {
        report.fail(
            CHECKS[0],
            format!("DISCORD_TOKEN belongs to {}, a person, not a bot", me.username),
            "use the token of the application's bot (Developer Portal → Bot)",
        );
        report.skip(&CHECKS[1..]);
        return report;
    }
    report.pass(CHECKS[0], format!("the bot {} ({})", me.username, me.id));

    let app: Application = step!(1, api.get("/applications/@me").await);
    if app.id != config.application_id.to_string() {
        report.fail(
            CHECKS[1],
            format!(
                "DISCORD_APPLICATION_ID is {}, but the token is application {}'s ({})",
                config.application_id, app.name, app.id
            ),
            format!("set DISCORD_APPLICATION_ID={}", app.id),
        );
        report.skip(&CHECKS[2..]);
        return report;
    }
    if let (Some(ours), Some(theirs)) = (config.public_key.as_deref(), app.verify_key.as_deref()) {
        if !ours.eq_ignore_ascii_case(theirs) {
            report.fail(
                CHECKS[1],
                "DISCORD_PUBLIC_KEY is not this application's public key: every press would be refused",
                "copy General Information → Public Key into DISCORD_PUBLIC_KEY",
            );
            report.skip(&CHECKS[2..]);
            return report;
        }
    }
    report.pass(CHECKS[1], format!("{} ({})", app.name, app.id));

    let flags = app.flags.unwrap_or(0);
    let content = flags & (GATEWAY_MESSAGE_CONTENT | GATEWAY_MESSAGE_CONTENT_LIMITED) != 0;
    if config.watch_finance_channel && !content {
        report.fail(
            CHECKS[2],
            "the Message Content intent is off: Book-E could not read receipts dropped in the finance channel",
            "turn on Developer Portal → Bot → Privileged Gateway Intents → Message Content Intent, or set \
             BOOK_E_WATCH_FINANCE_CHANNEL=0 (slash commands only)",
        );
        report.skip(&CHECKS[3..]);
        return report;
    }
    report
        .pass(CHECKS[2], if content { "Message Content is on" } else { "not needed (BOOK_E_WATCH_FINANCE_CHANNEL=0)" });

    let gateway: GatewayBot = step!(3, api.get("/gateway/bot").await);
    if gateway.session_start_limit.remaining == 0 {
        let minutes = gateway.session_start_limit.reset_after.div_ceil(60_000);
        report.fail(
            CHECKS[3],
            "the bot has started all the gateway sessions Discord allows today",
            format!("wait {minutes} minutes, and look for something restarting Book-E in a loop"),
        );
        report.skip(&CHECKS[4..]);
        return report;
    }
    report.pass(CHECKS[3], format!("{} session starts left today", gateway.session_start_limit.remaining));

    let g = config.guild_id;
    let guild: Guild = match api.get(&format!("/guilds/{g}")).await {
        Ok(guild) => guild,
        Err(Trouble::Refused(403 | 404, _)) => {
            report.fail(
                CHECKS[4],
                format!("the bot is not in guild {g} (DISCORD_GUILD_ID), or there is no such guild"),
                format!("invite the bot with {}", invite(config.application_id)),
            );
            report.skip(&CHECKS[5..]);
            return report;
        }
        Err(t) => step!(4, Err::<Guild, Trouble>(t)),
    };
    report.pass(CHECKS[4], format!("{} ({g})", guild.name));

    let roles: Vec<Role> = step!(5, api.get(&format!("/guilds/{g}/roles")).await);
    match roles.iter().find(|r| r.id == config.reviewer_role.to_string()) {
        Some(r) => report.pass(CHECKS[5], format!("`{}` ({})", r.name, r.id)),
        None => {
            let listed: Vec<String> =
                roles.iter().filter(|r| r.id != g.to_string()).map(|r| format!("{} ({})", r.name, r.id)).collect();
            report.fail(
                CHECKS[5],
                format!("DISCORD_REVIEWER_ROLE_ID {} is not a role of this guild", config.reviewer_role),
                format!("set it to the reviewers' role; the guild has: {}", listed.join(", ")),
            );
            report.skip(&CHECKS[6..]);
            return report;
        }
    }

    // Discord's document allows `null` for the list.
    let channels: Option<Vec<Channel>> = step!(6, api.get(&format!("/guilds/{g}/channels")).await);
    let channels = channels.unwrap_or_default();
    let member: Member = step!(6, api.get(&format!("/guilds/{g}/members/{}", me.id)).await);
    let wanted = [
        ("DISCORD_FINANCE_CHANNEL_ID", config.finance_channel),
        ("DISCORD_REVIEWERS_CHANNEL_ID", config.reviewers_channel),
        ("DISCORD_REPORTS_CHANNEL_ID", config.reports_channel),
    ];
    let mut fine = Vec::new();
    for (var, id) in wanted {
        let Some(channel) = channels.iter().find(|c| c.id == id.to_string()) else {
            let listed: Vec<String> =
                channels.iter().map(|c| format!("#{} ({})", c.name.as_deref().unwrap_or("?"), c.id)).collect();
            report.fail(
                CHECKS[6],
                format!("{var} {id} is not a channel of this guild"),
                format!("set it to one of: {}", listed.join(", ")),
            );
            return report;
        };
        let name = channel.name.clone().unwrap_or_else(|| id.to_string());
        if !matches!(channel.kind, Some(0 | 5)) {
            report.fail(
                CHECKS[6],
                format!("{var} {id} (#{name}) is not a text channel: Book-E cannot post there"),
                "choose a text channel (not a category, voice or forum channel)",
            );
            return report;
        }
        let have = permissions_in(channel, &roles, &member, &g.to_string(), &me.id);
        let missing: Vec<&str> = [
            (VIEW_CHANNEL, "View Channel"),
            (SEND_MESSAGES, "Send Messages"),
            (READ_MESSAGE_HISTORY, "Read Message History"),
        ]
        .into_iter()
        .filter(|(bit, _)| have & bit == 0)
        .map(|(_, n)| n)
        .collect();
        if !missing.is_empty() {
            report.fail(
                CHECKS[6],
                format!("the bot may not {} in #{name}", missing.join(", ")),
                format!(
                    "give the bot's role {} (Server Settings → Roles), or allow it in #{name}'s permissions",
                    missing.join(", ")
                ),
            );
            return report;
        }
        if !fine.contains(&name) {
            fine.push(name);
        }
    }
    report.pass(CHECKS[6], format!("the bot may read and post in #{}", fine.join(", #")));
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use bookkeeper_contracts::{Fullness, Vendor};
    use http::Method;

    fn decodes<T: serde::de::DeserializeOwned>(template: &str) {
        let doc = Vendor::Discord.document();
        let op = doc.operation(&Method::GET, template).unwrap_or_else(|| panic!("{template} is in the document"));
        for fullness in [Fullness::Maximal, Fullness::Minimal] {
            let mut example = doc.example(op, "200", fullness).unwrap();
            // A list's minimal example is empty: decode one item of the maximal too.
            if let Some(first) = example.as_array().and_then(|a| a.first()).cloned() {
                example = serde_json::json!([first]);
            }
            if let Err(e) = serde_json::from_value::<T>(example.clone()) {
                panic!("{template} {fullness:?}: {e}\n{example}");
            }
        }
    }

    /// What the check reads, decoded from the answers Discord's document promises, fullest and barest.
    #[test]
    fn every_answer_the_check_reads_decodes_as_documented() {
        decodes::<User>("/users/@me");
        decodes::<Application>("/applications/@me");
        decodes::<GatewayBot>("/gateway/bot");
        decodes::<Guild>("/guilds/{guild_id}");
        decodes::<Vec<Role>>("/guilds/{guild_id}/roles");
        decodes::<Option<Vec<Channel>>>("/guilds/{guild_id}/channels");
        decodes::<Member>("/guilds/{guild_id}/members/{user_id}");
    }
}
