//! Agents: a tenant declares, reads, versions and deletes its own agents (an operator does so
//! for the tenant it names in `X-Aiplus-Tenant`, and lists every tenant's). Serving them is the
//! Responses API's (`model: "agent:<id>"`); these routes only manage declarations.

use std::sync::Arc;

use agents::service::AgentView;
use agents::{AgentError, AgentSpec, Agents};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Extension, Router};
use identity::{ActingFor, Principal};
use serde::Deserialize;

use crate::json::Json;
use crate::problem::ApiError;
use crate::usage_routes::query;

type S = State<Arc<Agents>>;
type Who = Extension<Arc<Principal>>;
type Acting = Extension<ActingFor>;

pub fn router(agents: Arc<Agents>) -> Router {
    Router::new()
        .route("/api/v1/agents", get(list))
        .route("/api/v1/agents/{id}", get(show).put(put).delete(delete))
        .route("/api/v1/agents/{id}/versions", get(versions))
        .with_state(agents)
}

impl From<AgentError> for ApiError {
    fn from(e: AgentError) -> Self {
        match e {
            AgentError::Invalid { field, reason } => ApiError::Invalid { field, reason },
            AgentError::NotFound { what, id } => ApiError::NotFound { what, id },
            AgentError::Store(e) => ApiError::Store(e),
            AgentError::Corrupt { .. } => ApiError::Internal(e.to_string()),
            AgentError::Embedding { status: 429, message } => ApiError::Limit(format!("embedding: {message}")),
            AgentError::Embedding { status: 403, message } => ApiError::Forbidden(format!("embedding: {message}")),
            AgentError::Embedding { message, .. } => ApiError::Busy(format!("embedding: {message}")),
        }
    }
}

/// The tenant an agent route acts for: the caller's own, or the one an operator names.
fn tenant_of(acting: Option<String>) -> Result<String, ApiError> {
    acting.ok_or_else(|| ApiError::Invalid {
        field: crate::gate::TENANT_HEADER.into(),
        reason: "an operator names the tenant whose agents it manages in this header".into(),
    })
}

async fn list(State(a): S, Extension(who): Who, Extension(ActingFor(acting)): Acting) -> Result<impl IntoResponse, ApiError> {
    let scope = who.list_scope(acting);
    let list: Vec<AgentView> = a.list(scope.as_deref()).await?.iter().map(agents::Agent::view).collect();
    Ok(axum::Json(serde_json::json!({"object": "list", "data": list})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShowQuery {
    version: Option<i64>,
}

async fn show(
    State(a): S,
    Extension(ActingFor(acting)): Acting,
    Path(id): Path<String>,
    q: Result<Query<ShowQuery>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let q = query(q)?;
    Ok(axum::Json(a.get(&tenant_of(acting)?, &id, q.version).await?.view()))
}

/// Declares or changes an agent: 201 with the new version, or 200 when nothing changed.
async fn put(
    State(a): S,
    Extension(ActingFor(acting)): Acting,
    Path(id): Path<String>,
    Json(spec): Json<AgentSpec>,
) -> Result<impl IntoResponse, ApiError> {
    let (agent, added) = a.put(&tenant_of(acting)?, &id, spec).await?;
    let status = if added { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, axum::Json(agent.view())))
}

async fn versions(State(a): S, Extension(ActingFor(acting)): Acting, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let v = a.versions(&tenant_of(acting)?, &id).await?;
    let data: Vec<_> =
        v.into_iter().map(|(version, created_ms)| serde_json::json!({"version": version, "created_ms": created_ms})).collect();
    Ok(axum::Json(serde_json::json!({"object": "list", "data": data})))
}

async fn delete(State(a): S, Extension(ActingFor(acting)): Acting, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    a.delete(&tenant_of(acting)?, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
