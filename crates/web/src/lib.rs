//! The operator console: server-rendered pages at `/` over the compute service, the gateway and
//! the simulator — the network on a map of China, clusters, jobs with their placement reasons
//! and live logs, simulation reports, models, and tenants with their keys and usage.
//!
//! Shape: thin handlers in `pages/` read through the domain services (never SQL) and render
//! with maud; `auth.rs` holds accounts, sessions and CSRF; `live.rs` streams a job's state,
//! events and logs as server-sent events. Every asset is compiled in (`assets.rs`), so the
//! console works with no network beyond the browser's connection to aiplus.
//!
//! Architecture invariant: a tenant viewer's every read is filtered by its tenant, and an
//! object of another tenant answers exactly like one that does not exist (404).

pub mod assets;
pub mod auth;
pub mod charts;
pub mod error;
pub mod i18n;
pub mod layout;
mod live;
pub mod map;
mod pages;
pub mod throttle;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

pub use auth::{Account, Role, Viewer};
pub use error::ConsoleError;

/// Largest form the console accepts.
pub const MAX_FORM_BYTES: usize = 64 * 1024;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Serve the console at `/`.
    pub enabled: bool,
    /// Mark the session cookie `Secure` (set this when aiplus is behind HTTPS).
    pub secure_cookies: bool,
    /// How long a login lasts.
    pub session_hours: u32,
    /// The first operator's password; when absent, a random one is written to
    /// `<data dir>/console-admin-password`.
    pub admin_password: Option<String>,
    /// Most jobs a replay started from the console may have.
    pub max_sim_jobs: usize,
    /// Most simulation reports kept: saving one deletes the oldest beyond this many.
    pub max_sim_reports: u32,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self { enabled: true, secure_cookies: false, session_hours: 12, admin_password: None, max_sim_jobs: 20_000, max_sim_reports: 200 }
    }
}

impl ConsoleConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=24 * 30).contains(&self.session_hours) {
            return Err("console.session_hours: use 1 to 720".into());
        }
        if !(1..=1_000_000).contains(&self.max_sim_jobs) {
            return Err("console.max_sim_jobs: use 1 to 1000000".into());
        }
        if !(1..=100_000).contains(&self.max_sim_reports) {
            return Err("console.max_sim_reports: use 1 to 100000".into());
        }
        Ok(())
    }
}

/// What the console's pages read from and act on.
pub struct Console {
    pub(crate) store: store::Store,
    /// Absent on an instance that does not run compute (another instance does).
    pub(crate) compute: Option<Arc<jobs::ComputeService>>,
    pub(crate) gateway: Arc<gateway::Gateway>,
    /// The network simulations run on when no compute service is here to ask.
    pub(crate) seed_network: Arc<compute::Network>,
    pub(crate) cfg: ConsoleConfig,
    pub(crate) data_dir: PathBuf,
    pub(crate) logins: throttle::Throttle,
    /// Argon2 is deliberately slow; at most two hashes at once keep logins from starving the server.
    pub(crate) hash_permits: tokio::sync::Semaphore,
    /// One replay at a time: a replay takes a core for seconds to minutes. Shared so that the
    /// background task running a replay can own the permit.
    pub(crate) sim_permit: Arc<tokio::sync::Semaphore>,
    /// The replays this process runs and ran lately, for their progress pages.
    pub(crate) sim_runs: pages::sim::runs::SimRuns,
    /// Model states, filings, alerts and incidents, and the transparency log (absent in tests
    /// that build the console alone).
    pub(crate) governance: Option<(Arc<govern::Services>, Arc<tlog::Log>)>,
    /// Evaluation runs, when the server has them.
    pub(crate) eval: Option<Arc<eval::service::Service>>,
    /// Tenants' agents (their page answers 404 without them).
    pub(crate) agents: Option<Arc<agents::Agents>>,
    /// The data exchange (its pages answer 404 without it).
    pub(crate) data: Option<Arc<data::exchange::Exchange>>,
    /// Open-source evaluation's months (its pages answer 404 without them), and the log's key,
    /// which signs the credit reports an operator issues.
    pub(crate) oss: Option<Arc<oss::ingest::Store>>,
    pub(crate) oss_key: Option<Arc<tlog::SignerKey>>,
}

pub type SharedConsole = Arc<Console>;

impl Console {
    pub fn new(
        store: store::Store,
        compute: Option<Arc<jobs::ComputeService>>,
        gateway: Arc<gateway::Gateway>,
        seed_network: Arc<compute::Network>,
        cfg: ConsoleConfig,
        data_dir: PathBuf,
    ) -> Self {
        Self {
            store,
            compute,
            gateway,
            seed_network,
            cfg,
            data_dir,
            logins: throttle::Throttle::default(),
            hash_permits: tokio::sync::Semaphore::new(2),
            sim_permit: Arc::new(tokio::sync::Semaphore::new(1)),
            sim_runs: pages::sim::runs::SimRuns::default(),
            governance: None,
            eval: None,
            agents: None,
            data: None,
            oss: None,
            oss_key: None,
        }
    }

    /// Shows the data exchange.
    pub fn with_data(mut self, exchange: Arc<data::exchange::Exchange>) -> Self {
        self.data = Some(exchange);
        self
    }

    /// Shows open-source evaluation; operators issue credit reports signed with `key`.
    pub fn with_oss(mut self, store: Arc<oss::ingest::Store>, key: Arc<tlog::SignerKey>) -> Self {
        self.oss = Some(store);
        self.oss_key = Some(key);
        self
    }

    pub(crate) fn data(&self) -> Result<&Arc<data::exchange::Exchange>, ConsoleError> {
        self.data.as_ref().ok_or(ConsoleError::NotFound)
    }

    /// Shows governance (its pages answer 404 without it).
    pub fn with_eval(mut self, service: Arc<eval::service::Service>) -> Self {
        self.eval = Some(service);
        self
    }

    /// Shows tenants' agents.
    pub fn with_agents(mut self, agents: Arc<agents::Agents>) -> Self {
        self.agents = Some(agents);
        self
    }

    pub(crate) fn agents(&self) -> Result<&Arc<agents::Agents>, ConsoleError> {
        self.agents.as_ref().ok_or(ConsoleError::NotFound)
    }

    pub(crate) fn eval(&self) -> Result<&Arc<eval::service::Service>, ConsoleError> {
        self.eval.as_ref().ok_or(ConsoleError::NotFound)
    }

    pub fn with_governance(mut self, services: Arc<govern::Services>, log: Arc<tlog::Log>) -> Self {
        self.governance = Some((services, log));
        self
    }

    pub(crate) fn governance(&self) -> Result<&(Arc<govern::Services>, Arc<tlog::Log>), ConsoleError> {
        self.governance.as_ref().ok_or(ConsoleError::NotFound)
    }

    pub(crate) fn now_ms(&self) -> i64 {
        match &self.compute {
            Some(c) => c.now_ms(),
            None => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64),
        }
    }

    /// Tenants, keys and sessions: the gateway's identity, which the gate shares.
    pub(crate) fn identity(&self) -> &identity::Identity {
        &self.gateway.identity
    }

    pub(crate) fn compute(&self) -> Result<&Arc<jobs::ComputeService>, ConsoleError> {
        self.compute.as_ref().ok_or(ConsoleError::Busy("this instance does not run compute (server.compute = false)".into()))
    }
}

pub(crate) use gateway::tenants::tenant_id_ok;

/// Refuses a state-changing request whose `Origin` is not this site: with SameSite=Strict
/// cookies and CSRF tokens this is the third, independent guard.
async fn same_origin(req: Request, next: Next) -> Response {
    if req.method() == Method::POST
        && let Some(origin) = req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok())
    {
        let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
        let origin_host = origin.split_once("://").map_or("", |(_, h)| h);
        if origin == "null" || origin_host != host {
            return ConsoleError::CrossOrigin.into_response();
        }
    }
    next.run(req).await
}

pub fn router(console: SharedConsole) -> Router {
    Router::new()
        .route("/", get(pages::network::overview))
        .route("/network/live", get(live::network))
        .route("/login", get(pages::session::login_form).post(pages::session::login))
        .route("/logout", post(pages::session::logout))
        .route("/lang/{code}", get(pages::session::set_lang))
        .route("/clusters/{id}", get(pages::cluster::show))
        .route("/jobs", get(pages::jobs::list).post(pages::jobs::submit))
        .route("/jobs/live", get(live::jobs))
        .route("/jobs/{id}", get(pages::jobs::show))
        .route("/jobs/{id}/cancel", post(pages::jobs::cancel))
        .route("/jobs/{id}/live", get(live::job))
        .route("/sim", get(pages::sim::index).post(pages::sim::run))
        .route("/sim/runs/{id}", get(pages::sim::runs::show))
        .route("/sim/runs/{id}/status", get(pages::sim::runs::status))
        .route("/sim/{id}", get(pages::sim::show))
        .route("/sim/{id}/chart.svg", get(pages::sim::chart))
        .route("/targets", get(pages::targets::index).post(pages::targets::add))
        .route("/targets.csv", get(pages::targets::csv))
        .route("/models", get(pages::models::index))
        .route("/agents", get(pages::agents::index).post(pages::playground::declare))
        .route("/agents/playground", post(pages::playground::play))
        .route("/data", get(pages::data::index))
        .route("/data/{tenant}/{id}", get(pages::data::show))
        .route("/oss", get(pages::oss::index))
        .route("/oss/developers/{login}", get(pages::oss::developer))
        .route("/oss/developers/{login}/report", post(pages::oss::issue))
        .route("/oss/reports/{id}", get(pages::oss::report))
        .route("/oss/repos/{owner}/{repo}", get(pages::oss::repo))
        .route("/evaluation", get(pages::eval::index).post(pages::eval::submit))
        .route("/evaluation/runs/{id}", get(pages::eval::show))
        .route("/governance", get(pages::govern::index))
        .route("/governance/models/{name}", post(pages::govern::set_state))
        .route("/governance/log", get(pages::log::explorer))
        .route("/tenants", get(pages::tenants::index).post(pages::tenants::create_tenant))
        .route("/tenants/{tenant}", get(pages::tenants::show))
        .route("/tenants/{tenant}/keys", post(pages::tenants::create_key))
        .route("/tenants/{tenant}/keys/{id}/revoke", post(pages::tenants::revoke_key))
        .route("/tenants/{tenant}/settings", post(pages::tenants::save_settings))
        .route("/accounts", post(pages::tenants::create_account))
        .route("/static/app.css", get(assets::css))
        .route("/static/app.js", get(assets::js))
        .route("/static/sim.js", get(assets::sim_js))
        .route("/favicon.ico", get(assets::favicon))
        .layer(axum::middleware::from_fn(same_origin))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .with_state(console)
}

/// State for handlers, named for readability.
pub(crate) type C = State<SharedConsole>;
