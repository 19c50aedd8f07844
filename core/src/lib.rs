//! Bookkeeper's shared machinery: the event envelope and domain payloads, the
//! append-only event store on PostgreSQL and SQLite, and durable subscriptions.
//!
//! Services depend on this crate and on nothing of each other. See
//! ARCHITECTURE.md for how an event flows through them.

pub mod clock;
pub mod config;
pub mod connect;
pub mod document;
pub mod domain;
pub mod error;
pub mod event;
pub mod lifecycle;
pub mod metrics;
pub mod migrations;
pub mod money;
pub mod people;
pub mod reading;
pub mod retry;
pub mod roles;
pub mod shutdown;
pub mod store;
pub mod subscription;
#[cfg(feature = "test-support")]
pub mod testing;

pub use clock::Clock;
pub use error::{StoreError, ValidationError};
pub use event::{Cursor, NewEvent, RecordedEvent, TypeFilter};
pub use lifecycle::{ActionState, EventType, Phase};
pub use store::{Append, Appended, ExpectedVersion, ReadBatch, Store};
pub use subscription::{Handler, HandlerError, StepOutcome, Subscription, SubscriptionError, SubscriptionOptions};
