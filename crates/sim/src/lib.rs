//! The trace-driven simulator: replays real cluster traces over the compute network under each
//! placement policy, with the same scheduler code the server runs, and reports against a lower
//! bound.
//!
//! Architecture invariant: a run is a pure function of (network, trace, options). The only
//! randomness is the seeded scenario draw; there is no clock. The same seed gives the same report,
//! byte for byte.

pub mod bound;
pub mod chart;
pub mod engine;
pub mod inference;
pub mod scenario;
pub mod synthetic;
pub mod time_indexed;
pub mod trace;

use compute::scheduler::JobReq;
use compute::{Invalid, Network, NetworkSpec, Policy, Weights};
use serde::Serialize;

pub use engine::{PolicyResult, Progress};

/// Price updates the time-indexed bound runs by default. On the busy openb replays (20×
/// arrivals, a tenth of the nodes, seeds 7919 and 1, and gpuspec33) the bound rose 0.1-0.2%
/// from 100 updates to 150 and at most 0.02% from 150 to 200.
pub const DEFAULT_BOUND_ITERATIONS: u32 = 150;
/// Most price updates a replay may ask of the time-indexed bound: each costs a pass over every
/// job, so this keeps a typo from running for hours.
pub const MAX_BOUND_ITERATIONS: u32 = 10_000;
pub use scenario::ScenarioOptions;

#[derive(Clone, Debug)]
pub struct SimOptions {
    pub scenario: ScenarioOptions,
    pub policies: Vec<Policy>,
    pub weights: Weights,
    /// Interval of the report's time series; `None` picks 1/120 of the arrival window.
    pub sample_interval_s: Option<f64>,
    /// Price updates of the time-indexed bound ([`time_indexed`]); 0 leaves it out.
    pub bound_iterations: u32,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Report {
    pub jobs: u64,
    pub nodes: u64,
    pub gpus: u64,
    pub seed: u64,
    pub weights: Weights,
    pub policies: Vec<PolicyResult>,
    pub lower_bound: bound::LowerBound,
    /// The bound that respects capacity over time; every gap below is measured against it.
    pub time_indexed_bound: Option<time_indexed::TimeIndexedBound>,
    /// Each policy against `nearest`, and `aiplus`'s gap to the bound.
    pub comparison: Comparison,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Comparison {
    pub aiplus_energy_cost_vs_nearest: Option<f64>,
    pub aiplus_carbon_vs_nearest: Option<f64>,
    /// 1 when neither policy queued anything at the 95th percentile; `null` when only `nearest`
    /// had no wait (the ratio is unbounded).
    pub aiplus_wait_p95_vs_nearest: Option<f64>,
    /// aiplus objective / the best lower bound − 1 (the time-indexed one when it was computed).
    pub aiplus_objective_gap_to_bound: Option<f64>,
    pub aiplus_energy_cost_gap_to_bound: Option<f64>,
    pub aiplus_carbon_gap_to_bound: Option<f64>,
}

/// Each variant's message carries its cause's text, so the cause is not also a `source`: error
/// reports that print the chain would otherwise say it twice.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("the scenario's network is invalid: {0}")]
    Network(Invalid),
    #[error("job {index}: {invalid}")]
    Job { index: usize, invalid: Invalid },
}

impl From<Invalid> for SimError {
    fn from(e: Invalid) -> Self {
        SimError::Network(e)
    }
}

/// Replays the scenario under every requested policy. `progress` is told how far each policy got.
pub fn simulate(
    base: &NetworkSpec,
    nodes: &[trace::TraceNode],
    pods: &[trace::TracePod],
    opts: &SimOptions,
    progress: &mut dyn FnMut(Policy, Progress),
) -> Result<Report, SimError> {
    // A pod list without times replays as the seeded arrival process of `time_untimed`.
    let drawn;
    let pods = if pods.iter().any(|p| !p.timed) {
        let mut all = pods.to_vec();
        synthetic::time_untimed(&mut all, opts.scenario.seed);
        drawn = all;
        &drawn[..]
    } else {
        pods
    };
    let sc = scenario::build(base, nodes, pods, opts.scenario);
    let net = std::sync::Arc::new(Network::build(sc.network)?);
    let mut compiled = Vec::with_capacity(sc.jobs.len());
    for (index, j) in sc.jobs.iter().enumerate() {
        let spec = j.spec.clone().normalise(&net).map_err(|invalid| SimError::Job { index, invalid })?;
        compiled.push(JobReq::compile(&spec, &net));
    }
    let mut policies = Vec::new();
    for &p in &opts.policies {
        policies.push(engine::run_policy(&net, &sc.jobs, &compiled, p, opts.weights, opts.sample_interval_s, &mut |pr| progress(p, pr)));
    }
    let lower_bound = bound::lower_bound(&net, &sc.jobs, &compiled, opts.weights);
    let time_indexed_bound = (opts.bound_iterations > 0).then(|| {
        let upper = policies.iter().map(|p| p.objective_cny).fold(f64::INFINITY, f64::min);
        let upper = if upper.is_finite() { upper } else { 2.0 * lower_bound.objective_cny };
        time_indexed::time_indexed_bound(&net, &sc.jobs, &compiled, opts.weights, upper, opts.bound_iterations)
    });
    let best_bound = time_indexed_bound.as_ref().map_or(lower_bound.objective_cny, |t| t.objective_cny.max(lower_bound.objective_cny));
    for p in &mut policies {
        p.objective_gap_to_bound = if best_bound > 0.0 { Some(p.objective_cny / best_bound - 1.0) } else { None };
    }
    let find = |n: &str| policies.iter().find(|p| p.name == n);
    let ratio = |a: f64, b: f64| if b > 0.0 { Some(a / b) } else { None };
    let comparison = match (find("aiplus"), find("nearest")) {
        (Some(a), nearest) => Comparison {
            aiplus_energy_cost_vs_nearest: nearest.and_then(|n| ratio(a.energy_cost_cny, n.energy_cost_cny)),
            aiplus_carbon_vs_nearest: nearest.and_then(|n| ratio(a.carbon_kg, n.carbon_kg)),
            aiplus_wait_p95_vs_nearest: nearest
                .and_then(|n| if a.wait_s_p95 == 0.0 && n.wait_s_p95 == 0.0 { Some(1.0) } else { ratio(a.wait_s_p95, n.wait_s_p95) }),
            aiplus_objective_gap_to_bound: ratio(a.objective_cny, best_bound).map(|r| r - 1.0),
            aiplus_energy_cost_gap_to_bound: ratio(a.energy_cost_cny, lower_bound.energy_cost_cny).map(|r| r - 1.0),
            aiplus_carbon_gap_to_bound: ratio(a.carbon_kg, lower_bound.carbon_kg).map(|r| r - 1.0),
        },
        _ => Comparison::default(),
    };
    let gpus = net.clusters.iter().flat_map(|c| &c.pools).map(|p| u64::from(p.nodes) * u64::from(p.gpus_per_node)).sum();
    let nodes_total = net.clusters.iter().flat_map(|c| &c.pools).map(|p| u64::from(p.nodes)).sum();
    Ok(Report {
        jobs: sc.jobs.len() as u64,
        nodes: nodes_total,
        gpus,
        seed: opts.scenario.seed,
        weights: opts.weights,
        policies,
        lower_bound,
        time_indexed_bound,
        comparison,
    })
}
