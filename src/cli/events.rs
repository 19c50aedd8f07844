//! `bookkeeper events append` and `bookkeeper events tail`.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use bookkeeper_core::{Append, NewEvent, RecordedEvent, Store, TypeFilter};
use clap::Args;
use serde::Deserialize;
use serde_json::Value;
use tokio::io::AsyncBufReadExt;
use uuid::Uuid;

/// Arguments of `events append`.
#[derive(Debug, Args)]
pub struct AppendArgs {
    /// Events per atomic batch. A bad line stops the run; nothing from its batch is written.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch_size: u32,
}

/// Arguments of `events tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// Resume after this position (the last one you saw); 0 starts at the beginning.
    #[arg(long, default_value_t = 0)]
    from: i64,
    /// Only events of this type; repeat for several. `*Proposed` matches by suffix.
    #[arg(long = "type", value_name = "TYPE")]
    types: Vec<String>,
    /// Keep printing new events as they are appended, until interrupted.
    #[arg(long)]
    follow: bool,
    /// One JSON object per line (with `position`), flushed line by line.
    #[arg(long)]
    json: bool,
    /// With `--follow`: how often to look for new events when no wake-up came
    /// (appends anywhere wake followers at once; this is the fallback).
    #[arg(long, default_value = "1s", value_parser = super::parse_duration)]
    poll_interval: Duration,
}

/// One line of `events append` input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventLine {
    #[serde(rename = "type")]
    event_type: String,
    actor: String,
    status: String,
    correlation_id: String,
    #[serde(default)]
    event_id: Option<Uuid>,
    #[serde(default)]
    causation_id: Option<Uuid>,
    #[serde(default)]
    payload: Option<Value>,
    #[serde(default)]
    metadata: Option<Value>,
}

impl EventLine {
    fn into_event(self) -> NewEvent {
        let mut event = NewEvent::new(self.event_type, self.actor, self.status, self.correlation_id);
        if let Some(id) = self.event_id {
            event.event_id = id;
        }
        event.causation_id = self.causation_id;
        if let Some(p) = self.payload {
            event.payload = p;
        }
        if let Some(m) = self.metadata {
            event.metadata = m;
        }
        event
    }
}

/// Parses and checks one input line; the error names what is wrong with it.
fn parse_line(text: &str) -> Result<NewEvent, String> {
    let line: EventLine = serde_json::from_str(text).map_err(|e| format!("not a valid event: {e}"))?;
    let event = line.into_event();
    event.validate().map_err(|e| e.to_string())?;
    Ok(event)
}

/// If a batch is part-filled and the input goes quiet this long, append it anyway,
/// so a slow live pipe is not held back waiting for a full batch.
const QUIET_FLUSH: Duration = Duration::from_millis(200);

pub async fn append(store: &Store, args: AppendArgs) -> anyhow::Result<ExitCode> {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut batch: Vec<NewEvent> = Vec::new();
    let mut batch_first_line = 0usize;
    let mut line_no = 0usize;
    let mut written = 0usize;
    let mut out = std::io::stdout();
    loop {
        let next = if batch.is_empty() {
            lines.next_line().await.map(Some)
        } else {
            match tokio::time::timeout(QUIET_FLUSH, lines.next_line()).await {
                Ok(r) => r.map(Some),
                Err(_) => Ok(None), // quiet: flush what we have, then keep reading
            }
        };
        let next = next.context("reading stdin")?;
        let end_of_input = matches!(next, Some(None));
        if let Some(Some(text)) = next {
            line_no += 1;
            if text.trim().is_empty() {
                continue;
            }
            match parse_line(&text) {
                Ok(event) => {
                    if batch.is_empty() {
                        batch_first_line = line_no;
                    }
                    batch.push(event);
                }
                Err(reason) => {
                    eprintln!("error: line {line_no}: {reason}");
                    eprintln!(
                        "nothing from lines {}-{line_no} was written; {written} event(s) before line {} were appended",
                        if batch.is_empty() { line_no } else { batch_first_line },
                        if batch.is_empty() { line_no } else { batch_first_line },
                    );
                    return Ok(ExitCode::FAILURE);
                }
            }
            if batch.len() < args.batch_size as usize {
                continue;
            }
        }
        if !batch.is_empty() {
            let events = std::mem::take(&mut batch);
            let count = events.len();
            match store.append(Append::new(events)).await {
                Ok(appended) => {
                    for a in &appended {
                        if writeln!(out, "{}", a.position).and_then(|()| out.flush()).is_err() {
                            return Ok(ExitCode::SUCCESS); // reader went away
                        }
                        if a.duplicate {
                            tracing::info!(event_id = %a.event_id, position = a.position, "already stored; not written again");
                        }
                    }
                    written += count;
                }
                Err(e) => {
                    let last = batch_first_line + count - 1;
                    eprintln!("error: lines {batch_first_line}-{last}: {e}");
                    eprintln!("nothing from that batch was written; {written} event(s) before it were appended");
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        if end_of_input {
            return Ok(ExitCode::SUCCESS);
        }
    }
}

const PAGE: usize = 500;

pub async fn tail(store: &Store, args: TailArgs) -> anyhow::Result<ExitCode> {
    let filter = TypeFilter::of(args.types.iter().cloned());
    let mut cursor = store.cursor_at(args.from).await?;
    let mut wakeups = store.wakeups();
    let shutdown = super::shutdown_signal();
    tokio::pin!(shutdown);
    let mut out = std::io::stdout();
    loop {
        let batch = if args.follow {
            store.read(cursor, &filter, PAGE).await
        } else {
            // A one-shot tail shows everything committed, waiting briefly for
            // events behind a transaction that is still open.
            store.read_waiting(cursor, &filter, PAGE, Duration::from_secs(5)).await
        };
        let batch = match batch {
            Ok(b) => b,
            Err(e) if args.follow && e.is_retryable() => {
                tracing::warn!(error = %e, "reading the log failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        for event in &batch.events {
            let line = if args.json { serde_json::to_string(event)? } else { human_line(event) };
            if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                return Ok(ExitCode::SUCCESS); // e.g. `| head`: the reader is done
            }
        }
        cursor = batch.next;
        if batch.events.len() == PAGE {
            continue;
        }
        if !args.follow {
            return Ok(ExitCode::SUCCESS);
        }
        let wait = if batch.held_back { Duration::from_millis(10) } else { args.poll_interval };
        tokio::select! {
            _ = &mut shutdown => return Ok(ExitCode::SUCCESS),
            _ = wakeups.changed() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

fn human_line(e: &RecordedEvent) -> String {
    format!(
        "{:>8}  {}  {:<34} {:<14} {:<14} {}",
        e.position,
        e.created_at.format("%Y-%m-%d %H:%M:%S%.3f"),
        e.event_type,
        e.actor,
        e.status,
        e.correlation_id
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_complete_line_parses_with_its_optional_fields() {
        let id = Uuid::new_v4();
        let e = parse_line(&format!(
            r#"{{"type":"X","actor":"a","status":"S","correlation_id":"c","event_id":"{id}","payload":{{"k":1}}}}"#
        ))
        .unwrap();
        assert_eq!(e.event_id, id);
        assert_eq!(e.payload["k"], 1);
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        let err = parse_line(r#"{"type":"X","actor":"a","status":"S"}"#).unwrap_err();
        assert!(err.contains("missing field `correlation_id`"), "{err}");
        let err = parse_line(r#"{"type":"X","actor":"a","status":"S","correlation_id":"c","colour":1}"#).unwrap_err();
        assert!(err.contains("unknown field `colour`"), "{err}");
        let err = parse_line("{not json").unwrap_err();
        assert!(err.starts_with("not a valid event"), "{err}");
        let err = parse_line(r#"{"type":"","actor":"a","status":"S","correlation_id":"c"}"#).unwrap_err();
        assert_eq!(err, "`type` must not be empty");
    }
}
