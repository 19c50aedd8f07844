//! The store's behavioural suite. Every test in `conformance` runs against both
//! backends; `postgres_only` covers what only PostgreSQL has (roles, concurrent
//! processes, the design document's SQL).

mod conformance;
mod facts;
mod helpers;
mod postgres_only;
mod subscriptions;
mod tally;
