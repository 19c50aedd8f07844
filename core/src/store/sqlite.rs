//! SQLite backend: the embedded default, one file, every service in one process.
//!
//! SQLite admits one writer at a time and each append takes the write lock first
//! (`BEGIN IMMEDIATE`), so positions are handed out in commit order and reading by
//! position alone is gap-free. `transaction_id` is always 0.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Row, SqliteConnection, SqlitePool};
use tokio::sync::watch;
use uuid::Uuid;

use super::facts;
use super::{Append, Appended, PendingReview, ReadBatch, Stats, Wakeups};
use crate::error::StoreError;
use crate::event::{Cursor, RecordedEvent, TypeFilter};
use crate::migrations;

const EVENT_COLUMNS: &str = "position, transaction_id, event_id, type, actor, status, \
     correlation_id, causation_id, payload, metadata, created_at";

/// The PostgreSQL facts query in SQLite's dialect. ?1 position, ?2 own
/// correlation, ?3 vendor name, ?4 org number, ?5 account, ?6 invoice number,
/// ?7 today, ?8 requester.
const SQLITE_FACTS: &str = "
WITH prior AS (
    SELECT p.correlation_id,
           date(p.created_at) AS day,
           CAST(json_extract(p.payload, '$.amount.minor') AS INTEGER) AS amount,
           lower(json_extract(p.payload, '$.vendor.name')) AS vendor_name,
           json_extract(p.payload, '$.vendor.organization_number') AS vendor_org,
           json_extract(p.payload, '$.account') AS account,
           json_extract(p.payload, '$.invoice_number') AS invoice_number,
           json_extract(p.payload, '$.requested_by') AS requested_by,
           EXISTS (SELECT 1 FROM events x WHERE x.correlation_id = p.correlation_id
                   AND x.type IN ('ReceiptAttachmentExecuted', 'InvoiceRegistrationExecuted') AND x.position < ?1) AS executed,
           EXISTS (SELECT 1 FROM events x WHERE x.correlation_id = p.correlation_id
                   AND x.type IN ('ReceiptAttachmentRejected', 'InvoiceRegistrationRejected') AND x.position < ?1) AS rejected
    FROM events p
    WHERE p.type LIKE '%Proposed' AND p.position < ?1 AND p.correlation_id <> ?2
),
same_vendor AS (
    SELECT * FROM prior
    WHERE CASE WHEN ?4 IS NOT NULL THEN vendor_org = ?4 ELSE vendor_name = lower(?3) END
)
SELECT
    (SELECT count(*) FROM same_vendor WHERE executed),
    (SELECT coalesce(sum(amount), 0) FROM same_vendor WHERE executed),
    (SELECT coalesce(max(amount), 0) FROM same_vendor WHERE executed),
    (SELECT max(day) FROM same_vendor WHERE executed),
    (SELECT coalesce(sum(amount), 0) FROM prior
      WHERE executed AND account = ?5 AND strftime('%Y-%m', day) = strftime('%Y-%m', ?7)),
    EXISTS (SELECT 1 FROM same_vendor WHERE executed AND invoice_number = ?6),
    EXISTS (SELECT 1 FROM same_vendor WHERE NOT executed AND NOT rejected AND invoice_number = ?6),
    (SELECT count(*) FROM prior WHERE requested_by = ?8 AND day BETWEEN date(?7, '-29 days') AND ?7),
    (SELECT count(*) FROM prior WHERE requested_by = ?8 AND day = ?7)
";

/// A PostgreSQL statement of the facts in SQLite's placeholders (`$1` -> `?1`).
fn sqlite_sql(sql: &'static str) -> String {
    sql.replace('$', "?")
}

facts::fold_in_on!(SqliteConnection, sqlx::Sqlite, sqlite_sql);

/// Unix milliseconds by the database's clock.
const NOW_MS: &str = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)";

#[derive(Clone)]
pub(crate) struct SqliteBackend {
    pool: SqlitePool,
    wakeups: Arc<Wakeups>,
}

/// Stores opened on the same file in one process share one wake-up channel.
fn wakeups_for(path: PathBuf) -> Arc<Wakeups> {
    static REGISTRY: OnceLock<Mutex<HashMap<PathBuf, Weak<Wakeups>>>> = OnceLock::new();
    let registry = REGISTRY.get_or_init(Default::default);
    let mut map = registry.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    map.retain(|_, w| w.strong_count() > 0);
    if let Some(existing) = map.get(&path).and_then(Weak::upgrade) {
        return existing;
    }
    let fresh = Wakeups::new();
    map.insert(path, Arc::downgrade(&fresh));
    fresh
}

impl SqliteBackend {
    pub(crate) async fn connect(url: &str, options: &super::ConnectOptions) -> Result<Self, StoreError> {
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("invalid DATABASE_URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a committed event survives a power cut, not just a crash.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            // LIKE '%Approved' must not match 'approved'.
            .pragma("case_sensitive_like", "ON");
        let path = connect.get_filename().to_path_buf();
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await?;
        let key = std::fs::canonicalize(&path).unwrap_or(path);
        Ok(SqliteBackend { pool, wakeups: wakeups_for(key) })
    }

    #[cfg(feature = "test-support")]
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) async fn migrate(&self) -> Result<(), StoreError> {
        migrations::sqlite().run(&self.pool).await?;
        Ok(())
    }

    pub(crate) async fn pending_migrations(&self) -> Result<usize, StoreError> {
        let exists: i64 =
            sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'")
                .fetch_one(&self.pool)
                .await?;
        let applied: Vec<i64> = if exists == 0 {
            Vec::new()
        } else {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success").fetch_all(&self.pool).await?
        };
        Ok(migrations::sqlite().iter().filter(|m| !applied.contains(&m.version)).count())
    }

    pub(crate) async fn append(&self, append: &Append) -> Result<Vec<Appended>, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let appended = append_in(&mut tx, append).await?;
        tx.commit().await?;
        if appended.iter().any(|a| !a.duplicate) {
            self.wakeups.bump();
        }
        Ok(appended)
    }

    pub(crate) fn wakeups(&self) -> watch::Receiver<u64> {
        self.wakeups.subscribe()
    }

    pub(crate) async fn read(&self, after: Cursor, filter: &TypeFilter, limit: i64) -> Result<ReadBatch, StoreError> {
        let sql = format!(
            "SELECT (SELECT coalesce(max(position), 0) FROM events) AS head, e.*
             FROM (SELECT 1) AS one
             LEFT JOIN (
                 SELECT {EVENT_COLUMNS} FROM events
                 WHERE position > ?1
                   AND (?2 OR type IN (SELECT value FROM json_each(?3))
                        OR EXISTS (SELECT 1 FROM json_each(?4) p WHERE events.type LIKE p.value ESCAPE '\\'))
                 ORDER BY position
                 LIMIT ?5
             ) e ON 1
             ORDER BY e.position"
        );
        let rows = sqlx::query(&sql)
            .bind(after.position)
            .bind(filter.is_all())
            .bind(json_list(filter.exact()))
            .bind(json_list(&filter.like_patterns()))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let mut events = Vec::with_capacity(rows.len());
        let mut head = 0i64;
        for row in &rows {
            head = row.try_get("head")?;
            if row.try_get::<Option<i64>, _>("position")?.is_some() {
                events.push(decode(row)?);
            }
        }
        let mut next = events.last().map(RecordedEvent::cursor).unwrap_or(after);
        if (events.len() as i64) < limit {
            next = next.max(Cursor { transaction_id: 0, position: head });
        }
        Ok(ReadBatch { events, next, held_back: false })
    }

    pub(crate) async fn read_correlation(&self, correlation_id: &str) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE correlation_id = ?1 ORDER BY position");
        let rows = sqlx::query(&sql).bind(correlation_id).fetch_all(&self.pool).await?;
        rows.iter().map(decode).collect()
    }

    /// Every event of these actions, in read order.
    pub(crate) async fn read_correlations(&self, correlation_ids: &[String]) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events
             WHERE correlation_id IN (SELECT value FROM json_each(?1)) ORDER BY position"
        );
        let ids = serde_json::to_string(correlation_ids).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let rows = sqlx::query(&sql).bind(ids).fetch_all(&self.pool).await?;
        rows.iter().map(decode).collect()
    }

    pub(crate) async fn subscription_statuses(&self) -> Result<Vec<super::SubscriptionStatus>, StoreError> {
        super::derived::subscriptions(&self.pool).await
    }

    pub(crate) async fn version(&self, correlation_id: &str) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM events WHERE correlation_id = ?1")
            .bind(correlation_id)
            .fetch_one(&self.pool)
            .await?)
    }

    pub(crate) async fn version_of(&self, correlation_id: &str, types: Vec<String>) -> Result<i64, StoreError> {
        let types = serde_json::to_string(&types).unwrap_or_default();
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE correlation_id = ?1 AND type IN (SELECT value FROM json_each(?2))",
        )
        .bind(correlation_id)
        .bind(types)
        .fetch_one(&self.pool)
        .await?)
    }

    pub(crate) async fn transaction_of(&self, position: i64) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT transaction_id FROM events WHERE position = ?1")
            .bind(position)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub(crate) async fn stats(&self) -> Result<Stats, StoreError> {
        super::derived::stats(&self.pool).await
    }

    pub(crate) async fn pending_reviews(&self) -> Result<Vec<PendingReview>, StoreError> {
        super::derived::pending_reviews(&self.pool).await
    }

    pub(crate) async fn put_blob(&self, sha256: &str, bytes: &[u8], content_type: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO blobs (sha256, content_type, size, bytes) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(sha256)
        .bind(content_type)
        .bind(bytes.len() as i64)
        .bind(bytes)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(crate) async fn compiled_policy(&self, digest: &str, engine: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row: Option<(Vec<u8>,)> =
            sqlx::query_as("SELECT artifact FROM compiled_policies WHERE digest = ?1 AND engine = ?2")
                .bind(digest)
                .bind(engine)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(artifact,)| artifact))
    }

    pub(crate) async fn save_compiled_policy(
        &self,
        digest: &str,
        engine: &str,
        artifact: &[u8],
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO compiled_policies (digest, engine, artifact, used_at)
             VALUES (?1, ?2, ?3, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
             ON CONFLICT (digest, engine) DO UPDATE SET artifact = excluded.artifact,
                 saved_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), used_at = excluded.used_at",
        )
        .bind(digest)
        .bind(engine)
        .bind(artifact)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(crate) async fn prune_compiled_policies(
        &self,
        engine: &str,
        in_use: &[String],
        unused_since: chrono::DateTime<chrono::Utc>,
    ) -> Result<super::Pruned, StoreError> {
        let in_use = serde_json::to_string(in_use).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        // The format `strftime` writes, so the text compares as the time does.
        let since = unused_since.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE compiled_policies SET used_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE engine = ?1 AND digest IN (SELECT value FROM json_each(?2))",
        )
        .bind(engine)
        .bind(&in_use)
        .execute(&mut *tx)
        .await?;
        let gone: Vec<(i64,)> = sqlx::query_as(
            "DELETE FROM compiled_policies
             WHERE used_at < ?3 AND NOT (engine = ?1 AND digest IN (SELECT value FROM json_each(?2)))
             RETURNING length(artifact)",
        )
        .bind(engine)
        .bind(&in_use)
        .bind(&since)
        .fetch_all(&mut *tx)
        .await?;
        let (rows, bytes) = (gone.len() as i64, Some(gone.iter().map(|(b,)| b).sum::<i64>()));
        tx.commit().await?;
        Ok(super::Pruned { rows: rows as u64, bytes: bytes.unwrap_or(0) as u64 })
    }

    pub(crate) async fn load_read_model(&self, name: &str) -> Result<Option<(Cursor, serde_json::Value)>, StoreError> {
        let row: Option<(i64, i64, String)> =
            sqlx::query_as("SELECT last_transaction_id, last_position, state FROM read_models WHERE name = ?1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        match row {
            None => Ok(None),
            Some((transaction_id, position, state)) => {
                let state = serde_json::from_str(&state)
                    .map_err(|e| StoreError::Corrupt(format!("read model {name} is not JSON: {e}")))?;
                Ok(Some((Cursor { transaction_id, position }, state)))
            }
        }
    }

    pub(crate) async fn save_read_model(
        &self,
        name: &str,
        at: Cursor,
        state: &serde_json::Value,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO read_models (name, last_transaction_id, last_position, state) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (name) DO UPDATE
             SET last_transaction_id = excluded.last_transaction_id, last_position = excluded.last_position,
                 state = excluded.state, saved_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        )
        .bind(name)
        .bind(at.transaction_id)
        .bind(at.position)
        .bind(state.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(crate) async fn get_blob(&self, sha256: &str) -> Result<Option<super::Blob>, StoreError> {
        let row: Option<(String, String, Vec<u8>)> =
            sqlx::query_as("SELECT sha256, content_type, bytes FROM blobs WHERE sha256 = ?1")
                .bind(sha256)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(sha256, content_type, bytes)| super::Blob { sha256, content_type, bytes }))
    }

    pub(crate) async fn event(&self, event_id: Uuid) -> Result<Option<RecordedEvent>, StoreError> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE event_id = ?1");
        let row = sqlx::query(&sql).bind(event_id.to_string()).fetch_optional(&self.pool).await?;
        row.as_ref().map(decode).transpose()
    }

    pub(crate) async fn proposal_facts(&self, q: &super::FactsQuery) -> Result<super::ProposalFacts, StoreError> {
        let row: super::FactsRow = sqlx::query_as(SQLITE_FACTS)
            .bind(q.before.position)
            .bind(&q.correlation_id)
            .bind(&q.vendor_name)
            .bind(&q.vendor_org)
            .bind(&q.account)
            .bind(&q.invoice_number)
            .bind(q.today.format("%Y-%m-%d").to_string())
            .bind(&q.requested_by)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.into())
    }

    pub(crate) async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<Option<Cursor>, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("INSERT INTO subscriptions (name) VALUES (?1) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(&format!(
            "UPDATE subscriptions
             SET lease_holder = ?2, lease_expires_at = {NOW_MS} + ?3,
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE name = ?1
               AND (lease_holder IS NULL OR lease_holder = ?2 OR lease_expires_at < {NOW_MS})
             RETURNING last_transaction_id, last_position"
        ))
        .bind(name)
        .bind(holder)
        .bind(ttl_ms)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(match row {
            Some(r) => Some(Cursor {
                transaction_id: r.try_get("last_transaction_id")?,
                position: r.try_get("last_position")?,
            }),
            None => None,
        })
    }

    pub(crate) async fn renew_lease(&self, name: &str, holder: &str, ttl_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(&format!(
            "UPDATE subscriptions SET lease_expires_at = {NOW_MS} + ?3 WHERE name = ?1 AND lease_holder = ?2"
        ))
        .bind(name)
        .bind(holder)
        .bind(ttl_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE subscriptions SET lease_holder = NULL, lease_expires_at = NULL WHERE name = ?1 AND lease_holder = ?2",
        )
        .bind(name)
        .bind(holder)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(crate) async fn commit_handled(
        &self,
        name: &str,
        holder: &str,
        checkpoint: Cursor,
        handled: i64,
        append: &Append,
        facts: Option<super::FactsStep<'_>>,
    ) -> Result<Vec<Appended>, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let appended = if append.events.is_empty() { Vec::new() } else { append_in(&mut tx, append).await? };
        if let Some(step) = facts {
            let advanced = sqlx::query(&sqlite_sql(facts::sql::ADVANCE))
                .bind(checkpoint.transaction_id)
                .bind(checkpoint.position)
                .bind(name)
                .execute(&mut *tx)
                .await?;
            if advanced.rows_affected() == 1 && !step.events.is_empty() {
                fold_in(&mut tx, &step.events).await?;
            }
        }
        let moved = sqlx::query(
            "UPDATE subscriptions
             SET last_transaction_id = ?3, last_position = ?4, handled = handled + ?5,
                 last_error = NULL, failing_since = NULL,
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE name = ?1 AND lease_holder = ?2",
        )
        .bind(name)
        .bind(holder)
        .bind(checkpoint.transaction_id)
        .bind(checkpoint.position)
        .bind(handled)
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() != 1 {
            return Err(StoreError::LeaseLost(name.to_string()));
        }
        tx.commit().await?;
        if appended.iter().any(|a| !a.duplicate) {
            self.wakeups.bump();
        }
        Ok(appended)
    }

    pub(crate) async fn kept_facts(
        &self,
        l: &facts::Lookup,
        subscription: &str,
    ) -> Result<super::ProposalFacts, StoreError> {
        kept_facts_in(&mut *self.pool.acquire().await?, l, subscription).await
    }

    pub(crate) async fn facts_in_batch(
        &self,
        events: &[RecordedEvent],
        lookups: &[Option<facts::Lookup>],
        subscription: &str,
    ) -> Result<Vec<Option<super::ProposalFacts>>, StoreError> {
        facts_in_batch_in(&mut *self.pool.acquire().await?, events, lookups, subscription).await
    }

    pub(crate) async fn facts_progress(&self, subscription: &str) -> Result<(Cursor, Cursor), StoreError> {
        let (t, p, ct, cp): (i64, i64, i64, i64) =
            sqlx::query_as(&sqlite_sql(facts::sql::PROGRESS)).bind(subscription).fetch_one(&self.pool).await?;
        Ok((Cursor { transaction_id: t, position: p }, Cursor { transaction_id: ct, position: cp }))
    }

    pub(crate) async fn reset_facts(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for table in facts::sql::TABLES {
            sqlx::query(&format!("DELETE FROM {table}")).execute(&mut *tx).await?;
        }
        sqlx::query(
            "UPDATE facts_progress SET last_transaction_id = 0, last_position = 0,
             reset_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = 1",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// See the PostgreSQL backend's `fold_facts`.
    pub(crate) async fn fold_facts(
        &self,
        subscription: &str,
        holder: &str,
        from: Cursor,
        events: &[RecordedEvent],
        to: Cursor,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let (holds,): (i64,) = sqlx::query_as(&format!(
            "SELECT count(*) FROM subscriptions WHERE name = ?1 AND lease_holder = ?2 AND lease_expires_at > {NOW_MS}"
        ))
        .bind(subscription)
        .bind(holder)
        .fetch_one(&mut *tx)
        .await?;
        if holds != 1 {
            return Err(StoreError::LeaseLost(subscription.to_string()));
        }
        if !advance_in(&mut tx, from, events, to).await? {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    pub(crate) async fn record_failure(&self, name: &str, holder: &str, error: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE subscriptions
             SET last_error = ?3,
                 failing_since = coalesce(failing_since, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
             WHERE name = ?1 AND lease_holder = ?2",
        )
        .bind(name)
        .bind(holder)
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

async fn append_in(conn: &mut SqliteConnection, append: &Append) -> Result<Vec<Appended>, StoreError> {
    if !append.expected.is_empty() {
        let mut all_stored = Vec::with_capacity(append.events.len());
        for e in &append.events {
            match stored_event(conn, e.event_id).await? {
                Some(s) => all_stored.push((e, s)),
                None => break,
            }
        }
        if all_stored.len() == append.events.len() {
            return all_stored
                .into_iter()
                .map(|(e, s)| {
                    if !super::same_event(e, &s.1, &s.2, &s.3) {
                        return Err(StoreError::EventIdReused { event_id: e.event_id });
                    }
                    Ok(Appended { event_id: e.event_id, position: s.0, duplicate: true })
                })
                .collect();
        }
        // BEGIN IMMEDIATE holds the write lock, so this count cannot go stale.
        for (correlation_id, expected) in &append.expected {
            let types = expected.counted_types().map(|t| serde_json::to_string(&t).unwrap_or_default());
            let actual: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM events WHERE correlation_id = ?1
                   AND (?2 IS NULL OR type IN (SELECT value FROM json_each(?2)))",
            )
            .bind(correlation_id)
            .bind(types)
            .fetch_one(&mut *conn)
            .await?;
            if !expected.admits(actual) {
                return Err(StoreError::VersionConflict {
                    correlation_id: correlation_id.clone(),
                    expected: expected.describe(),
                    actual,
                });
            }
        }
    }

    let mut out = Vec::with_capacity(append.events.len());
    for e in &append.events {
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO events (event_id, type, actor, status, correlation_id, causation_id, payload, metadata)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (event_id) DO NOTHING
             RETURNING position",
        )
        .bind(e.event_id.to_string())
        .bind(&e.event_type)
        .bind(&e.actor)
        .bind(&e.status)
        .bind(&e.correlation_id)
        .bind(e.causation_id.map(|c| c.to_string()))
        .bind(e.payload.to_string())
        .bind(e.metadata.to_string())
        .fetch_optional(&mut *conn)
        .await?;
        match inserted {
            Some(position) => out.push(Appended { event_id: e.event_id, position, duplicate: false }),
            None => {
                let s = stored_event(conn, e.event_id)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt(format!("event {} neither inserted nor stored", e.event_id)))?;
                if !super::same_event(e, &s.1, &s.2, &s.3) {
                    return Err(StoreError::EventIdReused { event_id: e.event_id });
                }
                out.push(Appended { event_id: e.event_id, position: s.0, duplicate: true });
            }
        }
    }
    Ok(out)
}

/// (position, type, correlation_id, payload) of a stored event.
async fn stored_event(
    conn: &mut SqliteConnection,
    event_id: Uuid,
) -> Result<Option<(i64, String, String, serde_json::Value)>, StoreError> {
    let row = sqlx::query("SELECT position, type, correlation_id, payload FROM events WHERE event_id = ?1")
        .bind(event_id.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        None => Ok(None),
        Some(r) => {
            let payload: String = r.try_get("payload")?;
            Ok(Some((r.try_get("position")?, r.try_get("type")?, r.try_get("correlation_id")?, parse_json(&payload)?)))
        }
    }
}

fn parse_json(text: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("stored JSON is invalid: {e}")))
}

fn parse_uuid(text: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(text).map_err(|e| StoreError::Corrupt(format!("stored id `{text}` is not a UUID: {e}")))
}

fn decode(row: &SqliteRow) -> Result<RecordedEvent, StoreError> {
    let event_id: String = row.try_get("event_id")?;
    let causation_id: Option<String> = row.try_get("causation_id")?;
    let payload: String = row.try_get("payload")?;
    let metadata: String = row.try_get("metadata")?;
    Ok(RecordedEvent {
        position: row.try_get("position")?,
        transaction_id: row.try_get("transaction_id")?,
        event_id: parse_uuid(&event_id)?,
        event_type: row.try_get("type")?,
        actor: row.try_get("actor")?,
        status: row.try_get("status")?,
        correlation_id: row.try_get("correlation_id")?,
        causation_id: causation_id.as_deref().map(parse_uuid).transpose()?,
        payload: parse_json(&payload)?,
        metadata: parse_json(&metadata)?,
        created_at: row.try_get("created_at")?,
    })
}
