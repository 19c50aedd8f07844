//! What the sandbox fakes of Fiken and Folio share: the faults they can inject.

use std::time::Duration;

/// A failure a fake can be told to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 500 with a text body.
    ServerError,
    /// 429 with `Retry-After`.
    RateLimited,
    /// Apply the write, then drop the connection before the answer is complete.
    DropAfterCommit,
}

/// Random faults, by rate (0.0-1.0), plus added latency.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Share of requests answered 500.
    pub server_error_rate: f64,
    /// Share of requests answered 429.
    pub rate_limit_rate: f64,
    /// The `Retry-After` of a 429, in seconds.
    pub retry_after_secs: u64,
    /// Delay before every answer.
    pub latency: Duration,
    /// Share of writes applied and then dropped.
    pub drop_after_commit_rate: f64,
}

impl Faults {
    /// Draws the fault for one request: `forced` first, else by the rates.
    pub fn draw(&self, forced: Option<Fault>, is_write: bool) -> Option<Fault> {
        forced.or_else(|| {
            if fastrand::f64() < self.server_error_rate {
                Some(Fault::ServerError)
            } else if fastrand::f64() < self.rate_limit_rate {
                Some(Fault::RateLimited)
            } else if is_write && fastrand::f64() < self.drop_after_commit_rate {
                Some(Fault::DropAfterCommit)
            } else {
                None
            }
        })
    }
}

/// A response whose headers go out and whose body then fails: the client sees the
/// connection drop after the server has done the work.
pub fn dropped(parts: axum::http::response::Parts) -> axum::response::Response {
    let broken = futures_util::stream::once(async {
        Err::<axum::body::Bytes, std::io::Error>(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "dropped"))
    });
    axum::response::Response::from_parts(parts, axum::body::Body::from_stream(broken))
}
