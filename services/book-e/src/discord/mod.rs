//! The Discord door (serenity): slash commands, the watched finance channel,
//! review buttons, and the notifications that tell people what happened.
//!
//! Everything that talks to Discord goes through one `serenity::http::Http`, so a
//! test can point it at a local fake of Discord's REST API
//! (`BOOK_E_DISCORD_API_URL`, which also disables serenity's rate limiter, as
//! its proxy mode requires). The gateway only delivers events; each is handled by
//! [`DiscordDoor::on_message`] or [`DiscordDoor::on_interaction`], which tests call
//! directly with events built from JSON fixtures.
//!
//! Safety: only the configured guild; only the finance channel for dropped
//! receipts; never bots; review buttons only for members with the reviewer role,
//! each mapped to their own Review-E identity, which refuses self-approval too.

pub mod connect;
pub mod fake;

use std::collections::HashMap;
use std::sync::Arc;

use bookkeeper_core::domain::{ActionKind, Stage};
use bookkeeper_core::people::{Directory, Right};
use bookkeeper_core::roles::Role;
use bookkeeper_core::{
    ActionState, Append, EventType, Handler, HandlerError, RecordedEvent, Store, SubscriptionOptions, TypeFilter,
};
use bookkeeper_http::trace::CORRELATION_ID_HEADER;
use bookkeeper_http::ErrorBody;
use secrecy::{ExposeSecret, SecretString};

use serenity::all::{
    ButtonStyle, ChannelId, CommandDataOptionValue, CommandInteraction, CommandOptionType, ComponentInteraction,
    CreateActionRow, CreateButton, CreateCommand, CreateCommandOption, CreateInteractionResponse,
    CreateInteractionResponseFollowup, CreateInteractionResponseMessage, CreateMessage, EditInteractionResponse,
    GuildId, Interaction, Message as DiscordMessage, MessageId, MessageReference, Nonce, RoleId,
};
use serenity::http::{Http, HttpBuilder};
use serenity::interactions_endpoint::Verifier;

use crate::accounting::AccountingReads;
use crate::conversation::{Answer, AttachedDocument, Conversation, Message, ReplyTo};
use crate::render;

/// Discord settings. `Debug` never prints the bot token or reviewer tokens.
#[derive(Clone)]
pub struct DiscordConfig {
    /// Bot token (`DISCORD_TOKEN`).
    pub token: SecretString,
    /// Application id (`DISCORD_APPLICATION_ID`).
    pub application_id: u64,
    /// The one guild Book-E serves (`DISCORD_GUILD_ID`).
    pub guild_id: u64,
    /// Where receipts are dropped (`DISCORD_FINANCE_CHANNEL_ID`).
    pub finance_channel: u64,
    /// Where escalations go, with buttons (`DISCORD_REVIEWERS_CHANNEL_ID`).
    pub reviewers_channel: u64,
    /// Where compliance summaries go (`DISCORD_REPORTS_CHANNEL_ID`, default: finance).
    pub reports_channel: u64,
    /// Members with this role may press review buttons (`DISCORD_REVIEWER_ROLE_ID`).
    pub reviewer_role: u64,
    /// Discord user id -> that reviewer's Review-E token (`BOOK_E_REVIEWER_TOKENS=discord_id:token,...`).
    pub reviewer_tokens: HashMap<u64, SecretString>,
    /// Review-E's API (`REVIEW_E_URL`).
    pub review_e_url: String,
    /// Another base URL for Discord's REST API (tests; `BOOK_E_DISCORD_API_URL`).
    pub api_base: Option<String>,
    /// Whether to read plain messages in the finance channel (needs the privileged
    /// MESSAGE_CONTENT intent; `BOOK_E_WATCH_FINANCE_CHANNEL`, default true).
    pub watch_finance_channel: bool,
    /// Post a compliance summary even when nothing needs attention (`BOOK_E_REPORT_ALL_CLEAR`).
    pub report_all_clear: bool,
    /// The application's public key (`DISCORD_PUBLIC_KEY`, hex): with it, Book-E
    /// serves Discord's interactions endpoint at `POST /discord/interactions`,
    /// verifies every request, and forwards review presses verbatim to Review-E.
    pub public_key: Option<String>,
    /// The token Book-E presents to Review-E for a press it saw over the gateway
    /// (`BOOK_E_ASSERTED_PRESS_TOKEN`): Review-E records such a decision as
    /// asserted by Book-E, not proven, and may refuse it.
    pub asserted_press_token: Option<SecretString>,
}

impl std::fmt::Debug for DiscordConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut reviewers: Vec<&u64> = self.reviewer_tokens.keys().collect();
        reviewers.sort();
        f.debug_struct("DiscordConfig")
            .field("token", &self.token)
            .field("application_id", &self.application_id)
            .field("guild_id", &self.guild_id)
            .field("finance_channel", &self.finance_channel)
            .field("reviewers_channel", &self.reviewers_channel)
            .field("reports_channel", &self.reports_channel)
            .field("reviewer_role", &self.reviewer_role)
            .field("reviewers", &reviewers)
            .field("review_e_url", &self.review_e_url)
            .field("api_base", &self.api_base)
            .finish_non_exhaustive()
    }
}

/// Largest attachment Book-E downloads.
const MAX_ATTACHMENT_BYTES: u32 = 20 * 1024 * 1024;

/// Longest message text Book-E sends. Discord's document allows 2,000
/// characters in an edit (4,000 in some creates): 2,000 fits everywhere.
pub const MAX_CONTENT_CHARS: usize = 2000;

/// Longest `custom_id` of a button (Discord's document).
pub const MAX_CUSTOM_ID_CHARS: usize = 100;

/// `text` within [`MAX_CONTENT_CHARS`]: a longer one is cut, and ends with
/// `pointer` (where the whole of it can be read).
pub fn within_limit(text: &str, pointer: &str) -> String {
    if text.chars().count() <= MAX_CONTENT_CHARS {
        return text.to_string();
    }
    let tail = format!("… {pointer}");
    let keep = MAX_CONTENT_CHARS.saturating_sub(tail.chars().count());
    let mut out: String = text.chars().take(keep).collect();
    out.push_str(&tail);
    out.chars().take(MAX_CONTENT_CHARS).collect()
}

/// Where the whole story of an action can be read.
fn whole_story(correlation_id: &str) -> String {
    format!("(cut: the whole story is `bookkeeper audit {correlation_id}`)")
}

/// A reply that does not fail when the message it answers was deleted
/// meanwhile (Discord's default, `fail_if_not_exists: true`, would refuse it
/// on every retry): it is then sent as a plain message.
fn reply_reference(channel: ChannelId, message: MessageId) -> MessageReference {
    MessageReference::from((channel, message)).fail_if_not_exists(false)
}

/// A call Discord answered with success counts as done even when serenity cannot
/// read the answer (Discord's document promises few of the fields serenity's
/// models want): retrying it would send it twice.
#[allow(clippy::result_large_err)] // serenity's own error, passed through as serenity returns it
fn delivered<T>(result: Result<T, serenity::Error>) -> Result<(), serenity::Error> {
    match result {
        Ok(_) => Ok(()),
        Err(serenity::Error::Json(e)) => {
            // Loud: an API base that answers 200 with something else (a proxy's
            // page) would otherwise swallow every message unseen.
            tracing::warn!(error = %e, "Discord answered with success but a body serenity cannot read; counted as delivered");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// The Discord door.
#[derive(Clone)]
pub struct DiscordDoor {
    http: Arc<Http>,
    conversation: Conversation,
    accounting: AccountingReads,
    config: Arc<DiscordConfig>,
    web: reqwest::Client,
    people: Arc<Directory>,
    verifier: Option<Verifier>,
}

/// A verifier of Discord's signatures for a hex public key, if it is one.
pub fn verifier(public_key: &str) -> Option<Verifier> {
    let hex = public_key.trim();
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Verifier::try_new(bytes).ok()
}

/// What Book-E answers Discord on its interactions endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body (an interaction response).
    pub body: serde_json::Value,
}

/// What a button asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ButtonAction {
    /// Approve the proposal (a reviewer; Review-E decides).
    Approve(String),
    /// Reject it (a reviewer; Review-E decides).
    Reject(String),
    /// Yes to what Book-E read from a document (its sender; Book-E proposes).
    Confirm(String),
}

impl ButtonAction {
    /// The button's `custom_id`. Discord takes at most [`MAX_CUSTOM_ID_CHARS`]:
    /// the notifier leaves the buttons off when an id makes it longer.
    pub fn custom_id(&self) -> String {
        match self {
            ButtonAction::Approve(id) => format!("bk:approve:{id}"),
            ButtonAction::Reject(id) => format!("bk:reject:{id}"),
            ButtonAction::Confirm(id) => format!("bk:confirm:{id}"),
        }
    }

    /// Reads a `custom_id`.
    pub fn parse(custom_id: &str) -> Option<ButtonAction> {
        let rest = custom_id.strip_prefix("bk:")?;
        let (verb, id) = rest.split_once(':')?;
        match verb {
            "approve" if !id.is_empty() => Some(ButtonAction::Approve(id.to_string())),
            "reject" if !id.is_empty() => Some(ButtonAction::Reject(id.to_string())),
            "confirm" if !id.is_empty() => Some(ButtonAction::Confirm(id.to_string())),
            _ => None,
        }
    }
}

/// The Confirm button of an answer that asks to confirm a reading (its first
/// choice is `/confirm <id>` alone), when the id fits in a `custom_id`.
fn confirm_buttons(answer: &Answer) -> Vec<CreateActionRow> {
    let Some(id) = answer.choices.first().and_then(|c| c.command.strip_prefix("/confirm ")) else { return vec![] };
    if id.contains(' ') {
        return vec![];
    }
    let custom_id = ButtonAction::Confirm(id.to_string()).custom_id();
    if custom_id.len() > MAX_CUSTOM_ID_CHARS {
        return vec![];
    }
    vec![CreateActionRow::Buttons(vec![CreateButton::new(custom_id).label("Confirm").style(ButtonStyle::Success)])]
}

fn answer_text(answer: &Answer) -> String {
    let mut text = answer.text.clone();
    for c in &answer.choices {
        text.push_str(&format!("\n• {} → `{}`", c.label, c.command));
    }
    text.chars().take(1900).collect()
}

impl DiscordDoor {
    /// A door speaking to Discord (or to `config.api_base`) through serenity.
    pub fn new(config: DiscordConfig, conversation: Conversation, accounting: AccountingReads) -> DiscordDoor {
        let mut builder = HttpBuilder::new(config.token.expose_secret())
            .application_id(serenity::all::ApplicationId::new(config.application_id));
        if let Some(base) = &config.api_base {
            builder = builder.proxy(base.trim_end_matches('/')).ratelimiter_disabled(true);
        }
        let verifier = config.public_key.as_deref().and_then(verifier);
        DiscordDoor {
            http: Arc::new(builder.build()),
            conversation,
            accounting,
            config: Arc::new(config),
            web: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .unwrap_or_else(|_| reqwest::Client::new()),
            people: Arc::new(Directory::default()),
            verifier,
        }
    }

    /// Uses the people directory: a Discord user it knows is recorded by their
    /// canonical id (`user:<id>`), whatever door they use.
    pub fn with_people(mut self, people: Arc<Directory>) -> DiscordDoor {
        self.people = people;
        self
    }

    /// Who a Discord user is in the log: their person's id, or their Discord id
    /// when the directory does not know them.
    fn person_of(&self, discord_user: serenity::all::UserId) -> String {
        let id = discord_user.to_string();
        self.people.by_discord(&id).map(|p| p.id.clone()).unwrap_or(id)
    }

    /// Whether a Discord user may ask for an action: a person the directory lists
    /// needs the `propose` right. Someone it does not list may only while the
    /// directory lists no Discord ids at all (as before there was one); otherwise a
    /// second, unlisted account would dodge both the right and the self-approval
    /// check.
    fn may_propose(&self, discord_user: serenity::all::UserId) -> bool {
        match self.people.by_discord(&discord_user.to_string()) {
            Some(p) => p.may(Right::Propose),
            None => self.people.people().iter().all(|p| p.discord.is_empty()),
        }
    }

    /// Whether Discord's interactions endpoint is served (a public key is set).
    pub fn serves_endpoint(&self) -> bool {
        self.verifier.is_some()
    }

    /// One request to the interactions endpoint, verified first: Discord sends
    /// every interaction here when the endpoint is set, and probes it with bad
    /// signatures. Review presses go to Review-E verbatim (it verifies again);
    /// commands are acknowledged at once and answered by an edit.
    pub async fn on_endpoint(&self, signature: &str, timestamp: &str, body: &[u8]) -> EndpointAnswer {
        let refuse =
            |status: u16, message: &str| EndpointAnswer { status, body: serde_json::json!({"error": message}) };
        let Some(verifier) = &self.verifier else { return refuse(404, "the interactions endpoint is not configured") };
        if verifier.verify(signature, timestamp, body).is_err() {
            return refuse(401, "invalid request signature");
        }
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
            return refuse(400, "not an interaction");
        };
        match value.get("type").and_then(|t| t.as_u64()) {
            Some(1) => EndpointAnswer { status: 200, body: serde_json::json!({"type": 1}) },
            Some(2) => match serde_json::from_value::<Interaction>(value) {
                Ok(Interaction::Command(command)) => {
                    if command.guild_id != Some(self.guild()) {
                        return EndpointAnswer {
                            status: 200,
                            body: ephemeral_body("Book-E works in its own server only."),
                        };
                    }
                    let door = self.clone();
                    tokio::spawn(async move { door.answer_command(&command).await });
                    EndpointAnswer { status: 200, body: serde_json::json!({"type": 5}) }
                }
                _ => refuse(400, "not an application command"),
            },
            Some(3) => self.forward_press(&value, signature, timestamp, body).await,
            _ => EndpointAnswer { status: 200, body: ephemeral_body("Book-E does not handle this interaction.") },
        }
    }

    /// Sends a signed press to Review-E as it came, and turns its answer into the
    /// interaction's response: the message updated, or an ephemeral refusal.
    async fn forward_press(
        &self,
        press: &serde_json::Value,
        signature: &str,
        timestamp: &str,
        body: &[u8],
    ) -> EndpointAnswer {
        let custom_id = press.get("data").and_then(|d| d.get("custom_id")).and_then(|c| c.as_str()).unwrap_or_default();
        let Some(action) = ButtonAction::parse(custom_id) else {
            return EndpointAnswer { status: 200, body: ephemeral_body("This button is not Book-E's.") };
        };
        if let ButtonAction::Confirm(id) = &action {
            // Book-E's own button: the sender's yes to a reading, answered here.
            if press.get("guild_id").and_then(|g| g.as_str()) != Some(self.guild().to_string().as_str()) {
                return EndpointAnswer { status: 200, body: ephemeral_body("Book-E works in its own server only.") };
            }
            let user =
                press.get("member").and_then(|m| m.get("user")).and_then(|u| u.get("id")).and_then(|i| i.as_str());
            let Some(user) = user.and_then(|u| u.parse::<u64>().ok()).filter(|u| *u != 0) else {
                return EndpointAnswer { status: 200, body: ephemeral_body("Confirm works in Book-E's server only.") };
            };
            let channel = press.get("channel_id").and_then(|c| c.as_str()).unwrap_or_default().to_string();
            let (text, proposed) = self.confirm_press(id, serenity::all::UserId::new(user), channel).await;
            if !proposed {
                return EndpointAnswer { status: 200, body: ephemeral_body(&within_limit(&text, "(cut)")) };
            }
            let original =
                press.get("message").and_then(|m| m.get("content")).and_then(|c| c.as_str()).unwrap_or_default();
            let outcome = format!("\n\n{text}");
            let room = MAX_CONTENT_CHARS.saturating_sub(outcome.chars().count());
            let content: String = original.chars().take(room).collect::<String>() + &outcome;
            return EndpointAnswer {
                status: 200,
                body: serde_json::json!({"type": 7, "data": {"content": content, "components": []}}),
            };
        }
        let url = format!("{}/discord/press", self.config.review_e_url.trim_end_matches('/'));
        let sent = self
            .web
            .post(url)
            .header("content-type", "application/json")
            .header("x-signature-ed25519", signature)
            .header("x-signature-timestamp", timestamp)
            .body(body.to_vec())
            .send()
            .await;
        let Ok(response) = sent else {
            return EndpointAnswer {
                status: 200,
                body: ephemeral_body("Review-E is not reachable; nothing was decided. Try again shortly."),
            };
        };
        let status = response.status();
        if !status.is_success() {
            let body = response.bytes().await.unwrap_or_default();
            let why = ErrorBody::text_of(status.as_u16(), &body);
            return EndpointAnswer { status: 200, body: ephemeral_body(&format!("Not done: {why}.")) };
        }
        let done = if matches!(action, ButtonAction::Approve(_)) { "✅ Approved" } else { "⛔ Rejected" };
        let user = press.get("member").and_then(|m| m.get("user")).and_then(|u| u.get("id")).and_then(|i| i.as_str());
        let original = press.get("message").and_then(|m| m.get("content")).and_then(|c| c.as_str()).unwrap_or_default();
        let content = format!("{original}\n\n{done} by <@{}>", user.unwrap_or("?"));
        // UPDATE_MESSAGE: the review message without its buttons.
        EndpointAnswer {
            status: 200,
            body: serde_json::json!({"type": 7, "data": {"content": content, "components": []}}),
        }
    }

    /// The REST client.
    pub fn http(&self) -> Arc<Http> {
        self.http.clone()
    }

    fn guild(&self) -> GuildId {
        GuildId::new(self.config.guild_id)
    }

    /// The slash commands Book-E offers.
    pub fn commands() -> Vec<CreateCommand> {
        let text = |name: &str, what: &str| CreateCommandOption::new(CommandOptionType::String, name, what);
        let file = |what: &str| CreateCommandOption::new(CommandOptionType::Attachment, "file", what).required(true);
        vec![
            CreateCommand::new("receipt")
                .description("Attach a receipt to its bank transaction")
                .add_option(file("The receipt (PDF, JPEG, PNG or HEIC)"))
                .add_option(text("amount", "What was paid, e.g. 499,00"))
                .add_option(text("vendor", "Where"))
                .add_option(text("date", "When, e.g. 2026-11-24"))
                .add_option(text("transaction", "The bank transaction id, if you know it")),
            CreateCommand::new("invoice")
                .description("Register a supplier invoice")
                .add_option(file("The invoice"))
                // Read from the file when left out: Book-E asks for what it cannot read.
                .add_option(text("vendor", "The supplier"))
                .add_option(text("number", "The invoice number"))
                .add_option(text("amount", "Total including VAT"))
                .add_option(text("due", "Due date, e.g. 2026-12-08"))
                .add_option(text("org", "The supplier's organisation number"))
                .add_option(text("date", "Invoice date"))
                .add_option(text("account", "Expense account, e.g. 6540"))
                .add_option(text("vat", "VAT type: HIGH, MEDIUM, LOW or NONE")),
            CreateCommand::new("balance").description("The bank balance"),
            CreateCommand::new("pending").description("What waits for a reviewer"),
            CreateCommand::new("status")
                .description("The story of one proposal")
                .add_option(text("id", "The proposal id").required(true)),
            CreateCommand::new("help").description("What Book-E understands"),
        ]
    }

    /// Registers the slash commands in the guild (instant, unlike global ones).
    pub async fn register_commands(&self) -> Result<(), serenity::Error> {
        delivered(self.guild().set_commands(&self.http, Self::commands()).await)
    }

    /// Downloads a Discord attachment right away (its URL expires) and stores it.
    async fn keep(&self, url: &str, filename: &str, size: u32) -> Result<AttachedDocument, String> {
        if size > MAX_ATTACHMENT_BYTES {
            return Err(format!("{filename} is larger than 20 MiB; send a smaller scan."));
        }
        let response =
            self.web.get(url).send().await.map_err(|_| format!("I could not download {filename}; send it again."))?;
        if !response.status().is_success() {
            return Err(format!("I could not download {filename} ({}); send it again.", response.status()));
        }
        let bytes = response.bytes().await.map_err(|_| format!("I could not download {filename}; send it again."))?;
        let stored = self.accounting.upload(bytes.to_vec()).await.map_err(|e| format!("{filename}: {e}"))?;
        Ok(AttachedDocument { sha256: stored.sha256, filename: Some(filename.to_string()) })
    }

    /// A message in a channel Book-E can see. Returns what it answered, if anything.
    pub async fn on_message(&self, msg: &DiscordMessage) -> Option<String> {
        if msg.author.bot || msg.guild_id != Some(self.guild()) || !self.config.watch_finance_channel {
            return None;
        }
        if msg.channel_id != ChannelId::new(self.config.finance_channel) {
            return None;
        }
        let Some(attachment) = msg.attachments.first() else {
            // Conversation in the channel is not for Book-E; commands are slash commands.
            return None;
        };
        if !self.may_propose(msg.author.id) {
            self.reply(msg, NO_PROPOSE_RIGHT).await;
            return Some(NO_PROPOSE_RIGHT.to_string());
        }
        let document = match self.keep(&attachment.url, &attachment.filename, attachment.size).await {
            Ok(d) => Some(d),
            Err(why) => {
                self.reply(msg, &why).await;
                return Some(why);
            }
        };
        let message = Message {
            user: self.person_of(msg.author.id),
            text: msg.content.clone(),
            document,
            reply_to: ReplyTo {
                door: "discord".into(),
                channel_id: Some(msg.channel_id.to_string()),
                message_id: Some(msg.id.to_string()),
            },
        };
        let answer = self.conversation.handle(message).await;
        let text = answer_text(&answer);
        self.reply_with(msg, &text, confirm_buttons(&answer)).await;
        Some(text)
    }

    async fn reply(&self, msg: &DiscordMessage, text: &str) {
        self.reply_with(msg, text, vec![]).await
    }

    async fn reply_with(&self, msg: &DiscordMessage, text: &str, buttons: Vec<CreateActionRow>) {
        let reply = CreateMessage::new()
            .content(within_limit(text, "(cut)"))
            .components(buttons)
            .reference_message(reply_reference(msg.channel_id, msg.id));
        if let Err(e) = delivered(msg.channel_id.send_message(&self.http, reply).await) {
            tracing::warn!(error = %e, "could not answer on Discord");
        }
    }

    /// A slash command or a button press.
    pub async fn on_interaction(&self, interaction: &Interaction) {
        match interaction {
            Interaction::Command(command) => self.on_command(command).await,
            Interaction::Component(component) => self.on_button(component).await,
            _ => {}
        }
    }

    async fn on_command(&self, command: &CommandInteraction) {
        if command.guild_id != Some(self.guild()) {
            let refuse =
                CreateInteractionResponseMessage::new().content("Book-E works in its own server only.").ephemeral(true);
            let _ = command.create_response(&self.http, CreateInteractionResponse::Message(refuse)).await;
            return;
        }
        // Acknowledge within Discord's 3 seconds; the answer follows as an edit.
        if let Err(e) = command.defer(&self.http).await {
            tracing::warn!(error = %e, "could not acknowledge a command");
            return;
        }
        self.answer_command(command).await;
    }

    /// Answers an acknowledged command by editing its response.
    async fn answer_command(&self, command: &CommandInteraction) {
        let proposes = matches!(command.data.name.as_str(), "receipt" | "invoice");
        if proposes && !self.may_propose(command.user.id) {
            let _ = delivered(
                command.edit_response(&self.http, EditInteractionResponse::new().content(NO_PROPOSE_RIGHT)).await,
            );
            return;
        }
        let mut words = vec![format!("/{}", command.data.name)];
        let mut document = None;
        for option in &command.data.options {
            match &option.value {
                CommandDataOptionValue::String(v) if option.name == "id" => words.push(v.clone()),
                CommandDataOptionValue::String(v) => words.push(format!("{}=\"{}\"", option.name, v.replace('"', ""))),
                CommandDataOptionValue::Attachment(id) => {
                    let Some(a) = command.data.resolved.attachments.get(id) else { continue };
                    match self.keep(&a.url, &a.filename, a.size).await {
                        Ok(d) => document = Some(d),
                        Err(why) => {
                            let edit = EditInteractionResponse::new().content(within_limit(&why, "(cut)"));
                            let _ = delivered(command.edit_response(&self.http, edit).await);
                            return;
                        }
                    }
                }
                _ => {}
            }
        }
        let message = Message {
            user: self.person_of(command.user.id),
            text: words.join(" "),
            document,
            reply_to: ReplyTo {
                door: "discord".into(),
                channel_id: Some(command.channel_id.to_string()),
                message_id: None,
            },
        };
        let answer = self.conversation.handle(message).await;
        let edit = EditInteractionResponse::new()
            .content(within_limit(&answer_text(&answer), "(cut)"))
            .components(confirm_buttons(&answer));
        if let Err(e) = delivered(command.edit_response(&self.http, edit).await) {
            tracing::warn!(error = %e, "could not answer a command");
        }
    }

    async fn ephemeral(&self, component: &ComponentInteraction, text: &str) {
        let followup = CreateInteractionResponseFollowup::new().content(within_limit(text, "(cut)")).ephemeral(true);
        if let Err(e) = delivered(component.create_followup(&self.http, followup).await) {
            tracing::warn!(error = %e, "could not answer a button press");
        }
    }

    /// A press of Confirm: the sender's yes to a reading, as if they wrote
    /// `/confirm <id>`. Returns the answer and whether it proposed.
    async fn confirm_press(&self, id: &str, discord_user: serenity::all::UserId, channel: String) -> (String, bool) {
        if !self.may_propose(discord_user) {
            return (NO_PROPOSE_RIGHT.to_string(), false);
        }
        let message = Message {
            user: self.person_of(discord_user),
            text: format!("/confirm {id}"),
            document: None,
            reply_to: ReplyTo { door: "discord".into(), channel_id: Some(channel), message_id: None },
        };
        let answer = self.conversation.handle(message).await;
        (answer_text(&answer), answer.proposal.is_some())
    }

    async fn on_button(&self, component: &ComponentInteraction) {
        let Some(action) = ButtonAction::parse(&component.data.custom_id) else { return };
        if let ButtonAction::Confirm(id) = &action {
            if component.guild_id != Some(self.guild()) {
                return;
            }
            if let Err(e) = component.defer(&self.http).await {
                tracing::warn!(error = %e, "could not acknowledge a press");
                return;
            }
            let (text, proposed) = self.confirm_press(id, component.user.id, component.channel_id.to_string()).await;
            if !proposed {
                self.ephemeral(component, &text).await;
                return;
            }
            // The reading's message, without its button, and what became of it.
            let outcome = format!("\n\n{text}");
            let room = MAX_CONTENT_CHARS.saturating_sub(outcome.chars().count());
            let content: String = component.message.content.chars().take(room).collect();
            let edit = EditInteractionResponse::new().content(content + &outcome).components(vec![]);
            if let Err(e) = delivered(component.edit_response(&self.http, edit).await) {
                tracing::warn!(error = %e, "could not update the reading's message");
            }
            return;
        }
        let role = RoleId::new(self.config.reviewer_role);
        let allowed = component.guild_id == Some(self.guild())
            && component.member.as_ref().is_some_and(|m| m.roles.contains(&role));
        if !allowed {
            let refuse = CreateInteractionResponseMessage::new()
                .content("Only reviewers of this server may decide.")
                .ephemeral(true);
            let _ = component.create_response(&self.http, CreateInteractionResponse::Message(refuse)).await;
            tracing::warn!(user = %component.user.id, "a button press from someone who may not review was refused");
            return;
        }
        if let Err(e) = component.defer(&self.http).await {
            tracing::warn!(error = %e, "could not acknowledge a button press");
            return;
        }
        let (id, verb) = match &action {
            ButtonAction::Approve(id) => (id, "approve"),
            ButtonAction::Reject(id) => (id, "reject"),
            ButtonAction::Confirm(_) => return,
        };
        let base = self.config.review_e_url.trim_end_matches('/').to_string();
        let request = if let Some(token) = self.config.reviewer_tokens.get(&component.user.id.get()) {
            // Deprecated: the reviewer's own Review-E token, held by Book-E.
            let body = serde_json::json!({"reason": format!("{verb}d on Discord")});
            // The route of earlier releases, which this release's Review-E still
            // answers: a Book-E upgraded before Review-E keeps working.
            self.web
                .post(format!("{base}/review/{id}/{verb}"))
                .header(CORRELATION_ID_HEADER, id.as_str())
                .bearer_auth(token.expose_secret())
                .json(&body)
        } else if let Some(token) = &self.config.asserted_press_token {
            // Over the gateway Discord signs nothing Review-E could check: Book-E
            // asserts who pressed, and the decision says so.
            let body = serde_json::json!({
                "custom_id": component.data.custom_id,
                "interaction_id": component.id.to_string(),
                "discord_user": component.user.id.to_string(),
            });
            self.web
                .post(format!("{base}/discord/asserted-press"))
                .header(CORRELATION_ID_HEADER, id.as_str())
                .bearer_auth(token.expose_secret())
                .json(&body)
        } else {
            self.ephemeral(
                component,
                "Review presses must come through Discord's interactions endpoint (see the README); nothing was decided.",
            )
            .await;
            return;
        };
        let outcome = request.send().await;
        let response = match outcome {
            Ok(r) => r,
            Err(_) => {
                self.ephemeral(component, "Review-E is not reachable; nothing was decided. Try again shortly.").await;
                return;
            }
        };
        let status = response.status();
        if status.is_success() {
            let done = if verb == "approve" { "✅ Approved" } else { "⛔ Rejected" };
            let outcome = format!("\n\n{done} by <@{}>", component.user.id);
            // The outcome goes under the review message, which may be as long as
            // Discord allows already: the message is cut, never the outcome.
            let room = MAX_CONTENT_CHARS.saturating_sub(outcome.chars().count());
            let mut content = within_limit(&component.message.content, "(cut)");
            if content.chars().count() > room {
                content = content.chars().take(room.saturating_sub(1)).collect::<String>() + "…";
            }
            let edit = EditInteractionResponse::new().content(content + &outcome).components(vec![]);
            if let Err(e) = delivered(component.edit_response(&self.http, edit).await) {
                tracing::warn!(error = %e, "could not update the review message");
            }
        } else {
            let body = response.bytes().await.unwrap_or_default();
            let why = ErrorBody::text_of(status.as_u16(), &body);
            self.ephemeral(component, &format!("Not done: {why}.")).await;
        }
    }

    /// The handler of the notification subscription.
    pub fn notifier(&self, store: Store) -> Notifier {
        Notifier { door: self.clone(), store }
    }

    /// Connects to the gateway and serves until `shutdown`.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send) -> anyhow::Result<()> {
        use serenity::all::GatewayIntents;
        let mut intents = GatewayIntents::GUILDS | GatewayIntents::GUILD_MESSAGES;
        if self.config.watch_finance_channel {
            intents |= GatewayIntents::MESSAGE_CONTENT;
        }
        let token = self.config.token.clone();
        let mut client = serenity::Client::builder(token.expose_secret(), intents)
            .event_handler(Gateway { door: self })
            .await
            .map_err(|e| anyhow::anyhow!("connecting to Discord failed: {e}"))?;
        let shards = client.shard_manager.clone();
        tokio::select! {
            result = client.start() => result.map_err(|e| anyhow::anyhow!("the Discord gateway failed: {e}"))?,
            _ = shutdown => shards.shutdown_all().await,
        }
        Ok(())
    }
}

struct Gateway {
    door: DiscordDoor,
}

#[serenity::async_trait]
impl serenity::all::EventHandler for Gateway {
    async fn ready(&self, _: serenity::all::Context, ready: serenity::all::Ready) {
        tracing::info!(user = %ready.user.name, "connected to Discord");
        if let Err(e) = self.door.register_commands().await {
            tracing::error!(error = %e, "could not register the slash commands");
        }
    }

    async fn message(&self, _: serenity::all::Context, msg: DiscordMessage) {
        self.door.on_message(&msg).await;
    }

    async fn interaction_create(&self, _: serenity::all::Context, interaction: Interaction) {
        self.door.on_interaction(&interaction).await;
    }
}

/// Posts what happened to proposals made on Discord, escalations to the
/// reviewers (with buttons), and compliance summaries. A durable subscription:
/// a failed post is retried, and each message carries a nonce derived from its
/// event, so Discord drops a repeat after a crash between posting and checkpoint.
pub struct Notifier {
    door: DiscordDoor,
    store: Store,
}

/// The notification subscription's name.
pub const SUBSCRIPTION: &str = "book-e.notifications";

/// The action stages people hear about.
pub const NEWS: [Stage; 6] = [
    Stage::Approved,
    Stage::Rejected,
    Stage::Escalated,
    Stage::Executed,
    Stage::ExecutionFailed,
    Stage::ExecutionSkipped,
];

/// The event types the notifier follows: exact names, from the closed set.
pub fn follows() -> TypeFilter {
    let mut types = EventType::action_types(&NEWS);
    types.push(EventType::ComplianceCheckCompleted.name());
    types.push(EventType::SubscriptionEventParked.name());
    TypeFilter::of(types)
}

/// The notifier's subscription options: a message Discord refuses for good is
/// parked (as `book-e`), not retried forever in front of every later one.
pub fn notifier_options() -> SubscriptionOptions {
    SubscriptionOptions { park_as: Some(Role::BookE.actor().into()), ..Default::default() }
}

/// The answer to a person the directory lists without the `propose` right.
const NO_PROPOSE_RIGHT: &str = "The people directory does not give you the right to propose; ask whoever keeps it.";

fn ephemeral_body(text: &str) -> serde_json::Value {
    // CHANNEL_MESSAGE_WITH_SOURCE, EPHEMERAL.
    serde_json::json!({"type": 4, "data": {"content": text, "flags": 64}})
}

fn nonce(event: &RecordedEvent, part: u8) -> Nonce {
    let hex = event.event_id.simple().to_string();
    Nonce::String(format!("{}{part}", &hex[..24]))
}

impl Notifier {
    async fn post(&self, channel: u64, message: CreateMessage) -> Result<(), HandlerError> {
        delivered(ChannelId::new(channel).send_message(&self.door.http, message.enforce_nonce(true)).await).map_err(
            |e| {
                // Discord refusing the message itself (4xx other than 429: unknown
                // channel, missing access, invalid form) will refuse it on every
                // retry; the notification is parked instead of wedging the rest.
                let refused = match &e {
                    serenity::Error::Http(serenity::http::HttpError::UnsuccessfulRequest(r)) => {
                        r.status_code.is_client_error() && r.status_code.as_u16() != 429
                    }
                    _ => false,
                };
                if refused {
                    HandlerError::permanent(format!("Discord refused the message: {e}"))
                } else {
                    HandlerError::transient(format!("Discord did not take the message (it will be retried): {e}"))
                }
            },
        )
    }

    fn escalation(proposal: &RecordedEvent, escalated: &RecordedEvent) -> String {
        let mut text = format!(
            "**Needs a reviewer:** {} (requested by {}, id `{}`)\n{}",
            render::proposal_summary(proposal),
            proposal.payload.get("requested_by").and_then(|r| r.as_str()).unwrap_or("someone"),
            proposal.correlation_id,
            render::describe(escalated),
        );
        for v in escalated.metadata.get("verdicts").and_then(|v| v.as_array()).into_iter().flatten() {
            let name = v.get("policy").and_then(|p| p.as_str()).unwrap_or("?");
            let reason = v.get("reason").and_then(|p| p.as_str()).unwrap_or("");
            let outcome = v.get("outcome").and_then(|p| p.as_str()).unwrap_or("");
            text.push_str(&format!("\n• {name}: {outcome}, {reason}"));
        }
        within_limit(&text, &whole_story(&proposal.correlation_id))
    }

    fn compliance(&self, event: &RecordedEvent) -> Option<String> {
        let findings = event.payload.get("findings")?.as_array()?;
        let attention: Vec<String> = findings
            .iter()
            .filter(|f| f.get("count").and_then(|c| c.as_u64()).unwrap_or(0) > 0 || f.get("error").is_some())
            .map(|f| {
                let check = f.get("check").and_then(|c| c.as_str()).unwrap_or("?");
                match f.get("error").and_then(|e| e.as_str()) {
                    Some(error) => format!("• {check}: could not run ({error})"),
                    None => format!("• {check}: {}", f.get("count").and_then(|c| c.as_u64()).unwrap_or(0)),
                }
            })
            .collect();
        if attention.is_empty() {
            return self.door.config.report_all_clear.then(|| "Daily compliance check: all clear.".to_string());
        }
        let text = format!("**Daily compliance check: needs attention**\n{}", attention.join("\n"));
        Some(within_limit(&text, "(cut: `bookkeeper events tail` has every finding)"))
    }
}

impl Handler for Notifier {
    async fn handle(&self, event: &RecordedEvent) -> Result<Append, HandlerError> {
        if event.event_type == "ComplianceCheckCompleted" {
            if let Some(text) = self.compliance(event) {
                self.post(self.door.config.reports_channel, CreateMessage::new().content(text).nonce(nonce(event, 0)))
                    .await?;
            }
            return Ok(Append::nothing());
        }
        let parked = event.event_type == EventType::SubscriptionEventParked.name();
        if parked && event.payload.get("subscription").and_then(|s| s.as_str()) == Some(SUBSCRIPTION) {
            // Our own parked message: telling of it over Discord may fail the same way.
            return Ok(Append::nothing());
        }
        if parked {
            let text = within_limit(
                &format!("⚠️ Set aside, needs a person: `{}`: {}", event.correlation_id, render::describe(event)),
                &whole_story(&event.correlation_id),
            );
            self.post(self.door.config.reports_channel, CreateMessage::new().content(text).nonce(nonce(event, 2)))
                .await?;
        } else if ActionKind::parse(&event.event_type).is_none() {
            return Ok(Append::nothing());
        }
        let story = self.store.read_correlation(&event.correlation_id).await?;
        let state = ActionState::fold(&story);
        // An event the lifecycle does not count (out of order, naming no proposal)
        // is not news: telling people of it would repeat a forgery.
        if !state.counts(event) {
            tracing::info!("an event the action's lifecycle does not count; not announced");
            return Ok(Append::nothing());
        }
        let Some(proposal) = state.proposal() else {
            return Ok(Append::nothing());
        };
        if matches!(ActionKind::parse(&event.event_type), Some((_, Stage::Escalated))) {
            let id = &event.correlation_id;
            let (approve, reject) =
                (ButtonAction::Approve(id.clone()).custom_id(), ButtonAction::Reject(id.clone()).custom_id());
            let fits = approve.chars().count().max(reject.chars().count()) <= MAX_CUSTOM_ID_CHARS;
            let mut message = CreateMessage::new().nonce(nonce(event, 1));
            if fits {
                let buttons = CreateActionRow::Buttons(vec![
                    CreateButton::new(approve).label("Approve").style(ButtonStyle::Success),
                    CreateButton::new(reject).label("Reject").style(ButtonStyle::Danger),
                ]);
                message = message.content(Self::escalation(proposal, event)).components(vec![buttons]);
            } else {
                // A button names its action in at most 100 characters; this id
                // is longer, so the reviewer decides in Review-E instead.
                let note = format!(
                    "\n(This id is too long for Discord's buttons: decide with Review-E's \
                     `POST /reviews/{id}/approve` or `/reject`.)"
                );
                let text = Self::escalation(proposal, event);
                let room = MAX_CONTENT_CHARS.saturating_sub(note.chars().count());
                message = message.content(text.chars().take(room).collect::<String>() + &note);
            }
            self.post(self.door.config.reviewers_channel, message).await?;
        }
        let reply_to: Option<ReplyTo> =
            proposal.metadata.get("reply_to").and_then(|r| serde_json::from_value(r.clone()).ok());
        let Some(reply_to) = reply_to.filter(|r| r.door == "discord") else { return Ok(Append::nothing()) };
        let (Some(channel), Some(text)) =
            (reply_to.channel_id.as_deref().and_then(|c| c.parse::<u64>().ok()), render::notification(event))
        else {
            return Ok(Append::nothing());
        };
        let text = within_limit(&text, &whole_story(&event.correlation_id));
        let mut message = CreateMessage::new().content(text).nonce(nonce(event, 2));
        if let Some(id) = reply_to.message_id.as_deref().and_then(|m| m.parse::<u64>().ok()) {
            message = message.reference_message(reply_reference(ChannelId::new(channel), MessageId::new(id)));
        }
        self.post(channel, message).await?;
        Ok(Append::nothing())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn button_ids_round_trip_and_nothing_else_parses() {
        let a = ButtonAction::Approve("3f0c6a2e-1d7b-4c47-9d0e-8b6e5f0a1c2d".into());
        assert_eq!(ButtonAction::parse(&a.custom_id()), Some(a.clone()));
        assert!(a.custom_id().len() <= 100);
        assert_eq!(ButtonAction::parse("bk:reject:x"), Some(ButtonAction::Reject("x".into())));
        for bad in ["", "bk:", "bk:approve:", "bk:delete:x", "other:approve:x"] {
            assert_eq!(ButtonAction::parse(bad), None, "{bad}");
        }
    }
}
