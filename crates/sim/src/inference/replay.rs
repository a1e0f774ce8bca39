//! One policy's replay: requests in arrival order, each sent to the replica that gives it the
//! lowest expected time to first token within its residency; replicas placed and released
//! through the real scheduler as the autoscaler asks.
//!
//! A replica serves like a continuous-batching engine, simplified so that a request's fate is
//! decided when it arrives (which keeps the replay one pass in time order):
//!
//! - a request holds one of the replica's `max_batch` sequence slots from the start of its
//!   prefill to its last token; prefills run one at a time, first come first served;
//! - its first token leaves when its prefill ends, and reaches the user one network hop later;
//! - its time between tokens is that of the batch it joins (the sequences holding slots then,
//!   itself included), kept for its whole decode: later arrivals do not slow it down.
//!
//! Time to first token = one-way latency to the replica's cluster + waiting (for the replica
//! to finish loading, for a slot, for the prefills ahead) + prefill + one-way latency back.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::Arc;

use compute::network::ClusterIx;
use compute::scheduler::{Allocation, Decision, JobReq};
use compute::{Network, Policy, Region, Scheduler, Weights};

use super::PolicyInference;
use super::autoscale::{self, AutoscaleOptions, Load, Plan, Scaler, Window};
use super::model::{self, ReplicaFigures, Slo};
use super::report::Acc;
use super::workload::{Request, Workload};

/// A time in seconds, totally ordered for the heaps.
#[derive(Clone, Copy, Debug, PartialEq)]
struct At(f64);

impl Eq for At {}

impl PartialOrd for At {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

impl Ord for At {
    fn cmp(&self, o: &Self) -> Ordering {
        self.0.total_cmp(&o.0)
    }
}

/// What every policy's replay shares.
pub(super) struct Setup<'a> {
    pub net: Arc<Network>,
    pub workload: &'a Workload,
    pub service_names: Vec<String>,
    pub slos: Vec<Slo>,
    /// The replica job of each pool ([`pool_of`]); `None` for pools without traffic.
    pub pools: Vec<Option<JobReq>>,
    /// Regions each pool's requests may be served in (empty: anywhere).
    pub pool_regions: Vec<Vec<Region>>,
    /// One-way latency from each hub to each cluster, ms (`hubs × clusters`).
    pub one_way_ms: Vec<f64>,
    /// Figures of a replica on each GPU model of the network, if it can serve the model.
    pub figures: Vec<Option<ReplicaFigures>>,
    pub autoscale: AutoscaleOptions,
    pub weights: Weights,
    /// Demand of each pool over the first window: the replicas it starts with.
    pub initial_demand: Vec<Load>,
    pub sample_interval_s: f64,
    pub samples: usize,
    /// Arrivals per second in each sample interval, the same for every policy.
    pub arrivals_per_s: Vec<f64>,
}

/// The pool of a request: its service, its origin hub and whether it must stay there.
pub(super) fn pool_of(hubs: usize, r: &Request) -> usize {
    (r.service * hubs + r.origin) * 2 + usize::from(r.pinned)
}

struct Replica {
    cluster: ClusterIx,
    allocation: Allocation,
    figures: ReplicaFigures,
    gpu_w: f64,
    created_s: f64,
    ready_s: f64,
    released: bool,
    prefill_free_s: f64,
    decode_ends: BinaryHeap<Reverse<At>>,
    last_end_s: f64,
    /// Busy time and its price (yuan per kW drawn): prefill, and decode (the union of decoding
    /// intervals, so overlapping sequences count once).
    prefill_s: f64,
    prefill_cny_per_kw: f64,
    decode_s: f64,
    decode_cny_per_kw: f64,
    decode_covered_s: f64,
}

impl Replica {
    /// Forgets sequences that ended by `t`.
    fn prune(&mut self, t: f64) {
        while self.decode_ends.peek().is_some_and(|Reverse(At(e))| *e <= t) {
            self.decode_ends.pop();
        }
    }

    /// When a prefill that reaches the replica at `arrive_s` would start.
    fn start_at(&self, arrive_s: f64) -> f64 {
        let mut s = arrive_s.max(self.prefill_free_s).max(self.ready_s);
        if self.decode_ends.len() >= self.figures.max_batch as usize
            && let Some(Reverse(At(e))) = self.decode_ends.peek()
        {
            s = s.max(*e);
        }
        s
    }
}

#[derive(Default)]
struct PoolRun {
    window: Window,
    scaler: Scaler,
    /// Replicas taking requests, oldest first.
    serving: Vec<usize>,
}

struct Replay<'a> {
    s: &'a Setup<'a>,
    sched: Scheduler,
    replicas: Vec<Replica>,
    pools: Vec<PoolRun>,
    /// Every replica taking requests, in creation order.
    serving: Vec<usize>,
    releases: BinaryHeap<Reverse<(At, usize)>>,
    allocated: u32,
    acc: Acc,
}

pub(super) fn run(s: &Setup<'_>, policy: Policy) -> PolicyInference {
    let mut r = Replay {
        s,
        sched: Scheduler::new(s.net.clone(), policy, s.weights),
        replicas: Vec::new(),
        pools: (0..s.pools.len()).map(|_| PoolRun::default()).collect(),
        serving: Vec::new(),
        releases: BinaryHeap::new(),
        allocated: 0,
        acc: Acc::new(s.slos.len(), s.net.clusters.len(), s.samples),
    };
    // Warm start: the service ran before the trace began, so each pool starts with the replicas
    // its first window of demand asks for, already loaded.
    for p in 0..s.pools.len() {
        if s.pools[p].is_some() {
            r.scale_up(p, 0.0, s.initial_demand[p], 0.0);
        }
    }
    let requests = &s.workload.requests;
    let last_arrival_s = requests.last().map_or(0.0, |q| q.at_s);
    let mut next_tick_s = s.autoscale.scale_interval_s;
    let mut sample = 0usize;
    for q in requests {
        while next_tick_s <= q.at_s {
            r.release_due(next_tick_s);
            r.tick(next_tick_s);
            next_tick_s += s.autoscale.scale_interval_s;
        }
        while sample < s.samples && (sample + 1) as f64 * s.sample_interval_s <= q.at_s {
            r.record_sample(sample);
            sample += 1;
        }
        r.release_due(q.at_s);
        r.route(q);
    }
    while sample < s.samples {
        r.record_sample(sample);
        sample += 1;
    }
    // The replay ends when the last request has its last token; every replica goes then.
    let end_s = r.replicas.iter().map(|x| x.last_end_s).fold(last_arrival_s, f64::max);
    r.release_due(end_s);
    for id in std::mem::take(&mut r.serving) {
        r.release(id, end_s);
    }
    r.acc.finish(policy.name(), s)
}

impl Replay<'_> {
    fn unix(&self, t: f64) -> f64 {
        self.s.workload.start_unix_s + t
    }

    /// Places one replica for pool `p` at `now_s`, serving from `ready_s`.
    fn place(&mut self, p: usize, now_s: f64, ready_s: f64) -> Option<usize> {
        let job = self.s.pools[p].as_ref()?;
        self.release_due(now_s);
        let Decision::Placed { allocation, .. } = self.sched.arrive(job, self.unix(now_s)) else {
            self.acc.placement_failures += 1;
            return None;
        };
        let cluster = allocation.cluster as usize;
        let gpu = self.s.net.clusters[cluster].pools[allocation.pool as usize].gpu;
        let Some((g, figures)) = gpu.and_then(|g| self.s.figures[g].map(|f| (g, f))) else {
            // The job lists only GPU models with figures, so this is a scheduler bug; count it
            // as a failed placement rather than serve on hardware the model cannot run on.
            self.sched.release(allocation);
            self.acc.placement_failures += 1;
            return None;
        };
        let id = self.replicas.len();
        self.replicas.push(Replica {
            cluster,
            allocation,
            figures,
            gpu_w: self.s.net.gpu_power_w[g],
            created_s: now_s,
            ready_s,
            released: false,
            prefill_free_s: now_s,
            decode_ends: BinaryHeap::new(),
            last_end_s: now_s,
            prefill_s: 0.0,
            prefill_cny_per_kw: 0.0,
            decode_s: 0.0,
            decode_cny_per_kw: 0.0,
            decode_covered_s: now_s,
        });
        self.pools[p].serving.push(id);
        self.serving.push(id);
        self.allocated += 1;
        self.acc.replicas_peak = self.acc.replicas_peak.max(self.allocated);
        Some(id)
    }

    fn capacities(&self, p: usize) -> Vec<Load> {
        self.pools[p]
            .serving
            .iter()
            .map(|&id| {
                let f = &self.replicas[id].figures;
                Load { prefill_tokens_per_s: f.prefill_tokens_per_s, decode_tokens_per_s: f.decode_tokens_per_s }
            })
            .collect()
    }

    /// Places replicas until the pool covers `demand` (and its minimum), or placement fails.
    fn scale_up(&mut self, p: usize, now_s: f64, demand: Load, ready_s: f64) {
        let opts = &self.s.autoscale;
        loop {
            let caps = self.capacities(p);
            let short =
                caps.len() < opts.min_replicas as usize || !autoscale::covers(autoscale::total(&caps), demand, opts.target_utilisation);
            if !short || caps.len() >= opts.max_replicas_per_pool as usize || self.place(p, now_s, ready_s).is_none() {
                return;
            }
        }
    }

    fn tick(&mut self, now_s: f64) {
        let opts = self.s.autoscale;
        for p in 0..self.pools.len() {
            if self.s.pools[p].is_none() {
                continue;
            }
            let demand = self.pools[p].window.demand(now_s, opts.demand_window_s);
            let caps = self.capacities(p);
            match self.pools[p].scaler.plan(now_s, demand, &caps, &opts) {
                Plan::Up => self.scale_up(p, now_s, demand, now_s + opts.cold_start_s),
                Plan::Down(n) => {
                    for _ in 0..n {
                        if let Some(id) = self.pools[p].serving.pop() {
                            self.drain(id, now_s);
                        }
                    }
                }
                Plan::Hold => {}
            }
        }
    }

    /// Stops sending requests to a replica; it is released once its last request is done.
    fn drain(&mut self, id: usize, now_s: f64) {
        self.serving.retain(|&x| x != id);
        let at = now_s.max(self.replicas[id].last_end_s);
        self.releases.push(Reverse((At(at), id)));
    }

    fn release_due(&mut self, t: f64) {
        while let Some(Reverse((At(at), id))) = self.releases.peek().copied() {
            if at > t {
                break;
            }
            self.releases.pop();
            self.release(id, at);
        }
    }

    /// Gives a replica's GPU back to the scheduler and books what it drew over its life.
    fn release(&mut self, id: usize, at_s: f64) {
        let x = &mut self.replicas[id];
        if x.released {
            return;
        }
        x.released = true;
        self.sched.release(x.allocation);
        self.allocated -= 1;
        let cluster = &self.s.net.clusters[x.cluster];
        let life_s = (at_s - x.created_s).max(0.0);
        let base_w = x.gpu_w * model::IDLE_POWER_SHARE + f64::from(model::REPLICA_CPU_MILLI) / 1000.0 * self.s.weights.cpu_w_per_core;
        let busy_w = x.gpu_w * (1.0 - model::IDLE_POWER_SHARE);
        let busy_s = x.prefill_s + model::DECODE_POWER_SHARE * x.decode_s;
        // Prefill and decode overlap in this model; a GPU never draws more than its board power.
        let scale = if busy_s > life_s && busy_s > 0.0 { life_s / busy_s } else { 1.0 };
        let energy_kwh = cluster.pue * (base_w * life_s + busy_w * busy_s * scale) / 3.6e6;
        let busy_cny_per_kw = x.prefill_cny_per_kw + model::DECODE_POWER_SHARE * x.decode_cny_per_kw;
        let base_cny_per_kw = cluster.tariff.cost_per_kw(self.s.workload.start_unix_s + x.created_s, life_s);
        self.acc.energy_kwh += energy_kwh;
        self.acc.energy_cost_cny += cluster.pue / 1000.0 * (base_w * base_cny_per_kw + busy_w * scale * busy_cny_per_kw);
        self.acc.carbon_kg += energy_kwh * cluster.effective_carbon_kg_per_kwh;
        self.acc.replica_s_by_cluster[x.cluster] += life_s;
    }

    fn record_sample(&mut self, k: usize) {
        let t = (k + 1) as f64 * self.s.sample_interval_s;
        self.release_due(t);
        let ready = self.serving.iter().filter(|&&id| self.replicas[id].ready_s <= t).count() as u32;
        self.acc.series_replicas[k] = self.allocated;
        self.acc.series_ready[k] = ready;
    }

    /// Sends a request to the replica with the lowest expected time to first token.
    fn route(&mut self, q: &Request) {
        let hubs = self.s.net.hub_count();
        let p = pool_of(hubs, q);
        self.pools[p].window.push(q.at_s, q.context_tokens, q.generated_tokens);
        let Some(allowed) = self.s.pools[p].as_ref().map(|j| j.allowed) else {
            self.acc.unserved += 1;
            return;
        };
        let clusters = self.s.net.clusters.len();
        let mut best: Option<(f64, usize)> = None;
        for i in 0..self.serving.len() {
            let id = self.serving[i];
            let c = self.replicas[id].cluster;
            if allowed & (1 << c) == 0 {
                continue;
            }
            let one_way_s = self.s.one_way_ms[q.origin * clusters + c] / 1000.0;
            let x = &mut self.replicas[id];
            x.prune(q.at_s);
            let ttft = x.start_at(q.at_s + one_way_s) + x.figures.prefill_s(q.context_tokens) + one_way_s - q.at_s;
            if best.is_none_or(|(b, _)| ttft < b) {
                best = Some((ttft, id));
            }
        }
        let id = match best {
            Some((_, id)) => id,
            // No replica may serve it: start one now, and the request waits for it to load.
            None => match self.place(p, q.at_s, q.at_s + self.s.autoscale.cold_start_s) {
                Some(id) => id,
                None => {
                    self.acc.unserved += 1;
                    return;
                }
            },
        };
        self.commit(id, q);
    }

    fn commit(&mut self, id: usize, q: &Request) {
        let clusters = self.s.net.clusters.len();
        let start_unix_s = self.s.workload.start_unix_s;
        let x = &mut self.replicas[id];
        let tariff = &self.s.net.clusters[x.cluster].tariff;
        let one_way_s = self.s.one_way_ms[q.origin * clusters + x.cluster] / 1000.0;
        let start = x.start_at(q.at_s + one_way_s);
        if x.decode_ends.len() >= x.figures.max_batch as usize {
            // The earliest sequence to end gives this request its slot.
            x.decode_ends.pop();
        }
        let prefill = x.figures.prefill_s(q.context_tokens);
        let first_token = start + prefill;
        x.prefill_s += prefill;
        x.prefill_cny_per_kw += tariff.cost_per_kw(start_unix_s + start, prefill);
        let batch = x.decode_ends.len() as u32 + 1;
        let tbt = x.figures.tbt_s(batch);
        let end = first_token + f64::from(q.generated_tokens - 1) * tbt;
        x.decode_ends.push(Reverse(At(end)));
        let from = first_token.max(x.decode_covered_s);
        if end > from {
            x.decode_s += end - from;
            x.decode_cny_per_kw += tariff.cost_per_kw(start_unix_s + from, end - from);
        }
        x.decode_covered_s = x.decode_covered_s.max(end);
        x.prefill_free_s = first_token;
        x.last_end_s = x.last_end_s.max(end);
        let ttft_ms = (first_token + one_way_s - q.at_s) * 1000.0;
        let tbt_ms = if q.generated_tokens > 1 { Some(tbt * 1000.0) } else { None };
        let cluster = x.cluster;
        let place = self.s.net.place(cluster);
        let within = vocab::allows(&self.s.pool_regions[pool_of(self.s.net.hub_count(), q)], Some(place));
        self.acc.served(q, &self.s.slos[q.service], ttft_ms, tbt_ms, within);
    }
}
