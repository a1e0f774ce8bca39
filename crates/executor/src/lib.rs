//! Executors: the engines that run placed jobs. aiplus writes no engine of its own; each
//! cluster names the existing one that runs its work.
//!
//! One trait, [`Executor`], shaped so that every backend can be driven the same way by a
//! durable lifecycle that may crash at any point:
//! - `submit` is idempotent per (job, attempt): the engine-side name is derived from both, and a
//!   second submit of the same attempt returns the first one's handle instead of a second run;
//! - `find` recovers the handle of a submission whose answer was lost in a crash;
//! - `status` maps the engine's states onto [`EngineState`];
//! - `logs` reads the job's combined output from an offset, so followers can resume.
//!
//! A Kubernetes backend (batch Jobs through the API server) fits the same shape: the Job's name
//! is the engine-side name, `find` is a GET by name, `status` reads `.status.conditions`.

pub mod local;
pub mod ray;
pub mod slurm;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What an engine needs to run one attempt of a job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecSpec {
    pub job_id: String,
    /// The tenant the job belongs to (engines keep tenants' files apart by it).
    pub tenant: String,
    /// 1 for the first run; a job re-queued after being lost runs as a new attempt.
    pub attempt: u32,
    /// argv: the program and its arguments, not a shell string.
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub gpus: u32,
    pub gpu_milli: u32,
    pub cpu_milli: u32,
    pub memory_mib: u32,
    /// The engine stops the job after this long.
    pub time_limit_s: u64,
    /// Whether the job may use the network (where the engine can deny it: the local sandbox).
    pub network: bool,
    /// A compute-to-data run's id, set by the data exchange only: the engine shows the run's
    /// dataset read-only at `/data` and its outputs directory at `/out`, with the network off.
    /// Only the local sandbox can promise that; the other engines refuse such a job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<String>,
}

impl ExecSpec {
    /// The name the engine knows this attempt by; unique per (job, attempt).
    pub fn engine_name(&self) -> String {
        format!("{}-a{}", self.job_id, self.attempt)
    }

    /// A harmless attempt (`true`, no network, one second) for checking that an engine runs jobs.
    pub fn probe() -> Self {
        Self {
            job_id: "probe".into(),
            tenant: "aiplus".into(),
            attempt: 1,
            command: vec!["true".into()],
            env: BTreeMap::new(),
            gpus: 0,
            gpu_milli: 0,
            cpu_milli: 100,
            memory_mib: 64,
            time_limit_s: 1,
            network: false,
            sealed: None,
        }
    }
}

/// Refuses a compute-to-data job on an engine that cannot keep its data in: the engine's
/// nodes would need the dataset's files, and nothing would stop the job from sending them on.
pub fn refuse_sealed(spec: &ExecSpec, engine: &str) -> Result<(), ExecError> {
    match spec.sealed {
        Some(_) => Err(ExecError::Rejected(format!(
            "compute-to-data jobs run only in the local executor's sandbox, which mounts the dataset read-only with the network off; \
             {engine} cannot promise that"
        ))),
        None => Ok(()),
    }
}

/// The engine's own identifier of a submission (a directory, a Slurm job id, a Ray submission id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handle(pub String);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum EngineState {
    /// Accepted, not yet running.
    Pending,
    Running,
    Succeeded,
    Failed {
        exit_code: Option<i32>,
        message: String,
    },
    Cancelled,
    /// The engine no longer has the job, or it ended without telling how.
    Lost {
        reason: String,
    },
}

impl EngineState {
    pub fn is_terminal(&self) -> bool {
        matches!(self, EngineState::Succeeded | EngineState::Failed { .. } | EngineState::Cancelled | EngineState::Lost { .. })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The engine did not answer: the cluster is unhealthy, the job's fate is unknown.
    #[error("engine unreachable: {0}")]
    Unreachable(String),
    /// The engine answered and refused the request.
    #[error("engine refused: {0}")]
    Rejected(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A chunk of a job's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogChunk {
    pub data: Vec<u8>,
    /// Offset to ask for next.
    pub next_offset: u64,
}

/// Most bytes one `logs` call returns.
pub const MAX_LOG_CHUNK: u64 = 1 << 20;

pub trait Executor: Send + Sync {
    fn kind(&self) -> &'static str;
    fn submit<'a>(&'a self, spec: &'a ExecSpec) -> BoxFut<'a, Result<Handle, ExecError>>;
    /// The handle of an earlier submission of this attempt, if the engine has one.
    fn find<'a>(&'a self, spec: &'a ExecSpec) -> BoxFut<'a, Result<Option<Handle>, ExecError>>;
    fn status<'a>(&'a self, handle: &'a Handle) -> BoxFut<'a, Result<EngineState, ExecError>>;
    fn cancel<'a>(&'a self, handle: &'a Handle) -> BoxFut<'a, Result<(), ExecError>>;
    fn logs<'a>(&'a self, handle: &'a Handle, offset: u64) -> BoxFut<'a, Result<LogChunk, ExecError>>;
    /// Whether the engine answers at all.
    fn health(&self) -> BoxFut<'_, Result<(), ExecError>>;
}

/// Reads up to [`MAX_LOG_CHUNK`] bytes of a file from `offset` (a missing file is empty).
pub async fn read_log_file(path: &std::path::Path, offset: u64) -> Result<LogChunk, ExecError> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut f = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LogChunk { data: Vec::new(), next_offset: offset }),
        Err(e) => return Err(e.into()),
    };
    let len = f.metadata().await?.len();
    if offset >= len {
        return Ok(LogChunk { data: Vec::new(), next_offset: offset });
    }
    f.seek(std::io::SeekFrom::Start(offset)).await?;
    let mut data = Vec::new();
    f.take(MAX_LOG_CHUNK.min(len - offset)).read_to_end(&mut data).await?;
    let next_offset = offset + data.len() as u64;
    Ok(LogChunk { data, next_offset })
}
