//! A server made of nothing but a document: every defined operation answers
//! with its first success status and a body generated from the document
//! (maximal or minimal). Contract tests point our real clients at it: a client
//! that decodes both accepts whatever the vendor promises. Every request is
//! checked as the fakes check them; what is wrong is kept for the test to read.

use std::sync::{Arc, Mutex};

use axum::body::{to_bytes, Body};
use axum::http::{HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::{Checked, Fullness, Vendor, Violations};

/// What the generated server saw.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Every request, as `METHOD template`.
    pub calls: Arc<Mutex<Vec<String>>>,
    /// What was wrong with them.
    pub violations: Arc<Mutex<Violations>>,
}

impl Seen {
    /// The operations called so far.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The contract violations so far.
    pub fn violations(&self) -> Violations {
        self.violations.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A router answering `vendor`'s document with generated bodies.
pub fn router(vendor: Vendor, fullness: Fullness, seen: Seen) -> Router {
    Router::new().fallback(move |request: Request<Body>| answer(vendor, fullness, seen.clone(), request))
}

async fn answer(vendor: Vendor, fullness: Fullness, seen: Seen, request: Request<Body>) -> Response {
    let doc = vendor.document();
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, 32 << 20).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let path = parts.uri.path().to_string();
    let op = match doc.check_request(&parts.method, &path, parts.uri.query(), &parts.headers, &bytes) {
        Checked::Conforms(op) => op,
        Checked::OutsideTheApi => {
            seen.violations.lock().unwrap_or_else(|p| p.into_inner()).push(format!("{path}: outside the API"));
            return StatusCode::NOT_FOUND.into_response();
        }
        Checked::Violates(v) => {
            seen.violations.lock().unwrap_or_else(|p| p.into_inner()).extend(v);
            return (StatusCode::BAD_REQUEST, "contract violation").into_response();
        }
    };
    if op.needs_credentials() && !parts.headers.contains_key(axum::http::header::AUTHORIZATION) {
        seen.violations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(format!("{}: sent without credentials", op.name()));
        return StatusCode::UNAUTHORIZED.into_response();
    }
    seen.calls.lock().unwrap_or_else(|p| p.into_inner()).push(op.name());
    let Some(answer) = op.answers.iter().filter(|a| a.status.starts_with('2')).min_by(|a, b| a.status.cmp(&b.status))
    else {
        return StatusCode::NO_CONTENT.into_response();
    };
    let status = answer.status.parse::<u16>().ok().and_then(|s| StatusCode::from_u16(s).ok()).unwrap_or(StatusCode::OK);
    let mut response = match doc.example(op, &answer.status, fullness) {
        Some(body) => (status, axum::Json(body)).into_response(),
        None => status.into_response(),
    };
    for (name, schema) in &answer.headers {
        let value = if name == "location" {
            // The id at the end (fiken.md §6; see leeway::UNDOCUMENTED).
            Some(format!(
                "http://{}{path}/4242",
                parts.headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("localhost")
            ))
        } else if fullness == Fullness::Maximal {
            let generated = crate::examples::Generator { root: &doc.response_root, fullness }.generate(schema);
            match generated {
                serde_json::Value::String(s) => Some(s),
                serde_json::Value::Null => None,
                other => Some(other.to_string()),
            }
        } else {
            None
        };
        if let Some(v) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            if let Ok(n) = axum::http::HeaderName::from_bytes(name.as_bytes()) {
                response.headers_mut().insert(n, v);
            }
        }
    }
    response
}
