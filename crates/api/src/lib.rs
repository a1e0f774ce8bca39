//! The HTTP API of aiplus (axum): the network registry and the job queue under `/api/v1`.
//!
//! Shape: thin handlers (`routes`) → the compute pillar's service (`jobs`, which makes ids and
//! timestamps) → the store. Errors cross the boundary as one type, [`problem::ApiError`], with
//! one exhaustive mapping to RFC 9457 problem+json.

pub mod agent_routes;
pub mod collection_routes;
pub mod data_routes;
pub mod eval_routes;
pub mod filing_routes;
pub mod gate;
pub mod govern_routes;
pub mod identity_routes;
pub mod json;
pub mod log_routes;
pub mod model_routes;
pub mod monitor_routes;
pub mod oss_routes;
pub mod permissions;
pub mod problem;
pub mod routes;
pub mod usage_routes;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use jobs::ComputeService;

pub fn router(svc: Arc<ComputeService>) -> Router {
    use routes::*;
    Router::new()
        .route("/healthz", get(health))
        .route("/api/v1/network", get(network))
        .route("/api/v1/hubs", get(hubs).post(register_hub))
        .route("/api/v1/hubs/{id}", get(hub).put(update_hub))
        .route("/api/v1/clusters", get(clusters).post(register_cluster))
        .route("/api/v1/clusters/{id}", get(cluster).put(update_cluster))
        .route("/api/v1/jobs", get(jobs).post(submit_job))
        .route("/api/v1/jobs/{id}", get(job))
        .route("/api/v1/jobs/{id}/cancel", post(cancel_job))
        .route("/api/v1/jobs/{id}/placement", get(placement))
        .route("/api/v1/jobs/{id}/events", get(events))
        .route("/api/v1/jobs/{id}/logs", get(logs))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(json::MAX_BODY_BYTES))
        .with_state(svc)
}
