//! Queries over the derived-state views (the definitions the tally, `tally.rs`,
//! must equal; tests compare them). The views have the same names and columns
//! on both backends, so these queries are written once, generic over the database.

use chrono::{DateTime, Utc};
use sqlx::{Database, FromRow, IntoArguments, Pool};

use super::{PendingReview, Stats, SubscriptionStatus};
use crate::error::StoreError;

const BY_TYPE_AND_STATUS: &str =
    "SELECT type, status, count(*) FROM events GROUP BY type, status ORDER BY type, status";
const APPROVAL_RATE: &str =
    "SELECT approved, auto_approved, rejected, pending, escalated_pending, approval_rate FROM approval_rate";
/// A subscription's lag is counted exactly while it is small (what alerts watch);
/// far behind (a retired subscription, a long outage) it is the distance in
/// positions, an upper bound that costs one index probe instead of a count over
/// the rest of the log at every scrape.
const SUBSCRIPTIONS: &str = "WITH newest AS (SELECT coalesce(max(position), 0) AS position FROM events)
     SELECT s.name, s.last_position, s.handled, s.lease_holder, s.last_error,
            CASE WHEN newest.position - s.last_position <= 10000
                 THEN (SELECT count(*) FROM events e WHERE e.position > s.last_position)
                 ELSE newest.position - s.last_position END AS lag
     FROM subscriptions s CROSS JOIN newest ORDER BY s.name";
const PENDING_REVIEWS: &str = "SELECT correlation_id, proposal_type, proposed_by, proposed_at, escalated
     FROM pending_reviews ORDER BY proposed_position";

type RateRow = (i64, i64, i64, i64, i64, Option<f64>);
type SubscriptionRow = (String, i64, i64, Option<String>, Option<String>, i64);
type PendingRow = (String, String, String, DateTime<Utc>, bool);

pub(super) async fn stats<DB>(pool: &Pool<DB>) -> Result<Stats, StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'r> (String, String, i64): FromRow<'r, DB::Row>,
    for<'r> RateRow: FromRow<'r, DB::Row>,
    for<'r> SubscriptionRow: FromRow<'r, DB::Row>,
{
    let by_type_and_status: Vec<(String, String, i64)> = sqlx::query_as(BY_TYPE_AND_STATUS).fetch_all(pool).await?;
    let (approved, auto_approved, rejected, pending_reviews, escalated_pending, approval_rate): RateRow =
        sqlx::query_as(APPROVAL_RATE).fetch_one(pool).await?;
    let subscriptions = subscriptions(pool).await?;
    Ok(Stats {
        events: by_type_and_status.iter().map(|(_, _, n)| n).sum(),
        by_type_and_status,
        pending_reviews,
        escalated_pending,
        approved,
        auto_approved,
        rejected,
        approval_rate,
        subscriptions,
        parked: Vec::new(),
    })
}

/// Where every subscription stands (a row each, and its lag: a count over the
/// events after its checkpoint only).
pub(super) async fn subscriptions<DB>(pool: &Pool<DB>) -> Result<Vec<SubscriptionStatus>, StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'r> SubscriptionRow: FromRow<'r, DB::Row>,
{
    let rows: Vec<SubscriptionRow> = sqlx::query_as(SUBSCRIPTIONS).fetch_all(pool).await?;
    Ok(rows
        .into_iter()
        .map(|(name, position, handled, lease_holder, last_error, lag)| SubscriptionStatus {
            name,
            position,
            handled,
            lease_holder,
            last_error,
            lag,
        })
        .collect())
}

pub(super) async fn pending_reviews<DB>(pool: &Pool<DB>) -> Result<Vec<PendingReview>, StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'r> PendingRow: FromRow<'r, DB::Row>,
{
    let rows: Vec<PendingRow> = sqlx::query_as(PENDING_REVIEWS).fetch_all(pool).await?;
    Ok(rows
        .into_iter()
        .map(|(correlation_id, proposal_type, proposed_by, proposed_at, escalated)| PendingReview {
            correlation_id,
            proposal_type,
            proposed_by,
            proposed_at,
            escalated,
        })
        .collect())
}
