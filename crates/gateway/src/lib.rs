//! Model-as-a-Service: an OpenAI-compatible API (`/v1/models`, `/v1/chat/completions`,
//! `/v1/completions`) in front
//! of upstream model servers, with tenant API keys, weighted routing with fallback and circuit
//! breakers, and metering into the platform's usage ledger.
//!
//! Architecture invariant: the database is never on the request path. Keys are checked against
//! an in-memory copy; usage events go through a bounded channel to a batching writer.

pub mod config;
pub mod guardrail;
pub mod keys;
pub mod meter;
pub mod proxy;
pub mod router;
pub mod test_double;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

pub use config::GatewayConfig;
pub use keys::{Caller, KeyRecord, KeyRing};
pub use meter::Meter;

/// Largest request body the gateway accepts.
pub const MAX_BODY_BYTES: usize = 4 << 20;

pub struct Gateway {
    pub(crate) routes: HashMap<String, router::ModelRoute>,
    pub(crate) model_order: Vec<String>,
    pub keys: KeyRing,
    pub(crate) meter: Meter,
    pub(crate) http: reqwest::Client,
    pub(crate) max_attempts: u32,
    pub(crate) store: store::Store,
    /// Upstream keys by deployment id, read once from the environment.
    pub(crate) upstream_keys: HashMap<String, String>,
    pub(crate) guard: Option<guardrail::KeywordGuard>,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    Config(String),
    #[error("http client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("store: {0}")]
    Store(#[from] store::StoreError),
}

impl Gateway {
    pub async fn new(cfg: GatewayConfig, store: store::Store, meter: Meter) -> Result<Self, GatewayError> {
        cfg.validate().map_err(GatewayError::Config)?;
        let mut upstream_keys = HashMap::new();
        for m in &cfg.models {
            for d in &m.deployments {
                if let Some(var) = &d.api_key_env {
                    let key = std::env::var(var)
                        .map_err(|_| GatewayError::Config(format!("deployment {}: environment variable {var} is not set", d.id)))?;
                    upstream_keys.insert(d.id.clone(), key);
                }
            }
        }
        let http =
            reqwest::Client::builder().tcp_nodelay(true).connect_timeout(Duration::from_secs(5)).pool_max_idle_per_host(256).build()?;
        let guard = match &cfg.guardrail.keywords_file {
            Some(p) => Some(
                guardrail::KeywordGuard::load(p, cfg.guardrail.check_output)
                    .map_err(|e| GatewayError::Config(format!("gateway.guardrail.keywords_file: {e}")))?,
            ),
            None => None,
        };
        let model_order = cfg.models.iter().map(|m| m.name.clone()).collect();
        let routes = cfg.models.into_iter().map(|m| (m.name.clone(), router::ModelRoute::new(m))).collect();
        let gw = Self {
            routes,
            model_order,
            keys: KeyRing::default(),
            meter,
            http,
            max_attempts: cfg.max_attempts.max(1),
            store,
            upstream_keys,
            guard,
        };
        gw.reload_keys().await?;
        Ok(gw)
    }

    /// Re-reads the active keys from the store into memory.
    pub async fn reload_keys(&self) -> Result<(), GatewayError> {
        let keys: Vec<(String, KeyRecord)> = self.store.keys(None).await?;
        self.keys.load(keys);
        Ok(())
    }
}

/// `/v1/...` (OpenAI-compatible) and `/api/v1/keys` (management).
pub fn router(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route("/v1/models", get(proxy::models))
        .route("/v1/chat/completions", post(proxy::chat_completions))
        .route("/v1/completions", post(proxy::completions))
        .route("/api/v1/keys", get(proxy::list_keys).post(proxy::create_key))
        .route("/api/v1/keys/{id}/revoke", post(proxy::revoke_key))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(gw)
}
