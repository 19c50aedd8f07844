//! The HTTP edge every Bookkeeper service shares, so that the same question has
//! the same answer in each of them:
//!
//! - who is calling: [`auth`] (the bearer token, compared in constant time);
//! - what an error looks like: [`ApiError`], one JSON shape ([`ErrorBody`]) that
//!   every service answers and every client reads;
//! - how a JSON body is read: [`ApiJson`], which answers a bad body with that shape;
//! - what a request leaves in the log: [`trace`], a span per request carrying the
//!   correlation id;
//! - how a service is probed: [`Ops`], `/healthz`, `/readyz` and `/metrics`;
//! - what crosses the wire between a server and its clients: [`wire`], and the one
//!   client of the Accounting API's reads, [`accounting`].
//!
//! A service builds its own routes, merges [`Ops::router`], and finishes with
//! [`edge`].

pub mod accounting;
pub mod auth;
pub mod error;
pub mod json;
pub mod ops;
pub mod trace;
pub mod wire;

pub use error::{ApiError, ErrorBody};
pub use json::ApiJson;
pub use ops::Ops;

use axum::Router;

/// Finishes a service's router: unknown routes answer 404 in the one error shape,
/// and every request is traced (see [`trace`]).
pub fn edge(router: Router, service: &'static str) -> Router {
    router
        .fallback(move || async move { ApiError::not_found(format!("no such route on {service}")) })
        .layer(trace::layer(service))
}
