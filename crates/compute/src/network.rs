//! The compute network: hubs → clusters → node pools, the links between hubs, and GPU power.
//!
//! The `*Spec` types are the plain description used by the data file, the HTTP API and the
//! store. [`Network::build`] validates a set of specs and turns them into the indexed form the
//! scheduler reads. Validation errors carry a field path (`cluster[3].tariff.hours`) so the file
//! loader can point at a line and the API can name the field.

use serde::{Deserialize, Serialize};

use crate::tariff::Tariff;

/// GPU boards, with the power draw the energy model charges for them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuModelSpec {
    pub name: String,
    /// Board power (TDP) in watts, from the vendor's spec sheet.
    pub power_w: f64,
    pub memory_gib: f64,
    pub source: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The demand-side hubs of "East Data, West Computing".
    East,
    /// The resource-side hubs.
    West,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubSpec {
    pub id: String,
    pub name_zh: String,
    pub name_en: String,
    pub side: Side,
    pub lat: f64,
    pub lon: f64,
    /// One-way latency between two clusters of this hub.
    pub intra_latency_ms: f64,
    pub intra_bandwidth_gbps: f64,
    pub intra_source: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TariffSpec {
    pub flat_cny_per_kwh: f64,
    pub flat_source: String,
    pub peak_multiplier: f64,
    pub valley_multiplier: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharp_multiplier: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deep_multiplier: Option<f64>,
    pub multiplier_source: String,
    /// 24 letters, hour 00 first: V valley, F flat, P peak, S sharp, D deep valley.
    pub hours: String,
    pub hours_source: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodePoolSpec {
    pub name: String,
    /// `None` for CPU-only nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_model: Option<String>,
    pub gpus_per_node: u32,
    pub cpu_milli: u32,
    pub memory_mib: u32,
    pub nodes: u32,
    pub source: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    pub id: String,
    pub hub: String,
    pub name_zh: String,
    pub name_en: String,
    pub province: String,
    pub lat: f64,
    pub lon: f64,
    pub pue: f64,
    pub pue_source: String,
    pub carbon_kg_per_kwh: f64,
    pub carbon_source: String,
    /// Share of the cluster's electricity that is zero-carbon, 0..=1.
    pub green_share: f64,
    pub green_source: String,
    pub tariff: TariffSpec,
    #[serde(default, rename = "node_pool")]
    pub node_pools: Vec<NodePoolSpec>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    pub a: String,
    pub b: String,
    /// One-way latency.
    pub latency_ms: f64,
    pub bandwidth_gbps: f64,
    pub source: String,
}

/// Everything a network is made of, as written in the data file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    #[serde(default = "schema_version")]
    pub schema: u32,
    #[serde(default, rename = "gpu_model")]
    pub gpu_models: Vec<GpuModelSpec>,
    #[serde(default, rename = "hub")]
    pub hubs: Vec<HubSpec>,
    #[serde(default, rename = "cluster")]
    pub clusters: Vec<ClusterSpec>,
    #[serde(default, rename = "link")]
    pub links: Vec<LinkSpec>,
}

fn schema_version() -> u32 {
    1
}

/// A spec that breaks a rule: the field (a path such as `cluster[2].pue`) and the reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    pub field: String,
    pub reason: String,
}

impl Invalid {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { field: field.into(), reason: reason.into() }
    }
}

/// Index of a cluster in [`Network::clusters`].
pub type ClusterIx = usize;
/// Index of a hub in [`Network::hubs`].
pub type HubIx = usize;
/// Index of a GPU model in [`Network::gpu_models`].
pub type GpuIx = usize;

/// Most GPUs one node may hold; the packer keeps a node's GPUs in a 16-bit mask.
pub const MAX_GPUS_PER_NODE: u32 = 16;
/// Most hubs in a network (the link tables are hubs × hubs).
pub const MAX_HUBS: usize = 256;
/// Most node pools in one cluster.
pub const MAX_POOLS_PER_CLUSTER: usize = 64;
/// Most nodes in a whole network: the scheduler keeps a record per node, so a network file or
/// a cluster registration that asks for more is refused before anything is allocated.
pub const MAX_NODES: u64 = 1_000_000;

#[derive(Clone, Debug)]
pub struct NodePool {
    pub name: String,
    pub gpu: Option<GpuIx>,
    pub gpus_per_node: u32,
    pub cpu_milli: u32,
    pub memory_mib: u32,
    pub nodes: u32,
}

#[derive(Clone, Debug)]
pub struct Cluster {
    pub id: String,
    pub hub: HubIx,
    pub province: String,
    pub pue: f64,
    /// Grid intensity scaled by the non-green share: what one kWh drawn here emits.
    pub effective_carbon_kg_per_kwh: f64,
    pub tariff: Tariff,
    pub pools: Vec<NodePool>,
}

/// The validated, indexed network the scheduler and the simulator read.
#[derive(Clone, Debug)]
pub struct Network {
    pub spec: NetworkSpec,
    pub gpu_power_w: Vec<f64>,
    pub clusters: Vec<Cluster>,
    /// Hub-to-hub one-way latency in ms, row-major `hubs × hubs` (diagonal: intra-hub latency).
    latency_ms: Vec<f64>,
    bandwidth_gbps: Vec<f64>,
    hub_count: usize,
}

impl Network {
    /// Validates `spec` and indexes it. The first broken rule is returned, naming its field.
    pub fn build(spec: NetworkSpec) -> Result<Self, Invalid> {
        if spec.schema != 1 {
            return Err(Invalid::new("schema", format!("unsupported schema {}; this aiplus reads schema 1", spec.schema)));
        }
        let gpu_power_w = validate_gpu_models(&spec.gpu_models)?;
        // The scheduler keeps a job's allowed GPU models and clusters in bitmasks.
        if spec.gpu_models.len() > 64 {
            return Err(Invalid::new("gpu_model", "at most 64 GPU models"));
        }
        if spec.clusters.len() > crate::scheduler::MAX_CLUSTERS {
            return Err(Invalid::new("cluster", format!("at most {} clusters", crate::scheduler::MAX_CLUSTERS)));
        }
        if spec.hubs.len() > MAX_HUBS {
            return Err(Invalid::new("hub", format!("at most {MAX_HUBS} hubs, got {}", spec.hubs.len())));
        }
        check_sizes(&spec.clusters)?;
        validate_hubs(&spec.hubs)?;
        let hub_count = spec.hubs.len();
        let mut clusters = Vec::with_capacity(spec.clusters.len());
        for (i, c) in spec.clusters.iter().enumerate() {
            if spec.clusters[..i].iter().any(|o| o.id == c.id) {
                return Err(Invalid::new(format!("cluster[{i}].id"), format!("duplicate cluster id {:?}", c.id)));
            }
            clusters.push(build_cluster(&spec, i, c)?);
        }
        let (latency_ms, bandwidth_gbps) = build_links(&spec)?;
        Ok(Self { spec, gpu_power_w, clusters, latency_ms, bandwidth_gbps, hub_count })
    }

    /// Where cluster `c` is, for the residency rule (`vocab::Region::contains`).
    pub fn place(&self, c: usize) -> vocab::Place<'_> {
        let cluster = &self.clusters[c];
        vocab::Place { hub: &self.spec.hubs[cluster.hub].id, province: &cluster.province }
    }

    pub fn hub_ix(&self, id: &str) -> Option<HubIx> {
        self.spec.hubs.iter().position(|h| h.id == id)
    }

    pub fn cluster_ix(&self, id: &str) -> Option<ClusterIx> {
        self.clusters.iter().position(|c| c.id == id)
    }

    pub fn gpu_ix(&self, name: &str) -> Option<GpuIx> {
        self.spec.gpu_models.iter().position(|g| g.name == name)
    }

    pub fn hub_count(&self) -> usize {
        self.hub_count
    }

    /// One-way latency between the hubs of two clusters (0 for the same cluster).
    pub fn latency_ms(&self, from: ClusterIx, to: ClusterIx) -> f64 {
        if from == to {
            return 0.0;
        }
        self.latency_ms[self.clusters[from].hub * self.hub_count + self.clusters[to].hub]
    }

    /// Seconds to move `size_gb` gigabytes from one cluster to another (0 when they are the same).
    pub fn transfer_s(&self, from: ClusterIx, to: ClusterIx, size_gb: f64) -> f64 {
        if from == to || size_gb <= 0.0 {
            return 0.0;
        }
        let ix = self.clusters[from].hub * self.hub_count + self.clusters[to].hub;
        self.latency_ms[ix] / 1000.0 + size_gb * 8.0 / self.bandwidth_gbps[ix]
    }
}

/// Refuses a network whose clusters have too many pools or nodes, before anything is built.
fn check_sizes(clusters: &[ClusterSpec]) -> Result<(), Invalid> {
    let mut nodes: u64 = 0;
    for (i, c) in clusters.iter().enumerate() {
        if c.node_pools.len() > MAX_POOLS_PER_CLUSTER {
            return Err(Invalid::new(
                format!("cluster[{i}].node_pool"),
                format!("at most {MAX_POOLS_PER_CLUSTER} node pools per cluster, got {}", c.node_pools.len()),
            ));
        }
        nodes = c.node_pools.iter().fold(nodes, |n, p| n.saturating_add(u64::from(p.nodes)));
        if nodes > MAX_NODES {
            return Err(Invalid::new(format!("cluster[{i}].node_pool"), format!("the network would have more than {MAX_NODES} nodes")));
        }
    }
    Ok(())
}

fn finite_in(field: String, v: f64, lo: f64, hi: f64) -> Result<(), Invalid> {
    if !v.is_finite() || v < lo || v > hi {
        return Err(Invalid::new(field, format!("must be between {lo} and {hi}, got {v}")));
    }
    Ok(())
}

fn non_empty(field: String, v: &str) -> Result<(), Invalid> {
    if v.trim().is_empty() {
        return Err(Invalid::new(field, "must not be empty"));
    }
    Ok(())
}

/// Ids appear in URLs and residency rules, so they are restricted to a URL-safe alphabet.
pub fn validate_id(field: String, v: &str) -> Result<(), Invalid> {
    let ok = !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !ok {
        return Err(Invalid::new(field, format!("{v:?} is not an id: use 1-64 of a-z, 0-9, '-', '_'")));
    }
    Ok(())
}

fn validate_gpu_models(models: &[GpuModelSpec]) -> Result<Vec<f64>, Invalid> {
    let mut power = Vec::with_capacity(models.len());
    for (i, g) in models.iter().enumerate() {
        non_empty(format!("gpu_model[{i}].name"), &g.name)?;
        if models[..i].iter().any(|o| o.name == g.name) {
            return Err(Invalid::new(format!("gpu_model[{i}].name"), format!("duplicate GPU model {:?}", g.name)));
        }
        finite_in(format!("gpu_model[{i}].power_w"), g.power_w, 1.0, 5000.0)?;
        finite_in(format!("gpu_model[{i}].memory_gib"), g.memory_gib, 0.0, 4096.0)?;
        non_empty(format!("gpu_model[{i}].source"), &g.source)?;
        power.push(g.power_w);
    }
    Ok(power)
}

fn validate_hubs(hubs: &[HubSpec]) -> Result<(), Invalid> {
    if hubs.is_empty() {
        return Err(Invalid::new("hub", "a network needs at least one hub"));
    }
    for (i, h) in hubs.iter().enumerate() {
        validate_id(format!("hub[{i}].id"), &h.id)?;
        if hubs[..i].iter().any(|o| o.id == h.id) {
            return Err(Invalid::new(format!("hub[{i}].id"), format!("duplicate hub id {:?}", h.id)));
        }
        non_empty(format!("hub[{i}].name_en"), &h.name_en)?;
        non_empty(format!("hub[{i}].name_zh"), &h.name_zh)?;
        non_empty(format!("hub[{i}].intra_source"), &h.intra_source)?;
        finite_in(format!("hub[{i}].lat"), h.lat, -90.0, 90.0)?;
        finite_in(format!("hub[{i}].lon"), h.lon, -180.0, 180.0)?;
        finite_in(format!("hub[{i}].intra_latency_ms"), h.intra_latency_ms, 0.0, 1000.0)?;
        finite_in(format!("hub[{i}].intra_bandwidth_gbps"), h.intra_bandwidth_gbps, 0.001, 1.0e6)?;
    }
    Ok(())
}

fn build_cluster(spec: &NetworkSpec, i: usize, c: &ClusterSpec) -> Result<Cluster, Invalid> {
    let f = |name: &str| format!("cluster[{i}].{name}");
    validate_id(f("id"), &c.id)?;
    let hub = spec.hubs.iter().position(|h| h.id == c.hub).ok_or_else(|| Invalid::new(f("hub"), format!("no hub with id {:?}", c.hub)))?;
    non_empty(f("province"), &c.province)?;
    non_empty(f("name_zh"), &c.name_zh)?;
    non_empty(f("name_en"), &c.name_en)?;
    finite_in(f("lat"), c.lat, -90.0, 90.0)?;
    finite_in(f("lon"), c.lon, -180.0, 180.0)?;
    // PUE is total facility power over IT power, so it can never be below 1.
    finite_in(f("pue"), c.pue, 1.0, 3.0)?;
    non_empty(f("pue_source"), &c.pue_source)?;
    finite_in(f("carbon_kg_per_kwh"), c.carbon_kg_per_kwh, 0.0, 2.0)?;
    non_empty(f("carbon_source"), &c.carbon_source)?;
    finite_in(f("green_share"), c.green_share, 0.0, 1.0)?;
    non_empty(f("green_source"), &c.green_source)?;
    let tariff = Tariff::from_spec(&c.tariff).map_err(|e| Invalid::new(format!("cluster[{i}].tariff.{}", e.field), e.reason))?;
    let mut pools = Vec::with_capacity(c.node_pools.len());
    for (p, pool) in c.node_pools.iter().enumerate() {
        let pf = |name: &str| format!("cluster[{i}].node_pool[{p}].{name}");
        non_empty(pf("name"), &pool.name)?;
        non_empty(pf("source"), &pool.source)?;
        if c.node_pools[..p].iter().any(|o| o.name == pool.name) {
            return Err(Invalid::new(pf("name"), format!("duplicate pool name {:?}", pool.name)));
        }
        let gpu = match &pool.gpu_model {
            None => None,
            Some(name) => Some(
                spec.gpu_models
                    .iter()
                    .position(|g| &g.name == name)
                    .ok_or_else(|| Invalid::new(pf("gpu_model"), format!("no gpu_model named {name:?}")))?,
            ),
        };
        if gpu.is_some() != (pool.gpus_per_node > 0) {
            return Err(Invalid::new(pf("gpus_per_node"), "must be above 0 exactly when gpu_model is set"));
        }
        if pool.gpus_per_node > MAX_GPUS_PER_NODE {
            return Err(Invalid::new(pf("gpus_per_node"), format!("at most {MAX_GPUS_PER_NODE}")));
        }
        if pool.cpu_milli == 0 {
            return Err(Invalid::new(pf("cpu_milli"), "must be above 0"));
        }
        if pool.memory_mib == 0 {
            return Err(Invalid::new(pf("memory_mib"), "must be above 0"));
        }
        if pool.nodes > 1_000_000 {
            return Err(Invalid::new(pf("nodes"), "at most 1000000 nodes per pool"));
        }
        pools.push(NodePool {
            name: pool.name.clone(),
            gpu,
            gpus_per_node: pool.gpus_per_node,
            cpu_milli: pool.cpu_milli,
            memory_mib: pool.memory_mib,
            nodes: pool.nodes,
        });
    }
    Ok(Cluster {
        id: c.id.clone(),
        hub,
        province: c.province.clone(),
        pue: c.pue,
        effective_carbon_kg_per_kwh: c.carbon_kg_per_kwh * (1.0 - c.green_share),
        tariff,
        pools,
    })
}

fn build_links(spec: &NetworkSpec) -> Result<(Vec<f64>, Vec<f64>), Invalid> {
    let n = spec.hubs.len();
    let mut latency = vec![f64::NAN; n * n];
    let mut bandwidth = vec![f64::NAN; n * n];
    for (i, h) in spec.hubs.iter().enumerate() {
        latency[i * n + i] = h.intra_latency_ms;
        bandwidth[i * n + i] = h.intra_bandwidth_gbps;
    }
    for (i, l) in spec.links.iter().enumerate() {
        let find = |id: &str, field: &str| {
            spec.hubs
                .iter()
                .position(|h| h.id == id)
                .ok_or_else(|| Invalid::new(format!("link[{i}].{field}"), format!("no hub with id {id:?}")))
        };
        let a = find(&l.a, "a")?;
        let b = find(&l.b, "b")?;
        if a == b {
            return Err(Invalid::new(format!("link[{i}].b"), "a link joins two different hubs"));
        }
        finite_in(format!("link[{i}].latency_ms"), l.latency_ms, 0.0, 1000.0)?;
        non_empty(format!("link[{i}].source"), &l.source)?;
        finite_in(format!("link[{i}].bandwidth_gbps"), l.bandwidth_gbps, 0.001, 1.0e6)?;
        if !latency[a * n + b].is_nan() {
            return Err(Invalid::new(format!("link[{i}]"), format!("second link between {:?} and {:?}", l.a, l.b)));
        }
        for (x, y) in [(a, b), (b, a)] {
            latency[x * n + y] = l.latency_ms;
            bandwidth[x * n + y] = l.bandwidth_gbps;
        }
    }
    // Every pair must be joined: the scheduler prices data movement between any two clusters.
    for a in 0..n {
        for b in (a + 1)..n {
            if latency[a * n + b].is_nan() {
                return Err(Invalid::new("link", format!("no link between hubs {:?} and {:?}", spec.hubs[a].id, spec.hubs[b].id)));
            }
        }
    }
    Ok((latency, bandwidth))
}
