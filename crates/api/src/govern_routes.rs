//! Governance routes: each model's state (operators change it; the change is in force on
//! every instance within a fraction of a second, and recorded in the transparency log).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Extension, Router};
use govern::{Change, GovernError, ModelStates};
use identity::Principal;

use crate::json::Json;
use crate::problem::ApiError;

pub struct GovernApi {
    pub states: Arc<ModelStates>,
    pub clock: Arc<dyn vocab::Clock>,
}

type S = State<Arc<GovernApi>>;

pub fn router(api: Arc<GovernApi>) -> Router {
    Router::new().route("/api/v1/model-states", get(list)).route("/api/v1/model-states/{name}", get(one).put(set)).with_state(api)
}

impl From<GovernError> for ApiError {
    fn from(e: GovernError) -> Self {
        match e {
            GovernError::Invalid { field, reason } => ApiError::Invalid { field: field.into(), reason },
            GovernError::NotFound { what, id } => ApiError::NotFound { what, id },
            GovernError::Conflict(why) => ApiError::Conflict(why),
            GovernError::Store(s) => ApiError::Internal(format!("the change was logged but storing it failed ({s}); send it again")),
            GovernError::Log(l) => l.into(),
            GovernError::Corrupt(j) => ApiError::Internal(j.to_string()),
        }
    }
}

async fn list(State(s): S) -> impl IntoResponse {
    axum::Json(s.states.list())
}

/// A model's state; a model never governed is active.
async fn one(State(s): S, Path(name): Path<String>) -> Result<impl IntoResponse, ApiError> {
    // The path limit of the OpenAPI document, in characters (a change is held to 256 bytes).
    if name.chars().count() > 256 || name.chars().any(char::is_control) {
        return Err(ApiError::Invalid {
            field: "name".into(),
            reason: "a model name of 1 to 256 characters without control characters".into(),
        });
    }
    let state = s.states.get(&name).map_or_else(|| serde_json::json!({"model": name, "status": "active"}), |st| serde_json::json!(st));
    Ok(axum::Json(state))
}

async fn set(
    State(s): S,
    Extension(who): Extension<Arc<Principal>>,
    Path(name): Path<String>,
    Json(change): Json<Change>,
) -> Result<impl IntoResponse, ApiError> {
    let actor = govern::states::Actor { id: &who.id, role: who.role.as_str() };
    Ok(axum::Json(s.states.set(&name, change, actor, s.clock.now_ms()).await?))
}
