//! `bookkeeper audit` and `bookkeeper stats`.

use std::process::ExitCode;

use bookkeeper_core::{ActionState, Store};
use clap::Args;

/// Arguments of `audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The action's correlation id.
    correlation_id: String,
    #[command(flatten)]
    output: super::OutputArgs,
}

/// Arguments of `stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    output: super::OutputArgs,
}

pub async fn audit(store: &Store, args: AuditArgs) -> anyhow::Result<ExitCode> {
    let story = store.read_correlation(&args.correlation_id).await?;
    if story.is_empty() {
        eprintln!("no events with correlation id `{}`", args.correlation_id);
        return Ok(ExitCode::FAILURE);
    }
    if args.output.json {
        for e in &story {
            println!("{}", serde_json::to_string(e)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:>8}  {:<23}  {:<34} {:<14} {:<14} REASON", "POSITION", "TIME (UTC)", "TYPE", "ACTOR", "STATUS");
    for e in &story {
        println!(
            "{:>8}  {:<23}  {:<34} {:<14} {:<14} {}",
            e.position,
            e.created_at.format("%Y-%m-%d %H:%M:%S%.3f"),
            e.event_type,
            e.actor,
            e.status,
            e.reason().unwrap_or("")
        );
    }
    // Where the lifecycle stands, and what it does not count (shown, never acted
    // on). On stderr: the table on stdout keeps its shape for scripts.
    let state = ActionState::fold(&story);
    eprintln!("phase: {}", state.phase());
    for ignored in &state.ignored {
        eprintln!(
            "  position {} ({}) does not count: {}",
            ignored.event.position, ignored.event.event_type, ignored.why
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn stats(store: &Store, args: StatsArgs) -> anyhow::Result<ExitCode> {
    let stats = store.stats().await?;
    if args.output.json {
        println!("{}", serde_json::to_string(&stats)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{} event(s) in the log ({})", stats.events, store.backend_name());
    if !stats.by_type_and_status.is_empty() {
        println!();
        println!("{:<40} {:<16} {:>8}", "TYPE", "STATUS", "COUNT");
        for (t, s, n) in &stats.by_type_and_status {
            println!("{t:<40} {s:<16} {n:>8}");
        }
    }
    println!();
    println!("pending reviews: {} ({} escalated to a person)", stats.pending_reviews, stats.escalated_pending);
    let rate =
        stats.approval_rate.map(|r| format!("{:.1}%", r * 100.0)).unwrap_or_else(|| "n/a (nothing decided yet)".into());
    println!(
        "approval rate:   {rate}  ({} approved, {} of them automatically; {} rejected)",
        stats.approved, stats.auto_approved, stats.rejected
    );
    if !stats.subscriptions.is_empty() {
        println!();
        println!("{:<32} {:>10} {:>10}  {:<10} LAST ERROR", "SUBSCRIPTION", "POSITION", "HANDLED", "ACTIVE");
        for s in &stats.subscriptions {
            println!(
                "{:<32} {:>10} {:>10}  {:<10} {}",
                s.name,
                s.position,
                s.handled,
                if s.lease_holder.is_some() { "yes" } else { "no" },
                s.last_error.as_deref().unwrap_or("")
            );
        }
    }
    if !stats.parked.is_empty() {
        println!();
        println!("PARKED: events a subscription could never handle and moved past (a person follows up)");
        println!("{:<32} {:>6}  {:<10} {:<38} LAST REASON", "SUBSCRIPTION", "COUNT", "POSITION", "ACTION");
        for p in &stats.parked {
            println!(
                "{:<32} {:>6}  {:<10} {:<38} {}",
                p.subscription, p.count, p.last_position, p.last_correlation_id, p.last_reason
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
