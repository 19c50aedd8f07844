//! One error type, one JSON shape.
//!
//! Every service answers an error as
//! `{"error": "<what went wrong>", "code": <HTTP status>, "retry_after_seconds": n?}`,
//! with `Retry-After` when it is worth trying again. `message` repeats `error`
//! for the clients of Review-E's earlier releases (which read `message`); new
//! clients read `error` through [`ErrorBody`].

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bookkeeper_core::StoreError;
use serde::{Deserialize, Serialize};

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    /// An answer of `status` saying `message` to the caller.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), retry_after: None }
    }

    /// Bad request (400): the request itself is wrong.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// Unauthorized (401): no credentials, or credentials this service does not know.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }

    /// Forbidden (403): known credentials without the right asked for.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }

    /// Not found (404).
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// Unavailable (503, `Retry-After: 5`): something this service needs is down for now.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message).retry_in(5)
    }

    /// Internal error (500): the detail goes to this service's log, never to the
    /// caller (it may name a table, a path or a query).
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %detail, "request failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error; see the service's log")
    }

    /// Asks the caller to try again in `seconds` (at least one).
    pub fn retry_in(mut self, seconds: u64) -> ApiError {
        self.retry_after = Some(seconds.max(1));
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// What the caller is told.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.message.clone(),
            code: self.status.as_u16(),
            retry_after_seconds: self.retry_after,
            message: Some(self.message),
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::of_store(&e)
    }
}

impl ApiError {
    /// The answer to a failed read or append: 503 when the log is down for now,
    /// else 500 (the detail only in the log).
    pub fn of_store(e: &StoreError) -> ApiError {
        if e.is_retryable() {
            tracing::warn!(error = %e, "the log is unavailable");
            ApiError::unavailable("the log is unavailable; try again shortly")
        } else {
            ApiError::internal(e)
        }
    }
}

/// The longest error text a client repeats.
pub const MAX_ERROR_CHARS: usize = 300;

/// The error body on the wire, for servers and the clients that read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    #[serde(default)]
    pub error: String,
    /// The HTTP status again, for logs that keep only the body.
    #[serde(default)]
    pub code: u16,
    /// When it is worth trying again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
    /// The same text as `error`. Deprecated: kept for Review-E's clients from
    /// before the shared shape, which read `message`; read `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl ErrorBody {
    /// What an error answer says, from its body, whatever release sent it: the
    /// shared shape, Review-E's earlier `{"code", "message"}`, or plain text.
    ///
    /// The text is the server's word, shown to people (a terminal, a Discord
    /// message): at most [`MAX_ERROR_CHARS`] characters, control characters blanked.
    pub fn text_of(status: u16, body: &[u8]) -> String {
        let said = match serde_json::from_slice::<ErrorBody>(body) {
            Ok(parsed) if !parsed.error.is_empty() => parsed.error,
            Ok(parsed) if parsed.message.as_ref().is_some_and(|m| !m.is_empty()) => parsed.message.unwrap_or_default(),
            // A whole HTML page from a proxy, or nothing.
            _ => String::from_utf8_lossy(body).trim().to_string(),
        };
        if said.is_empty() || said.starts_with('{') {
            return format!("answered {status}");
        }
        bookkeeper_core::subscription::safe_text(&said, MAX_ERROR_CHARS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_release_s_error_body_reads_as_its_text() {
        let now = br#"{"error":"no such proposal","code":404,"message":"no such proposal"}"#;
        assert_eq!(ErrorBody::text_of(404, now), "no such proposal");
        assert_eq!(ErrorBody::text_of(409, br#"{"code":409,"message":"already decided"}"#), "already decided");
        assert_eq!(ErrorBody::text_of(502, b"Bad gateway"), "Bad gateway");
        assert_eq!(ErrorBody::text_of(500, b""), "answered 500");
        assert_eq!(ErrorBody::text_of(500, &[b'x'; 10_000]).chars().count(), MAX_ERROR_CHARS + 1, "cut, with …");
        // A hostile server's error, however it is sent: bounded, no terminal escapes.
        let long = serde_json::json!({"error": format!("\u{1b}[2Jwiped{}", "y".repeat(5000))}).to_string();
        let shown = ErrorBody::text_of(409, long.as_bytes());
        assert!(shown.chars().count() <= MAX_ERROR_CHARS + 1 && !shown.contains('\u{1b}'), "{shown}");
    }
}
