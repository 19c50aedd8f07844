//! The trust promise, across real processes: `bookkeeper serve review-e` and
//! `serve accounting-api` on PostgreSQL, each as its own role, against fake Fiken
//! and Folio run by this test. Each test is one way the promise was broken before
//! (issue 11): a proposal slipped in beside the one judged, a "decision" that only
//! ends like one, a published policy a replica cannot load, and a poison event
//! in front of everything after it.

// Amounts are written kroner_øre: 250_00 is 250,00 kr.
#![allow(clippy::inconsistent_digit_grouping)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use accounting_api::fiken::fake::{FakeFiken, SANDBOX_COMPANY};
use accounting_api::folio::fake::FakeFolio;
use bookkeeper_core::event::derived_event_id;
use bookkeeper_core::testing::{Backend, TestDb};
use bookkeeper_core::{ActionState, Append, NewEvent, Phase, RecordedEvent, Store};
use serde_json::{json, Value};
use uuid::Uuid;

const ACCOUNTING_TOKEN: &str = "trust-accounting-token-0123456789";
const REVIEWER_TOKEN: &str = "trust-reviewer-token-0123456789";

mod common;

use common::{build_policy, serve, Service as Process};

fn serve_as(service: &str, db: &TestDb, role: &str, env: &[(&str, String)]) -> Process {
    serve(service, &db.role_url(role), env)
}

/// A policy folder with the duplicate-invoice policy only: every invoice that
/// was not registered before is approved automatically.
fn policies() -> PathBuf {
    let folder = std::env::temp_dir().join(format!("trust-policies-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&folder).unwrap();
    build_policy("duplicate-invoice", &folder.join("duplicate-invoice.wasm"));
    folder
}

struct World {
    db: TestDb,
    fiken: FakeFiken,
    _folio: FakeFolio,
    review_e: Process,
    _accounting: Process,
    document: String,
}

impl World {
    /// Review-E and the Accounting API as processes on `db` (migrated by now).
    async fn start(db: TestDb) -> World {
        let fiken = FakeFiken::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let folio = FakeFolio::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let folder = policies();
        let review_e = serve_as(
            "review-e",
            &db,
            "review_e",
            &[
                ("REVIEW_E_ADDR", "127.0.0.1:0".into()),
                ("REVIEW_E_POLICY_DIR", folder.display().to_string()),
                ("REVIEW_E_POLICY_DEADLINE_MS", "500".into()),
                ("REVIEW_E_REVIEWER_TOKENS", format!("{REVIEWER_TOKEN}:kari")),
            ],
        );
        let accounting = serve_as(
            "accounting-api",
            &db,
            "accounting_api",
            &[
                ("ACCOUNTING_API_ADDR", "127.0.0.1:0".into()),
                ("ACCOUNTING_API_TOKEN", ACCOUNTING_TOKEN.into()),
                ("FIKEN_BASE_URL", fiken.base_url()),
                ("FIKEN_COMPANY", SANDBOX_COMPANY.into()),
                ("FIKEN_TOKEN", format!("fiken-{}", Uuid::new_v4())),
                ("FIKEN_SPACING_MS", "0".into()),
                ("FOLIO_BASE_URL", folio.base_url()),
                ("FOLIO_API_KEY", "folio-key".into()),
                ("ACCOUNTING_API_RETRY_BASE_MS", "5".into()),
                ("ACCOUNTING_API_RETRY_CAP_MS", "50".into()),
            ],
        );
        let document = db.store.put_blob(b"%PDF-1.7 invoice", "application/pdf").await.unwrap();
        // The whole set in force before anything is proposed.
        let started = Instant::now();
        loop {
            let list: Value = reqwest::Client::new()
                .get(format!("{}/policies", review_e.base))
                .bearer_auth(REVIEWER_TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap_or_default();
            if list["policies"].as_array().is_some_and(|p| !p.is_empty()) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "the policy was never published: {list}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        World { db, fiken, _folio: folio, review_e, _accounting: accounting, document }
    }

    fn invoice(&self, cid: &str, number: &str, minor: i64) -> NewEvent {
        invoice(cid, number, minor, &self.document)
    }

    async fn book_e(&self) -> Store {
        Store::connect(&self.db.role_url("book_e")).await.unwrap()
    }

    async fn story(&self, cid: &str) -> Vec<RecordedEvent> {
        self.db.store.read_correlation(cid).await.unwrap()
    }

    /// Waits until the action's lifecycle reaches `phase`.
    async fn until(&self, cid: &str, phase: Phase) -> Vec<RecordedEvent> {
        let started = Instant::now();
        loop {
            let story = self.story(cid).await;
            if ActionState::fold(&story).phase() == phase {
                return story;
            }
            let types: Vec<_> = story.iter().map(|e| (e.event_type.clone(), e.actor.clone())).collect();
            assert!(started.elapsed() < Duration::from_secs(60), "{cid} never got to {phase}: {types:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn registered(&self) -> Vec<String> {
        let mut numbers: Vec<String> = self.fiken.purchases().into_iter().filter_map(|(_, n)| n).collect();
        numbers.sort();
        numbers
    }
}

fn invoice(cid: &str, number: &str, minor: i64, sha: &str) -> NewEvent {
    NewEvent::new("InvoiceRegistrationProposed", "book-e", "PROPOSED", cid).with_payload(json!({
        "requested_by": "user:ola",
        "document": {"sha256": sha, "filename": "invoice.pdf", "content_type": "application/pdf"},
        "vendor": {"name": "Strøm AS", "organization_number": "998877665"},
        "invoice_number": number, "amount": {"minor": minor, "currency": "NOK"},
        "invoice_date": "2026-11-01", "due_date": "2026-11-30", "account": "6340",
    }))
}

/// Way 1, new history: Book-E's role opens a transaction before the honest
/// proposal is appended, so a second proposal of its own would sort first in read
/// order. The database refuses the second proposal; what Review-E judged is what
/// the Accounting API registers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proposal_slipped_in_beside_the_judged_one_is_refused_and_the_judged_one_is_executed() {
    let Some(db) = TestDb::postgres().await else { return };
    let w = World::start(db).await;
    let attacker = sqlx::PgPool::connect(&w.db.role_url("book_e")).await.unwrap();
    let mut early = attacker.begin().await.unwrap();
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").execute(&mut *early).await.unwrap();
    sqlx::query("SELECT count(*) FROM events").execute(&mut *early).await.unwrap();

    w.book_e().await.append(Append::one(w.invoice("inv-1", "F-small", 300_00))).await.unwrap();
    let large = w.invoice("inv-1", "F-large", 900_000_00);
    let slipped = sqlx::query(
        "INSERT INTO events (event_id, type, actor, status, correlation_id, payload) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(large.event_id)
    .bind(&large.event_type)
    .bind(&large.actor)
    .bind(&large.status)
    .bind(&large.correlation_id)
    .bind(&large.payload)
    .execute(&mut *early)
    .await;
    assert!(slipped.is_err(), "the database stored a second proposal for inv-1");
    drop(early);

    let story = w.until("inv-1", Phase::Executed).await;
    let state = ActionState::fold(&story);
    assert_eq!(state.proposals.len(), 1);
    assert_eq!(state.approval().unwrap().proposal.payload["invoice_number"], json!("F-small"));
    assert_eq!(w.registered(), ["F-small"]);
    w.db.cleanup().await;
}

/// Way 1, old history: a log written before one proposal per action was
/// enforced may already hold a pair. Neither is executed on a policy's approval;
/// a person decides which one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_of_proposals_in_old_history_is_never_executed_without_a_person() {
    let Some(db) = TestDb::previous_release(Backend::Postgres).await else { return };
    let doc = db.store.put_blob(b"%PDF-1.7 invoice", "application/pdf").await.unwrap();
    // Written with the previous release's schema: the honest proposal and the
    // slipped one; and a second pair an automatic decision already approved
    // (naming the first, in its metadata, as that release did).
    let small = invoice("pair-1", "F-small", 300_00, &doc);
    let large = invoice("pair-1", "F-large", 900_000_00, &doc);
    let a = invoice("pair-2", "F-a", 200_00, &doc);
    let b = invoice("pair-2", "F-b", 800_000_00, &doc);
    let approved = NewEvent::new("InvoiceRegistrationApproved", "system:auto", "AUTO_APPROVED", "pair-2")
        .with_payload(json!({"reason": "duplicate-invoice: not registered before", "outcome": "approve"}))
        .with_metadata(json!({"proposal_event_id": a.event_id}))
        .derived_from(a.event_id, "review-e.decision");
    db.store.append(Append::new(vec![small.clone(), large, a, b, approved])).await.unwrap();
    db.store.migrate().await.unwrap();

    let w = World::start(db).await;
    // pair-1: Review-E escalates instead of judging either.
    let story = w.until("pair-1", Phase::Escalated).await;
    let escalated = story.iter().find(|e| e.event_type == "InvoiceRegistrationEscalated").unwrap();
    assert!(escalated.reason().unwrap().contains("2 proposals share this id"), "{escalated:?}");
    // pair-2: the policy's old approval is refused by the executor, finally.
    let story = w.until("pair-2", Phase::FailedFinally).await;
    let failed = story.iter().find(|e| e.event_type == "InvoiceRegistrationExecutionFailed").unwrap();
    assert!(failed.payload["error"].as_str().unwrap().contains("a person must approve"), "{failed:?}");
    assert!(w.registered().is_empty(), "nothing registered without a person");

    // A person approves pair-1: the proposal they judged, the first, is registered.
    let r = reqwest::Client::new()
        .post(format!("{}/reviews/pair-1/approve", w.review_e.base))
        .bearer_auth(REVIEWER_TOKEN)
        .json(&json!({"reason": "the small one is ours"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let story = w.until("pair-1", Phase::Executed).await;
    assert_eq!(ActionState::fold(&story).approval().unwrap().proposal.event_id, small.event_id);
    assert_eq!(w.registered(), ["F-small"]);
    w.db.cleanup().await;
}

/// Way 2: names that merely end like a decision. The CronJob's old role could
/// append `ComplianceCheck*` into any story, e.g. `ComplianceCheckApproved` and
/// `ComplianceCheckExecuted`: Review-E then took the action for decided and the
/// executor for done. Its role may no longer, and such events in old history
/// are ignored: the invoice is judged and registered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_only_ends_like_a_decision_decides_nothing() {
    let Some(db) = TestDb::previous_release(Backend::Postgres).await else { return };
    let cron = Store::connect(&db.role_url("cron")).await.unwrap();
    for t in ["ComplianceCheckApproved", "ComplianceCheckExecuted"] {
        cron.append(Append::one(NewEvent::new(t, "cron", "COMPLETED", "inv-9"))).await.unwrap();
    }
    cron.close().await;
    db.store.migrate().await.unwrap();
    let cron = Store::connect(&db.role_url("cron")).await.unwrap();
    let refused =
        cron.append(Append::one(NewEvent::new("ComplianceCheckRejected", "cron", "COMPLETED", "inv-9"))).await;
    assert!(refused.is_err(), "the cron role may append only ComplianceCheckCompleted now");

    let w = World::start(db).await;
    w.book_e().await.append(Append::one(w.invoice("inv-9", "F-9", 450_00))).await.unwrap();
    let story = w.until("inv-9", Phase::Executed).await;
    let state = ActionState::fold(&story);
    assert_eq!(state.approval().unwrap().event.actor, "system:auto");
    assert_eq!(state.ignored.len(), 2, "both look-alikes shown and ignored");
    assert_eq!(w.registered(), ["F-9"]);
    w.db.cleanup().await;
}

/// Way 5: a published policy this replica cannot load (here: its component's
/// bytes are not a component) still counts. What it would judge goes to a
/// person, naming it; `/readyz`, `/metrics` and `policy list` say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_policy_that_cannot_be_loaded_sends_what_it_judges_to_a_person() {
    let Some(db) = TestDb::postgres().await else { return };
    let w = World::start(db).await;
    let broken = w.db.store.put_blob(b"\0asm not really a component", "application/wasm").await.unwrap();
    let published =
        NewEvent::new("PolicyPublished", "review-e", "PUBLISHED", "policy:budget-guard").with_payload(json!({
            "name": "budget-guard", "version": "2.0.0", "description": "stops large invoices",
            "applies_to": ["InvoiceRegistrationProposed"], "digest": broken, "mode": "enforcing", "source": "upload",
        }));
    Store::connect(&w.db.role_url("review_e")).await.unwrap().append(Append::one(published)).await.unwrap();

    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let ready = http.get(format!("{}/readyz", w.review_e.base)).send().await.unwrap().text().await.unwrap();
        if ready.contains("budget-guard") {
            assert!(ready.contains("degraded"), "{ready}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "readyz never named the unloaded policy: {ready}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = http.get(format!("{}/metrics", w.review_e.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("bookkeeper_policies_unloaded 1"), "{metrics}");
    let list = Command::new(env!("CARGO_BIN_EXE_bookkeeper"))
        .args(["policy", "list", "--url", &w.review_e.base, "--token", REVIEWER_TOKEN])
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(list.contains("budget-guard") && list.contains("NOT LOADED"), "{list}");

    w.book_e().await.append(Append::one(w.invoice("inv-5", "F-5", 450_00))).await.unwrap();
    let story = w.until("inv-5", Phase::Escalated).await;
    let escalated = story.iter().find(|e| e.event_type == "InvoiceRegistrationEscalated").unwrap();
    assert!(escalated.reason().unwrap().contains("budget-guard: published but not loaded"), "{escalated:?}");
    assert!(w.registered().is_empty());
    w.db.cleanup().await;
}

/// Way 6: an event a handler can never handle is parked, and everything after it
/// goes on. The poison here: the database refuses, for good, what the services
/// must write for two actions (an operator's constraint: decisions on one, claims
/// on the other). Review-E parks the first and sends it to a person; the Accounting
/// API parks the second and records a final failure; the rest goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_is_parked_and_everything_after_it_goes_on() {
    let Some(db) = TestDb::postgres().await else { return };
    let w = World::start(db).await;
    sqlx::raw_sql(
        "CREATE FUNCTION legal_hold() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF (NEW.correlation_id = 'poison-review' AND NEW.type = 'InvoiceRegistrationApproved')
              OR (NEW.correlation_id = 'poison-accounting' AND NEW.type = 'InvoiceRegistrationExecutionStarted') THEN
             RAISE EXCEPTION 'legal hold on %', NEW.correlation_id USING ERRCODE = 'check_violation';
           END IF;
           RETURN NEW;
         END $$;
         CREATE TRIGGER legal_hold BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION legal_hold();",
    )
    .execute(w.db.store.pg_pool().unwrap())
    .await
    .unwrap();

    let book_e = w.book_e().await;
    book_e.append(Append::one(w.invoice("poison-review", "F-p1", 100_00))).await.unwrap();
    book_e.append(Append::one(w.invoice("poison-accounting", "F-p2", 200_00))).await.unwrap();
    book_e.append(Append::one(w.invoice("after", "F-after", 300_00))).await.unwrap();

    // Review-E parks the first and sends it to a person, with the reason.
    let story = w.until("poison-review", Phase::Escalated).await;
    let parked = story.iter().find(|e| e.event_type == "SubscriptionEventParked").expect("a park record");
    assert_eq!(
        (parked.actor.as_str(), parked.payload["subscription"].clone()),
        ("review-e", json!("review-e.proposals"))
    );
    assert!(parked.payload["reason"].as_str().unwrap().contains("legal hold"), "{parked:?}");
    let escalated = story.iter().find(|e| e.event_type == "InvoiceRegistrationEscalated").unwrap();
    assert_eq!(escalated.actor, "review-e");
    assert!(escalated.reason().unwrap().contains("could not judge"), "{escalated:?}");

    // The Accounting API parks the second one's approval: a final failure a
    // person may retry (a new approval).
    let story = w.until("poison-accounting", Phase::FailedFinally).await;
    let parked = story.iter().find(|e| e.event_type == "SubscriptionEventParked").expect("a park record");
    assert_eq!(
        (parked.actor.as_str(), parked.payload["subscription"].clone()),
        ("accounting-api", json!("accounting-api.approvals"))
    );

    // Everything after them went on.
    w.until("after", Phase::Executed).await;
    assert_eq!(w.registered(), ["F-after"]);
    let stats =
        Command::new(env!("CARGO_BIN_EXE_bookkeeper")).arg("stats").env("DATABASE_URL", &w.db.url).output().unwrap();
    let stats = String::from_utf8_lossy(&stats.stdout).to_string();
    assert!(
        stats.contains("PARKED") && stats.contains("review-e.proposals") && stats.contains("legal hold"),
        "{stats}"
    );
    w.db.cleanup().await;
}

/// Event ids are derived, so any role can guess the id of an event a service will
/// write and store another event under it first. That stops nothing: the service
/// writes its event under a fresh id (its expectations keep it written once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guessed_event_id_taken_first_stops_nothing() {
    let Some(db) = TestDb::postgres().await else { return };
    let w = World::start(db).await;
    let p1 = w.invoice("squat-review", "F-s1", 100_00);
    let p2 = w.invoice("squat-accounting", "F-s2", 200_00);
    let decision_of_p1 = derived_event_id(p1.event_id, "review-e.decision");
    let approval_of_p2 = derived_event_id(p2.event_id, "review-e.decision");
    let claim_of_p2 = derived_event_id(approval_of_p2, "accounting-api.start.1");
    let executed_of_p2 = derived_event_id(approval_of_p2, "accounting-api.executed");
    // Book-E's role squats them with park records, a type it may append.
    let squat = |id| NewEvent::new("SubscriptionEventParked", "book-e", "PARKED", "elsewhere").with_id(id);
    let book_e = w.book_e().await;
    book_e.append(Append::new(vec![squat(decision_of_p1), squat(claim_of_p2), squat(executed_of_p2)])).await.unwrap();
    book_e.append(Append::one(p1)).await.unwrap();
    book_e.append(Append::one(p2)).await.unwrap();
    for cid in ["squat-review", "squat-accounting"] {
        let story = w.until(cid, Phase::Executed).await;
        assert!(!story.iter().any(|e| e.event_type == "SubscriptionEventParked"), "{cid} was parked");
    }
    assert_eq!(w.registered(), ["F-s1", "F-s2"]);
    w.db.cleanup().await;
}

/// Appending beside an action moves nothing that matters: a role that keeps
/// writing its own events under an action's id (here the CronJob's) used to keep
/// every decision and execution failing their version check, for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_written_beside_an_action_do_not_keep_it_from_being_decided_and_executed() {
    let Some(db) = TestDb::postgres().await else { return };
    let w = World::start(db).await;
    let cron = Store::connect(&w.db.role_url("cron")).await.unwrap();
    let spam = tokio::spawn(async move {
        loop {
            let e = NewEvent::new("ComplianceCheckCompleted", "cron", "COMPLETED", "crowded");
            if cron.append(Append::one(e)).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    w.book_e().await.append(Append::one(w.invoice("crowded", "F-c", 100_00))).await.unwrap();
    w.until("crowded", Phase::Executed).await;
    spam.abort();
    assert_eq!(w.registered(), ["F-c"]);
    w.db.cleanup().await;
}
