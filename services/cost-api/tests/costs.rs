//! The Cost API started late on a log with history (PostgreSQL, as the
//! `cost_api` role): it catches up, totals by account and vendor, reports closed
//! months exactly once even with two replicas, and reports on demand.

// Amounts are written kroner_øre: 8_000_00 is 8 000,00 kr.
#![allow(clippy::inconsistent_digit_grouping)]

use std::time::{Duration, Instant};

use bookkeeper_core::testing::TestDb;
use bookkeeper_core::Clock;
use bookkeeper_core::{Append, Cursor, NewEvent, Store, TypeFilter};
use chrono::{Datelike, Days, NaiveDate};
use cost_api::ledger::month_of;
use cost_api::{Config, CostApi};
use serde_json::{json, Value};

/// The day the Cost API believes it is: the first of a month, the day a calendar
/// bug shows (last month has just closed), whatever day the test runs.
fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()
}

fn months() -> (String, String, String) {
    let today = today();
    let first = today.with_day(1).unwrap();
    let last_month = first - Days::new(1);
    (month_of(last_month), format!("{}-15", month_of(last_month)), month_of(today))
}

async fn executed_invoice(store: &Store, cid: &str, vendor: &str, account: &str, minor: i64, date: &str) {
    let proposal = NewEvent::new("InvoiceRegistrationProposed", "book-e", "PROPOSED", cid).with_payload(json!({
        "requested_by": "user:kari", "document": {"sha256": "a".repeat(64), "filename": "f.pdf", "content_type": "application/pdf"},
        "vendor": {"name": vendor}, "invoice_number": cid, "amount": {"minor": minor, "currency": "NOK"},
        "invoice_date": date, "due_date": date, "account": account,
    }));
    let approved = NewEvent::new("InvoiceRegistrationApproved", "system:auto", "AUTO_APPROVED", cid)
        .with_payload(json!({"reason": "ok"}))
        .caused_by(proposal.event_id);
    let started = NewEvent::new("InvoiceRegistrationExecutionStarted", "system", "EXECUTING", cid)
        .with_payload(json!({"attempt": 1, "idempotency_key": cid}));
    let executed = NewEvent::new("InvoiceRegistrationExecuted", "system", "EXECUTED", cid)
        .with_payload(json!({"remote_ids": {"fiken_purchase_id": "1"}}));
    store.append(Append::new(vec![proposal, approved, started, executed])).await.unwrap();
}

async fn executed_receipt(store: &Store, cid: &str, vendor: &str, minor: i64, date: &str) {
    let proposal = NewEvent::new("ReceiptAttachmentProposed", "book-e", "PROPOSED", cid).with_payload(json!({
        "requested_by": "user:ola", "receipt": {"sha256": "b".repeat(64), "filename": "r.pdf", "content_type": "application/pdf"},
        "target": {"kind": "folio_event", "event_id": "e"}, "amount": {"minor": minor, "currency": "NOK"},
        "vendor": {"name": vendor}, "date": date,
    }));
    let approved = NewEvent::new("ReceiptAttachmentApproved", "system:auto", "AUTO_APPROVED", cid)
        .with_payload(json!({"reason": "ok"}))
        .caused_by(proposal.event_id);
    let started = NewEvent::new("ReceiptAttachmentExecutionStarted", "system", "EXECUTING", cid)
        .with_payload(json!({"attempt": 1, "idempotency_key": cid}));
    let executed =
        NewEvent::new("ReceiptAttachmentExecuted", "system", "EXECUTED", cid).with_payload(json!({"remote_ids": {}}));
    store.append(Append::new(vec![proposal, approved, started, executed])).await.unwrap();
}

async fn start(db: &TestDb) -> (String, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<anyhow::Result<()>>) {
    let config = Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        close_check: Duration::from_millis(100),
        poll_interval: Duration::from_millis(50),
        clock: Clock::on(today()),
        ..Config::default()
    };
    let store = Store::connect(&db.role_url("cost_api")).await.unwrap();
    let api = CostApi::build(config, store).await.unwrap();
    let base = format!("http://127.0.0.1:{}", api.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(api.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    (base, stop, task)
}

async fn get(base: &str, path: &str) -> (u16, Value) {
    let started = Instant::now();
    loop {
        let r = reqwest::get(format!("{base}{path}")).await.unwrap();
        let status = r.status().as_u16();
        // 503 while it reads the history.
        if status != 503 || started.elapsed() > Duration::from_secs(20) {
            return (status, r.json().await.unwrap_or_default());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn reports(db: &TestDb) -> Vec<bookkeeper_core::RecordedEvent> {
    let filter = TypeFilter::of(["MonthlyCostReport"]);
    db.store.read_waiting(Cursor::START, &filter, 100, Duration::from_secs(2)).await.unwrap().events
}

#[tokio::test]
async fn late_start_catches_up_reports_closed_months_once_and_on_demand() {
    let Some(db) = TestDb::postgres().await else { return };
    let (last, last_day, current) = months();
    let today = today().to_string();
    executed_invoice(&db.store, "i-1", "Kontor AS", "6540", 8_000_00, &last_day).await;
    executed_invoice(&db.store, "i-2", "Strøm AS", "6340", 1_200_00, &last_day).await;
    executed_receipt(&db.store, "r-1", "Kiwi", 312_50, &last_day).await;
    executed_invoice(&db.store, "i-3", "Kontor AS", "6540", 500_00, &today).await;
    // Proposed but never executed: not a cost.
    let pending = NewEvent::new("InvoiceRegistrationProposed", "book-e", "PROPOSED", "i-4")
        .with_payload(json!({"amount": {"minor": 99_999_00, "currency": "NOK"}, "invoice_date": last_day}));
    db.store.append(Append::one(pending)).await.unwrap();

    // Someone stored another event under the id last month's close report will
    // have (it is derived from the month): the report is made anyway.
    let guessed =
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("cost-api.month-closed:{last}:NOK").as_bytes());
    let cron = Store::connect(&db.role_url("cron")).await.unwrap();
    cron.append(Append::one(NewEvent::new("ComplianceCheckCompleted", "cron", "COMPLETED", "squat").with_id(guessed)))
        .await
        .unwrap();
    cron.close().await;

    // Two replicas, started late.
    let (a, stop_a, task_a) = start(&db).await;
    let (b, stop_b, task_b) = start(&db).await;
    let (status, body) = get(&a, &format!("/costs/monthly?month={last}")).await;
    assert_eq!(status, 200, "{body}");
    let costs = &body["costs"][0];
    assert_eq!(costs["currency"], json!("NOK"));
    assert_eq!(costs["total_minor"], json!(8_000_00 + 1_200_00 + 312_50));
    assert_eq!(costs["by_account"], json!({"6540": 8_000_00, "6340": 1_200_00, "receipts": 312_50}));
    assert_eq!(costs["by_vendor"], json!({"Kontor AS": 8_000_00, "Strøm AS": 1_200_00, "Kiwi": 312_50}));
    let (_, now) = get(&b, &format!("/costs/monthly?month={current}")).await;
    assert_eq!(now["costs"][0]["total_minor"], json!(500_00));

    // Last month is closed: reported once, by whichever replica came first. This month is not.
    let started = Instant::now();
    while reports(&db).await.is_empty() {
        assert!(started.elapsed() < Duration::from_secs(20), "no month-close report");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let closed = reports(&db).await;
    assert_eq!(closed.len(), 1, "one report for the closed month, not one per replica");
    assert_eq!((closed[0].actor.as_str(), closed[0].status.as_str()), ("cost-api", "REPORTED"));
    assert_eq!(closed[0].payload["month"], json!(last));
    assert_eq!(closed[0].payload["total_minor"], json!(9_512_50));

    // A new execution is counted as it happens.
    executed_receipt(&db.store, "r-2", "Ruter", 89_00, &today).await;
    let started = Instant::now();
    loop {
        let (_, now) = get(&a, &format!("/costs/monthly?month={current}")).await;
        if now["costs"][0]["total_minor"] == json!(589_00) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{now}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // On demand, for this month.
    let r = reqwest::Client::new().post(format!("{a}/costs/monthly/report?month={current}")).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let all = reports(&db).await;
    assert_eq!(all.len(), 2);
    assert_eq!(
        (all[1].payload["month"].clone(), all[1].metadata["trigger"].clone()),
        (json!(current), json!("on-demand"))
    );

    // Bad input.
    assert_eq!(get(&a, "/costs/monthly?month=2026-13").await.0, 400);
    assert_eq!(get(&a, "/costs/monthly?month=last-month").await.0, 400);
    let none = reqwest::Client::new().post(format!("{a}/costs/monthly/report?month=1999-01")).send().await.unwrap();
    assert_eq!(none.status(), 404);

    // Its role may append only cost reports.
    let cost_api = Store::connect(&db.role_url("cost_api")).await.unwrap();
    let approve = NewEvent::new("InvoiceRegistrationApproved", "cost-api", "APPROVED", "i-4");
    assert!(cost_api.append(Append::one(approve)).await.is_err());
    cost_api.close().await;

    for (stop, task) in [(stop_a, task_a), (stop_b, task_b)] {
        let _ = stop.send(());
        task.await.unwrap().unwrap();
    }
    db.cleanup().await;
}

async fn ready(base: &str) -> Value {
    let (status, body) = get(base, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn total(base: &str, month: &str) -> Value {
    get(base, &format!("/costs/monthly?month={month}")).await.1["costs"][0]["total_minor"].clone()
}

/// A restart resumes from the ledger saved beside the log (its cursor and
/// totals), counting nothing twice; a saved ledger of another form is rebuilt.
#[tokio::test]
async fn a_restart_resumes_from_the_saved_ledger_and_counts_nothing_twice() {
    let Some(db) = TestDb::postgres().await else { return };
    let (last, last_day, _) = months();
    executed_invoice(&db.store, "s-1", "Kontor AS", "6540", 8_000_00, &last_day).await;
    let (a, stop_a, task_a) = start(&db).await;
    assert_eq!(ready(&a).await["resumed_from"], Value::Null, "the first start reads the whole log");
    assert_eq!(total(&a, &last).await, json!(8_000_00));
    stop_a.send(()).unwrap();
    task_a.await.unwrap().unwrap();
    let cost_api = Store::connect(&db.role_url("cost_api")).await.unwrap();
    let (at, saved) = cost_api.load_read_model(cost_api::ledger::READ_MODEL).await.unwrap().expect("saved on stop");
    assert!(at.position > 0 && saved["months"].as_array().is_some_and(|m| m.len() == 1), "{saved}");

    // More history while it was down; the next start reads only that.
    executed_invoice(&db.store, "s-2", "Strøm AS", "6340", 1_200_00, &last_day).await;
    let (b, stop_b, task_b) = start(&db).await;
    let resumed = ready(&b).await["resumed_from"].clone();
    assert_eq!(resumed["position"], json!(at.position), "{resumed}");
    assert_eq!(total(&b, &last).await, json!(8_000_00 + 1_200_00), "each action counted once");
    stop_b.send(()).unwrap();
    task_b.await.unwrap().unwrap();

    // A saved ledger in a form this release does not read is rebuilt from the log.
    cost_api.save_read_model(cost_api::ledger::READ_MODEL, at, &json!({"version": 0})).await.unwrap();
    let (c, stop_c, task_c) = start(&db).await;
    assert_eq!(ready(&c).await["resumed_from"], Value::Null);
    assert_eq!(total(&c, &last).await, json!(8_000_00 + 1_200_00));
    stop_c.send(()).unwrap();
    task_c.await.unwrap().unwrap();
    cost_api.close().await;
    db.cleanup().await;
}
