//! A local Discord REST API for tests and the sandbox: the endpoints Book-E and
//! `bookkeeper connect discord` use, answering in the shapes of Discord's
//! published document, and checking every request and answer against it
//! (`bookkeeper_contracts::fake`). Answers start from the document's own
//! minimal example of each response and fill in what the fake knows, so they
//! carry everything Discord promises and nothing it does not.
//!
//! What Discord's document leaves open is the fake's choice, from Discord's
//! documentation of error codes: `{"code", "message"}` bodies; 404 with 10003
//! for an unknown channel, 10004 for a guild the bot is not in, 10007 for a
//! member; 400 with 50035 for a reply to a message that is gone (unless the
//! reference says `fail_if_not_exists: false`). Attachment files are served
//! outside the API's path, as Discord's CDN serves them.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use bookkeeper_contracts::fake::{listen, Served};
use bookkeeper_contracts::{Fullness, Vendor};
use serde_json::{json, Value};

/// One request Book-E made to the fake Discord.
#[derive(Debug, Clone)]
pub struct Call {
    /// `POST`, ...
    pub method: String,
    /// The path, e.g. `/api/v10/channels/600/messages`.
    pub path: String,
    /// The JSON body (`null` when none).
    pub body: Value,
}

/// The guild the fake holds, and the bot's place in it: what
/// `bookkeeper connect discord` checks.
#[derive(Debug, Clone)]
pub struct Guild {
    /// The guild's id.
    pub id: u64,
    /// The bot user's id.
    pub bot_id: u64,
    /// The application's id.
    pub application_id: u64,
    /// The application's flags (gateway intents show here).
    pub application_flags: u64,
    /// The application's public key (hex).
    pub verify_key: String,
    /// Whether the bot has joined the guild.
    pub bot_is_member: bool,
    /// Text channels: (id, name).
    pub channels: Vec<(u64, String)>,
    /// Categories (channels of type 4, which no one posts in): (id, name).
    pub categories: Vec<(u64, String)>,
    /// Per-channel permission overwrites: (channel, role or member id, allow, deny).
    pub overwrites: Vec<(u64, u64, u64, u64)>,
    /// Roles: (id, name, permissions). The role whose id is the guild's is @everyone.
    pub roles: Vec<(u64, String, u64)>,
    /// The bot member's roles.
    pub bot_roles: Vec<u64>,
    /// Gateway sessions the bot may still start today.
    pub sessions_remaining: u64,
}

#[derive(Default)]
struct World {
    calls: Vec<Call>,
    files: HashMap<String, Vec<u8>>,
    fail_next_posts: u32,
    refused_channel: Option<u64>,
    deleted: HashSet<String>,
    valid_token: Option<String>,
    guild: Option<Guild>,
}

type Shared = Arc<Mutex<World>>;

/// A running fake Discord.
pub struct FakeDiscord {
    world: Shared,
    served: Served,
}

impl FakeDiscord {
    /// Starts the fake on a free local port.
    pub async fn start() -> std::io::Result<FakeDiscord> {
        let world: Shared = Arc::default();
        let app = Router::new().fallback(answer).with_state(world.clone());
        let served = listen(SocketAddr::from(([127, 0, 0, 1], 0))).await?.serve(Vendor::Discord, app);
        Ok(FakeDiscord { world, served })
    }

    /// What to give serenity as its proxy base (`BOOK_E_DISCORD_API_URL`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.served.addr())
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every request so far.
    pub fn calls(&self) -> Vec<Call> {
        self.world().calls.clone()
    }

    /// The messages posted to a channel.
    pub fn posts_to(&self, channel: u64) -> Vec<Call> {
        let path = format!("/api/v10/channels/{channel}/messages");
        self.calls().into_iter().filter(|c| c.method == "POST" && c.path == path).collect()
    }

    /// Serves `bytes` as an attachment file; returns its URL.
    pub fn serve_file(&self, name: &str, bytes: &[u8]) -> String {
        self.world().files.insert(name.to_string(), bytes.to_vec());
        format!("{}/files/{name}", self.base_url())
    }

    /// The next `n` message posts fail with 500.
    pub fn fail_next_posts(&self, n: u32) {
        self.world().fail_next_posts = n;
    }

    /// Posts to this channel are refused for good (404 Unknown Channel); `None` takes it back.
    pub fn refuse_channel(&self, channel: Option<u64>) {
        self.world().refused_channel = channel;
    }

    /// A message is deleted: a reply that insists on it is refused.
    pub fn delete_message(&self, id: u64) {
        self.world().deleted.insert(id.to_string());
    }

    /// Accepts only `Bot <token>` from now on.
    pub fn accept_only(&self, token: &str) {
        self.world().valid_token = Some(token.to_string());
    }

    /// Sets up (or changes) the guild.
    pub fn set_guild(&self, guild: Guild) {
        self.world().guild = Some(guild);
    }

    /// Changes the guild in place.
    pub fn change_guild(&self, change: impl FnOnce(&mut Guild)) {
        if let Some(g) = self.world().guild.as_mut() {
            change(g);
        }
    }

    /// Requests it received, or answers it gave, that Discord's document does not allow.
    pub fn contract_violations(&self) -> Vec<String> {
        self.served.violations()
    }

    /// [`FakeDiscord::contract_violations`], forgotten (a test that provokes one on purpose).
    pub fn take_contract_violations(&self) -> Vec<String> {
        self.served.take_violations()
    }
}

fn error(status: StatusCode, code: u32, message: &str) -> Response {
    (status, Json(json!({"code": code, "message": message}))).into_response()
}

/// The document's minimal example of one of its schemas, as a base.
fn base(component: &str) -> Value {
    Vendor::Discord.document().example_of(component, Fullness::Minimal).unwrap_or(json!({}))
}

fn fill(mut base: Value, fields: Value) -> Value {
    if let (Value::Object(b), Value::Object(f)) = (&mut base, fields) {
        b.extend(f);
    }
    base
}

fn user(id: u64, name: &str, bot: bool) -> Value {
    fill(
        base("UserResponse"),
        json!({"id": id.to_string(), "username": name, "avatar": null, "discriminator": "0", "public_flags": 0,
               "flags": 0, "global_name": null, "primary_guild": null, "bot": bot}),
    )
}

fn message(channel: &str, content: &str) -> Value {
    fill(
        base("MessageResponse"),
        json!({
            "id": fastrand::u64(10_000..u64::MAX / 2).to_string(), "channel_id": channel, "content": content,
            "author": user(900, "book-e", true), "timestamp": "2026-11-25T10:00:00.000000+00:00",
            "edited_timestamp": null, "tts": false, "mention_everyone": false, "mentions": [], "mention_roles": [],
            "attachments": [], "embeds": [], "components": [], "pinned": false, "type": 0, "flags": 0
        }),
    )
}

async fn answer(State(world): State<Shared>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let authorization =
        request.headers().get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string);
    let bytes = to_bytes(request.into_body(), 32 << 20).await.unwrap_or_default();
    if let Some(name) = path.strip_prefix("/files/") {
        let file = world.lock().unwrap_or_else(|p| p.into_inner()).files.get(name).cloned();
        return match file {
            Some(bytes) => bytes.into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        };
    }
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let mut w = world.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(valid) = &w.valid_token {
        if authorization.as_deref() != Some(format!("Bot {valid}").as_str()) {
            return error(StatusCode::UNAUTHORIZED, 0, "401: Unauthorized");
        }
    }
    let parts: Vec<&str> = path.trim_start_matches("/api/v10/").split('/').collect();
    let is_post = method == Method::POST && parts.len() == 3 && parts[0] == "channels" && parts[2] == "messages";
    if is_post {
        if w.refused_channel.is_some_and(|c| parts[1] == c.to_string()) {
            return error(StatusCode::NOT_FOUND, 10003, "Unknown Channel");
        }
        if w.fail_next_posts > 0 {
            w.fail_next_posts -= 1;
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"message": "500: Internal Server Error", "code": 0})),
            )
                .into_response();
        }
        let reference = &body["message_reference"];
        let gone = reference["message_id"].as_str().is_some_and(|id| w.deleted.contains(id));
        if gone && reference["fail_if_not_exists"] != json!(false) {
            let errors = json!({"message_reference": {"_errors": [{"code": "MESSAGE_REFERENCE_UNKNOWN_MESSAGE",
                "message": "Unknown message"}]}});
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"code": 50035, "message": "Invalid Form Body", "errors": errors})),
            )
                .into_response();
        }
    }
    w.calls.push(Call { method: method.to_string(), path: path.clone(), body: body.clone() });
    let content = body["content"].as_str().unwrap_or_default().to_string();
    let guild = w.guild.clone();
    drop(w);
    match (method.as_str(), parts.as_slice()) {
        ("POST", ["interactions", _, _, "callback"]) => StatusCode::NO_CONTENT.into_response(),
        (_, ["applications", _, "guilds", _, "commands"]) => Json(json!([])).into_response(),
        ("POST", ["channels", channel, "messages"]) => Json(message(channel, &content)).into_response(),
        ("PATCH", ["webhooks", _, _, "messages", "@original"]) | ("POST", ["webhooks", _, _]) => {
            Json(message("0", &content)).into_response()
        }
        ("GET", rest) => match guild {
            Some(g) => setup_answer(rest, &g),
            None => error(StatusCode::NOT_FOUND, 0, "the fake holds no guild"),
        },
        _ => error(StatusCode::NOT_FOUND, 0, "404: Not Found"),
    }
}

/// The reads `bookkeeper connect discord` makes.
fn setup_answer(parts: &[&str], g: &Guild) -> Response {
    let in_guild = |id: &str| id == g.id.to_string() && g.bot_is_member;
    match parts {
        ["users", "@me"] => Json(fill(base("UserPIIResponse"), user(g.bot_id, "book-e", true))).into_response(),
        ["applications", "@me"] => Json(fill(
            base("PrivateApplicationResponse"),
            json!({"id": g.application_id.to_string(), "name": "Book-E", "flags": g.application_flags,
                   "verify_key": g.verify_key, "bot": user(g.bot_id, "book-e", true)}),
        ))
        .into_response(),
        ["gateway", "bot"] => Json(json!({
            "url": "wss://gateway.discord.gg", "shards": 1,
            "session_start_limit": {"total": 1000, "remaining": g.sessions_remaining, "reset_after": 3_600_000,
                                    "max_concurrency": 1}
        }))
        .into_response(),
        ["guilds", id] if in_guild(id) => {
            let roles: Vec<Value> = g.roles.iter().map(role).collect();
            Json(fill(base("GuildWithCountsResponse"), json!({"id": id, "name": "Sandbox", "roles": roles})))
                .into_response()
        }
        ["guilds", id, "roles"] if in_guild(id) => {
            Json(Value::Array(g.roles.iter().map(role).collect())).into_response()
        }
        ["guilds", id, "channels"] if in_guild(id) => {
            let text = g.channels.iter().map(|c| (c, 0));
            let categories = g.categories.iter().map(|c| (c, 4));
            let channels: Vec<Value> = text
                .chain(categories)
                .map(|((cid, name), kind)| {
                    let overwrites: Vec<Value> = g
                        .overwrites
                        .iter()
                        .filter(|o| o.0 == *cid)
                        .map(|o| {
                            let kind = if o.1 == g.bot_id { 1 } else { 0 };
                            json!({"id": o.1.to_string(), "type": kind, "allow": o.2.to_string(), "deny": o.3.to_string()})
                        })
                        .collect();
                    fill(
                        base("GuildChannelResponse"),
                        json!({"id": cid.to_string(), "type": kind, "name": name, "guild_id": id, "position": 0,
                               "flags": 0, "permission_overwrites": overwrites, "parent_id": null}),
                    )
                })
                .collect();
            Json(Value::Array(channels)).into_response()
        }
        ["guilds", id, "members", user_id] if in_guild(id) => {
            if *user_id != g.bot_id.to_string() {
                return error(StatusCode::NOT_FOUND, 10007, "Unknown Member");
            }
            let roles: Vec<String> = g.bot_roles.iter().map(u64::to_string).collect();
            Json(fill(
                base("GuildMemberResponse"),
                json!({"user": user(g.bot_id, "book-e", true), "roles": roles,
                       "joined_at": "2026-01-02T09:30:00.000000+00:00", "flags": 0, "deaf": false, "mute": false,
                       "pending": false}),
            ))
            .into_response()
        }
        ["guilds", ..] => error(StatusCode::NOT_FOUND, 10004, "Unknown Guild"),
        _ => error(StatusCode::NOT_FOUND, 0, "404: Not Found"),
    }
}

fn role((id, name, permissions): &(u64, String, u64)) -> Value {
    fill(
        base("GuildRoleResponse"),
        json!({"id": id.to_string(), "name": name, "permissions": permissions.to_string(), "position": 0,
               "color": 0, "hoist": false, "managed": false, "mentionable": false, "flags": 0}),
    )
}
