//! The scheduler's vocabulary: the policies, the prices that turn carbon and delay into yuan,
//! a job compiled against one network, and the decisions the scheduler returns with the terms
//! that explain them.

use serde::{Deserialize, Serialize};

use super::{Slot, shift};
use crate::job::JobSpec;
use crate::network::{ClusterIx, HubIx, Invalid, Network};

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
    /// Seconds the job may wait and still meet its deadline; waiting that long costs nothing.
    pub slack_s: f64,
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
            slack_s: spec.slack_s() as f64,
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
    /// The congestion price `aiplus` adds when ranking: captive work this job would hold up
    /// (see [`super::congestion`]). Not part of the objective.
    #[serde(default)]
    pub congestion_cny: f64,
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
    /// What the `nearest` baseline's choice would have cost: the first cluster with room in the
    /// hub nearest the job's origin, so the saving of this placement against it can be summed
    /// later. Absent for a job with no origin hub, or when that hub had no room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nearest: Option<ScoreTerms>,
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
    /// `aiplus` holds the job back for a pool that is full now but expected to free soon enough
    /// to be the better choice, although some cluster may have room: offer it again when
    /// capacity frees, and at the latest at `until_s` (see [`super::wait`]).
    HoldBack {
        until_s: f64,
    },
    /// The job has room now but a deadline far enough off that a later start is cheaper and
    /// greener: offer it again at `until_s` (see [`shift`]).
    Defer(Box<shift::Shift>),
    /// No cluster could ever run the job: the reasons, per cluster.
    Never(Vec<Exclusion>),
}
