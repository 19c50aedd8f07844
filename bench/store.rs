//! `bookkeeper bench store`: the event store on PostgreSQL, each figure beside a
//! floor measured in the same run (raw SQL on the same server, same table), so
//! the ratio means something on a shared machine whose absolute speed drifts.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bookkeeper_core::{
    Append, Handler, HandlerError, NewEvent, RecordedEvent, Store, Subscription, SubscriptionOptions, TypeFilter,
};
use clap::Args;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor, PgConnection, PgPool};
use tokio::sync::mpsc;
use uuid::Uuid;

/// Arguments of `bench store`.
#[derive(Debug, Args)]
pub struct StoreBenchArgs {
    /// Single-row appends per measurement (each of 3 rounds).
    #[arg(long, default_value_t = 2000)]
    events: usize,
    /// 100-event batches per measurement.
    #[arg(long, default_value_t = 200)]
    batches: usize,
    /// Wake-up latency samples.
    #[arg(long, default_value_t = 500)]
    samples: usize,
    /// Largest log size for the growth test (measured at 10k, 100k, 1M, up to this).
    #[arg(long, default_value_t = 1_000_000)]
    max_log: usize,
    /// Keep the scratch database afterwards.
    #[arg(long)]
    keep: bool,
}

const ROUNDS: usize = 3;
/// Pause between latency samples, the same for the floor and for us.
const SAMPLE_GAP: Duration = Duration::from_millis(10);
const WRITERS: usize = 8;

pub async fn store(args: StoreBenchArgs) -> anyhow::Result<()> {
    let keep = args.keep;
    with_scratch_database("the store benchmark", keep, |scratch| async move { run(&scratch, &args).await }).await
}

/// Runs `f` on a new PostgreSQL database next to `DATABASE_URL`'s, dropped after
/// (unless `keep`), so a benchmark never touches real data.
pub(super) async fn with_scratch_database<F, Fut>(what: &str, keep: bool, f: F) -> anyhow::Result<()>
where
    F: FnOnce(PgConnectOptions) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let url = bookkeeper_core::config::Settings::load()?.database_url();
    if !url.expose().starts_with("postgres") {
        bail!("{what} runs on PostgreSQL: set DATABASE_URL=postgres://... (got {url})");
    }
    let admin: PgConnectOptions = url.expose().parse().context("parsing DATABASE_URL")?;
    let name = format!("bookkeeper_bench_{}", Uuid::new_v4().simple());
    let mut maintenance = PgConnection::connect_with(&admin).await.with_context(|| format!("connecting to {url}"))?;
    maintenance
        .execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
        .await
        .context("creating the scratch database")?;
    let result = f(admin.clone().database(&name)).await;
    if keep {
        println!("kept scratch database {name}");
    } else {
        maintenance.execute(format!(r#"DROP DATABASE "{name}" WITH (FORCE)"#).as_str()).await.ok();
    }
    result
}

async fn run(scratch: &PgConnectOptions, args: &StoreBenchArgs) -> anyhow::Result<()> {
    let url = scratch.to_url_lossy().to_string();
    let store = Store::connect(&url).await?;
    store.migrate().await?;
    // Growing the log by 50k rows a statement is slow on purpose; do not warn.
    let quiet = scratch.clone().log_slow_statements(tracing::log::LevelFilter::Off, Duration::from_secs(60));
    let raw = PgPoolOptions::new().max_connections(10).connect_with(quiet).await?;
    let version: String = sqlx::query_scalar("SHOW server_version").fetch_one(&raw).await?;
    println!("bookkeeper bench store: PostgreSQL {version}, {} CPU(s), {ROUNDS} rounds, median shown", num_cpus());
    println!();

    // 1. Growth: does cost stay flat as the log grows? (First, while the log is
    // still empty; the later measurements then run on the grown log.)
    println!(
        "{:<12} {:>22} {:>22} {:>24}",
        "log size", "append (events/s)", "raw insert (events/s)", "catch-up 10k (events/s)"
    );
    let mut size = count(&raw).await?;
    for target in [10_000usize, 100_000, 1_000_000].into_iter().filter(|t| *t <= args.max_log.max(10_000)) {
        grow(&raw, target.saturating_sub(size)).await?;
        size = count(&raw).await?;
        let n = 1000.min(args.events);
        let floor = raw_single_inserts(&raw, n, 1).await?;
        let ours = store_single_appends(&store, n, 1).await?;
        let catch_up = catch_up_rate(&store, 10_000).await?;
        println!("{:<12} {:>22.0} {:>22.0} {:>24.0}", size, ours, floor, catch_up);
    }
    println!();
    println!("{:<44} {:>14} {:>14} {:>7}", "workload", "bookkeeper", "floor", "ratio");

    // 2. One event per append, one writer.
    let (ours, floor) = rounds(|| async {
        let floor = raw_single_inserts(&raw, args.events, 1).await?;
        let ours = store_single_appends(&store, args.events, 1).await?;
        Ok((ours, floor))
    })
    .await?;
    row("single-event append, 1 writer (events/s)", ours, floor);

    // 3. 100 events per append.
    let (ours, floor) = rounds(|| async {
        let ours = store_batches(&store, args.batches).await?;
        let floor = raw_batches(&raw, args.batches).await?;
        Ok((ours, floor))
    })
    .await?;
    row("100-event batches, 1 writer (events/s)", ours, floor);

    // 4. Eight concurrent writers.
    let (ours, floor) = rounds(|| async {
        let floor = raw_single_inserts(&raw, args.events, WRITERS).await?;
        let ours = store_single_appends(&store, args.events, WRITERS).await?;
        Ok((ours, floor))
    })
    .await?;
    row("single-event append, 8 writers (events/s)", ours, floor);

    // 5. Wake-up latency.
    println!();
    let bare = bare_notify_round_trips(&raw, args.samples).await?;
    let (commit_to_handler, call_to_handler) = append_to_subscriber(&url, args.samples).await?;
    let short_lived = short_lived_appends(&url, args.samples.min(200)).await?;
    println!("{:<44} {:>10} {:>10} {:>12}", "latency (microseconds)", "p50", "p99", "p99 / floor");
    let floor_p99 = percentile(&bare, 0.99);
    for (label, samples) in [
        ("bare LISTEN/NOTIFY round trip (floor)", &bare),
        ("append committed -> subscriber handler", &commit_to_handler),
        ("append called -> subscriber handler", &call_to_handler),
        ("`events append` process -> subscriber", &short_lived),
    ] {
        let p99 = percentile(samples, 0.99);
        println!("{:<44} {:>10.0} {:>10.0} {:>11.2}x", label, percentile(samples, 0.5), p99, p99 / floor_p99);
    }

    store.close().await;
    raw.close().await;
    Ok(())
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn row(label: &str, ours: f64, floor: f64) {
    println!("{label:<44} {ours:>14.0} {floor:>14.0} {:>6.0}%", 100.0 * ours / floor);
}

/// Runs a paired measurement `ROUNDS` times, floor and ours alternating, and
/// returns the medians.
async fn rounds<F, Fut>(mut f: F) -> anyhow::Result<(f64, f64)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(f64, f64)>>,
{
    let mut ours = Vec::new();
    let mut floor = Vec::new();
    for _ in 0..ROUNDS {
        let (o, fl) = f().await?;
        ours.push(o);
        floor.push(fl);
    }
    Ok((median(&mut ours), median(&mut floor)))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The `q` quantile (0.0-1.0) of `samples`, nearest rank.
pub(super) fn percentile(samples: &[f64], q: f64) -> f64 {
    let mut v = samples.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * q).round() as usize;
    v.get(i).copied().unwrap_or(f64::NAN)
}

/// The event both sides write: same type, actor, status, correlation shape and payload.
/// Each a proposal of its own action (one proposal per correlation id).
fn event(i: usize) -> NewEvent {
    NewEvent::new("ReceiptAttachmentProposed", "book-e", "PROPOSED", correlation()).with_payload(payload(i))
}

/// A fresh correlation id: the store refuses a second proposal for one.
fn correlation() -> String {
    format!("bench-{}", Uuid::new_v4())
}

fn payload(i: usize) -> serde_json::Value {
    json!({
        "requested_by": "user:bench",
        "receipt": {"sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                    "filename": format!("receipt-{i}.pdf"), "content_type": "application/pdf"},
        "target": {"kind": "folio_event", "event_id": format!("evt-{i}")},
        "amount": {"minor": 49_900, "currency": "NOK"}
    })
}

/// The floors write the same columns the store writes, so the ratio is the cost of
/// the store's own work (validation, idempotency, wake-ups), not of the row.
const RAW_INSERT: &str =
    "INSERT INTO events (event_id, type, actor, status, correlation_id, causation_id, payload, metadata)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// Floor: plain single-row INSERTs (autocommit) into the same table, same pool size.
async fn raw_single_inserts(pool: &PgPool, total: usize, writers: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let pool = pool.clone();
        let n = total / writers;
        tasks.push(tokio::spawn(async move {
            for i in 0..n {
                sqlx::query(RAW_INSERT)
                    .bind(Uuid::new_v4())
                    .bind("ReceiptAttachmentProposed")
                    .bind("book-e")
                    .bind("PROPOSED")
                    .bind(correlation())
                    .bind(None::<Uuid>)
                    .bind(payload(i))
                    .bind(json!({}))
                    .execute(&pool)
                    .await?;
            }
            Ok::<_, sqlx::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok((total / writers * writers) as f64 / started.elapsed().as_secs_f64())
}

async fn store_single_appends(store: &Store, total: usize, writers: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let store = store.clone();
        let n = total / writers;
        tasks.push(tokio::spawn(async move {
            for i in 0..n {
                store.append_events(vec![event(i)]).await?;
            }
            Ok::<_, bookkeeper_core::StoreError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok((total / writers * writers) as f64 / started.elapsed().as_secs_f64())
}

/// Floor: one multi-row INSERT of 100 rows per statement.
async fn raw_batches(pool: &PgPool, batches: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    for _ in 0..batches {
        let ids: Vec<Uuid> = (0..100).map(|_| Uuid::new_v4()).collect();
        let correlations: Vec<String> = (0..100).map(|_| correlation()).collect();
        let payloads: Vec<serde_json::Value> = (0..100).map(payload).collect();
        let metadata: Vec<serde_json::Value> = (0..100).map(|_| json!({})).collect();
        sqlx::query(
            "INSERT INTO events (event_id, type, actor, status, correlation_id, causation_id, payload, metadata)
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::uuid[],
                                  $7::jsonb[], $8::jsonb[])",
        )
        .bind(&ids)
        .bind(vec!["ReceiptAttachmentProposed"; 100])
        .bind(vec!["book-e"; 100])
        .bind(vec!["PROPOSED"; 100])
        .bind(&correlations)
        .bind(vec![None::<Uuid>; 100])
        .bind(&payloads)
        .bind(&metadata)
        .execute(pool)
        .await?;
    }
    Ok((batches * 100) as f64 / started.elapsed().as_secs_f64())
}

async fn store_batches(store: &Store, batches: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    for _ in 0..batches {
        store.append(Append::new((0..100).map(event).collect())).await?;
    }
    Ok((batches * 100) as f64 / started.elapsed().as_secs_f64())
}

/// Floor: NOTIFY on one connection, received by LISTEN on another.
async fn bare_notify_round_trips(pool: &PgPool, samples: usize) -> anyhow::Result<Vec<f64>> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen("bench_floor").await?;
    let mut out = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        sqlx::query("NOTIFY bench_floor").execute(pool).await?;
        listener.recv().await?;
        out.push(started.elapsed().as_secs_f64() * 1e6);
        tokio::time::sleep(SAMPLE_GAP).await;
    }
    Ok(out)
}

struct Stamp(mpsc::UnboundedSender<Instant>);

impl Handler for Stamp {
    async fn handle(&self, _: &RecordedEvent) -> Result<Append, HandlerError> {
        let _ = self.0.send(Instant::now());
        Ok(Append::nothing())
    }
}

/// A real subscription in its own store (own pool, own LISTEN connection, as in
/// another process), woken only by NOTIFY: its poll interval is far longer than
/// any sample.
async fn append_to_subscriber(url: &str, samples: usize) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let reader = Store::connect(url).await?;
    let writer = Store::connect(url).await?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let options = SubscriptionOptions { poll_interval: Duration::from_secs(60), ..Default::default() };
    let sub =
        Subscription::new(reader, "bench.latency", TypeFilter::of(["BenchPing"]), Stamp(tx)).with_options(options);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(sub.run(async move {
        let _ = stop_rx.await;
    }));
    tokio::time::sleep(Duration::from_millis(500)).await; // lease taken, caught up, listening
    let mut commit_to_handler = Vec::with_capacity(samples);
    let mut call_to_handler = Vec::with_capacity(samples);
    for i in 0..samples {
        let called = Instant::now();
        writer.append_events(vec![NewEvent::new("BenchPing", "bench", "PING", format!("ping-{i}"))]).await?;
        let committed = Instant::now();
        let handled = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .context("the subscriber was not woken within 10 s")?
            .context("subscriber stopped")?;
        commit_to_handler.push(handled.saturating_duration_since(committed).as_secs_f64() * 1e6);
        call_to_handler.push(handled.saturating_duration_since(called).as_secs_f64() * 1e6);
        // Let the subscriber commit its checkpoint and go idle: this measures
        // how fast an idle subscriber wakes, not how it queues behind itself.
        tokio::time::sleep(SAMPLE_GAP).await;
    }
    let _ = stop_tx.send(());
    task.await?;
    Ok((commit_to_handler, call_to_handler))
}

/// Appends from a short-lived process (`bookkeeper events append`, which exits
/// right after) to a live subscriber here: from the child printing the position
/// (its commit is done) to the handler, signed: negative when the subscriber was
/// woken before the child's output arrived. The wake-up must not wait for a poll.
async fn short_lived_appends(url: &str, samples: usize) -> anyhow::Result<Vec<f64>> {
    let reader = Store::connect(url).await?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let options = SubscriptionOptions { poll_interval: Duration::from_secs(60), ..Default::default() };
    // A type of its own: the pings of the measurement before are not this one's.
    let sub = Subscription::new(reader, "bench.short-lived", TypeFilter::of(["BenchShortPing"]), Stamp(tx))
        .with_options(options);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(sub.run(async move {
        let _ = stop_rx.await;
    }));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let exe = crate::bookkeeper_binary()?;
    let mut out = Vec::with_capacity(samples);
    for i in 0..samples {
        let (exe, url) = (exe.clone(), url.to_string());
        let child = tokio::task::spawn_blocking(move || -> anyhow::Result<Instant> {
            use std::io::{BufRead, Write};
            let mut child = std::process::Command::new(exe)
                .args(["events", "append"])
                .env("DATABASE_URL", url)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()?;
            let line = format!(
                "{{\"type\": \"BenchShortPing\", \"actor\": \"bench\", \"status\": \"PING\", \"correlation_id\": \"short-{i}\"}}\n"
            );
            child.stdin.take().context("stdin")?.write_all(line.as_bytes())?;
            let mut printed = String::new();
            std::io::BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut printed)?;
            let committed = Instant::now();
            child.wait()?;
            Ok(committed)
        });
        let handled = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .context("the subscriber was not woken within 10 s of a short-lived append")?
            .context("subscriber stopped")?;
        let committed = child.await??;
        // Signed: negative when the subscriber ran before the child printed.
        let after = handled.saturating_duration_since(committed).as_secs_f64();
        let before = committed.saturating_duration_since(handled).as_secs_f64();
        out.push((after - before) * 1e6);
        tokio::time::sleep(SAMPLE_GAP).await;
    }
    let _ = stop_tx.send(());
    task.await?;
    Ok(out)
}

async fn count(pool: &PgPool) -> anyhow::Result<usize> {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(pool).await?;
    Ok(n as usize)
}

/// Adds `n` events quickly (server-side generation, 50k per transaction).
async fn grow(pool: &PgPool, n: usize) -> anyhow::Result<()> {
    let mut left = n;
    while left > 0 {
        let chunk = left.min(50_000);
        sqlx::query(
            "INSERT INTO events (event_id, type, actor, status, correlation_id, payload)
             SELECT gen_random_uuid(), 'ReceiptAttachmentProposed', 'book-e', 'PROPOSED',
                    'grow-' || gen_random_uuid(), jsonb_build_object('amount', jsonb_build_object('minor', g, 'currency', 'NOK'))
             FROM generate_series(1, $1) g",
        )
        .bind(chunk as i64)
        .execute(pool)
        .await?;
        left -= chunk;
    }
    sqlx::query("VACUUM ANALYZE events").execute(pool).await?;
    Ok(())
}

/// Reads the newest `n` events from a checkpoint just before them, in pages of
/// 500, as a subscription catching up after downtime does.
async fn catch_up_rate(store: &Store, n: usize) -> anyhow::Result<f64> {
    let all = TypeFilter::all();
    let max = latest_position(store).await?;
    let from = store.cursor_at((max - n as i64).max(0)).await.unwrap_or_default();
    let started = Instant::now();
    let mut cursor = from;
    let mut read = 0usize;
    loop {
        let batch = store.read(cursor, &all, 500).await?;
        read += batch.events.len();
        if batch.events.is_empty() {
            break;
        }
        cursor = batch.next;
    }
    Ok(read as f64 / started.elapsed().as_secs_f64())
}

/// The position of the newest settled event: a read that matches nothing still
/// moves its cursor to the settled tail.
async fn latest_position(store: &Store) -> anyhow::Result<i64> {
    let batch = store.read(Default::default(), &TypeFilter::of(["NoSuchType"]), 1).await?;
    Ok(batch.next.position)
}
