//! Lower bounds on energy cost, carbon and the `aiplus` objective, for the gap to optimum.
//!
//! The bound relaxes two things every policy must respect: capacity (every job may use the
//! cluster that suits it best, however many others want it) and the start time (a job may start
//! at any moment after its arrival and its data's transfer, paying for the delay in the
//! objective). What remains separates per job, so the relaxed optimum is a sum of per-job minima
//! and is exact for the relaxation — the same value an LP over assignment variables with the
//! capacity rows dropped would reach, since that LP's optimum is integral.
//!
//! - energy cost: min over eligible clusters and start times of PUE × power × ∫ tariff;
//! - carbon: min over eligible clusters of energy × effective intensity (it does not depend on time);
//! - objective: min over clusters and start delays of energy cost + priced carbon + priced
//!   transfer and delay, with the delay term valued as in the `aiplus` policy (free within a
//!   deadline's slack).
//!
//! Every policy's totals are at or above these, so `policy / bound − 1` is an honest gap.

use compute::scheduler::JobReq;
use compute::{Network, Policy, Scheduler, Weights};
use serde::Serialize;

use crate::scenario::SimJob;

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct LowerBound {
    pub energy_cost_cny: f64,
    pub carbon_kg: f64,
    pub objective_cny: f64,
    /// Jobs no cluster could ever run; left out of the bound as they are left out of every policy.
    pub never: u64,
}

/// Most (cluster, run time) pairs whose cheapest start the bound keeps (about 40 MB).
const MAX_CACHED: usize = 1 << 20;

pub fn lower_bound(net: &std::sync::Arc<Network>, jobs: &[SimJob], compiled: &[JobReq], weights: Weights) -> LowerBound {
    let sched = Scheduler::new(net.clone(), Policy::Aiplus, weights);
    let mut lb = LowerBound::default();
    // With no charge for waiting, the cheapest start repeats every day, so it depends only on
    // the cluster and the run time: replays repeat run times (copies of one trace), so it is
    // worked out once per pair.
    let mut least_per_kw: std::collections::HashMap<(usize, u64), f64> = std::collections::HashMap::new();
    for (job, req) in jobs.iter().zip(compiled) {
        let delay_rate = sched.delay_cny_per_s(req);
        let mut best_cost = f64::INFINITY;
        let mut best_carbon = f64::INFINITY;
        let mut best_obj = f64::INFINITY;
        for (c, cluster) in net.clusters.iter().enumerate() {
            let Some(p) = sched.best_static_pool(req, c) else { continue };
            let kw = sched.power_kw(req, c, p) * cluster.pue;
            let transfer_s = req.dataset.map_or(0.0, |(from, gb)| net.transfer_s(from, c, gb));
            let ready = job.arrival_s + transfer_s;
            let key = (c, req.duration_s.to_bits());
            let per_kw = match least_per_kw.get(&key) {
                Some(v) => *v,
                None => {
                    let v = cluster.tariff.min_cost_per_kw_with_delay(0.0, req.duration_s, 1.0, 0.0, 0.0);
                    if least_per_kw.len() < MAX_CACHED {
                        least_per_kw.insert(key, v);
                    }
                    v
                }
            };
            let cost = kw * per_kw;
            let carbon = kw * req.duration_s / 3600.0 * cluster.effective_carbon_kg_per_kwh;
            // The deadline's slack is spent on the transfer first; what is left is free waiting.
            let free_s = (req.slack_s - transfer_s).max(0.0);
            let obj = cluster.tariff.min_cost_per_kw_with_delay(ready, req.duration_s, kw, delay_rate, free_s)
                + carbon * weights.carbon_cny_per_kg
                + sched.delay_cost_cny(req, transfer_s);
            best_cost = best_cost.min(cost);
            best_carbon = best_carbon.min(carbon);
            best_obj = best_obj.min(obj);
        }
        if best_obj.is_finite() {
            lb.energy_cost_cny += best_cost;
            lb.carbon_kg += best_carbon;
            lb.objective_cny += best_obj;
        } else {
            lb.never += 1;
        }
    }
    lb
}
