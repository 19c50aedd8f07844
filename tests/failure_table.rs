//! The design's failure table, end to end: Review-E and the Accounting API as
//! separate `bookkeeper serve` processes on PostgreSQL, each with its own role,
//! against fake Fiken and Folio run by this test (so their state can be counted);
//! proposals appended as Book-E's role. Each test breaks something and checks that
//! nothing is lost and nothing happens twice.
//!
//! The chaos run's size is `BOOKKEEPER_CHAOS_PROPOSALS` (default 2,000) and
//! `BOOKKEEPER_CHAOS_KILLS` (default 20).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use accounting_api::fiken::fake::{FakeFiken, SANDBOX_COMPANY};
use accounting_api::folio::fake::FakeFolio;
use accounting_api::sandbox::Faults;
use bookkeeper_core::testing::TestDb;
use bookkeeper_core::{Append, NewEvent, Store};
use serde_json::json;
use sqlx::Row;

mod common;

use common::{bookkeeper, build_policy, Service};

/// A TCP proxy in front of PostgreSQL that can be cut (every connection dropped,
/// new ones refused) and restored: the database going away, as services see it.
struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let flag = up.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { continue };
                if !flag.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let flag = flag.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else { return };
                    let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
                    let cut = async {
                        while flag.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! { _ = copy => {}, _ = cut => {} }
                });
            }
        });
        Proxy { addr, up }
    }
}

struct System {
    db: TestDb,
    fiken: FakeFiken,
    _folio: FakeFolio,
    review_e: Service,
    accounting: Service,
    book_e: Store,
    work: PathBuf,
}

/// The URL of the test database for `role`, through `proxy` when given.
fn url(db: &TestDb, role: &str, proxy: Option<&Proxy>) -> String {
    let url = db.role_url(role);
    match proxy {
        Some(p) => {
            url.replacen("127.0.0.1:5432", &p.addr.to_string(), 1).replacen("localhost:5432", &p.addr.to_string(), 1)
        }
        None => url,
    }
}

impl System {
    async fn start(proxy: Option<&Proxy>) -> Option<System> {
        let db = TestDb::postgres().await?;
        let fiken = FakeFiken::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let folio = FakeFolio::sandbox("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let work = std::env::temp_dir().join(format!("failure-table-{}", uuid::Uuid::new_v4()));
        let policies = work.join("policies");
        std::fs::create_dir_all(&policies).unwrap();
        // Invoices with new numbers are approved; a repeated number is rejected.
        build_policy("duplicate-invoice", &policies.join("duplicate-invoice.wasm"));
        let common = |role: &str| {
            vec![
                ("DATABASE_URL".to_string(), url(&db, role, proxy)),
                ("BOOKKEEPER_LEASE_TTL_SECS".to_string(), "2".to_string()),
                ("BOOKKEEPER_LOG".to_string(), "info".to_string()),
                ("BOOKKEEPER_LOG_FORMAT".to_string(), "json".to_string()),
                ("--connect-timeout".to_string(), String::new()),
            ]
            .into_iter()
            .filter(|(k, _)| !k.starts_with("--"))
            .collect::<Vec<_>>()
        };
        let mut review_env = common("review_e");
        review_env.extend([
            ("REVIEW_E_ADDR".into(), "127.0.0.1:0".into()),
            ("REVIEW_E_POLICY_DIR".into(), policies.display().to_string()),
            ("REVIEW_E_POLICY_DEADLINE_MS".into(), "500".into()),
        ]);
        let mut accounting_env = common("accounting_api");
        accounting_env.extend([
            ("ACCOUNTING_API_ADDR".into(), "127.0.0.1:0".into()),
            ("ACCOUNTING_API_TOKEN".into(), "failure-table-token-0123456789".into()),
            ("FIKEN_BASE_URL".into(), fiken.base_url()),
            ("FIKEN_COMPANY".into(), SANDBOX_COMPANY.into()),
            ("FIKEN_TOKEN".into(), format!("fiken-{}", uuid::Uuid::new_v4())),
            ("FOLIO_BASE_URL".into(), folio.base_url()),
            ("FOLIO_API_KEY".into(), "folio-key".into()),
            ("FIKEN_SPACING_MS".into(), "0".into()),
            ("ACCOUNTING_API_RETRY_BASE_MS".into(), "10".into()),
            ("ACCOUNTING_API_RETRY_CAP_MS".into(), "200".into()),
            ("ACCOUNTING_API_MAX_ATTEMPTS".into(), "50".into()),
        ]);
        let review_e = Service::spawn("review-e", review_env);
        let accounting = Service::spawn("accounting-api", accounting_env);
        let book_e = Store::connect(&db.role_url("book_e")).await.unwrap();
        db.store.put_blob(b"%PDF-1.7 invoice", "application/pdf").await.unwrap();
        // The policy folder is published as a `PolicyPublished` event; Review-E follows it.
        let started = Instant::now();
        loop {
            let filter = bookkeeper_core::TypeFilter::of(["PolicyPublished"]);
            let published = db
                .store
                .read_waiting(bookkeeper_core::Cursor::START, &filter, 10, std::time::Duration::from_secs(5))
                .await
                .unwrap()
                .events;
            if !published.is_empty() {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "Review-E never published the policy folder");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let system = System { db, fiken, _folio: folio, review_e, accounting, book_e, work };
        // Ready when the policy is in force: a first proposal is approved.
        system.propose(&["warmup"]).await;
        system.wait_executed(&["warmup".to_string()], Duration::from_secs(120)).await;
        Some(system)
    }

    async fn propose(&self, ids: &[&str]) {
        let events: Vec<NewEvent> = ids
            .iter()
            .map(|id| {
                NewEvent::new("InvoiceRegistrationProposed", "book-e", "PROPOSED", *id).with_payload(json!({
                    "requested_by": "user:kari",
                    "document": {"sha256": self.document(), "filename": "f.pdf", "content_type": "application/pdf"},
                    "vendor": {"name": "Strøm AS", "organization_number": "998877665"},
                    "invoice_number": format!("N-{id}"), "amount": {"minor": 100_000, "currency": "NOK"},
                    "invoice_date": "2026-11-01", "due_date": "2026-11-30", "account": "6340",
                }))
            })
            .collect();
        for chunk in events.chunks(100) {
            self.book_e.append(Append::new(chunk.to_vec())).await.unwrap();
        }
    }

    fn document(&self) -> String {
        bookkeeper_core::store::sha256_hex(b"%PDF-1.7 invoice")
    }

    async fn put_document(&self) {
        self.db.store.put_blob(b"%PDF-1.7 invoice", "application/pdf").await.unwrap();
    }

    /// Types per correlation id, for ids with the given prefix.
    async fn stories(&self, prefix: &str) -> HashMap<String, Vec<String>> {
        let pool = self.db.store.pg_pool().unwrap();
        let rows =
            sqlx::query("SELECT correlation_id, type FROM events WHERE correlation_id LIKE $1 ORDER BY position")
                .bind(format!("{prefix}%"))
                .fetch_all(pool)
                .await
                .unwrap();
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for r in rows {
            out.entry(r.get::<String, _>(0)).or_default().push(r.get(1));
        }
        out
    }

    async fn wait_executed(&self, ids: &[String], limit: Duration) {
        let started = Instant::now();
        loop {
            let prefix = ids.first().map(|i| i.split('-').next().unwrap_or("")).unwrap_or("");
            let stories = self.stories(prefix).await;
            let done = ids
                .iter()
                .filter(|id| stories.get(*id).is_some_and(|s| s.iter().any(|t| t == "InvoiceRegistrationExecuted")))
                .count();
            if done == ids.len() {
                return;
            }
            assert!(started.elapsed() < limit, "only {done} of {} executed after {limit:?}", ids.len());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every proposal decided once, executed once in the log and once at the fake.
    async fn assert_exactly_once(&self, ids: &[String]) {
        let prefix = ids[0].split('-').next().unwrap();
        let stories = self.stories(prefix).await;
        for id in ids {
            let story = &stories[id];
            let count = |t: &str| story.iter().filter(|x| x.as_str() == t).count();
            assert_eq!(
                count("InvoiceRegistrationApproved") + count("InvoiceRegistrationRejected"),
                1,
                "{id}: {story:?}"
            );
            assert_eq!(count("InvoiceRegistrationExecuted"), 1, "{id}: {story:?}");
        }
        let purchases = self.fiken.purchases();
        for id in ids {
            let n = purchases.iter().filter(|(_, number)| number.as_deref() == Some(&format!("N-{id}"))).count();
            assert_eq!(n, 1, "purchase for {id} registered {n} times");
        }
        for (pid, _) in &purchases {
            assert_eq!(self.fiken.attachments_of(*pid).len(), 1, "purchase {pid} documented once");
        }
    }

    async fn finish(mut self) {
        assert!(self.review_e.stop(), "Review-E exits 0 on SIGTERM");
        assert!(self.accounting.stop(), "the Accounting API exits 0 on SIGTERM");
        self.book_e.close().await;
        let _ = std::fs::remove_dir_all(&self.work);
        self.db.cleanup().await;
    }
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

async fn propose_all(system: &System, ids: &[String]) {
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    system.propose(&refs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_killed_mid_stream_and_restarted_loses_nothing_and_repeats_nothing() {
    let Some(mut s) = System::start(None).await else { return };
    s.put_document().await;
    let all = ids("kill", 300);
    for (n, chunk) in all.chunks(50).enumerate() {
        propose_all(&s, chunk).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        match n {
            1 => s.accounting.restart(),
            3 => s.review_e.restart(),
            4 => {
                s.accounting.restart();
                s.review_e.restart();
            }
            _ => {}
        }
    }
    s.wait_executed(&all, Duration::from_secs(180)).await;
    s.assert_exactly_once(&all).await;
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_accounting_api_down_then_up_and_review_e_paused_then_resumed() {
    let Some(mut s) = System::start(None).await else { return };
    s.put_document().await;

    // Accounting API down: approvals queue in the log.
    assert!(s.accounting.stop());
    let queued = ids("queued", 20);
    propose_all(&s, &queued).await;
    let started = Instant::now();
    loop {
        let stories = s.stories("queued").await;
        let approved = stories.values().filter(|st| st.iter().any(|t| t.ends_with("Approved"))).count();
        if approved == queued.len() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "only {approved} approved");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        s.stories("queued").await.values().all(|st| !st.iter().any(|t| t.contains("Execut"))),
        "nothing executed while down"
    );
    s.accounting.start_again();
    s.wait_executed(&queued, Duration::from_secs(60)).await;

    // Review-E paused (SIGSTOP): proposals stay pending; resumed, they are decided.
    s.review_e.signal("-STOP");
    let paused = ids("paused", 10);
    propose_all(&s, &paused).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pending = s.db.store.pending_reviews().await.unwrap();
    assert_eq!(pending.iter().filter(|p| p.correlation_id.starts_with("paused")).count(), 10);
    s.review_e.signal("-CONT");
    s.wait_executed(&paused, Duration::from_secs(60)).await;

    // Fiken failing a third of the time: failures recorded, retried, executed once.
    s.fiken.set_faults(Faults { server_error_rate: 0.33, ..Faults::default() });
    let flaky = ids("flaky", 20);
    propose_all(&s, &flaky).await;
    s.wait_executed(&flaky, Duration::from_secs(120)).await;
    let failed =
        s.stories("flaky").await.values().filter(|st| st.iter().any(|t| t.ends_with("ExecutionFailed"))).count();
    assert!(failed > 0, "the faults were felt");
    s.fiken.set_faults(Faults::default());

    s.assert_exactly_once(&queued).await;
    s.assert_exactly_once(&paused).await;
    s.assert_exactly_once(&flaky).await;
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_going_away_and_coming_back_loses_nothing() {
    let target: SocketAddr = "127.0.0.1:5432".parse().unwrap();
    let proxy = Proxy::start(target).await;
    let Some(s) = System::start(Some(&proxy)).await else { return };
    s.put_document().await;
    let before = ids("outage", 40);
    propose_all(&s, &before[..20]).await;
    // The database disappears for the services for longer than their pools wait
    // for a connection (5 s), so each notices.
    proxy.up.store(false, Ordering::SeqCst);
    propose_all(&s, &before[20..]).await; // the test's own connection is direct
    tokio::time::sleep(Duration::from_secs(9)).await;
    proxy.up.store(true, Ordering::SeqCst);
    s.wait_executed(&before, Duration::from_secs(120)).await;
    s.assert_exactly_once(&before).await;
    // Each service said it was waiting for the database, and went on by itself.
    for service in [&s.review_e, &s.accounting] {
        let lines = service.log_lines();
        let waited = lines
            .iter()
            .any(|l| l["level"] == "WARN" && l["fields"]["message"].as_str().is_some_and(|m| m.contains("retrying")));
        let warnings: Vec<String> = lines.iter().filter(|l| l["level"] == "WARN").map(|l| l.to_string()).collect();
        assert!(waited, "{} logged no retry while the database was away: {warnings:#?}", service.name());
    }
    // JSON logs: every line of a proposal's handling carries its correlation id.
    let decided: Vec<serde_json::Value> =
        s.review_e.log_lines().into_iter().filter(|l| l["fields"]["message"] == "decided").collect();
    assert!(!decided.is_empty());
    for line in &decided {
        let id = line["span"]["correlation_id"].as_str().or_else(|| line["spans"][0]["correlation_id"].as_str());
        assert!(id.is_some_and(|id| id.starts_with("outage") || id == "warmup"), "{line}");
    }
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_every_proposal_decided_once_and_executed_once() {
    if !bookkeeper_core::testing::run_slow_test("chaos_every_proposal_decided_once_and_executed_once") {
        return;
    }
    let n: usize = std::env::var("BOOKKEEPER_CHAOS_PROPOSALS").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000);
    let kills: usize = std::env::var("BOOKKEEPER_CHAOS_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let Some(mut s) = System::start(None).await else { return };
    s.put_document().await;
    let all = ids("chaos", n);
    let chunk = n.div_ceil(kills.max(1));
    for (k, part) in all.chunks(chunk).enumerate() {
        propose_all(&s, part).await;
        tokio::time::sleep(Duration::from_millis(100 + fastrand::u64(0..300))).await;
        if fastrand::bool() {
            s.review_e.restart();
        } else {
            s.accounting.restart();
        }
        eprintln!("chaos: kill {} of {kills}", k + 1);
    }
    s.wait_executed(&all, Duration::from_secs(600)).await;
    s.assert_exactly_once(&all).await;

    // The seed's queries on what this run produced.
    let pool = s.db.store.pg_pool().unwrap();
    let story: Vec<(String, String, String)> =
        sqlx::query_as("SELECT type, actor, status FROM events WHERE correlation_id = $1 ORDER BY position")
            .bind(&all[0])
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(story[0], ("InvoiceRegistrationProposed".into(), "book-e".into(), "PROPOSED".into()));
    assert_eq!(story[1], ("InvoiceRegistrationApproved".into(), "system:auto".into(), "AUTO_APPROVED".into()));
    assert_eq!(story.last().unwrap(), &("InvoiceRegistrationExecuted".into(), "system".into(), "EXECUTED".into()));
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM pending_reviews").fetch_one(pool).await.unwrap();
    assert_eq!(pending, 0);
    let by_actor: i64 = sqlx::query_scalar("SELECT sum(events)::bigint FROM actor_activity WHERE actor = 'system'")
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(by_actor >= 2 * n as i64, "started + executed per proposal: {by_actor}");
    let rate: Option<f64> =
        sqlx::query_scalar("SELECT approval_rate FROM approval_rate").fetch_one(pool).await.unwrap();
    assert_eq!(rate, Some(1.0));
    let audit = bookkeeper().args(["audit", &all[0]]).env("DATABASE_URL", &s.db.url).output().unwrap();
    let report = String::from_utf8_lossy(&audit.stdout).to_string();
    assert!(
        report.contains("InvoiceRegistrationProposed")
            && report.contains("AUTO_APPROVED")
            && report.contains("EXECUTED"),
        "{report}"
    );
    s.finish().await;
}
