//! Online-inference services in the compute network: the Azure LLM inference trace 2023
//! replayed as autoscaled replicas that the real scheduler places, under each policy.
//!
//! Each trace file is one service (`code`, `conv`) with latency objectives on the time to
//! first token and the time between tokens ([`model::Slo`]). Each request comes from a hub and
//! may have to stay in it ([`workload`]). Requests of one service, origin hub and residency
//! form a pool; the autoscaler sizes each pool from its recent arrivals ([`autoscale`]) and
//! submits every new replica to [`compute::Scheduler`] as an `online_inference` job of one GPU
//! whose origin is the pool's hub and whose allowed regions are the pool's residency; a
//! replica's GPU is released when it scales down. A request goes to the replica that gives
//! it the lowest expected time to first token within its residency ([`replay`]). A replica
//! draws power from placement to release, more while it computes ([`model`]); energy is
//! priced by its cluster's time-of-use tariff and carbon intensity, times the cluster's PUE.
//!
//! **Clock.** The trace's timestamps are taken as UTC (ASSUMPTION: the dataset does not say,
//! and Azure logs in UTC). So the replay starts at 2023-11-16 18:15:46 UTC, which is
//! 2023-11-17 02:15:46 China Standard Time, the time of day the tariffs read: the valley hours
//! of most provinces. The report names the start in both.
//!
//! Architecture invariant, as for the rest of the simulator: a replay is a pure function of
//! (network, traces, options); the seed is the only randomness and there is no clock.

pub mod autoscale;
pub mod chart;
pub mod model;
mod replay;
mod report;
pub mod trace;
pub mod workload;

use std::sync::Arc;

use compute::network::NodePoolSpec;
use compute::scheduler::JobReq;
use compute::{Invalid, JobSpec, Network, NetworkSpec, Policy, Region, Weights};
use serde::Serialize;

pub use autoscale::AutoscaleOptions;
pub use model::{ReplicaFigures, Slo};
pub use report::{ClusterHours, PolicyInference, Series, ServiceResult};
pub use trace::{TraceError, TraceRequest};

/// Most copies of the traces one replay may ask for.
pub const MAX_COPIES: u32 = 100;
/// Most requests one replay may hold after copying (about 40 bytes each, per policy's samples).
pub const MAX_TOTAL_REQUESTS: usize = 5_000_000;
/// Most services (trace files) in one replay.
pub const MAX_SERVICES: usize = 16;
/// Most samples in the time series, so a long trace with a short interval stays small.
pub const MAX_SAMPLES: usize = 10_000;
/// ASSUMPTION: the period the scheduler prices a replica for (the objective's energy term),
/// since a replica's life is not known when it is placed.
pub const REPLICA_LEASE_S: u64 = 3600;

/// One service: its name, objectives and requests.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceTrace {
    pub name: String,
    pub slo: Slo,
    pub requests: Vec<TraceRequest>,
}

impl ServiceTrace {
    /// Reads a trace file as a service named after the file: the last `_`-separated part of its
    /// stem (`AzureLLMInferenceTrace_code.csv` is `code`), with that name's objectives.
    pub fn from_file(path: &std::path::Path) -> Result<Self, TraceError> {
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let name = stem.rsplit('_').next().unwrap_or(&stem).to_ascii_lowercase();
        let requests = trace::read_file(path)?;
        Ok(Self { slo: Slo::for_service(&name), name, requests })
    }
}

#[derive(Clone, Debug)]
pub struct InferenceOptions {
    pub seed: u64,
    pub policies: Vec<Policy>,
    pub weights: Weights,
    /// Gaps between arrivals are divided by this (1: as recorded).
    pub time_compression: f64,
    /// The traces are replayed this many times, each copy with its own draw.
    pub copies: u32,
    /// Nodes of every pool are multiplied by this (rounded; a pool may keep none).
    pub node_scale: f64,
    /// ASSUMPTION 0.2: share of requests that may only be served in their origin hub.
    pub pinned_share: f64,
    pub autoscale: AutoscaleOptions,
    /// Interval of the report's time series; `None` picks 1/60 of the replay's span (a minute
    /// for the hour-long trace as recorded), at least a second.
    pub sample_interval_s: Option<f64>,
}

impl Default for InferenceOptions {
    fn default() -> Self {
        Self {
            seed: 1,
            policies: Policy::ALL.to_vec(),
            weights: Weights::default(),
            time_compression: 1.0,
            copies: 1,
            node_scale: 1.0,
            pinned_share: 0.2,
            autoscale: AutoscaleOptions::default(),
            sample_interval_s: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    #[error("{field}: {reason}")]
    Option { field: String, reason: String },
    #[error("the network is invalid: {0}")]
    Network(#[from] Invalid),
    #[error("no GPU model of the network can serve the model (it needs one of {0})")]
    NoServingGpu(String),
    #[error("the replica job of service {service:?} from hub {hub:?} is invalid: {reason}")]
    Replica { service: String, hub: String, reason: String },
}

fn option(field: &str, reason: String) -> InferenceError {
    InferenceError::Option { field: field.into(), reason }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ServiceInfo {
    pub name: String,
    /// Requests of the service in the trace (before copies).
    pub requests: u64,
    pub slo: Slo,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct InferenceReport {
    pub seed: u64,
    pub time_compression: f64,
    pub copies: u32,
    pub node_scale: f64,
    pub pinned_share: f64,
    /// Requests replayed (every service, every copy).
    pub requests: u64,
    pub trace_start_unix_s: f64,
    /// The replay's start as the tariffs see it.
    pub trace_start_cst: String,
    pub services: Vec<ServiceInfo>,
    /// A replica's figures on each GPU model of the network that can serve the model.
    pub replica_figures: Vec<ReplicaFigures>,
    pub autoscale: AutoscaleOptions,
    pub policies: Vec<PolicyInference>,
    pub comparison: InferenceComparison,
}

/// `aiplus` against `nearest`; `None` when either is missing or the base is 0.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct InferenceComparison {
    pub aiplus_carbon_per_1k_tokens_vs_nearest: Option<f64>,
    pub aiplus_energy_cost_per_1k_tokens_vs_nearest: Option<f64>,
    pub aiplus_energy_per_1k_tokens_vs_nearest: Option<f64>,
    pub aiplus_ttft_p99_vs_nearest: Option<f64>,
    /// aiplus's SLO attainment minus nearest's.
    pub aiplus_slo_attainment_minus_nearest: Option<f64>,
}

impl InferenceOptions {
    fn validate(&self) -> Result<(), InferenceError> {
        let range = |field: &str, v: f64, lo: f64, hi: f64| {
            if v.is_finite() && (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(option(field, format!("must be between {lo} and {hi}, got {v}")))
            }
        };
        range("time_compression", self.time_compression, 0.01, 10_000.0)?;
        range("node_scale", self.node_scale, 0.001, 100.0)?;
        range("pinned_share", self.pinned_share, 0.0, 1.0)?;
        if let Some(v) = self.sample_interval_s {
            range("sample_interval_s", v, 1.0, 86_400.0)?;
        }
        if !(1..=MAX_COPIES).contains(&self.copies) {
            return Err(option("copies", format!("must be 1..={MAX_COPIES}, got {}", self.copies)));
        }
        if self.policies.is_empty() {
            return Err(option("policies", "name at least one policy".into()));
        }
        self.weights.validate().map_err(|e| option(&format!("weights.{}", e.field), e.reason))?;
        self.autoscale.validate().map_err(|(f, reason)| option(&format!("autoscale.{f}"), reason))
    }
}

/// Replays the services under every requested policy.
pub fn simulate(base: &NetworkSpec, services: &[ServiceTrace], opts: &InferenceOptions) -> Result<InferenceReport, InferenceError> {
    opts.validate()?;
    if services.is_empty() || services.len() > MAX_SERVICES {
        return Err(option("services", format!("give 1..={MAX_SERVICES} traces, got {}", services.len())));
    }
    let count: usize = services.iter().map(|s| s.requests.len()).sum();
    if count == 0 {
        return Err(option("services", "the traces hold no requests".into()));
    }
    if count.saturating_mul(opts.copies as usize) > MAX_TOTAL_REQUESTS {
        return Err(option("copies", format!("{count} requests × {} copies is more than {MAX_TOTAL_REQUESTS}", opts.copies)));
    }
    let mut spec = base.clone();
    for pool in spec.clusters.iter_mut().flat_map(|c| c.node_pools.iter_mut()) {
        scale_pool(pool, opts.node_scale);
    }
    let net = Arc::new(Network::build(spec)?);
    let figures: Vec<Option<ReplicaFigures>> = net.spec.gpu_models.iter().map(|g| ReplicaFigures::for_gpu(&g.name)).collect();
    let serving_gpus: Vec<String> =
        net.spec.gpu_models.iter().zip(&figures).filter(|(_, f)| f.is_some()).map(|(g, _)| g.name.clone()).collect();
    if serving_gpus.is_empty() {
        let names: Vec<&str> = model::DATASHEETS.iter().map(|d| d.gpu).collect();
        return Err(InferenceError::NoServingGpu(names.join(", ")));
    }
    let workload = workload::draw(&net, services, opts.seed, opts.time_compression, opts.copies, opts.pinned_share);
    let hubs = net.hub_count();
    let mut has_traffic = vec![false; services.len() * hubs * 2];
    for q in &workload.requests {
        has_traffic[replay::pool_of(hubs, q)] = true;
    }
    let mut pools = Vec::with_capacity(has_traffic.len());
    let mut pool_regions = Vec::with_capacity(has_traffic.len());
    for (p, traffic) in has_traffic.iter().enumerate() {
        let (service, hub, pinned) = (p / 2 / hubs, p / 2 % hubs, p % 2 == 1);
        let hub_id = net.spec.hubs[hub].id.clone();
        let regions = if pinned { vec![Region::Hub(hub_id.clone())] } else { Vec::new() };
        pools.push(if *traffic { Some(replica_job(&net, &serving_gpus, &services[service].name, &hub_id, &regions)?) } else { None });
        pool_regions.push(regions);
    }
    let a = &opts.autoscale;
    let mut initial_demand = vec![autoscale::Load::default(); pools.len()];
    for q in workload.requests.iter().take_while(|q| q.at_s < a.demand_window_s) {
        let d = &mut initial_demand[replay::pool_of(hubs, q)];
        d.prefill_tokens_per_s += f64::from(q.context_tokens) / a.demand_window_s;
        d.decode_tokens_per_s += f64::from(q.generated_tokens) / a.demand_window_s;
    }
    let last_s = workload.requests.last().map_or(0.0, |q| q.at_s);
    let interval_s = opts.sample_interval_s.unwrap_or(last_s / 60.0).max(1.0);
    let samples = ((last_s / interval_s).ceil() as usize).clamp(1, MAX_SAMPLES);
    // A long replay with a short interval keeps MAX_SAMPLES samples over its whole span.
    let interval_s = interval_s.max(last_s / samples as f64);
    let mut arrivals_per_s = vec![0.0; samples];
    for q in &workload.requests {
        let k = ((q.at_s / interval_s) as usize).min(samples - 1);
        arrivals_per_s[k] += 1.0 / interval_s;
    }
    let setup = replay::Setup {
        net: net.clone(),
        workload: &workload,
        service_names: services.iter().map(|s| s.name.clone()).collect(),
        slos: services.iter().map(|s| s.slo).collect(),
        pools,
        pool_regions,
        one_way_ms: one_way_ms(&net),
        figures: figures.clone(),
        autoscale: opts.autoscale,
        weights: opts.weights,
        initial_demand,
        sample_interval_s: interval_s,
        samples,
        arrivals_per_s,
    };
    let policies: Vec<PolicyInference> = opts.policies.iter().map(|&p| replay::run(&setup, p)).collect();
    let comparison = compare(&policies);
    Ok(InferenceReport {
        seed: opts.seed,
        time_compression: opts.time_compression,
        copies: opts.copies,
        node_scale: opts.node_scale,
        pinned_share: opts.pinned_share,
        requests: workload.requests.len() as u64,
        trace_start_unix_s: workload.start_unix_s,
        trace_start_cst: trace::format_cst(workload.start_unix_s),
        services: services.iter().map(|s| ServiceInfo { name: s.name.clone(), requests: s.requests.len() as u64, slo: s.slo }).collect(),
        replica_figures: figures.into_iter().flatten().collect(),
        autoscale: opts.autoscale,
        policies,
        comparison,
    })
}

/// Scales a node pool's size, rounding to whole nodes (a small scale may leave a pool empty).
fn scale_pool(pool: &mut NodePoolSpec, scale: f64) {
    pool.nodes = (f64::from(pool.nodes) * scale).round().min(f64::from(u32::MAX)) as u32;
}

/// The job a replica of `service` for demand from `hub` is submitted as.
fn replica_job(net: &Network, gpus: &[String], service: &str, hub: &str, regions: &[Region]) -> Result<JobReq, InferenceError> {
    let bad = |reason: String| InferenceError::Replica { service: service.into(), hub: hub.into(), reason };
    // Built from its serialised form, so fields added to `JobSpec` later keep their defaults.
    let spec: JobSpec = serde_json::from_value(serde_json::json!({
        "kind": "online_inference",
        "gpus": 1,
        "gpu_milli": 1000,
        "gpu_models": gpus,
        "cpu_milli": model::REPLICA_CPU_MILLI,
        "memory_mib": model::REPLICA_MEMORY_MIB,
        "duration_s": REPLICA_LEASE_S,
        "allowed_regions": regions,
        "origin_hub": hub,
        // Online work outranks batch work, as in the batch scenario.
        "priority": 10,
        "max_attempts": 1,
    }))
    .map_err(|e| bad(e.to_string()))?;
    let spec = spec.normalise(net).map_err(|e| bad(e.to_string()))?;
    Ok(JobReq::compile(&spec, net))
}

fn compare(policies: &[PolicyInference]) -> InferenceComparison {
    let find = |n: &str| policies.iter().find(|p| p.name == n);
    let (Some(a), Some(n)) = (find("aiplus"), find("nearest")) else { return InferenceComparison::default() };
    let ratio = |x: f64, y: f64| if y > 0.0 { Some(x / y) } else { None };
    InferenceComparison {
        aiplus_carbon_per_1k_tokens_vs_nearest: ratio(a.carbon_g_per_1k_tokens, n.carbon_g_per_1k_tokens),
        aiplus_energy_cost_per_1k_tokens_vs_nearest: ratio(a.energy_cost_cny_per_1k_tokens, n.energy_cost_cny_per_1k_tokens),
        aiplus_energy_per_1k_tokens_vs_nearest: ratio(a.energy_wh_per_1k_tokens, n.energy_wh_per_1k_tokens),
        aiplus_ttft_p99_vs_nearest: ratio(a.ttft_ms_p99, n.ttft_ms_p99),
        aiplus_slo_attainment_minus_nearest: Some(a.slo_attainment - n.slo_attainment),
    }
}

/// One-way latency from each hub to each cluster, ms: the network's hub-to-hub latency, and the
/// hub's own latency to a cluster inside it (the user is somewhere in the hub's region).
fn one_way_ms(net: &Network) -> Vec<f64> {
    let hubs = net.hub_count();
    let clusters = net.clusters.len();
    let mut out = vec![0.0; hubs * clusters];
    for h in 0..hubs {
        let here = net.clusters.iter().position(|c| c.hub == h);
        for c in 0..clusters {
            let to = net.clusters[c].hub;
            out[h * clusters + c] = match here {
                _ if to == h => net.spec.hubs[h].intra_latency_ms,
                Some(rep) => net.latency_ms(rep, c),
                // A hub without clusters: its link to the cluster's hub, as the network file gives it.
                None => link_ms(net, h, to),
            };
        }
    }
    out
}

fn link_ms(net: &Network, a: usize, b: usize) -> f64 {
    let (ia, ib) = (&net.spec.hubs[a].id, &net.spec.hubs[b].id);
    net.spec.links.iter().find(|l| (&l.a == ia && &l.b == ib) || (&l.a == ib && &l.b == ia)).map_or(0.0, |l| l.latency_ms)
}
