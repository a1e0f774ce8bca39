//! Model-as-a-Service: an OpenAI-compatible API (`/v1/models`, `/v1/chat/completions`,
//! `/v1/completions`, `/v1/responses`, `/v1/embeddings`) in front of upstream model servers,
//! with tenant API keys, limits, region-aware routing with fallback and circuit breakers, and
//! metering into the platform's usage ledger.
//!
//! Architecture invariant: metering never waits on the database. Keys and tenant settings are
//! checked against in-memory copies (refreshed from the store every [`REFRESH_EVERY`]); usage
//! events go through a bounded channel to a batching writer. Only a limit's lease, about once
//! per 1/200 of the limit, reads the store on the request path.

pub mod admin;
pub mod admission;
pub mod config;
pub mod conversations;
pub mod embeddings;
pub mod guardrail;
pub mod limits;
pub mod meter;
pub mod metrics;
pub mod models;
pub mod proxy;
pub mod responses;
pub mod router;
pub mod sse;
pub mod tenants;
pub mod test_double;
pub mod toolcalls;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

pub use config::GatewayConfig;
pub use identity::KeyRecord;
pub use meter::{Meter, RequestDetail};
pub use tenants::TenantSettings;

/// Who a request is: the principal the gate resolved from its API key.
pub type Caller = Arc<identity::Principal>;

/// Largest request body the gateway accepts.
pub const MAX_BODY_BYTES: usize = 4 << 20;
/// How often keys and tenant settings are re-read, so that a key created or revoked on another
/// instance takes effect here within this time.
pub const REFRESH_EVERY: Duration = Duration::from_secs(2);

/// Where a deployment's cluster is and what energy and carbon cost there right now.
#[derive(Clone, Debug, PartialEq)]
pub struct Site {
    pub hub: String,
    pub province: String,
    /// Yuan per kWh: the tariff now × PUE plus the carbon price × the grid's carbon intensity.
    pub cost_cny_per_kwh: f64,
}

/// The compute network as the gateway sees it: cluster id → site. Implemented by the server
/// over the compute service, so the gateway needs no network model of its own.
pub trait Sites: Send + Sync {
    fn site(&self, cluster: &str, now_ms: i64) -> Option<Site>;
}

pub struct Gateway {
    /// The models of aiplus.toml, and the upstream keys their `api_key_env` name.
    pub(crate) config_models: Vec<config::ModelConfig>,
    /// The API's models with their opened keys, as last read from the store.
    pub(crate) api_models: RwLock<Vec<(config::ModelConfig, std::collections::BTreeMap<String, String>)>>,
    /// Replicas placed on the compute network, by model (`set_placed`).
    pub(crate) placed: RwLock<models::Placed>,
    pub(crate) env_keys: HashMap<String, String>,
    /// Config and API models together; requests take a snapshot.
    pub(crate) catalog: RwLock<Arc<models::Catalog>>,
    /// Tenants, keys and who is calling; shared with the gate and the console.
    pub identity: Arc<identity::Identity>,
    /// Seals the upstream keys stored through the API.
    pub(crate) sealer: Arc<identity::Sealer>,
    pub(crate) meter: Meter,
    pub(crate) http: reqwest::Client,
    pub(crate) max_attempts: u32,
    pub(crate) allow_local_upstreams: bool,
    pub(crate) store: store::Store,
    pub(crate) guard: Option<guardrail::KeywordGuard>,
    pub(crate) limiter: Arc<limits::Limiter>,
    pub(crate) tenants: RwLock<HashMap<String, TenantSettings>>,
    pub(crate) sites: Option<Arc<dyn Sites>>,
    pub metrics: metrics::Metrics,
    pub(crate) embedded: Option<Arc<embeddings::Embedded>>,
    /// Governance's word on each model (suspended, restricted); none: every model may serve.
    pub(crate) policy: Option<Arc<dyn vocab::ModelPolicy>>,
    /// Told of every metered request (monitoring, end users' strikes).
    pub(crate) observers: Vec<Arc<dyn vocab::Observer>>,
    /// Serves `agent:` models on `/v1/responses`; set once the agents pillar is plugged in.
    pub(crate) agents: std::sync::OnceLock<Arc<dyn responses::AgentHost>>,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    Config(String),
    #[error("http client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("store: {0}")]
    Store(#[from] store::StoreError),
    #[error("identity: {0}")]
    Identity(#[from] identity::IdentityError),
}

impl Gateway {
    pub async fn new(
        cfg: GatewayConfig,
        store: store::Store,
        identity: Arc<identity::Identity>,
        sealer: Arc<identity::Sealer>,
        meter: Meter,
        sites: Option<Arc<dyn Sites>>,
    ) -> Result<Self, GatewayError> {
        cfg.validate().map_err(GatewayError::Config)?;
        let mut env_keys = HashMap::new();
        for m in &cfg.models {
            for d in &m.deployments {
                if let Some(var) = &d.api_key_env {
                    let key = std::env::var(var)
                        .map_err(|_| GatewayError::Config(format!("deployment {}: environment variable {var} is not set", d.id)))?;
                    env_keys.insert(d.id.clone(), key);
                }
            }
        }
        let http = outbound::client(cfg.allow_local_upstreams, Duration::from_secs(5)).pool_max_idle_per_host(256).build()?;
        let guard = match &cfg.guardrail.keywords_file {
            Some(p) => Some(
                guardrail::KeywordGuard::load(p, cfg.guardrail.check_output)
                    .map_err(|e| GatewayError::Config(format!("gateway.guardrail.keywords_file: {e}")))?,
            ),
            None => None,
        };
        let gw = Self {
            catalog: RwLock::new(Arc::new(models::Catalog::build(&cfg.models, Vec::new(), &models::Placed::new(), &env_keys, None))),
            config_models: cfg.models,
            api_models: RwLock::default(),
            placed: RwLock::default(),
            env_keys,
            identity,
            sealer,
            meter,
            http,
            max_attempts: cfg.max_attempts.max(1),
            allow_local_upstreams: cfg.allow_local_upstreams,
            guard,
            limiter: Arc::new(limits::Limiter::new(store.clone())),
            store,
            tenants: RwLock::new(HashMap::new()),
            sites,
            metrics: metrics::Metrics::default(),
            embedded: None,
            policy: None,
            observers: Vec::new(),
            agents: std::sync::OnceLock::new(),
        };
        gw.check_clusters(&gw.config_models).map_err(GatewayError::Config)?;
        gw.reload_keys().await?;
        let resealed = gw.seal_stored_keys().await?;
        if resealed > 0 {
            tracing::info!(models = resealed, "sealed upstream keys stored in the clear by an earlier version");
        }
        gw.reload_models().await?;
        Ok(gw)
    }

    /// The models now.
    /// Whether the guardrail's keywords occur in a text (a tool's output, before a model reads
    /// it); false without a guardrail.
    pub fn guard_blocks(&self, text: &str) -> bool {
        self.guard.as_ref().is_some_and(|g| g.find(text).is_some())
    }

    pub fn catalog(&self) -> Arc<models::Catalog> {
        self.catalog.read().map(|c| c.clone()).unwrap_or_default()
    }

    /// Checks that every deployment's cluster is in the compute network.
    pub(crate) fn check_clusters(&self, models: &[config::ModelConfig]) -> Result<(), String> {
        let Some(sites) = &self.sites else { return Ok(()) };
        for (i, m) in models.iter().enumerate() {
            for (j, d) in m.deployments.iter().enumerate() {
                if let Some(c) = &d.cluster
                    && sites.site(c, 0).is_none()
                {
                    return Err(format!("gateway.model[{i}].deployment[{j}].cluster: no cluster {c:?} in the network"));
                }
            }
        }
        Ok(())
    }

    /// Asks `policy` before serving any model.
    pub fn with_policy(mut self, policy: Arc<dyn vocab::ModelPolicy>) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Tells `observer` of every metered request.
    pub fn with_observer(mut self, observer: Arc<dyn vocab::Observer>) -> Self {
        self.observers.push(observer);
        self
    }

    /// Serves `model` (which loads in the background) at `/v1/embeddings`.
    pub fn with_embedded(mut self, model: Arc<embeddings::Embedded>) -> Result<Self, GatewayError> {
        if self.catalog().routes.contains_key(&model.name) {
            return Err(GatewayError::Config(format!(
                "gateway.embedded.name: {:?} is also an upstream model; give one of them another name",
                model.name
            )));
        }
        self.embedded = Some(model);
        Ok(self)
    }

    /// Re-reads tenants, keys, tokens and tenant settings from the store into memory.
    pub async fn reload_keys(&self) -> Result<(), GatewayError> {
        self.identity.reload().await?;
        let tenants: Vec<(String, TenantSettings)> = self.store.tenant_settings().await?;
        if let Ok(mut t) = self.tenants.write() {
            *t = tenants.into_iter().collect();
        }
        Ok(())
    }

    /// Keeps the in-memory keys and tenant settings in step with the store (other instances
    /// change them too), until `stop` turns true.
    pub fn spawn_refresh(self: &Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let gw = self.clone();
        tokio::spawn(async move {
            // Conversations past their retention are forgotten about once an hour (and at start).
            let mut refreshes: u64 = 0;
            let sweep_every = (3600 / REFRESH_EVERY.as_secs().max(1)).max(1);
            loop {
                if refreshes.is_multiple_of(sweep_every) {
                    let before_ms = proxy::now_ms() - conversations::RETENTION_DAYS * 86_400_000;
                    match gw.store.forget_conversations(before_ms).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(conversations = n, "forgot conversations past their retention"),
                        Err(e) => tracing::warn!(error = %e, "forgetting old conversations"),
                    }
                }
                refreshes += 1;
                tokio::select! {
                    () = tokio::time::sleep(REFRESH_EVERY) => {}
                    _ = stop.changed() => return,
                }
                if let Err(e) = gw.reload_keys().await {
                    tracing::warn!(error = %e, "refreshing keys and tenants failed; keeping the previous copy");
                }
                if let Err(e) = gw.reload_models().await {
                    tracing::warn!(error = %e, "refreshing the models failed; keeping the previous catalog");
                }
            }
        })
    }

    pub(crate) fn tenant(&self, tenant: &str) -> TenantSettings {
        self.tenants.read().ok().and_then(|t| t.get(tenant).cloned()).unwrap_or_default()
    }
}

/// The endpoints other pillars call in-process (evaluation runs, canaries, agents' steps).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InProcess {
    ChatCompletions,
    Completions,
    /// Responses (an agent's model step; streamed with [`Gateway::respond_as`]).
    Responses,
    /// Embeddings (documents and queries of `file_search`).
    Embeddings,
}

/// Largest answer an in-process call reads.
pub const MAX_IN_PROCESS_ANSWER_BYTES: usize = 16 << 20;

/// The header an agent's model step carries, in process only, with its run's response id; the
/// ledger row keeps it as `refs.agent_run`, which is how the console counts agents' traffic. The
/// public router drops it from every request, so no client can pass its own calls off as an
/// agent's.
pub const AGENT_RUN_HEADER: &str = "x-aiplus-agent-run";

impl Gateway {
    /// One request through the admission pipeline from inside the process, as `caller`: the same
    /// handler a `/v1` request reaches after the gate, so it is admitted, metered, limited and
    /// routed like any other. Returns the status, the `Retry-After` seconds if the gateway said
    /// when to retry (a limit reached), and the answer's body.
    /// `deployment` pins the request to one deployment of the model, as `X-Aiplus-Deployment`
    /// does.
    pub async fn call(
        self: &Arc<Self>,
        caller: Caller,
        endpoint: InProcess,
        deployment: Option<&str>,
        body: bytes::Bytes,
    ) -> (axum::http::StatusCode, Option<u64>, bytes::Bytes) {
        self.call_as(caller, endpoint, deployment, None, &[], body).await
    }

    /// [`Gateway::call`] with the `X-Request-Id` the ledger event carries and headers passed on
    /// as a client would send them (an agent's step: its regions, its client's end user).
    pub async fn call_as(
        self: &Arc<Self>,
        caller: Caller,
        endpoint: InProcess,
        deployment: Option<&str>,
        request_id: Option<&str>,
        forward: &[(&'static str, String)],
        body: bytes::Bytes,
    ) -> (axum::http::StatusCode, Option<u64>, bytes::Bytes) {
        let r = self.respond_as(caller, endpoint, deployment, request_id, forward, body).await;
        let status = r.status();
        let retry_after_s = r.headers().get(axum::http::header::RETRY_AFTER).and_then(|v| v.to_str().ok()?.trim().parse().ok());
        match axum::body::to_bytes(r.into_body(), MAX_IN_PROCESS_ANSWER_BYTES).await {
            Ok(b) => (status, retry_after_s, b),
            Err(_) => {
                let body = bytes::Bytes::from_static(b"{\"error\": {\"message\": \"answer too large or broken\"}}");
                (axum::http::StatusCode::BAD_GATEWAY, None, body)
            }
        }
    }

    /// [`Gateway::call_as`] answered as the handler answers, its body unread: a stream
    /// (`"stream": true`) arrives as it is written (an agent's step, token by token).
    pub async fn respond_as(
        self: &Arc<Self>,
        caller: Caller,
        endpoint: InProcess,
        deployment: Option<&str>,
        request_id: Option<&str>,
        forward: &[(&'static str, String)],
        body: bytes::Bytes,
    ) -> axum::response::Response {
        use axum::extract::State;
        if body.len() > MAX_BODY_BYTES {
            return proxy::openai_error(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "body_too_large",
                "request too large",
                None,
            );
        }
        let who = Some(axum::Extension(caller));
        let mut headers = axum::http::HeaderMap::new();
        if let Some(v) = deployment.and_then(|d| axum::http::HeaderValue::from_str(d).ok()) {
            headers.insert("x-aiplus-deployment", v);
        }
        if let Some(v) = request_id.and_then(|d| axum::http::HeaderValue::from_str(d).ok()) {
            headers.insert("x-request-id", v);
        }
        for (name, value) in forward {
            if let Ok(v) = axum::http::HeaderValue::from_str(value) {
                headers.append(*name, v);
            }
        }
        match endpoint {
            InProcess::ChatCompletions => proxy::chat_completions(State(self.clone()), who, headers, body).await,
            InProcess::Completions => proxy::completions(State(self.clone()), who, headers, body).await,
            InProcess::Responses => responses::create(State(self.clone()), who, headers, body).await,
            InProcess::Embeddings => embeddings::create(State(self.clone()), who, headers, body).await,
        }
    }
}

/// `/v1/...` (OpenAI-compatible) and `/api/v1/keys` (management).
pub fn router(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route("/v1/models", get(proxy::models))
        .route("/v1/chat/completions", post(proxy::chat_completions))
        .route("/v1/completions", post(proxy::completions))
        .route("/v1/responses", post(responses::create))
        .route("/v1/embeddings", post(embeddings::create))
        .route("/v1/responses/{id}", get(responses::retrieve))
        .route("/v1/responses/{id}/cancel", post(responses::cancel))
        .route("/v1/conversations", post(conversations::create))
        .route("/v1/conversations/{id}", get(conversations::retrieve).post(conversations::update).delete(conversations::delete))
        .route("/v1/conversations/{id}/items", get(conversations::items).post(conversations::add))
        .route("/v1/conversations/{id}/items/{item_id}", get(conversations::item).delete(conversations::delete_item))
        .route("/api/v1/keys", get(proxy::list_keys).post(proxy::create_key))
        .route("/api/v1/keys/{id}/revoke", post(proxy::revoke_key))
        .route("/api/v1/tenants", get(tenants::list).post(tenants::create))
        .route("/api/v1/tenants/{tenant}", get(tenants::get).put(tenants::put))
        .route("/api/v1/gateway", get(proxy::status))
        .route("/api/v1/models", get(models::list))
        .route("/api/v1/models/{name}", get(models::get).put(models::put).delete(models::delete))
        .route("/metrics", get(proxy::metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_request(drop_internal_headers))
        .with_state(gw)
}

/// Removes the headers only in-process callers may set.
async fn drop_internal_headers(mut req: axum::extract::Request) -> axum::extract::Request {
    req.headers_mut().remove(AGENT_RUN_HEADER);
    req
}
