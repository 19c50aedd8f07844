//! What only the PostgreSQL backend promises: gap-free reads under concurrent
//! writers, per-service roles, and the design document's SQL.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bookkeeper_core::testing::TestDb;
use bookkeeper_core::{
    Append, Handler, HandlerError, NewEvent, RecordedEvent, StepOutcome, Store, StoreError, Subscription,
    SubscriptionOptions, TypeFilter,
};
use sqlx::Row;
use uuid::Uuid;

use crate::helpers::{decision, proposal, PATIENCE};
use crate::subscriptions::wait_until;

async fn postgres() -> Option<TestDb> {
    TestDb::postgres().await
}

/// 8 writers whose transactions commit in random order, 3 live subscribers: each
/// subscriber must see every event exactly once. A reader that resumed after "the
/// last position it saw" would lose events here, because positions are taken at
/// INSERT and the transactions that hold the lower ones commit later.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_committing_out_of_order_lose_no_event_for_any_subscriber() {
    let Some(db) = postgres().await else { return };
    const WRITERS: usize = 8;
    const ROUNDS: usize = 25;
    const SUBSCRIBERS: usize = 3;

    #[derive(Clone, Default)]
    struct Collect(Arc<Mutex<Vec<Uuid>>>);
    impl Handler for Collect {
        async fn handle(&self, event: &RecordedEvent) -> Result<Append, HandlerError> {
            self.0.lock().unwrap().push(event.event_id);
            Ok(Append::nothing())
        }
    }

    let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut collectors = Vec::new();
    let mut subscriber_tasks = Vec::new();
    for i in 0..SUBSCRIBERS {
        let collect = Collect::default();
        collectors.push(collect.clone());
        let options = SubscriptionOptions { poll_interval: Duration::from_millis(200), ..Default::default() };
        let sub =
            Subscription::new(db.another_store().await, format!("test.concurrent.{i}"), TypeFilter::all(), collect)
                .with_options(options);
        let mut stop = stop_tx.subscribe();
        subscriber_tasks.push(tokio::spawn(sub.run(async move {
            let _ = stop.recv().await;
        })));
    }

    // Each writer: open a transaction, insert (taking a position), sleep a random
    // while, commit; record the order in which commits completed.
    let commit_order = Arc::new(Mutex::new(Vec::<i64>::new()));
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(WRITERS as u32).connect(&db.url).await.unwrap();
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let pool = pool.clone();
        let order = commit_order.clone();
        let notify_store = db.another_store().await;
        writers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for r in 0..ROUNDS {
                let id = Uuid::new_v4();
                let mut tx = pool.begin().await.unwrap();
                let position: i64 = sqlx::query_scalar(
                    "INSERT INTO events (event_id, type, actor, status, correlation_id)
                     VALUES ($1, 'ReceiptAttachmentProposed', 'book-e', 'PROPOSED', $2) RETURNING position",
                )
                .bind(id)
                .bind(format!("w{w}-r{r}"))
                .fetch_one(&mut *tx)
                .await
                .unwrap();
                tokio::time::sleep(Duration::from_millis(fastrand::u64(0..15))).await;
                tx.commit().await.unwrap();
                order.lock().unwrap().push(position);
                ids.push(id);
                // Half the rounds also append through the store (idempotent
                // events of their own), which sends the NOTIFY.
                if r % 2 == 0 {
                    let e = proposal(&format!("s{w}-r{r}"));
                    ids.push(e.event_id);
                    notify_store.append_events(vec![e]).await.unwrap();
                }
            }
            ids
        }));
    }
    let mut expected = HashSet::new();
    for w in writers {
        expected.extend(w.await.unwrap());
    }
    let total = expected.len();
    assert_eq!(total, WRITERS * ROUNDS + WRITERS * ROUNDS.div_ceil(2));

    // The test only proves something if commits really came out of position order.
    let order = commit_order.lock().unwrap().clone();
    let inversions = order.windows(2).filter(|w| w[0] > w[1]).count();
    assert!(inversions > 0, "no out-of-order commits happened; the test proved nothing");

    for c in &collectors {
        wait_until(|| c.0.lock().unwrap().len() >= total).await;
    }
    let _ = stop_tx.send(());
    for t in subscriber_tasks {
        t.await.unwrap();
    }
    for (i, c) in collectors.iter().enumerate() {
        let seen = c.0.lock().unwrap().clone();
        let unique: HashSet<_> = seen.iter().copied().collect();
        assert_eq!(seen.len(), total, "subscriber {i} saw {} events, expected {total}", seen.len());
        assert_eq!(unique, expected, "subscriber {i} missed or invented events");
    }
    eprintln!("{total} events, {inversions} out-of-order commits, {SUBSCRIBERS} subscribers saw all exactly once");
    db.cleanup().await;
}

/// Role, event it may append, event it must not.
fn duties() -> Vec<(&'static str, NewEvent, NewEvent)> {
    vec![
        ("book_e", proposal("r-1"), decision("r-1", "Approved", "system:auto", "AUTO_APPROVED")),
        (
            "review_e",
            decision("r-1", "Approved", "system:auto", "AUTO_APPROVED"),
            decision("r-1", "Executed", "system", "EXECUTED"),
        ),
        (
            "accounting_api",
            decision("r-1", "Executed", "system", "EXECUTED"),
            decision("r-1", "Approved", "system", "APPROVED"),
        ),
        (
            "cron",
            NewEvent::new("ComplianceCheckCompleted", "cron", "COMPLETED", "daily"),
            proposal("r-2").with_id(Uuid::new_v4()),
        ),
        (
            "cost_api",
            NewEvent::new("MonthlyCostReport", "cost-api", "REPORTED", "2026-11"),
            NewEvent::new("ComplianceCheckCompleted", "cost-api", "COMPLETED", "daily"),
        ),
    ]
}

#[tokio::test]
async fn each_service_role_appends_only_what_it_owns() {
    let Some(db) = postgres().await else { return };
    for (role, allowed, forbidden) in duties() {
        let store = Store::connect(&db.role_url(role)).await.unwrap();
        store.ensure_migrated().await.unwrap_or_else(|e| panic!("{role}: {e}"));
        store.append_events(vec![allowed.clone()]).await.unwrap_or_else(|e| panic!("{role} may append its own: {e}"));
        let err = store.append_events(vec![forbidden.clone()]).await.unwrap_err();
        assert!(matches!(err, StoreError::NotPermitted { .. }), "{role}: {err}");
        assert!(err.to_string().contains(&forbidden.event_type), "{err}");
        // Impersonation: the right type under someone else's name.
        let mut impostor = allowed.clone().with_id(Uuid::new_v4());
        impostor.actor = "user:mallory".into();
        if role != "review_e" {
            assert!(store.append_events(vec![impostor]).await.is_err(), "{role} appended as another actor");
        }
        // Reading everything is allowed.
        assert!(!store
            .read_waiting(Default::default(), &TypeFilter::all(), 10, PATIENCE)
            .await
            .unwrap()
            .events
            .is_empty());
        store.close().await;
    }
    // The refused appends left no trace.
    let stored = db.store.read_waiting(Default::default(), &TypeFilter::all(), 100, PATIENCE).await.unwrap().events;
    assert_eq!(stored.len(), 5);
    db.cleanup().await;
}

#[tokio::test]
async fn no_role_can_change_the_log_or_place_an_event_behind_readers() {
    let Some(db) = postgres().await else { return };
    db.store.append_events(vec![proposal("x")]).await.unwrap();
    for role in ["book_e", "review_e", "accounting_api", "cron", "cost_api"] {
        let pool = sqlx::PgPool::connect(&db.role_url(role)).await.unwrap();
        for sql in [
            "UPDATE events SET actor = 'book-e'",
            "DELETE FROM events",
            "TRUNCATE events",
            // Choosing your own transaction id would hide an event from readers.
            "INSERT INTO events (event_id, type, actor, status, correlation_id, transaction_id)
             VALUES (gen_random_uuid(), 'ReceiptAttachmentProposed', 'book-e', 'PROPOSED', 'y', 1)",
            "INSERT INTO events (position, event_id, type, actor, status, correlation_id) OVERRIDING SYSTEM VALUE
             VALUES (1000000, gen_random_uuid(), 'ReceiptAttachmentProposed', 'book-e', 'PROPOSED', 'y')",
            "DROP TABLE events",
            "ALTER TABLE events DISABLE TRIGGER events_no_update",
        ] {
            let err = sqlx::query(sql).execute(&pool).await.expect_err(&format!("{role}: {sql}"));
            let msg = err.to_string();
            assert!(
                msg.contains("permission denied") || msg.contains("must be owner") || msg.contains("append-only"),
                "{role}: {sql}: {msg}"
            );
        }
        pool.close().await;
    }
    assert_eq!(
        db.store.read_waiting(Default::default(), &TypeFilter::all(), 10, PATIENCE).await.unwrap().events.len(),
        1
    );
    db.cleanup().await;
}

#[tokio::test]
async fn a_role_cannot_move_another_services_checkpoint() {
    let Some(db) = postgres().await else { return };
    #[derive(Clone)]
    struct Nop;
    impl Handler for Nop {
        async fn handle(&self, _: &RecordedEvent) -> Result<Append, HandlerError> {
            Ok(Append::nothing())
        }
    }
    db.store.append_events(vec![proposal("x")]).await.unwrap();
    let review = Store::connect(&db.role_url("review_e")).await.unwrap();
    let mut sub = Subscription::new(review, "review-e.proposals", TypeFilter::all(), Nop);
    assert_eq!(sub.drain().await.unwrap(), 1);
    let book = sqlx::PgPool::connect(&db.role_url("book_e")).await.unwrap();
    let moved = sqlx::query("UPDATE subscriptions SET last_position = 0, last_transaction_id = 0")
        .execute(&book)
        .await
        .unwrap();
    assert_eq!(moved.rows_affected(), 0, "book_e must not see review-e's checkpoint");
    db.cleanup().await;
}

#[tokio::test]
async fn the_design_documents_queries_run_unchanged() {
    let Some(db) = postgres().await else { return };
    let p = proposal("abc-123");
    db.store.append_events(vec![p.clone()]).await.unwrap();
    db.store.append_events(vec![decision("abc-123", "Approved", "system:auto", "AUTO_APPROVED")]).await.unwrap();
    db.store.append_events(vec![decision("abc-123", "Executed", "system", "EXECUTED")]).await.unwrap();
    db.store
        .append_events(vec![proposal("other"), decision("other", "Rejected", "system:auto", "REJECTED")])
        .await
        .unwrap();
    let pool = db.store.pg_pool().unwrap();

    let audit = sqlx::query(
        "SELECT type, actor, status, created_at FROM events WHERE correlation_id = 'abc-123' ORDER BY created_at;",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let rows: Vec<(String, String, String)> =
        audit.iter().map(|r| (r.get("type"), r.get("actor"), r.get("status"))).collect();
    assert_eq!(
        rows,
        [
            ("ReceiptAttachmentProposed".into(), "book-e".into(), "PROPOSED".into()),
            ("ReceiptAttachmentApproved".into(), "system:auto".into(), "AUTO_APPROVED".into()),
            ("ReceiptAttachmentExecuted".into(), "system".into(), "EXECUTED".into()),
        ]
    );

    let today = sqlx::query("SELECT * FROM events WHERE actor = 'book-e' AND created_at > NOW() - INTERVAL '1 day';")
        .fetch_all(pool)
        .await
        .unwrap();
    assert_eq!(today.len(), 2);

    let rate = sqlx::query(
        "SELECT COUNT(*) FILTER (WHERE type LIKE '%Approved') as approved, COUNT(*) FILTER (WHERE type LIKE '%Rejected') as rejected FROM events;",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!((rate.get::<i64, _>("approved"), rate.get::<i64, _>("rejected")), (1, 1));
    db.cleanup().await;
}

#[tokio::test]
async fn an_unreachable_database_is_a_clear_retryable_error() {
    // Nothing listens on port 1.
    let err = Store::connect_with(
        "postgres://bookkeeper@127.0.0.1:1/bookkeeper",
        bookkeeper_core::store::ConnectOptions { acquire_timeout: Duration::from_secs(2), ..Default::default() },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(err.is_retryable());
    assert!(err.to_string().starts_with("the database is unavailable"), "{err}");

    let err = Store::connect("mysql://localhost/x").await.unwrap_err();
    assert_eq!(err.to_string(), "unsupported DATABASE_URL scheme `mysql` (use postgres:// or sqlite://)");
}

#[tokio::test]
async fn a_service_role_reports_pending_migrations_instead_of_failing_obscurely() {
    let Some(db) = postgres().await else { return };
    // Forget the last migration, as if this binary were newer than the schema.
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 3").execute(db.store.pg_pool().unwrap()).await.unwrap();
    let store = Store::connect(&db.role_url("cron")).await.unwrap();
    assert_eq!(store.pending_migrations().await.unwrap(), 1);
    let err = store.ensure_migrated().await.unwrap_err();
    assert!(matches!(err, StoreError::NotMigrated { pending: 1 }), "{err}");
    assert!(err.to_string().contains("run `bookkeeper migrate`"));
    store.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn live_wake_up_survives_many_appenders_sharing_one_notify() {
    let Some(db) = postgres().await else { return };
    // Many concurrent appends from one store coalesce into few NOTIFYs; a listener
    // in another store must still end up seeing all of them promptly.
    #[derive(Clone, Default)]
    struct Count(Arc<Mutex<HashMap<String, usize>>>);
    impl Handler for Count {
        async fn handle(&self, e: &RecordedEvent) -> Result<Append, HandlerError> {
            *self.0.lock().unwrap().entry(e.correlation_id.clone()).or_default() += 1;
            Ok(Append::nothing())
        }
    }
    let count = Count::default();
    let options = SubscriptionOptions { poll_interval: Duration::from_secs(30), ..Default::default() };
    let sub = Subscription::new(db.another_store().await, "test.burst", TypeFilter::all(), count.clone())
        .with_options(options);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(sub.run(async move {
        let _ = stop_rx.await;
    }));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let writer = db.another_store().await;
    let mut appends = Vec::new();
    for i in 0..50 {
        let w = writer.clone();
        appends.push(tokio::spawn(async move { w.append_events(vec![proposal(&format!("b{i}"))]).await }));
    }
    for a in appends {
        a.await.unwrap().unwrap();
    }
    wait_until(|| count.0.lock().unwrap().len() == 50).await;
    let _ = stop_tx.send(());
    task.await.unwrap();
    assert!(count.0.lock().unwrap().values().all(|n| *n == 1));
    db.cleanup().await;
}

/// A TCP proxy in front of PostgreSQL that a test can cut and restore, to play a
/// database outage for one client without disturbing the others.
struct Proxy {
    port: u16,
    up: Arc<std::sync::atomic::AtomicBool>,
    connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let (up2, conns2) = (up.clone(), connections.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up2.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: connection refused, in effect
                }
                let target = target.clone();
                conns2.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                }));
            }
        });
        Proxy { port, up, connections, accept }
    }

    fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for c in self.connections.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscriber_rides_out_a_database_outage_and_loses_nothing() {
    let Some(db) = postgres().await else { return };
    let options: sqlx::postgres::PgConnectOptions = db.url.parse().unwrap();
    let proxy = Proxy::start(format!("{}:{}", options.get_host(), options.get_port())).await;
    let proxied_url = {
        use sqlx::ConnectOptions;
        options.clone().host("127.0.0.1").port(proxy.port).to_url_lossy().to_string()
    };
    let connect =
        bookkeeper_core::store::ConnectOptions { acquire_timeout: Duration::from_millis(500), ..Default::default() };
    let behind_proxy = Store::connect_with(&proxied_url, connect).await.unwrap();

    // Decides each proposal once; the decision's id derives from the proposal, so a
    // handler run twice (a commit whose reply was lost) still appends one decision.
    #[derive(Clone, Default)]
    struct Decide(Arc<Mutex<Vec<Uuid>>>);
    impl Handler for Decide {
        async fn handle(&self, e: &RecordedEvent) -> Result<Append, HandlerError> {
            self.0.lock().unwrap().push(e.event_id);
            Ok(Append::one(
                decision(&e.correlation_id, "Approved", "system:auto", "AUTO_APPROVED")
                    .derived_from(e.event_id, "test.decision"),
            ))
        }
    }
    let decide = Decide::default();
    let options = SubscriptionOptions {
        poll_interval: Duration::from_millis(100),
        retry: bookkeeper_core::retry::Backoff::new(Duration::from_millis(20), Duration::from_millis(200)),
        ..Default::default()
    };
    let sub = Subscription::new(behind_proxy.clone(), "test.outage", TypeFilter::of(["*Proposed"]), decide.clone())
        .with_options(options);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(sub.run(async move {
        let _ = stop_rx.await;
    }));

    let decisions = |store: Store| async move {
        store
            .read_waiting(Default::default(), &TypeFilter::of(["*Approved"]), 1000, PATIENCE)
            .await
            .unwrap()
            .events
            .len()
    };
    let append = |from: usize, to: usize| {
        let store = db.store.clone();
        async move {
            for i in from..to {
                store.append_events(vec![proposal(&format!("o-{i}"))]).await.unwrap();
            }
        }
    };
    append(0, 20).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while decisions(db.store.clone()).await < 20 {
        assert!(tokio::time::Instant::now() < deadline, "the first 20 were not decided");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The database goes away for this client. Writes through it fail clearly and
    // write nothing; other writers carry on.
    proxy.cut();
    let err = behind_proxy.append_events(vec![proposal("during-outage")]).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    append(20, 40).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    proxy.restore();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while decisions(db.store.clone()).await < 40 {
        assert!(tokio::time::Instant::now() < deadline, "the subscriber did not catch up after the outage");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_tx.send(());
    task.await.unwrap();

    let all = db.store.read_waiting(Default::default(), &TypeFilter::all(), 1000, PATIENCE).await.unwrap().events;
    let proposals: HashSet<_> = all
        .iter()
        .filter(|e| bookkeeper_core::lifecycle::stage(&e.event_type) == Some(bookkeeper_core::domain::Stage::Proposed))
        .map(|e| e.correlation_id.clone())
        .collect();
    let decided: Vec<_> = all
        .iter()
        .filter(|e| bookkeeper_core::lifecycle::stage(&e.event_type) == Some(bookkeeper_core::domain::Stage::Approved))
        .map(|e| e.correlation_id.clone())
        .collect();
    assert_eq!(proposals.len(), 40, "the append during the outage must not have been written");
    assert_eq!(decided.len(), 40, "each proposal decided exactly once");
    assert_eq!(decided.iter().cloned().collect::<HashSet<_>>(), proposals);
    let seen: HashSet<_> = decide.0.lock().unwrap().iter().copied().collect();
    assert_eq!(seen.len(), 40);
    behind_proxy.close().await;
    drop(proxy);
    db.cleanup().await;
}

/// Every role, every type of the closed set, every candidate actor and status:
/// the database admits exactly what `bookkeeper_core::roles` says, and nothing a
/// pattern would have let through (`ComplianceCheckApproved`, `XProposed`).
#[tokio::test]
async fn the_database_admits_exactly_the_roles_table() {
    use bookkeeper_core::roles::Role;
    use bookkeeper_core::EventType;
    let Some(db) = postgres().await else { return };
    let mut types: Vec<String> = EventType::all().iter().map(|t| t.name()).collect();
    types.extend(
        ["ComplianceCheckApproved", "XInvoiceRegistrationProposed", "PolicyApproved", "Unknown"].map(String::from),
    );
    let actors = [
        "book-e",
        "review-e",
        "system:auto",
        "system",
        "accounting-api",
        "cron",
        "cost-api",
        "user:kari",
        "user:",
        "user: x",
    ];
    let statuses = [
        "PROPOSED",
        "AUTO_APPROVED",
        "APPROVED",
        "REJECTED",
        "ESCALATED",
        "EXECUTING",
        "EXECUTED",
        "FAILED",
        "SKIPPED",
        "COMPLETED",
        "REPORTED",
        "PUBLISHED",
        "RETIRED",
        "PARKED",
    ];
    for role in Role::ALL {
        let pool = sqlx::PgPool::connect(&db.role_url(role.name())).await.unwrap();
        let mut tx = pool.begin().await.unwrap();
        // Many appends in one transaction, each rolled back to a savepoint: the
        // transaction says it appends at its top (migration 8), so rolling a
        // savepoint back does not undo that.
        sqlx::query("SELECT bookkeeper_begin_appending()").execute(&mut *tx).await.unwrap();
        let mut n = 0;
        for t in &types {
            for actor in actors {
                for status in statuses {
                    sqlx::query("SAVEPOINT s").execute(&mut *tx).await.unwrap();
                    n += 1;
                    let inserted = sqlx::query(
                        "INSERT INTO events (event_id, type, actor, status, correlation_id) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(Uuid::new_v4())
                    .bind(t)
                    .bind(actor)
                    .bind(status)
                    .bind(format!("c-{n}"))
                    .execute(&mut *tx)
                    .await;
                    let expected = role.may_append(t, actor, status);
                    assert_eq!(
                        inserted.is_ok(),
                        expected,
                        "{} appending {t} as {actor} {status}: {inserted:?}",
                        role.name()
                    );
                    sqlx::query("ROLLBACK TO SAVEPOINT s").execute(&mut *tx).await.unwrap();
                }
            }
        }
        tx.rollback().await.unwrap();
        pool.close().await;
    }
    db.cleanup().await;
}

/// The attack of issue 11: Book-E's role opens a transaction before the honest
/// proposal, so its own would sort first in read order. The database refuses
/// the second proposal whichever commits first, whatever the writer's snapshot.
#[tokio::test]
async fn a_second_proposal_for_an_action_is_refused_even_from_an_older_transaction() {
    let Some(db) = postgres().await else { return };
    let book_e = sqlx::PgPool::connect(&db.role_url("book_e")).await.unwrap();
    let mut early = book_e.begin().await.unwrap();
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").execute(&mut *early).await.unwrap();
    sqlx::query("SELECT 1").execute(&mut *early).await.unwrap(); // its snapshot is taken now
    let honest = Store::connect(&db.role_url("book_e")).await.unwrap();
    honest.append_events(vec![proposal("inv-1")]).await.unwrap();
    let slipped = sqlx::query(
        "INSERT INTO events (event_id, type, actor, status, correlation_id, payload)
         VALUES (gen_random_uuid(), 'InvoiceRegistrationProposed', 'book-e', 'PROPOSED', 'inv-1', '{\"amount\": 1}')",
    )
    .execute(&mut *early)
    .await
    .expect_err("a second proposal for inv-1 was stored");
    assert!(slipped.to_string().contains("events_one_proposal_per_action"), "{slipped}");
    drop(early);
    // Through the store: a clear, typed error.
    let err = honest.append_events(vec![proposal("inv-1").with_id(Uuid::new_v4())]).await.unwrap_err();
    assert!(matches!(err, StoreError::ProposalExists { .. }), "{err}");
    // A retry of the same proposal is still the same event, stored once.
    let first = db.store.read_correlation("inv-1").await.unwrap();
    assert_eq!(first.len(), 1);
    honest.close().await;
    book_e.close().await;
    db.cleanup().await;
}

/// A role cannot create another service's subscription first (and keep that
/// service on standby for good), nor rename its own into one.
#[tokio::test]
async fn a_role_cannot_squat_another_services_subscription() {
    let Some(db) = postgres().await else { return };
    let book = sqlx::PgPool::connect(&db.role_url("book_e")).await.unwrap();
    for sql in [
        "INSERT INTO subscriptions (name) VALUES ('review-e.proposals')",
        "INSERT INTO subscriptions (name, owner_role) VALUES ('review-e.proposals', 'review_e')",
        "INSERT INTO subscriptions (name) VALUES ('accounting-api.approvals')",
    ] {
        let err = sqlx::query(sql).execute(&book).await.expect_err(sql);
        assert!(err.to_string().contains("row-level security"), "{sql}: {err}");
    }
    sqlx::query("INSERT INTO subscriptions (name) VALUES ('book-e.notifications')").execute(&book).await.unwrap();
    let renamed =
        sqlx::query("UPDATE subscriptions SET name = 'review-e.proposals' WHERE name = 'book-e.notifications'")
            .execute(&book)
            .await;
    assert!(renamed.is_err(), "renamed into another service's subscription");
    // Review-E takes its own.
    let review = Store::connect(&db.role_url("review_e")).await.unwrap();
    #[derive(Clone)]
    struct Nop;
    impl Handler for Nop {
        async fn handle(&self, _: &RecordedEvent) -> Result<Append, HandlerError> {
            Ok(Append::nothing())
        }
    }
    let mut sub = Subscription::new(review, "review-e.proposals", TypeFilter::all(), Nop);
    assert!(!matches!(sub.step().await.unwrap(), StepOutcome::Standby));
    book.close().await;
    db.cleanup().await;
}

/// A stored document is what its hash says, checked by the database.
#[tokio::test]
async fn the_database_refuses_a_blob_whose_hash_does_not_match() {
    let Some(db) = postgres().await else { return };
    let pool = sqlx::PgPool::connect(&db.role_url("accounting_api")).await.unwrap();
    let err =
        sqlx::query("INSERT INTO blobs (sha256, content_type, size, bytes) VALUES ($1, 'application/pdf', 3, 'abc')")
            .bind("0".repeat(64))
            .execute(&pool)
            .await
            .expect_err("a blob under a wrong hash was stored");
    assert!(err.to_string().contains("blobs_hash_matches_bytes"), "{err}");
    let sha = db.store.put_blob(b"%PDF-1.7 ok", "application/pdf").await.unwrap();
    assert!(db.store.get_blob(&sha).await.unwrap().is_some());
    pool.close().await;
    db.cleanup().await;
}

/// A write transaction left open on the same server (in this database, and in
/// another one) holds no reader back: the horizon is bounded by the
/// transactions that append, not by every transaction running. One that does
/// append still holds readers at its place, which is what keeps reads gap-free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrelated_open_transaction_holds_no_reader_back() {
    use bookkeeper_core::Cursor;
    use sqlx::Connection;
    let Some(db) = postgres().await else { return };
    let mut here = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql("BEGIN; CREATE TEMP TABLE forgotten (a int); INSERT INTO forgotten VALUES (1)")
        .execute(&mut here)
        .await
        .unwrap();
    let mut elsewhere = sqlx::PgConnection::connect(&bookkeeper_core::testing::postgres_admin_url()).await.unwrap();
    sqlx::raw_sql("BEGIN; CREATE TEMP TABLE batch_job (a int); INSERT INTO batch_job VALUES (1)")
        .execute(&mut elsewhere)
        .await
        .unwrap();

    // Read within a second (a quarter of one, once the cheap horizon is seen to
    // stand still), and by a live subscriber within a second.
    let store = db.another_store().await;
    store.append_events(vec![proposal("beside-an-open-transaction")]).await.unwrap();
    let started = std::time::Instant::now();
    let batch = store.read_waiting(Cursor::START, &TypeFilter::all(), 100, Duration::from_secs(5)).await.unwrap();
    assert!(batch.events.iter().any(|e| e.correlation_id == "beside-an-open-transaction"), "held back");
    assert!(started.elapsed() < Duration::from_secs(2), "a reader waited {:?}", started.elapsed());
    eprintln!("beside an open transaction: a one-shot reader waited {:?}", started.elapsed());

    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<String>>>);
    impl Handler for Seen {
        async fn handle(&self, event: &RecordedEvent) -> Result<Append, HandlerError> {
            self.0.lock().unwrap().push(event.correlation_id.clone());
            Ok(Append::nothing())
        }
    }
    let seen = Seen::default();
    let (stop_tx, mut stop) = tokio::sync::broadcast::channel::<()>(1);
    let sub = Subscription::new(db.another_store().await, "test.open-transaction", TypeFilter::all(), seen.clone());
    let task = tokio::spawn(sub.run(async move {
        let _ = stop.recv().await;
    }));
    wait_until(|| seen.0.lock().unwrap().len() == 1).await;
    let started = std::time::Instant::now();
    store.append_events(vec![proposal("followed-live")]).await.unwrap();
    wait_until(|| seen.0.lock().unwrap().len() == 2).await;
    assert!(started.elapsed() < Duration::from_secs(2), "a live follower waited {:?}", started.elapsed());
    eprintln!("beside an open transaction: a live follower waited {:?}", started.elapsed());

    // An appender whose transaction is still open holds readers at its place...
    let mut appender = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql(
        "BEGIN; INSERT INTO events (event_id, type, actor, status, correlation_id)
         VALUES (gen_random_uuid(), 'ReceiptAttachmentProposed', 'book-e', 'PROPOSED', 'slow-appender')",
    )
    .execute(&mut appender)
    .await
    .unwrap();
    store.append_events(vec![proposal("after-the-slow-one")]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(seen.0.lock().unwrap().len(), 2, "nothing may pass the open appender");
    // ...and both are read, in commit-safe order, once it commits.
    sqlx::raw_sql("COMMIT").execute(&mut appender).await.unwrap();
    wait_until(|| seen.0.lock().unwrap().len() == 4).await;
    assert_eq!(seen.0.lock().unwrap()[2..], ["slow-appender".to_string(), "after-the-slow-one".to_string()]);

    // A transaction that wrote something else before appending is refused: its id
    // predates the lock, so readers could have passed it.
    let err = sqlx::raw_sql(
        "INSERT INTO forgotten VALUES (2);
         INSERT INTO events (event_id, type, actor, status, correlation_id)
         VALUES (gen_random_uuid(), 'ReceiptAttachmentProposed', 'book-e', 'PROPOSED', 'late-in-a-transaction')",
    )
    .execute(&mut here)
    .await
    .unwrap_err();
    assert!(err.to_string().contains("events must be the first thing a transaction writes"), "{err}");
    sqlx::raw_sql("ROLLBACK").execute(&mut here).await.unwrap();
    // Nor can it declare itself an appender after the fact.
    let err = sqlx::raw_sql(
        "BEGIN; CREATE TEMP TABLE again (a int); INSERT INTO again VALUES (3); SELECT bookkeeper_begin_appending()",
    )
    .execute(&mut here)
    .await
    .unwrap_err();
    assert!(err.to_string().contains("must come before the transaction writes anything"), "{err}");
    sqlx::raw_sql("ROLLBACK").execute(&mut here).await.unwrap();
    sqlx::raw_sql("ROLLBACK").execute(&mut elsewhere).await.unwrap();
    let _ = stop_tx.send(());
    task.await.unwrap();
    db.cleanup().await;
}

/// A read model belongs to the role that saved it: another role neither reads
/// nor replaces it (its own save under the same name is its own row).
#[tokio::test]
async fn a_read_model_is_its_roles_own() {
    use bookkeeper_core::Cursor;
    let Some(db) = postgres().await else { return };
    let cost_api = Store::connect(&db.role_url("cost_api")).await.unwrap();
    let review_e = Store::connect(&db.role_url("review_e")).await.unwrap();
    let at = Cursor { transaction_id: 7, position: 3 };
    cost_api.save_read_model("ledger", at, &serde_json::json!({"total": 1})).await.unwrap();
    assert_eq!(review_e.load_read_model("ledger").await.unwrap(), None);
    review_e.save_read_model("ledger", at, &serde_json::json!({"total": 666})).await.unwrap();
    let (back, state) = cost_api.load_read_model("ledger").await.unwrap().unwrap();
    assert_eq!((back, state), (at, serde_json::json!({"total": 1})), "untouched by another role");
    let later = Cursor { transaction_id: 9, position: 5 };
    cost_api.save_read_model("ledger", later, &serde_json::json!({"total": 2})).await.unwrap();
    assert_eq!(cost_api.load_read_model("ledger").await.unwrap().unwrap().0, later);
    db.cleanup().await;
}

/// A compiled policy is native code Review-E runs without checking it again:
/// only Review-E's role may read or write the compile cache. Every other
/// service role is refused outright, and cannot plant an artifact for it.
#[tokio::test]
async fn only_review_e_reads_or_writes_compiled_policies() {
    let Some(db) = postgres().await else { return };
    let review_e = Store::connect(&db.role_url("review_e")).await.unwrap();
    review_e.save_compiled_policy("digest", "engine", b"native code").await.unwrap();
    for role in ["book_e", "accounting_api", "cron", "cost_api"] {
        let other = Store::connect(&db.role_url(role)).await.unwrap();
        let read = other.compiled_policy("digest", "engine").await;
        assert!(read.is_err(), "{role} must not read compiled policies: {read:?}");
        let write = other.save_compiled_policy("digest", "engine", b"planted").await;
        assert!(write.is_err(), "{role} must not write compiled policies");
    }
    assert_eq!(review_e.compiled_policy("digest", "engine").await.unwrap().as_deref(), Some(&b"native code"[..]));
    db.cleanup().await;
}

/// A one-shot process (`bookkeeper events append`) may exit right after its
/// append: its commit itself must wake a follower elsewhere, with nothing left
/// for the process to send (no close, no background NOTIFY).
#[tokio::test]
async fn a_one_shot_append_wakes_other_processes_by_its_own_commit() {
    let Some(db) = postgres().await else { return };
    let follower = Store::connect(&db.url).await.unwrap();
    let mut woken = follower.wakeups();
    // The follower listens once an ordinary append reaches it.
    let service = Store::connect(&db.url).await.unwrap();
    let mut listening = false;
    for i in 0..50 {
        service.append(Append::one(proposal(&format!("warm-{i}")))).await.unwrap();
        if tokio::time::timeout(Duration::from_millis(200), woken.changed()).await.is_ok() {
            listening = true;
            break;
        }
    }
    assert!(listening, "the follower never heard an ordinary append");
    service.close().await;
    // Let every wake-up of the warm-up arrive before the one measured.
    while tokio::time::timeout(Duration::from_millis(300), woken.changed()).await.is_ok() {}

    let options = bookkeeper_core::store::ConnectOptions {
        announce: bookkeeper_core::store::Announce::WithCommit,
        ..Default::default()
    };
    let one_shot = Store::connect_with(&db.url, options).await.unwrap();
    one_shot.append(Append::one(proposal("one-shot"))).await.unwrap();
    drop(one_shot);
    tokio::time::timeout(PATIENCE, woken.changed())
        .await
        .expect("the follower was not woken by the one-shot append's commit")
        .unwrap();
    db.cleanup().await;
}

/// An operator who turned autovacuum off is told at start what it costs.
#[tokio::test]
async fn the_server_warning_names_autovacuum_exactly_when_it_is_off() {
    let Some(db) = postgres().await else { return };
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let autovacuum: String = sqlx::query_scalar("SHOW autovacuum").fetch_one(&pool).await.unwrap();
    let warnings = db.store.server_warnings().await.unwrap();
    let warned = warnings.iter().any(|w| w.contains("autovacuum is off"));
    assert_eq!(warned, autovacuum == "off", "autovacuum = {autovacuum}; warnings: {warnings:?}");
    pool.close().await;
    db.cleanup().await;
}
