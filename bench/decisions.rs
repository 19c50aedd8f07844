//! `bookkeeper bench decisions`: proposal appended -> decision readable as the log
//! grows (by default 0, 100k and 1M earlier events, nearly all of one vendor on one
//! account: the history that made the old facts query slow), each beside a floor
//! measured at the same size in the same run: a bare append, a LISTEN/NOTIFY
//! wake-up and a checkpoint commit with an event, through the same store and
//! subscription machinery, with no facts and no policy work.

use std::time::{Duration, Instant};

use anyhow::bail;
use bookkeeper_core::store::facts::Rebuilt;
use bookkeeper_core::store::FactsQuery;
use bookkeeper_core::{
    Append, Handler, HandlerError, NewEvent, RecordedEvent, Store, Subscription, SubscriptionOptions, TypeFilter,
};
use clap::Args;
use review_e::decide::SUBSCRIPTION;
use review_e::policy::{Limits, Mode, PolicyEngine};
use review_e::registry::Registry;
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use sqlx::{ConnectOptions, PgPool};

/// Arguments of `bench decisions`.
#[derive(Debug, Args)]
pub struct DecisionsBenchArgs {
    /// Log sizes to measure at, in earlier events, grown in this order.
    #[arg(long, value_delimiter = ',', default_value = "0,100000,1000000")]
    history: Vec<usize>,
    /// Decisions (and floor round trips) measured at each size.
    #[arg(long, default_value_t = 1000)]
    proposals: usize,
}

/// The heavy vendor and account of the grown history.
const VENDOR: &str = "Kiwi";
const ACCOUNT: &str = "6800";

pub async fn decisions(args: DecisionsBenchArgs) -> anyhow::Result<()> {
    let mut sizes = args.history.clone();
    sizes.dedup();
    if sizes.windows(2).any(|w| w[0] > w[1]) {
        bail!("--history sizes grow the log: give them in increasing order");
    }
    let mut components = Vec::new();
    for name in ["small-receipts", "unusual-vendor", "monthly-budget", "duplicate-invoice"] {
        components.push(crate::example(name)?.to_vec());
    }
    crate::store::with_scratch_database("bench decisions", false, |scratch| async move {
        let url = scratch.to_url_lossy().to_string();
        let store = Store::connect(&url).await?;
        store.migrate().await?;
        let quiet = scratch.clone().log_slow_statements(tracing::log::LevelFilter::Off, Duration::from_secs(600));
        let raw = PgPoolOptions::new().max_connections(2).connect_with(quiet).await?;
        let registry = Registry::new(PolicyEngine::new(Limits::default())?);
        for component in components {
            review_e::publish::publish(
                &store,
                &registry,
                component,
                Mode::Enforcing,
                Default::default(),
                "user:bench",
                "upload",
            )
            .await?;
        }
        println!(
            "bookkeeper bench decisions: {} proposals per size, 4 example policies, one at a time; \
             history: nearly all {VENDOR} on account {ACCOUNT}",
            args.proposals
        );
        println!();
        println!(
            "{:>10} {:>12} {:>12} {:>12} {:>12} {:>9} {:>12} {:>11} {:>11} {:>11}",
            "history",
            "floor p50",
            "floor p99",
            "decision p50",
            "decision p99",
            "p99/floor",
            "fold (ev/s)",
            "facts scan",
            "stats",
            "stats scan"
        );
        let mut first_p99 = None;
        let mut last = (0usize, 0f64, 0f64);
        for (round, &size) in sizes.iter().enumerate() {
            let grown = grow(&raw, size).await?;
            let fold_rate = if grown > 0 {
                // The history was judged long ago: Review-E's checkpoint is past it,
                // and the facts are folded from it as after an upgrade.
                let started = Instant::now();
                skip_to_end(&raw).await?;
                let rate = match store.rebuild_facts(SUBSCRIPTION, |_| {}).await? {
                    Rebuilt::Folded(n) => format!("{:.0}", n as f64 / started.elapsed().as_secs_f64()),
                    Rebuilt::LeftToHolder => bail!("Review-E's lease is held during the benchmark"),
                };
                // Settle after the bulk load, so autovacuum does not run during the samples.
                sqlx::query("VACUUM ANALYZE").execute(&raw).await?;
                sqlx::query("CHECKPOINT").execute(&raw).await?;
                rate
            } else {
                "-".into()
            };
            let scan = scan_ms(&store, round).await?;
            let mut floor = floor(&url, args.proposals, round).await?;
            let mut decided = decide(&store, &url, args.proposals, round).await?;
            let (f50, f99) = (percentile(&mut floor, 0.5), percentile(&mut floor, 0.99));
            let (d50, d99) = (percentile(&mut decided, 0.5), percentile(&mut decided, 0.99));
            let (stats, stats_scan) = stats_ms(&store, &url, round).await?;
            println!(
                "{:>10} {:>10.2}ms {:>10.2}ms {:>10.2}ms {:>10.2}ms {:>8.2}x {:>12} {:>9.1}ms {:>9.2}ms {:>9.1}ms",
                count(&raw).await?,
                f50,
                f99,
                d50,
                d99,
                d99 / f99,
                fold_rate,
                scan,
                stats,
                stats_scan
            );
            first_p99.get_or_insert(d99);
            last = (size, d99, f99);
        }
        if let (Some(first), (size, p99, _)) = (first_p99, last) {
            println!();
            println!("decision p99 at {size} earlier events / at the first size: {:.2}x", p99 / first);
        }
        println!("facts scan: the facts query this release replaced, once, for a {VENDOR} proposal;");
        println!(
            "stats: `stats` (and a /metrics scrape) in a running process, median of 20, 10 new events before each;"
        );
        println!("stats scan: the same from the views over the whole log, which it replaced.");
        store.close().await;
        Ok(())
    })
    .await
}

async fn count(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(pool).await?)
}

/// Grows the log to `size` events: invoice proposals of [`VENDOR`] on [`ACCOUNT`]
/// (every tenth another vendor's), each approved by a policy and executed,
/// generated server-side. Returns how many were added.
async fn grow(pool: &PgPool, size: usize) -> anyhow::Result<usize> {
    let have = count(pool).await? as usize;
    let mut left = size.saturating_sub(have) / 3;
    let added = left * 3;
    let mut next: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(pool).await?;
    while left > 0 {
        let chunk = left.min(30_000) as i64;
        sqlx::query(
            "INSERT INTO events (event_id, type, actor, status, correlation_id, payload)
             SELECT CASE k WHEN 0 THEN md5('history-' || g)::uuid ELSE gen_random_uuid() END,
                    CASE k WHEN 0 THEN 'InvoiceRegistrationProposed' WHEN 1 THEN 'InvoiceRegistrationApproved'
                           ELSE 'InvoiceRegistrationExecuted' END,
                    CASE k WHEN 0 THEN 'book-e' WHEN 1 THEN 'system:auto' ELSE 'system' END,
                    CASE k WHEN 0 THEN 'PROPOSED' WHEN 1 THEN 'AUTO_APPROVED' ELSE 'EXECUTED' END,
                    'history-' || g,
                    CASE k WHEN 0 THEN jsonb_build_object(
                        'requested_by', 'user:' || (g % 20),
                        'vendor', jsonb_build_object('name', CASE WHEN g % 10 = 0 THEN 'Vendor ' || (g % 200) ELSE $3 END),
                        'account', $4::text,
                        'invoice_number', 'H' || g,
                        'amount', jsonb_build_object('minor', 10000 + g % 90000, 'currency', 'NOK'))
                    WHEN 1 THEN jsonb_build_object('reason', 'history', 'outcome', 'approve',
                        'proposal_event_id', md5('history-' || g)::uuid::text)
                    ELSE '{}'::jsonb END
             FROM generate_series($1 + 1, $1 + $2) g, (VALUES (0), (1), (2)) AS kinds(k)
             ORDER BY g, k",
        )
        .bind(next)
        .bind(chunk)
        .bind(VENDOR)
        .bind(ACCOUNT)
        .execute(pool)
        .await?;
        next += chunk;
        left -= chunk as usize;
    }
    if added > 0 {
        sqlx::query("VACUUM ANALYZE events").execute(pool).await?;
    }
    Ok(added)
}

/// Moves Review-E's checkpoint to the end of the log (as if it had judged the
/// history when it was written).
async fn skip_to_end(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query("INSERT INTO subscriptions (name) VALUES ($1) ON CONFLICT (name) DO NOTHING")
        .bind(SUBSCRIPTION)
        .execute(pool)
        .await?;
    sqlx::query(
        "UPDATE subscriptions SET (last_transaction_id, last_position) =
            (SELECT transaction_id, position FROM events ORDER BY transaction_id DESC, position DESC LIMIT 1)
         WHERE name = $1",
    )
    .bind(SUBSCRIPTION)
    .execute(pool)
    .await?;
    Ok(())
}

/// One run of the query the facts read model replaced, for a [`VENDOR`] proposal.
async fn scan_ms(store: &Store, round: usize) -> anyhow::Result<f64> {
    let appended = store.append_events(vec![proposal(&format!("scan-{round}"))]).await?;
    let before = store.cursor_at(appended[0].position).await?;
    let query = FactsQuery {
        before,
        correlation_id: format!("scan-{round}"),
        vendor_name: Some(VENDOR.into()),
        vendor_org: None,
        account: Some(ACCOUNT.into()),
        invoice_number: Some("N-1".into()),
        requested_by: Some("user:1".into()),
        today: chrono::Utc::now().date_naive(),
    };
    let started = Instant::now();
    store.proposal_facts_by_scan(&query).await?;
    Ok(started.elapsed().as_secs_f64() * 1e3)
}

/// A scrape in a process that has been running: its tally is warm, and a few
/// events came since the last one. Beside it, the views' answer.
async fn stats_ms(store: &Store, url: &str, round: usize) -> anyhow::Result<(f64, f64)> {
    let scraper = Store::connect(url).await?;
    scraper.stats().await?;
    let mut samples = Vec::new();
    for i in 0..20 {
        let events =
            (0..10).map(|j| NewEvent::new("BenchPing", "bench", "PING", format!("s-{round}-{i}-{j}"))).collect();
        store.append_events(events).await?;
        let started = Instant::now();
        scraper.stats().await?;
        samples.push(started.elapsed().as_secs_f64() * 1e3);
    }
    let started = Instant::now();
    scraper.stats_by_scan().await?;
    let scan = started.elapsed().as_secs_f64() * 1e3;
    scraper.close().await;
    Ok((percentile(&mut samples, 0.5), scan))
}

fn proposal(id: &str) -> NewEvent {
    NewEvent::new("InvoiceRegistrationProposed", "book-e", "PROPOSED", id).with_payload(json!({
        "requested_by": "user:1",
        "vendor": {"name": VENDOR},
        "account": ACCOUNT,
        "invoice_number": format!("N-{id}"),
        "amount": {"minor": 12_900, "currency": "NOK"},
        "document": {"sha256": "a".repeat(64), "filename": "i.pdf", "content_type": "application/pdf"}
    }))
}

/// The floor's handler: one event back, in the commit that moves the checkpoint.
struct Echo;

impl Handler for Echo {
    async fn handle(&self, event: &RecordedEvent) -> Result<Append, HandlerError> {
        Ok(Append::one(
            NewEvent::new("BenchPong", "bench", "PONG", &event.correlation_id)
                .derived_from(event.event_id, "bench.echo"),
        ))
    }
}

/// Appends `event` from `writer` and waits until its correlation holds two events.
async fn round_trip(writer: &Store, event: NewEvent) -> anyhow::Result<f64> {
    let mut wakeups = writer.wakeups();
    let id = event.correlation_id.clone();
    let started = Instant::now();
    writer.append_events(vec![event]).await?;
    loop {
        if writer.read_correlation(&id).await?.len() >= 2 {
            return Ok(started.elapsed().as_secs_f64() * 1e3);
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("no answer for {id} within 30 s");
        }
        let _ = tokio::time::timeout(Duration::from_millis(5), wakeups.changed()).await;
    }
}

async fn floor(url: &str, n: usize, round: usize) -> anyhow::Result<Vec<f64>> {
    let reader = Store::connect(url).await?;
    let writer = Store::connect(url).await?;
    let options = SubscriptionOptions { poll_interval: Duration::from_secs(60), ..Default::default() };
    let sub = Subscription::new(reader.clone(), format!("bench.floor-{round}"), TypeFilter::of(["BenchPing"]), Echo)
        .with_options(options);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(sub.run(async move {
        let _ = stopped.await;
    }));
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let ping = NewEvent::new("BenchPing", "bench", "PING", format!("ping-{round}-{i}"));
        samples.push(round_trip(&writer, ping).await?);
    }
    let _ = stop.send(());
    task.await?;
    reader.close().await;
    writer.close().await;
    Ok(samples)
}

async fn decide(store: &Store, url: &str, n: usize, round: usize) -> anyhow::Result<Vec<f64>> {
    let config = review_e::Config {
        addr: "127.0.0.1:0".parse()?,
        poll_interval: Duration::from_secs(60),
        ..review_e::Config::default()
    };
    let service = review_e::ReviewE::build(config, store.clone()).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(service.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    // Book-E's side: its own pool, as another process.
    let writer = Store::connect(url).await?;
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        samples.push(round_trip(&writer, proposal(&format!("d-{round}-{i}"))).await?);
    }
    let _ = stop.send(());
    task.await??;
    writer.close().await;
    Ok(samples)
}

fn percentile(samples: &mut [f64], q: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples.get(((samples.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(f64::NAN)
}
