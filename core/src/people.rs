//! The people directory: one identity per person, whatever door they come through.
//!
//! Each person has a canonical id (the log records `user:<id>`), their identities
//! at every door (a Discord user id, a bearer token per door), earlier names the
//! log may already hold (`aliases`: a token name, a Discord id written before the
//! directory existed), and their rights (propose, review, publish policies).
//!
//! Tokens are kept as SHA-256 hashes, one per person and door: a service holding
//! the directory holds no credential that another service accepts, and a token is
//! checked in constant time. The file is JSON (`BOOKKEEPER_PEOPLE`):
//!
//! ```json
//! {"people": [
//!   {"id": "kari", "name": "Kari Nordmann", "rights": ["propose", "review", "publish"],
//!    "discord": ["412345678901234567"], "aliases": ["reviewer"],
//!    "tokens": {"review-e": "sha256:<hex of the token>", "book-e": "sha256:<hex>"}}
//! ]}
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A way into Bookkeeper, each with its own tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Door {
    /// Book-E's HTTP door and `bookkeeper chat`.
    BookE,
    /// Review-E's HTTP API (reviews, policies) and `bookkeeper policy push|list`.
    ReviewE,
    /// The review desk (web).
    Desk,
}

impl Door {
    /// The door's name in the directory.
    pub fn name(self) -> &'static str {
        match self {
            Door::BookE => "book-e",
            Door::ReviewE => "review-e",
            Door::Desk => "desk",
        }
    }
}

/// What a person may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Right {
    /// Ask Book-E for an action.
    Propose,
    /// Approve or reject proposals.
    Review,
    /// Publish and retire policies.
    Publish,
}

/// A token as the directory keeps it: `sha256:<hex>`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// The hash of a token.
    pub fn of(token: &str) -> TokenHash {
        TokenHash(Sha256::digest(token.as_bytes()).into())
    }

    /// Whether `token` hashes to this, in constant time.
    pub fn matches(&self, token: &str) -> bool {
        constant_time_eq(&Sha256::digest(token.as_bytes()), &self.0)
    }
}

impl TryFrom<String> for TokenHash {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        let hex = s.strip_prefix("sha256:").ok_or("a token hash is written `sha256:<64 hex digits>`")?;
        if hex.len() != 64 {
            return Err("a token hash is written `sha256:<64 hex digits>`".into());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                .map_err(|_| "a token hash is written `sha256:<64 hex digits>`".to_string())?;
        }
        Ok(TokenHash(out))
    }
}

impl From<TokenHash> for String {
    fn from(h: TokenHash) -> String {
        let hex: String = h.0.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:…")
    }
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether a presented bearer token equals the expected one, in constant time
/// (compared as hashes, so not even the length leaks).
pub fn token_matches(expected: &str, presented: &str) -> bool {
    TokenHash::of(expected).matches(presented)
}

/// One person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    /// The canonical id: the log records `user:<id>`.
    pub id: String,
    /// How to address them.
    #[serde(default)]
    pub name: String,
    /// What they may do.
    #[serde(default)]
    pub rights: BTreeSet<Right>,
    /// Their Discord user ids.
    #[serde(default)]
    pub discord: Vec<String>,
    /// Earlier ids the log may hold for them (a token's name, a Discord id).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// A token hash per door.
    #[serde(default)]
    pub tokens: BTreeMap<Door, TokenHash>,
}

impl Person {
    /// A person with no rights and no identities yet.
    pub fn new(id: impl Into<String>) -> Person {
        let id = id.into();
        Person {
            name: id.clone(),
            id,
            rights: BTreeSet::new(),
            discord: Vec::new(),
            aliases: Vec::new(),
            tokens: BTreeMap::new(),
        }
    }

    /// Grants a right.
    pub fn may_also(mut self, right: Right) -> Person {
        self.rights.insert(right);
        self
    }

    /// Gives them a token at a door (kept as its hash).
    pub fn with_token(mut self, door: Door, token: &str) -> Person {
        self.tokens.insert(door, TokenHash::of(token));
        self
    }

    /// Adds a Discord user id.
    pub fn with_discord(mut self, discord_id: impl Into<String>) -> Person {
        self.discord.push(discord_id.into());
        self
    }

    /// The actor name of this person in the log: `user:<id>`.
    pub fn actor(&self) -> String {
        format!("user:{}", self.id)
    }

    /// Whether they hold a right.
    pub fn may(&self, right: Right) -> bool {
        self.rights.contains(&right)
    }
}

/// Why a directory cannot be used. Never contains a token.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The file could not be read.
    #[error("the people directory {path} cannot be read: {source}")]
    Read {
        /// The file.
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a directory.
    #[error("the people directory {path} is not valid: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    people: Vec<Person>,
}

/// Everyone who may use Bookkeeper, and how each is known at every door.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directory {
    people: Vec<Person>,
}

impl Directory {
    /// A directory of these people; refuses duplicate ids or identities.
    pub fn new(people: Vec<Person>) -> Result<Directory, String> {
        let mut ids = BTreeSet::new();
        let mut known = BTreeMap::new();
        for p in &people {
            let valid = !p.id.is_empty() && p.id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !valid {
                return Err(format!("`{}` is not a person id (letters, digits, `-`, `_`, `.`)", p.id));
            }
            if !ids.insert(p.id.clone()) {
                return Err(format!("the person `{}` is listed twice", p.id));
            }
            // One name space for every earlier name: a Discord id of one person may
            // not be another's alias (lookups would pick one and hide the other).
            let names = p.discord.iter().map(|d| ("discord", d)).chain(p.aliases.iter().map(|a| ("alias", a)));
            for (kind, name) in names {
                if let Some(first) = known.insert(name.clone(), p.id.clone()) {
                    return Err(format!("{kind} {name} belongs to both `{first}` and `{}`", p.id));
                }
            }
        }
        // A person's id may not be someone else's earlier name: lookups try ids
        // first, and the other person would vanish behind it.
        for p in &people {
            if let Some(owner) = known.get(&p.id).filter(|owner| **owner != p.id) {
                return Err(format!("`{}` is a person's id and also an earlier name of `{owner}`", p.id));
            }
        }
        // One token opens one person's door: two people may not share one.
        for (i, a) in people.iter().enumerate() {
            for b in &people[i + 1..] {
                for (door, h) in &a.tokens {
                    if b.tokens.get(door) == Some(h) {
                        return Err(format!("`{}` and `{}` have the same {} token", a.id, b.id, door.name()));
                    }
                }
            }
        }
        Ok(Directory { people })
    }

    /// Reads the JSON file.
    pub fn load(path: &Path) -> Result<Directory, DirectoryError> {
        let shown = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|source| DirectoryError::Read { path: shown.clone(), source })?;
        let file: File = serde_json::from_str(&text)
            .map_err(|e| DirectoryError::Invalid { path: shown.clone(), message: e.to_string() })?;
        Directory::new(file.people).map_err(|message| DirectoryError::Invalid { path: shown, message })
    }

    /// Writes the JSON file (token hashes only).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let text =
            serde_json::to_string_pretty(&File { people: self.people.clone() }).map_err(std::io::Error::other)?;
        std::fs::write(path, text)
    }

    /// Everyone.
    pub fn people(&self) -> &[Person] {
        &self.people
    }

    /// Whether nobody is listed.
    pub fn is_empty(&self) -> bool {
        self.people.is_empty()
    }

    /// Adds people (today's environment variables, mapped); refuses clashes.
    pub fn with(mut self, more: Vec<Person>) -> Result<Directory, String> {
        for p in more {
            match self.people.iter_mut().find(|q| q.id == p.id) {
                Some(q) => {
                    q.rights.extend(p.rights);
                    q.discord.extend(p.discord);
                    q.aliases.extend(p.aliases);
                    for (door, h) in p.tokens {
                        q.tokens.entry(door).or_insert(h);
                    }
                }
                None => self.people.push(p),
            }
        }
        Directory::new(self.people)
    }

    /// The person by canonical id.
    pub fn person(&self, id: &str) -> Option<&Person> {
        self.people.iter().find(|p| p.id == id)
    }

    /// Who presents this token at this door, in constant time per person.
    pub fn by_token(&self, door: Door, token: &str) -> Option<&Person> {
        let presented = TokenHash::of(token);
        // Compare with every person's hash, so the time does not say who matched.
        let mut found = None;
        for p in &self.people {
            if p.tokens.get(&door).is_some_and(|h| constant_time_eq(&h.0, &presented.0)) {
                found = Some(p);
            }
        }
        found
    }

    /// Who has this Discord user id.
    pub fn by_discord(&self, discord_id: &str) -> Option<&Person> {
        self.people.iter().find(|p| p.discord.iter().any(|d| d == discord_id))
    }

    /// The person an actor (`user:<x>`) or a bare id in the log stands for: their
    /// canonical id, one of their Discord ids, or one of their aliases.
    pub fn resolve(&self, actor: &str) -> Option<&Person> {
        let x = actor.strip_prefix("user:").unwrap_or(actor);
        self.person(x)
            .or_else(|| self.by_discord(x))
            .or_else(|| self.people.iter().find(|p| p.aliases.iter().any(|a| a == x)))
    }

    /// The canonical actor for an actor in the log: `user:<id>` of the person it
    /// stands for, or the actor itself when the directory does not know it.
    pub fn canonical(&self, actor: &str) -> String {
        match self.resolve(actor) {
            Some(p) => p.actor(),
            None if actor.starts_with("user:") => actor.to_string(),
            None => format!("user:{actor}"),
        }
    }

    /// Whether two actors are the same person (by canonical id).
    pub fn same_person(&self, a: &str, b: &str) -> bool {
        self.canonical(a) == self.canonical(b)
    }
}

/// One of today's `token:name` variables, mapped onto the directory for a release.
#[derive(Debug, Clone, Copy)]
pub struct LegacyTokens {
    /// The variable, e.g. `REVIEW_E_REVIEWER_TOKENS`.
    pub var: &'static str,
    /// The door its tokens open.
    pub door: Door,
    /// The right its people get.
    pub right: Right,
}

/// The directory from the settings: the file `BOOKKEEPER_PEOPLE` names, plus
/// today's `token:name` settings mapped onto it (each `name` a person). Returns
/// the warnings to log: each legacy setting in use names its replacement.
pub fn from_settings(
    settings: &crate::config::Settings,
    legacy: &[LegacyTokens],
) -> Result<(Directory, Vec<String>), String> {
    let mut directory = match settings.text("BOOKKEEPER_PEOPLE") {
        Some(path) => Directory::load(Path::new(&path)).map_err(|e| e.to_string())?,
        None => Directory::default(),
    };
    let mut warnings = Vec::new();
    for l in legacy {
        let pairs = settings.tokens(l.var).map_err(|e| e.to_string())?;
        if pairs.is_empty() {
            continue;
        }
        warnings.push(format!(
            "{} is deprecated and goes in the next release: list these people in the people directory \
             (BOOKKEEPER_PEOPLE) with a `{}` token hash and the `{}` right",
            l.var,
            l.door.name(),
            serde_json::to_value(l.right).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
        ));
        let people = pairs.iter().map(|(token, name)| from_legacy_token(name, l.door, token, l.right)).collect();
        directory = directory.with(people).map_err(|e| format!("{}: {e}", l.var))?;
    }
    Ok((directory, warnings))
}

/// A person mapped from one of today's `token:name` environment variables.
pub fn from_legacy_token(name: &str, door: Door, token: &str, right: Right) -> Person {
    Person {
        id: name.to_string(),
        name: name.to_string(),
        rights: BTreeSet::from([right]),
        discord: Vec::new(),
        aliases: Vec::new(),
        tokens: BTreeMap::from([(door, TokenHash::of(token))]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kari() -> Person {
        Person {
            id: "kari".into(),
            name: "Kari".into(),
            rights: BTreeSet::from([Right::Review, Right::Propose]),
            discord: vec!["412345678901234567".into()],
            aliases: vec!["reviewer".into()],
            tokens: BTreeMap::from([(Door::ReviewE, TokenHash::of("kari-review-token"))]),
        }
    }

    #[test]
    fn one_person_under_every_name_the_log_holds() {
        let d = Directory::new(vec![kari()]).unwrap();
        for actor in ["user:kari", "user:412345678901234567", "user:reviewer", "kari"] {
            assert_eq!(d.canonical(actor), "user:kari", "{actor}");
        }
        assert!(d.same_person("user:412345678901234567", "user:reviewer"));
        assert_eq!(d.canonical("user:ola"), "user:ola");
    }

    #[test]
    fn tokens_open_only_their_own_door_and_are_kept_as_hashes() {
        let d = Directory::new(vec![kari()]).unwrap();
        assert_eq!(d.by_token(Door::ReviewE, "kari-review-token").unwrap().id, "kari");
        assert!(d.by_token(Door::BookE, "kari-review-token").is_none());
        assert!(d.by_token(Door::ReviewE, "kari-review-tokeN").is_none());
        let file = serde_json::to_string(&File { people: vec![kari()] }).unwrap();
        assert!(!file.contains("kari-review-token"), "{file}");
        assert!(file.contains("sha256:"), "{file}");
        assert!(!format!("{:?}", kari()).contains(&String::from(TokenHash::of("kari-review-token"))[7..]));
    }

    #[test]
    fn clashes_and_bad_files_are_refused() {
        let mut twin = kari();
        twin.id = "kari2".into();
        twin.aliases.clear();
        assert!(Directory::new(vec![kari(), twin.clone()]).unwrap_err().contains("discord"));
        twin.discord.clear();
        assert!(Directory::new(vec![kari(), twin]).unwrap_err().contains("same review-e token"));
        assert!(Directory::new(vec![Person { id: "a b".into(), ..kari() }]).is_err());
        assert!(serde_json::from_str::<File>(r#"{"people": [{"id": "x", "tokens": {"review-e": "plain"}}]}"#).is_err());
        assert!(serde_json::from_str::<File>(r#"{"people": [{"id": "x", "colour": "red"}]}"#).is_err());
    }

    #[test]
    fn constant_time_comparison_is_still_a_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(token_matches("t0k3n", "t0k3n"));
        assert!(!token_matches("t0k3n", "t0k3m"));
    }
}
