//! Review presses from Discord that Book-E cannot forge.
//!
//! With an interactions endpoint, Discord signs every interaction with the
//! application's Ed25519 key. Book-E verifies it (Discord requires that) and
//! forwards a review press verbatim: the body and the two signature headers.
//! Review-E verifies again with the application's public key, so a compromised
//! Book-E cannot make a press up:
//!
//! - the signature covers the timestamp and the body: a forged or altered press
//!   is refused;
//! - the timestamp must be within a window of now: a stale one is refused;
//! - the interaction id is recorded with the decision, and a press whose id is
//!   already in the action's story is refused: used once; so is a press older
//!   than the action's last change (pressed on what the reviewer saw then, not
//!   on what it is now: a refused press cannot be played back after a failure);
//! - the signed payload says who pressed (their Discord user id, mapped to a
//!   person through the directory, who must have the review right), that they
//!   hold the reviewer role in the right server, and which message the button was
//!   on: its custom id and the message must name the proposal being decided.
//!
//! Where Discord cannot reach an endpoint (a laptop running `up`), presses arrive
//! over the gateway and Book-E can only *assert* who pressed. Such a decision
//! records `proven: false, asserted_by: book-e`, and an operator can forbid them
//! (`REVIEW_E_ALLOW_ASSERTED_PRESSES=0`, the Kubernetes default).

use std::time::Duration;

use bookkeeper_core::event::actor;
use bookkeeper_core::people::{Directory, Right};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde_json::{json, Value};

/// How Review-E checks presses.
#[derive(Clone)]
pub struct PressConfig {
    /// The Discord application's public key (`DISCORD_PUBLIC_KEY`, hex).
    pub public_key: VerifyingKey,
    /// The server (`DISCORD_GUILD_ID`).
    pub guild_id: String,
    /// The reviewer role (`DISCORD_REVIEWER_ROLE_ID`).
    pub reviewer_role: String,
    /// The application, author of the review messages (`DISCORD_APPLICATION_ID`).
    pub application_id: Option<String>,
    /// How old a press may be (`REVIEW_E_PRESS_WINDOW_SECS`, default 300).
    pub window: Duration,
}

impl std::fmt::Debug for PressConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PressConfig")
            .field("guild_id", &self.guild_id)
            .field("reviewer_role", &self.reviewer_role)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

/// Parses a hex public key.
pub fn public_key(hex: &str) -> Result<VerifyingKey, String> {
    let bytes = hex_bytes::<32>(hex.trim()).ok_or("DISCORD_PUBLIC_KEY must be 64 hex digits")?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| "DISCORD_PUBLIC_KEY is not a valid Ed25519 public key".to_string())
}

fn hex_bytes<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != N * 2 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Approve or reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// Approve.
    Approve,
    /// Reject.
    Reject,
}

/// A press, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Press {
    /// Approve or reject.
    pub verb: Verb,
    /// The proposal's correlation id.
    pub correlation_id: String,
    /// Discord's interaction id (used once).
    pub interaction_id: String,
    /// Who pressed, at Discord.
    pub discord_user: String,
    /// The person that is, by the directory.
    pub reviewer: String,
    /// Proven by Discord's signature (true), or asserted by Book-E (false).
    pub proven: bool,
    /// When Discord says it was pressed (unix seconds; signed), for proven presses.
    pub pressed_at: Option<i64>,
}

impl Press {
    /// What the decision records about how it was made.
    pub fn via(&self) -> Value {
        if self.proven {
            json!({"door": "discord", "interaction_id": self.interaction_id, "discord_user": self.discord_user,
                   "proven": true, "pressed_at": self.pressed_at})
        } else {
            json!({"door": "discord", "interaction_id": self.interaction_id, "discord_user": self.discord_user,
                   "proven": false, "asserted_by": actor::BOOK_E})
        }
    }
}

/// Why a press was refused. Nothing was decided.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PressError {
    /// Not signed by Discord (forged or altered).
    #[error("the press is not signed by Discord")]
    BadSignature,
    /// Outside the timestamp window.
    #[error("the press is too old (or from the future)")]
    Stale,
    /// Not a review button press, or malformed.
    #[error("not a review press: {0}")]
    NotAPress(String),
    /// From another server, or the presser lacks the reviewer role.
    #[error("only reviewers of this server may decide")]
    NotAReviewer,
    /// The directory knows no reviewer with this Discord id.
    #[error("no person with the review right has Discord id {0} in the people directory")]
    UnknownPerson(String),
    /// The message the button was on does not name the proposal.
    #[error("the button's message does not name proposal `{0}`")]
    MessageMismatch(String),
    /// Presses asserted by Book-E are forbidden here.
    #[error("presses asserted by Book-E are not accepted here; configure Discord's interactions endpoint")]
    AssertedForbidden,
}

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(*k))?.as_str()
}

/// Checks a forwarded press: the signature over timestamp and body, the window,
/// and what the signed payload says. `now` is unix seconds.
pub fn verify_signed(
    config: &PressConfig,
    people: &Directory,
    signature_hex: &str,
    timestamp: &str,
    body: &[u8],
    now: i64,
) -> Result<Press, PressError> {
    let signature = hex_bytes::<64>(signature_hex.trim()).ok_or(PressError::BadSignature)?;
    let message = [timestamp.as_bytes(), body].concat();
    config.public_key.verify(&message, &Signature::from_bytes(&signature)).map_err(|_| PressError::BadSignature)?;
    let at: i64 = timestamp.trim().parse().map_err(|_| PressError::Stale)?;
    if (now - at).unsigned_abs() > config.window.as_secs() {
        return Err(PressError::Stale);
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| PressError::NotAPress(e.to_string()))?;
    if v.get("type").and_then(Value::as_u64) != Some(3) {
        return Err(PressError::NotAPress("not a button press".into()));
    }
    if text(&v, &["guild_id"]) != Some(config.guild_id.as_str()) {
        return Err(PressError::NotAReviewer);
    }
    let roles = v.get("member").and_then(|m| m.get("roles")).and_then(Value::as_array);
    if !roles.is_some_and(|r| r.iter().any(|r| r.as_str() == Some(config.reviewer_role.as_str()))) {
        return Err(PressError::NotAReviewer);
    }
    let custom_id = text(&v, &["data", "custom_id"]).ok_or_else(|| PressError::NotAPress("no custom id".into()))?;
    let (verb, correlation_id) = parse_custom_id(custom_id)?;
    // The message the button was on: ours, naming this proposal, with this button.
    let message = v.get("message").ok_or_else(|| PressError::MessageMismatch(correlation_id.clone()))?;
    if let Some(app) = &config.application_id {
        if text(message, &["author", "id"]) != Some(app.as_str()) {
            return Err(PressError::MessageMismatch(correlation_id));
        }
    }
    let names_it = text(message, &["content"]).is_some_and(|c| c.contains(&format!("`{correlation_id}`")));
    let has_button = message.get("components").and_then(Value::as_array).is_some_and(|rows| {
        rows.iter()
            .filter_map(|r| r.get("components").and_then(Value::as_array))
            .flatten()
            .any(|b| b.get("custom_id").and_then(Value::as_str) == Some(custom_id))
    });
    if !names_it || !has_button {
        return Err(PressError::MessageMismatch(correlation_id));
    }
    let interaction_id = text(&v, &["id"]).ok_or_else(|| PressError::NotAPress("no interaction id".into()))?;
    let discord_user = text(&v, &["member", "user", "id"]).ok_or_else(|| PressError::NotAPress("no user".into()))?;
    let reviewer = reviewer_for(people, discord_user)?;
    Ok(Press {
        verb,
        correlation_id,
        interaction_id: interaction_id.to_string(),
        discord_user: discord_user.to_string(),
        reviewer,
        proven: true,
        pressed_at: Some(at),
    })
}

/// A press Book-E asserts it saw over the gateway (no proof from Discord).
pub fn asserted(
    people: &Directory,
    allowed: bool,
    custom_id: &str,
    interaction_id: &str,
    discord_user: &str,
) -> Result<Press, PressError> {
    if !allowed {
        return Err(PressError::AssertedForbidden);
    }
    let (verb, correlation_id) = parse_custom_id(custom_id)?;
    let reviewer = reviewer_for(people, discord_user)?;
    Ok(Press {
        verb,
        correlation_id,
        interaction_id: interaction_id.to_string(),
        discord_user: discord_user.to_string(),
        reviewer,
        proven: false,
        pressed_at: None,
    })
}

fn reviewer_for(people: &Directory, discord_user: &str) -> Result<String, PressError> {
    people
        .by_discord(discord_user)
        .filter(|p| p.may(Right::Review))
        .map(|p| p.id.clone())
        .ok_or_else(|| PressError::UnknownPerson(discord_user.to_string()))
}

fn parse_custom_id(custom_id: &str) -> Result<(Verb, String), PressError> {
    let mut parts = custom_id.splitn(3, ':');
    let (Some("bk"), Some(verb), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(PressError::NotAPress(format!("unknown button `{custom_id}`")));
    };
    let verb = match verb {
        "approve" => Verb::Approve,
        "reject" => Verb::Reject,
        _ => return Err(PressError::NotAPress(format!("unknown button `{custom_id}`"))),
    };
    if id.is_empty() {
        return Err(PressError::NotAPress("no proposal id".into()));
    }
    Ok((verb, id.to_string()))
}
