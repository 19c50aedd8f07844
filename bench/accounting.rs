//! `bookkeeper bench accounting`: the Accounting API executing approvals against
//! the local fakes (no injected faults) on PostgreSQL.
//!
//! - Throughput: a backlog of approvals drained by the service, against the
//!   floor of making the same remote calls directly with the same clients.
//! - Overhead per action, one approval at a time: from the approval event to the
//!   remote call, and from the remote answer to the recorded event (both read
//!   from the `...Executed` event's metadata and timestamps).
//!
//! Fiken's real pacing (4 requests a second per token) is switched off here, so
//! the figures are Bookkeeper's own cost; with it on, Fiken is the ceiling.

// Amounts are written kroner_øre: 1_250_00 is 1 250,00 kr.
#![allow(clippy::inconsistent_digit_grouping)]

use std::time::{Duration, Instant};

use accounting_api::execute::ExecutionOptions;
use accounting_api::fiken::fake::{FakeFiken, SANDBOX_COMPANY};
use accounting_api::fiken::{FikenClient, NewPurchase, PurchaseLine, Token};
use accounting_api::folio::fake::{FakeFolio, SANDBOX_ACCOUNT};
use accounting_api::folio::{ApiKey, FolioClient};
use accounting_api::retry::RetryPolicy;
use accounting_api::{AccountingApi, Config, FikenConfig, FolioConfig};
use anyhow::{bail, Context};
use bookkeeper_core::{Append, NewEvent, Store};
use clap::Args;
use serde_json::json;
use sqlx::ConnectOptions;

use crate::store::{percentile, with_scratch_database};

/// Arguments of `bench accounting`.
#[derive(Debug, Args)]
pub struct AccountingBenchArgs {
    /// Approvals of each kind for the throughput figures.
    #[arg(long, default_value_t = 1_000)]
    actions: usize,
    /// Approvals, one at a time, for the overhead figures.
    #[arg(long, default_value_t = 300)]
    samples: usize,
}

struct Bench {
    fiken: FakeFiken,
    folio: FakeFolio,
    events: Vec<uuid::Uuid>,
    token: String,
}

impl Bench {
    fn config(&self) -> Config {
        Config {
            addr: "127.0.0.1:0".parse().expect("a socket address"),
            fiken: FikenConfig::Live {
                base_url: self.fiken.base_url(),
                company: SANDBOX_COMPANY.into(),
                token: Token::new(self.token.clone()),
            },
            folio: FolioConfig::Live { base_url: self.folio.base_url(), key: ApiKey::new("bench") },
            fiken_spacing: Duration::ZERO,
            execution: ExecutionOptions::default(),
            poll_interval: Duration::from_millis(200),
            ..Config::default()
        }
    }

    fn fiken_client(&self) -> anyhow::Result<FikenClient> {
        Ok(FikenClient::new(
            self.fiken.base_url(),
            SANDBOX_COMPANY,
            Token::new(self.token.clone()),
            RetryPolicy::default(),
            Duration::ZERO,
        )?)
    }
}

fn receipt(cid: &str, event: uuid::Uuid, sha: &str) -> NewEvent {
    NewEvent::new("ReceiptAttachmentProposed", "book-e", "PROPOSED", cid).with_payload(json!({
        "requested_by": "user:ola",
        "receipt": {"sha256": sha, "filename": "kvittering.pdf", "content_type": "application/pdf"},
        "target": {"kind": "folio_event", "event_id": event.to_string()},
        "amount": {"minor": 49_900, "currency": "NOK"}, "vendor": {"name": "Kiwi"},
    }))
}

fn invoice(cid: &str, number: &str, sha: &str) -> NewEvent {
    NewEvent::new("InvoiceRegistrationProposed", "book-e", "PROPOSED", cid).with_payload(json!({
        "requested_by": "user:kari",
        "document": {"sha256": sha, "filename": "faktura.pdf", "content_type": "application/pdf"},
        "vendor": {"name": "Kontorleverandøren AS", "organization_number": "912345678"},
        "invoice_number": number, "amount": {"minor": 1_250_00, "currency": "NOK"},
        "invoice_date": "2026-11-20", "due_date": "2026-12-04", "account": "6540",
    }))
}

async fn approve(store: &Store, proposal: NewEvent) -> anyhow::Result<()> {
    let cid = proposal.correlation_id.clone();
    let kind = bookkeeper_core::domain::ActionKind::parse(&proposal.event_type).expect("a proposal").0;
    let approval =
        NewEvent::new(kind.event_type(bookkeeper_core::domain::Stage::Approved), "system:auto", "AUTO_APPROVED", &cid)
            .with_payload(json!({"reason": "bench"}))
            .caused_by(proposal.event_id);
    store.append(Append::new(vec![proposal, approval])).await?;
    Ok(())
}

/// Waits until every one of `cids` has its `...Executed` event.
async fn executed(store: &Store, prefix: &str, n: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let count = store
            .stats()
            .await?
            .by_type_and_status
            .iter()
            .filter(|(t, _, _)| bookkeeper_core::lifecycle::stage(t) == Some(bookkeeper_core::domain::Stage::Executed))
            .fold(0, |acc, (t, _, n)| if t.starts_with(prefix) { acc + *n as usize } else { acc });
        if count >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {count} of {n} {prefix} actions executed within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn accounting(args: AccountingBenchArgs) -> anyhow::Result<()> {
    with_scratch_database("the accounting benchmark", false, |scratch| async move {
        let scratch = scratch.to_url_lossy().to_string();
        let store = Store::connect(&scratch).await?;
        store.migrate().await?;
        let fiken = FakeFiken::start("127.0.0.1:0".parse()?).await?;
        let folio = FakeFolio::sandbox("127.0.0.1:0".parse()?).await?;
        let events =
            (0..50).map(|i| folio.add_event(SANDBOX_ACCOUNT, chrono::Utc::now(), -(100 + i), "BENCH")).collect();
        let bench = Bench { fiken, folio, events, token: format!("bench-{}", uuid::Uuid::new_v4()) };
        println!(
            "bookkeeper bench accounting: {} actions of each kind, fakes without faults, PostgreSQL",
            args.actions
        );
        println!();
        throughput(&bench, &store, &scratch, args.actions).await?;
        println!();
        overhead(&bench, &store, args.samples).await?;
        store.close().await;
        Ok(())
    })
    .await
}

async fn throughput(bench: &Bench, store: &Store, scratch: &str, n: usize) -> anyhow::Result<()> {
    let doc = b"%PDF-1.7 bench document".to_vec();
    let sha = store.put_blob(&doc, "application/pdf").await?;

    // Floor: the same remote calls, made directly by the same clients.
    let folio = FolioClient::new(bench.folio.base_url(), ApiKey::new("bench"), RetryPolicy::default())?;
    let started = Instant::now();
    for i in 0..n {
        let event = bench.events[i % bench.events.len()];
        folio.attach_receipt(event, "kvittering.pdf", "application/pdf", doc.clone()).await?;
    }
    let floor_receipts = n as f64 / started.elapsed().as_secs_f64();

    // Durable floor: the same call between the two commits any exactly-once
    // execution needs (claim before, outcome after), as bare INSERTs.
    let pool = &sqlx::PgPool::connect(scratch).await?;
    sqlx::query("CREATE TABLE bench_floor (id bigserial PRIMARY KEY, cid text, payload jsonb)").execute(pool).await?;
    let started = Instant::now();
    for i in 0..n {
        let event = bench.events[i % bench.events.len()];
        let cid = format!("floor-{i}");
        sqlx::query("INSERT INTO bench_floor (cid, payload) VALUES ($1, '{\"attempt\":1}')")
            .bind(&cid)
            .execute(pool)
            .await?;
        folio.attach_receipt(event, "kvittering.pdf", "application/pdf", doc.clone()).await?;
        sqlx::query("INSERT INTO bench_floor (cid, payload) VALUES ($1, '{\"done\":true}')")
            .bind(&cid)
            .execute(pool)
            .await?;
    }
    let durable_receipts = n as f64 / started.elapsed().as_secs_f64();
    let fiken = bench.fiken_client()?;
    let started = Instant::now();
    for i in 0..n {
        let supplier = match fiken.find_supplier("Floor AS", Some("998877665")).await? {
            Some(id) => id,
            None => fiken.create_supplier("Floor AS", Some("998877665")).await?,
        };
        let purchase = NewPurchase {
            identifier: format!("FLOOR-{i}"),
            date: chrono::NaiveDate::from_ymd_opt(2026, 11, 20).context("a date")?,
            due_date: None,
            supplier_id: supplier,
            currency: "NOK".into(),
            lines: vec![PurchaseLine {
                description: "floor".into(),
                account: "6540".into(),
                net_minor: 1_000_00,
                vat_minor: 250_00,
                vat_type: "HIGH".into(),
            }],
        };
        let id = fiken.create_purchase(&purchase).await?;
        fiken.attach_to_purchase(id, "faktura.pdf", doc.clone(), false).await?;
    }
    let floor_invoices = n as f64 / started.elapsed().as_secs_f64();

    // Ours: a backlog of approvals, drained by the service.
    for i in 0..n {
        approve(store, receipt(&format!("tp-r-{i}"), bench.events[i % bench.events.len()], &sha)).await?;
    }
    let service = AccountingApi::build(bench.config(), store.clone()).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(service.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let started = Instant::now();
    executed(store, "ReceiptAttachment", n).await?;
    let ours_receipts = n as f64 / started.elapsed().as_secs_f64();
    let _ = stop.send(());
    task.await??;

    for i in 0..n {
        approve(store, invoice(&format!("tp-i-{i}"), &format!("TP-{i}"), &sha)).await?;
    }
    let service = AccountingApi::build(bench.config(), store.clone()).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(service.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let started = Instant::now();
    executed(store, "InvoiceRegistration", n).await?;
    let ours_invoices = n as f64 / started.elapsed().as_secs_f64();
    let _ = stop.send(());
    task.await??;

    println!("{:<52} {:>10} {:>10} {:>8}", "executions per second", "ours", "floor", "ratio");
    for (label, ours, floor) in [
        ("receipt -> Folio (floor: the bare call)", ours_receipts, floor_receipts),
        ("receipt -> Folio (floor: call between 2 commits)", ours_receipts, durable_receipts),
        ("invoice -> Fiken, 3 calls (floor: the bare calls)", ours_invoices, floor_invoices),
    ] {
        println!("{label:<52} {ours:>10.0} {floor:>10.0} {:>7.0}%", 100.0 * ours / floor);
    }
    Ok(())
}

async fn overhead(bench: &Bench, store: &Store, samples: usize) -> anyhow::Result<()> {
    let sha = store.put_blob(b"%PDF-1.7 overhead sample", "application/pdf").await?;
    let service = AccountingApi::build(bench.config(), store.clone()).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(service.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let (mut before, mut after, mut remote) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..samples {
        let cid = format!("oh-{i}");
        approve(store, receipt(&cid, bench.events[i % bench.events.len()], &sha)).await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let executed = loop {
            let story = store.read_correlation(&cid).await?;
            if let Some(e) = story.into_iter().find(|e| {
                bookkeeper_core::lifecycle::stage(&e.event_type) == Some(bookkeeper_core::domain::Stage::Executed)
            }) {
                break e;
            }
            if Instant::now() > deadline {
                bail!("{cid} was not executed within 30 s");
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        let at = |key: &str| -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
            serde_json::from_value(executed.metadata[key].clone()).with_context(|| format!("metadata {key}"))
        };
        let (approved, started, finished) = (at("approved_at")?, at("remote_started_at")?, at("remote_finished_at")?);
        let us = |d: chrono::TimeDelta| d.num_microseconds().unwrap_or_default() as f64;
        before.push(us(started - approved));
        remote.push(us(finished - started));
        after.push(us(executed.created_at - finished));
    }
    let _ = stop.send(());
    task.await??;
    println!("{:<44} {:>10} {:>10}", "per action, one at a time (microseconds)", "p50", "p99");
    for (label, v) in [
        ("approval event -> remote call starts", &before),
        ("the remote call (fake Folio, for scale)", &remote),
        ("remote answer -> outcome event recorded", &after),
    ] {
        println!("{label:<44} {:>10.0} {:>10.0}", percentile(v, 0.5), percentile(v, 0.99));
    }
    Ok(())
}
