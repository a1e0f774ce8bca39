//! Models deployed on the compute network (operators): which built-in model, how many
//! replicas and of what shape. The models service keeps them running and routed; these
//! handlers only say what is wanted and show what is. Every change is a governance fact in the
//! transparency log (`model.deployed`, `model.scaled`, `model.undeployed`).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Router};
use identity::Principal;
use models::service::{DeploymentSpec, Service};
use serde::Deserialize;

use crate::json::Json;
use crate::problem::ApiError;

pub struct ModelsApi {
    pub service: Arc<Service>,
    pub log: Arc<tlog::Log>,
    pub clock: Arc<dyn vocab::Clock>,
}

type S = State<Arc<ModelsApi>>;
type Who = Extension<Arc<Principal>>;

pub fn router(service: Arc<ModelsApi>) -> Router {
    Router::new()
        .route("/api/v1/model-deployments", get(list))
        .route("/api/v1/model-deployments/{name}", get(one).put(deploy).delete(undeploy))
        .route("/api/v1/model-deployments/{name}/scale", post(scale))
        .with_state(service)
}

impl ModelsApi {
    /// Records a change in the log, after it took effect. A change the log failed to record is
    /// reported as an error, so the operator knows the record is missing and can retry.
    async fn record(&self, who: &Principal, kind: &str, name: &str, detail: serde_json::Value) -> Result<(), ApiError> {
        let record = serde_json::json!({"actor": who.id, "model": name, "detail": detail});
        let fact = tlog::Fact { kind, subject: &format!("model/{name}"), actor_role: who.role.as_str(), record: &record };
        self.log.append(&fact, self.clock.now_ms()).await?;
        Ok(())
    }
}

async fn list(State(s): S) -> impl IntoResponse {
    axum::Json(s.service.list().await)
}

async fn one(State(s): S, Path(name): Path<String>) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(s.service.get(&name).await?))
}

/// Deploys a model, or changes what is wanted of one already deployed.
async fn deploy(
    State(s): S,
    Extension(who): Who,
    Path(name): Path<String>,
    Json(spec): Json<DeploymentSpec>,
) -> Result<impl IntoResponse, ApiError> {
    let existed = s.service.get(&name).await.is_ok();
    // Checked, then logged, then made: no change takes effect unlogged.
    s.service.check(&name, &spec)?;
    let detail = serde_json::to_value(&spec).map_err(|e| ApiError::Internal(e.to_string()))?;
    s.record(&who, "model.deployed", &name, detail).await?;
    let view = s.service.deploy(&name, spec).await?;
    Ok((if existed { StatusCode::OK } else { StatusCode::CREATED }, axum::Json(view)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Scale {
    replicas: u32,
}

async fn scale(State(s): S, Extension(who): Who, Path(name): Path<String>, Json(b): Json<Scale>) -> Result<impl IntoResponse, ApiError> {
    let spec = s.service.spec(&name).await?;
    s.service.check(&name, &DeploymentSpec { replicas: b.replicas, ..spec })?;
    s.record(&who, "model.scaled", &name, serde_json::json!({"replicas": b.replicas})).await?;
    Ok(axum::Json(s.service.scale(&name, b.replicas).await?))
}

async fn undeploy(State(s): S, Extension(who): Who, Path(name): Path<String>) -> Result<impl IntoResponse, ApiError> {
    s.service.spec(&name).await?;
    s.record(&who, "model.undeployed", &name, serde_json::json!({})).await?;
    s.service.undeploy(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
