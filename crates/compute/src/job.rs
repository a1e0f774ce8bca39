//! The job model: what a tenant asks the network to run.
//!
//! GPU requests follow the Alibaba openb trace: `gpus` whole GPUs on one node, or, when
//! `gpus == 1`, a share of one GPU in thousandths (`gpu_milli < 1000`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::network::{Invalid, Network, validate_id};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Training,
    BatchInference,
    /// A long-running inference service; `duration_s` is the period it is placed for.
    OnlineInference,
}

/// A place a tenant's data and work may touch: a province (`province:Hebei`) or a hub
/// (`hub:gansu`), with the platform's one matching rule.
pub use vocab::Region;

/// What happens to a job whose engine lost it (a node died, the engine forgot it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LostPolicy {
    /// Queue it again as a new attempt, up to `max_attempts`.
    #[default]
    Requeue,
    /// Leave it lost.
    Fail,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetRef {
    /// Cluster id where the input data lives.
    pub cluster: String,
    pub size_gb: f64,
}

/// Upper limits on one request, so that a typo cannot ask for the whole country.
pub const MAX_GPUS: u32 = 16;
pub const MAX_CPU_MILLI: u32 = 1_024_000;
pub const MAX_MEMORY_MIB: u32 = 16 * 1024 * 1024;
pub const MAX_DURATION_S: u64 = 366 * 86_400;
pub const MAX_DATASET_GB: f64 = 1.0e7;
pub const MAX_ARGS: usize = 256;
pub const MAX_ARG_BYTES: usize = 4096;
pub const MAX_ENV: usize = 64;
pub const MAX_ATTEMPTS: u32 = 10;
/// Most GPU models, and most regions, one job may list.
pub const MAX_LISTED: usize = 64;
/// The longest time limit a job may ask for: twice the longest estimate plus an hour.
pub const MAX_TIME_LIMIT_S: u64 = 2 * MAX_DURATION_S + 3600;
/// The most slack a deadline may leave beyond the run itself (30 days): tariffs repeat daily, so
/// more slack cannot save energy, and it would let a job sit in the queue for months.
pub const MAX_DEADLINE_SLACK_S: u64 = 30 * 86_400;

/// What a job may reach over the network. Engines that can deny it (the local sandbox) do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkAccess {
    /// No network at all, not even loopback to the host: the default.
    #[default]
    None,
    /// The machine's network, as any process on it has.
    Full,
}

impl NetworkAccess {
    pub fn is_none(&self) -> bool {
        *self == NetworkAccess::None
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    pub kind: JobKind,
    #[serde(default)]
    pub gpus: u32,
    /// Thousandths of each GPU; 1000 for whole GPUs. Defaults to 1000 when `gpus > 0`.
    #[serde(default)]
    pub gpu_milli: u32,
    /// GPU models the job may run on; empty means any.
    #[serde(default)]
    pub gpu_models: Vec<String>,
    pub cpu_milli: u32,
    pub memory_mib: u32,
    /// Estimated run time.
    pub duration_s: u64,
    #[serde(default)]
    pub dataset: Option<DatasetRef>,
    /// Where the job may run; empty means anywhere.
    #[serde(default)]
    pub allowed_regions: Vec<Region>,
    /// The hub the job comes from (the `nearest` baseline keeps it there).
    #[serde(default)]
    pub origin_hub: Option<String>,
    /// Higher runs first. -100..=100.
    #[serde(default)]
    pub priority: i32,
    /// The program and its arguments (argv, not a shell line). Needed to run the job.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Environment variables for the command.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub on_lost: LostPolicy,
    /// Runs at most this many times in all (1..=10); only lost runs are retried.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// What the job may reach over the network: `none` (the default) or `full`.
    #[serde(default, skip_serializing_if = "NetworkAccess::is_none")]
    pub network: NetworkAccess,
    /// The engine stops the job after this long; by default twice `duration_s` plus an hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_limit_s: Option<u64>,
    /// Seconds after submission by which the job should have finished. A deadline says the work
    /// is deferrable: `aiplus` may start it later, in cheaper and greener hours, as long as
    /// `duration_s` still fits before the deadline; waiting within that slack costs nothing in
    /// its objective. Without one, every second of waiting counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_s: Option<u64>,
    /// Which of the "AI+" Action's six areas the work serves, if the submitter says: its runs'
    /// ledger rows carry it, so GPU-hours can be counted by area.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_area: Option<vocab::ActionArea>,
    /// Set by the data exchange only; a tenant's submission that sets it is refused. The
    /// compute-to-data run this job belongs to: its engine shows the run's dataset read-only
    /// with the network off, and its output is never shown, since only its declared outputs
    /// may leave, after the exchange's output check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<String>,
}

fn default_attempts() -> u32 {
    3
}

impl JobSpec {
    /// How long the job may wait and still finish by its deadline (0 without one).
    pub fn slack_s(&self) -> u64 {
        self.deadline_s.map_or(0, |d| d.saturating_sub(self.duration_s))
    }

    /// The time limit the engine enforces: the job's own, or twice its estimate plus an hour
    /// (estimates are estimates).
    pub fn effective_time_limit_s(&self) -> u64 {
        self.time_limit_s.unwrap_or_else(|| self.duration_s.saturating_mul(2).saturating_add(3600))
    }

    /// Fills defaults (`gpu_milli` = 1000 for GPU jobs) and checks every field, naming the first bad one.
    pub fn normalise(mut self, net: &Network) -> Result<Self, Invalid> {
        if self.gpus > 0 && self.gpu_milli == 0 {
            self.gpu_milli = 1000;
        }
        if self.gpus > MAX_GPUS {
            return Err(Invalid::new("gpus", format!("at most {MAX_GPUS} GPUs on one node, got {}", self.gpus)));
        }
        if self.gpus == 0 && self.gpu_milli != 0 {
            return Err(Invalid::new("gpu_milli", "must be 0 when gpus is 0"));
        }
        if self.gpu_milli > 1000 {
            return Err(Invalid::new("gpu_milli", format!("is thousandths of one GPU: at most 1000, got {}", self.gpu_milli)));
        }
        if self.gpus > 1 && self.gpu_milli != 1000 {
            return Err(Invalid::new("gpu_milli", "a share of a GPU (below 1000) needs gpus = 1"));
        }
        for (i, m) in self.gpu_models.iter().enumerate() {
            if net.gpu_ix(m).is_none() {
                return Err(Invalid::new(format!("gpu_models[{i}]"), format!("no GPU model named {m:?}")));
            }
        }
        if self.gpu_models.len() > MAX_LISTED {
            return Err(Invalid::new("gpu_models", format!("at most {MAX_LISTED} GPU models")));
        }
        if self.allowed_regions.len() > MAX_LISTED {
            return Err(Invalid::new("allowed_regions", format!("at most {MAX_LISTED} regions")));
        }
        if self.gpus == 0 && !self.gpu_models.is_empty() {
            return Err(Invalid::new("gpu_models", "a CPU-only job (gpus = 0) cannot ask for GPU models"));
        }
        if self.cpu_milli == 0 || self.cpu_milli > MAX_CPU_MILLI {
            return Err(Invalid::new("cpu_milli", format!("must be 1..={MAX_CPU_MILLI}, got {}", self.cpu_milli)));
        }
        if self.memory_mib > MAX_MEMORY_MIB {
            return Err(Invalid::new("memory_mib", format!("at most {MAX_MEMORY_MIB}, got {}", self.memory_mib)));
        }
        if self.duration_s == 0 || self.duration_s > MAX_DURATION_S {
            return Err(Invalid::new("duration_s", format!("must be 1..={MAX_DURATION_S}, got {}", self.duration_s)));
        }
        if let Some(d) = &self.dataset {
            if net.cluster_ix(&d.cluster).is_none() {
                return Err(Invalid::new("dataset.cluster", format!("no cluster with id {:?}", d.cluster)));
            }
            if !d.size_gb.is_finite() || d.size_gb < 0.0 || d.size_gb > MAX_DATASET_GB {
                return Err(Invalid::new("dataset.size_gb", format!("must be 0..={MAX_DATASET_GB}, got {}", d.size_gb)));
            }
        }
        for (i, r) in self.allowed_regions.iter().enumerate() {
            if !(0..net.clusters.len()).any(|c| r.contains(net.place(c))) {
                return Err(Invalid::new(format!("allowed_regions[{i}]"), format!("{r} names no province or hub of this network")));
            }
        }
        if let Some(h) = &self.origin_hub {
            validate_id("origin_hub".into(), h)?;
            if net.hub_ix(h).is_none() {
                return Err(Invalid::new("origin_hub", format!("no hub with id {h:?}")));
            }
        }
        if self.command.len() > MAX_ARGS {
            return Err(Invalid::new("command", format!("at most {MAX_ARGS} arguments")));
        }
        for (i, a) in self.command.iter().enumerate() {
            if a.len() > MAX_ARG_BYTES || a.contains('\0') {
                return Err(Invalid::new(format!("command[{i}]"), format!("at most {MAX_ARG_BYTES} bytes and no NUL")));
            }
        }
        if self.command.first().is_some_and(|c| c.trim().is_empty()) {
            return Err(Invalid::new("command[0]", "the program name is empty"));
        }
        if self.env.len() > MAX_ENV {
            return Err(Invalid::new("env", format!("at most {MAX_ENV} variables")));
        }
        for (k, v) in &self.env {
            let ok = k.bytes().enumerate().all(|(i, b)| b == b'_' || b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit()));
            if k.is_empty() || !ok || k.starts_with("AIPLUS_") {
                return Err(Invalid::new(format!("env.{k}"), "names are letters, digits and _, not starting with a digit or AIPLUS_"));
            }
            if v.len() > MAX_ARG_BYTES || v.contains('\0') {
                return Err(Invalid::new(format!("env.{k}"), format!("at most {MAX_ARG_BYTES} bytes and no NUL")));
            }
        }
        if !(1..=MAX_ATTEMPTS).contains(&self.max_attempts) {
            return Err(Invalid::new("max_attempts", format!("must be 1..={MAX_ATTEMPTS}, got {}", self.max_attempts)));
        }
        if let Some(t) = self.time_limit_s
            && !(1..=MAX_TIME_LIMIT_S).contains(&t)
        {
            return Err(Invalid::new("time_limit_s", format!("must be 1..={MAX_TIME_LIMIT_S}, got {t}")));
        }
        if let Some(d) = self.deadline_s
            && !(self.duration_s..=self.duration_s + MAX_DEADLINE_SLACK_S).contains(&d)
        {
            return Err(Invalid::new(
                "deadline_s",
                format!(
                    "must leave room for the run: duration_s ({}) up to duration_s + {MAX_DEADLINE_SLACK_S} s of slack, got {d}",
                    self.duration_s
                ),
            ));
        }
        if !(-100..=100).contains(&self.priority) {
            return Err(Invalid::new("priority", format!("must be -100..=100, got {}", self.priority)));
        }
        Ok(self)
    }
}
