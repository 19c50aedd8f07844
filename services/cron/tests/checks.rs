//! The compliance checks against a real log (PostgreSQL, as the `cron` role) and a
//! real Accounting API in its sandbox; a source that is down is recorded as such.

// Amounts are written kroner_øre.
#![allow(clippy::inconsistent_digit_grouping)]

use accounting_api::AccountingApi;
use bookkeeper_core::testing::TestDb;
use bookkeeper_core::{Append, NewEvent, Store};
use bookkeeper_cron::{Checks, Config};
use serde_json::json;

fn finding<'a>(
    result: &'a bookkeeper_core::domain::ComplianceCheckCompleted,
    check: &str,
) -> &'a bookkeeper_core::domain::Finding {
    result.findings.iter().find(|f| f.check == check).unwrap()
}

#[tokio::test]
async fn every_check_reports_and_an_unreachable_source_is_said() {
    let Some(db) = TestDb::postgres().await else { return };
    let accounting = AccountingApi::build(
        accounting_api::Config { addr: "127.0.0.1:0".parse().unwrap(), ..Default::default() },
        Store::connect(&db.role_url("accounting_api")).await.unwrap(),
    )
    .await
    .unwrap();
    let url = format!("http://127.0.0.1:{}", accounting.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(accounting.run_until_stopped(async move {
        let _ = stopped.await;
    }));

    // An escalated proposal waiting for a person, and an execution that failed for good.
    let proposal = NewEvent::new("InvoiceRegistrationProposed", "book-e", "PROPOSED", "waiting-1")
        .with_payload(json!({"amount": {"minor": 50_000_00, "currency": "NOK"}}));
    let escalated = NewEvent::new("InvoiceRegistrationEscalated", "system:auto", "ESCALATED", "waiting-1")
        .with_payload(json!({"reason": "large"}));
    // Each failure after an approval and a claimed attempt, as the services write them.
    let mut events = vec![proposal, escalated];
    for (cid, is_final) in [("failed-1", true), ("retrying-1", false)] {
        let proposed = NewEvent::new("ReceiptAttachmentProposed", "book-e", "PROPOSED", cid);
        let approved = NewEvent::new("ReceiptAttachmentApproved", "system:auto", "AUTO_APPROVED", cid)
            .with_payload(json!({"reason": "small"}))
            .caused_by(proposed.event_id);
        let started = NewEvent::new("ReceiptAttachmentExecutionStarted", "system", "EXECUTING", cid)
            .with_payload(json!({"attempt": 1, "idempotency_key": cid}));
        let failed = NewEvent::new("ReceiptAttachmentExecutionFailed", "system", "FAILED", cid)
            .with_payload(json!({"error": "Folio refused", "retryable": !is_final, "attempt": 1, "final": is_final}));
        if is_final {
            events.extend([proposed, approved, started, failed]);
        } else {
            // No approval, so the running Accounting API leaves it alone: a
            // failure that will be retried is not a final one.
            events.extend([proposed, started, failed]);
        }
    }
    db.store.append(Append::new(events)).await.unwrap();

    let config = Config {
        accounting_url: url,
        receipt_days: 2,
        review_hours: 0,
        min_balance_minor: 300_000_00,
        ..Config::default()
    };
    let checks = Checks::new(Store::connect(&db.role_url("cron")).await.unwrap(), config.clone()).unwrap();
    let result = checks.run_once().await.unwrap();
    // The sandbox bank: purchases 1, 2, 3 and 5 days ago, none with a receipt.
    assert_eq!(finding(&result, "missing_receipts").count, 3, "{result:?}");
    assert_eq!(finding(&result, "waiting_reviews").ids, ["waiting-1"]);
    assert_eq!(finding(&result, "failed_executions").ids, ["failed-1"]);
    assert_eq!(finding(&result, "low_balance").count, 1, "235 673 kr is below the 300 000 kr threshold");

    let filter = bookkeeper_core::TypeFilter::of(["ComplianceCheckCompleted"]);
    let recorded = db
        .store
        .read_waiting(bookkeeper_core::Cursor::START, &filter, 10, std::time::Duration::from_secs(5))
        .await
        .unwrap()
        .events;
    assert_eq!(recorded.len(), 1);
    assert_eq!((recorded[0].actor.as_str(), recorded[0].status.as_str()), ("cron", "COMPLETED"));
    assert_eq!(recorded[0].payload["findings"][0]["check"], json!("missing_receipts"));

    // The Accounting API gone: its checks say so; the log's checks still run.
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    let result = checks.run_once().await.unwrap();
    let missing = finding(&result, "missing_receipts");
    assert!(missing.error.as_deref().is_some_and(|e| e.contains("not reachable")), "{missing:?}");
    assert!(finding(&result, "low_balance").error.is_some());
    assert_eq!(finding(&result, "waiting_reviews").count, 1);
    assert!(bookkeeper_cron::summary(&result).contains("could not run"));

    // The cron role may record check results and nothing else.
    let cron = Store::connect(&db.role_url("cron")).await.unwrap();
    assert!(cron
        .append(Append::one(NewEvent::new("InvoiceRegistrationApproved", "cron", "APPROVED", "x")))
        .await
        .is_err());
    cron.close().await;
    db.cleanup().await;
}
