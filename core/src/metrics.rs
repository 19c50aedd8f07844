//! Prometheus metrics, in the text exposition format, without a metrics crate:
//! a few counters and latency histograms kept in this process, plus what the log
//! itself knows (events per type, subscription lag), read at scrape time.
//!
//! Every service serves [`render`] at `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::store::Store;

/// Latency buckets, in seconds.
const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct Registry {
    /// (name, labels) -> value.
    counters: BTreeMap<(String, String), u64>,
    histograms: BTreeMap<(String, String), Histogram>,
    help: BTreeMap<String, &'static str>,
}

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner())
}

fn labels(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', " ")))
        .collect::<Vec<_>>()
        .join(",")
}

/// Adds one to a counter.
pub fn count(name: &str, help: &'static str, pairs: &[(&str, &str)]) {
    let mut r = registry();
    r.help.entry(name.to_string()).or_insert(help);
    *r.counters.entry((name.to_string(), labels(pairs))).or_default() += 1;
}

/// Records a duration in a histogram.
pub fn observe(name: &str, help: &'static str, pairs: &[(&str, &str)], took: Duration) {
    let seconds = took.as_secs_f64();
    let mut r = registry();
    r.help.entry(name.to_string()).or_insert(help);
    let h = r.histograms.entry((name.to_string(), labels(pairs))).or_default();
    for (i, bound) in BUCKETS.iter().enumerate() {
        if seconds <= *bound {
            h.counts[i] += 1;
        }
    }
    h.count += 1;
    h.sum += seconds;
}

fn with_le(labels: &str, le: &str) -> String {
    if labels.is_empty() {
        format!("le=\"{le}\"")
    } else {
        format!("{labels},le=\"{le}\"")
    }
}

fn braces(labels: &str) -> String {
    if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    }
}

/// This process's counters and histograms, then the log's figures (events by
/// type and status; each subscription's lag) when `store` is given and answers.
pub async fn render(store: Option<&Store>) -> String {
    let mut out = String::new();
    {
        let r = registry();
        let mut last = String::new();
        for ((name, labels), value) in &r.counters {
            if *name != last {
                let _ = writeln!(out, "# HELP {name} {}", r.help.get(name).copied().unwrap_or(""));
                let _ = writeln!(out, "# TYPE {name} counter");
                last = name.clone();
            }
            let _ = writeln!(out, "{name}{} {value}", braces(labels));
        }
        for ((name, labels), h) in &r.histograms {
            if *name != last {
                let _ = writeln!(out, "# HELP {name} {}", r.help.get(name).copied().unwrap_or(""));
                let _ = writeln!(out, "# TYPE {name} histogram");
                last = name.clone();
            }
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(out, "{name}_bucket{{{}}} {}", with_le(labels, &bound.to_string()), h.counts[i]);
            }
            let _ = writeln!(out, "{name}_bucket{{{}}} {}", with_le(labels, "+Inf"), h.count);
            let _ = writeln!(out, "{name}_sum{} {}", braces(labels), h.sum);
            let _ = writeln!(out, "{name}_count{} {}", braces(labels), h.count);
        }
    }
    let Some(store) = store else { return out };
    match store.stats().await {
        Ok(stats) => {
            out.push_str("# HELP bookkeeper_log_events Events in the log, by type and status.\n");
            out.push_str("# TYPE bookkeeper_log_events gauge\n");
            for (t, s, n) in &stats.by_type_and_status {
                let _ = writeln!(out, "bookkeeper_log_events{{{}}} {n}", labels(&[("type", t), ("status", s)]));
            }
            out.push_str("# HELP bookkeeper_subscription_lag Events in the log after the subscription's checkpoint.\n");
            out.push_str("# TYPE bookkeeper_subscription_lag gauge\n");
            for sub in &stats.subscriptions {
                let _ = writeln!(
                    out,
                    "bookkeeper_subscription_lag{{{}}} {}",
                    labels(&[("subscription", &sub.name)]),
                    sub.lag
                );
            }
            out.push_str("# HELP bookkeeper_subscription_failing 1 while the subscription's handler keeps failing.\n");
            out.push_str("# TYPE bookkeeper_subscription_failing gauge\n");
            for sub in &stats.subscriptions {
                let failing = u8::from(sub.last_error.is_some());
                let _ = writeln!(
                    out,
                    "bookkeeper_subscription_failing{{{}}} {failing}",
                    labels(&[("subscription", &sub.name)])
                );
            }
            out.push_str("# HELP bookkeeper_events_parked Events a subscription gave up on (parked, with a reason in the log).\n");
            out.push_str("# TYPE bookkeeper_events_parked gauge\n");
            for p in &stats.parked {
                let _ = writeln!(
                    out,
                    "bookkeeper_events_parked{{{}}} {}",
                    labels(&[("subscription", &p.subscription)]),
                    p.count
                );
            }
            out.push_str("# TYPE bookkeeper_log_up gauge\nbookkeeper_log_up 1\n");
        }
        Err(_) => out.push_str("# TYPE bookkeeper_log_up gauge\nbookkeeper_log_up 0\n"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counters_and_histograms_in_the_text_format() {
        count("test_things_total", "Things.", &[("kind", "a\"b")]);
        count("test_things_total", "Things.", &[("kind", "a\"b")]);
        observe("test_latency_seconds", "Latency.", &[], Duration::from_millis(3));
        let text = render(None).await;
        assert!(text.contains("# TYPE test_things_total counter\n"), "{text}");
        assert!(text.contains("test_things_total{kind=\"a\\\"b\"} 2\n"), "{text}");
        assert!(text.contains("test_latency_seconds_bucket{le=\"0.0025\"} 0\n"), "{text}");
        assert!(text.contains("test_latency_seconds_bucket{le=\"0.005\"} 1\n"), "{text}");
        assert!(text.contains("test_latency_seconds_count 1\n"), "{text}");
    }
}
