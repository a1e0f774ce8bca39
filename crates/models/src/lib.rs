//! Models served on the compute network. A model server is an online-inference job like any
//! other: the scheduler places it, an executor runs it, and its run is metered. This crate
//! knows what such a job is made of and nothing about HTTP or the store:
//!
//! - [`catalog`]: the pinned engine (llama.cpp's server from the `xllamacpp` wheel) and the
//!   built-in chat models, fetched from PyPI by the `fetch` crate into `<data dir>/models/`;
//! - [`LAUNCHER`]: the small Python program that starts llama.cpp's server on one GGUF file;
//! - [`ModelServer`]: one replica's description, turned into a [`compute::JobSpec`] by
//!   [`ModelServer::job_spec`];
//! - [`deployer`]: which replica jobs to start or stop, and which replicas to route to, as a
//!   pure function of what is wanted and what is seen;
//! - [`service`]: the loop that keeps deployed models' replicas running and routed.

pub mod catalog;
pub mod deployer;
pub mod service;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use compute::{JobKind, JobSpec, LostPolicy, NetworkAccess, Region};

/// The launcher, written next to the engine when it is installed (see [`install_launcher`]).
pub const LAUNCHER: &str = include_str!("../data/llama_server.py");
/// The launcher's file name in the engine's directory.
pub const LAUNCHER_FILE: &str = "aiplus_llama_server.py";

/// Most threads one replica may ask for.
pub const MAX_THREADS: u32 = 64;
/// Longest context one replica may ask for, in tokens.
pub const MAX_CTX_TOKENS: u32 = 131_072;
/// Shortest context one replica may ask for, in tokens.
pub const MIN_CTX_TOKENS: u32 = 256;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ModelsError {
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("{}: {reason}", path.display())]
    Io { path: PathBuf, reason: String },
    #[error("{what} {id:?} not found")]
    NotFound { what: &'static str, id: String },
    #[error("storage failed: {0}")]
    Store(String),
}

pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> ModelsError {
    ModelsError::Invalid { field: field.into(), reason: reason.into() }
}

/// The server program a replica runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Engine {
    /// llama.cpp's own server from the pinned `xllamacpp` wheel (CPU), which aiplus installs.
    #[default]
    #[serde(rename = "llama.cpp")]
    LlamaCpp,
    /// vLLM's OpenAI-compatible server, on GPUs: installed by the operator in the Python that
    /// `models.vllm_python` names on the GPU nodes (aiplus does not install it).
    #[serde(rename = "vllm")]
    Vllm,
}

/// Most GPUs one replica may ask for (vLLM's tensor parallelism within one node).
pub const MAX_GPUS: u32 = 8;

/// One replica of a model server, as it is placed and run.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelServer {
    /// The model's name as clients ask for it.
    pub name: String,
    pub engine: Engine,
    /// The GGUF file (on the machine that runs the replica).
    pub gguf: PathBuf,
    /// The engine's directory: the unpacked `xllamacpp` wheel, with the launcher beside it.
    pub engine_dir: PathBuf,
    /// The Python that runs the launcher (≥ 3.10), or that has vLLM installed; found on the
    /// job's `PATH` unless it is a path.
    pub python: String,
    /// The port the replica listens on, on 127.0.0.1 of its node.
    pub port: u16,
    /// CPU threads for decoding. On a busy 2-core machine one holds up better than two.
    pub threads: u32,
    pub ctx_tokens: u32,
    /// Memory the replica is placed with: the model file plus the context's cache, roughly.
    pub memory_mib: u32,
    /// GPUs for the replica: 0 for llama.cpp's CPU wheel, 1..=8 for vLLM.
    pub gpus: u32,
    pub regions: Vec<Region>,
    /// The "AI+" action area the model serves, which its replica's job carries.
    pub action_area: Option<vocab::ActionArea>,
}

impl ModelServer {
    /// The replica as a job: long-running online inference, network on (it must accept the
    /// gateway's connections), re-placed when lost.
    pub fn job_spec(&self) -> Result<JobSpec, ModelsError> {
        self.validate()?;
        let (command, env) = match self.engine {
            Engine::LlamaCpp => self.llama_command()?,
            Engine::Vllm => self.vllm_command()?,
        };
        Ok(JobSpec {
            kind: JobKind::OnlineInference,
            gpus: self.gpus,
            gpu_milli: if self.gpus > 0 { 1000 } else { 0 },
            gpu_models: Vec::new(),
            cpu_milli: self.threads * 1000,
            memory_mib: self.memory_mib,
            // The period it is placed for; a server runs until it is stopped, and its time
            // limit is the longest there is.
            duration_s: compute::job::MAX_DURATION_S,
            dataset: None,
            allowed_regions: self.regions.clone(),
            origin_hub: None,
            priority: 0,
            command,
            env,
            on_lost: LostPolicy::Requeue,
            max_attempts: compute::job::MAX_ATTEMPTS,
            network: NetworkAccess::Full,
            time_limit_s: Some(compute::job::MAX_TIME_LIMIT_S),
            sealed: None,
            deadline_s: None,
            action_area: self.action_area,
        })
    }

    fn llama_command(&self) -> Result<(Vec<String>, BTreeMap<String, String>), ModelsError> {
        let launcher = self.engine_dir.join(LAUNCHER_FILE);
        let command = vec![
            self.python.clone(),
            path_text(&launcher)?,
            "--model".into(),
            path_text(&self.gguf)?,
            "--alias".into(),
            self.name.clone(),
            "--port".into(),
            self.port.to_string(),
            "--threads".into(),
            self.threads.to_string(),
            "--ctx".into(),
            self.ctx_tokens.to_string(),
        ];
        Ok((command, BTreeMap::from([("PYTHONPATH".to_string(), path_text(&self.engine_dir)?)])))
    }

    /// vLLM's OpenAI server on the GGUF file, on loopback like llama.cpp's, one shard per GPU.
    /// It answers `/health` and `/v1` as llama.cpp's server does, so the gateway and the health
    /// checks treat both alike.
    fn vllm_command(&self) -> Result<(Vec<String>, BTreeMap<String, String>), ModelsError> {
        let command = vec![
            self.python.clone(),
            "-m".into(),
            "vllm.entrypoints.openai.api_server".into(),
            "--model".into(),
            path_text(&self.gguf)?,
            "--served-model-name".into(),
            self.name.clone(),
            "--host".into(),
            "127.0.0.1".into(),
            "--port".into(),
            self.port.to_string(),
            "--max-model-len".into(),
            self.ctx_tokens.to_string(),
            "--tensor-parallel-size".into(),
            self.gpus.to_string(),
        ];
        Ok((command, BTreeMap::new()))
    }

    /// Where the replica answers health checks once it runs.
    pub fn health_url(&self) -> String {
        format!("http://127.0.0.1:{}/health", self.port)
    }

    /// The base URL of its OpenAI-compatible API, as a gateway deployment calls it.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    fn validate(&self) -> Result<(), ModelsError> {
        if self.name.is_empty() || self.name.len() > 256 || self.name.chars().any(char::is_control) {
            return Err(invalid("name", "1-256 bytes without control characters"));
        }
        if !(1..=MAX_THREADS).contains(&self.threads) {
            return Err(invalid("threads", format!("must be 1..={MAX_THREADS}")));
        }
        if !(MIN_CTX_TOKENS..=MAX_CTX_TOKENS).contains(&self.ctx_tokens) {
            return Err(invalid("ctx_tokens", format!("must be {MIN_CTX_TOKENS}..={MAX_CTX_TOKENS}")));
        }
        if self.port == 0 {
            return Err(invalid("port", "must be a port number"));
        }
        match self.engine {
            Engine::LlamaCpp if self.gpus != 0 => return Err(invalid("gpus", "llama.cpp's wheel runs on CPUs: 0")),
            Engine::Vllm if !(1..=MAX_GPUS).contains(&self.gpus) => {
                return Err(invalid("gpus", format!("vLLM runs on GPUs: 1..={MAX_GPUS}")));
            }
            _ => {}
        }
        Ok(())
    }
}

/// A path as a command argument; aiplus's own paths are UTF-8.
fn path_text(p: &Path) -> Result<String, ModelsError> {
    p.to_str().map(str::to_string).ok_or_else(|| ModelsError::Io { path: p.to_path_buf(), reason: "not valid UTF-8".into() })
}

/// Writes the launcher into the engine's directory (the same bytes every time, so a running
/// replica's file is never changed under it; only a new version of aiplus rewrites it).
pub fn install_launcher(engine_dir: &Path) -> Result<PathBuf, ModelsError> {
    let path = engine_dir.join(LAUNCHER_FILE);
    if std::fs::read_to_string(&path).is_ok_and(|t| t == LAUNCHER) {
        return Ok(path);
    }
    // Unique per call: two installs in one process must not share a temporary file.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = engine_dir.join(format!(".{LAUNCHER_FILE}.{}.{n}", std::process::id()));
    let io = |e: std::io::Error| ModelsError::Io { path: path.clone(), reason: e.to_string() };
    std::fs::write(&tmp, LAUNCHER).map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn server() -> ModelServer {
        ModelServer {
            name: "qwen".into(),
            engine: Engine::LlamaCpp,
            gguf: "/data/models/qwen/model.gguf".into(),
            engine_dir: "/data/models/xllamacpp".into(),
            python: "python3".into(),
            port: 18_000,
            threads: 1,
            ctx_tokens: 4096,
            memory_mib: 1024,
            gpus: 0,
            regions: vec![],
            action_area: Some(vocab::ActionArea::Livelihood),
        }
    }

    #[test]
    fn a_replica_is_an_online_inference_job_with_network_that_is_requeued_when_lost() {
        let spec = server().job_spec().unwrap();
        assert_eq!(spec.kind, JobKind::OnlineInference);
        assert_eq!(spec.network, NetworkAccess::Full);
        assert_eq!(spec.on_lost, LostPolicy::Requeue);
        assert_eq!(spec.cpu_milli, 1000);
        assert_eq!(spec.command[..2], ["python3".to_string(), "/data/models/xllamacpp/aiplus_llama_server.py".to_string()]);
        assert_eq!(spec.env["PYTHONPATH"], "/data/models/xllamacpp");
        assert_eq!(spec.action_area, Some(vocab::ActionArea::Livelihood), "the model's action area goes with its replicas");
        let net = compute::file::builtin_network().unwrap();
        assert!(spec.normalise(&net).is_ok(), "the job passes the API's own checks");
    }

    /// A vLLM replica is a GPU job that the scheduler places in a GPU pool, and serves the
    /// same GGUF file under the model's name.
    #[test]
    fn a_vllm_replica_is_a_gpu_job_placed_in_a_gpu_pool() {
        let vllm = ModelServer { engine: Engine::Vllm, gpus: 2, python: "/opt/vllm/bin/python".into(), ..server() };
        let spec = vllm.job_spec().unwrap();
        assert_eq!((spec.gpus, spec.gpu_milli, spec.kind), (2, 1000, JobKind::OnlineInference));
        assert_eq!(spec.command[..3], ["/opt/vllm/bin/python", "-m", "vllm.entrypoints.openai.api_server"].map(String::from));
        let arg = |flag: &str| spec.command.iter().position(|a| a == flag).map(|i| spec.command[i + 1].as_str());
        assert_eq!(
            (arg("--model"), arg("--served-model-name"), arg("--tensor-parallel-size")),
            (Some("/data/models/qwen/model.gguf"), Some("qwen"), Some("2"))
        );
        let net = std::sync::Arc::new(compute::file::builtin_network().unwrap());
        let req = compute::JobReq::compile(&spec.normalise(&net).unwrap(), &net);
        let mut scheduler = compute::Scheduler::new(net.clone(), compute::Policy::Aiplus, compute::Weights::default());
        let compute::Decision::Placed { allocation, .. } = scheduler.place(&req, 0.0, 0.0) else { panic!("not placed") };
        let pool = &net.clusters[usize::from(allocation.cluster)].pools[usize::from(allocation.pool)];
        assert!(pool.gpu.is_some() && pool.gpus_per_node >= 2, "placed in a GPU pool: {}", pool.name);
        let e = ModelServer { gpus: 0, ..vllm }.job_spec().unwrap_err();
        assert!(matches!(e, ModelsError::Invalid { ref field, .. } if field == "gpus"));
        let e = ModelServer { gpus: 1, ..server() }.job_spec().unwrap_err();
        assert!(matches!(e, ModelsError::Invalid { ref field, .. } if field == "gpus"), "llama.cpp's wheel has no GPU build");
    }

    #[test]
    fn bad_replicas_are_refused_naming_the_field() {
        let e = ModelServer { threads: 0, ..server() }.job_spec().unwrap_err();
        assert!(matches!(e, ModelsError::Invalid { ref field, .. } if field == "threads"));
        let e = ModelServer { ctx_tokens: 1, ..server() }.job_spec().unwrap_err();
        assert!(matches!(e, ModelsError::Invalid { ref field, .. } if field == "ctx_tokens"));
    }

    #[test]
    fn the_launcher_is_written_once_and_atomically() {
        let dir = std::env::temp_dir().join(format!("aiplus-launcher-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = install_launcher(&dir).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), LAUNCHER);
        let before = std::fs::metadata(&p).unwrap().modified().unwrap();
        install_launcher(&dir).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().modified().unwrap(), before, "an unchanged launcher is not rewritten");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
