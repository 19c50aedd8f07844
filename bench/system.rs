//! `bookkeeper bench system`: the whole write path with every service as its own
//! process on PostgreSQL: proposals appended as Book-E's role at a steady rate,
//! judged by a `serve review-e` process (the duplicate-invoice policy), executed by
//! a `serve accounting-api` process against fakes that answer at once. Reports the
//! sustained rate and proposal -> executed latency p50/p99.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use accounting_api::fiken::fake::{FakeFiken, SANDBOX_COMPANY};
use accounting_api::folio::fake::FakeFolio;
use anyhow::bail;
use bookkeeper_core::{Append, NewEvent, Store};
use clap::Args;
use serde_json::json;
use sqlx::ConnectOptions;

use crate::store::{percentile, with_scratch_database};

/// Arguments of `bench system`.
#[derive(Debug, Args)]
pub struct SystemBenchArgs {
    /// How long to keep proposing, in seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Proposals per second offered.
    #[arg(long, default_value_t = 50)]
    rate: u64,
}

struct Process(Child);

/// A background task stopped when this is dropped.
struct Aborted(tokio::task::JoinHandle<()>);

impl Drop for Aborted {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let _ = self.0.wait();
    }
}

fn role_url(scratch: &sqlx::postgres::PgConnectOptions, role: &str) -> String {
    scratch.clone().username(role).to_url_lossy().to_string()
}

pub async fn system(args: SystemBenchArgs) -> anyhow::Result<()> {
    with_scratch_database("the system benchmark", false, |scratch| async move {
        let owner = Store::connect(scratch.to_url_lossy().as_str()).await?;
        owner.migrate().await?;
        let fiken = FakeFiken::start("127.0.0.1:0".parse()?).await?;
        let folio = FakeFolio::sandbox("127.0.0.1:0".parse()?).await?;
        let work = std::env::temp_dir().join(format!("bench-system-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(work.join("policies"))?;
        let component = crate::example("duplicate-invoice")?;
        std::fs::write(work.join("policies/duplicate-invoice.wasm"), component)?;
        let exe = crate::bookkeeper_binary()?;
        let spawn = |service: &str, role: &str, env: Vec<(&str, String)>| -> anyhow::Result<Process> {
            let mut cmd = Command::new(&exe);
            cmd.args(["serve", service])
                .env("DATABASE_URL", role_url(&scratch, role))
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            for (k, v) in env {
                cmd.env(k, v);
            }
            Ok(Process(cmd.spawn()?))
        };
        let _review = spawn(
            "review-e",
            "review_e",
            vec![
                ("REVIEW_E_ADDR", "127.0.0.1:0".into()),
                ("REVIEW_E_POLICY_DIR", work.join("policies").display().to_string()),
            ],
        )?;
        let _accounting = spawn(
            "accounting-api",
            "accounting_api",
            vec![
                ("ACCOUNTING_API_ADDR", "127.0.0.1:0".into()),
                ("ACCOUNTING_API_TOKEN", format!("bench-{}", uuid::Uuid::new_v4())),
                ("FIKEN_BASE_URL", fiken.base_url()),
                ("FIKEN_COMPANY", SANDBOX_COMPANY.into()),
                ("FIKEN_TOKEN", format!("bench-{}", uuid::Uuid::new_v4())),
                ("FIKEN_SPACING_MS", "0".into()),
                ("FOLIO_BASE_URL", folio.base_url()),
                ("FOLIO_API_KEY", "bench".into()),
            ],
        )?;
        let book_e = Store::connect(&role_url(&scratch, "book_e")).await?;
        let sha = owner.put_blob(b"%PDF-1.7 bench invoice", "application/pdf").await?;
        let propose = |id: String| {
            NewEvent::new("InvoiceRegistrationProposed", "book-e", "PROPOSED", &id).with_payload(json!({
                "requested_by": "user:bench",
                "document": {"sha256": sha, "filename": "f.pdf", "content_type": "application/pdf"},
                "vendor": {"name": "Bench AS", "organization_number": "911111111"},
                "invoice_number": id, "amount": {"minor": 100_000, "currency": "NOK"},
                "invoice_date": "2026-11-01", "due_date": "2026-11-30", "account": "6340",
            }))
        };
        // Warm up until the policy is in force and a first invoice went through.
        let started = Instant::now();
        let mut warm = 0;
        loop {
            warm += 1;
            let id = format!("warm-{warm}");
            book_e.append(Append::one(propose(id.clone()))).await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            if owner.read_correlation(&id).await?.iter().any(|e| {
                bookkeeper_core::lifecycle::stage(&e.event_type) == Some(bookkeeper_core::domain::Stage::Executed)
            }) {
                break;
            }
            if started.elapsed() > Duration::from_secs(120) {
                bail!("the services did not come up within 2 minutes");
            }
        }

        println!(
            "bookkeeper bench system: {} proposals/s offered for {} s; Review-E and the Accounting API as processes",
            args.rate, args.seconds
        );
        // A server without autovacuum never analyzes the scratch tables, and the
        // services' plans from when they were empty (sequential scans) would make
        // this a benchmark of that: analyze in its place, by its default rule (a
        // table changed by 50 rows plus a tenth of its size), and say so.
        let _analyzer = if owner.server_warnings().await?.is_empty() {
            None
        } else {
            println!(
                "autovacuum is off on this server: the bench analyzes the tables by autovacuum's rule in its place"
            );
            let analyzer = sqlx::PgPool::connect(scratch.to_url_lossy().as_str()).await?;
            Some(Aborted(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    let due: Vec<String> = sqlx::query_scalar(
                        "SELECT quote_ident(relname) FROM pg_stat_user_tables
                         WHERE n_mod_since_analyze > 50 + 0.1 * greatest(n_live_tup, 0)",
                    )
                    .fetch_all(&analyzer)
                    .await
                    .unwrap_or_default();
                    for table in due {
                        if let Err(e) = sqlx::raw_sql(&format!("ANALYZE {table}")).execute(&analyzer).await {
                            tracing::warn!(error = %e, "ANALYZE failed");
                        }
                    }
                }
            })))
        };
        let total = (args.rate * args.seconds) as usize;
        let gap = Duration::from_secs_f64(1.0 / args.rate.max(1) as f64);
        let began = Instant::now();
        for i in 0..total {
            let due = began + gap * i as u32;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                tokio::time::sleep(wait).await;
            }
            book_e.append(Append::one(propose(format!("sys-{i}")))).await?;
        }
        let offered_for = began.elapsed();
        let pool = sqlx::PgPool::connect(scratch.to_url_lossy().as_str()).await?;
        let deadline = Instant::now() + Duration::from_secs(600);
        let latencies: Vec<f64> = loop {
            let rows: Vec<(f64,)> = sqlx::query_as(
                "SELECT EXTRACT(EPOCH FROM (x.created_at - p.created_at))::float8
                 FROM events p JOIN events x ON x.correlation_id = p.correlation_id
                 WHERE p.type = 'InvoiceRegistrationProposed' AND x.type = 'InvoiceRegistrationExecuted'
                   AND p.correlation_id LIKE 'sys-%'",
            )
            .fetch_all(&pool)
            .await?;
            if rows.len() >= total || Instant::now() > deadline {
                break rows.into_iter().map(|(s,)| s * 1000.0).collect();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let drained = began.elapsed();
        // Where the time goes: proposal -> decision (Review-E), decision -> executed (Accounting API).
        let stages: Vec<(f64, f64)> = sqlx::query_as(
            "SELECT EXTRACT(EPOCH FROM (a.created_at - p.created_at))::float8 * 1000,
                    EXTRACT(EPOCH FROM (x.created_at - a.created_at))::float8 * 1000
             FROM events p
             JOIN events a ON a.correlation_id = p.correlation_id AND a.type = 'InvoiceRegistrationApproved'
             JOIN events x ON x.correlation_id = p.correlation_id AND x.type = 'InvoiceRegistrationExecuted'
             WHERE p.type = 'InvoiceRegistrationProposed' AND p.correlation_id LIKE 'sys-%'",
        )
        .fetch_all(&pool)
        .await?;
        let decided: Vec<f64> = stages.iter().map(|(d, _)| *d).collect();
        let executed: Vec<f64> = stages.iter().map(|(_, x)| *x).collect();
        println!();
        println!("{:<44} {:>12}", "proposals offered", total);
        println!("{:<44} {:>12}", "executed", latencies.len());
        println!("{:<44} {:>12.1}", "offered rate (proposals/s)", total as f64 / offered_for.as_secs_f64());
        println!(
            "{:<44} {:>12.1}",
            "executed rate, until the last (per s)",
            latencies.len() as f64 / drained.as_secs_f64()
        );
        println!("{:<44} {:>12.1}", "proposal -> executed p50 (ms)", percentile(&latencies, 0.5));
        println!("{:<44} {:>12.1}", "proposal -> executed p99 (ms)", percentile(&latencies, 0.99));
        println!("{:<44} {:>12.1}", "  proposal -> decision p50 (ms)", percentile(&decided, 0.5));
        println!("{:<44} {:>12.1}", "  proposal -> decision p99 (ms)", percentile(&decided, 0.99));
        println!("{:<44} {:>12.1}", "  decision -> executed p50 (ms)", percentile(&executed, 0.5));
        println!("{:<44} {:>12.1}", "  decision -> executed p99 (ms)", percentile(&executed, 0.99));
        // Whether latency grows over the run: each minute's proposals on their own.
        let timed: Vec<(f64, f64)> = sqlx::query_as(
            "SELECT EXTRACT(EPOCH FROM (p.created_at - min(p.created_at) OVER ()))::float8,
                    EXTRACT(EPOCH FROM (x.created_at - p.created_at))::float8 * 1000
             FROM events p JOIN events x ON x.correlation_id = p.correlation_id
             WHERE p.type = 'InvoiceRegistrationProposed' AND x.type = 'InvoiceRegistrationExecuted'
               AND p.correlation_id LIKE 'sys-%'",
        )
        .fetch_all(&pool)
        .await?;
        let mut minutes: std::collections::BTreeMap<u64, Vec<f64>> = Default::default();
        for (offset, latency) in timed {
            minutes.entry((offset / 60.0).max(0.0) as u64).or_default().push(latency);
        }
        if minutes.len() > 1 {
            println!();
            println!("{:<12} {:>10} {:>12} {:>12}", "minute", "executed", "p50 (ms)", "p99 (ms)");
            for (minute, samples) in &minutes {
                println!(
                    "{:<12} {:>10} {:>12.1} {:>12.1}",
                    minute + 1,
                    samples.len(),
                    percentile(samples, 0.5),
                    percentile(samples, 0.99)
                );
            }
        }
        pool.close().await;
        book_e.close().await;
        owner.close().await;
        let _ = std::fs::remove_dir_all(&work);
        Ok(())
    })
    .await
}
