//! Nothing waits behind someone else's transaction: with a write transaction left
//! open on the same PostgreSQL server (an operator's forgotten `BEGIN` in this
//! database, a batch job in another one), a proposal is still judged by Review-E,
//! approved by a person, and executed by the Accounting API, within seconds.

use std::time::{Duration, Instant};

use bookkeeper_core::people::{Directory, Door, Person, Right};
use bookkeeper_core::testing::{postgres_admin_url, TestDb};
use bookkeeper_core::{ActionState, NewEvent, Phase, Store};
use serde_json::json;
use sqlx::Connection;

async fn until(store: &Store, cid: &str, phase: Phase, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let story = store.read_correlation(cid).await.unwrap();
        if ActionState::fold(&story).phase() == phase {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "{cid} did not reach {phase:?} within {within:?}: {story:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
    let accounting = accounting_api::AccountingApi::build(
        accounting_api::Config {
            addr: "127.0.0.1:0".parse().unwrap(),
            poll_interval: Duration::from_secs(5),
            fiken_spacing: Duration::ZERO,
            ..Default::default()
        },
        role("accounting_api").await,
    )
    .await
    .unwrap();
    let fiken = accounting.sandbox().fiken.clone().unwrap();
    let (stop_accounting, stopped_accounting) = tokio::sync::oneshot::channel::<()>();
    let accounting = tokio::spawn(accounting.run_until_stopped(async move {
        let _ = stopped_accounting.await;
    }));
    let people = Directory::new(vec![Person::new("kari")
        .may_also(Right::Review)
        .with_token(Door::ReviewE, "kari-token-0123456789")])
    .unwrap();
    let review = review_e::ReviewE::build(
        review_e::Config {
            addr: "127.0.0.1:0".parse().unwrap(),
            people: people.clone(),
            // Far longer than the test: only wake-ups move the services.
            poll_interval: Duration::from_secs(5),
            ..Default::default()
        },
        role("review_e").await,
    )
    .await
    .unwrap();
    let (stop_review, stopped_review) = tokio::sync::oneshot::channel::<()>();
    let review = tokio::spawn(review.run_until_stopped(async move {
        let _ = stopped_review.await;
    }));

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
    let _ = stop_review.send(());
    let _ = stop_accounting.send(());
    review.await.unwrap().unwrap();
    accounting.await.unwrap().unwrap();
    db.cleanup().await;
}
