//! Which deployment answers. Per model, either smooth weighted round-robin (nginx's) or least
//! latency (an EWMA of each deployment's time to answer headers), over the deployments the
//! tenant's regions allow. Among equals (the same weight at the same turn, or latencies within
//! 10% + 1 ms of the best) the deployment whose hosting cluster has the lower energy and carbon
//! cost right now goes first. Deployments whose circuit breaker is open follow the others, as a
//! last resort.
//!
//! A breaker opens after [`BREAKER_FAILURES`] failures in a row and stays open for
//! [`BREAKER_OPEN`]; the first request after that is a trial that closes it again on success.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::{DeploymentConfig, ModelConfig, Routing};

pub const BREAKER_FAILURES: u32 = 5;
pub const BREAKER_OPEN: Duration = Duration::from_secs(30);
/// Weight of the newest sample in the latency average.
pub const EWMA_ALPHA: f64 = 0.3;

struct Slot {
    weight: i64,
    current: i64,
    failures: u32,
    open_until: Option<Instant>,
    /// Smoothed time to answer headers, once there is a sample.
    ewma_ms: Option<f64>,
}

pub struct ModelRoute {
    pub model: ModelConfig,
    slots: Mutex<Vec<Slot>>,
    /// Each deployment's base URL, parsed once (with a trailing slash), so a request only joins
    /// its relative path: parsing the host on every request cost about 2% of the gateway's CPU.
    bases: Vec<Option<reqwest::Url>>,
}

/// A deployment's standing for one request: may the tenant use it, and what its site costs
/// (yuan per kWh of energy and carbon at the hosting cluster now; lower is better).
pub struct Candidate {
    pub allowed: bool,
    pub site_cost: f64,
}

impl ModelRoute {
    pub fn new(model: ModelConfig) -> Self {
        let slots = model
            .deployments
            .iter()
            .map(|d| Slot { weight: i64::from(d.weight), current: 0, failures: 0, open_until: None, ewma_ms: None })
            .collect();
        let bases = model.deployments.iter().map(|d| reqwest::Url::parse(&format!("{}/", d.base_url.trim_end_matches('/'))).ok()).collect();
        Self { model, slots: Mutex::new(slots), bases }
    }

    /// The URL of `path` (relative, like `chat/completions`) on deployment `d`.
    pub fn endpoint(&self, d: &DeploymentConfig, path: &str) -> Result<reqwest::Url, String> {
        let parsed = self.model.deployments.iter().position(|x| x.id == d.id).and_then(|i| self.bases[i].as_ref());
        match parsed {
            Some(base) => base.join(path),
            None => reqwest::Url::parse(&format!("{}/{}", d.base_url.trim_end_matches('/'), path)),
        }
        .map_err(|e| format!("bad upstream URL ({e})"))
    }

    /// Deployments to try, best first; `judge` says which the caller may use and their site
    /// cost. Empty when none is allowed.
    pub fn plan(&self, now: Instant, judge: impl Fn(&DeploymentConfig) -> Candidate) -> Vec<&DeploymentConfig> {
        let n = self.model.deployments.len();
        let cands: Vec<Candidate> = self.model.deployments.iter().map(&judge).collect();
        let Ok(mut slots) = self.slots.lock() else {
            return (0..n).filter(|&i| cands[i].allowed).map(|i| &self.model.deployments[i]).collect();
        };
        let closed: Vec<usize> = (0..n).filter(|&i| cands[i].allowed && slots[i].open_until.is_none_or(|t| t <= now)).collect();
        let cost = |i: usize| cands[i].site_cost;
        let mut order: Vec<usize> = match self.model.routing {
            Routing::Weighted => {
                let total: i64 = closed.iter().map(|&i| slots[i].weight).sum();
                let mut first: Option<usize> = None;
                for &i in &closed {
                    slots[i].current += slots[i].weight;
                    let better = match first {
                        None => true,
                        Some(f) => slots[i].current > slots[f].current || (slots[i].current == slots[f].current && cost(i) < cost(f)),
                    };
                    if better {
                        first = Some(i);
                    }
                }
                if let Some(f) = first {
                    slots[f].current -= total;
                }
                let mut rest: Vec<usize> = closed.iter().copied().filter(|&i| Some(i) != first).collect();
                rest.sort_by(|&a, &b| cost(a).total_cmp(&cost(b)));
                first.into_iter().chain(rest).collect()
            }
            Routing::LeastLatency => {
                // Untried deployments count as fastest, so each gets a first sample.
                let lat = |i: usize| slots[i].ewma_ms.unwrap_or(0.0);
                let mut by_lat = closed.clone();
                by_lat.sort_by(|&a, &b| lat(a).total_cmp(&lat(b)).then(cost(a).total_cmp(&cost(b))));
                let best = by_lat.first().map_or(0.0, |&i| lat(i));
                let equal = |i: usize| lat(i) <= best * 1.1 + 1.0;
                let first = by_lat.iter().copied().filter(|&i| equal(i)).min_by(|&a, &b| cost(a).total_cmp(&cost(b)));
                first.into_iter().chain(by_lat.into_iter().filter(|&i| Some(i) != first)).collect()
            }
        };
        order.extend((0..n).filter(|&i| cands[i].allowed && !closed.contains(&i)));
        order.into_iter().map(|i| &self.model.deployments[i]).collect()
    }

    /// Records an attempt's outcome; `latency` (time to answer headers) on success.
    pub fn record(&self, deployment: &str, ok: bool, latency: Option<Duration>, now: Instant) {
        let Some(i) = self.model.deployments.iter().position(|d| d.id == deployment) else { return };
        let Ok(mut slots) = self.slots.lock() else { return };
        let s = &mut slots[i];
        if ok {
            s.failures = 0;
            s.open_until = None;
            if let Some(l) = latency {
                let ms = l.as_secs_f64() * 1000.0;
                s.ewma_ms = Some(s.ewma_ms.map_or(ms, |e| e + EWMA_ALPHA * (ms - e)));
            }
        } else {
            s.failures += 1;
            if s.failures >= BREAKER_FAILURES {
                s.open_until = Some(now + BREAKER_OPEN);
            }
        }
    }

    /// Each deployment's (id, smoothed latency, breaker open) for metrics and the console.
    pub fn health(&self, now: Instant) -> Vec<(String, Option<f64>, bool)> {
        let Ok(slots) = self.slots.lock() else { return Vec::new() };
        self.model
            .deployments
            .iter()
            .zip(slots.iter())
            .map(|(d, s)| (d.id.clone(), s.ewma_ms, s.open_until.is_some_and(|t| t > now)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(weights: &[u32]) -> ModelConfig {
        ModelConfig {
            name: "m".into(),
            routing: Routing::Weighted,
            deployments: weights
                .iter()
                .enumerate()
                .map(|(i, w)| DeploymentConfig {
                    id: format!("d{i}"),
                    base_url: "http://x".into(),
                    api_key_env: None,
                    upstream_model: None,
                    cluster: None,
                    weight: *w,
                    timeout_s: 1,
                    context_length: None,
                    input_cny_per_1k: 0.0,
                    output_cny_per_1k: 0.0,
                })
                .collect(),
        }
    }

    fn any(_: &DeploymentConfig) -> Candidate {
        Candidate { allowed: true, site_cost: 0.0 }
    }

    /// The parsed base keeps its path prefix, with or without a trailing slash, and matches what
    /// joining the strings gives.
    #[test]
    fn endpoints_join_the_path_under_the_base() {
        let mut m = model(&[1, 1, 1]);
        m.deployments[0].base_url = "http://127.0.0.1:9/fast/v1".into();
        m.deployments[1].base_url = "https://api.example.cn/v1/".into();
        m.deployments[2].base_url = "not a url".into();
        let r = ModelRoute::new(m.clone());
        assert_eq!(r.endpoint(&m.deployments[0], "chat/completions").unwrap().as_str(), "http://127.0.0.1:9/fast/v1/chat/completions");
        assert_eq!(r.endpoint(&m.deployments[1], "embeddings").unwrap().as_str(), "https://api.example.cn/v1/embeddings");
        assert!(r.endpoint(&m.deployments[2], "completions").unwrap_err().contains("bad upstream URL"));
    }

    #[test]
    fn weights_are_honoured_and_every_plan_lists_all() {
        let r = ModelRoute::new(model(&[3, 1]));
        let now = Instant::now();
        let firsts: Vec<String> = (0..8).map(|_| r.plan(now, any)[0].id.clone()).collect();
        assert_eq!(firsts.iter().filter(|f| *f == "d0").count(), 6);
        assert_eq!(r.plan(now, any).len(), 2);
    }

    #[test]
    fn an_open_breaker_moves_a_deployment_last_until_it_times_out() {
        let r = ModelRoute::new(model(&[1, 1]));
        let now = Instant::now();
        for _ in 0..BREAKER_FAILURES {
            r.record("d0", false, None, now);
        }
        for _ in 0..4 {
            assert_eq!(r.plan(now, any)[0].id, "d1");
        }
        let later = now + BREAKER_OPEN + Duration::from_millis(1);
        assert!((0..2).any(|_| r.plan(later, any)[0].id == "d0"), "half-open after the timeout");
    }

    #[test]
    fn least_latency_prefers_the_fastest_and_among_equals_the_greener_site() {
        let mut m = model(&[1, 1, 1]);
        m.routing = Routing::LeastLatency;
        let r = ModelRoute::new(m);
        let now = Instant::now();
        r.record("d0", true, Some(Duration::from_millis(50)), now);
        r.record("d1", true, Some(Duration::from_millis(10)), now);
        r.record("d2", true, Some(Duration::from_millis(10)), now);
        let cost = |d: &DeploymentConfig| Candidate { allowed: true, site_cost: if d.id == "d2" { 0.3 } else { 0.9 } };
        let ids = |v: Vec<&DeploymentConfig>| v.iter().map(|d| d.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(r.plan(now, cost)), ["d2", "d1", "d0"], "d1 and d2 tie on latency; d2's site is cheaper");
        // The average moves towards new samples: d0 becomes fastest after a few quick answers.
        for _ in 0..10 {
            r.record("d0", true, Some(Duration::from_millis(1)), now);
        }
        assert_eq!(ids(r.plan(now, cost))[0], "d0");
    }

    #[test]
    fn deployments_outside_the_tenants_regions_are_never_planned() {
        let r = ModelRoute::new(model(&[5, 1]));
        let now = Instant::now();
        let only_d1 = |d: &DeploymentConfig| Candidate { allowed: d.id == "d1", site_cost: 0.0 };
        for _ in 0..5 {
            let p = r.plan(now, only_d1);
            assert_eq!(p.len(), 1);
            assert_eq!(p[0].id, "d1");
        }
        assert!(r.plan(now, |_: &DeploymentConfig| Candidate { allowed: false, site_cost: 0.0 }).is_empty());
    }
}
