//! What a compute-to-data run is: what a buyer asks for, the run as both parties see it, and
//! the compute network's side as the exchange sees it (a trait the binary implements).

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use crate::exchange::{DataError, invalid};

/// Most declared outputs of one run.
const MAX_OUTPUTS: usize = 16;
/// Most arguments and environment variables a run's command may have, and their sizes.
const MAX_ARGS: usize = 256;
const MAX_ARG_BYTES: usize = 4096;
const MAX_ENV: usize = 64;
/// Most resources one run may ask for.
const MAX_CPU_MILLI: u32 = 64_000;
const MAX_MEMORY_MIB: u32 = 256 * 1024;
const MAX_DURATION_S: u64 = 7 * 86_400;

pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the exchange asks the compute network to run for a run.
#[derive(Clone, Debug, PartialEq)]
pub struct SealedJob {
    /// The run's id: the job's idempotency key and the name of its staged directory.
    pub run: String,
    pub buyer: String,
    pub principal: Option<String>,
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cpu_milli: u32,
    pub memory_mib: u32,
    pub duration_s: u64,
    /// The dataset's residency: the job may run only there.
    pub regions: Vec<String>,
    /// The cluster next to the exchange's object store, and the bytes the job reads there.
    pub data_cluster: Option<String>,
    pub size_gb: f64,
}

/// How a run's job ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobEnd {
    Succeeded,
    /// Failed, cancelled or lost, and why (never its exit status); `ran` when it started at
    /// all, which is what the run is charged for.
    Failed {
        ran: bool,
        why: String,
    },
}

/// Why a job could not be submitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// Never, as asked (no cluster could run it, a field is wrong): the run fails.
    Refused(String),
    /// Not now (the queue is full, the store failed): the driver retries.
    Retry(String),
}

/// The compute network, as the exchange sees it; the binary implements it over the job
/// service, so this crate knows no scheduler.
pub trait SealedJobs: Send + Sync {
    /// Submits a run's job, idempotently per run; answers with the job's id.
    fn submit(&self, job: SealedJob) -> BoxFut<'_, Result<String, SubmitError>>;
    /// How the job ended, or `None` while it has not.
    fn end<'a>(&'a self, job: &'a str) -> BoxFut<'a, Result<Option<JobEnd>, String>>;
    /// Removes what the ended job left on its machine (its work directory, where it may have
    /// copied the data).
    fn forget<'a>(&'a self, job: &'a str) -> BoxFut<'a, ()>;
}

/// What a buyer asks to run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunIn {
    /// argv: the program and its arguments. The dataset is at `/data`, outputs go to `/out`.
    pub command: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The files of `/out` that should leave, by name.
    pub outputs: Vec<String>,
    #[serde(default = "default_cpu_milli")]
    pub cpu_milli: u32,
    #[serde(default = "default_memory_mib")]
    pub memory_mib: u32,
    /// Estimated run time; the job is stopped at twice this plus an hour.
    #[serde(default = "default_duration_s")]
    pub duration_s: u64,
}

fn default_cpu_milli() -> u32 {
    1000
}
fn default_memory_mib() -> u32 {
    1024
}
fn default_duration_s() -> u64 {
    600
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Staging,
    Running,
    Succeeded,
    /// The job succeeded but its outputs failed the output check: none leave.
    Refused,
    Failed,
}

impl RunState {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            RunState::Staging => "staging",
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Refused => "refused",
            RunState::Failed => "failed",
        }
    }
}

/// An output that left, kept for the buyer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunOutput {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

/// A run, as both parties see it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Run {
    pub object: String,
    pub id: String,
    pub contract: String,
    pub buyer: String,
    pub seller: String,
    pub dataset: String,
    pub version: String,
    pub state: RunState,
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub outputs: Vec<String>,
    pub cpu_milli: u32,
    pub memory_mib: u32,
    pub duration_s: u64,
    pub principal: Option<String>,
    /// The compute network's job, once submitted.
    pub job: Option<String>,
    /// What the run was charged, and for how much data.
    pub amount_fen: i64,
    pub bytes: u64,
    pub records: u64,
    pub results: Vec<RunOutput>,
    /// Why it was refused or failed.
    pub reason: Option<String>,
    pub created_ms: i64,
    pub ended_ms: Option<i64>,
}

impl RunIn {
    pub(super) fn check(&self) -> Result<(), DataError> {
        if self.command.is_empty() || self.command.len() > MAX_ARGS || self.command.iter().any(|a| a.len() > MAX_ARG_BYTES) {
            return Err(invalid("command", format!("1 to {MAX_ARGS} arguments of at most {MAX_ARG_BYTES} bytes")));
        }
        if self.env.len() > MAX_ENV {
            return Err(invalid("env", format!("at most {MAX_ENV} variables")));
        }
        for (k, v) in &self.env {
            let name_ok = !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') && !k.starts_with("AIPLUS_");
            if !name_ok || v.len() > MAX_ARG_BYTES || v.contains('\0') {
                return Err(invalid(format!("env.{k}"), "a name of A-Z, 0-9 and _ (not AIPLUS_…) and a value under 4 KiB"));
            }
        }
        if self.outputs.is_empty() || self.outputs.len() > MAX_OUTPUTS {
            return Err(invalid("outputs", format!("1 to {MAX_OUTPUTS} file names")));
        }
        for (i, o) in self.outputs.iter().enumerate() {
            if !is_plain_name(o) {
                return Err(invalid(format!("outputs[{i}]"), format!("{o:?}: 1 to 128 of A-Z a-z 0-9 . _ -, not starting with '.'")));
            }
        }
        if self.outputs.iter().collect::<HashSet<_>>().len() != self.outputs.len() {
            return Err(invalid("outputs", "each name once"));
        }
        if !(1..=MAX_CPU_MILLI).contains(&self.cpu_milli) {
            return Err(invalid("cpu_milli", format!("1 to {MAX_CPU_MILLI}")));
        }
        if !(16..=MAX_MEMORY_MIB).contains(&self.memory_mib) {
            return Err(invalid("memory_mib", format!("16 to {MAX_MEMORY_MIB}")));
        }
        if !(1..=MAX_DURATION_S).contains(&self.duration_s) {
            return Err(invalid("duration_s", format!("1 to {MAX_DURATION_S}")));
        }
        Ok(())
    }
}

/// A file name with no directory part that cannot be hidden or climb out.
pub(super) fn is_plain_name(s: &str) -> bool {
    (1..=128).contains(&s.len()) && !s.starts_with('.') && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_names_its_bad_field() {
        let ok = RunIn {
            command: vec!["sh".into()],
            env: BTreeMap::new(),
            outputs: vec!["sum.txt".into()],
            cpu_milli: 1000,
            memory_mib: 256,
            duration_s: 60,
        };
        assert!(ok.check().is_ok());
        let field = |r: RunIn| match r.check() {
            Err(DataError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(RunIn { outputs: vec!["../etc/passwd".into()], ..ok.clone() }), "outputs[0]");
        assert_eq!(field(RunIn { outputs: vec![".hidden".into()], ..ok.clone() }), "outputs[0]");
        assert_eq!(field(RunIn { outputs: vec![], ..ok.clone() }), "outputs");
        assert_eq!(field(RunIn { command: vec![], ..ok.clone() }), "command");
        assert_eq!(field(RunIn { env: [("AIPLUS_JOB_ID".to_string(), "x".to_string())].into(), ..ok.clone() }), "env.AIPLUS_JOB_ID");
        assert_eq!(field(RunIn { memory_mib: 0, ..ok }), "memory_mib");
    }
}
