//! The scheduler: which cluster, and which node and GPUs inside it, a job runs on.
//!
//! Architecture invariant: this module does no I/O, reads no clock and draws no random numbers.
//! The time of a decision is an argument; the same calls in the same order give the same
//! placements, which is what lets the server and the simulator share it and a seed reproduce a run.
//!
//! A decision first filters clusters on the hard constraints (residency, GPU model, a node shape
//! that can hold the job, free capacity now), then ranks the survivors by the policy. The `aiplus`
//! policy minimises one objective in yuan (see [`Weights`]):
//!
//! ```text
//! energy cost  = ∫ tariff(t) dt over the run × PUE × power drawn
//! carbon cost  = energy × grid intensity × (1 − green share) × carbon price
//! delay cost   = (data transfer time + expected queueing delay) × value of the job's time
//! ```
//!
//! A cluster with room now has an expected queueing delay of zero; the scheduler never holds a
//! job back for a full cluster, so a job that fits nowhere waits in the caller's queue and is
//! offered again when capacity frees.

mod pool;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use pool::{PoolState, Slot};

use crate::job::JobSpec;
use crate::network::{ClusterIx, HubIx, Invalid, Network};

/// Most clusters a network may have: the scheduler keeps a job's eligible clusters in a bitmask.
pub const MAX_CLUSTERS: usize = 128;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Every job in its origin hub (or the nearest hub it may use).
    Nearest,
    /// Clusters in turn.
    RoundRobin,
    /// The lowest tariff now, ignoring data and carbon (SkyPilot's way).
    Cheapest,
    /// The weighted objective: energy cost, carbon, data transfer and delay.
    #[default]
    Aiplus,
}

impl Policy {
    pub const ALL: [Policy; 4] = [Policy::Nearest, Policy::RoundRobin, Policy::Cheapest, Policy::Aiplus];

    pub fn name(self) -> &'static str {
        match self {
            Policy::Nearest => "nearest",
            Policy::RoundRobin => "round-robin",
            Policy::Cheapest => "cheapest",
            Policy::Aiplus => "aiplus",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == s)
    }
}

/// Prices that turn carbon and delay into yuan, and the power model for CPUs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Weights {
    /// Yuan per kg CO2. Default 0.1 (100 yuan/t), above the 2024-25 China national ETS
    /// allowance price (about 60-100 yuan/t), so carbon counts but does not dominate price.
    pub carbon_cny_per_kg: f64,
    /// Value of one GPU-hour of waiting. Default 10 yuan: roughly the public-cloud rental of one
    /// V100-class GPU-hour, i.e. what the user loses when the GPU is not working for them.
    pub delay_cny_per_gpu_hour: f64,
    /// Value of one CPU-core-hour of waiting, for CPU-only work. Default 0.3 yuan.
    pub delay_cny_per_core_hour: f64,
    /// Power drawn per allocated CPU core. Default 4.3 W: a 205 W, 48-thread server CPU
    /// (Intel Xeon Platinum 8163, the CPU of Alibaba's GPU nodes) divided by its threads.
    pub cpu_w_per_core: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Self { carbon_cny_per_kg: 0.1, delay_cny_per_gpu_hour: 10.0, delay_cny_per_core_hour: 0.3, cpu_w_per_core: 4.3 }
    }
}

impl Weights {
    pub fn validate(&self) -> Result<(), Invalid> {
        for (field, v) in [
            ("carbon_cny_per_kg", self.carbon_cny_per_kg),
            ("delay_cny_per_gpu_hour", self.delay_cny_per_gpu_hour),
            ("delay_cny_per_core_hour", self.delay_cny_per_core_hour),
            ("cpu_w_per_core", self.cpu_w_per_core),
        ] {
            if !v.is_finite() || !(0.0..=1.0e6).contains(&v) {
                return Err(Invalid::new(field, format!("must be between 0 and 1000000, got {v}")));
            }
        }
        Ok(())
    }
}

/// A job compiled against one network: indexes and bitmasks instead of names.
#[derive(Clone, Debug, PartialEq)]
pub struct JobReq {
    pub gpus: u8,
    pub gpu_milli: u16,
    /// Bit `i`: GPU model `i` allowed; all bits set when the job accepts any.
    pub gpu_models: u64,
    pub cpu_milli: u32,
    pub memory_mib: u32,
    pub duration_s: f64,
    pub dataset: Option<(ClusterIx, f64)>,
    /// Bit `c`: residency allows cluster `c`.
    pub allowed: u128,
    pub origin_hub: Option<HubIx>,
    pub priority: i32,
}

impl JobReq {
    /// Compiles a job that [`JobSpec::normalise`] accepted.
    pub fn compile(spec: &JobSpec, net: &Network) -> Self {
        let gpu_models = if spec.gpu_models.is_empty() {
            u64::MAX
        } else {
            spec.gpu_models.iter().filter_map(|m| net.gpu_ix(m)).fold(0, |acc, i| acc | (1u64 << i))
        };
        let mut allowed = 0u128;
        for c in 0..net.clusters.len() {
            if vocab::allows(&spec.allowed_regions, Some(net.place(c))) {
                allowed |= 1 << c;
            }
        }
        JobReq {
            gpus: spec.gpus as u8,
            gpu_milli: spec.gpu_milli as u16,
            gpu_models,
            cpu_milli: spec.cpu_milli,
            memory_mib: spec.memory_mib,
            duration_s: spec.duration_s as f64,
            dataset: spec.dataset.as_ref().and_then(|d| net.cluster_ix(&d.cluster).map(|c| (c, d.size_gb))),
            allowed,
            origin_hub: spec.origin_hub.as_ref().and_then(|h| net.hub_ix(h)),
            priority: spec.priority,
        }
    }

    /// GPUs in use, counting shares as fractions.
    pub fn gpu_fraction(&self) -> f64 {
        f64::from(self.gpus) * f64::from(self.gpu_milli) / 1000.0
    }
}

/// The score of one cluster for one job: every term of the objective, so a decision explains itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoreTerms {
    pub cluster: String,
    pub pool: String,
    pub energy_kwh: f64,
    pub energy_cost_cny: f64,
    pub carbon_kg: f64,
    pub carbon_cost_cny: f64,
    pub transfer_gb: f64,
    pub transfer_s: f64,
    pub queue_s: f64,
    pub delay_cost_cny: f64,
    /// The objective the `aiplus` policy minimises.
    pub total_cny: f64,
    /// The tariff at the decision time, which `cheapest` ranks by.
    pub tariff_now_cny_per_kwh: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    pub policy: Policy,
    pub chosen: ScoreTerms,
    /// The next-best clusters with room, best first (at most three).
    pub runners_up: Vec<ScoreTerms>,
    /// Clusters ruled out, with why.
    pub excluded: Vec<Exclusion>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exclusion {
    pub cluster: String,
    pub reason: ExcludeReason,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExcludeReason {
    Residency,
    NoMatchingGpuModel,
    NodeShapeTooSmall,
    NoCapacityNow,
    OutsideOriginHub,
    /// The cluster's engine does not answer; nothing is placed there until it does.
    EngineUnhealthy,
}

/// What one run of a job used and cost, for the usage ledger.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunPrice {
    pub gpu_seconds: f64,
    pub energy_kwh: f64,
    pub energy_cost_cny: f64,
    pub carbon_kg: f64,
}

/// Where a job was placed: enough to release it exactly and to price its run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    pub cluster: u16,
    pub pool: u16,
    pub slot: Slot,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    Placed {
        allocation: Allocation,
        explanation: Box<Explanation>,
    },
    /// Some cluster could run the job, but none has room now.
    Wait,
    /// No cluster could ever run the job: the reasons, per cluster.
    Never(Vec<Exclusion>),
}

struct ClusterState {
    pools: Vec<PoolState>,
    /// Pool indexes from the least to the most power-hungry GPU, so a job that accepts several
    /// models lands on the one that draws least.
    order: Vec<usize>,
}

pub struct Scheduler {
    net: Arc<Network>,
    policy: Policy,
    weights: Weights,
    clusters: Vec<ClusterState>,
    rr_cursor: usize,
    /// Clusters whose engine does not answer.
    unhealthy: u128,
}

struct Candidate {
    cluster: ClusterIx,
    pool: usize,
    rank: f64,
    terms: ScoreTerms,
}

impl Scheduler {
    pub fn new(net: Arc<Network>, policy: Policy, weights: Weights) -> Self {
        let clusters = net
            .clusters
            .iter()
            .map(|c| {
                let pools: Vec<PoolState> =
                    c.pools.iter().map(|p| PoolState::new(p.nodes, p.gpus_per_node, p.cpu_milli, p.memory_mib)).collect();
                let mut order: Vec<usize> = (0..pools.len()).collect();
                order.sort_by(|&a, &b| {
                    let power = |i: usize| c.pools[i].gpu.map_or(0.0, |g| net.gpu_power_w[g]);
                    power(a).total_cmp(&power(b)).then(a.cmp(&b))
                });
                ClusterState { pools, order }
            })
            .collect();
        Self { net, policy, weights, clusters, rr_cursor: 0, unhealthy: 0 }
    }

    pub fn network(&self) -> &Arc<Network> {
        &self.net
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    pub fn weights(&self) -> &Weights {
        &self.weights
    }

    /// Why a cluster can never hold the job, if it cannot.
    fn static_exclusion(&self, job: &JobReq, c: ClusterIx) -> Option<ExcludeReason> {
        if job.allowed & (1 << c) == 0 {
            return Some(ExcludeReason::Residency);
        }
        let cluster = &self.net.clusters[c];
        let mut model_ok = false;
        for (p, pool) in cluster.pools.iter().enumerate() {
            let model_fits = match pool.gpu {
                None => job.gpus == 0,
                Some(g) => job.gpus > 0 && job.gpu_models & (1 << g) != 0,
            };
            if model_fits {
                model_ok = true;
                if self.clusters[c].pools[p].shape_fits(job.gpus, job.cpu_milli, job.memory_mib) {
                    return None;
                }
            }
        }
        Some(if model_ok { ExcludeReason::NodeShapeTooSmall } else { ExcludeReason::NoMatchingGpuModel })
    }

    fn pool_matches(&self, job: &JobReq, c: ClusterIx, p: usize) -> bool {
        let pool = &self.net.clusters[c].pools[p];
        let model_fits = match pool.gpu {
            None => job.gpus == 0,
            Some(g) => job.gpus > 0 && job.gpu_models & (1 << g) != 0,
        };
        model_fits && self.clusters[c].pools[p].shape_fits(job.gpus, job.cpu_milli, job.memory_mib)
    }

    /// The least power-hungry pool of cluster `c` that could ever hold the job, if residency
    /// allows the cluster at all. The lower bound in the simulator relaxes capacity to this.
    pub fn best_static_pool(&self, job: &JobReq, c: ClusterIx) -> Option<usize> {
        if job.allowed & (1 << c) == 0 {
            return None;
        }
        self.clusters[c].order.iter().copied().find(|&p| self.pool_matches(job, c, p))
    }

    /// Every cluster that can never run this job, with why; empty if at least one can.
    pub fn never_reasons(&self, job: &JobReq) -> Vec<Exclusion> {
        let mut out = Vec::new();
        for c in 0..self.net.clusters.len() {
            match self.static_exclusion(job, c) {
                None => return Vec::new(),
                Some(reason) => out.push(Exclusion { cluster: self.net.clusters[c].id.clone(), reason }),
            }
        }
        out
    }

    /// Yuan per second of delay for this job.
    pub fn delay_cny_per_s(&self, job: &JobReq) -> f64 {
        (job.gpu_fraction() * self.weights.delay_cny_per_gpu_hour
            + f64::from(job.cpu_milli) / 1000.0 * self.weights.delay_cny_per_core_hour)
            / 3600.0
    }

    /// IT power the job draws on a pool, in kW.
    pub fn power_kw(&self, job: &JobReq, c: ClusterIx, p: usize) -> f64 {
        let gpu_w = self.net.clusters[c].pools[p].gpu.map_or(0.0, |g| self.net.gpu_power_w[g]);
        (job.gpu_fraction() * gpu_w + f64::from(job.cpu_milli) / 1000.0 * self.weights.cpu_w_per_core) / 1000.0
    }

    /// The objective terms for running `job` on pool `p` of cluster `c`, placed at `now_s` after
    /// waiting `queue_s` in the queue. The run starts once its input data has arrived.
    pub fn score(&self, job: &JobReq, c: ClusterIx, p: usize, now_s: f64, queue_s: f64) -> ScoreTerms {
        let cluster = &self.net.clusters[c];
        let (transfer_gb, transfer_s) = match job.dataset {
            Some((from, gb)) if from != c => (gb, self.net.transfer_s(from, c, gb)),
            _ => (0.0, 0.0),
        };
        let power_kw = self.power_kw(job, c, p);
        let energy_kwh = power_kw * cluster.pue * job.duration_s / 3600.0;
        let energy_cost_cny = power_kw * cluster.pue * cluster.tariff.cost_per_kw(now_s + transfer_s, job.duration_s);
        let carbon_kg = energy_kwh * cluster.effective_carbon_kg_per_kwh;
        let carbon_cost_cny = carbon_kg * self.weights.carbon_cny_per_kg;
        let delay_cost_cny = (transfer_s + queue_s) * self.delay_cny_per_s(job);
        ScoreTerms {
            cluster: cluster.id.clone(),
            pool: cluster.pools[p].name.clone(),
            energy_kwh,
            energy_cost_cny,
            carbon_kg,
            carbon_cost_cny,
            transfer_gb,
            transfer_s,
            queue_s,
            delay_cost_cny,
            total_cny: energy_cost_cny + carbon_cost_cny + delay_cost_cny,
            tariff_now_cny_per_kwh: cluster.tariff.price_at(now_s as i64),
        }
    }

    /// Places `job` at `now_s` (it arrived `queue_s` seconds earlier), or says why it cannot.
    pub fn place(&mut self, job: &JobReq, now_s: f64, queue_s: f64) -> Decision {
        let n = self.net.clusters.len();
        let mut excluded = Vec::new();
        let mut candidates: Vec<Candidate> = Vec::with_capacity(n);
        let mut any_static = false;
        let nearest_hub = if self.policy == Policy::Nearest { self.nearest_allowed_hub(job) } else { None };
        for c in 0..n {
            if let Some(reason) = self.static_exclusion(job, c) {
                excluded.push(Exclusion { cluster: self.net.clusters[c].id.clone(), reason });
                continue;
            }
            any_static = true;
            if self.unhealthy & (1 << c) != 0 {
                excluded.push(Exclusion { cluster: self.net.clusters[c].id.clone(), reason: ExcludeReason::EngineUnhealthy });
                continue;
            }
            if nearest_hub.is_some_and(|h| self.net.clusters[c].hub != h) {
                excluded.push(Exclusion { cluster: self.net.clusters[c].id.clone(), reason: ExcludeReason::OutsideOriginHub });
                continue;
            }
            let state = &self.clusters[c];
            let pool = state
                .order
                .iter()
                .copied()
                .find(|&p| self.pool_matches(job, c, p) && state.pools[p].may_fit(job.gpus, job.gpu_milli, job.cpu_milli));
            let Some(p) = pool else {
                excluded.push(Exclusion { cluster: self.net.clusters[c].id.clone(), reason: ExcludeReason::NoCapacityNow });
                continue;
            };
            let terms = self.score(job, c, p, now_s, queue_s);
            let rank = match self.policy {
                Policy::Aiplus => terms.total_cny,
                Policy::Cheapest => terms.tariff_now_cny_per_kwh,
                // Nearest keeps the cluster order inside the hub; round-robin ranks by distance
                // from the cursor.
                Policy::Nearest => c as f64,
                Policy::RoundRobin => ((c + n - self.rr_cursor % n) % n) as f64,
            };
            candidates.push(Candidate { cluster: c, pool: p, rank, terms });
        }
        if !any_static {
            return Decision::Never(excluded);
        }
        candidates.sort_by(|a, b| a.rank.total_cmp(&b.rank).then(a.cluster.cmp(&b.cluster)));
        for i in 0..candidates.len() {
            let (c, first_pool) = (candidates[i].cluster, candidates[i].pool);
            if let Some(allocation) = self.try_cluster(job, c, first_pool) {
                if self.policy == Policy::RoundRobin {
                    self.rr_cursor = c + 1;
                }
                let mut rest = candidates.split_off(i);
                let mut chosen = rest.remove(0).terms;
                if allocation.pool as usize != first_pool {
                    chosen = self.score(job, c, allocation.pool as usize, now_s, queue_s);
                }
                let runners_up = rest.into_iter().take(3).map(|c| c.terms).collect();
                // Candidates tried before the chosen one had GPUs free but not enough CPU or memory.
                for skipped in candidates {
                    excluded.push(Exclusion { cluster: skipped.terms.cluster, reason: ExcludeReason::NoCapacityNow });
                }
                return Decision::Placed {
                    allocation,
                    explanation: Box::new(Explanation { policy: self.policy, chosen, runners_up, excluded }),
                };
            }
        }
        Decision::Wait
    }

    fn try_cluster(&mut self, job: &JobReq, c: ClusterIx, first_pool: usize) -> Option<Allocation> {
        let start = self.clusters[c].order.iter().position(|&p| p == first_pool).unwrap_or(0);
        for i in start..self.clusters[c].order.len() {
            let p = self.clusters[c].order[i];
            if !self.pool_matches(job, c, p) {
                continue;
            }
            if let Some(slot) = self.clusters[c].pools[p].try_place(job.gpus, job.gpu_milli, job.cpu_milli, job.memory_mib) {
                return Some(Allocation { cluster: c as u16, pool: p as u16, slot });
            }
        }
        None
    }

    /// The hub `nearest` keeps the job in: its origin, or the allowed hub closest to it.
    fn nearest_allowed_hub(&self, job: &JobReq) -> Option<HubIx> {
        let origin = job.origin_hub?;
        let origin_cluster = self.net.clusters.iter().position(|c| c.hub == origin);
        let mut best: Option<(f64, HubIx)> = None;
        for c in 0..self.net.clusters.len() {
            if self.static_exclusion(job, c).is_some() {
                continue;
            }
            let hub = self.net.clusters[c].hub;
            let d = if hub == origin { -1.0 } else { origin_cluster.map_or(0.0, |o| self.net.latency_ms(o, c)) };
            if best.is_none_or(|(bd, bh)| d < bd || (d == bd && hub < bh)) {
                best = Some((d, hub));
            }
        }
        best.map(|(_, h)| h)
    }

    /// Takes exactly the resources of an earlier placement of `job` (the server calls this on
    /// start-up and after a network change). False when the cluster, pool or node is gone or
    /// lacks room, or when the job's hard constraints no longer allow that pool.
    pub fn occupy(&mut self, job: &JobReq, a: Allocation) -> bool {
        let (c, p) = (a.cluster as usize, a.pool as usize);
        if c >= self.clusters.len() || p >= self.clusters[c].pools.len() {
            return false;
        }
        if self.static_exclusion(job, c).is_some() || !self.pool_matches(job, c, p) {
            return false;
        }
        self.clusters.get_mut(a.cluster as usize).and_then(|c| c.pools.get_mut(a.pool as usize)).is_some_and(|p| p.occupy(a.slot))
    }

    /// Marks a cluster's engine as answering or not; unhealthy clusters get no new placements.
    pub fn set_healthy(&mut self, c: ClusterIx, healthy: bool) {
        if c < self.net.clusters.len() {
            if healthy {
                self.unhealthy &= !(1 << c);
            } else {
                self.unhealthy |= 1 << c;
            }
        }
    }

    pub fn is_healthy(&self, c: ClusterIx) -> bool {
        self.unhealthy & (1 << c) == 0
    }

    /// What a run of `job` on pool `p` of cluster `c` from `start_s` for `duration_s` used and
    /// cost: the same power and price model the scheduler ranks by, applied to the real run.
    pub fn price_run(&self, job: &JobReq, c: ClusterIx, p: usize, start_s: f64, duration_s: f64) -> RunPrice {
        let cluster = &self.net.clusters[c];
        let kw = self.power_kw(job, c, p) * cluster.pue;
        let energy_kwh = kw * duration_s / 3600.0;
        RunPrice {
            gpu_seconds: job.gpu_fraction() * duration_s,
            energy_kwh,
            energy_cost_cny: kw * cluster.tariff.cost_per_kw(start_s, duration_s),
            carbon_kg: energy_kwh * cluster.effective_carbon_kg_per_kwh,
        }
    }

    /// Gives a placed job's resources back.
    pub fn release(&mut self, a: Allocation) {
        self.clusters[a.cluster as usize].pools[a.pool as usize].release(a.slot);
    }

    /// GPU thousandths used and in total, per cluster.
    pub fn gpu_usage(&self, c: ClusterIx) -> (u64, u64) {
        self.clusters[c].pools.iter().fold((0, 0), |(u, t), p| (u + p.used_gpu_milli, t + p.total_gpu_milli))
    }

    pub fn cpu_usage(&self, c: ClusterIx) -> (u64, u64) {
        self.clusters[c].pools.iter().fold((0, 0), |(u, t), p| (u + p.used_cpu_milli, t + p.total_cpu_milli))
    }

    pub fn pool_state(&self, c: ClusterIx, p: usize) -> &PoolState {
        &self.clusters[c].pools[p]
    }
}
