//! The Accounting API as separate OS processes on PostgreSQL, each connected as
//! the `accounting_api` role, against fake Fiken and Folio run by this test (so
//! their state can be counted): the whole story of a proposal through Review-E
//! and the Accounting API, and two Accounting API processes never executing an
//! action twice, even when the active one is killed mid-work.

// Amounts are written kroner_øre: 250_00 is 250,00 kr.
#![allow(clippy::inconsistent_digit_grouping)]

use std::process::Command;
use std::time::{Duration, Instant};

use accounting_api::fiken::fake::{FakeFiken, SANDBOX_COMPANY};
use accounting_api::folio::fake::{FakeFolio, SANDBOX_ACCOUNT};
use accounting_api::sandbox::Faults;
use bookkeeper_core::testing::TestDb;
use bookkeeper_core::{Append, NewEvent, RecordedEvent, Store};
use serde_json::{json, Value};

const REVIEWER: &str = "reviewer-token-0123456789";

/// The Accounting API's bearer token (required outside the sandbox).
const ACCOUNTING_TOKEN: &str = "accounting-test-token-0123456789";

mod common;

use common::{build_policy, Service as Process};

/// Starts `bookkeeper serve <service>` as `role` and waits for its address.
fn serve(service: &str, db: &TestDb, role: &str, env: &[(&str, String)]) -> Process {
    common::serve(service, &db.role_url(role), env)
}

struct Fakes {
    fiken: FakeFiken,
    folio: FakeFolio,
}

impl Fakes {
    async fn start() -> Fakes {
        Fakes {
            fiken: FakeFiken::start("127.0.0.1:0".parse().unwrap()).await.unwrap(),
            folio: FakeFolio::sandbox("127.0.0.1:0".parse().unwrap()).await.unwrap(),
        }
    }

    /// The environment pointing an Accounting API process at these fakes.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ACCOUNTING_API_ADDR", "127.0.0.1:0".into()),
            ("ACCOUNTING_API_TOKEN", ACCOUNTING_TOKEN.into()),
            ("FIKEN_BASE_URL", self.fiken.base_url()),
            ("FIKEN_COMPANY", SANDBOX_COMPANY.into()),
            ("FIKEN_TOKEN", format!("fiken-test-{}", uuid::Uuid::new_v4())),
            ("FOLIO_BASE_URL", self.folio.base_url()),
            ("FOLIO_API_KEY", "folio-test-key".into()),
            ("FIKEN_SPACING_MS", "0".into()),
            ("ACCOUNTING_API_RETRY_BASE_MS", "5".into()),
            ("ACCOUNTING_API_RETRY_CAP_MS", "50".into()),
            ("ACCOUNTING_API_MAX_ATTEMPTS", "30".into()),
        ]
    }
}

async fn story_until(
    db: &TestDb,
    cid: &str,
    done: impl Fn(&RecordedEvent) -> bool,
    limit: Duration,
) -> Vec<RecordedEvent> {
    let started = Instant::now();
    loop {
        let story = db.store.read_correlation(cid).await.unwrap();
        if story.iter().any(&done) {
            return story;
        }
        let types: Vec<_> = story.iter().map(|e| e.event_type.clone()).collect();
        assert!(started.elapsed() < limit, "{cid} did not get there: {types:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_goes_from_proposal_to_folio_and_audit_tells_the_story() {
    let Some(db) = TestDb::postgres().await else { return };
    let fakes = Fakes::start().await;
    let kiwi_1 = fakes.folio.add_event(SANDBOX_ACCOUNT, chrono::Utc::now(), -250_00, "KIWI 1");
    let kiwi_2 = fakes.folio.add_event(SANDBOX_ACCOUNT, chrono::Utc::now(), -180_00, "KIWI 2");
    let folder = std::env::temp_dir().join(format!("accounting-e2e-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&folder).unwrap();
    build_policy("small-receipts", &folder.join("small-receipts.wasm"));

    let mut review_e = serve(
        "review-e",
        &db,
        "review_e",
        &[
            ("REVIEW_E_ADDR", "127.0.0.1:0".into()),
            ("REVIEW_E_POLICY_DIR", folder.display().to_string()),
            ("REVIEW_E_REVIEWER_TOKENS", format!("{REVIEWER}:kari")),
            ("REVIEW_E_POLICY_DEADLINE_MS", "500".into()),
        ],
    );
    let mut accounting = serve("accounting-api", &db, "accounting_api", &fakes.env());
    let http = reqwest::Client::new();

    // Book-E stores the receipt through the documents API, then proposes.
    let upload = |bytes: &'static [u8]| {
        let http = http.clone();
        let url = format!("{}/documents", accounting.base);
        async move {
            let r = http.post(url).bearer_auth(ACCOUNTING_TOKEN).body(bytes).send().await.unwrap();
            assert_eq!(r.status(), 201);
            r.json::<Value>().await.unwrap()["sha256"].as_str().unwrap().to_string()
        }
    };
    let book_e = Store::connect(&db.role_url("book_e")).await.unwrap();
    let propose = |cid: &str, event: uuid::Uuid, sha: String, minor: i64| {
        NewEvent::new("ReceiptAttachmentProposed", "book-e", "PROPOSED", cid).with_payload(json!({
            "requested_by": "user:ola",
            "receipt": {"sha256": sha, "filename": "kiwi.pdf", "content_type": "application/pdf"},
            "target": {"kind": "folio_event", "event_id": event.to_string()},
            "amount": {"minor": minor, "currency": "NOK"}, "vendor": {"name": "Kiwi"}
        }))
    };

    // The first receipt from Kiwi goes to a person (no history yet); a reviewer
    // approves it over Review-E's API, and the Accounting API executes it.
    let first = upload(b"%PDF-1.7 Kiwi 250,00").await;
    let policy_ready = Instant::now();
    loop {
        let r = http.get(format!("{}/policies", review_e.base)).bearer_auth(REVIEWER).send().await.unwrap();
        let v: Value = r.json().await.unwrap();
        if v["policies"].as_array().is_some_and(|p| !p.is_empty()) {
            break;
        }
        assert!(policy_ready.elapsed() < Duration::from_secs(30), "the policy folder was not loaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    book_e.append(Append::one(propose("kiwi-1", kiwi_1, first, 250_00))).await.unwrap();
    story_until(&db, "kiwi-1", |e| e.event_type == "ReceiptAttachmentEscalated", Duration::from_secs(30)).await;
    let approved = http
        .post(format!("{}/reviews/kiwi-1/approve", review_e.base))
        .bearer_auth(REVIEWER)
        .json(&json!({"reason": "known shop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 200);
    story_until(&db, "kiwi-1", |e| e.event_type == "ReceiptAttachmentExecuted", Duration::from_secs(30)).await;

    // The second is approved by the policy and executed with nobody involved.
    let second = upload(b"%PDF-1.7 Kiwi 180,00").await;
    book_e.append(Append::one(propose("kiwi-2", kiwi_2, second, 180_00))).await.unwrap();
    let story =
        story_until(&db, "kiwi-2", |e| e.event_type == "ReceiptAttachmentExecuted", Duration::from_secs(30)).await;
    let by: Vec<(&str, &str)> = story.iter().map(|e| (e.event_type.as_str(), e.actor.as_str())).collect();
    assert_eq!(
        by,
        [
            ("ReceiptAttachmentProposed", "book-e"),
            ("ReceiptAttachmentApproved", "system:auto"),
            ("ReceiptAttachmentExecutionStarted", "system"),
            ("ReceiptAttachmentExecuted", "system"),
        ]
    );
    assert_eq!(fakes.folio.attachments_of(kiwi_2)[0].bytes, b"%PDF-1.7 Kiwi 180,00");

    let audit = Command::new(env!("CARGO_BIN_EXE_bookkeeper"))
        .args(["audit", "kiwi-2"])
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&audit.stdout).to_string();
    assert!(audit.status.success(), "{report}");
    let lines: Vec<&str> = report.lines().skip(1).collect();
    assert!(lines[0].contains("ReceiptAttachmentProposed") && lines[0].contains("book-e"), "{report}");
    assert!(lines[1].contains("ReceiptAttachmentApproved") && lines[1].contains("system:auto"), "{report}");
    assert!(lines[1].contains("small-receipts"), "the policy's reason is shown: {report}");
    assert!(lines[3].contains("ReceiptAttachmentExecuted") && lines[3].contains("system"), "{report}");
    assert!(lines[3].contains("EXECUTED"), "{report}");

    // An emergency reject after the execution is refused: it cannot be undone.
    let late = http
        .post(format!("{}/reviews/kiwi-2/reject", review_e.base))
        .bearer_auth(REVIEWER)
        .json(&json!({"reason": "too late"}))
        .send()
        .await
        .unwrap();
    assert_eq!(late.status(), 409);

    assert!(accounting.terminate().success(), "the Accounting API stops cleanly on SIGTERM");
    assert!(review_e.terminate().success());
    book_e.close().await;
    let _ = std::fs::remove_dir_all(&folder);
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_accounting_api_processes_never_execute_an_action_twice() {
    let Some(db) = TestDb::postgres().await else { return };
    let fakes = Fakes::start().await;
    // Some latency and lost answers, so the kill below lands mid-work.
    fakes.fiken.set_faults(Faults {
        latency: Duration::from_millis(5),
        drop_after_commit_rate: 0.1,
        ..Faults::default()
    });
    let env = fakes.env();
    let a = serve("accounting-api", &db, "accounting_api", &env);
    let b = serve("accounting-api", &db, "accounting_api", &env);

    const N: usize = 60;
    let sha = db.store.put_blob(b"%PDF-1.7 invoice", "application/pdf").await.unwrap();
    for i in 0..N {
        let cid = format!("inv-{i}");
        let proposal = NewEvent::new("InvoiceRegistrationProposed", "book-e", "PROPOSED", &cid).with_payload(json!({
            "requested_by": "user:kari",
            "document": {"sha256": sha, "filename": "invoice.pdf", "content_type": "application/pdf"},
            "vendor": {"name": "Strøm AS", "organization_number": "998877665"},
            "invoice_number": format!("E-{i}"), "amount": {"minor": 1_000_00, "currency": "NOK"},
            "invoice_date": "2026-11-01", "due_date": "2026-11-30", "account": "6340",
        }));
        let approval = NewEvent::new("InvoiceRegistrationApproved", "system:auto", "AUTO_APPROVED", &cid)
            .with_payload(json!({"reason": "test"}))
            .caused_by(proposal.event_id);
        db.store.append(Append::new(vec![proposal, approval])).await.unwrap();
    }

    // Kill the active one once it is part-way through; the other takes over.
    let started = Instant::now();
    while fakes.fiken.purchases().len() < N / 4 {
        assert!(started.elapsed() < Duration::from_secs(60), "no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let holder: String =
        sqlx::query_scalar("SELECT lease_holder FROM subscriptions WHERE name = 'accounting-api.approvals'")
            .fetch_one(db.store.pg_pool().unwrap())
            .await
            .unwrap();
    let active_pid: u32 = holder.split(':').next().unwrap().parse().unwrap();
    let (mut active, mut standby) = if active_pid == a.pid() { (a, b) } else { (b, a) };
    assert_ne!(standby.pid(), active_pid);
    active.kill();

    for i in 0..N {
        // The lease of the killed process expires first (15 s).
        let story = story_until(
            &db,
            &format!("inv-{i}"),
            |e| bookkeeper_core::lifecycle::stage(&e.event_type) == Some(bookkeeper_core::domain::Stage::Executed),
            Duration::from_secs(90),
        )
        .await;
        assert!(!story.iter().any(|e| bookkeeper_core::lifecycle::stage(&e.event_type)
            == Some(bookkeeper_core::domain::Stage::ExecutionSkipped)));
    }
    let purchases = fakes.fiken.purchases();
    let mut numbers: Vec<String> = purchases.iter().filter_map(|(_, n)| n.clone()).collect();
    numbers.sort();
    numbers.dedup();
    assert_eq!((purchases.len(), numbers.len()), (N, N), "each invoice registered exactly once");
    for (id, _) in &purchases {
        assert_eq!(fakes.fiken.attachments_of(*id).len(), 1, "purchase {id} documented exactly once");
    }
    assert_eq!(fakes.fiken.contacts().len(), 1);
    assert!(standby.terminate().success());
    db.cleanup().await;
}
