//! PostgreSQL backend: the production store, shared by separate processes.
//!
//! Gap-free reads: every event records the id of the transaction that appended it
//! (`transaction_id`, set by a column default). A reader returns only events whose
//! transaction id is below a horizon, in `(transaction_id, position)` order: the
//! oldest transaction still *appending* (migration 8: every appending transaction
//! holds the shared "appenders" advisory lock from before it has an id), or, with
//! none, the next id to be assigned. Any transaction that commits events later has
//! an id at or above that horizon, so it sorts after everything already returned
//! and no reader can pass over it; a transaction open elsewhere that does not
//! append (an operator's `BEGIN`, another database's batch job) holds no one back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions as _, Connection as _, PgConnection, PgPool, Row};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use super::facts;
use super::{Append, Appended, PendingReview, ReadBatch, Stats, TaskGuard, Wakeups};
use crate::error::StoreError;
use crate::event::{Cursor, RecordedEvent, TypeFilter};
use crate::migrations;
use crate::retry::Backoff;

/// The NOTIFY channel appenders signal after they commit.
pub(crate) const CHANNEL: &str = "bookkeeper_events";

/// Facts about a proposal from the proposals before it. $1/$2 cursor, $3 own
/// correlation, $4 vendor name, $5 vendor org number, $6 account, $7 invoice
/// number, $8 today, $9 requester.
const PG_FACTS: &str = "
WITH prior AS (
    SELECT p.correlation_id,
           (p.created_at AT TIME ZONE 'UTC')::date AS day,
           -- A payload whose amount is not an integer (an operator's manual append)
           -- counts as no amount instead of failing every later proposal's facts.
           CASE WHEN p.payload->'amount'->>'minor' ~ '^-?[0-9]{1,18}$'
                THEN (p.payload->'amount'->>'minor')::bigint END AS amount,
           lower(p.payload->'vendor'->>'name') AS vendor_name,
           p.payload->'vendor'->>'organization_number' AS vendor_org,
           p.payload->>'account' AS account,
           p.payload->>'invoice_number' AS invoice_number,
           EXISTS (SELECT 1 FROM events x WHERE x.correlation_id = p.correlation_id
                   AND x.type IN ('ReceiptAttachmentExecuted', 'InvoiceRegistrationExecuted')
                   AND (x.transaction_id, x.position) < ($1, $2)) AS executed,
           EXISTS (SELECT 1 FROM events x WHERE x.correlation_id = p.correlation_id
                   AND x.type IN ('ReceiptAttachmentRejected', 'InvoiceRegistrationRejected')
                   AND (x.transaction_id, x.position) < ($1, $2)) AS rejected
    FROM events p
    -- `+ 0` keeps the planner from intersecting with a scan of the read-order
    -- index over the whole log (it did, with generic plans): the partial indexes
    -- of migration 5 find the few rows that matter, the cursor only filters them.
    WHERE p.type LIKE '%Proposed' AND (p.transaction_id + 0, p.position + 0) < ($1, $2) AND p.correlation_id <> $3
      AND (lower(p.payload->'vendor'->>'name') = lower($4::text)
           OR p.payload->'vendor'->>'organization_number' = $5::text
           OR p.payload->>'account' = $6::text)
),
same_vendor AS (
    SELECT * FROM prior
    WHERE CASE WHEN $5::text IS NOT NULL THEN vendor_org = $5::text ELSE vendor_name = lower($4::text) END
),
requested AS (
    SELECT (p.created_at AT TIME ZONE 'UTC')::date AS day
    FROM events p
    WHERE p.type LIKE '%Proposed' AND p.payload->>'requested_by' = $9::text
      AND (p.transaction_id + 0, p.position + 0) < ($1, $2) AND p.correlation_id <> $3
)
SELECT
    (SELECT count(*) FROM same_vendor WHERE executed),
    (SELECT coalesce(sum(amount), 0) FROM same_vendor WHERE executed)::bigint,
    (SELECT coalesce(max(amount), 0) FROM same_vendor WHERE executed)::bigint,
    (SELECT max(day)::text FROM same_vendor WHERE executed),
    (SELECT coalesce(sum(amount), 0) FROM prior
      WHERE executed AND account = $6::text AND date_trunc('month', day) = date_trunc('month', $8::date))::bigint,
    EXISTS (SELECT 1 FROM same_vendor WHERE executed AND invoice_number = $7::text),
    EXISTS (SELECT 1 FROM same_vendor WHERE NOT executed AND NOT rejected AND invoice_number = $7::text),
    (SELECT count(*) FROM requested WHERE day BETWEEN $8::date - 29 AND $8::date),
    (SELECT count(*) FROM requested WHERE day = $8::date)
";

fn pg_sql(sql: &'static str) -> &'static str {
    sql
}

facts::fold_in_on!(PgConnection, sqlx::Postgres, pg_sql);

/// The read horizon: the oldest transaction holding the appenders lock
/// (migration 8), or the next transaction id when none does. `pg_locks` gives a
/// 32-bit xid; it is matched to the 64-bit ids of the snapshot's running
/// transactions, which is what `transaction_id` holds.
const HORIZON_SQL: &str = "
WITH snap AS (SELECT pg_current_snapshot() AS s),
holders AS (
    -- Joined on the virtual transaction, not the pid: a prepared (two-phase)
    -- transaction's locks have no pid.
    SELECT t.transactionid::text::bigint AS xid32
    FROM pg_locks a
    JOIN pg_locks t ON t.virtualtransaction = a.virtualtransaction
                   AND t.locktype = 'transactionid' AND t.mode = 'ExclusiveLock' AND t.granted
    WHERE a.locktype = 'advisory' AND a.granted AND a.classid = 73640 AND a.objid = 1 AND a.objsubid = 2
      AND a.database = (SELECT oid FROM pg_database WHERE datname = current_database())
)
SELECT CASE
    -- A standby sees none of the primary's locks: only the cheap horizon is safe there.
    WHEN pg_is_in_recovery() THEN NULL
    ELSE least(
        pg_snapshot_xmax(snap.s)::text::bigint,
        (SELECT min(x::text::bigint) FROM pg_snapshot_xip(snap.s) AS x
         WHERE x::text::bigint % 4294967296 IN (SELECT xid32 FROM holders)))
    END
FROM snap";

/// How long the cheap read horizon may stand still before reads are bounded by
/// the appenders lock instead: about how long a transaction left open anywhere
/// on the server can delay a reader.
const STALL: Duration = Duration::from_millis(250);

/// Counts of appends committed and announced by a NOTIFY.
#[derive(Default)]
struct Announcements {
    committed: AtomicU64,
    announced: AtomicU64,
}

impl Announcements {
    /// Whether an append committed that no NOTIFY has announced yet.
    fn due(&self) -> bool {
        self.announced.load(Ordering::SeqCst) < self.committed.load(Ordering::SeqCst)
    }
}

/// Shortest interval between two NOTIFYs from one store.
const NOTIFY_GAP: Duration = Duration::from_millis(1);

/// Sent after appends commit; one implicit transaction for both statements.
const NOTIFY_SQL: &str = "SET LOCAL synchronous_commit TO off; NOTIFY bookkeeper_events";

const EVENT_COLUMNS: &str = "position, transaction_id, event_id, type, actor, status, \
     correlation_id, causation_id, payload, metadata, created_at";

#[derive(Clone)]
pub(crate) struct PgBackend {
    pool: PgPool,
    announce: super::Announce,
    shared: Arc<Shared>,
}

struct Shared {
    wakeups: Arc<Wakeups>,
    /// Appends committed, and appends a NOTIFY has announced (sent after it
    /// succeeded): while the second is behind, a NOTIFY is still due.
    announcements: Arc<Announcements>,
    /// The cheap read horizon last seen, and since when it has not moved.
    stall: std::sync::Mutex<Option<(i64, std::time::Instant)>>,
    notifier: OnceLock<(mpsc::Sender<()>, TaskGuard)>,
    listener: OnceLock<TaskGuard>,
}

impl PgBackend {
    pub(crate) async fn connect(url: &str, options: &super::ConnectOptions) -> Result<Self, StoreError> {
        let connect: PgConnectOptions = url
            .parse::<PgConnectOptions>()
            .map_err(|e| StoreError::Unavailable(format!("invalid DATABASE_URL: {}", redact(&e.to_string()))))?
            .application_name("bookkeeper")
            // Statement logging would put payloads into our logs at INFO.
            .disable_statement_logging();
        // One direct connection first: a pool reports only "timed out", while this
        // says why (refused, unknown host, authentication failed).
        let probe = tokio::time::timeout(options.acquire_timeout, PgConnection::connect_with(&connect))
            .await
            .map_err(|_| StoreError::Unavailable("connecting timed out".into()))?
            .map_err(StoreError::from)?;
        let _ = probe.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(StoreError::from)?;
        Ok(PgBackend {
            pool,
            announce: options.announce,
            shared: Arc::new(Shared {
                wakeups: Wakeups::new(),
                announcements: Arc::default(),
                stall: std::sync::Mutex::new(None),
                notifier: OnceLock::new(),
                listener: OnceLock::new(),
            }),
        })
    }

    #[cfg(feature = "test-support")]
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pool, after sending a NOTIFY still due: a short-lived process
    /// (`bookkeeper events append`, an import script) would otherwise exit before
    /// the background task sends it, and every follower would wait for its poll.
    pub(crate) async fn close(&self) {
        if self.shared.announcements.due() {
            if let Err(e) = sqlx::raw_sql(NOTIFY_SQL).execute(&self.pool).await {
                tracing::debug!(error = %e, "the last NOTIFY failed; readers will poll");
            }
        }
        self.pool.close().await;
    }

    pub(crate) async fn migrate(&self) -> Result<(), StoreError> {
        migrations::postgres().run(&self.pool).await?;
        Ok(())
    }

    pub(crate) async fn server_warnings(&self) -> Result<Vec<String>, StoreError> {
        let (autovacuum, track_counts): (String, String) =
            sqlx::query_as("SELECT current_setting('autovacuum'), current_setting('track_counts')")
                .fetch_one(&self.pool)
                .await?;
        let mut warnings = Vec::new();
        if autovacuum != "on" || track_counts != "on" {
            warnings.push(
                "autovacuum is off on this PostgreSQL server (autovacuum or track_counts): the event log's \
                 tables are never analyzed, so query plans made while they were small (sequential scans) stay \
                 in use as they grow and every service slows down with the log; turn autovacuum on, or run \
                 ANALYZE regularly"
                    .to_string(),
            );
        }
        Ok(warnings)
    }

    pub(crate) async fn pending_migrations(&self) -> Result<usize, StoreError> {
        let applied: Vec<i64> = match sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(&self.pool)
            .await
        {
            Ok(v) => v,
            // undefined_table: nothing was ever migrated here
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42P01") => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        Ok(migrations::postgres().iter().filter(|m| !applied.contains(&m.version)).count())
    }

    pub(crate) async fn append(&self, append: &Append) -> Result<Vec<Appended>, StoreError> {
        if self.announce == super::Announce::WithCommit {
            let mut tx = self.pool.begin().await?;
            let appended = append_in(&mut tx, append).await?;
            if appended.iter().any(|a| !a.duplicate) {
                // Queued in the transaction, delivered by its commit: no
                // follower waits on this process outliving the append.
                sqlx::query("SELECT pg_notify($1, '')").bind(CHANNEL).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            self.shared.wakeups.bump();
            return Ok(appended);
        }
        let fast = if append.expected.is_empty() {
            // One INSERT statement is atomic on its own: without BEGIN/COMMIT an
            // append is one round trip. Without ON CONFLICT, a duplicate id fails
            // the whole statement (nothing written) and we take the careful path.
            let mut conn = self.pool.acquire().await?;
            match insert(&mut conn, append, false).await {
                Ok(inserted) => Some(positions_in_order(append, inserted)),
                Err(StoreError::Database(sqlx::Error::Database(db))) if db.code().as_deref() == Some("23505") => None,
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        let appended = if let Some(appended) = fast {
            appended
        } else {
            let mut tx = self.pool.begin().await?;
            let appended = append_in(&mut tx, append).await?;
            tx.commit().await?;
            appended
        };
        if appended.iter().any(|a| !a.duplicate) {
            self.after_commit();
        }
        Ok(appended)
    }

    /// Wakes readers: in this process at once, in others through one NOTIFY sent
    /// after commit by a background task. NOTIFY inside the appending transaction
    /// would take PostgreSQL's notify lock across the commit's WAL flush and
    /// serialise every appender; sent afterwards it costs appenders nothing, and
    /// many appends in a burst share one NOTIFY. A NOTIFY lost to a crash right
    /// here only delays readers until their next poll.
    fn after_commit(&self) {
        self.shared.wakeups.bump();
        self.shared.announcements.committed.fetch_add(1, Ordering::SeqCst);
        let (sender, _) = self.shared.notifier.get_or_init(|| {
            let (tx, mut rx) = mpsc::channel::<()>(1);
            let pool = self.pool.clone();
            let announcements = self.shared.announcements.clone();
            let task = tokio::spawn(async move {
                let mut last_sent: Option<tokio::time::Instant> = None;
                while rx.recv().await.is_some() {
                    // Under a stream of appends, send at most one NOTIFY per
                    // NOTIFY_GAP; appends meanwhile ride on it. An idle log's
                    // first append is announced at once.
                    if let Some(at) = last_sent {
                        tokio::time::sleep_until(at + NOTIFY_GAP).await;
                        while rx.try_recv().is_ok() {}
                    }
                    // A NOTIFY transaction takes a transaction id and, by default,
                    // waits for its own WAL flush. Nothing durable depends on it (a
                    // lost NOTIFY only delays readers until they poll), so skip
                    // the flush: one simple-protocol round trip, no fsync.
                    let covers = announcements.committed.load(Ordering::SeqCst);
                    match sqlx::raw_sql(NOTIFY_SQL).execute(&pool).await {
                        Ok(_) => {
                            announcements.announced.fetch_max(covers, Ordering::SeqCst);
                        }
                        Err(e) => tracing::debug!(error = %e, "NOTIFY failed; readers will poll"),
                    }
                    last_sent = Some(tokio::time::Instant::now());
                }
            });
            (tx, TaskGuard(task))
        });
        // Full means a NOTIFY is already due; it will cover this append too.
        let _ = sender.try_send(());
    }

    pub(crate) fn wakeups(&self) -> watch::Receiver<u64> {
        self.shared.listener.get_or_init(|| {
            let pool = self.pool.clone();
            let wakeups = self.shared.wakeups.clone();
            TaskGuard(tokio::spawn(listen(pool, wakeups)))
        });
        self.shared.wakeups.subscribe()
    }

    pub(crate) async fn read(&self, after: Cursor, filter: &TypeFilter, limit: i64) -> Result<ReadBatch, StoreError> {
        // Two horizons, both safe. The cheap one, the oldest transaction running
        // anywhere (`pg_snapshot_xmin`), comes with the read's own snapshot and
        // costs nothing; but any transaction left open, appending or not, in any
        // database, stops it. When it has not moved for `STALL` (a transaction
        // open that long is no appender in a hurry), the read is bounded by the
        // appenders lock instead (migration 8), taken in a statement of its own
        // *before* the read: every transaction still appending at the read's
        // snapshot then either held the lock (and bounds it) or had no id yet (and
        // gets one above it). Scanning `pg_locks` takes the lock manager's
        // partition locks, so it is kept off the path of a log in full flow.
        let mut conn = self.pool.acquire().await?;
        let stalled = self
            .shared
            .stall
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|(_, since)| since.elapsed() >= STALL);
        let precise: Option<i64> =
            if stalled { sqlx::query_scalar(HORIZON_SQL).fetch_one(&mut *conn).await? } else { None };
        let sql = format!(
            "WITH c AS (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS cheap),
                  -- Both bounds are safe, so the higher one is.
                  h AS (SELECT greatest($7::bigint, c.cheap) AS horizon, c.cheap FROM c),
                  newest AS (
                      SELECT transaction_id AS new_tx, position AS new_pos FROM events
                      ORDER BY transaction_id DESC, position DESC LIMIT 1),
                  settled AS (
                      SELECT transaction_id AS tail_tx, position AS tail_pos FROM events, h
                      WHERE transaction_id < h.horizon
                      ORDER BY transaction_id DESC, position DESC LIMIT 1)
             SELECT h.cheap, s.tail_tx, s.tail_pos,
                    -- some visible event past the cursor is not yet settled, iff the
                    -- newest one is: one index probe instead of a scan
                    coalesce(n.new_tx >= h.horizon AND (n.new_tx, n.new_pos) > ($1, $2), false) AS held_back,
                    e.*
             FROM h
             LEFT JOIN settled s ON true
             LEFT JOIN newest n ON true
             LEFT JOIN LATERAL (
                 SELECT {EVENT_COLUMNS} FROM events
                 WHERE (transaction_id, position) > ($1, $2)
                   AND transaction_id < h.horizon
                   AND ($3 OR type = ANY($4) OR type LIKE ANY($5))
                 ORDER BY transaction_id, position
                 LIMIT $6
             ) e ON true
             ORDER BY e.transaction_id, e.position"
        );
        let rows = sqlx::query(&sql)
            .bind(after.transaction_id)
            .bind(after.position)
            .bind(filter.is_all())
            .bind(filter.exact())
            .bind(filter.like_patterns())
            .bind(limit)
            .bind(precise)
            .fetch_all(&mut *conn)
            .await?;
        drop(conn);
        let mut events = Vec::with_capacity(rows.len());
        let mut settled_tail = None;
        let mut held_back = false;
        let mut cheap = None;
        for row in &rows {
            cheap = row.try_get::<Option<i64>, _>("cheap")?;
            let tail_tx: Option<i64> = row.try_get("tail_tx")?;
            let tail_pos: Option<i64> = row.try_get("tail_pos")?;
            if let (Some(transaction_id), Some(position)) = (tail_tx, tail_pos) {
                settled_tail = Some(Cursor { transaction_id, position });
            }
            held_back = row.try_get("held_back")?;
            if row.try_get::<Option<i64>, _>("position")?.is_some() {
                events.push(decode(row)?);
            }
        }
        if let Some(cheap) = cheap {
            // Since when the cheap horizon has stood still.
            let mut stall = self.shared.stall.lock().unwrap_or_else(|p| p.into_inner());
            if stall.is_none_or(|(h, _)| h != cheap) {
                *stall = Some((cheap, std::time::Instant::now()));
            }
        }
        let mut next = events.last().map(RecordedEvent::cursor).unwrap_or(after);
        if (events.len() as i64) < limit {
            // Everything settled was read: skip past the last settled event, even
            // when the filter did not want it.
            if let Some(tail) = settled_tail {
                next = next.max(tail);
            }
        }
        Ok(ReadBatch { events, next, held_back })
    }

    pub(crate) async fn read_correlation(&self, correlation_id: &str) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql =
            format!("SELECT {EVENT_COLUMNS} FROM events WHERE correlation_id = $1 ORDER BY transaction_id, position");
        let rows = sqlx::query(&sql).bind(correlation_id).fetch_all(&self.pool).await?;
        rows.iter().map(decode).collect()
    }

    /// Every event of these actions, in read order.
    pub(crate) async fn read_correlations(&self, correlation_ids: &[String]) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE correlation_id = ANY($1) ORDER BY transaction_id, position"
        );
        let rows = sqlx::query(&sql).bind(correlation_ids).fetch_all(&self.pool).await?;
        rows.iter().map(decode).collect()
    }

    pub(crate) async fn subscription_statuses(&self) -> Result<Vec<super::SubscriptionStatus>, StoreError> {
        super::derived::subscriptions(&self.pool).await
    }

    pub(crate) async fn version(&self, correlation_id: &str) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM events WHERE correlation_id = $1")
            .bind(correlation_id)
            .fetch_one(&self.pool)
            .await?)
    }

    pub(crate) async fn version_of(&self, correlation_id: &str, types: Vec<String>) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM events WHERE correlation_id = $1 AND type = ANY($2)")
            .bind(correlation_id)
            .bind(types)
            .fetch_one(&self.pool)
            .await?)
    }

    pub(crate) async fn transaction_of(&self, position: i64) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT transaction_id FROM events WHERE position = $1")
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
            "INSERT INTO blobs (sha256, content_type, size, bytes) VALUES ($1, $2, $3, $4)
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

    pub(crate) async fn load_read_model(&self, name: &str) -> Result<Option<(Cursor, serde_json::Value)>, StoreError> {
        let row: Option<(i64, i64, serde_json::Value)> = sqlx::query_as(
            "SELECT last_transaction_id, last_position, state FROM read_models WHERE owner = current_user AND name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(transaction_id, position, state)| (Cursor { transaction_id, position }, state)))
    }

    pub(crate) async fn save_read_model(
        &self,
        name: &str,
        at: Cursor,
        state: &serde_json::Value,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO read_models (name, last_transaction_id, last_position, state) VALUES ($1, $2, $3, $4)
             ON CONFLICT (owner, name) DO UPDATE
             SET last_transaction_id = EXCLUDED.last_transaction_id, last_position = EXCLUDED.last_position,
                 state = EXCLUDED.state, saved_at = now()",
        )
        .bind(name)
        .bind(at.transaction_id)
        .bind(at.position)
        .bind(state)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(crate) async fn compiled_policy(&self, digest: &str, engine: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row: Option<(Vec<u8>,)> = sqlx::query_as(
            "SELECT artifact FROM compiled_policies WHERE owner = current_user AND digest = $1 AND engine = $2",
        )
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
            "INSERT INTO compiled_policies (digest, engine, artifact) VALUES ($1, $2, $3)
             ON CONFLICT (owner, digest, engine)
             DO UPDATE SET artifact = EXCLUDED.artifact, saved_at = now(), used_at = now()",
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
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE compiled_policies SET used_at = now()
             WHERE owner = current_user AND engine = $1 AND digest = ANY($2)",
        )
        .bind(engine)
        .bind(in_use)
        .execute(&mut *tx)
        .await?;
        let (rows, bytes): (i64, Option<i64>) = sqlx::query_as(
            "WITH gone AS (
                 DELETE FROM compiled_policies
                 WHERE owner = current_user AND used_at < $3 AND NOT (engine = $1 AND digest = ANY($2))
                 RETURNING octet_length(artifact) AS bytes)
             SELECT count(*), sum(bytes)::bigint FROM gone",
        )
        .bind(engine)
        .bind(in_use)
        .bind(unused_since)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(super::Pruned { rows: rows as u64, bytes: bytes.unwrap_or(0) as u64 })
    }

    pub(crate) async fn get_blob(&self, sha256: &str) -> Result<Option<super::Blob>, StoreError> {
        let row: Option<(String, String, Vec<u8>)> =
            sqlx::query_as("SELECT sha256, content_type, bytes FROM blobs WHERE sha256 = $1")
                .bind(sha256)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(sha256, content_type, bytes)| super::Blob { sha256, content_type, bytes }))
    }

    pub(crate) async fn event(&self, event_id: Uuid) -> Result<Option<RecordedEvent>, StoreError> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE event_id = $1");
        let row = sqlx::query(&sql).bind(event_id).fetch_optional(&self.pool).await?;
        row.as_ref().map(decode).transpose()
    }

    pub(crate) async fn proposal_facts(&self, q: &super::FactsQuery) -> Result<super::ProposalFacts, StoreError> {
        let row: super::FactsRow = sqlx::query_as(PG_FACTS)
            .bind(q.before.transaction_id)
            .bind(q.before.position)
            .bind(&q.correlation_id)
            .bind(&q.vendor_name)
            .bind(&q.vendor_org)
            .bind(&q.account)
            .bind(&q.invoice_number)
            .bind(q.today)
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
        sqlx::query("INSERT INTO subscriptions (name) VALUES ($1) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .execute(&self.pool)
            .await?;
        let row = sqlx::query(
            "UPDATE subscriptions
             SET lease_holder = $2,
                 lease_expires_at = clock_timestamp() + $3 * interval '1 millisecond',
                 updated_at = now()
             WHERE name = $1
               AND (lease_holder IS NULL OR lease_holder = $2 OR lease_expires_at < clock_timestamp())
             RETURNING last_transaction_id, last_position",
        )
        .bind(name)
        .bind(holder)
        .bind(ttl_ms)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Cursor { transaction_id: r.try_get("last_transaction_id")?, position: r.try_get("last_position")? })
        })
        .transpose()
        .map_err(|e: sqlx::Error| e.into())
    }

    pub(crate) async fn renew_lease(&self, name: &str, holder: &str, ttl_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE subscriptions SET lease_expires_at = clock_timestamp() + $3 * interval '1 millisecond'
             WHERE name = $1 AND lease_holder = $2",
        )
        .bind(name)
        .bind(holder)
        .bind(ttl_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE subscriptions SET lease_holder = NULL, lease_expires_at = NULL
             WHERE name = $1 AND lease_holder = $2",
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
        let mut tx = self.pool.begin().await?;
        let appended = if append.events.is_empty() { Vec::new() } else { append_in(&mut tx, append).await? };
        if let Some(step) = facts {
            // Before the checkpoint moves: the facts follow it only while in step with it.
            let advanced = sqlx::query(facts::sql::ADVANCE)
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
             SET last_transaction_id = $3, last_position = $4, handled = handled + $5,
                 last_error = NULL, failing_since = NULL, updated_at = now()
             WHERE name = $1 AND lease_holder = $2",
        )
        .bind(name)
        .bind(holder)
        .bind(checkpoint.transaction_id)
        .bind(checkpoint.position)
        .bind(handled)
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() != 1 {
            // Dropping `tx` rolls back the handler's events with the checkpoint.
            return Err(StoreError::LeaseLost(name.to_string()));
        }
        tx.commit().await?;
        if appended.iter().any(|a| !a.duplicate) {
            self.after_commit();
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
            sqlx::query_as(facts::sql::PROGRESS).bind(subscription).fetch_one(&self.pool).await?;
        Ok((Cursor { transaction_id: t, position: p }, Cursor { transaction_id: ct, position: cp }))
    }

    pub(crate) async fn reset_facts(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        // The progress row first, as every commit and fold takes it first: no deadlock.
        sqlx::query(
            "UPDATE facts_progress SET last_transaction_id = 0, last_position = 0, reset_at = now() WHERE id = 1",
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!("TRUNCATE {}", facts::sql::TABLES.join(", "))).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Folds `events` and moves the progress from `from` to `to`, if `holder`
    /// holds the lease and nobody moved the progress meanwhile (false: nothing done).
    pub(crate) async fn fold_facts(
        &self,
        subscription: &str,
        holder: &str,
        from: Cursor,
        events: &[RecordedEvent],
        to: Cursor,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let (holds,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM subscriptions WHERE name = $1 AND lease_holder = $2
                 AND lease_expires_at > clock_timestamp()",
        )
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
            "UPDATE subscriptions SET last_error = $3, failing_since = coalesce(failing_since, now()), updated_at = now()
             WHERE name = $1 AND lease_holder = $2",
        )
        .bind(name)
        .bind(holder)
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// Appends inside an open transaction: version checks, insert, duplicate checks.
async fn append_in(conn: &mut PgConnection, append: &Append) -> Result<Vec<Appended>, StoreError> {
    let ids: Vec<Uuid> = append.events.iter().map(|e| e.event_id).collect();
    if !append.expected.is_empty() {
        // BTreeMap iterates in key order, so concurrent appenders lock in the same
        // order and cannot deadlock.
        for (correlation_id, expected) in &append.expected {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7364))")
                .bind(correlation_id)
                .execute(&mut *conn)
                .await?;
            let actual: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM events WHERE correlation_id = $1 AND ($2::text[] IS NULL OR type = ANY($2))",
            )
            .bind(correlation_id)
            .bind(expected.counted_types())
            .fetch_one(&mut *conn)
            .await?;
            if !expected.admits(actual) {
                // A retried append whose first attempt committed trips over its
                // own events here: answer it as the duplicate it is. Looked up
                // only now, so the common case costs no extra query.
                let stored = stored_events(conn, &ids).await?;
                if stored.len() == ids.len() {
                    return duplicates(append, &stored);
                }
                return Err(StoreError::VersionConflict {
                    correlation_id: correlation_id.clone(),
                    expected: expected.describe(),
                    actual,
                });
            }
        }
    }

    let n = append.events.len();
    let inserted = insert(conn, append, true).await?;
    if inserted.len() == n {
        return Ok(positions_in_order(append, inserted));
    }
    // Some were stored before: report their positions, after checking they are
    // the same events and not a reused id.
    let missing: Vec<Uuid> = ids.iter().filter(|id| !inserted.iter().any(|(i, _)| i == *id)).copied().collect();
    let stored = stored_events(conn, &missing).await?;
    let mut out = Vec::with_capacity(n);
    for e in &append.events {
        if let Some((_, position)) = inserted.iter().find(|(id, _)| *id == e.event_id) {
            out.push(Appended { event_id: e.event_id, position: *position, duplicate: false });
        } else {
            let s = stored
                .iter()
                .find(|s| s.event_id == e.event_id)
                .ok_or_else(|| StoreError::Corrupt(format!("event {} neither inserted nor stored", e.event_id)))?;
            if !super::same_event(e, &s.event_type, &s.correlation_id, &s.payload) {
                return Err(StoreError::EventIdReused { event_id: e.event_id });
            }
            out.push(Appended { event_id: e.event_id, position: s.position, duplicate: true });
        }
    }
    Ok(out)
}

/// Inserts the batch in one statement; returns (event_id, position) of the rows
/// written. With `skip_duplicates`, ids already stored are skipped silently;
/// without, they fail the statement.
async fn insert(
    conn: &mut PgConnection,
    append: &Append,
    skip_duplicates: bool,
) -> Result<Vec<(Uuid, i64)>, StoreError> {
    let n = append.events.len();
    let mut ids = Vec::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    let mut actors = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut correlations = Vec::with_capacity(n);
    let mut causations = Vec::with_capacity(n);
    let mut payloads = Vec::with_capacity(n);
    let mut metadatas = Vec::with_capacity(n);
    for e in &append.events {
        ids.push(e.event_id);
        types.push(e.event_type.as_str());
        actors.push(e.actor.as_str());
        statuses.push(e.status.as_str());
        correlations.push(e.correlation_id.as_str());
        causations.push(e.causation_id);
        payloads.push(&e.payload);
        metadatas.push(&e.metadata);
    }
    let sql = if skip_duplicates { INSERT_SKIPPING_DUPLICATES } else { INSERT };
    sqlx::query_as(sql)
        .bind(&ids)
        .bind(&types)
        .bind(&actors)
        .bind(&statuses)
        .bind(&correlations)
        .bind(&causations)
        .bind(&payloads)
        .bind(&metadatas)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| refusal(e, append))
}

const INSERT: &str = "INSERT INTO events (event_id, type, actor, status, correlation_id, causation_id, payload, metadata)
     SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::uuid[], $7::jsonb[], $8::jsonb[])
     RETURNING event_id, position";

const INSERT_SKIPPING_DUPLICATES: &str =
    "INSERT INTO events (event_id, type, actor, status, correlation_id, causation_id, payload, metadata)
     SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::uuid[], $7::jsonb[], $8::jsonb[])
     ON CONFLICT (event_id) DO NOTHING
     RETURNING event_id, position";

fn positions_in_order(append: &Append, inserted: Vec<(Uuid, i64)>) -> Vec<Appended> {
    let mut by_id: std::collections::HashMap<Uuid, i64> = inserted.into_iter().collect();
    append
        .events
        .iter()
        .map(|e| Appended {
            event_id: e.event_id,
            position: by_id.remove(&e.event_id).unwrap_or_default(),
            duplicate: false,
        })
        .collect()
}

struct StoredEvent {
    event_id: Uuid,
    position: i64,
    event_type: String,
    correlation_id: String,
    payload: serde_json::Value,
}

async fn stored_events(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<StoredEvent>, StoreError> {
    let rows =
        sqlx::query("SELECT event_id, position, type, correlation_id, payload FROM events WHERE event_id = ANY($1)")
            .bind(ids)
            .fetch_all(&mut *conn)
            .await?;
    rows.iter()
        .map(|r| {
            Ok(StoredEvent {
                event_id: r.try_get("event_id")?,
                position: r.try_get("position")?,
                event_type: r.try_get("type")?,
                correlation_id: r.try_get("correlation_id")?,
                payload: r.try_get("payload")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(StoreError::from)
}

fn duplicates(append: &Append, stored: &[StoredEvent]) -> Result<Vec<Appended>, StoreError> {
    append
        .events
        .iter()
        .map(|e| {
            let s = stored
                .iter()
                .find(|s| s.event_id == e.event_id)
                .ok_or_else(|| StoreError::Corrupt(format!("event {} vanished", e.event_id)))?;
            if !super::same_event(e, &s.event_type, &s.correlation_id, &s.payload) {
                return Err(StoreError::EventIdReused { event_id: e.event_id });
            }
            Ok(Appended { event_id: e.event_id, position: s.position, duplicate: true })
        })
        .collect()
}

/// Turns a row-level-security or privilege refusal into a typed error naming what
/// was refused.
fn refusal(e: sqlx::Error, append: &Append) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        let msg = db.message();
        if db.code().as_deref() == Some("42501") && !msg.contains("append-only") {
            let mut pairs: Vec<String> =
                append.events.iter().map(|e| format!("`{}` as `{}`", e.event_type, e.actor)).collect();
            pairs.dedup();
            return StoreError::NotPermitted { what: pairs.join(", ") };
        }
    }
    e.into()
}

fn decode(row: &PgRow) -> Result<RecordedEvent, StoreError> {
    Ok(RecordedEvent {
        position: row.try_get("position")?,
        transaction_id: row.try_get("transaction_id")?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("type")?,
        actor: row.try_get("actor")?,
        status: row.try_get("status")?,
        correlation_id: row.try_get("correlation_id")?,
        causation_id: row.try_get("causation_id")?,
        payload: row.try_get("payload")?,
        metadata: row.try_get("metadata")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Keeps one LISTEN connection open and turns every notification into a wake-up.
/// After a reconnect it wakes readers too, since notifications sent while it was
/// away are lost.
async fn listen(pool: PgPool, wakeups: Arc<Wakeups>) {
    let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let mut attempt = 0u32;
    loop {
        if pool.is_closed() {
            return; // the store was closed: nothing left to wake
        }
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(_) if pool.is_closed() => return,
            Err(e) => {
                tracing::warn!(error = %e, attempt, "cannot LISTEN for new events; readers poll meanwhile");
                tokio::time::sleep(backoff.delay(attempt)).await;
                attempt = attempt.saturating_add(1);
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::warn!(error = %e, attempt, "LISTEN failed; readers poll meanwhile");
            tokio::time::sleep(backoff.delay(attempt)).await;
            attempt = attempt.saturating_add(1);
            continue;
        }
        attempt = 0;
        wakeups.bump();
        loop {
            match listener.try_recv().await {
                Ok(Some(_)) => wakeups.bump(),
                // The connection dropped; the next call reconnects. Anything sent
                // meanwhile is lost, so make readers look.
                Ok(None) => wakeups.bump(),
                Err(_) if pool.is_closed() => return,
                Err(e) => {
                    tracing::warn!(error = %e, "LISTEN connection failed; reconnecting");
                    wakeups.bump();
                    break;
                }
            }
        }
    }
}

/// Removes a password from anything that might echo a connection URL.
fn redact(text: &str) -> String {
    match (text.find("://"), text.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &text[s + 3..at];
            match creds.find(':') {
                Some(colon) => format!("{}{}:***{}", &text[..s + 3], &creds[..colon], &text[at..]),
                None => text.to_string(),
            }
        }
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redact_hides_passwords() {
        assert_eq!(super::redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(super::redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
