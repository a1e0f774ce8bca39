//! Evaluation plugged into the gateway: the server's runs ask models through the gateway's
//! admission pipeline in-process (not over HTTP), as an internal principal of the evaluation
//! tenant named after the run, so they are metered, limited and routed like any request. The
//! canary runs here too, since it ties evaluation to the gateway's models and governance's
//! alerts.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use eval::prompt::Endpoint;
use eval::run::CallError;
use eval::service::{Asker, RunState, Service};
use serde_json::Value;

struct GatewayAsker {
    gw: Arc<gateway::Gateway>,
    tenant: String,
}

impl Asker for GatewayAsker {
    fn resolve(&self, model: &str) -> String {
        // The newest version is what a request for the family gets unless governance withholds
        // it; either way the key names a version, so an upgrade is never answered from the cache.
        self.gw.catalog().versions.get(model).and_then(|v| v.first()).cloned().unwrap_or_else(|| model.to_string())
    }

    fn ask(
        &self,
        run: &str,
        deployment: Option<&str>,
        endpoint: Endpoint,
        body: Value,
    ) -> Pin<Box<dyn Future<Output = Result<Value, CallError>> + Send + 'static>> {
        let gw = self.gw.clone();
        let caller =
            Arc::new(identity::Principal::internal_tenant(format!("eval:{run}"), self.tenant.clone(), &[identity::Scope::Inference]));
        let deployment = deployment.map(String::from);
        Box::pin(async move {
            let bytes = serde_json::to_vec(&body).map_err(|e| CallError::Fail(e.to_string()))?;
            let endpoint = match endpoint {
                Endpoint::Chat => gateway::InProcess::ChatCompletions,
                Endpoint::Completions => gateway::InProcess::Completions,
            };
            let (status, retry_after_s, answer) = gw.call(caller, endpoint, deployment.as_deref(), bytes.into()).await;
            eval::run::classify(status.as_u16(), retry_after_s.map(|s| s.saturating_mul(1000)), &answer)
        })
    }
}

/// The evaluation service of a server: its tenant registered, its caches under the data
/// directory. Its worker runs where compute runs.
pub async fn open(
    store: store::Store,
    identity: &identity::Identity,
    gw: Arc<gateway::Gateway>,
    suites_dir: &Path,
    data_dir: &Path,
    tenant: &str,
    clock: Arc<dyn vocab::Clock>,
) -> Result<Arc<Service>, identity::IdentityError> {
    if identity.tenant(tenant).is_none() {
        match identity.create_tenant(tenant, Some("Evaluation"), clock.now_ms()).await {
            Ok(_) | Err(identity::IdentityError::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let asker = Arc::new(GatewayAsker { gw, tenant: tenant.to_string() });
    let ids = Arc::new(|| format!("evr_{}", uuid::Uuid::now_v7().simple()));
    let work_dir = eval::service::work_dir(data_dir);
    Ok(Arc::new(Service::new(store, asker, suites_dir.to_path_buf(), work_dir, tenant.to_string(), clock, ids)))
}

/// What the canary runs, and how often.
#[derive(Clone, Debug)]
pub struct Canary {
    pub suite: String,
    pub limit: usize,
    pub every_s: u64,
}

/// Most items per group a canary may ask, and the longest period between canaries.
pub const MAX_CANARY_LIMIT: usize = 1000;
pub const MAX_CANARY_EVERY_S: u64 = 7 * 86_400;

/// The actor a canary run is recorded under.
pub const CANARY_ACTOR: &str = "canary";

/// Starts the canary where compute runs: every `every_s`, a fresh run of the canary suite for
/// each model the gateway serves and governance lets the evaluation tenant use (unless its
/// previous canary is still queued or running); after each finished canary, the paired
/// comparison with the model's baseline (its last canary that was not a drop) raises an
/// `eval_drop` alert on a significant drop, and closes it when a canary is no worse than the
/// baseline. A slow decline, each step too small to be significant, moves the baseline with it
/// and is not caught.
pub fn spawn_canary(
    svc: Arc<Service>,
    gw: Arc<gateway::Gateway>,
    governance: Arc<govern::Services>,
    canary: Canary,
    clock: Arc<dyn vocab::Clock>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    if canary.every_s == 0 {
        return Ok(None);
    }
    if canary.limit == 0 || canary.limit > MAX_CANARY_LIMIT || canary.every_s > MAX_CANARY_EVERY_S {
        anyhow::bail!("eval: canary_limit must be 1..={MAX_CANARY_LIMIT} and canary_every_s at most {MAX_CANARY_EVERY_S}");
    }
    if !svc.suites().iter().any(|s| s.name == canary.suite && s.data_present) {
        anyhow::bail!("eval.canary_suite: {:?} is not a suite with data in the suites directory", canary.suite);
    }
    let check_every = std::time::Duration::from_secs(canary.every_s.min(10));
    Ok(Some(tokio::spawn(async move {
        let mut next_ms = clock.now_ms();
        let mut baselines = Baselines::default();
        loop {
            if clock.now_ms() >= next_ms {
                next_ms = clock.now_ms() + canary.every_s as i64 * 1000;
                if let Err(e) = submit_canaries(&svc, &gw, &governance, &canary).await {
                    tracing::warn!(error = %e, "canary: submitting runs failed");
                }
            }
            if let Err(e) = judge_canaries(&svc, &governance, &canary, &mut baselines, clock.now_ms()).await {
                tracing::warn!(error = %e, "canary: comparing runs failed");
            }
            tokio::select! {
                () = tokio::time::sleep(check_every) => {}
                _ = stop.changed() => return,
            }
        }
    })))
}

/// The canary runs of the suite, newest first, by model.
fn canaries_by_model<'a>(
    runs: &'a [eval::service::RunRecord],
    suite: &str,
) -> std::collections::BTreeMap<&'a str, Vec<&'a eval::service::RunRecord>> {
    let mut by: std::collections::BTreeMap<&str, Vec<&eval::service::RunRecord>> = Default::default();
    for r in runs.iter().filter(|r| r.actor == CANARY_ACTOR && r.request.suite == suite) {
        by.entry(r.request.model.as_str()).or_default().push(r);
    }
    by
}

async fn submit_canaries(
    svc: &Service,
    gw: &gateway::Gateway,
    governance: &govern::Services,
    canary: &Canary,
) -> Result<(), eval::EvalError> {
    let runs = svc.list(eval::service::MAX_LIST).await?;
    let by = canaries_by_model(&runs, &canary.suite);
    let catalog = gw.catalog();
    for model in &catalog.order {
        let allowed = vocab::ModelPolicy::decide(governance.policy.as_ref(), model, svc.tenant()) == vocab::ModelDecision::Allow;
        let busy = by.get(model.as_str()).and_then(|r| r.first()).is_some_and(|r| matches!(r.state, RunState::Queued | RunState::Running));
        if !allowed || busy {
            continue;
        }
        let req = eval::service::NewRun {
            model: model.clone(),
            suite: canary.suite.clone(),
            limit: Some(canary.limit),
            fresh: true,
            ..Default::default()
        };
        svc.submit(req, CANARY_ACTOR).await?;
    }
    Ok(())
}

fn parse_samples(bytes: &[u8]) -> Vec<eval::report::Sample> {
    String::from_utf8_lossy(bytes).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// Each model's baseline: the last canary that was not a significant drop against the
/// baseline before it. It lives in memory: after a restart the first canary seen becomes it.
#[derive(Default)]
struct Baselines(std::collections::HashMap<String, String>);

async fn judge_canaries(
    svc: &Service,
    governance: &govern::Services,
    canary: &Canary,
    baselines: &mut Baselines,
    now_ms: i64,
) -> Result<(), eval::EvalError> {
    let runs = svc.list(eval::service::MAX_LIST).await?;
    for (model, canaries) in canaries_by_model(&runs, &canary.suite) {
        let Some(newest) = canaries.iter().find(|r| r.state == RunState::Succeeded) else { continue };
        let Some(baseline) = baselines.0.get(model).cloned() else {
            baselines.0.insert(model.to_string(), newest.id.clone());
            continue;
        };
        if baseline == newest.id {
            continue;
        }
        let (Some(a), Some(b)) = (svc.samples(&baseline).await?, svc.samples(&newest.id).await?) else { continue };
        let c = eval::compare::compare(&parse_samples(&a), &parse_samples(&b), eval::compare::DEFAULT_ALPHA);
        let key = format!("eval-canary/{model}");
        let result = if c.significant_drop {
            // The baseline stays: the alert stays open until a canary is no worse than it.
            let message = format!(
                "canary on {}: {:.1}% → {:.1}% on {} paired items (McNemar exact p = {:.4}; runs {baseline} → {})",
                canary.suite,
                c.accuracy_a * 100.0,
                c.accuracy_b * 100.0,
                c.paired,
                c.p_value,
                newest.id
            );
            let raise = govern::alerts::Raise { key, kind: "eval_drop", subject: format!("model/{model}"), tenant: None, message };
            governance.alerts.raise(raise, now_ms).await.map(|_| ())
        } else {
            baselines.0.insert(model.to_string(), newest.id.clone());
            governance.alerts.close(&key, now_ms).await.map(|_| ())
        };
        if let Err(e) = result {
            tracing::warn!(%model, error = %e, "canary: updating the alert failed");
        }
    }
    Ok(())
}
