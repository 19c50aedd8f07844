//! The JSON extractor: a body that is not what a route expects is answered in the
//! one error shape (axum's own extractor answers in plain text).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::ApiError;

/// A JSON request body. The content type is not demanded (callers using `curl -d`
/// keep working); an empty body reads as `{}`, so a route whose fields are all
/// optional accepts none. The body limit is the route's `DefaultBodyLimit`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), format!("the request body could not be read: {}", e.body_text())))?;
        ApiJson::parse(&bytes)
    }
}

impl<T: DeserializeOwned> ApiJson<T> {
    /// Reads a body already taken as bytes, the same way: for a handler that checks
    /// who is calling first, so a caller without credentials learns nothing of
    /// what the route takes.
    pub fn parse(bytes: &[u8]) -> Result<ApiJson<T>, ApiError> {
        let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { bytes };
        serde_json::from_slice(text)
            .map(ApiJson)
            .map_err(|e| ApiError::bad_request(format!("the request body is not what this route takes: {e}")))
    }
}
