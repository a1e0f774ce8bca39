//! A lower bound on the `aiplus` objective that respects capacity over time, so that the gap on a
//! busy network means something.
//!
//! The capacity-free bound in [`crate::bound`] lets every job run on the cluster that suits it
//! best at the moment that suits it best, however many others want the same GPUs; on a busy
//! network that is far from anything feasible, because waiting, which dominates the objective
//! once queues form, never appears in it. This bound keeps capacity, in time buckets:
//!
//! - time is cut into one-hour buckets from the first arrival to [`WINDOW_BUCKETS`] after the
//!   last; in each bucket, the work on a cluster's pools of one GPU model (or on its CPU-only
//!   pools) may not exceed their capacity × the bucket's length, in each of three resources:
//!   GPU thousandths (held by GPU jobs), and CPU thousandths and memory (held by every job);
//! - each job runs whole, on one pool, from one start time at or after its data has arrived,
//!   paying the objective's energy, carbon and delay terms (the same prices the simulator uses).
//!
//! What is relaxed: nodes and node shapes (a cluster's pools of one GPU model, or its CPU-only
//! pools, are one capacity, as if jobs could span nodes; a job may use it if one of those pools
//! could hold it), the half of a GPU node's cores kept from CPU-only work, and the order inside
//! a bucket. On the busy openb replays (20× arrivals, a tenth of the nodes) the CPU and memory
//! rows raised the bound by up to 4%; splitting the capacity per node shape as well moved it by
//! less than 0.5%, so shapes stay merged.
//!
//! The capacity rows are moved into the objective with one price per row and bucket
//! (Lagrangian relaxation). For any prices λ ≥ 0 the relaxed problem separates
//! into one small problem per job (its best pool and start, with λ charged for the capacity it
//! holds), and its optimum minus λ × capacity is below the cost of every feasible schedule, since
//! such a schedule pays at most λ × capacity for the capacity it uses. The prices are then raised
//! where capacity is oversubscribed (projected subgradient ascent with Polyak's step, aimed at
//! the best policy's objective); each iterate is a valid bound and the report keeps the best.
//! By LP duality the best prices reach at least the optimum of the time-indexed LP relaxation
//! (Geoffrion 1974: the Lagrangian dual equals the LP over the convex hull of each job's
//! schedules, which lies inside the plain LP relaxation's feasible set).
//!
//! Each job's problem is solved exactly, not approximately: within a bucket, its cost is
//! piecewise linear in the start time (tariffs change on the hour, the prices on bucket
//! boundaries, and buckets are whole hours), with a break only where the run's end crosses a
//! boundary and where a deadline's free slack ends, so the minimum is at the bucket's start, its
//! end or one of those breaks. Starts more than
//! [`WINDOW_BUCKETS`] after a job is ready are bounded below by the delay alone plus the least
//! energy cost of any start (prices ≥ 0), which keeps the problem small and the bound valid.

use compute::scheduler::{JobReq, Unit};
use compute::{Network, Policy, Scheduler, Weights};
use serde::Serialize;

use crate::scenario::SimJob;

/// One bucket: an hour, the tariffs' own step, so a bucket's start is a tariff break too.
pub const BUCKET_S: f64 = 3600.0;
/// Starts searched exactly after a job is ready; later ones are bounded by their delay.
pub const WINDOW_BUCKETS: usize = 24;
/// Most buckets a bound keeps prices for (a year and a month); later capacity is left free,
/// which only relaxes the bound.
pub const MAX_BUCKETS: usize = 24 * 400;

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct TimeIndexedBound {
    /// The best bound found on the `aiplus` objective, yuan.
    pub objective_cny: f64,
    /// Subgradient iterations run, and the one that gave the best bound.
    pub iterations: u32,
    pub best_iteration: u32,
    pub buckets: u32,
}

/// Capacity rows per class: GPU thousandths, CPU thousandths, memory MiB.
const ROWS: usize = 3;

/// One capacity a job could run on, with what does not depend on the start.
struct Option_ {
    cluster: usize,
    /// Index of the class's first capacity row (a cluster's pools of one GPU model, or its
    /// CPU-only pools).
    pool: usize,
    kw: f64,
    /// Share of each of the class's rows the run holds while it runs.
    shares: [f64; ROWS],
    ready_s: f64,
    /// Priced carbon and the least energy cost of any start, for starts past the window.
    carbon_cny: f64,
    min_energy_cny: f64,
    /// The least cost of any start with no capacity priced: a floor under every start's cost,
    /// since prices are never negative. Options are tried cheapest floor first, and one whose
    /// floor is above the best cost found cannot win, which keeps the search exact and short.
    floor_cny: f64,
}

/// A job's least cost at given prices, and the option (its index) and start that reach it, if any.
type Solved = (f64, Option<(usize, f64)>);

struct Prices {
    t0_s: f64,
    buckets: usize,
    /// Yuan per unit-second, per pool and bucket, and their running sums per pool.
    lambda: Vec<Vec<f64>>,
    prefix: Vec<Vec<f64>>,
}

impl Prices {
    /// ∫ λ from the horizon's start to `x`, per unit.
    fn integral(&self, q: usize, x: f64) -> f64 {
        let rel = x - self.t0_s;
        if rel <= 0.0 {
            return 0.0;
        }
        let k = (rel / BUCKET_S).floor() as usize;
        if k >= self.buckets {
            return self.prefix[q][self.buckets] * BUCKET_S;
        }
        self.prefix[q][k] * BUCKET_S + self.lambda[q][k] * (rel - k as f64 * BUCKET_S)
    }

    fn refresh(&mut self) {
        for (l, p) in self.lambda.iter().zip(&mut self.prefix) {
            let mut acc = 0.0;
            p[0] = 0.0;
            for (b, v) in l.iter().enumerate() {
                acc += v;
                p[b + 1] = acc;
            }
        }
    }
}

/// The bound after at most `iterations` price updates, aimed at `upper_cny` (the objective of a
/// feasible schedule, such as the best policy's). Jobs no pool can ever hold are left out, as in
/// every policy's totals.
pub fn time_indexed_bound(
    net: &std::sync::Arc<Network>,
    jobs: &[SimJob],
    compiled: &[JobReq],
    weights: Weights,
    upper_cny: f64,
    iterations: u32,
) -> TimeIndexedBound {
    let sched = Scheduler::new(net.clone(), Policy::Aiplus, weights);
    // One class per cluster and GPU model (None: the CPU-only pools), with three rows: its GPU
    // thousandths, its CPU thousandths and its memory. Every job holds CPU and memory; GPU jobs
    // hold GPU thousandths too. A row's use is counted as a share of the row's capacity, so the
    // rows weigh alike in the price updates, and each row holds `BUCKET_S` per bucket.
    let mut class_of: Vec<Vec<usize>> = Vec::with_capacity(net.clusters.len());
    let mut totals: Vec<f64> = Vec::new();
    for (c, cluster) in net.clusters.iter().enumerate() {
        let mut keys: Vec<Option<usize>> = Vec::new();
        let mut ixs = Vec::with_capacity(cluster.pools.len());
        for (p, pool) in cluster.pools.iter().enumerate() {
            let first = match keys.iter().position(|k| *k == pool.gpu) {
                Some(i) => totals.len() - ROWS * (keys.len() - i),
                None => {
                    keys.push(pool.gpu);
                    totals.extend([0.0; ROWS]);
                    totals.len() - ROWS
                }
            };
            totals[first] += sched.free_units(c, p, Unit::Gpu).1 as f64;
            totals[first + 1] += sched.free_units(c, p, Unit::Cpu).1 as f64;
            totals[first + 2] += f64::from(pool.nodes) * f64::from(pool.memory_mib);
            ixs.push(first);
        }
        class_of.push(ixs);
    }
    let caps: Vec<f64> = totals.iter().map(|t| if *t > 0.0 { BUCKET_S } else { 0.0 }).collect();
    let (Some(first), Some(last)) = (jobs.first(), jobs.last()) else { return TimeIndexedBound::default() };
    let t0_s = (first.arrival_s / BUCKET_S).floor() * BUCKET_S;
    let buckets = ((((last.arrival_s - t0_s) / BUCKET_S).ceil() as usize) + WINDOW_BUCKETS + 1).min(MAX_BUCKETS);
    let options: Vec<Vec<Option_>> =
        jobs.iter().zip(compiled).map(|(j, req)| job_options(&sched, net, &class_of, &totals, j, req)).collect();
    let threads = std::thread::available_parallelism().map_or(1, usize::from).min(16);
    let chunk = jobs.len().div_ceil(threads).max(1);
    let mut prices =
        Prices { t0_s, buckets, lambda: vec![vec![0.0; buckets]; caps.len()], prefix: vec![vec![0.0; buckets + 1]; caps.len()] };
    let mut best = TimeIndexedBound { objective_cny: f64::NEG_INFINITY, iterations: 0, best_iteration: 0, buckets: buckets as u32 };
    let mut theta = 1.0;
    let mut since_best = 0;
    for it in 0..iterations.clamp(1, crate::MAX_BOUND_ITERATIONS) {
        let mut usage = vec![vec![0.0; buckets]; caps.len()];
        let mut value = 0.0;
        // Jobs are solved in parallel and summed in job order, so the bound does not depend on
        // the number of threads.
        let solved: Vec<Option<Solved>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..jobs.len())
                .step_by(chunk)
                .map(|from| {
                    let to = (from + chunk).min(jobs.len());
                    let (prices, sched, options) = (&prices, &sched, &options);
                    scope.spawn(move || {
                        (from..to).map(|i| best_schedule(prices, sched, &jobs[i], &compiled[i], &options[i])).collect::<Vec<_>>()
                    })
                })
                .collect();
            // A solver thread cannot panic on finite inputs; if one did, its jobs would count
            // as zero, which only lowers the bound and keeps it valid.
            handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
        });
        for ((req, s), opts) in compiled.iter().zip(solved).zip(&options) {
            if let Some((v, choice)) = s {
                value += v;
                if let Some((o, start_s)) = choice {
                    let o = &opts[o];
                    for (r, share) in o.shares.iter().enumerate().filter(|(_, s)| **s > 0.0) {
                        add_usage(&mut usage[o.pool + r], t0_s, start_s, req.duration_s, *share);
                    }
                }
            }
        }
        let mut charged = 0.0;
        let mut norm = 0.0;
        for ((cap, lambda), used) in caps.iter().zip(&prices.lambda).zip(&mut usage) {
            for (l, u) in lambda.iter().zip(used.iter_mut()) {
                charged += l * cap;
                let g = *u - cap;
                // A price at zero with spare capacity cannot move: that direction is projected away.
                if *l > 0.0 || g > 0.0 {
                    norm += g * g;
                }
                *u = g;
            }
        }
        let bound = value - charged;
        best.iterations = it + 1;
        if bound > best.objective_cny {
            best.objective_cny = bound;
            best.best_iteration = it + 1;
            since_best = 0;
        } else {
            since_best += 1;
            if since_best >= 5 {
                theta /= 2.0;
                since_best = 0;
            }
        }
        if norm <= 0.0 || upper_cny <= bound {
            // Every capacity row holds at these prices: the relaxed optimum is feasible for them.
            break;
        }
        // Polyak's step aims at the optimum; the best policy's objective stands in for it, but on
        // a congested replay it can be orders of magnitude above the bound, and aiming that far
        // overshoots every price at once. So aim at most half again above the best bound so far.
        let target = upper_cny.min(1.5 * best.objective_cny.max(bound).max(1.0));
        let step = theta * (target - bound).max(0.0) / norm;
        for (l, g) in prices.lambda.iter_mut().zip(&usage) {
            for (v, gv) in l.iter_mut().zip(g) {
                *v = (*v + step * gv).max(0.0);
            }
        }
        prices.refresh();
    }
    best
}

fn job_options(sched: &Scheduler, net: &Network, class_of: &[Vec<usize>], totals: &[f64], job: &SimJob, req: &JobReq) -> Vec<Option_> {
    let gpu_units = if req.gpus == 0 { 0.0 } else { sched.units(req).1 as f64 };
    let share = |used: f64, total: f64| if total > 0.0 { used / total } else { 0.0 };
    let mut out: Vec<Option_> = Vec::new();
    for (c, cluster) in net.clusters.iter().enumerate() {
        if req.allowed & (1 << c) == 0 {
            continue;
        }
        let transfer_s = req.dataset.map_or(0.0, |(from, gb)| net.transfer_s(from, c, gb));
        for (p, &class) in class_of[c].iter().enumerate() {
            if !sched.pool_matches(req, c, p) || out.iter().any(|o| o.pool == class) {
                continue;
            }
            let kw = sched.power_kw(req, c, p) * cluster.pue;
            let carbon_kg = kw * req.duration_s / 3600.0 * cluster.effective_carbon_kg_per_kwh;
            let ready_s = job.arrival_s + transfer_s;
            let rate = sched.delay_cny_per_s(req);
            let carbon_cny = carbon_kg * sched.weights().carbon_cny_per_kg;
            let free_s = (req.slack_s - transfer_s).max(0.0);
            out.push(Option_ {
                floor_cny: cluster.tariff.min_cost_per_kw_with_delay(ready_s, req.duration_s, kw, rate, free_s)
                    + sched.delay_cost_cny(req, transfer_s)
                    + carbon_cny,
                cluster: c,
                pool: class,
                kw,
                shares: [
                    share(gpu_units, totals[class]),
                    share(f64::from(req.cpu_milli), totals[class + 1]),
                    share(f64::from(req.memory_mib), totals[class + 2]),
                ],
                ready_s,
                carbon_cny,
                min_energy_cny: cluster.tariff.min_cost_per_kw_with_delay(ready_s, req.duration_s, kw, 0.0, 0.0),
            });
        }
    }
    out.sort_by(|a, b| a.floor_cny.total_cmp(&b.floor_cny).then(a.pool.cmp(&b.pool)));
    out
}

/// A job's least cost at these prices, and the option and start that reach it (`None` when the
/// least is a start past the window, which holds no priced capacity).
fn best_schedule(prices: &Prices, sched: &Scheduler, job: &SimJob, req: &JobReq, opts: &[Option_]) -> Option<Solved> {
    let d = req.duration_s;
    let delay_cny = |s: f64| sched.delay_cost_cny(req, s - job.arrival_s);
    let mut best: Option<Solved> = None;
    let net = sched.network();
    for (i, o) in opts.iter().enumerate() {
        if best.is_some_and(|(b, _)| o.floor_cny >= b) {
            break;
        }
        let tariff = &net.clusters[o.cluster].tariff;
        let b0 = (((o.ready_s - prices.t0_s) / BUCKET_S).floor().max(0.0)) as usize;
        let b_end = (b0 + WINDOW_BUCKETS).min(prices.buckets);
        let cost = |s: f64| {
            let held: f64 =
                o.shares.iter().enumerate().map(|(r, sh)| sh * (prices.integral(o.pool + r, s + d) - prices.integral(o.pool + r, s))).sum();
            o.kw * tariff.cost_per_kw(s, d) + delay_cny(s) + held + o.carbon_cny
        };
        for b in b0..b_end {
            let hi = prices.t0_s + (b + 1) as f64 * BUCKET_S;
            let lo = (prices.t0_s + b as f64 * BUCKET_S).max(o.ready_s);
            if lo >= hi {
                continue;
            }
            // Later starts only wait longer: once the wait alone loses, stop.
            if best.is_some_and(|(v, _)| o.min_energy_cny + o.carbon_cny + delay_cny(lo) >= v) {
                break;
            }
            // Where the run's end crosses a bucket boundary, and where the deadline's free slack
            // ends: the only breaks inside the bucket.
            let k = ((lo + d - prices.t0_s) / BUCKET_S).ceil();
            let s_break = prices.t0_s + k * BUCKET_S - d;
            for s in [lo, s_break, job.arrival_s + req.slack_s, hi] {
                if s >= lo && s <= hi {
                    consider(&mut best, cost(s), Some((i, s)));
                }
            }
        }
        // Any later start: at least its delay and the least energy of any start.
        let tail_s = (prices.t0_s + b_end as f64 * BUCKET_S).max(o.ready_s);
        consider(&mut best, o.min_energy_cny + delay_cny(tail_s) + o.carbon_cny, None);
    }
    best
}

/// Keeps the cheaper of the best so far and `v`; the first found wins a tie.
fn consider(best: &mut Option<Solved>, v: f64, choice: Option<(usize, f64)>) {
    if best.is_none_or(|(b, _)| v < b) {
        *best = Some((v, choice));
    }
}

/// Adds the capacity a run from `start_s` for `duration_s` holds to each bucket it overlaps.
fn add_usage(usage: &mut [f64], t0_s: f64, start_s: f64, duration_s: f64, units: f64) {
    let end_s = start_s + duration_s;
    let first = (((start_s - t0_s) / BUCKET_S).floor().max(0.0)) as usize;
    for (b, u) in usage.iter_mut().enumerate().skip(first) {
        let lo = t0_s + b as f64 * BUCKET_S;
        if lo >= end_s {
            break;
        }
        let overlap = (lo + BUCKET_S).min(end_s) - lo.max(start_s);
        if overlap > 0.0 {
            *u += units * overlap;
        }
    }
}
