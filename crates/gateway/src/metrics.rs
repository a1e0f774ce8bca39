//! Prometheus metrics for the gateway, rendered in the text exposition format at `/metrics`.
//!
//! A handful of counter families and one latency histogram keyed by small label sets; each
//! update takes one uncontended lock and, for a series seen before, allocates nothing: series
//! are found by a hash of the borrowed name and labels, and compared before use.

use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use rustc_hash::{FxHashMap, FxHasher};

/// Upper bounds of the latency histogram, in seconds (Prometheus' defaults, finer below 10 ms).
pub const LATENCY_BUCKETS_S: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

pub type Labels = Vec<(&'static str, String)>;

/// A gauge family computed at scrape time: name, help, samples.
pub type Gauge<'a> = (&'a str, &'a str, Vec<(Labels, f64)>);

#[derive(Default)]
struct Histogram {
    counts: [u64; LATENCY_BUCKETS_S.len()],
    count: u64,
    sum_s: f64,
}

/// Most series one family set may hold. Label values can come from requests (a model name),
/// so past this every new series is counted in one whose labels all read `overflow`.
pub const MAX_SERIES: usize = 10_000;

/// Series by the hash of (name, labels); a bucket holds the rare collisions.
struct Series<T> {
    by_hash: FxHashMap<u64, Vec<(&'static str, Labels, T)>>,
    count: usize,
}

impl<T> Default for Series<T> {
    fn default() -> Self {
        Self { by_hash: FxHashMap::default(), count: 0 }
    }
}

impl<T: Default> Series<T> {
    fn get(&mut self, name: &'static str, labels: &[(&'static str, &str)]) -> &mut T {
        let mut h = FxHasher::default();
        name.hash(&mut h);
        labels.hash(&mut h);
        let hash = h.finish();
        let known = self.by_hash.get(&hash).is_some_and(|b| b.iter().any(|(n, l, _)| *n == name && same_labels(l, labels)));
        if !known && self.count >= MAX_SERIES {
            let overflow: Vec<(&'static str, &str)> = labels.iter().map(|(k, _)| (*k, "overflow")).collect();
            if labels.iter().any(|(_, v)| *v != "overflow") {
                return self.get(name, &overflow);
            }
        }
        let bucket = self.by_hash.entry(hash).or_default();
        let i = match bucket.iter().position(|(n, l, _)| *n == name && same_labels(l, labels)) {
            Some(i) => i,
            None => {
                bucket.push((name, labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect(), T::default()));
                self.count += 1;
                bucket.len() - 1
            }
        };
        &mut bucket[i].2
    }

    /// The series of one family, ordered by labels, for rendering.
    fn family(&self, name: &str) -> Vec<(&Labels, &T)> {
        let mut v: Vec<(&Labels, &T)> = self.by_hash.values().flatten().filter(|(n, ..)| *n == name).map(|(_, l, t)| (l, t)).collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        v
    }
}

fn same_labels(owned: &Labels, borrowed: &[(&'static str, &str)]) -> bool {
    owned.len() == borrowed.len() && owned.iter().zip(borrowed).all(|((ka, va), (kb, vb))| ka == kb && va == vb)
}

#[derive(Default)]
struct Families {
    counters: Series<u64>,
    histograms: Series<Histogram>,
}

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Families>,
}

/// Help text for each family, in the order they are rendered.
const HELP: &[(&str, &str, &str)] = &[
    ("aiplus_gateway_requests_total", "counter", "Requests answered, by endpoint, model and HTTP status."),
    ("aiplus_gateway_tokens_total", "counter", "Tokens metered, by model and direction (input or output)."),
    ("aiplus_gateway_request_duration_seconds", "histogram", "Time from request to the end of the answer, by endpoint."),
    ("aiplus_gateway_upstream_errors_total", "counter", "Failed upstream attempts, by deployment and reason."),
    ("aiplus_gateway_limit_rejections_total", "counter", "Requests refused by a limit, by scope (key or tenant) and limit."),
    ("aiplus_gateway_guardrail_blocks_total", "counter", "Requests or answers stopped by the guardrail."),
    ("aiplus_gateway_ledger_refusals_total", "counter", "Requests refused (503) because the usage ledger's queue was full."),
];

impl Metrics {
    pub fn add(&self, name: &'static str, labels: &[(&'static str, &str)], n: u64) {
        if let Ok(mut f) = self.inner.lock() {
            *f.counters.get(name, labels) += n;
        }
    }

    pub fn observe(&self, name: &'static str, labels: &[(&'static str, &str)], seconds: f64) {
        if let Ok(mut f) = self.inner.lock() {
            let h = f.histograms.get(name, labels);
            for (i, b) in LATENCY_BUCKETS_S.iter().enumerate() {
                if seconds <= *b {
                    h.counts[i] += 1;
                }
            }
            h.count += 1;
            h.sum_s += seconds;
        }
    }

    /// The exposition text; `extra` are gauges computed at scrape time (name, help, samples).
    pub fn render(&self, extra: &[Gauge<'_>]) -> String {
        let mut out = String::new();
        let Ok(f) = self.inner.lock() else { return out };
        for (name, kind, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in f.counters.family(name) {
                let _ = writeln!(out, "{name}{} {v}", fmt_labels(labels, None));
            }
            for (labels, h) in f.histograms.family(name) {
                let n = name;
                for (i, b) in LATENCY_BUCKETS_S.iter().enumerate() {
                    let _ = writeln!(out, "{n}_bucket{} {}", fmt_labels(labels, Some(&b.to_string())), h.counts[i]);
                }
                let _ = writeln!(out, "{n}_bucket{} {}", fmt_labels(labels, Some("+Inf")), h.count);
                let _ = writeln!(out, "{n}_sum{} {}", fmt_labels(labels, None), h.sum_s);
                let _ = writeln!(out, "{n}_count{} {}", fmt_labels(labels, None), h.count);
            }
        }
        for (name, help, samples) in extra {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (labels, v) in samples {
                let _ = writeln!(out, "{name}{} {v}", fmt_labels(labels, None));
            }
        }
        out
    }
}

fn fmt_labels(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() { String::new() } else { format!("{{{}}}", parts.join(",")) }
}

/// Label values escape backslash, double quote and newline (the exposition format's rule).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_render_in_the_exposition_format() {
        let m = Metrics::default();
        m.add("aiplus_gateway_requests_total", &[("endpoint", "chat"), ("status", "200")], 1);
        m.add("aiplus_gateway_requests_total", &[("endpoint", "chat"), ("status", "200")], 1);
        m.add("aiplus_gateway_requests_total", &[("endpoint", "chat"), ("status", "500")], 1);
        m.observe("aiplus_gateway_request_duration_seconds", &[("endpoint", "chat")], 0.003);
        m.observe("aiplus_gateway_request_duration_seconds", &[("endpoint", "chat")], 0.2);
        let text = m.render(&[("aiplus_gateway_meter_dropped", "Dropped events.", vec![(vec![], 0.0)])]);
        assert!(text.contains("aiplus_gateway_requests_total{endpoint=\"chat\",status=\"200\"} 2\naiplus_gateway_requests_total{endpoint=\"chat\",status=\"500\"} 1\n"), "{text}");
        assert!(text.contains("aiplus_gateway_request_duration_seconds_bucket{endpoint=\"chat\",le=\"0.005\"} 1\n"), "{text}");
        assert!(text.contains("aiplus_gateway_request_duration_seconds_bucket{endpoint=\"chat\",le=\"0.25\"} 2\n"), "{text}");
        assert!(text.contains("aiplus_gateway_request_duration_seconds_count{endpoint=\"chat\"} 2\n"), "{text}");
        assert!(text.contains("# TYPE aiplus_gateway_meter_dropped gauge\naiplus_gateway_meter_dropped 0\n"), "{text}");
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn series_are_capped_so_request_chosen_labels_cannot_grow_memory() {
        let m = Metrics::default();
        for i in 0..MAX_SERIES + 50 {
            m.add("aiplus_gateway_requests_total", &[("model", &format!("m{i}"))], 1);
        }
        let text = m.render(&[]);
        assert_eq!(text.lines().filter(|l| l.starts_with("aiplus_gateway_requests_total{")).count(), MAX_SERIES + 1);
        assert!(text.contains("aiplus_gateway_requests_total{model=\"overflow\"} 50\n"), "the excess is counted, not lost");
    }
}
