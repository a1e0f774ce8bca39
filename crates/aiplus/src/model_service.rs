//! Where the models pillar meets the others: the compute service runs its replicas' jobs, the
//! gateway routes to them, and an HTTP client checks their health. `serve` starts the loop.

use std::sync::Arc;
use std::time::Duration;

use models::deployer::{JobState, Route};
use models::service::{BoxFut, Jobs, Probe, Routes, Service};

/// The tenant the platform's own model servers run and are billed as.
pub const PLATFORM_TENANT: &str = "aiplus";
/// How often the service looks at every replica.
pub const TICK: Duration = Duration::from_secs(1);

struct ComputeJobs(Arc<jobs::ComputeService>);

impl Jobs for ComputeJobs {
    fn submit<'a>(&'a self, name: &'a str, spec: compute::JobSpec) -> BoxFut<'a, Result<String, String>> {
        Box::pin(async move {
            let (job, _) = self.0.submit(PLATFORM_TENANT.into(), Some(name.into()), spec, None).await.map_err(|e| e.to_string())?;
            Ok(job.id)
        })
    }

    fn state<'a>(&'a self, id: &'a str) -> BoxFut<'a, Option<JobState>> {
        Box::pin(async move {
            use jobs::compute_service::JobState as J;
            let job = self.0.job(id).await.ok()?;
            Some(match job.state {
                J::Running => JobState::Running { cluster: job.placement.map(|p| p.cluster).unwrap_or_default() },
                J::Queued | J::Placed | J::Submitted => JobState::Pending,
                J::Succeeded | J::Failed | J::Cancelled | J::Lost => JobState::Ended,
            })
        })
    }

    fn cancel<'a>(&'a self, id: &'a str) -> BoxFut<'a, ()> {
        Box::pin(async move {
            if let Err(e) = self.0.cancel(id).await {
                tracing::warn!(job = id, error = %e, "cancelling a model replica");
            }
        })
    }
}

struct GatewayRoutes(Arc<gateway::Gateway>);

impl Routes for GatewayRoutes {
    fn set(&self, model: &str, routes: &[Route]) {
        let deployments = routes
            .iter()
            .filter_map(|r| {
                let d = serde_json::json!({"id": r.id, "base_url": format!("http://127.0.0.1:{}/v1", r.port),
                                           "cluster": r.cluster, "timeout_s": 300});
                serde_json::from_value(d).ok()
            })
            .collect();
        self.0.set_placed(model, deployments);
    }

    fn remove(&self, model: &str) {
        self.0.remove_placed(model);
    }
}

struct HttpProbe(reqwest::Client);

impl Probe for HttpProbe {
    fn healthy(&self, port: u16) -> BoxFut<'_, bool> {
        Box::pin(async move {
            let r = self.0.get(format!("http://127.0.0.1:{port}/health")).timeout(Duration::from_secs(1)).send().await;
            r.is_ok_and(|r| r.status().is_success())
        })
    }
}

/// A port free on this machine now, for a replica on the local executor.
fn free_port() -> Option<u16> {
    std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok().map(|a| a.port())
}

/// What `serve` asks of the models service besides keeping deployments running.
#[derive(Debug, Clone)]
pub struct Options {
    pub paths: models::service::Paths,
    /// The chat model to keep deployed under its own name.
    pub chat: Option<ChatModel>,
    /// Download deployed models that are not installed.
    pub fetch: bool,
}

/// How long a failed download waits before it is tried again.
const FETCH_RETRY: Duration = Duration::from_secs(300);

/// The models service over this server's compute service and gateway, with its loop running
/// until `stop`: it deploys the default chat model (unless the Python it needs is missing,
/// which it logs), downloads what deployments need, and ticks the service.
pub async fn start(
    store: store::Store,
    compute: Arc<jobs::ComputeService>,
    gw: Arc<gateway::Gateway>,
    opts: Options,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<(Arc<Service>, tokio::task::JoinHandle<()>)> {
    let paths = opts.paths.clone();
    let probe = outbound::client(true, Duration::from_secs(1)).build()?;
    let svc = Service::load(
        store,
        Arc::new(ComputeJobs(compute)),
        Arc::new(GatewayRoutes(gw)),
        Arc::new(HttpProbe(probe)),
        paths,
        Box::new(free_port),
    )
    .await
    .map_err(|e| anyhow::anyhow!("starting the models service: {e}"))?;
    let svc = Arc::new(svc);
    if let Some(chat) = &opts.chat {
        deploy_chat(&svc, chat, &opts.paths.python).await;
    }
    // A download that stops sending fails after a minute instead of holding its model
    // "installing" for ever.
    let client = outbound::client(opts.paths.allow_local, Duration::from_secs(10)).read_timeout(Duration::from_secs(60)).build()?;
    let looped = svc.clone();
    let task = tokio::spawn(async move {
        let mut fetches = Fetches::default();
        loop {
            let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
            // Before the tick, so that a model about to be fetched waits instead of failing.
            if opts.fetch {
                fetches.start_missing(&looped, &client).await;
            }
            for problem in looped.tick(now_ms).await {
                tracing::warn!(%problem, "model deployments");
            }
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = stop.changed() => break,
            }
        }
    });
    Ok((svc, task))
}

/// The chat model `serve` keeps deployed: a built-in one, or any GGUF file under a name.
#[derive(Debug, Clone)]
pub struct ChatModel {
    pub name: String,
    pub gguf: Option<models::catalog::Gguf>,
    pub threads: u32,
}

/// Deploys the default chat model (one replica under its own name) unless it is deployed
/// already, or says in the log why it cannot run here.
async fn deploy_chat(svc: &Service, chat: &ChatModel, python: &str) {
    let (model, threads) = (chat.name.as_str(), chat.threads);
    if let Err(why) = python_ready(python) {
        tracing::warn!(
            model,
            "the chat model is off: {why}. llama.cpp's server needs Python 3.10 or newer; install it, or set models.python \
             (AIPLUS_MODELS_PYTHON) to one. Everything else works without it"
        );
        return;
    }
    let spec = models::service::DeploymentSpec {
        model: model.to_string(),
        gguf: chat.gguf.clone(),
        engine: models::Engine::LlamaCpp,
        gpus: 0,
        replicas: 1,
        threads,
        ctx_tokens: 4096,
        memory_mib: 2048,
        regions: Vec::new(),
        action_area: None,
    };
    let wanted = spec.clone();
    match svc.ensure_deployed(model, spec).await {
        Ok(None) => tracing::info!(model, threads, "deployed the chat model; it is served once its replica answers"),
        Ok(Some(d)) if (&d.model, &d.gguf, d.threads) != (&wanted.model, &wanted.gguf, wanted.threads) => tracing::warn!(
            model,
            "the deployed chat model differs from [models] (its weights or threads): the deployment stays as it is; \
             `aiplus models undeploy {model}` and restart to apply the configuration"
        ),
        Ok(Some(_)) => {}
        Err(e) => tracing::warn!(model, error = %e, "deploying the chat model"),
    }
}

/// Checks that `python` (a path, or a name looked up on the `PATH` local jobs start with) is
/// Python 3.10 or newer; its version when it is.
pub fn python_ready(python: &str) -> Result<String, String> {
    let path = if python.contains('/') {
        std::path::PathBuf::from(python)
    } else {
        executor::local::sandbox::SANDBOX_PATH
            .split(':')
            .map(|d| std::path::Path::new(d).join(python))
            .find(|p| p.is_file())
            .ok_or_else(|| format!("no {python} on the jobs' PATH ({})", executor::local::sandbox::SANDBOX_PATH))?
    };
    let out = std::process::Command::new(&path)
        .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2]); sys.exit(sys.version_info < (3, 10))"])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() { Ok(version) } else { Err(format!("{} is Python {version}", path.display())) }
}

/// Downloads under way or failed recently, so that each model is fetched once at a time and a
/// failing download is not retried every second.
#[derive(Default)]
struct Fetches {
    running: std::collections::BTreeMap<String, tokio::task::JoinHandle<()>>,
    failed_at: Arc<std::sync::Mutex<std::collections::BTreeMap<String, std::time::Instant>>>,
}

impl Fetches {
    async fn start_missing(&mut self, svc: &Arc<Service>, client: &reqwest::Client) {
        self.running.retain(|_, t| !t.is_finished());
        for spec in svc.missing().await {
            let key = spec.weights_dir_name();
            let recent = self.failed_at.lock().is_ok_and(|f| f.get(&key).is_some_and(|at| at.elapsed() < FETCH_RETRY));
            if recent || self.running.contains_key(&key) || !svc.begin_install(&key) {
                continue;
            }
            let (svc, client, failed_at) = (svc.clone(), client.clone(), self.failed_at.clone());
            self.running.insert(key, tokio::spawn(async move { fetch_one(&svc, &spec, &client, &failed_at).await }));
        }
    }
}

/// One model's download, logged as it goes (every tenth of each artifact) so an operator
/// watching the server's log sees it move.
async fn fetch_one(
    svc: &Service,
    spec: &models::service::DeploymentSpec,
    client: &reqwest::Client,
    failed_at: &std::sync::Mutex<std::collections::BTreeMap<String, std::time::Instant>>,
) {
    let model = spec.model.as_str();
    tracing::info!(model, "fetching the model and llama.cpp's server; requests for it get 503 model_loading until it runs");
    let step = std::sync::atomic::AtomicU64::new(0);
    let progress = |n: u64, total: u64| {
        let tenth = n.saturating_mul(10).checked_div(total).unwrap_or(10);
        let key = total.wrapping_mul(16).wrapping_add(tenth);
        if step.swap(key, std::sync::atomic::Ordering::Relaxed) != key {
            tracing::info!(model, "fetching: {} of {} MB", n / 1_000_000, total / 1_000_000);
        }
    };
    match svc.install(spec, client, &progress).await {
        Ok(()) => tracing::info!(model, "fetched; starting its replica"),
        Err(e) => {
            tracing::error!(model, error = %e, "fetching the model failed; trying again in 5 minutes");
            if let Ok(mut f) = failed_at.lock() {
                f.insert(spec.weights_dir_name(), std::time::Instant::now());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn python_is_looked_up_on_the_jobs_path_and_must_be_3_10_or_newer() {
        // This machine's system Python (Debian's 3.11) is what a local job finds.
        let v = python_ready("python3").unwrap();
        assert!(v.starts_with("3."), "{v}");
        let missing = python_ready("python-that-is-not-there").unwrap_err();
        assert!(missing.contains("no python-that-is-not-there on the jobs' PATH"), "{missing}");
        assert!(python_ready("/nonexistent/python3").unwrap_err().contains("cannot run"));
    }
}
