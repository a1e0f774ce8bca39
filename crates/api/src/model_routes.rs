//! Models deployed on the compute network (operators): which built-in model, how many
//! replicas and of what shape. The models service keeps them running and routed; these
//! handlers only say what is wanted and show what is.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use models::service::{DeploymentSpec, Service};
use serde::Deserialize;

use crate::json::Json;
use crate::problem::ApiError;

type S = State<Arc<Service>>;

pub fn router(service: Arc<Service>) -> Router {
    Router::new()
        .route("/api/v1/model-deployments", get(list))
        .route("/api/v1/model-deployments/{name}", get(one).put(deploy).delete(undeploy))
        .route("/api/v1/model-deployments/{name}/scale", post(scale))
        .with_state(service)
}

async fn list(State(s): S) -> impl IntoResponse {
    axum::Json(s.list().await)
}

async fn one(State(s): S, Path(name): Path<String>) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(s.get(&name).await?))
}

/// Deploys a model, or changes what is wanted of one already deployed.
async fn deploy(State(s): S, Path(name): Path<String>, Json(spec): Json<DeploymentSpec>) -> Result<impl IntoResponse, ApiError> {
    let existed = s.get(&name).await.is_ok();
    let view = s.deploy(&name, spec).await?;
    Ok((if existed { StatusCode::OK } else { StatusCode::CREATED }, axum::Json(view)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Scale {
    replicas: u32,
}

async fn scale(State(s): S, Path(name): Path<String>, Json(b): Json<Scale>) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(s.scale(&name, b.replicas).await?))
}

async fn undeploy(State(s): S, Path(name): Path<String>) -> Result<impl IntoResponse, ApiError> {
    s.undeploy(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
