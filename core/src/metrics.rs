//! Prometheus metrics, with the `prometheus-client` crate: a few counters and
//! latency histograms kept in this process, plus what the log itself knows (events
//! per type and status, subscription lag, parked events), read at scrape time.
//!
//! Every service serves [`render`] at `GET /metrics` (through
//! `bookkeeper_http::Ops`), in the OpenMetrics text format ([`CONTENT_TYPE`]).
//! Metric names are a contract: a counter is named with its `_total`, as its
//! samples are.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::store::Store;

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Latency buckets, in seconds.
const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

type Labels = Vec<(String, String)>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

#[derive(Default)]
struct Metrics {
    /// Name (with `_total`) -> help and the family.
    counters: BTreeMap<String, (&'static str, Family<Labels, Counter>)>,
    histograms: BTreeMap<String, (&'static str, Histograms)>,
}

fn metrics() -> std::sync::MutexGuard<'static, Metrics> {
    static METRICS: OnceLock<Mutex<Metrics>> = OnceLock::new();
    METRICS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner())
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Adds one to a counter; `name` ends in `_total`.
pub fn count(name: &str, help: &'static str, pairs: &[(&str, &str)]) {
    debug_assert!(name.ends_with("_total"), "a counter's name ends in _total: {name}");
    let family = metrics().counters.entry(name.to_string()).or_insert_with(|| (help, Family::default())).1.clone();
    family.get_or_create(&labels(pairs)).inc();
}

/// Records a duration in a histogram.
pub fn observe(name: &str, help: &'static str, pairs: &[(&str, &str)], took: Duration) {
    let family = metrics()
        .histograms
        .entry(name.to_string())
        .or_insert_with(|| (help, Family::new_with_constructor(histogram as fn() -> Histogram)))
        .1
        .clone();
    family.get_or_create(&labels(pairs)).observe(took.as_secs_f64());
}

/// A gauge a service adds at scrape time (Review-E's unloaded policies).
#[derive(Debug, Clone, Copy)]
pub struct GaugeValue {
    /// Its name.
    pub name: &'static str,
    /// What it measures.
    pub help: &'static str,
    /// Its value now.
    pub value: i64,
}

fn gauges(registry: &mut Registry, name: &str, help: &str, rows: impl IntoIterator<Item = (Labels, i64)>) {
    let family = Family::<Labels, Gauge>::default();
    for (labels, value) in rows {
        family.get_or_create(&labels).set(value);
    }
    registry.register(name, help, family);
}

/// This process's counters and histograms, `extra`, then the log's figures
/// (events by type and status; each subscription's lag) when `store` is given.
pub async fn render(store: Option<&Store>, extra: &[GaugeValue]) -> String {
    let mut registry = Registry::default();
    {
        let m = metrics();
        for (name, (help, family)) in &m.counters {
            // The crate writes the `_total` of a counter's samples itself.
            registry.register(name.trim_end_matches("_total"), *help, family.clone());
        }
        for (name, (help, family)) in &m.histograms {
            registry.register(name.as_str(), *help, family.clone());
        }
    }
    for g in extra {
        gauges(&mut registry, g.name, g.help, [(Labels::new(), g.value)]);
    }
    if let Some(store) = store {
        let stats = store.stats().await;
        let up = i64::from(stats.is_ok());
        if let Ok(stats) = stats {
            let by = |pairs: &[(&str, &str)]| labels(pairs);
            gauges(
                &mut registry,
                "bookkeeper_log_events",
                "Events in the log, by type and status.",
                stats.by_type_and_status.iter().map(|(t, s, n)| (by(&[("type", t), ("status", s)]), *n)),
            );
            gauges(
                &mut registry,
                "bookkeeper_subscription_lag",
                "Events in the log after the subscription's checkpoint.",
                stats.subscriptions.iter().map(|sub| (by(&[("subscription", &sub.name)]), sub.lag)),
            );
            gauges(
                &mut registry,
                "bookkeeper_subscription_failing",
                "1 while the subscription's handler keeps failing.",
                stats
                    .subscriptions
                    .iter()
                    .map(|sub| (by(&[("subscription", &sub.name)]), i64::from(sub.last_error.is_some()))),
            );
            gauges(
                &mut registry,
                "bookkeeper_events_parked",
                "Events a subscription gave up on (parked, with a reason in the log).",
                stats.parked.iter().map(|p| (by(&[("subscription", &p.subscription)]), p.count)),
            );
        }
        gauges(&mut registry, "bookkeeper_log_up", "1 while the log answers.", [(Labels::new(), up)]);
    }
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &registry);
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
        let text = render(None, &[GaugeValue { name: "test_gauge", help: "A gauge.", value: 7 }]).await;
        assert!(text.contains("# TYPE test_things counter\n"), "{text}");
        assert!(text.contains("test_things_total{kind=\"a\\\"b\"} 2\n"), "{text}");
        assert!(text.contains("test_latency_seconds_bucket{le=\"0.0025\"} 0\n"), "{text}");
        assert!(text.contains("test_latency_seconds_bucket{le=\"0.005\"} 1\n"), "{text}");
        assert!(text.contains("test_latency_seconds_count 1\n"), "{text}");
        assert!(text.contains("test_gauge 7\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
