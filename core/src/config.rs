//! Configuration shared by every deployment: the same names whether everything runs
//! in one process or each service in its own pod.

use std::fmt;

use crate::store::DEFAULT_DATABASE_URL;

/// A database URL that never prints its password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> Self {
        DatabaseUrl(url.into())
    }

    /// `DATABASE_URL`, or the embedded default (`sqlite://bookkeeper.db`).
    pub fn from_env() -> Self {
        match std::env::var("DATABASE_URL") {
            Ok(url) if !url.trim().is_empty() => DatabaseUrl(url),
            _ => DatabaseUrl(DEFAULT_DATABASE_URL.to_string()),
        }
    }

    /// The full URL, for connecting. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced by `***`, for logs and errors.
    pub fn redacted(&self) -> String {
        let url = &self.0;
        let Some(scheme_end) = url.find("://") else { return url.clone() };
        let rest = &url[scheme_end + 3..];
        let Some(at) = rest.find('@') else { return url.clone() };
        let creds = &rest[..at];
        match creds.find(':') {
            Some(colon) => format!("{}://{}:***{}", &url[..scheme_end], &creds[..colon], &rest[at..]),
            None => url.clone(),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// A configuration variable with a value that cannot be used. Names the
/// variable, never its value (it may be a secret).
#[derive(Debug, thiserror::Error)]
#[error("{var} {expected}")]
pub struct EnvError {
    /// The variable.
    pub var: String,
    /// What it should be.
    pub expected: &'static str,
}

/// A whole number from the environment, if the variable is set.
pub fn env_number(var: &str) -> Result<Option<u64>, EnvError> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => {
            v.trim().parse().map(Some).map_err(|_| EnvError { var: var.into(), expected: "must be a whole number" })
        }
        _ => Ok(None),
    }
}

/// A non-empty string from the environment, if the variable is set.
pub fn env_text(var: &str) -> Option<String> {
    std::env::var(var).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// Bearer tokens mapped to who they stand for, from `token:name,token:name`.
/// Tokens shorter than 16 characters are refused; errors never contain a token.
pub fn parse_tokens(var: &str, text: &str) -> Result<std::collections::HashMap<String, String>, TokenError> {
    text.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .enumerate()
        .map(|(i, pair)| match pair.trim().split_once(':') {
            Some((token, who)) if token.len() >= 16 && !who.is_empty() => Ok((token.to_string(), who.to_string())),
            _ => Err(TokenError { var: var.to_string(), entry: i + 1 }),
        })
        .collect()
}

/// [`parse_tokens`] of an environment variable (empty when unset).
pub fn env_tokens(var: &str) -> Result<std::collections::HashMap<String, String>, TokenError> {
    parse_tokens(var, &std::env::var(var).unwrap_or_default())
}

/// A malformed `token:name` list entry.
#[derive(Debug, thiserror::Error)]
#[error("{var}: entry {entry} must be `token:name` with a token of at least 16 characters")]
pub struct TokenError {
    /// The variable.
    pub var: String,
    /// Which entry, from 1.
    pub entry: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_print() {
        let url = DatabaseUrl::new("postgres://book_e:hunter2@db:5432/bookkeeper");
        assert_eq!(url.to_string(), "postgres://book_e:***@db:5432/bookkeeper");
        assert!(!format!("{url:?}").contains("hunter2"));
        assert_eq!(DatabaseUrl::new("sqlite://x.db").to_string(), "sqlite://x.db");
    }
}
