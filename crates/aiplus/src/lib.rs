//! The aiplus server as a library: [`app`] puts every route of the server (the management API,
//! the ledger, identity, the gateway, the console and the OpenAPI document) behind the one gate,
//! so that tests can drive the whole server in-process (`tower::ServiceExt::oneshot`) and
//! `aiplus serve` runs the very same router. This is the one place where the pillars' routers
//! are plugged together.

pub mod agent_background;
pub mod agent_model;
pub mod agent_search;
pub mod agent_serving;
pub mod agent_stdio;
pub mod evaluation;
pub mod model_service;
pub mod openapi;

use std::sync::Arc;

/// What the server is made of, already started.
pub struct Parts {
    pub store: store::Store,
    pub identity: Arc<identity::Identity>,
    /// Absent on an instance that does not run compute (another instance does).
    pub compute: Option<Arc<jobs::ComputeService>>,
    pub gateway: Arc<gateway::Gateway>,
    /// Absent when the console is turned off.
    pub console: Option<Arc<web::Console>>,
    /// Models deployed on the compute network; absent where compute is.
    pub models: Option<Arc<models::service::Service>>,
    /// The governance transparency log.
    pub log: Arc<tlog::Log>,
    /// Model states, filings, alerts, monitoring, incidents and end users.
    pub governance: Arc<govern::Services>,
    /// Evaluation runs asked of the server.
    pub eval: Arc<eval::service::Service>,
    /// Tenants' agents.
    pub agents: Arc<agents::Agents>,
    /// Tenants' document collections, for `file_search`.
    pub collections: Arc<agents::collections::Collections>,
    /// The data exchange.
    pub data: Arc<data::exchange::Exchange>,
    /// Open-source contribution evaluation's months (`<data_dir>/oss`).
    pub oss: Arc<oss::ingest::Store>,
    /// The log's signing key, which signs credit reports as it signs checkpoints.
    pub log_key: Arc<tlog::SignerKey>,
    /// Host names served besides IP addresses and `localhost` (`server.hosts`).
    pub hosts: Vec<String>,
    pub clock: Arc<dyn vocab::Clock>,
}

/// Every route of the server, behind the gate.
pub fn app(p: Parts) -> axum::Router {
    let app = match &p.compute {
        Some(svc) => api::router(svc.clone()),
        None => axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok\n" })),
    };
    let g = &p.governance;
    let identity_api = Arc::new(api::identity_routes::IdentityApi { identity: p.identity.clone(), clock: p.clock.clone() });
    let mut app = app
        .merge(api::identity_routes::router(identity_api))
        .merge(api::usage_routes::router(p.store.clone()))
        .merge(api::log_routes::router(p.log.clone()))
        .merge(api::govern_routes::router(Arc::new(api::govern_routes::GovernApi { states: g.states.clone(), clock: p.clock.clone() })))
        .merge(api::filing_routes::router(Arc::new(api::filing_routes::FilingApi {
            filings: g.filings.clone(),
            alerts: g.alerts.clone(),
            clock: p.clock.clone(),
        })))
        .merge(api::monitor_routes::router(Arc::new(api::monitor_routes::MonitorApi {
            monitor: g.monitor.clone(),
            recorder: g.recorder.clone(),
            webhooks: g.webhooks.clone(),
            incidents: g.incidents.clone(),
            end_users: g.end_users.clone(),
            clock: p.clock.clone(),
        })))
        .merge(api::eval_routes::router(p.eval))
        .merge(api::agent_routes::router(p.agents))
        .merge(api::collection_routes::router(p.collections))
        .merge(api::data_routes::router(p.data))
        .merge(api::oss_routes::router(Arc::new(api::oss_routes::OssApi {
            store: p.oss,
            log: p.log.clone(),
            key: p.log_key,
            clock: p.clock.clone(),
        })))
        .merge(gateway::router(p.gateway))
        .route("/api/v1/openapi.json", axum::routing::get(openapi::serve));
    if let Some(models) = p.models {
        let models_api = api::model_routes::ModelsApi { service: models, log: p.log.clone(), clock: p.clock.clone() };
        app = app.merge(api::model_routes::router(Arc::new(models_api)));
    }
    if let Some(console) = p.console {
        app = app.merge(web::router(console));
    }
    // The gate goes on last, so that it stands in front of every route above.
    let gate = Arc::new(api::gate::Gate { identity: p.identity, hosts: api::gate::Hosts::new(&p.hosts), clock: p.clock });
    api::gate::guard(app, gate)
}
