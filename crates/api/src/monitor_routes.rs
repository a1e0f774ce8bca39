//! Monitoring and incident routes: alert rules, evaluators' flags, webhook deliveries (with the
//! dead letters), incidents and their timelines, and end users suspended under TC260-003.
//! Operators write; a tenant's admin reads the incidents and end users of its own tenant.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Router};
use govern::end_users::EndUsers;
use govern::incidents::{Incidents, NewIncident, State as IncidentState, Step};
use govern::monitor::Monitor;
use govern::rules::Rule;
use govern::states::Actor;
use govern::webhooks::Webhooks;
use identity::Principal;
use serde::Deserialize;

use crate::json::Json;
use crate::problem::ApiError;
use crate::usage_routes::{check_tenant_param, query};

pub struct MonitorApi {
    pub monitor: Arc<Monitor>,
    pub recorder: Arc<govern::counters::Recorder>,
    pub webhooks: Arc<Webhooks>,
    pub incidents: Arc<Incidents>,
    pub end_users: Arc<EndUsers>,
    pub clock: Arc<dyn vocab::Clock>,
}

type S = State<Arc<MonitorApi>>;
type Who = Extension<Arc<Principal>>;

pub fn router(api: Arc<MonitorApi>) -> Router {
    Router::new()
        .route("/api/v1/alert-rules", get(rules))
        .route("/api/v1/alert-rules/{name}", get(rule).put(put_rule).delete(delete_rule))
        .route("/api/v1/model-flags", post(flag))
        .route("/api/v1/webhook-deliveries", get(deliveries))
        .route("/api/v1/webhook-deliveries/{id}/retry", post(retry))
        .route("/api/v1/incidents", get(incidents).post(open_incident))
        .route("/api/v1/incidents/{id}", get(incident))
        .route("/api/v1/incidents/{id}/steps", post(step))
        .route("/api/v1/end-users", get(end_users))
        .route("/api/v1/end-users/{tenant}/{user}/lift", post(lift))
        .with_state(api)
}

fn actor(who: &Principal) -> Actor<'_> {
    Actor { id: &who.id, role: who.role.as_str() }
}

fn own(who: &Principal) -> Option<&str> {
    (!who.is_operator()).then(|| who.tenant_id())
}

async fn rules(State(s): S) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(s.monitor.rules().await?))
}

async fn rule(State(s): S, Path(name): Path<String>) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(s.monitor.rule(&name).await?))
}

/// The rule's name is the path's; a body that names another is refused.
async fn put_rule(
    State(s): S,
    Extension(who): Who,
    Path(name): Path<String>,
    Json(mut rule): Json<Rule>,
) -> Result<impl IntoResponse, ApiError> {
    if !rule.name.is_empty() && rule.name != name {
        return Err(ApiError::Invalid { field: "name".into(), reason: "the body names another rule than the path".into() });
    }
    rule.name = name;
    let created = s.monitor.put_rule(rule.clone(), actor(&who), s.clock.now_ms()).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, axum::Json(rule)))
}

async fn delete_rule(State(s): S, Extension(who): Who, Path(name): Path<String>) -> Result<impl IntoResponse, ApiError> {
    s.monitor.delete_rule(&name, actor(&who), s.clock.now_ms()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Flag {
    model: String,
    /// How many answers were flagged (default 1).
    #[serde(default = "one")]
    count: u32,
}

fn one() -> u32 {
    1
}

/// An evaluator flags answers of a model; the `flags` metric counts them.
async fn flag(State(s): S, Json(f): Json<Flag>) -> Result<impl IntoResponse, ApiError> {
    if f.model.is_empty() || f.model.chars().count() > govern::states::MAX_NAME_BYTES || f.model.chars().any(char::is_control) {
        return Err(ApiError::Invalid {
            field: "model".into(),
            reason: "a model name of 1 to 256 characters without control characters".into(),
        });
    }
    if !(1..=10_000).contains(&f.count) {
        return Err(ApiError::Invalid { field: "count".into(), reason: "1 to 10000".into() });
    }
    let now = s.clock.now_ms();
    for _ in 0..f.count {
        s.recorder.flag(&f.model, now);
    }
    Ok((StatusCode::ACCEPTED, axum::Json(serde_json::json!({"model": f.model, "count": f.count}))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveriesQuery {
    state: Option<String>,
    limit: Option<i64>,
}

async fn deliveries(State(s): S, q: Result<Query<DeliveriesQuery>, QueryRejection>) -> Result<impl IntoResponse, ApiError> {
    let q = query(q)?;
    if q.limit.is_some_and(|l| !(1..=1000).contains(&l)) {
        return Err(ApiError::Invalid { field: "limit".into(), reason: "1 to 1000".into() });
    }
    Ok(axum::Json(s.webhooks.list(q.state.as_deref().unwrap_or("dead"), q.limit.unwrap_or(100)).await?))
}

async fn retry(State(s): S, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(s.webhooks.retry(&id, s.clock.now_ms()).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IncidentsQuery {
    tenant: Option<String>,
    state: Option<IncidentState>,
}

async fn incidents(
    State(s): S,
    Extension(who): Who,
    q: Result<Query<IncidentsQuery>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let q = query(q)?;
    check_tenant_param(q.tenant.as_deref())?;
    let scope = who.list_scope(q.tenant);
    Ok(axum::Json(s.incidents.list(scope.as_deref(), q.state)))
}

async fn open_incident(State(s): S, Extension(who): Who, Json(new): Json<NewIncident>) -> Result<impl IntoResponse, ApiError> {
    Ok((StatusCode::CREATED, axum::Json(s.incidents.open(new, actor(&who), s.clock.now_ms()).await?)))
}

async fn incident(State(s): S, Extension(who): Who, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(s.incidents.get(&id, own(&who))?))
}

async fn step(State(s): S, Extension(who): Who, Path(id): Path<String>, Json(step): Json<Step>) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(s.incidents.act(&id, step, actor(&who), s.clock.now_ms()).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EndUsersQuery {
    tenant: Option<String>,
}

async fn end_users(
    State(s): S,
    Extension(who): Who,
    q: Result<Query<EndUsersQuery>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let q = query(q)?;
    check_tenant_param(q.tenant.as_deref())?;
    let scope = who.list_scope(q.tenant);
    Ok(axum::Json(s.end_users.list(scope.as_deref())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Lift {
    reason: String,
}

async fn lift(
    State(s): S,
    Extension(who): Who,
    Path((tenant, user)): Path<(String, String)>,
    Json(l): Json<Lift>,
) -> Result<impl IntoResponse, ApiError> {
    if l.reason.trim().is_empty() {
        return Err(ApiError::Invalid { field: "reason".into(), reason: "say why".into() });
    }
    Ok(axum::Json(s.end_users.lift(&tenant, &user, l.reason.trim(), actor(&who), s.clock.now_ms()).await?))
}
