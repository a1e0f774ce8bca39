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

/// One replica of a model server, as it is placed and run.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelServer {
    /// The model's name as clients ask for it.
    pub name: String,
    /// The GGUF file (on the machine that runs the replica).
    pub gguf: PathBuf,
    /// The engine's directory: the unpacked `xllamacpp` wheel, with the launcher beside it.
    pub engine_dir: PathBuf,
    /// The Python that runs the launcher (≥ 3.10); `python3` on the job's `PATH` by default.
    pub python: String,
    /// The port the replica listens on, on 127.0.0.1 of its node.
    pub port: u16,
    /// CPU threads for decoding. On a busy 2-core machine one holds up better than two.
    pub threads: u32,
    pub ctx_tokens: u32,
    /// Memory the replica is placed with: the model file plus the context's cache, roughly.
    pub memory_mib: u32,
    /// GPUs for the replica (0: CPU only, which is all llama.cpp's CPU wheel uses).
    pub gpus: u32,
    pub regions: Vec<Region>,
}

impl ModelServer {
    /// The replica as a job: long-running online inference, network on (it must accept the
    /// gateway's connections), re-placed when lost.
    pub fn job_spec(&self) -> Result<JobSpec, ModelsError> {
        self.validate()?;
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
        let env = BTreeMap::from([("PYTHONPATH".to_string(), path_text(&self.engine_dir)?)]);
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
        })
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
    let tmp = engine_dir.join(format!(".{LAUNCHER_FILE}.{}", std::process::id()));
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
            gguf: "/data/models/qwen/model.gguf".into(),
            engine_dir: "/data/models/xllamacpp".into(),
            python: "python3".into(),
            port: 18_000,
            threads: 1,
            ctx_tokens: 4096,
            memory_mib: 1024,
            gpus: 0,
            regions: vec![],
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
        let net = compute::file::builtin_network().unwrap();
        assert!(spec.normalise(&net).is_ok(), "the job passes the API's own checks");
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
