//! Nothing waits behind someone else's transaction: with a write transaction left
//! open on the same PostgreSQL server (an operator's forgotten `BEGIN` in this
//! database, a batch job in another one), a proposal is still judged by Review-E,
//! approved by a person, and executed by the Accounting API, within seconds.

use std::time::Duration;

use bookkeeper_core::people::{Directory, Door, Person, Right};
use bookkeeper_core::testing::{postgres_admin_url, TestDb};
use bookkeeper_core::{NewEvent, Phase, Store};

mod common;
use serde_json::json;
use sqlx::Connection;

async fn until(store: &Store, cid: &str, phase: Phase, within: Duration) -> Duration {
    common::until_phase(store, cid, phase, within).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_e_and_the_executor_keep_going_beside_a_transaction_left_open() {
    let Some(db) = TestDb::postgres().await else { return };
    // Two write transactions left open: one in this database, one in another.
    let mut here = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql("BEGIN; CREATE TEMP TABLE forgotten (a int); INSERT INTO forgotten VALUES (1)")
        .execute(&mut here)
        .await
        .unwrap();
    let mut elsewhere = sqlx::PgConnection::connect(&postgres_admin_url()).await.unwrap();
    sqlx::raw_sql("BEGIN; CREATE TEMP TABLE batch_job (a int); INSERT INTO batch_job VALUES (1)")
        .execute(&mut elsewhere)
        .await
        .unwrap();

    let role = |name: &str| {
        let url = db.role_url(name);
        async move { Store::connect(&url).await.unwrap() }
    };
    // Far longer than the test: only wake-ups move the services.
    let (accounting, fiken) = common::accounting_in_process(role("accounting_api").await, Duration::from_secs(5)).await;
    let people = Directory::new(vec![Person::new("kari")
        .may_also(Right::Review)
        .with_token(Door::ReviewE, "kari-token-0123456789")])
    .unwrap();
    let review = common::review_e_in_process(role("review_e").await, people.clone(), Duration::from_secs(5)).await;

    let book_e = role("book_e").await;
    let sha = db.store.put_blob(b"%PDF-1.7 invoice", "application/pdf").await.unwrap();
    book_e
        .append_events(vec![NewEvent::new("InvoiceRegistrationProposed", "book-e", "PROPOSED", "beside").with_payload(
            json!({
                "requested_by": "user:ola",
                "document": {"sha256": sha, "filename": "invoice.pdf", "content_type": "application/pdf"},
                "vendor": {"name": "Strøm AS", "organization_number": "998877665"},
                "invoice_number": "N-beside", "amount": {"minor": 100_000, "currency": "NOK"},
                "invoice_date": "2026-11-01", "due_date": "2026-11-30", "account": "6340",
            }),
        )])
        .await
        .unwrap();
    let store = &db.store;
    // No policies: Review-E sends it to a person.
    let judged = until(store, "beside", Phase::Escalated, Duration::from_secs(4)).await;
    review_e::review::approve(store, &people, "beside", "kari", Some("ok"), None).await.unwrap();
    let executed = until(store, "beside", Phase::Executed, Duration::from_secs(4)).await;
    eprintln!("beside two open transactions: judged after {judged:?}, executed {executed:?} after the approval");
    assert_eq!(fiken.purchases().len(), 1);

    // The transactions were open all along.
    sqlx::raw_sql("INSERT INTO forgotten VALUES (2); ROLLBACK").execute(&mut here).await.unwrap();
    sqlx::raw_sql("INSERT INTO batch_job VALUES (2); ROLLBACK").execute(&mut elsewhere).await.unwrap();
    review.stop().await;
    accounting.stop().await;
    db.cleanup().await;
}
