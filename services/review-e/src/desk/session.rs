//! Who is signed in to the desk: session cookies, sign-in links and CSRF tokens,
//! all signed with one key (`REVIEW_E_DESK_SESSION_KEY`), so every replica that
//! holds the key accepts what another made.
//!
//! A signed value is `v1.<base64url(JSON)>.<base64url(HMAC-SHA256)>`, and each
//! kind is signed under its own label, so a sign-in link can never be presented
//! as a session or a session as a CSRF token. The signature alone is not enough
//! for a session: it must also have begun in the log (`DeskSessionStarted`, which
//! only Review-E may append) and not have ended there (`DeskSessionEnded`), so a
//! sign-out holds on every replica and a one-time link is spent everywhere at once.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The shortest key accepted.
pub const MIN_KEY_CHARS: usize = 32;

/// How long a sign-in link can be used, from when it was made.
pub const LINK_LIFETIME_SECS: i64 = 15 * 60;

/// The key that signs sessions, links and CSRF tokens. Its `Debug` hides it.
#[derive(Clone)]
pub struct SessionKey(SecretString);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(…)")
    }
}

/// Why a key cannot be used. Never contains the key.
#[derive(Debug, thiserror::Error)]
#[error("REVIEW_E_DESK_SESSION_KEY must be at least {MIN_KEY_CHARS} characters")]
pub struct WeakKey;

impl SessionKey {
    /// A configured key.
    pub fn new(key: SecretString) -> Result<SessionKey, WeakKey> {
        if key.expose_secret().chars().count() < MIN_KEY_CHARS {
            return Err(WeakKey);
        }
        Ok(SessionKey(key))
    }

    /// A key made now, for one process: its sessions end with it.
    pub fn ephemeral() -> SessionKey {
        let key = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        SessionKey(SecretString::new(key))
    }

    fn mac(&self, label: &str, data: &[u8]) -> Hmac<Sha256> {
        // HMAC takes a key of any length; this cannot fail.
        let mut mac = Hmac::<Sha256>::new_from_slice(self.0.expose_secret().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
        mac.update(label.as_bytes());
        mac.update(b"\0");
        mac.update(data);
        mac
    }

    fn sign<T: Serialize>(&self, label: &str, value: &T) -> String {
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap_or_default());
        let tag = URL_SAFE_NO_PAD.encode(self.mac(label, body.as_bytes()).finalize().into_bytes());
        format!("v1.{body}.{tag}")
    }

    fn open<T: DeserializeOwned>(&self, label: &str, signed: &str) -> Option<T> {
        // Bounded before any work: a cookie or query parameter is the caller's.
        if signed.len() > 2048 {
            return None;
        }
        let mut parts = signed.split('.');
        let (Some("v1"), Some(body), Some(tag), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return None;
        };
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        // Constant time.
        self.mac(label, body.as_bytes()).verify_slice(&tag).ok()?;
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()
    }

    /// A session cookie's value.
    pub fn session_cookie(&self, session: &Session) -> String {
        self.sign("session", session)
    }

    /// The session a cookie's value stands for, if this key signed it and it has
    /// not expired at `now` (Unix seconds). Whether it began and has not ended is
    /// the log's to say.
    pub fn session(&self, cookie: &str, now: i64) -> Option<Session> {
        self.open::<Session>("session", cookie).filter(|s| s.expires_at > now)
    }

    /// A one-time sign-in link's token for `person`, valid for
    /// [`LINK_LIFETIME_SECS`] from `now`, and what it carries. It signs in only
    /// once recorded as issued ([`super::issue_sign_in_link`]).
    pub fn sign_in_link(&self, person: &str, now: i64) -> (String, Link) {
        let link = Link {
            person: person.to_string(),
            nonce: uuid::Uuid::new_v4().simple().to_string(),
            expires_at: now + LINK_LIFETIME_SECS,
        };
        (self.sign("link", &link), link)
    }

    /// The link a token stands for, if this key signed it and it is still valid.
    pub fn link(&self, token: &str, now: i64) -> Option<Link> {
        self.open::<Link>("link", token).filter(|l| l.expires_at > now)
    }

    /// The CSRF token of a session: every form of the session carries it, and
    /// only a page of this origin can read it.
    pub fn csrf(&self, session_id: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.mac("csrf", session_id.as_bytes()).finalize().into_bytes())
    }

    /// Whether `presented` is the CSRF token of `session_id`, in constant time.
    pub fn csrf_matches(&self, session_id: &str, presented: &str) -> bool {
        let Ok(tag) = URL_SAFE_NO_PAD.decode(presented) else { return false };
        self.mac("csrf", session_id.as_bytes()).verify_slice(&tag).is_ok()
    }
}

/// A signed-in person, as the cookie carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The session's id: its story in the log is `desk-session:<id>`.
    pub id: String,
    /// The person's canonical id.
    pub person: String,
    /// When it ends (Unix seconds).
    pub expires_at: i64,
}

impl Session {
    /// The correlation id of the session's story.
    pub fn correlation(&self) -> String {
        correlation(&self.id)
    }
}

/// The correlation id of a session's story in the log.
pub fn correlation(session_id: &str) -> String {
    format!("desk-session:{session_id}")
}

/// A one-time sign-in link, as its token carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// Who it signs in.
    pub person: String,
    /// Becomes the session's id, so the log takes it once.
    pub nonce: String,
    /// Until when it can be used (Unix seconds).
    pub expires_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> SessionKey {
        SessionKey::new(SecretString::new(k.into())).unwrap()
    }

    #[test]
    fn a_session_opens_only_with_its_key_its_label_and_before_it_expires() {
        let k = key("an example key of at least 32 characters");
        let s = Session { id: "s1".into(), person: "kari".into(), expires_at: 1000 };
        let cookie = k.session_cookie(&s);
        assert_eq!(k.session(&cookie, 999), Some(s.clone()));
        assert_eq!(k.session(&cookie, 1000), None, "expired");
        assert_eq!(key("another key of at least 32 characters..").session(&cookie, 0), None);
        // Tampering with the person is caught.
        let forged = cookie.replacen(
            &cookie.split('.').nth(1).unwrap().to_string(),
            &URL_SAFE_NO_PAD.encode(br#"{"id":"s1","person":"ola","expires_at":1000}"#),
            1,
        );
        assert_eq!(k.session(&forged, 0), None);
        // A link is not a session, and a session is not a link.
        let (link, _) = k.sign_in_link("kari", 0);
        assert_eq!(k.session(&link, 0), None);
        assert!(k.link(&cookie, 0).is_none());
        assert_eq!(k.link(&link, LINK_LIFETIME_SECS - 1).map(|l| l.person), Some("kari".into()));
        assert!(k.link(&link, LINK_LIFETIME_SECS).is_none(), "a link lasts 15 minutes");
        for junk in ["", "v1", "v1..", "v2.a.b", "v1.a.b.c", &"x".repeat(5000)] {
            assert_eq!(k.session(junk, 0), None, "{junk}");
        }
    }

    #[test]
    fn csrf_tokens_belong_to_one_session() {
        let k = key("an example key of at least 32 characters");
        let t = k.csrf("s1");
        assert!(k.csrf_matches("s1", &t));
        assert!(!k.csrf_matches("s2", &t));
        assert!(!k.csrf_matches("s1", ""));
        assert!(!k.csrf_matches("s1", "not base64 !"));
    }

    #[test]
    fn short_keys_are_refused_without_being_repeated() {
        let err = SessionKey::new(SecretString::new("short-secret".into())).unwrap_err().to_string();
        assert!(err.contains("32") && !err.contains("short-secret"), "{err}");
        assert_eq!(format!("{:?}", key("an example key of at least 32 characters")), "SessionKey(…)");
    }
}
