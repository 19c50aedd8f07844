//! Typed errors of the store. Callers tell apart what to fix (validation), what to
//! retry (unavailable, conflict) and what is a bug or an operator's problem.

use thiserror::Error;
use uuid::Uuid;

/// Why an event was refused before reaching the database.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValidationError {
    /// A required text field is empty or blank.
    #[error("`{field}` must not be empty")]
    Empty { field: &'static str },
    /// A text field is longer than allowed.
    #[error("`{field}` is {actual} characters long; the limit is {max}")]
    TooLong { field: &'static str, max: usize, actual: usize },
    /// A text field contains a control character.
    #[error("`{field}` must not contain control characters")]
    ControlCharacter { field: &'static str },
    /// Payload or metadata is not a JSON object.
    #[error("`{field}` must be a JSON object")]
    NotAnObject { field: &'static str },
    /// Payload or metadata is larger than allowed.
    #[error("`{field}` is {actual} bytes; the limit is {max} bytes")]
    TooLarge { field: &'static str, max: usize, actual: usize },
}

/// Everything that can go wrong talking to the event store.
#[derive(Debug, Error)]
pub enum StoreError {
    /// An event in the batch broke a limit; nothing from the batch was written.
    #[error("event {index} of the batch is invalid: {source}")]
    Invalid {
        /// Index of the offending event in the batch.
        index: usize,
        #[source]
        source: ValidationError,
    },
    /// Optimistic concurrency: the correlation's stream moved on; nothing was written.
    #[error("correlation `{correlation_id}` is at version {actual}, the append expected {expected}")]
    VersionConflict { correlation_id: String, expected: String, actual: i64 },
    /// An event id is already stored with different content; nothing was written.
    #[error("event id {event_id} is already stored with a different type, correlation or payload")]
    EventIdReused { event_id: Uuid },
    /// The action already has a proposal: one proposal per correlation id, so what
    /// a decision judged is what is executed. Nothing was written.
    #[error("one proposal per action: `{correlation_id}` already has a proposal")]
    ProposalExists {
        /// The correlation id.
        correlation_id: String,
    },
    /// The database refused the write for this role (separation of duties).
    #[error("this service's database role may not append {what}")]
    NotPermitted {
        /// The refused `type` as `actor` pairs.
        what: String,
    },
    /// The log is append-only; an attempt to change it was refused.
    #[error("the event log is append-only: {0}")]
    AppendOnly(String),
    /// The database cannot be reached now; retrying later may succeed.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The schema is older than this binary; someone must run `bookkeeper migrate`.
    #[error("the database schema is not up to date ({pending} migration(s) pending); run `bookkeeper migrate` as the database owner")]
    NotMigrated { pending: usize },
    /// A subscription's lease was taken over by another consumer.
    #[error("subscription `{0}` is now held by another consumer")]
    LeaseLost(String),
    /// `DATABASE_URL` names a backend we do not have.
    #[error("unsupported DATABASE_URL scheme `{0}` (use postgres:// or sqlite://)")]
    UnsupportedUrl(String),
    /// A position that is not in the log.
    #[error("no event at position {0}")]
    UnknownPosition(i64),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A stored row could not be decoded (corruption or a bug).
    #[error("stored event could not be decoded: {0}")]
    Corrupt(String),
    /// The facts read model is not folded up to the subscription's checkpoint (a
    /// first start after an upgrade, a rebuild under way): it is caught up first.
    #[error("the facts read model is folded to position {}, behind the checkpoint at {}; it is being caught up", folded.position, checkpoint.position)]
    FactsBehind {
        /// The last event folded (the start of the log: none yet).
        folded: crate::event::Cursor,
        /// Where it must get to.
        checkpoint: crate::event::Cursor,
    },
    /// Any other database error.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

impl StoreError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::VersionConflict { .. } | StoreError::FactsBehind { .. })
            || matches!(self, StoreError::Database(e) if is_serialization_failure(e))
    }
}

fn is_serialization_failure(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            matches!(db.code().as_deref(), Some("40001") | Some("40P01")) || db.message().contains("database is locked")
        }
        _ => false,
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Tls(_) => StoreError::Unavailable(e.to_string()),
            sqlx::Error::Database(db) => {
                let msg = db.message();
                if msg.contains("append-only") {
                    return StoreError::AppendOnly(msg.to_string());
                }
                if db.constraint() == Some("events_one_proposal_per_action") || msg.contains("one proposal per action")
                {
                    let correlation_id = msg
                        .strip_prefix("one proposal per action: ")
                        .and_then(|m| m.strip_suffix(" already has a proposal"))
                        .unwrap_or("this correlation id")
                        .to_string();
                    return StoreError::ProposalExists { correlation_id };
                }
                match db.code().as_deref() {
                    // admin_shutdown, crash_shutdown, cannot_connect_now
                    Some("57P01") | Some("57P02") | Some("57P03") => StoreError::Unavailable(msg.to_string()),
                    // lock_not_available (lock_timeout), query_canceled (statement_timeout):
                    // a lock held elsewhere; trying again later may succeed.
                    Some("55P03") | Some("57014") => StoreError::Unavailable(msg.to_string()),
                    // A server in trouble, not a bad request: connection exceptions (08),
                    // insufficient resources (53: too many connections, disk full),
                    // operator intervention (57), system errors (58), and a read-only
                    // transaction during a failover (25006).
                    Some(code)
                        if code.len() == 5
                            && (code == "25006"
                                || ["08", "53", "57", "58"].iter().any(|class| code.starts_with(class))) =>
                    {
                        StoreError::Unavailable(msg.to_string())
                    }
                    _ => StoreError::Database(e),
                }
            }
            _ => StoreError::Database(e),
        }
    }
}
