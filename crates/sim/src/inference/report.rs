//! What a replay reports per policy, and how it is accumulated.

use serde::Serialize;

use super::model::Slo;
use super::replay::Setup;
use super::workload::Request;

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PolicyInference {
    pub name: String,
    pub requests: u64,
    /// Requests that got a replica. The others found none in their residency and none could
    /// be placed.
    pub served: u64,
    pub unserved: u64,
    /// Served requests whose replica's cluster their residency does not allow, checked
    /// independently of the routing (always 0 unless routing is broken).
    pub residency_violations: u64,
    pub tokens_in: u64,
    pub tokens_out: u64,
    /// Share of all requests served within both objectives of their service, 0..=1.
    pub slo_attainment: f64,
    pub ttft_slo_attainment: f64,
    /// Requests generating one token have no time between tokens and meet this objective.
    pub tbt_slo_attainment: f64,
    pub ttft_ms_p50: f64,
    pub ttft_ms_p95: f64,
    pub ttft_ms_p99: f64,
    pub tbt_ms_p99: f64,
    pub replicas_peak: u32,
    /// GPU-hours held by replicas, from placement (cold start included) to release.
    pub replica_hours: f64,
    /// Scale-ups the scheduler could not place (no capacity within the pool's residency).
    pub placement_failures: u64,
    pub energy_kwh: f64,
    pub energy_cost_cny: f64,
    pub carbon_kg: f64,
    /// Per 1,000 tokens in and out.
    pub energy_wh_per_1k_tokens: f64,
    pub energy_cost_cny_per_1k_tokens: f64,
    pub carbon_g_per_1k_tokens: f64,
    pub services: Vec<ServiceResult>,
    /// Replica-hours per cluster, in the network's cluster order (clusters with none left out).
    pub replica_hours_by_cluster: Vec<ClusterHours>,
    pub series: Series,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ServiceResult {
    pub name: String,
    pub requests: u64,
    pub ttft_slo_attainment: f64,
    pub tbt_slo_attainment: f64,
    pub ttft_ms_p99: f64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ClusterHours {
    pub cluster: String,
    pub replica_hours: f64,
}

/// Samples at the end of each interval from the replay's start.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Series {
    pub sample_interval_s: f64,
    /// Requests that arrived in each interval, per second.
    pub arrivals_per_s: Vec<f64>,
    /// Replicas holding a GPU (loading, serving or draining) at the end of each interval.
    pub replicas: Vec<u32>,
    /// Of those, the ones loaded and taking requests.
    pub replicas_ready: Vec<u32>,
}

#[derive(Default)]
struct ServiceAcc {
    requests: u64,
    ttft_ok: u64,
    tbt_ok: u64,
    ttft_ms: Vec<f32>,
}

/// What a replay accumulates.
pub(super) struct Acc {
    pub replicas_peak: u32,
    pub placement_failures: u64,
    pub unserved: u64,
    pub energy_kwh: f64,
    pub energy_cost_cny: f64,
    pub carbon_kg: f64,
    pub replica_s_by_cluster: Vec<f64>,
    pub series_replicas: Vec<u32>,
    pub series_ready: Vec<u32>,
    served: u64,
    violations: u64,
    both_ok: u64,
    ttft_ok: u64,
    tbt_ok: u64,
    tokens_in: u64,
    tokens_out: u64,
    ttft_ms: Vec<f32>,
    tbt_ms: Vec<f32>,
    services: Vec<ServiceAcc>,
}

impl Acc {
    pub fn new(services: usize, clusters: usize, samples: usize) -> Self {
        Self {
            replicas_peak: 0,
            placement_failures: 0,
            unserved: 0,
            energy_kwh: 0.0,
            energy_cost_cny: 0.0,
            carbon_kg: 0.0,
            replica_s_by_cluster: vec![0.0; clusters],
            series_replicas: vec![0; samples],
            series_ready: vec![0; samples],
            served: 0,
            violations: 0,
            both_ok: 0,
            ttft_ok: 0,
            tbt_ok: 0,
            tokens_in: 0,
            tokens_out: 0,
            ttft_ms: Vec::new(),
            tbt_ms: Vec::new(),
            services: (0..services).map(|_| ServiceAcc::default()).collect(),
        }
    }

    pub fn served(&mut self, q: &Request, slo: &Slo, ttft_ms: f64, tbt_ms: Option<f64>, within_residency: bool) {
        self.served += 1;
        self.tokens_in += u64::from(q.context_tokens);
        self.tokens_out += u64::from(q.generated_tokens);
        if !within_residency {
            self.violations += 1;
        }
        let ttft_ok = ttft_ms <= slo.ttft_ms;
        let tbt_ok = tbt_ms.is_none_or(|t| t <= slo.tbt_ms);
        self.both_ok += u64::from(ttft_ok && tbt_ok);
        self.ttft_ok += u64::from(ttft_ok);
        self.tbt_ok += u64::from(tbt_ok);
        self.ttft_ms.push(ttft_ms as f32);
        if let Some(t) = tbt_ms {
            self.tbt_ms.push(t as f32);
        }
        let s = &mut self.services[q.service];
        s.requests += 1;
        s.ttft_ok += u64::from(ttft_ok);
        s.tbt_ok += u64::from(tbt_ok);
        s.ttft_ms.push(ttft_ms as f32);
    }

    pub fn finish(mut self, name: &str, setup: &Setup<'_>) -> PolicyInference {
        let requests = setup.workload.requests.len() as u64;
        let share = |n: u64, of: u64| if of == 0 { 0.0 } else { n as f64 / of as f64 };
        let tokens = self.tokens_in + self.tokens_out;
        let per_1k = |v: f64| if tokens == 0 { 0.0 } else { v / (tokens as f64 / 1000.0) };
        self.ttft_ms.sort_by(f32::total_cmp);
        self.tbt_ms.sort_by(f32::total_cmp);
        let services = std::mem::take(&mut self.services)
            .into_iter()
            .zip(&setup.service_names)
            .map(|(mut s, name)| {
                s.ttft_ms.sort_by(f32::total_cmp);
                ServiceResult {
                    name: name.clone(),
                    requests: s.requests,
                    ttft_slo_attainment: share(s.ttft_ok, s.requests),
                    tbt_slo_attainment: share(s.tbt_ok, s.requests),
                    ttft_ms_p99: percentile(&s.ttft_ms, 0.99),
                }
            })
            .collect::<Vec<_>>();
        let replica_hours_by_cluster = self
            .replica_s_by_cluster
            .iter()
            .enumerate()
            .filter(|(_, s)| **s > 0.0)
            .map(|(c, s)| ClusterHours { cluster: setup.net.clusters[c].id.clone(), replica_hours: s / 3600.0 })
            .collect();
        PolicyInference {
            name: name.to_string(),
            requests,
            served: self.served,
            unserved: self.unserved,
            residency_violations: self.violations,
            tokens_in: self.tokens_in,
            tokens_out: self.tokens_out,
            slo_attainment: share(self.both_ok, requests),
            ttft_slo_attainment: share(self.ttft_ok, requests),
            tbt_slo_attainment: share(self.tbt_ok, requests),
            ttft_ms_p50: percentile(&self.ttft_ms, 0.5),
            ttft_ms_p95: percentile(&self.ttft_ms, 0.95),
            ttft_ms_p99: percentile(&self.ttft_ms, 0.99),
            tbt_ms_p99: percentile(&self.tbt_ms, 0.99),
            replicas_peak: self.replicas_peak,
            replica_hours: self.replica_s_by_cluster.iter().sum::<f64>() / 3600.0,
            placement_failures: self.placement_failures,
            energy_kwh: self.energy_kwh,
            energy_cost_cny: self.energy_cost_cny,
            carbon_kg: self.carbon_kg,
            energy_wh_per_1k_tokens: per_1k(self.energy_kwh * 1000.0),
            energy_cost_cny_per_1k_tokens: per_1k(self.energy_cost_cny),
            carbon_g_per_1k_tokens: per_1k(self.carbon_kg * 1000.0),
            services,
            replica_hours_by_cluster,
            series: Series {
                sample_interval_s: setup.sample_interval_s,
                arrivals_per_s: setup.arrivals_per_s.clone(),
                replicas: self.series_replicas,
                replicas_ready: self.series_ready,
            },
        }
    }
}

/// The nearest-rank percentile of sorted values (the engine's rule: index round((n − 1) p)).
fn percentile(sorted: &[f32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    f64::from(sorted[((sorted.len() - 1) as f64 * p).round() as usize])
}
