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
//! delay cost   = (data transfer time + expected queueing delay − deadline slack)⁺ × value of the job's time
//! ```
//!
//! A job with a deadline is deferrable: waiting within its slack is free, and `aiplus` may
//! shift it to a cheaper, greener hour ([`shift`]).
//!
//! A cluster with room now has an expected queueing delay of zero. `aiplus` may hold a job
//! back for a pool that is full now when the wait is short and worth it ([`MAX_WAIT_FOR_S`],
//! [`MIN_WAIT_SAVING_CNY`]); otherwise a job that fits nowhere waits in the caller's queue and
//! is offered again when capacity frees.

pub mod congestion;
pub mod never;
mod pool;
pub mod shift;
mod types;
pub mod wait;

use std::sync::Arc;

use crate::network::{ClusterIx, HubIx, Network};

pub use congestion::Unit;
pub use pool::{PoolState, Slot};
pub use types::{Allocation, Decision, ExcludeReason, Exclusion, Explanation, JobReq, Policy, RunPrice, ScoreTerms, Weights};
pub use wait::{MAX_CAPTIVE_ARRIVALS_TO_WAIT, MAX_WAIT_FOR_S, MIN_WAIT_SAVING_CNY};

/// Whether a pool's GPU model suits a job: a GPU job needs one of its allowed models, and a
/// CPU-only job runs on any node's CPUs (a GPU node's spare cores included, as in the openb
/// trace, where CPU-only pods run on GPU nodes too).
fn model_fits(job: &JobReq, gpu: Option<usize>) -> bool {
    match gpu {
        None => job.gpus == 0,
        Some(g) => job.gpus == 0 || job.gpu_models & (1 << g) != 0,
    }
}

/// The cores of one node a job may ever have: all of them, except that CPU-only work on a GPU
/// node leaves half for the node's GPUs (see `PoolState::cpu_kept_for_gpus`), so a CPU-only job
/// asking for more could only start while the node's GPUs happen to be busy.
pub fn node_cpu_milli_for(job_gpus: u8, node_cpu_milli: u32, gpus_per_node: u32) -> u32 {
    if job_gpus == 0 && gpus_per_node > 0 { node_cpu_milli - node_cpu_milli / 2 } else { node_cpu_milli }
}

/// Most clusters a network may have: the scheduler keeps a job's eligible clusters in a bitmask.
pub const MAX_CLUSTERS: usize = 128;

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
    load: congestion::Load,
    captive_share: congestion::CaptiveShare,
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
        let load = congestion::Load::new(net.clusters.iter().map(|c| c.pools.len()));
        Self { net, policy, weights, clusters, rr_cursor: 0, unhealthy: 0, load, captive_share: Default::default() }
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
            if model_fits(job, pool.gpu) {
                model_ok = true;
                if self.clusters[c].pools[p].shape_fits(job.gpus, job.cpu_milli, job.memory_mib) {
                    return None;
                }
            }
        }
        Some(if model_ok { ExcludeReason::NodeShapeTooSmall } else { ExcludeReason::NoMatchingGpuModel })
    }

    /// Whether pool `p` of cluster `c` could ever hold the job (model and node shape).
    pub fn pool_matches(&self, job: &JobReq, c: ClusterIx, p: usize) -> bool {
        model_fits(job, self.net.clusters[c].pools[p].gpu) && self.clusters[c].pools[p].shape_fits(job.gpus, job.cpu_milli, job.memory_mib)
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

    /// What `delay_s` seconds between arrival and the start of compute cost the job: nothing
    /// within its deadline's slack, its value of time after that.
    pub fn delay_cost_cny(&self, job: &JobReq, delay_s: f64) -> f64 {
        (delay_s - job.slack_s).max(0.0) * self.delay_cny_per_s(job)
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
        let delay_cost_cny = self.delay_cost_cny(job, transfer_s + queue_s);
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
            congestion_cny: 0.0,
            tariff_now_cny_per_kwh: cluster.tariff.price_at(now_s as i64),
        }
    }

    /// A job's first offer, when it arrives: counts it towards its pools' captive demand if it
    /// has almost nowhere else to go (see [`congestion`]), then places it like [`Self::place`].
    pub fn arrive(&mut self, job: &JobReq, now_s: f64) -> Decision {
        let pools = self.eligible_pools(job);
        let captive = !pools.is_empty() && pools.len() <= congestion::MAX_CAPTIVE_POOLS;
        self.captive_share.note(now_s, captive);
        if captive {
            for &(c, p) in &pools {
                let (unit, units) = self.units(job);
                let value = self.delay_cny_per_s(job);
                self.load.pools[c][p][unit as usize].note_captive(now_s, units, pools.len(), value);
            }
        }
        self.place(job, now_s, 0.0)
    }

    /// Every (cluster, pool) that could ever hold the job, stopping once there are more than
    /// the captive limit.
    fn eligible_pools(&self, job: &JobReq) -> Vec<(ClusterIx, usize)> {
        let mut out = Vec::new();
        for c in 0..self.net.clusters.len() {
            if job.allowed & (1 << c) == 0 {
                continue;
            }
            for p in 0..self.clusters[c].pools.len() {
                if self.pool_matches(job, c, p) {
                    out.push((c, p));
                    if out.len() > congestion::MAX_CAPTIVE_POOLS {
                        return out;
                    }
                }
            }
        }
        out
    }

    /// What a job takes, in the unit it is counted in: GPU thousandths for a GPU job, CPU
    /// thousandths for a CPU-only one (wherever it runs).
    pub fn units(&self, job: &JobReq) -> (Unit, u64) {
        if job.gpus == 0 { (Unit::Cpu, u64::from(job.cpu_milli)) } else { (Unit::Gpu, u64::from(job.gpus) * u64::from(job.gpu_milli)) }
    }

    /// Free units of a pool and its total.
    pub fn free_units(&self, c: ClusterIx, p: usize, unit: Unit) -> (u64, u64) {
        let s = &self.clusters[c].pools[p];
        match unit {
            Unit::Gpu => (s.total_gpu_milli - s.used_gpu_milli, s.total_gpu_milli),
            Unit::Cpu => (s.total_cpu_milli - s.used_cpu_milli, s.total_cpu_milli),
        }
    }

    /// Yuan per unit-second of waiting: the value of a GPU's or a core's time, per thousandth.
    fn unit_delay_cny_per_s(&self, unit: Unit) -> f64 {
        let per_hour = match unit {
            Unit::Gpu => self.weights.delay_cny_per_gpu_hour,
            Unit::Cpu => self.weights.delay_cny_per_core_hour,
        };
        per_hour / 3600.0 / 1000.0
    }

    /// The congestion price of `job` on pool `p` of cluster `c` at `now_s` (see [`congestion`]):
    /// the fill price plus the waiting it would cause captive arrivals.
    fn congestion_cny(&self, job: &JobReq, c: ClusterIx, p: usize, now_s: f64) -> f64 {
        let (unit, units) = self.units(job);
        let (free, total) = self.free_units(c, p, unit);
        let hold_s = job.duration_s.min(congestion::HOLD_HORIZON_S);
        let fill = self.captive_share.share(now_s)
            * congestion::fill_weight(total - free + units, total)
            * units as f64
            * hold_s
            * self.unit_delay_cny_per_s(unit);
        fill + self.load.pools[c][p][unit as usize].blocking_cny(now_s, free.saturating_sub(units), hold_s)
    }

    /// Places `job` at `now_s` (it arrived `queue_s` seconds earlier), or says why it cannot.
    ///
    /// Under `aiplus`, a job may also be told to wait although some cluster has room, when a
    /// cluster that is full now is expected to free up soon enough to be the better choice.
    pub fn place(&mut self, job: &JobReq, now_s: f64, queue_s: f64) -> Decision {
        let n = self.net.clusters.len();
        let mut excluded = Vec::new();
        let mut candidates: Vec<Candidate> = Vec::with_capacity(n);
        let mut any_static = false;
        let mut best_wait = f64::INFINITY;
        let mut wait_for: Option<(ClusterIx, usize, f64)> = None;
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
            if self.policy == Policy::Aiplus {
                for (p, wait_s) in self.expected_waits(job, c, now_s, queue_s, pool) {
                    let v = self.score(job, c, p, now_s + wait_s, queue_s + wait_s).total_cny;
                    if v < best_wait {
                        best_wait = v;
                        wait_for = Some((c, p, wait_s));
                    }
                }
            }
            let Some(p) = pool else {
                excluded.push(Exclusion { cluster: self.net.clusters[c].id.clone(), reason: ExcludeReason::NoCapacityNow });
                continue;
            };
            let mut terms = self.score(job, c, p, now_s, queue_s);
            let rank = match self.policy {
                Policy::Aiplus => {
                    terms.congestion_cny = self.congestion_cny(job, c, p, now_s);
                    terms.total_cny + terms.congestion_cny
                }
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
        if self.policy == Policy::Aiplus
            && let Some(now) = candidates.first()
            && let Some(shift) = self.shift(job, now_s, queue_s, now.rank, &now.terms)
        {
            return Decision::Defer(Box::new(shift));
        }
        let nearest = self.nearest_choice(job, &candidates);
        let mut held_back = false;
        for i in 0..candidates.len() {
            if candidates[i].rank > best_wait + MIN_WAIT_SAVING_CNY {
                // Waiting for a cluster that frees up soon beats every cluster left with room.
                held_back = true;
                break;
            }
            let (c, first_pool) = (candidates[i].cluster, candidates[i].pool);
            if let Some(allocation) = self.try_cluster(job, c, first_pool) {
                if self.policy == Policy::RoundRobin {
                    self.rr_cursor = c + 1;
                }
                let mut rest = candidates.split_off(i);
                let mut chosen = rest.remove(0).terms;
                let p = allocation.pool as usize;
                if p != first_pool {
                    let congestion_cny = chosen.congestion_cny;
                    chosen = self.score(job, c, p, now_s, queue_s);
                    chosen.congestion_cny = congestion_cny;
                }
                let end_s = now_s + chosen.transfer_s + job.duration_s;
                self.load.start(c, p, allocation.slot, Some(end_s));
                let runners_up = rest.into_iter().take(3).map(|c| c.terms).collect();
                // Candidates tried before the chosen one had GPUs free but not enough CPU or memory.
                for skipped in candidates {
                    excluded.push(Exclusion { cluster: skipped.terms.cluster, reason: ExcludeReason::NoCapacityNow });
                }
                return Decision::Placed {
                    allocation,
                    explanation: Box::new(Explanation { policy: self.policy, chosen, runners_up, excluded, nearest }),
                };
            }
        }
        // A job that waits for want of room claims the pool it expects too: the jobs after it
        // wait behind it either way.
        if let Some((c, p, wait_s)) = wait_for {
            self.claim(job, c, p, now_s, queue_s, wait_s);
            if held_back {
                return Decision::HoldBack { until_s: now_s + wait_s };
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

    /// The terms of the cluster `nearest` would take among those with room: the first, in
    /// network order, of the hub it keeps the job in.
    fn nearest_choice(&self, job: &JobReq, candidates: &[Candidate]) -> Option<ScoreTerms> {
        let hub = self.nearest_allowed_hub(job)?;
        let c = candidates.iter().filter(|c| self.net.clusters[c.cluster].hub == hub).min_by_key(|c| c.cluster)?;
        Some(ScoreTerms { congestion_cny: 0.0, ..c.terms.clone() })
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
        let taken = self.clusters[c].pools[p].occupy(a.slot);
        if taken {
            // The run's end is not known here (it was placed before a restart or a network
            // change), so no estimate counts on it freeing capacity.
            self.load.start(c, p, a.slot, None);
        }
        taken
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
        let (c, p) = (a.cluster as usize, a.pool as usize);
        self.clusters[c].pools[p].release(a.slot);
        self.load.end(c, p, a.slot);
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
