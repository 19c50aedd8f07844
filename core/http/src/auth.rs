//! Who is calling: the bearer token, read and compared in one place.
//!
//! Two kinds of caller exist. A service token (the Accounting API's, the Cost
//! API's, Book-E's press token) stands for one caller and is compared in constant
//! time; a person's token is looked up in the people directory
//! ([`bookkeeper_core::people::Directory::by_token`]), which compares every
//! person's hash so the time taken does not say who matched.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::Router;
use bookkeeper_core::people::{token_matches, Directory, Door, Person, Right};
use secrecy::{ExposeSecret, SecretString};

use crate::ApiError;

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case,
/// RFC 7235), if there is one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// Whether the request presents `expected` (constant time). With no token
/// configured every caller passes: the service is open, which its configuration
/// says and `bookkeeper config` shows.
pub fn check_service_token(expected: Option<&SecretString>, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = expected else { return Ok(()) };
    match bearer(headers) {
        Some(presented) if token_matches(expected.expose_secret(), presented) => Ok(()),
        _ => Err(ApiError::unauthorized("a valid `Authorization: Bearer` token is required")),
    }
}

/// Guards every route of `router` with the service token (see [`check_service_token`]).
pub fn require_service_token<S>(router: Router<S>, token: Option<SecretString>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let token = Arc::new(token);
    router.layer(axum::middleware::from_fn(move |request: Request, next: Next| {
        let token = token.clone();
        async move {
            match check_service_token(token.as_ref().as_ref(), request.headers()) {
                Ok(()) => next.run(request).await,
                Err(e) => e.into_response(),
            }
        }
    }))
}

/// The person presenting a bearer token at `door`, if they hold `right`: 401
/// without a token, 403 (saying `refused`) with one that is nobody's or lacks the
/// right. Which of the two it was is not told apart, so a caller cannot probe
/// for valid tokens.
pub fn person<'a>(
    directory: &'a Directory,
    door: Door,
    right: Right,
    headers: &HeaderMap,
    refused: &str,
) -> Result<&'a Person, ApiError> {
    let token =
        bearer(headers).ok_or_else(|| ApiError::unauthorized("an `Authorization: Bearer` token is required"))?;
    directory.by_token(door, token).filter(|p| p.may(right)).ok_or_else(|| ApiError::forbidden(refused))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn the_token_is_read_from_a_bearer_header_only() {
        assert_eq!(bearer(&with("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&with("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(&with("Basic abc")), None);
        assert_eq!(bearer(&with("Bearer ")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn a_service_token_admits_exactly_its_holder() {
        let token = SecretString::new("0123456789abcdef-service".into());
        assert!(check_service_token(Some(&token), &with("Bearer 0123456789abcdef-service")).is_ok());
        let wrong = check_service_token(Some(&token), &with("Bearer 0123456789abcdef-servicf")).unwrap_err();
        assert_eq!(wrong.status(), 401);
        assert!(check_service_token(Some(&token), &HeaderMap::new()).is_err());
        assert!(check_service_token(None, &HeaderMap::new()).is_ok(), "no token configured: open");
    }
}
