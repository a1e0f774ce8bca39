//! What monitoring counts of the gateway's traffic: per model and 10-second bucket, requests,
//! blocks, refusals, errors, tokens, evaluators' flags and a latency histogram. Each instance
//! records its own traffic in memory on the request path ([`Recorder`], a `vocab::Observer`)
//! and writes its buckets to the store every few seconds; a rule's window sums every instance's
//! buckets, so a rule sees the whole platform's traffic.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use store::Store;

use crate::GovernError;

/// The length of a bucket.
pub const BUCKET_MS: i64 = 10_000;
/// The longest window a rule may watch; older buckets are forgotten.
pub const MAX_WINDOW_MS: i64 = 3_600_000;
/// Most models counted apart per instance; traffic for others is counted under [`OTHER`]
/// (a request may name any model, and the counters must not grow with what clients invent).
pub const MAX_MODELS: usize = 1000;
pub const OTHER: &str = "(other)";
/// Latency buckets: bucket `i` holds latencies up to 2^(i/4) ms (1 ms … 65 s), the last one the
/// rest, so a p99 is read to within 19%.
pub const LATENCY_BUCKETS: usize = 65;

/// The upper bound of latency bucket `i`, in ms.
pub fn latency_bound_ms(i: usize) -> f64 {
    2f64.powf(i as f64 / 4.0)
}

/// The first bucket whose bound holds `ms`: ceil(4 · log2 ms), one logarithm on the request path
/// instead of a search.
fn latency_bucket(ms: u64) -> usize {
    if ms <= 1 {
        return 0;
    }
    let i = (4.0 * (ms as f64).log2()).ceil() as usize;
    // Rounding at a bucket's exact bound may land one too high.
    let i = if i > 0 && ms as f64 <= latency_bound_ms(i - 1) { i - 1 } else { i };
    i.min(LATENCY_BUCKETS - 1)
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub requests: u64,
    pub blocked: u64,
    pub refused: u64,
    /// Answers with a status of 500 or more (the gateway's or an upstream's failure).
    pub errors: u64,
    pub tokens: u64,
    /// Flags raised by evaluators against the model's answers.
    pub flags: u64,
    /// Requests per latency bucket (empty until a request is counted).
    #[serde(default)]
    pub latency: Vec<u64>,
}

impl Counters {
    pub fn add(&mut self, o: &vocab::Observation<'_>) {
        self.requests += 1;
        self.blocked += u64::from(o.blocked);
        self.refused += u64::from(o.refused);
        self.errors += u64::from(o.status >= 500);
        self.tokens = self.tokens.saturating_add(o.tokens);
        if self.latency.len() != LATENCY_BUCKETS {
            self.latency = vec![0; LATENCY_BUCKETS];
        }
        self.latency[latency_bucket(o.latency_ms)] += 1;
    }

    pub fn merge(&mut self, other: &Counters) {
        self.requests += other.requests;
        self.blocked += other.blocked;
        self.refused += other.refused;
        self.errors += other.errors;
        self.tokens = self.tokens.saturating_add(other.tokens);
        self.flags += other.flags;
        if self.latency.len() < other.latency.len() {
            self.latency.resize(other.latency.len(), 0);
        }
        for (a, b) in self.latency.iter_mut().zip(&other.latency) {
            *a += b;
        }
    }

    /// The latency below which `q` (0..1) of the requests fall, as its bucket's upper bound.
    pub fn latency_ms_quantile(&self, q: f64) -> Option<f64> {
        let total: u64 = self.latency.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = (q * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.latency.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(if i == LATENCY_BUCKETS - 1 { f64::INFINITY } else { latency_bound_ms(i) });
            }
        }
        None
    }
}

/// One model's buckets by start, each with whether it changed since the last flush.
type Buckets = BTreeMap<i64, (Counters, bool)>;

/// This instance's counters, by model and bucket, with the buckets changed since the last flush.
pub struct Recorder {
    instance: String,
    buckets: Mutex<HashMap<String, Buckets>>,
}

impl Recorder {
    pub fn new(instance: String) -> Self {
        Self { instance, buckets: Mutex::default() }
    }

    /// A recorder under a name of its own, drawn at start (a restarted instance writes new
    /// rows; its old ones age out of every window).
    pub fn for_this_process() -> Self {
        Self::new(format!("ins_{}", uuid::Uuid::now_v7().simple()))
    }

    fn with_bucket(&self, model: &str, at_ms: i64, f: impl FnOnce(&mut Counters)) {
        if model.is_empty() {
            return;
        }
        let Ok(mut all) = self.buckets.lock() else { return };
        // Looked up by reference: a model's name is copied once, when it is first seen.
        let model = if all.contains_key(model) || all.len() < MAX_MODELS { model } else { OTHER };
        if !all.contains_key(model) {
            all.insert(model.to_string(), Buckets::new());
        }
        let bucket = at_ms.div_euclid(BUCKET_MS) * BUCKET_MS;
        let Some(buckets) = all.get_mut(model) else { return };
        let slot = buckets.entry(bucket).or_default();
        f(&mut slot.0);
        slot.1 = true;
    }

    /// Counts an evaluator's flag against `model`.
    pub fn flag(&self, model: &str, at_ms: i64) {
        self.with_bucket(model, at_ms, |c| c.flags += 1);
    }

    /// Writes the buckets changed since the last flush, and forgets buckets past the longest
    /// window. Returns how many were written.
    pub async fn flush(&self, store: &Store, now_ms: i64) -> Result<usize, GovernError> {
        let horizon = now_ms - MAX_WINDOW_MS - BUCKET_MS;
        let mut dirty = Vec::new();
        if let Ok(mut all) = self.buckets.lock() {
            for (model, buckets) in all.iter_mut() {
                buckets.retain(|&b, _| b >= horizon);
                for (b, (c, changed)) in buckets.iter_mut().filter(|(_, (_, changed))| *changed) {
                    dirty.push((model.clone(), *b, serde_json::to_string(c)?));
                    *changed = false;
                }
            }
            all.retain(|_, b| !b.is_empty());
        }
        for (i, (model, bucket, doc)) in dirty.iter().enumerate() {
            if let Err(e) = store.put_monitor_bucket(&self.instance, model, *bucket, doc).await {
                // What was not written is written at the next flush.
                if let Ok(mut all) = self.buckets.lock() {
                    for (model, bucket, _) in &dirty[i..] {
                        if let Some(slot) = all.get_mut(model).and_then(|b| b.get_mut(bucket)) {
                            slot.1 = true;
                        }
                    }
                }
                return Err(e.into());
            }
        }
        Ok(dirty.len())
    }
}

impl vocab::Observer for Recorder {
    fn observe(&self, o: &vocab::Observation<'_>) {
        self.with_bucket(o.model, o.at_ms, |c| c.add(o));
    }
}

/// Every instance's counters per model over the window starting at `from_ms`.
pub async fn window(store: &Store, from_ms: i64) -> Result<HashMap<String, Counters>, GovernError> {
    let mut out: HashMap<String, Counters> = HashMap::new();
    for (model, _, doc) in store.monitor_buckets(from_ms.div_euclid(BUCKET_MS) * BUCKET_MS).await? {
        let c: Counters = serde_json::from_str(&doc)?;
        out.entry(model).or_default().merge(&c);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use vocab::Observer;

    fn obs(model: &str, latency_ms: u64, blocked: bool, at_ms: i64) -> vocab::Observation<'_> {
        vocab::Observation {
            model,
            tenant: "t",
            end_user: None,
            status: 200,
            blocked,
            blocked_input: blocked,
            refused: false,
            latency_ms,
            tokens: 10,
            at_ms,
        }
    }

    #[test]
    fn each_latency_lands_in_the_first_bucket_whose_bound_holds_it() {
        for ms in [0u64, 1, 2, 3, 5, 7, 10, 99, 100, 1000, 4096, 65_536, 65_537, 10_000_000] {
            let i = latency_bucket(ms);
            let by_search = (0..LATENCY_BUCKETS - 1).find(|&i| ms as f64 <= latency_bound_ms(i)).unwrap_or(LATENCY_BUCKETS - 1);
            assert_eq!(i, by_search, "{ms} ms");
        }
    }

    #[test]
    fn the_p99_is_read_from_the_histogram_to_within_a_bucket() {
        let mut c = Counters::default();
        for i in 0..99 {
            c.add(&obs("m", 10 + i % 5, false, 0));
        }
        c.add(&obs("m", 900, false, 0));
        let p50 = c.latency_ms_quantile(0.5).unwrap();
        assert!((10.0..=14.0 * 1.19).contains(&p50), "{p50}");
        let p99 = c.latency_ms_quantile(0.99).unwrap();
        assert!((14.0..=14.0 * 1.19).contains(&p99), "the 99th of 100 is still a fast one: {p99}");
        let p100 = c.latency_ms_quantile(1.0).unwrap();
        assert!((900.0..=900.0 * 1.19).contains(&p100), "{p100}");
        assert_eq!(Counters::default().latency_ms_quantile(0.99), None);
    }

    #[tokio::test]
    async fn two_instances_buckets_sum_over_a_window() {
        let store = Store::memory().await.unwrap();
        let (a, b) = (Recorder::new("a".into()), Recorder::new("b".into()));
        a.observe(&obs("m", 5, true, 1_000));
        a.observe(&obs("m", 5, false, 12_000));
        b.observe(&obs("m", 5, true, 12_500));
        b.flag("m", 13_000);
        b.observe(&obs("", 5, true, 13_000));
        assert_eq!(a.flush(&store, 13_000).await.unwrap(), 2);
        assert_eq!(a.flush(&store, 13_000).await.unwrap(), 0, "nothing changed since");
        assert_eq!(b.flush(&store, 13_000).await.unwrap(), 1);
        let all = window(&store, 0).await.unwrap();
        let m = &all["m"];
        assert_eq!((m.requests, m.blocked, m.flags, m.tokens), (3, 2, 1, 30));
        let recent = window(&store, 10_000).await.unwrap();
        assert_eq!((recent["m"].requests, recent["m"].blocked), (2, 1), "the first bucket is outside");
    }

    #[test]
    fn invented_model_names_do_not_grow_the_counters_without_bound() {
        let r = Recorder::new("a".into());
        for i in 0..(MAX_MODELS + 50) {
            r.observe(&obs(&format!("m{i}"), 1, false, 0));
        }
        let all = r.buckets.lock().unwrap();
        assert_eq!(all.len(), MAX_MODELS + 1);
        assert_eq!(all[OTHER][&0].0.requests, 50);
    }
}
