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

/// The models service over this server's compute service and gateway, with its loop running
/// until `stop`.
pub async fn start(
    store: store::Store,
    compute: Arc<jobs::ComputeService>,
    gw: Arc<gateway::Gateway>,
    paths: models::service::Paths,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<(Arc<Service>, tokio::task::JoinHandle<()>)> {
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
    let looped = svc.clone();
    let task = tokio::spawn(async move {
        loop {
            let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
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
