//! `bookkeeper bench policy`: policy evaluation in the sandbox against the same
//! rule as native Rust, the proposal -> decision round trip on PostgreSQL, and
//! how fast a published policy is in force in another process.

use std::time::{Duration, Instant};

use anyhow::bail;
use bookkeeper_core::{NewEvent, Store};
use bookkeeper_policy_sdk::{Facts, Money, Policy, Proposal, Vendor, VendorHistory};
use clap::Args;
use review_e::policy::{Limits, Mode, PolicyEngine};
use review_e::registry::Registry;
use serde_json::json;
use sqlx::ConnectOptions;

/// Arguments of `bench policy`.
#[derive(Debug, Args)]
pub struct PolicyBenchArgs {
    /// Evaluations for the latency and throughput figures.
    #[arg(long, default_value_t = 100_000)]
    evaluations: usize,
    /// Proposals for the proposal -> decision round trip (0 skips it).
    #[arg(long, default_value_t = 10_000)]
    proposals: usize,
    /// Policy swaps measured across processes (0 skips it).
    #[arg(long, default_value_t = 50)]
    swaps: usize,
}

pub async fn policy(args: PolicyBenchArgs) -> anyhow::Result<()> {
    let component = crate::example("small-receipts")?.to_vec();
    println!("bookkeeper bench policy: small-receipts, {} evaluations", args.evaluations);
    println!();
    evaluation(&component, args.evaluations)?;

    if args.proposals == 0 && args.swaps == 0 {
        return Ok(());
    }
    crate::store::with_scratch_database("the round-trip and swap figures", false, |scratch| async move {
        let scratch = scratch.to_url_lossy().to_string();
        let store = Store::connect(&scratch).await?;
        store.migrate().await?;
        if args.proposals > 0 {
            round_trip(&store, &scratch, &component, args.proposals).await?;
        }
        if args.swaps > 0 {
            swaps(&scratch, &component, args.swaps).await?;
        }
        store.close().await;
        Ok(())
    })
    .await
}

fn proposal(i: usize) -> Proposal {
    Proposal {
        proposal_type: "ReceiptAttachmentProposed".into(),
        correlation_id: format!("bench-{i}"),
        proposed_by: "book-e".into(),
        requested_by: "user:ola.nordmann".into(),
        amount: Some(Money::nok(49_900 + i as i64 % 1000)),
        vendor: Some(Vendor { name: "Kiwi Majorstuen".into(), organization_number: Some("912345678".into()) }),
        account: Some("6800".into()),
        description: Some("Team lunch after the quarterly close".into()),
        invoice_number: None,
        invoice_date: Some("2026-11-25".into()),
        due_date: None,
        has_document: true,
        document_type: None,
        payload_json: r#"{"receipt":{"sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}}"#
            .into(),
    }
}

fn facts() -> Facts {
    Facts {
        today: "2026-11-25".into(),
        vendor_history: VendorHistory {
            payments: 12,
            total_minor: 480_000,
            largest_minor: 89_000,
            last_paid: Some("2026-11-20".into()),
        },
        account_month_to_date_minor: 120_000,
        duplicate_invoice_registered: false,
        duplicate_invoice_proposed: false,
        requester_proposals_last_30_days: 9,
        requester_proposals_today: 1,
        weekday: Some(3),
    }
}

fn percentile(samples: &mut [f64], q: f64) -> f64 {
    crate::store::percentile(samples, q)
}

fn evaluation(component: &[u8], n: usize) -> anyhow::Result<()> {
    let engine = PolicyEngine::new(Limits::default())?;
    let policy = engine.load(component)?;
    let facts = facts();
    let proposals: Vec<Proposal> = (0..1000).map(proposal).collect();
    // Warm up, and check both sides agree before timing them.
    for p in &proposals {
        let (wasm, _) = policy.evaluate(p, &facts);
        let native = policy_small_receipts::SmallReceipts::evaluate(p, &facts);
        anyhow::ensure!(wasm.as_ref().ok() == Some(&native), "wasm and native disagree on {}", p.correlation_id);
    }
    let mut wasm_samples = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        let (result, _) = policy.evaluate(&proposals[i % proposals.len()], &facts);
        std::hint::black_box(result.ok());
        wasm_samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let wasm_rate = n as f64 / started.elapsed().as_secs_f64();
    let mut native_samples = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        let d = policy_small_receipts::SmallReceipts::evaluate(
            std::hint::black_box(&proposals[i % proposals.len()]),
            &facts,
        );
        std::hint::black_box(d);
        native_samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let native_rate = n as f64 / started.elapsed().as_secs_f64();
    let (wp50, wp99) = (percentile(&mut wasm_samples, 0.5), percentile(&mut wasm_samples, 0.99));
    let (np50, np99) = (percentile(&mut native_samples, 0.5), percentile(&mut native_samples, 0.99));
    println!("{:<52} {:>10} {:>10} {:>14}", "one evaluation (microseconds)", "p50", "p99", "evaluations/s");
    println!("{:<52} {wp50:>10.2} {wp99:>10.2} {wasm_rate:>14.0}", "wasm: fresh store + instance + call, one thread");
    println!("{:<52} {np50:>10.2} {np99:>10.2} {native_rate:>14.0}", "native Rust, same rule (floor)");
    println!("{:<52} {:>10.2}", "overhead per evaluation, p50 (wasm - native)", wp50 - np50);
    println!();
    Ok(())
}

async fn round_trip(store: &Store, url: &str, component: &[u8], n: usize) -> anyhow::Result<()> {
    let registry = Registry::new(PolicyEngine::new(Limits::default())?);
    review_e::publish::publish(
        store,
        &registry,
        component.to_vec(),
        Mode::Enforcing,
        Default::default(),
        "user:bench",
        "upload",
    )
    .await?;
    let config = review_e::Config {
        addr: "127.0.0.1:0".parse()?,
        poll_interval: Duration::from_millis(200),
        ..review_e::Config::default()
    };
    let service = review_e::ReviewE::build(config, store.clone()).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(service.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    // Book-E's side: its own pool, as another process.
    let writer = Store::connect(url).await?;
    let mut wakeups = writer.wakeups();
    let mut samples = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        let id = format!("rt-{i}");
        let e = NewEvent::new("ReceiptAttachmentProposed", "book-e", "PROPOSED", &id).with_payload(json!({
            // A small company: 20 people, 200 vendors.
            "requested_by": format!("user:{}", i % 20),
            "receipt": {"sha256": "a".repeat(64), "filename": "r.jpg", "content_type": "image/jpeg"},
            "amount": {"minor": 10_000 + (i as i64 % 90_000), "currency": "NOK"},
            "vendor": {"name": format!("Vendor {}", i % 200)}
        }));
        let t = Instant::now();
        writer.append_events(vec![e]).await?;
        // Wait for the decision's NOTIFY (the writer's store listens), looking
        // again every few milliseconds in case one is coalesced away.
        loop {
            let story = writer.read_correlation(&id).await?;
            if story.len() >= 2 {
                break;
            }
            if t.elapsed() > Duration::from_secs(30) {
                bail!("no decision for {id} within 30 s");
            }
            let _ = tokio::time::timeout(Duration::from_millis(5), wakeups.changed()).await;
        }
        samples.push(t.elapsed().as_secs_f64() * 1e3);
        if (i + 1) % (n / 10).max(1) == 0 {
            eprint!("\rround trips {}/{n}", i + 1);
        }
    }
    eprintln!();
    let rate = n as f64 / started.elapsed().as_secs_f64();
    let _ = stop.send(());
    task.await??;
    println!("{:<52} {:>10} {:>10} {:>14}", "proposal appended -> decision appended (ms)", "p50", "p99", "proposals/s");
    println!(
        "{:<52} {:>10.2} {:>10.2} {:>14.0}",
        format!("PostgreSQL, {n} proposals, one at a time"),
        percentile(&mut samples, 0.5),
        percentile(&mut samples, 0.99),
        rate
    );
    println!();
    Ok(())
}

async fn swaps(url: &str, component: &[u8], n: usize) -> anyhow::Result<()> {
    // Two stores with their own pools and LISTEN connections, as two processes.
    let publisher_store = Store::connect(url).await?;
    let follower_store = Store::connect(url).await?;
    let publisher = Registry::new(PolicyEngine::new(Limits::default())?);
    let follower = Registry::new(PolicyEngine::new(Limits::default())?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let follow = tokio::spawn(follower.clone().follow(follower_store.clone(), async move {
        let _ = stopped.await;
    }));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        let retire = i % 2 == 1;
        if retire {
            review_e::publish::retire(&publisher_store, &publisher, "small-receipts", "user:bench", "upload", "bench")
                .await?;
        } else {
            let mode = if i % 4 == 0 { Mode::Enforcing } else { Mode::Shadow };
            review_e::publish::publish(
                &publisher_store,
                &publisher,
                component.to_vec(),
                mode,
                Default::default(),
                "user:bench",
                "upload",
            )
            .await?;
        }
        loop {
            let present = follower.current().set.get("small-receipts").is_some();
            if present != retire {
                break;
            }
            if started.elapsed() > Duration::from_secs(10) {
                bail!("swap {i} not followed within 10 s");
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        samples.push(started.elapsed().as_secs_f64() * 1e3);
    }
    let _ = stop.send(());
    follow.await?;
    println!(
        "{:<52} {:>10} {:>10} {:>10}",
        "policy published -> in force in another process (ms)", "p50", "p99", "max"
    );
    let max = samples.iter().cloned().fold(0.0, f64::max);
    println!(
        "{:<52} {:>10.1} {:>10.1} {:>10.1}",
        format!("{n} publish/retire swaps"),
        percentile(&mut samples, 0.5),
        percentile(&mut samples, 0.99),
        max
    );
    publisher_store.close().await;
    follower_store.close().await;
    Ok(())
}
