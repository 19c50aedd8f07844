//! The Accounting API as a service: approvals in the log are carried out at the
//! fake Fiken and Folio exactly once, and the outcome is recorded. PostgreSQL, the
//! service connected as its own database role, real HTTP to the fakes.

// Amounts are written kroner_øre: 8_000_00 is 8 000,00 kr.
#![allow(clippy::inconsistent_digit_grouping)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use accounting_api::execute::ExecutionOptions;
use accounting_api::fiken::fake::{FakeFiken, SANDBOX_COMPANY};
use accounting_api::fiken::Token;
use accounting_api::folio::fake::{FakeFolio, SANDBOX_ACCOUNT};
use accounting_api::folio::ApiKey;
use accounting_api::retry::RetryPolicy;
use accounting_api::sandbox::{Fault, Faults};
use accounting_api::{AccountingApi, Config, FikenConfig, FolioConfig};
use bookkeeper_core::retry::Backoff;
use bookkeeper_core::testing::TestDb;
use bookkeeper_core::{Append, NewEvent, RecordedEvent, Store};
use serde_json::{json, Value};
use uuid::Uuid;

const PDF: &[u8] = b"%PDF-1.7\n% a receipt\n";

struct World {
    db: TestDb,
    fiken: FakeFiken,
    folio: FakeFolio,
    token: String,
}

struct Running {
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.unwrap().unwrap();
    }
}

async fn world() -> Option<World> {
    let db = TestDb::postgres().await?;
    let fiken = FakeFiken::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let folio = FakeFolio::sandbox("127.0.0.1:0".parse().unwrap()).await.unwrap();
    // One token per test: Fiken's pacing is per token, process-wide.
    Some(World { db, fiken, folio, token: format!("test-{}", Uuid::new_v4()) })
}

impl World {
    fn config(&self) -> Config {
        Config {
            addr: "127.0.0.1:0".parse().unwrap(),
            fiken: FikenConfig::Live {
                base_url: self.fiken.base_url(),
                company: SANDBOX_COMPANY.into(),
                token: Token::new(self.token.clone()),
            },
            folio: FolioConfig::Live { base_url: self.folio.base_url(), key: ApiKey::new("folio-test-key") },
            fiken_spacing: Duration::ZERO,
            http: RetryPolicy {
                max_attempts: 3,
                backoff: Backoff::new(Duration::from_millis(1), Duration::from_millis(10)),
                max_retry_after: Duration::from_secs(2),
                timeout: Duration::from_secs(10),
            },
            execution: ExecutionOptions {
                max_attempts: 6,
                backoff: Backoff::new(Duration::from_millis(2), Duration::from_millis(20)),
                ..ExecutionOptions::default()
            },
            poll_interval: Duration::from_millis(50),
            ..Config::default()
        }
    }

    async fn start(&self) -> Running {
        self.start_with(self.config()).await
    }

    async fn start_with(&self, config: Config) -> Running {
        // The Accounting API runs as its own role: the database decides what it may append.
        let store = Store::connect(&self.db.role_url("accounting_api")).await.unwrap();
        let service = AccountingApi::build(config, store).await.unwrap();
        assert!(!service.is_sandbox());
        let base = format!("http://127.0.0.1:{}", service.port());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(service.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        Running { base, stop: Some(stop), task }
    }

    fn store(&self) -> &Store {
        &self.db.store
    }

    async fn document(&self, bytes: &[u8], content_type: &str) -> String {
        self.store().put_blob(bytes, content_type).await.unwrap()
    }

    /// Proposal and automatic approval, as Book-E and Review-E append them.
    async fn receipt_to_folio(&self, cid: &str, event_id: Uuid, sha256: &str) {
        let proposal = NewEvent::new("ReceiptAttachmentProposed", "book-e", "PROPOSED", cid).with_payload(json!({
            "requested_by": "user:ola",
            "receipt": {"sha256": sha256, "filename": "kvittering.pdf", "content_type": "application/pdf"},
            "target": {"kind": "folio_event", "event_id": event_id.to_string()},
            "amount": {"minor": 499_00, "currency": "NOK"},
        }));
        self.propose_and_approve(proposal).await;
    }

    async fn invoice(&self, cid: &str, number: &str, minor: i64, sha256: &str) {
        let proposal = NewEvent::new("InvoiceRegistrationProposed", "book-e", "PROPOSED", cid).with_payload(json!({
            "requested_by": "user:kari",
            "document": {"sha256": sha256, "filename": format!("{number}.pdf"), "content_type": "application/pdf"},
            "vendor": {"name": "Kontorleverandøren AS", "organization_number": "912345678"},
            "invoice_number": number,
            "amount": {"minor": minor, "currency": "NOK"},
            "invoice_date": "2026-11-20",
            "due_date": "2026-12-04",
            "account": "6540",
            "description": "Kontorstoler",
        }));
        self.propose_and_approve(proposal).await;
    }

    async fn propose_and_approve(&self, proposal: NewEvent) {
        let cid = proposal.correlation_id.clone();
        let kind = bookkeeper_core::domain::ActionKind::parse(&proposal.event_type).expect("a proposal").0;
        let approval = NewEvent::new(
            kind.event_type(bookkeeper_core::domain::Stage::Approved),
            "system:auto",
            "AUTO_APPROVED",
            &cid,
        )
        .with_payload(json!({"reason": "small receipt"}))
        .caused_by(proposal.event_id);
        self.store().append(Append::new(vec![proposal, approval])).await.unwrap();
    }

    /// Waits until the action's last word is in: executed, failed finally, or skipped.
    async fn outcome(&self, cid: &str) -> Vec<RecordedEvent> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let story = self.store().read_correlation(cid).await.unwrap();
            if story.iter().any(is_terminal) {
                return story;
            }
            assert!(Instant::now() < deadline, "no outcome for {cid}: {:#?}", types(&story));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn is_terminal(e: &RecordedEvent) -> bool {
    bookkeeper_core::lifecycle::stage(&e.event_type) == Some(bookkeeper_core::domain::Stage::Executed)
        || bookkeeper_core::lifecycle::stage(&e.event_type) == Some(bookkeeper_core::domain::Stage::ExecutionSkipped)
        || (bookkeeper_core::lifecycle::stage(&e.event_type) == Some(bookkeeper_core::domain::Stage::ExecutionFailed)
            && e.payload["final"] == json!(true))
}

fn types(story: &[RecordedEvent]) -> Vec<String> {
    story.iter().map(|e| format!("{} ({}, {})", e.event_type, e.actor, e.status)).collect()
}

fn last(story: &[RecordedEvent]) -> &RecordedEvent {
    story.last().unwrap()
}

#[tokio::test]
async fn an_approved_receipt_is_attached_at_folio_and_the_story_records_it() {
    let Some(w) = world().await else { return };
    let event_id = w.folio.add_event(SANDBOX_ACCOUNT, chrono::Utc::now(), -499_00, "KIWI 123");
    let sha = w.document(PDF, "application/pdf").await;
    w.receipt_to_folio("r-1", event_id, &sha).await;
    let app = w.start().await;

    let story = w.outcome("r-1").await;
    assert_eq!(
        types(&story),
        [
            "ReceiptAttachmentProposed (book-e, PROPOSED)",
            "ReceiptAttachmentApproved (system:auto, AUTO_APPROVED)",
            "ReceiptAttachmentExecutionStarted (system, EXECUTING)",
            "ReceiptAttachmentExecuted (system, EXECUTED)",
        ]
    );
    let stored = w.folio.attachments_of(event_id);
    assert_eq!(stored.len(), 1);
    assert_eq!((stored[0].bytes.as_slice(), stored[0].filename.as_deref()), (PDF, Some("kvittering.pdf")));
    let executed = last(&story);
    assert_eq!(executed.payload["remote_ids"]["folio_attachment_id"], json!(stored[0].id.to_string()));
    assert_eq!(executed.payload["remote_ids"]["folio_event_id"], json!(event_id.to_string()));
    assert_eq!(executed.payload["attempt"], json!(1));
    assert_eq!(executed.causation_id, Some(story[1].event_id), "the execution names the approval as its cause");
    app.stop().await;
    w.db.cleanup().await;
}

#[tokio::test]
async fn an_approved_invoice_becomes_one_documented_purchase_in_fiken() {
    let Some(w) = world().await else { return };
    let sha = w.document(b"%PDF-1.4 faktura F-1001", "application/pdf").await;
    w.invoice("i-1", "F-1001", 10_000_00, &sha).await;
    let app = w.start().await;

    let story = w.outcome("i-1").await;
    let executed = last(&story);
    assert_eq!(executed.event_type, "InvoiceRegistrationExecuted", "{:#?}", types(&story));
    let purchases = w.fiken.purchases();
    assert_eq!(purchases.len(), 1);
    let (id, identifier) = &purchases[0];
    assert_eq!(identifier.as_deref(), Some("F-1001"));
    assert_eq!(executed.payload["remote_ids"]["fiken_purchase_id"], json!(id.to_string()));
    // 10 000,00 including 25 % VAT is 8 000,00 net + 2 000,00 VAT on the expense account.
    assert_eq!(w.fiken.lines_of(*id), [("6540".to_string(), 8_000_00, 2_000_00, "HIGH".to_string())]);
    let attachments = w.fiken.attachments_of(*id);
    assert_eq!(attachments.len(), 1);
    assert_eq!((attachments[0].filename.as_str(), attachments[0].to_payment), ("F-1001.pdf", false));
    assert_eq!(w.fiken.contacts().len(), 1, "the supplier was created once");

    // A second invoice from the same supplier reuses the contact.
    w.invoice("i-2", "F-1002", 500_00, &sha).await;
    assert_eq!(last(&w.outcome("i-2").await).event_type, "InvoiceRegistrationExecuted");
    assert_eq!((w.fiken.contacts().len(), w.fiken.purchases().len()), (1, 2));
    app.stop().await;
    w.db.cleanup().await;
}

#[tokio::test]
async fn approvals_made_while_the_accounting_api_is_down_are_executed_when_it_starts() {
    let Some(w) = world().await else { return };
    let sha = w.document(PDF, "application/pdf").await;
    let first = w.start().await;
    w.invoice("before-1", "B-1", 100_00, &sha).await;
    w.outcome("before-1").await;
    first.stop().await;

    // Down: approvals wait in the log.
    for i in 0..5 {
        w.invoice(&format!("down-{i}"), &format!("D-{i}"), 100_00 + i, &sha).await;
    }
    assert_eq!(w.fiken.purchases().len(), 1, "nothing happens while it is down");

    let second = w.start().await;
    for i in 0..5 {
        assert_eq!(last(&w.outcome(&format!("down-{i}")).await).event_type, "InvoiceRegistrationExecuted");
    }
    let mut numbers: Vec<_> = w.fiken.purchases().into_iter().filter_map(|(_, n)| n).collect();
    numbers.sort();
    assert_eq!(numbers, ["B-1", "D-0", "D-1", "D-2", "D-3", "D-4"], "each once, the first not again");
    second.stop().await;
    w.db.cleanup().await;
}

#[tokio::test]
async fn a_queue_is_claimed_in_chunks_and_a_failure_in_it_is_retried_alone() {
    let Some(w) = world().await else { return };
    let sha = w.document(PDF, "application/pdf").await;
    // A queue while the service is down: eight invoices, then eight receipts.
    for i in 0..8 {
        w.invoice(&format!("q-{i}"), &format!("Q-{i}"), 100_00 + i, &sha).await;
    }
    let events: Vec<Uuid> =
        (0..8).map(|i| w.folio.add_event(SANDBOX_ACCOUNT, chrono::Utc::now(), -(50_00 + i), "SHOP")).collect();
    for (i, event_id) in events.iter().enumerate() {
        w.receipt_to_folio(&format!("r-{i}"), *event_id, &sha).await;
    }
    // The first receipt's upload fails (a 5xx on an upload is not retried by
    // the client: it may have landed).
    w.folio.fail_next([Fault::ServerError]);
    let mut config = w.config();
    // Claims may stand long here: the chunk after the first is the whole queue.
    config.execution.claim_window = Duration::from_secs(600);
    // A backoff long enough to see: the retry must wait for it, although the
    // failure stopped a batch and the checkpoint moves on right away.
    config.execution.backoff = Backoff::new(Duration::from_millis(400), Duration::from_millis(400));
    let app = w.start_with(config).await;

    let mut stories = HashMap::new();
    for cid in (0..8).map(|i| format!("q-{i}")).chain((0..8).map(|i| format!("r-{i}"))) {
        let story = w.outcome(&cid).await;
        assert!(last(&story).event_type.ends_with("Executed"), "{cid}: {:#?}", types(&story));
        stories.insert(cid, story);
    }
    let stage_of = |e: &RecordedEvent| bookkeeper_core::lifecycle::stage(&e.event_type);
    let first_of = |cid: &str, stage| stories[cid].iter().find(|e| stage_of(e) == Some(stage)).unwrap().clone();
    use bookkeeper_core::domain::Stage;
    // The first claim alone (no call measured yet), every other claim of the
    // queue in one commit, and the outcomes before the failure with the
    // checkpoint in another.
    let claims: std::collections::BTreeSet<i64> =
        stories.keys().map(|cid| first_of(cid, Stage::ExecutionStarted).transaction_id).collect();
    assert_eq!(claims.len(), 2, "the first alone, the other fifteen together");
    let invoices: std::collections::BTreeSet<i64> =
        (0..8).map(|i| first_of(&format!("q-{i}"), Stage::Executed).transaction_id).collect();
    assert_eq!(invoices.len(), 1, "the invoices' outcomes recorded together");
    // The failed one: recorded, retried on its own, carried out once.
    assert_eq!(
        types(&stories["r-0"]),
        [
            "ReceiptAttachmentProposed (book-e, PROPOSED)",
            "ReceiptAttachmentApproved (system:auto, AUTO_APPROVED)",
            "ReceiptAttachmentExecutionStarted (system, EXECUTING)",
            "ReceiptAttachmentExecutionFailed (system, FAILED)",
            "ReceiptAttachmentExecutionStarted (system, EXECUTING)",
            "ReceiptAttachmentExecuted (system, EXECUTED)",
        ]
    );
    let failed = first_of("r-0", Stage::ExecutionFailed);
    assert_eq!((&failed.payload["attempt"], &failed.payload["final"]), (&json!(1), &json!(false)));
    let wait = failed.payload["retry_in_ms"].as_i64().unwrap();
    let retried = &stories["r-0"][4];
    assert!(
        retried.created_at - failed.created_at >= chrono::Duration::milliseconds(wait),
        "the retry waited {} ms of the {wait} ms its failure asked",
        (retried.created_at - failed.created_at).num_milliseconds()
    );
    // The ones after it in the batch: carried out at once, recorded with the
    // failure, and not touched again when the subscription reads them anew.
    for i in 1..8 {
        let story = &stories[&format!("r-{i}")];
        assert_eq!(story.len(), 4, "r-{i}: one claim, one outcome, no skip: {:#?}", types(story));
        assert_eq!(last(story).transaction_id, failed.transaction_id, "r-{i} recorded with the failure");
    }
    let mut numbers: Vec<String> = w.fiken.purchases().into_iter().filter_map(|(_, n)| n).collect();
    numbers.sort();
    assert_eq!(numbers, (0..8).map(|i| format!("Q-{i}")).collect::<Vec<_>>(), "each invoice once");
    for event_id in events {
        assert_eq!(w.folio.attachments_of(event_id).len(), 1, "each receipt once");
    }
    app.stop().await;
    w.db.cleanup().await;
}

#[tokio::test]
async fn a_failed_attempt_is_recorded_then_retried_and_a_lost_answer_is_not_sent_twice() {
    let Some(w) = world().await else { return };
    let event_id = w.folio.add_event(SANDBOX_ACCOUNT, chrono::Utc::now(), -89_00, "RUTER");
    let sha = w.document(PDF, "application/pdf").await;
    // The upload lands at Folio, but the answer is lost.
    w.folio.fail_next([Fault::DropAfterCommit]);
    w.receipt_to_folio("lost-1", event_id, &sha).await;
    let app = w.start().await;

    let story = w.outcome("lost-1").await;
    let kinds: Vec<&str> = story.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "ReceiptAttachmentProposed",
            "ReceiptAttachmentApproved",
            "ReceiptAttachmentExecutionStarted",
            "ReceiptAttachmentExecutionFailed",
            "ReceiptAttachmentExecutionStarted",
            "ReceiptAttachmentExecuted",
        ]
    );
    let failed = &story[3];
    assert_eq!((failed.status.as_str(), failed.actor.as_str()), ("FAILED", "system"));
    assert_eq!(
        (&failed.payload["attempt"], &failed.payload["final"], &failed.payload["retryable"]),
        (&json!(1), &json!(false), &json!(true))
    );
    assert!(failed.payload["error"].as_str().unwrap().contains("answer was lost"), "{}", failed.payload);
    assert_eq!(story[4].payload["resumed"], json!(true));
    let executed = last(&story);
    assert_eq!((&executed.payload["attempt"], &executed.payload["found_existing"]), (&json!(2), &json!(true)));
    assert_eq!(w.folio.attachments_of(event_id).len(), 1, "the lost upload was found, not repeated");

    // A plain 5xx on an invoice: recorded, retried, executed once.
    w.fiken.fail_next([Fault::ServerError]);
    w.invoice("5xx-1", "S-1", 1_000_00, &sha).await;
    let story = w.outcome("5xx-1").await;
    assert_eq!(last(&story).event_type, "InvoiceRegistrationExecuted", "{:#?}", types(&story));
    assert_eq!(w.fiken.purchases().len(), 1);
    app.stop().await;
    w.db.cleanup().await;
}

#[tokio::test]
async fn an_emergency_reject_before_execution_stops_it() {
    let Some(w) = world().await else { return };
    let event_id = w.folio.add_event(SANDBOX_ACCOUNT, chrono::Utc::now(), -5_000_00, "ELKJOP");
    let sha = w.document(PDF, "application/pdf").await;
    w.receipt_to_folio("stop-1", event_id, &sha).await;
    let proposal = w.store().read_correlation("stop-1").await.unwrap()[0].event_id;
    let reject = NewEvent::new("ReceiptAttachmentRejected", "user:kari", "REJECTED", "stop-1").with_payload(
        json!({"reason": "wrong receipt, stop!", "reviewer": "user:kari", "proposal_event_id": proposal}),
    );
    w.store().append(Append::one(reject)).await.unwrap();
    let app = w.start().await;

    let story = w.outcome("stop-1").await;
    let skipped = last(&story);
    assert_eq!(
        (skipped.event_type.as_str(), skipped.status.as_str()),
        ("ReceiptAttachmentExecutionSkipped", "SKIPPED")
    );
    let reason = skipped.payload["reason"].as_str().unwrap();
    assert!(reason.contains("user:kari") && reason.contains("wrong receipt"), "{reason}");
    assert!(w.folio.attachments_of(event_id).is_empty(), "nothing reached Folio");
    assert!(!story
        .iter()
        .any(|e| bookkeeper_core::lifecycle::stage(&e.event_type)
            == Some(bookkeeper_core::domain::Stage::ExecutionStarted)));
    app.stop().await;
    w.db.cleanup().await;
}

#[tokio::test]
async fn bad_input_fails_finally_with_a_clear_reason_and_changes_nothing_remote() {
    let Some(w) = world().await else { return };
    let event_id = w.folio.add_event(SANDBOX_ACCOUNT, chrono::Utc::now(), -100_00, "X");
    let pdf = w.document(PDF, "application/pdf").await;
    let heic = w.document(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic....", "image/heic").await;
    let app = w.start().await;

    // A document nobody uploaded.
    w.receipt_to_folio("bad-doc", event_id, &"f".repeat(64)).await;
    // Content Fiken would refuse (a currency that is not an ISO code) is refused before anything is sent.
    let proposal =
        NewEvent::new("InvoiceRegistrationProposed", "book-e", "PROPOSED", "bad-fiken").with_payload(json!({
            "requested_by": "user:kari",
            "document": {"sha256": pdf, "filename": "x.pdf", "content_type": "application/pdf"},
            "vendor": {"name": "Utenlandsk Ltd"},
            "invoice_number": "U-1", "amount": {"minor": 100_00, "currency": "nok"},
            "invoice_date": "2026-11-20", "due_date": "2026-12-04", "account": "6540",
        }));
    w.propose_and_approve(proposal).await;
    // A photo format neither Folio nor Fiken takes.
    w.receipt_to_folio("bad-heic", event_id, &heic).await;
    // A payload that is not what its type says.
    let garbage = NewEvent::new("ReceiptAttachmentProposed", "book-e", "PROPOSED", "bad-payload")
        .with_payload(json!({"receipt": 42}));
    w.propose_and_approve(garbage).await;

    let expect = [
        ("bad-doc", "is not stored"),
        ("bad-fiken", "currency `nok` is not an ISO 4217 code"),
        ("bad-heic", "HEIC"),
        ("bad-payload", "not a valid ReceiptAttachmentProposed"),
    ];
    for (cid, words) in expect {
        let story = w.outcome(cid).await;
        let failed = last(&story);
        assert!(
            bookkeeper_core::lifecycle::stage(&failed.event_type)
                == Some(bookkeeper_core::domain::Stage::ExecutionFailed),
            "{cid}: {:#?}",
            types(&story)
        );
        assert_eq!((&failed.payload["final"], &failed.payload["retryable"]), (&json!(true), &json!(false)), "{cid}");
        let error = failed.payload["error"].as_str().unwrap();
        assert!(error.contains(words), "{cid}: {error}");
        let attempts = story
            .iter()
            .filter(|e| {
                bookkeeper_core::lifecycle::stage(&e.event_type)
                    == Some(bookkeeper_core::domain::Stage::ExecutionFailed)
            })
            .count();
        assert_eq!(attempts, 1, "{cid}: a permanent error is not retried");
    }
    assert!(w.folio.attachments_of(event_id).is_empty());
    assert!(w.fiken.purchases().is_empty());
    app.stop().await;
    w.db.cleanup().await;
}

#[tokio::test]
async fn the_service_role_may_record_outcomes_but_not_approve() {
    let Some(w) = world().await else { return };
    let store = Store::connect(&w.db.role_url("accounting_api")).await.unwrap();
    let approve = NewEvent::new("ReceiptAttachmentApproved", "system", "APPROVED", "x");
    assert!(store.append(Append::one(approve)).await.is_err(), "the Accounting API cannot approve");
    let started = NewEvent::new("ReceiptAttachmentExecutionStarted", "system", "EXECUTING", "x")
        .with_payload(json!({"attempt": 1, "idempotency_key": "k"}));
    store.append(Append::one(started)).await.unwrap();
    store.close().await;
    w.db.cleanup().await;
}

/// The acceptance test: 1,000 approvals with a fifth of the calls failing
/// (5xx, 429, and writes applied whose answer is dropped): every one executed,
/// exactly once, counted in the fakes' own state.
#[tokio::test]
async fn a_thousand_approvals_through_faults_are_each_executed_exactly_once() {
    if !bookkeeper_core::testing::run_slow_test("a_thousand_approvals_through_faults_are_each_executed_exactly_once") {
        return;
    }
    let Some(w) = world().await else { return };
    let faults = Faults {
        server_error_rate: 0.10,
        rate_limit_rate: 0.05,
        retry_after_secs: 0,
        latency: Duration::ZERO,
        drop_after_commit_rate: 0.10,
    };
    w.fiken.set_faults(faults.clone());
    w.folio.set_faults(faults);
    let events: Vec<Uuid> = (0..20)
        .map(|i| w.folio.add_event(SANDBOX_ACCOUNT, chrono::Utc::now(), -(100_00 + i), &format!("SHOP {i}")))
        .collect();
    let mut config = w.config();
    config.execution.max_attempts = 30;
    let app = w.start_with(config).await;

    const N: usize = 1_000;
    let mut expected_receipts: HashMap<Uuid, usize> = HashMap::new();
    for i in 0..N {
        let sha = w.document(format!("%PDF-1.7 document {i}").as_bytes(), "application/pdf").await;
        if i % 2 == 0 {
            w.invoice(&format!("bulk-{i}"), &format!("N-{i}"), 1_000 + i as i64, &sha).await;
        } else {
            let event_id = events[i % events.len()];
            *expected_receipts.entry(event_id).or_default() += 1;
            w.receipt_to_folio(&format!("bulk-{i}"), event_id, &sha).await;
        }
    }
    let mut retried = 0;
    for i in 0..N {
        let story = w.outcome(&format!("bulk-{i}")).await;
        assert!(
            last(&story).event_type.ends_with("Executed"),
            "bulk-{i}: {:#?} {}",
            types(&story),
            last(&story).payload
        );
        retried += usize::from(story.iter().any(|e| {
            bookkeeper_core::lifecycle::stage(&e.event_type) == Some(bookkeeper_core::domain::Stage::ExecutionFailed)
        }));
    }
    let mut numbers: Vec<String> = w.fiken.purchases().into_iter().filter_map(|(_, n)| n).collect();
    numbers.sort();
    numbers.dedup();
    assert_eq!((numbers.len(), w.fiken.purchases().len()), (N / 2, N / 2), "one purchase per invoice");
    for (id, _) in w.fiken.purchases() {
        assert_eq!(w.fiken.attachments_of(id).len(), 1, "purchase {id} documented once");
    }
    assert_eq!(w.fiken.contacts().len(), 1, "one supplier, however many lost answers");
    let mut receipts = Vec::new();
    for (event_id, n) in expected_receipts {
        let stored = w.folio.attachments_of(event_id);
        assert_eq!(stored.len(), n, "receipts on event {event_id}");
        receipts.extend(stored.into_iter().map(|a| a.bytes));
    }
    receipts.sort();
    receipts.dedup();
    assert_eq!(receipts.len(), N / 2, "every receipt uploaded, none twice");
    assert!(retried > 50, "the faults were felt: {retried} actions needed another attempt");
    eprintln!("{retried} of {N} actions needed more than one attempt");
    app.stop().await;
    w.db.cleanup().await;
}

#[tokio::test]
async fn documents_and_reads_over_http() {
    let Some(w) = world().await else { return };
    let mut config = w.config();
    config.max_document_bytes = 1024;
    config.token = Some("reader-token-0123456789".to_string().into());
    let app = w.start_with(config).await;
    let http = reqwest::Client::new();
    let auth = |r: reqwest::RequestBuilder| r.bearer_auth("reader-token-0123456789");

    let refused = http.get(format!("{}/folio/balance", app.base)).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    for open in ["/healthz", "/readyz", "/openapi.json"] {
        assert_eq!(http.get(format!("{}{open}", app.base)).send().await.unwrap().status(), 200, "{open}");
    }

    // Documents: by content, once, and back byte for byte.
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR a receipt photo".to_vec();
    let up = |body: Vec<u8>| auth(http.post(format!("{}/documents", app.base))).body(body).send();
    let first: Value = up(png.clone()).await.unwrap().json().await.unwrap();
    let again = up(png.clone()).await.unwrap();
    assert_eq!(again.status(), 201);
    let again: Value = again.json().await.unwrap();
    assert_eq!((first["sha256"].clone(), first["content_type"].clone()), (again["sha256"].clone(), json!("image/png")));
    let back =
        auth(http.get(format!("{}/documents/{}", app.base, first["sha256"].as_str().unwrap()))).send().await.unwrap();
    assert_eq!(back.headers()["content-type"], "image/png");
    assert_eq!(back.bytes().await.unwrap().as_ref(), png.as_slice());
    let exe = up(b"MZ\x90\0 this is a program called receipt.pdf".to_vec()).await.unwrap();
    assert_eq!(exe.status(), 415);
    assert!(exe.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("not PDF, JPEG, PNG or HEIC"));
    let big = up([b"%PDF-".as_slice(), &[b'x'; 2000]].concat()).await.unwrap();
    assert_eq!(big.status(), 413);
    assert!(big.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("1024 bytes"));
    let unknown = auth(http.get(format!("{}/documents/{}", app.base, "0".repeat(64)))).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    let nonsense = auth(http.get(format!("{}/documents/../../etc/passwd", app.base))).send().await.unwrap();
    assert!(nonsense.status().is_client_error());

    // Reads.
    let balance: Value =
        auth(http.get(format!("{}/folio/balance", app.base))).send().await.unwrap().json().await.unwrap();
    assert_eq!(balance["accounts"][0]["account_number"], json!(SANDBOX_ACCOUNT));
    let opening = 250_000_00 - 499_00 - 12_490_00 - 89_00 - 1_249_00;
    assert_eq!((balance["total_minor"].clone(), balance["total"].clone()), (json!(opening), json!("235673.00")));
    let today = chrono::Utc::now().date_naive();
    let tx: Value =
        auth(http.get(format!("{}/folio/transactions?from={}&to={today}", app.base, today - chrono::Days::new(10))))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(tx["transactions"].as_array().unwrap().len(), 4);
    // Folio wrote them unsigned; the direction (the account is the debtor) gives the sign.
    for t in tx["transactions"].as_array().unwrap() {
        assert_eq!(t["direction"], json!("out"), "{t}");
        assert!(t["amount_minor"].as_i64().unwrap() < 0, "{t}");
    }
    let missing: Value = auth(http.get(format!("{}/checks/missing-receipts?older_than_days=2", app.base)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(missing["count"], json!(3), "the purchases of 2, 3 and 5 days ago: {missing}");
    let bad =
        auth(http.get(format!("{}/folio/transactions?from=2026-02-01&to=2026-01-01", app.base))).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("after"));
    // The first day the calendar knows, as the end of a period: refused, not a crash.
    let edge = auth(http.get(format!("{}/folio/transactions?to=-262143-01-01", app.base))).send().await.unwrap();
    assert_eq!(edge.status(), 400);
    assert!(edge.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("years 1900 to 9999"));

    let sha = w.document(PDF, "application/pdf").await;
    w.invoice("read-1", "R-1", 1_250_00, &sha).await;
    w.outcome("read-1").await;
    let purchases: Value = auth(http.get(format!("{}/fiken/purchases?from=2026-11-01&to=2026-11-30", app.base)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(purchases["purchases"][0]["identifier"], json!("R-1"));
    assert_eq!(purchases["purchases"][0]["total_minor"], json!(1_250_00));

    // Prometheus metrics: executions by outcome, events handled, the subscription's lag.
    let metrics = http.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
    for needle in [
        "bookkeeper_executions_total{action=\"InvoiceRegistration\",outcome=\"executed\"}",
        "bookkeeper_events_handled_total{subscription=\"accounting-api.approvals\",type=\"InvoiceRegistrationApproved\"}",
        "bookkeeper_subscription_lag{subscription=\"accounting-api.approvals\"}",
        "bookkeeper_remote_call_seconds_bucket",
        "bookkeeper_log_up 1",
    ] {
        assert!(metrics.contains(needle), "no {needle} in:\n{metrics}");
    }

    // Folio failing: 503 with a retry hint, not a panic or a hang.
    w.folio.set_faults(Faults { server_error_rate: 1.0, ..Faults::default() });
    let down = auth(http.get(format!("{}/folio/balance", app.base))).send().await.unwrap();
    assert_eq!(down.status(), 503);
    assert!(down.headers().contains_key("retry-after"));
    let body: Value = down.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("Folio is unavailable") && body["retry_after_seconds"].is_number()
    );

    // The OpenAPI document names every route that answers.
    let doc: Value = http.get(format!("{}/openapi.json", app.base)).send().await.unwrap().json().await.unwrap();
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    for route in ["/folio/balance", "/folio/transactions", "/fiken/purchases", "/checks/missing-receipts", "/documents"]
    {
        assert!(paths.iter().any(|p| p.as_str() == route), "{route} documented");
    }
    app.stop().await;
    w.db.cleanup().await;
}

#[tokio::test]
async fn ready_only_while_the_database_answers() {
    let Some(w) = world().await else { return };
    let store = Store::connect(&w.db.role_url("accounting_api")).await.unwrap();
    let service = AccountingApi::build(w.config(), store.clone()).await.unwrap();
    let base = format!("http://127.0.0.1:{}", service.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(service.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    assert_eq!(http.get(format!("{base}/readyz")).send().await.unwrap().status(), 200);
    store.close().await;
    let not_ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(not_ready.status(), 503);
    assert_eq!(http.get(format!("{base}/healthz")).send().await.unwrap().status(), 200, "alive all the same");
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    w.db.cleanup().await;
}
