//! Networks and jobs the scheduler's tests share.

#![allow(dead_code, clippy::unwrap_used, reason = "test helpers; not every test file uses each")]

use compute::network::{GpuModelSpec, HubSpec, NetworkSpec, Side, TariffSpec};
use compute::{ClusterSpec, JobKind, JobSpec, LinkSpec, Network, NodePoolSpec};

pub fn tariff(flat: f64) -> TariffSpec {
    TariffSpec {
        flat_cny_per_kwh: flat,
        flat_source: "test".into(),
        peak_multiplier: 1.7,
        valley_multiplier: 0.4,
        sharp_multiplier: None,
        deep_multiplier: None,
        multiplier_source: "test".into(),
        hours: "VVVVVVVVFFPPFFFFPPPPFFFF".into(),
        hours_source: "test".into(),
    }
}

pub fn pool(name: &str, gpu: Option<&str>, gpn: u32, nodes: u32) -> NodePoolSpec {
    NodePoolSpec {
        name: name.into(),
        gpu_model: gpu.map(Into::into),
        gpus_per_node: gpn,
        cpu_milli: 64_000,
        memory_mib: 262_144,
        nodes,
        source: "ASSUMPTION: test".into(),
    }
}

pub fn cluster(id: &str, hub: &str, province: &str, flat: f64, carbon: f64, pools: Vec<NodePoolSpec>) -> ClusterSpec {
    ClusterSpec {
        id: id.into(),
        hub: hub.into(),
        name_zh: id.into(),
        name_en: id.into(),
        province: province.into(),
        lat: 30.0,
        lon: 110.0,
        pue: 1.2,
        pue_source: "test".into(),
        carbon_kg_per_kwh: carbon,
        carbon_source: "test".into(),
        green_share: 0.2,
        green_source: "test".into(),
        tariff: tariff(flat),
        node_pools: pools,
    }
}

pub fn hub(id: &str, side: Side) -> HubSpec {
    HubSpec {
        id: id.into(),
        name_zh: id.into(),
        name_en: id.into(),
        side,
        lat: 30.0,
        lon: 110.0,
        intra_latency_ms: 5.0,
        intra_bandwidth_gbps: 400.0,
        intra_source: "test".into(),
    }
}

/// Three hubs, four clusters, two GPU models; small pools so that capacity runs out.
pub fn small_network() -> Network {
    let gpu = |name: &str, w: f64| GpuModelSpec { name: name.into(), power_w: w, memory_gib: 16.0, source: "test".into() };
    let spec = NetworkSpec {
        schema: 1,
        gpu_models: vec![gpu("T4", 70.0), gpu("V100", 300.0)],
        hubs: vec![hub("east", Side::East), hub("west", Side::West), hub("south", Side::East)],
        clusters: vec![
            cluster("e1", "east", "Hebei", 0.7, 0.7, vec![pool("t4", Some("T4"), 2, 3), pool("cpu", None, 0, 2)]),
            cluster("e2", "east", "Hebei", 0.7, 0.6, vec![pool("v100", Some("V100"), 8, 2)]),
            cluster("w1", "west", "Gansu", 0.35, 0.5, vec![pool("v100", Some("V100"), 8, 2), pool("t4", Some("T4"), 4, 2)]),
            cluster("s1", "south", "Guangdong", 0.6, 0.4, vec![pool("t4", Some("T4"), 2, 2)]),
        ],
        links: vec![
            LinkSpec { a: "east".into(), b: "west".into(), latency_ms: 10.0, bandwidth_gbps: 100.0, source: "t".into() },
            LinkSpec { a: "east".into(), b: "south".into(), latency_ms: 12.0, bandwidth_gbps: 100.0, source: "t".into() },
            LinkSpec { a: "west".into(), b: "south".into(), latency_ms: 15.0, bandwidth_gbps: 50.0, source: "t".into() },
        ],
    };
    Network::build(spec).unwrap()
}

pub fn plain_job(gpus: u32, gpu_milli: u32, model: &str, cpu_milli: u32, memory_mib: u32, duration_s: u64) -> JobSpec {
    JobSpec {
        kind: JobKind::Training,
        gpus,
        gpu_milli,
        gpu_models: vec![model.into()],
        cpu_milli,
        memory_mib,
        duration_s,
        dataset: None,
        allowed_regions: vec![],
        origin_hub: None,
        priority: 0,
        command: vec!["true".into()],
        env: Default::default(),
        on_lost: Default::default(),
        max_attempts: 3,
        network: compute::NetworkAccess::None,
        time_limit_s: None,
        sealed: None,
        deadline_s: None,
        action_area: None,
    }
}
