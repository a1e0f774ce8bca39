//! Evaluation plugged into the gateway: the server's runs ask models through the gateway's
//! admission pipeline in-process (not over HTTP), as an internal principal of the evaluation
//! tenant named after the run, so they are metered, limited and routed like any request.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use eval::prompt::Endpoint;
use eval::run::CallError;
use eval::service::{Asker, Service};
use serde_json::Value;

struct GatewayAsker {
    gw: Arc<gateway::Gateway>,
    tenant: String,
}

impl Asker for GatewayAsker {
    fn ask(&self, run: &str, endpoint: Endpoint, body: Value) -> Pin<Box<dyn Future<Output = Result<Value, CallError>> + Send + 'static>> {
        let gw = self.gw.clone();
        let caller =
            Arc::new(identity::Principal::internal_tenant(format!("eval:{run}"), self.tenant.clone(), &[identity::Scope::Inference]));
        Box::pin(async move {
            let bytes = serde_json::to_vec(&body).map_err(|e| CallError::Fail(e.to_string()))?;
            let endpoint = match endpoint {
                Endpoint::Chat => gateway::InProcess::ChatCompletions,
                Endpoint::Completions => gateway::InProcess::Completions,
            };
            let (status, answer) = gw.call(caller, endpoint, bytes.into()).await;
            eval::run::classify(status.as_u16(), None, &answer)
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
