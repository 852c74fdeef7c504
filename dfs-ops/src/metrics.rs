//! Counters, gauges and histograms kept in atomics, rendered in the Prometheus text format.
//!
//! A [`Registry`] owns every metric of a process, in the order they were created, and
//! renders them for `GET /metrics` (served by [`http`]). Each metric may have labels (the
//! request type, an error code); one *series* per combination of label values is created
//! the first time it is used. Updating a series is one atomic add, after a short lock to
//! find it, so recording costs little next to a network request.
//!
//! The text format (<https://prometheus.io/docs/instrumenting/exposition_formats/>): for
//! each metric a `# HELP` and a `# TYPE` line, then one `name{label="value"} number` line
//! per series. A histogram is cumulative buckets `name_bucket{le="0.01"}` (observations
//! ≤ 0.01, ending with `le="+Inf"`), then `name_sum` and `name_count`. Names follow the
//! conventions: a `dfs_` prefix, base units (seconds, bytes), `_total` on counters.

pub mod http;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Bucket bounds, in seconds, for request latencies: from a cached metadata lookup (well
/// under a millisecond) to a shard transfer stalled by a dead node (seconds).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Every metric of one process.
#[derive(Default)]
pub struct Registry {
    metrics: Mutex<Vec<Arc<dyn Render>>>,
}

impl Registry {
    pub fn new() -> Arc<Registry> {
        Arc::new(Registry::default())
    }

    /// A counter: a number that only goes up (requests served, bytes received).
    pub fn counter(&self, name: &str, help: &str, labels: &[&str]) -> Arc<Counter> {
        self.add(Arc::new(Counter {
            meta: Meta::new(name, help, labels),
            series: Series::default(),
        }))
    }

    /// A gauge: a number that goes up and down (shards stored, bytes used).
    pub fn gauge(&self, name: &str, help: &str, labels: &[&str]) -> Arc<Gauge> {
        self.add(Arc::new(Gauge {
            meta: Meta::new(name, help, labels),
            series: Series::default(),
        }))
    }

    /// A histogram of durations, with [`LATENCY_BUCKETS`].
    pub fn histogram(&self, name: &str, help: &str, labels: &[&str]) -> Arc<Histogram> {
        self.add(Arc::new(Histogram {
            meta: Meta::new(name, help, labels),
            bounds: LATENCY_BUCKETS.to_vec(),
            series: Series::default(),
        }))
    }

    fn add<M: Render + 'static>(&self, m: Arc<M>) -> Arc<M> {
        // A metric without labels has exactly one series: show it (as 0) from the
        // start, so a dashboard sees "none yet" rather than "no such metric".
        m.touch_unlabelled();
        lock(&self.metrics).push(m.clone());
        m
    }

    /// All metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for m in lock(&self.metrics).iter() {
            m.render(&mut out);
        }
        out
    }
}

trait Render: Send + Sync {
    fn render(&self, out: &mut String);
    /// Creates the one series of a metric that has no labels.
    fn touch_unlabelled(&self);
}

/// A poisoned lock only means a thread panicked while holding it; the numbers inside are
/// still the best we have, so carry on with them.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Meta {
    name: String,
    help: String,
    labels: Vec<String>,
}

impl Meta {
    fn new(name: &str, help: &str, labels: &[&str]) -> Meta {
        Meta {
            name: name.to_string(),
            help: help.to_string(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
        }
    }

    fn header(&self, out: &mut String, kind: &str) {
        let help = self.help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(out, "# HELP {} {help}", self.name);
        let _ = writeln!(out, "# TYPE {} {kind}", self.name);
    }

    /// `{a="x",b="y"}` for these label values, with `extra` (a histogram's `le`) last.
    fn labels(&self, values: &[String], extra: Option<(&str, &str)>) -> String {
        let pairs: Vec<(&str, &str)> = self
            .labels
            .iter()
            .map(String::as_str)
            .zip(values.iter().map(String::as_str))
            .chain(extra)
            .collect();
        if pairs.is_empty() {
            return String::new();
        }
        let inner: Vec<String> = pairs
            .iter()
            .map(|(k, v)| {
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                format!("{k}=\"{v}\"")
            })
            .collect();
        format!("{{{}}}", inner.join(","))
    }
}

/// The series of one metric, by label values.
struct Series<T>(Mutex<BTreeMap<Vec<String>, Arc<T>>>);

impl<T> Default for Series<T> {
    fn default() -> Self {
        Series(Mutex::new(BTreeMap::new()))
    }
}

impl<T: Default> Series<T> {
    fn get(&self, values: &[&str]) -> Arc<T> {
        let key: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        lock(&self.0).entry(key).or_default().clone()
    }

    fn snapshot(&self) -> Vec<(Vec<String>, Arc<T>)> {
        lock(&self.0)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// A metric without labels has exactly one series: shown (as 0) before its first
    /// update, so a scraper sees it exists.
    fn touch_unlabelled(&self, meta: &Meta) {
        if meta.labels.is_empty() {
            self.get(&[]);
        }
    }
}

/// An atomic number, the value of one counter or gauge series.
trait Scalar: Default {
    fn value(&self) -> String;
}

impl Scalar for AtomicU64 {
    fn value(&self) -> String {
        self.load(Ordering::Relaxed).to_string()
    }
}

impl Scalar for AtomicI64 {
    fn value(&self) -> String {
        self.load(Ordering::Relaxed).to_string()
    }
}

impl<T: Scalar> Series<T> {
    /// The exposition of a counter or gauge: the header, then one line per series.
    fn render_scalars(&self, meta: &Meta, kind: &str, out: &mut String) {
        meta.header(out, kind);
        for (values, v) in self.snapshot() {
            let labels = meta.labels(&values, None);
            let _ = writeln!(out, "{}{labels} {}", meta.name, v.value());
        }
    }
}

pub struct Counter {
    meta: Meta,
    series: Series<AtomicU64>,
}

impl Counter {
    pub fn inc(&self, labels: &[&str]) {
        self.add(labels, 1);
    }

    pub fn add(&self, labels: &[&str], n: u64) {
        debug_assert_eq!(labels.len(), self.meta.labels.len(), "{}", self.meta.name);
        self.series.get(labels).fetch_add(n, Ordering::Relaxed);
    }

    /// Sets the total to a value counted elsewhere (e.g. the coordinator's "shards
    /// repaired since start"), which must itself only go up.
    pub fn set(&self, labels: &[&str], n: u64) {
        self.series.get(labels).store(n, Ordering::Relaxed);
    }
}

impl Render for Counter {
    fn touch_unlabelled(&self) {
        self.series.touch_unlabelled(&self.meta);
    }

    fn render(&self, out: &mut String) {
        self.series.render_scalars(&self.meta, "counter", out);
    }
}

pub struct Gauge {
    meta: Meta,
    series: Series<AtomicI64>,
}

impl Gauge {
    pub fn set(&self, labels: &[&str], v: i64) {
        debug_assert_eq!(labels.len(), self.meta.labels.len(), "{}", self.meta.name);
        self.series.get(labels).store(v, Ordering::Relaxed);
    }

    /// [`Gauge::set`] for unsigned values, saturating at `i64::MAX`.
    pub fn set_u64(&self, labels: &[&str], v: u64) {
        self.set(labels, i64::try_from(v).unwrap_or(i64::MAX));
    }
}

impl Render for Gauge {
    fn touch_unlabelled(&self) {
        self.series.touch_unlabelled(&self.meta);
    }

    fn render(&self, out: &mut String) {
        self.series.render_scalars(&self.meta, "gauge", out);
    }
}

pub struct Histogram {
    meta: Meta,
    bounds: Vec<f64>,
    series: Series<HistogramSeries>,
}

/// One histogram series: a count per bucket (not cumulative: each observation lands in
/// exactly one, which keeps `observe` to three atomic adds), the count, and the sum in
/// nanoseconds (an integer, so that it too is one atomic add).
#[derive(Default)]
struct HistogramSeries {
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, labels: &[&str], d: Duration) {
        debug_assert_eq!(labels.len(), self.meta.labels.len(), "{}", self.meta.name);
        let s = {
            let mut map = lock(&self.series.0);
            let key: Vec<String> = labels.iter().map(|v| v.to_string()).collect();
            map.entry(key)
                .or_insert_with(|| {
                    Arc::new(HistogramSeries {
                        // One more than the bounds: the +Inf bucket.
                        buckets: (0..=self.bounds.len()).map(|_| AtomicU64::new(0)).collect(),
                        ..HistogramSeries::default()
                    })
                })
                .clone()
        };
        let secs = d.as_secs_f64();
        let i = self.bounds.partition_point(|b| *b < secs);
        if let Some(b) = s.buckets.get(i) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        s.count.fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        s.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }
}

impl Render for Histogram {
    // An empty histogram renders no series: Prometheus handles a histogram that appears
    // with its first observation well.
    fn touch_unlabelled(&self) {}

    fn render(&self, out: &mut String) {
        self.meta.header(out, "histogram");
        let name = &self.meta.name;
        for (values, s) in self.series.snapshot() {
            let mut cumulative = 0;
            let les = self
                .bounds
                .iter()
                .map(|b| b.to_string())
                .chain(["+Inf".to_string()]);
            for (le, b) in les.zip(&s.buckets) {
                cumulative += b.load(Ordering::Relaxed);
                let labels = self.meta.labels(&values, Some(("le", &le)));
                let _ = writeln!(out, "{name}_bucket{labels} {cumulative}");
            }
            let labels = self.meta.labels(&values, None);
            let sum = s.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
            let _ = writeln!(out, "{name}_sum{labels} {sum}");
            let _ = writeln!(
                out,
                "{name}_count{labels} {}",
                s.count.load(Ordering::Relaxed)
            );
        }
    }
}

#[cfg(test)]
mod tests;
