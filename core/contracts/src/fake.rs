//! The check every fake of a vendor runs on everything it handles: an axum
//! middleware that holds each request against the vendor's document before the
//! fake sees it, and each answer before the client does.
//!
//! A request the document would not take is refused (400) as the vendor
//! would, and remembered. An answer of the fake's own that the document does
//! not allow is a defect of the fake: it is remembered and replaced by a 500, so
//! no client is ever tested against an answer the vendor cannot give. Tests
//! read [`Log::all`]; in debug builds a fake whose log is not empty when it is
//! dropped fails the test that ran it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::{to_bytes, Body};
use axum::http::{Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{Checked, Vendor, Violations};

/// Where a fake serves the files its vendor hands out URLs to (attachment
/// downloads), outside the API's base path.
pub const FILES: &str = "/files/";

/// Largest body the check buffers (Fiken and Folio take 20 MiB documents).
const MAX_BODY: usize = 64 << 20;

/// The contract violations one fake has seen.
#[derive(Debug, Clone, Default)]
pub struct Log(Arc<Mutex<Violations>>);

impl Log {
    pub(crate) fn push(&self, v: Violations) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend(v);
    }

    /// Everything seen so far.
    pub fn all(&self) -> Violations {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Everything seen so far, forgetting it (a test that provokes a violation on purpose).
    pub fn take(&self) -> Violations {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// For a fake's `Drop`: in debug builds, fails loudly if anything was seen.
    pub fn assert_clean(&self, fake: &str) {
        let seen = self.all();
        if seen.is_empty() {
            return;
        }
        eprintln!("{fake}: {} contract violation(s):\n  {}", seen.len(), seen.join("\n  "));
        if cfg!(debug_assertions) && !std::thread::panicking() {
            panic!("{fake} saw requests or gave answers its vendor's document does not allow: {seen:?}");
        }
    }
}

/// A socket a fake will serve on: bound first, so the fake can know its own
/// address (for the URLs it hands out) before it is built.
pub struct Listening {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
}

/// Binds `addr` (port 0 picks a free one).
pub async fn listen(addr: SocketAddr) -> std::io::Result<Listening> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    Ok(Listening { listener, addr })
}

impl Listening {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `app` as a fake of `vendor`, every request and answer checked
    /// against the vendor's document ([`check`]).
    pub fn serve(self, vendor: Vendor, app: axum::Router) -> Served {
        let log = Log::default();
        let checked = log.clone();
        let app = app.layer(axum::middleware::from_fn(move |r, n| check(vendor, checked.clone(), r, n)));
        let listener = self.listener;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Served { addr: self.addr, vendor, log, task }
    }
}

/// A running fake. Dropping it stops it, and (in debug builds) fails the test
/// if it saw anything the vendor's document does not allow.
pub struct Served {
    addr: SocketAddr,
    vendor: Vendor,
    log: Log,
    task: tokio::task::JoinHandle<()>,
}

impl Served {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What it saw that the document does not allow.
    pub fn violations(&self) -> Violations {
        self.log.all()
    }

    /// [`Served::violations`], forgotten (a test that provokes one on purpose).
    pub fn take_violations(&self) -> Violations {
        self.log.take()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
        self.log.assert_clean(&format!("the fake {}", self.vendor.name()));
    }
}

/// The middleware: `axum::middleware::from_fn(move |r, n| check(Vendor::Fiken, log.clone(), r, n))`.
pub async fn check(vendor: Vendor, log: Log, request: Request<Body>, next: Next) -> Response {
    let doc = vendor.document();
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "body too large").into_response();
    };
    let method = parts.method.clone();
    let path = parts.uri.path().to_string();
    match doc.check_request(&method, &path, parts.uri.query(), &parts.headers, &bytes) {
        // Files the API hands out URLs to (leeway::OUTSIDE_THE_API) live under
        // FILES; anything else outside the API is no endpoint of the vendor's.
        Checked::OutsideTheApi if path.starts_with(FILES) => {
            return next.run(Request::from_parts(parts, Body::from(bytes))).await
        }
        Checked::OutsideTheApi => {
            let problem = format!("{} {method} {path}: not a path of the API", vendor.name());
            log.push(vec![problem.clone()]);
            return (StatusCode::NOT_FOUND, axum::Json(serde_json::json!({"message": problem}))).into_response();
        }
        Checked::Violates(problems) => {
            tracing::error!(vendor = vendor.name(), ?problems, "a request the vendor's document does not allow");
            let message = format!("contract violation: {}", problems.join("; "));
            log.push(problems);
            return (StatusCode::BAD_REQUEST, axum::Json(serde_json::json!({"message": message}))).into_response();
        }
        Checked::Conforms(_) => {}
    }
    let response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    let (parts, body) = response.into_parts();
    // A body that fails mid-way (a fake dropping the connection on purpose) is
    // passed on as it is: there is no answer to check.
    let streaming = parts.headers.get(axum::http::header::CONTENT_LENGTH).is_none() && !body_is_sized(&body);
    if streaming {
        // The body cannot be held back; what comes before it can be checked.
        let problems = doc.check_response_head(&method, &path, parts.status.as_u16(), &parts.headers);
        if !problems.is_empty() {
            tracing::error!(
                vendor = vendor.name(),
                ?problems,
                "the fake gave an answer the vendor's document does not allow"
            );
            log.push(problems);
        }
        return Response::from_parts(parts, body);
    }
    let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
        let problem = format!("{} {method} {path}: an answer over {MAX_BODY} bytes, not checked", vendor.name());
        tracing::error!(vendor = vendor.name(), problem, "the fake gave an answer too large to check");
        log.push(vec![problem]);
        return (StatusCode::INTERNAL_SERVER_ERROR, "the fake's answer was too large to check").into_response();
    };
    let problems = doc.check_response(&method, &path, parts.status.as_u16(), &parts.headers, &bytes);
    if !problems.is_empty() {
        tracing::error!(
            vendor = vendor.name(),
            ?problems,
            "the fake gave an answer the vendor's document does not allow"
        );
        log.push(problems);
        return (StatusCode::INTERNAL_SERVER_ERROR, "the fake broke its vendor's contract").into_response();
    }
    Response::from_parts(parts, Body::from(bytes))
}

fn body_is_sized(body: &Body) -> bool {
    use axum::body::HttpBody;
    body.size_hint().exact().is_some()
}
