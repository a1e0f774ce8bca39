//! Identity's own routes: who the caller is, and the operators' tokens. (Tenants and keys are
//! served with the gateway's settings in `gateway::tenants` and `gateway::proxy`.)

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Router};
use identity::{ActingFor, Identity, Principal, Role};
use serde::Deserialize;

use crate::json::Json;
use crate::problem::ApiError;
use vocab::Clock;

pub struct IdentityApi {
    pub identity: Arc<Identity>,
    pub clock: Arc<dyn Clock>,
}

type S = State<Arc<IdentityApi>>;

pub fn router(state: Arc<IdentityApi>) -> Router {
    Router::new()
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/operator-tokens", get(list_tokens).post(create_token))
        .route("/api/v1/operator-tokens/{id}/revoke", post(revoke_token))
        .with_state(state)
}

/// Who the caller is: principal, role, tenant and scopes (for `aiplus login` and scripts).
pub async fn whoami(Extension(who): Extension<Arc<Principal>>, Extension(ActingFor(acting)): Extension<ActingFor>) -> impl IntoResponse {
    let kind = match who.kind {
        identity::Kind::ApiKey => "api_key",
        identity::Kind::OperatorToken => "operator_token",
        identity::Kind::Session => "session",
        identity::Kind::Internal => "internal",
    };
    axum::Json(serde_json::json!({"id": who.id, "kind": kind, "role": who.role, "tenant": who.tenant,
                                  "scopes": who.scopes, "acting_for": acting}))
}

async fn list_tokens(State(s): S) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(s.identity.operator_tokens().await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    name: String,
    #[serde(default = "viewer")]
    role: Role,
}

fn viewer() -> Role {
    Role::OperatorViewer
}

/// Makes an operator token (operator-viewer unless `role` says otherwise); the answer carries
/// its secret, once.
async fn create_token(State(s): S, Json(t): Json<NewToken>) -> Result<impl IntoResponse, ApiError> {
    let (rec, secret) = s.identity.create_operator_token(&t.name, t.role, s.clock.now_ms()).await?;
    let mut v = serde_json::json!(rec);
    v["secret"] = serde_json::json!(secret);
    Ok((StatusCode::CREATED, axum::Json(v)))
}

async fn revoke_token(State(s): S, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(s.identity.revoke_operator_token(&id, s.clock.now_ms()).await?))
}
