//! The discrete-event replay: arrivals and completions in time order, one policy at a time.
//!
//! Architecture invariant: the engine reads no clock and draws no random numbers; all of that
//! was decided when the scenario was built. Events at the same instant are ordered completions
//! first, then arrivals, then the return of time-shifted jobs, then samples, then by sequence
//! number, so a run is exactly repeatable.
//!
//! Queue discipline, the same for every policy so that only placement differs: waiting jobs are
//! ordered by priority, then arrival. Whenever capacity frees, the queue is offered again in that
//! order and any job that fits now starts (backfilling); no capacity is held back for the head.
//!
//! A job the scheduler defers ([`Decision::Defer`], deadline work shifted to a cheaper hour) is
//! offered again at the time it names, and decided afresh then.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use compute::scheduler::{Allocation, Decision, JobReq};
use compute::{Network, Policy, Scheduler, Weights};
use serde::Serialize;

use crate::scenario::SimJob;

/// Most queued jobs one completion looks at, so a long queue cannot make the replay quadratic.
/// Slurm's backfill scheduler has the same kind of window (`bf_max_job_test`, default 500).
const MAX_QUEUE_SCAN: usize = 500;

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct HubSeries {
    pub hub: String,
    /// Energy cost of the jobs started in each interval, yuan.
    pub energy_cost_cny: Vec<f64>,
    pub carbon_kg: Vec<f64>,
    /// Jobs from this hub waiting at the end of each interval.
    pub waiting: Vec<u32>,
    /// GPU utilisation of the hub's clusters at the end of each interval, 0..=1.
    pub utilisation: Vec<f64>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PolicyResult {
    pub name: String,
    pub placed: u64,
    pub energy_kwh: f64,
    pub energy_cost_cny: f64,
    pub carbon_kg: f64,
    /// The `aiplus` objective (energy + priced carbon + priced delay), whatever the policy.
    pub objective_cny: f64,
    /// Objective / the best lower bound − 1.
    pub objective_gap_to_bound: Option<f64>,
    /// Queueing wait, arrival to placement, less any time the job was deliberately shifted by.
    pub wait_s_p50: f64,
    pub wait_s_p95: f64,
    pub wait_s_mean: f64,
    /// Queueing wait plus the time to move the input data: arrival to the start of compute.
    pub start_delay_s_p95: f64,
    /// Time-averaged share of all GPUs in use while work arrives (first to last arrival): the
    /// long tail of a few months-long pods after the last arrival would otherwise dilute it.
    pub utilisation: f64,
    pub transfer_gb: f64,
    pub unplaced: u64,
    pub violations: u64,
    /// Jobs with a deadline that finished after it.
    pub deadline_misses: u64,
    /// Deadline work started later than it could have, in a cheaper or greener hour.
    pub shifted: ShiftTotals,
    pub sample_interval_s: f64,
    pub series: Vec<HubSeries>,
}

/// What time-shifting did in one replay: each shifted job is measured against the best start the
/// scheduler had for it when it first deferred it.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct ShiftTotals {
    pub jobs: u64,
    pub gpu_hours: f64,
    pub energy_cost_saved_cny: f64,
    pub carbon_saved_kg: f64,
    /// Hours between the first deferral and the start, summed over the shifted jobs.
    pub hours_shifted: f64,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Finish = 0,
    Arrive = 1,
    /// A deferred job comes back.
    Retry = 2,
    Sample = 3,
}

struct Deferred {
    first_s: f64,
    energy_cost_cny: f64,
    carbon_kg: f64,
    deferred_s: f64,
}

/// What offering a job did.
enum Outcome {
    Started,
    /// No room now; it waits in the queue.
    Waits,
    /// Shifted: an event brings it back at its time.
    Deferred,
}

/// A job shape that failed to start in this pass; a queued job it dominates cannot start either.
type FailedShape = (u8, u16, u64, u128, Option<usize>, u32, u32);

/// A queued job's key: higher priority first, then earlier arrival, then input order.
type QueueKey = (Reverse<i32>, i64, u32);

pub struct Progress {
    pub done: u64,
    pub total: u64,
}

pub fn run_policy(
    net: &std::sync::Arc<Network>,
    jobs: &[SimJob],
    compiled: &[JobReq],
    policy: Policy,
    weights: Weights,
    sample_interval_s: Option<f64>,
    progress: &mut dyn FnMut(Progress),
) -> PolicyResult {
    let mut sched = Scheduler::new(net.clone(), policy, weights);
    let hubs = net.hub_count();
    let ms = |t: f64| (t * 1000.0).round() as i64;
    let mut events: BinaryHeap<Reverse<(i64, Kind, u32)>> = BinaryHeap::with_capacity(jobs.len() * 2);
    // Arrivals round up to the millisecond so no job starts before it arrived: the lower bound
    // prices each job from its exact arrival.
    for (i, j) in jobs.iter().enumerate() {
        events.push(Reverse(((j.arrival_s * 1000.0).ceil() as i64, Kind::Arrive, i as u32)));
    }
    let start_s = jobs.first().map_or(0.0, |j| j.arrival_s);
    let end_arrivals_s = jobs.last().map_or(0.0, |j| j.arrival_s);
    // Without a given interval, 120 samples over the arrival window (at least a minute apart).
    let sample_interval_s = sample_interval_s.unwrap_or(((end_arrivals_s - start_s) / 120.0).max(60.0));
    events.push(Reverse((ms(start_s + sample_interval_s), Kind::Sample, 0)));

    let mut r = Acc::new(policy, hubs);
    let mut queue: BTreeMap<QueueKey, u32> = BTreeMap::new();
    let mut running: HashMap<u32, Allocation> = HashMap::new();
    let mut waiting_by_hub = vec![0u32; hubs];
    let total_gpu: u64 = (0..net.clusters.len()).map(|c| sched.gpu_usage(c).1).sum();
    let mut last_t = start_s;
    let mut gpu_time = 0.0;
    let mut done = 0u64;
    let mut bucket = 0usize;
    let origin_hub = |j: &JobReq| j.origin_hub.unwrap_or(0);

    while let Some(Reverse((t_ms, kind, ix))) = events.pop() {
        let now = t_ms as f64 / 1000.0;
        if last_t < end_arrivals_s {
            let used: u64 = (0..net.clusters.len()).map(|c| sched.gpu_usage(c).0).sum();
            gpu_time += used as f64 * (now.min(end_arrivals_s) - last_t);
        }
        last_t = now;
        match kind {
            Kind::Sample => {
                r.sample(&sched, net, &waiting_by_hub);
                bucket += 1;
                // Sample over the arrival window only, the same for every policy so their charts
                // share one time axis; the months-long tail of a few jobs would flatten them.
                if now < end_arrivals_s {
                    events.push(Reverse((ms(start_s + (bucket as f64 + 1.0) * sample_interval_s), Kind::Sample, 0)));
                }
                continue;
            }
            Kind::Finish => {
                if let Some(a) = running.remove(&ix) {
                    sched.release(a);
                }
                done += 1;
                if done.is_multiple_of(4096) {
                    progress(Progress { done, total: jobs.len() as u64 });
                }
                // Offer the queue again, best first, skipping shapes already known not to fit.
                let mut failed: Vec<FailedShape> = Vec::new();
                let keys: Vec<(QueueKey, u32)> = queue.iter().take(MAX_QUEUE_SCAN).map(|(k, v)| (*k, *v)).collect();
                for (key, j) in keys {
                    let job = &compiled[j as usize];
                    let dominated = failed.iter().any(|f| {
                        f.0 == job.gpus
                            && f.1 <= job.gpu_milli
                            && f.2 == job.gpu_models
                            && f.3 == job.allowed
                            && f.4 == job.origin_hub
                            && f.5 <= job.cpu_milli
                            && f.6 <= job.memory_mib
                    });
                    if dominated {
                        continue;
                    }
                    let waited = now - jobs[j as usize].arrival_s;
                    match r.try_start(&mut sched, net, jobs, job, j, now, Some(waited), &mut running, &mut events) {
                        Outcome::Started | Outcome::Deferred => {
                            queue.remove(&key);
                            waiting_by_hub[origin_hub(job)] -= 1;
                        }
                        Outcome::Waits => failed.push((
                            job.gpus,
                            job.gpu_milli,
                            job.gpu_models,
                            job.allowed,
                            job.origin_hub,
                            job.cpu_milli,
                            job.memory_mib,
                        )),
                    }
                }
            }
            Kind::Arrive | Kind::Retry => {
                let job = &compiled[ix as usize];
                if kind == Kind::Arrive && !sched.never_reasons(job).is_empty() {
                    r.res.unplaced += 1;
                    done += 1;
                    continue;
                }
                let waited = (kind == Kind::Retry).then(|| now - jobs[ix as usize].arrival_s);
                if let Outcome::Waits = r.try_start(&mut sched, net, jobs, job, ix, now, waited, &mut running, &mut events) {
                    let arrived_ms = (jobs[ix as usize].arrival_s * 1000.0).ceil() as i64;
                    queue.insert((Reverse(job.priority), arrived_ms, ix), ix);
                    waiting_by_hub[origin_hub(job)] += 1;
                }
            }
        }
    }
    progress(Progress { done: jobs.len() as u64, total: jobs.len() as u64 });
    // Whatever is still queued could never start: every job that could have run has finished.
    r.res.unplaced += queue.len() as u64;
    let span = end_arrivals_s - start_s;
    r.res.utilisation = if span > 0.0 && total_gpu > 0 { gpu_time / (total_gpu as f64 * span) } else { 0.0 };
    r.finish(sample_interval_s)
}

/// What a replay accumulates.
struct Acc {
    res: PolicyResult,
    waits: Vec<f32>,
    delays: Vec<f32>,
    /// Deferred jobs: when they were first deferred, the start-now terms that deferral was
    /// weighed against, and the seconds they have been deferred for in all.
    deferred: HashMap<u32, Deferred>,
}

impl Acc {
    fn new(policy: Policy, hubs: usize) -> Self {
        Self {
            res: PolicyResult {
                name: policy.name().to_string(),
                placed: 0,
                energy_kwh: 0.0,
                energy_cost_cny: 0.0,
                carbon_kg: 0.0,
                objective_cny: 0.0,
                objective_gap_to_bound: None,
                wait_s_p50: 0.0,
                wait_s_p95: 0.0,
                wait_s_mean: 0.0,
                start_delay_s_p95: 0.0,
                utilisation: 0.0,
                transfer_gb: 0.0,
                unplaced: 0,
                violations: 0,
                deadline_misses: 0,
                shifted: ShiftTotals::default(),
                sample_interval_s: 0.0,
                series: (0..hubs)
                    .map(|_| HubSeries {
                        hub: String::new(),
                        energy_cost_cny: vec![0.0],
                        carbon_kg: vec![0.0],
                        waiting: vec![],
                        utilisation: vec![],
                    })
                    .collect(),
            },
            waits: Vec::new(),
            delays: Vec::new(),
            deferred: HashMap::new(),
        }
    }

    #[expect(clippy::too_many_arguments, reason = "the replay loop's state, passed explicitly to keep Acc free of borrows")]
    fn try_start(
        &mut self,
        sched: &mut Scheduler,
        net: &Network,
        jobs: &[SimJob],
        job: &JobReq,
        ix: u32,
        now: f64,
        // `None` on arrival, the job's first offer.
        waited: Option<f64>,
        running: &mut HashMap<u32, Allocation>,
        events: &mut BinaryHeap<Reverse<(i64, Kind, u32)>>,
    ) -> Outcome {
        let decision = match waited {
            None => sched.arrive(job, now),
            Some(w) => sched.place(job, now, w),
        };
        let (allocation, explanation) = match decision {
            Decision::Placed { allocation, explanation } => (allocation, explanation),
            Decision::Defer(shift) => {
                let d = self.deferred.entry(ix).or_insert(Deferred {
                    first_s: now,
                    energy_cost_cny: shift.now.energy_cost_cny,
                    carbon_kg: shift.now.carbon_kg,
                    deferred_s: 0.0,
                });
                d.deferred_s += shift.until_s - now;
                events.push(Reverse(((shift.until_s * 1000.0).ceil() as i64, Kind::Retry, ix)));
                return Outcome::Deferred;
            }
            // A job held back waits in the queue like one with no room: the replay's runs end
            // exactly when declared, and each end offers the queue again.
            Decision::Wait | Decision::HoldBack { .. } | Decision::Never(_) => return Outcome::Waits,
        };
        let waited = waited.unwrap_or(0.0);
        let terms = &explanation.chosen;
        if let Some(deadline_s) = jobs[ix as usize].spec.deadline_s
            && waited + terms.transfer_s + job.duration_s > deadline_s as f64 + 1e-3
        {
            self.res.deadline_misses += 1;
        }
        // Time a job was deliberately shifted by is not queueing: the wait figures leave it out.
        let mut queued = waited;
        if let Some(d) = self.deferred.remove(&ix) {
            let s = &mut self.res.shifted;
            s.jobs += 1;
            s.gpu_hours += job.gpu_fraction() * job.duration_s / 3600.0;
            s.energy_cost_saved_cny += d.energy_cost_cny - terms.energy_cost_cny;
            s.carbon_saved_kg += d.carbon_kg - terms.carbon_kg;
            s.hours_shifted += (now - d.first_s) / 3600.0;
            // Events fall on whole milliseconds and arrivals are rounded up to one, so less
            // than a millisecond left over is that rounding, not queueing.
            queued = waited - d.deferred_s;
            if queued < 1e-3 {
                queued = 0.0;
            }
        }
        self.res.violations += count_violations(net, &jobs[ix as usize], allocation);
        self.res.placed += 1;
        self.res.energy_kwh += terms.energy_kwh;
        self.res.energy_cost_cny += terms.energy_cost_cny;
        self.res.carbon_kg += terms.carbon_kg;
        self.res.objective_cny += terms.total_cny;
        self.res.transfer_gb += terms.transfer_gb;
        self.waits.push(queued as f32);
        self.delays.push((queued + terms.transfer_s) as f32);
        let hub = net.clusters[allocation.cluster as usize].hub;
        let series = &mut self.res.series[hub];
        if let Some(cost) = series.energy_cost_cny.last_mut() {
            *cost += terms.energy_cost_cny;
        }
        if let Some(carbon) = series.carbon_kg.last_mut() {
            *carbon += terms.carbon_kg;
        }
        let end = now + terms.transfer_s + job.duration_s;
        events.push(Reverse(((end * 1000.0).round() as i64, Kind::Finish, ix)));
        running.insert(ix, allocation);
        Outcome::Started
    }

    fn sample(&mut self, sched: &Scheduler, net: &Network, waiting_by_hub: &[u32]) {
        for (h, s) in self.res.series.iter_mut().enumerate() {
            let (used, total) = net
                .clusters
                .iter()
                .enumerate()
                .filter(|(_, c)| c.hub == h)
                .map(|(i, _)| sched.gpu_usage(i))
                .fold((0, 0), |(u, t), (a, b)| (u + a, t + b));
            s.utilisation.push(if total > 0 { used as f64 / total as f64 } else { 0.0 });
            s.waiting.push(waiting_by_hub[h]);
            s.energy_cost_cny.push(0.0);
            s.carbon_kg.push(0.0);
            s.hub = net.spec.hubs[h].id.clone();
        }
    }

    fn finish(mut self, sample_interval_s: f64) -> PolicyResult {
        self.waits.sort_by(f32::total_cmp);
        self.delays.sort_by(f32::total_cmp);
        let pct = |v: &[f32], p: f64| if v.is_empty() { 0.0 } else { f64::from(v[((v.len() - 1) as f64 * p).round() as usize]) };
        self.res.wait_s_p50 = pct(&self.waits, 0.5);
        self.res.wait_s_p95 = pct(&self.waits, 0.95);
        self.res.start_delay_s_p95 = pct(&self.delays, 0.95);
        self.res.wait_s_mean =
            if self.waits.is_empty() { 0.0 } else { self.waits.iter().map(|&w| f64::from(w)).sum::<f64>() / self.waits.len() as f64 };
        self.res.sample_interval_s = sample_interval_s;
        // The last cost bucket opened after the final sample holds nothing by construction.
        for s in &mut self.res.series {
            s.energy_cost_cny.truncate(s.utilisation.len());
            s.carbon_kg.truncate(s.utilisation.len());
        }
        self.res
    }
}

/// Checks a placement against the job's hard constraints independently of the scheduler's own
/// bookkeeping: residency, GPU model and count. Capacity is checked by the pool invariants.
fn count_violations(net: &Network, job: &SimJob, a: Allocation) -> u64 {
    let c = &net.clusters[a.cluster as usize];
    let spec = &job.spec;
    let mut v = 0;
    if !vocab::allows(&spec.allowed_regions, Some(net.place(a.cluster as usize))) {
        v += 1;
    }
    let pool = &c.pools[a.pool as usize];
    match pool.gpu {
        Some(g) if !spec.gpu_models.is_empty() && !spec.gpu_models.contains(&net.spec.gpu_models[g].name) => v += 1,
        None if spec.gpus > 0 => v += 1,
        _ => {}
    }
    if a.slot.gpu_mask.count_ones() != spec.gpus {
        v += 1;
    }
    v
}
