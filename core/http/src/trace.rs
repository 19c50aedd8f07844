//! Request tracing: one span per request, named for the service, carrying the
//! method, the path and the correlation id of the proposal it is about.
//!
//! The handler records the correlation id once it knows which proposal the
//! request is about ([`record_correlation_id`]). A caller's `X-Correlation-Id`
//! header (Book-E sends one when it forwards a press) is recorded apart, as
//! `claimed_correlation_id`: anyone may send it, before any credential is
//! checked, so it is never taken for the id. Everything a handler logs is inside
//! the span, so it carries both.

use axum::http::HeaderName;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::{DefaultOnFailure, DefaultOnRequest, DefaultOnResponse, MakeSpan, TraceLayer};
use tracing::{Level, Span};

/// The header a caller names the proposal's correlation id in.
pub const CORRELATION_ID_HEADER: HeaderName = HeaderName::from_static("x-correlation-id");

/// Makes the span of a request.
#[derive(Debug, Clone, Copy)]
pub struct RequestSpan {
    service: &'static str,
}

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &axum::http::Request<B>) -> Span {
        let span = tracing::info_span!(
            "http",
            service = self.service,
            method = %request.method(),
            path = %request.uri().path(),
            correlation_id = tracing::field::Empty,
            claimed_correlation_id = tracing::field::Empty,
        );
        if let Some(id) = request.headers().get(CORRELATION_ID_HEADER).and_then(|v| v.to_str().ok()) {
            // Bounded: the header is the caller's word and lands in every log line.
            span.record("claimed_correlation_id", id.chars().take(128).collect::<String>());
        }
        span
    }
}

/// The tracing layer of `service`: the span at INFO (so handlers' events carry
/// its fields), each request and response at DEBUG, server errors at WARN (a 503
/// while the database is away is expected; a real fault is logged at ERROR by
/// [`crate::ApiError::internal`]).
pub fn layer(service: &'static str) -> TraceLayer<SharedClassifier<ServerErrorsAsFailures>, RequestSpan> {
    TraceLayer::new_for_http()
        .make_span_with(RequestSpan { service })
        .on_request(DefaultOnRequest::new().level(Level::DEBUG))
        .on_response(DefaultOnResponse::new().level(Level::DEBUG))
        .on_failure(DefaultOnFailure::new().level(Level::WARN))
}

/// Records the correlation id of the proposal this request is about on its span.
pub fn record_correlation_id(id: &str) {
    Span::current().record("correlation_id", id);
}
