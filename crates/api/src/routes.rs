//! Thin handlers: read the request, call the domain, shape the response. No logic lives here.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use compute::network::NetworkSpec;
use compute::{ClusterSpec, JobSpec};
use futures_util::StreamExt;
use serde::Deserialize;

use identity::{ActingFor, Principal};

use crate::json::{Json, parse};
use crate::problem::ApiError;
use jobs::compute_service::{ComputeService, HubRegistration, Job};

pub type AppState = Arc<ComputeService>;
/// The caller, resolved by the gate in front of every route.
type Who = Extension<Arc<Principal>>;
type Acting = Extension<ActingFor>;

/// What stands for an environment value in answers.
pub const HIDDEN: &str = "(hidden)";

/// A job as the API shows it: its environment's names, not their values, which may be secrets
/// the job needs and nobody should read back (the engines get them whole).
fn shown(job: Job) -> Job {
    let mut job = job.shown();
    for v in job.spec.env.values_mut() {
        *v = HIDDEN.to_string();
    }
    job
}

/// A job the caller may see. Another tenant's job answers exactly like a missing one.
async fn own_job(svc: &ComputeService, who: &Principal, id: &str) -> Result<Job, ApiError> {
    match svc.job(id).await {
        Ok(job) if who.may_see(&job.tenant) => Ok(job),
        Ok(_) => Err(ApiError::NotFound { what: "job", id: id.into() }),
        Err(e) => Err(e.into()),
    }
}

/// Runs a state change in its own task. If the client hangs up, axum drops the handler's future,
/// but the change still runs to its end (stored and applied, or rolled back), never half-way.
async fn detached<T: Send + 'static, E: Into<ApiError> + Send + 'static>(
    f: impl Future<Output = Result<T, E>> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::spawn(f).await.map_err(|e| ApiError::Internal(e.to_string()))?.map_err(Into::into)
}

pub async fn health() -> &'static str {
    "ok\n"
}

pub async fn network(State(svc): State<AppState>) -> axum::Json<NetworkSpec> {
    axum::Json(svc.network().await.spec.clone())
}

pub async fn hubs(State(svc): State<AppState>) -> axum::Json<Vec<compute::HubSpec>> {
    axum::Json(svc.network().await.spec.hubs.clone())
}

pub async fn hub(State(svc): State<AppState>, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(svc.hub(&id).await?))
}

pub async fn register_hub(State(svc): State<AppState>, Json(body): Json<HubRegistration>) -> Result<impl IntoResponse, ApiError> {
    Ok((StatusCode::CREATED, axum::Json(detached(async move { svc.register_hub(body).await }).await?)))
}

pub async fn update_hub(
    State(svc): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<HubRegistration>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(detached(async move { svc.update_hub(&id, body).await }).await?))
}

pub async fn clusters(State(svc): State<AppState>) -> impl IntoResponse {
    axum::Json(svc.clusters().await)
}

pub async fn cluster(State(svc): State<AppState>, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(svc.cluster(&id).await?))
}

pub async fn register_cluster(State(svc): State<AppState>, Json(body): Json<ClusterSpec>) -> Result<impl IntoResponse, ApiError> {
    Ok((StatusCode::CREATED, axum::Json(detached(async move { svc.register_cluster(body).await }).await?)))
}

pub async fn update_cluster(
    State(svc): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<ClusterSpec>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(detached(async move { svc.update_cluster(&id, body).await }).await?))
}

/// A job submission: the job's fields and an optional `name`. The tenant is the caller's; an
/// operator names it in the `X-Aiplus-Tenant` header.
pub async fn submit_job(
    State(svc): State<AppState>,
    Extension(who): Who,
    Extension(ActingFor(tenant)): Acting,
    headers: HeaderMap,
    Json(mut body): Json<serde_json::Value>,
) -> Result<impl IntoResponse, ApiError> {
    let obj = body.as_object_mut().ok_or_else(|| ApiError::Malformed { field: "body".into(), reason: "must be a JSON object".into() })?;
    if obj.contains_key("tenant") {
        return Err(ApiError::Invalid {
            field: "tenant".into(),
            reason: "the tenant comes from the credential, not the body (operators name it in the X-Aiplus-Tenant header)".into(),
        });
    }
    let tenant = tenant.ok_or_else(|| ApiError::Invalid {
        field: crate::gate::TENANT_HEADER.into(),
        reason: "an operator names the tenant it submits for in this header".into(),
    })?;
    let name = match obj.remove("name") {
        Some(serde_json::Value::String(n)) => Some(n),
        None | Some(serde_json::Value::Null) => None,
        Some(_) => return Err(ApiError::Malformed { field: "name".into(), reason: "must be a string".into() }),
    };
    let spec: JobSpec = parse(body.to_string().as_bytes())?;
    let key = idempotency_key(&headers)?;
    let by = jobs::Submitter::principal(who.id.clone(), who.role.max_job_priority());
    let (job, created) = detached(async move { svc.submit_as(by, tenant, name, spec, key).await }).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, axum::Json(shown(job))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    tenant: Option<String>,
    state: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
}

/// Jobs, oldest first. A tenant's caller sees its own whatever `tenant` says; an operator sees
/// every tenant's, or the one named by `tenant` or `X-Aiplus-Tenant`.
pub async fn jobs(
    State(svc): State<AppState>,
    Extension(who): Who,
    Extension(ActingFor(acting)): Acting,
    q: Result<Query<JobQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::Malformed { field: "query".into(), reason: e.body_text() })?;
    crate::usage_routes::check_tenant_param(q.tenant.as_deref())?;
    crate::usage_routes::check_param_len("after", q.after.as_deref())?;
    let jobs = svc.jobs(who.list_scope(q.tenant.or(acting)), q.state, q.after, q.limit).await?;
    Ok(axum::Json(jobs.into_iter().map(shown).collect::<Vec<_>>()))
}

pub async fn job(State(svc): State<AppState>, Extension(who): Who, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(shown(own_job(&svc, &who, &id).await?)))
}

pub async fn cancel_job(State(svc): State<AppState>, Extension(who): Who, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    own_job(&svc, &who, &id).await?;
    Ok(axum::Json(shown(detached(async move { svc.cancel(&id).await }).await?)))
}

pub async fn placement(State(svc): State<AppState>, Extension(who): Who, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    own_job(&svc, &who, &id).await?;
    Ok(axum::Json(svc.placement_of(&id).await?))
}

pub async fn events(State(svc): State<AppState>, Extension(who): Who, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    own_job(&svc, &who, &id).await?;
    Ok(axum::Json(svc.events(&id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    #[serde(default)]
    offset: u64,
    /// Stream new output as server-sent events until the job ends.
    #[serde(default)]
    follow: bool,
}

/// How often a follower looks for new output.
const FOLLOW_POLL: std::time::Duration = std::time::Duration::from_millis(500);
/// Longest a follow stream stays open.
const FOLLOW_MAX: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// The output of a job's current attempt. Without `follow`: the bytes from `offset` as text,
/// with `x-next-offset`. With `follow`: SSE `log` events (`{"offset", "text"}`) as output
/// appears, then one `end` event with the final state.
pub async fn logs(
    State(svc): State<AppState>,
    Extension(who): Who,
    Path(id): Path<String>,
    q: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::response::Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::Malformed { field: "query".into(), reason: e.body_text() })?;
    own_job(&svc, &who, &id).await?;
    if !q.follow {
        let (chunk, _) = svc.logs(&id, q.offset).await?;
        let mut resp = chunk.data.into_response();
        resp.headers_mut().insert("content-type", axum::http::HeaderValue::from_static("text/plain; charset=utf-8"));
        if let Ok(v) = axum::http::HeaderValue::from_str(&chunk.next_offset.to_string()) {
            resp.headers_mut().insert("x-next-offset", v);
        }
        return Ok(resp);
    }
    let job = svc.job(&id).await?;
    let slot = svc.follow.take(&job.tenant).map_err(|b| ApiError::Limit(b.0))?;
    let (tx, rx) = tokio::sync::mpsc::channel::<axum::response::sse::Event>(16);
    tokio::spawn(async move {
        let _slot = slot;
        let started = std::time::Instant::now();
        let mut offset = q.offset;
        loop {
            let Ok((chunk, state)) = svc.logs(&id, offset).await else { break };
            if !chunk.data.is_empty() {
                let text = String::from_utf8_lossy(&chunk.data).to_string();
                let ev = axum::response::sse::Event::default().event("log").json_data(serde_json::json!({"offset": offset, "text": text}));
                offset = chunk.next_offset;
                let Ok(ev) = ev else { break };
                if tx.send(ev).await.is_err() {
                    break;
                }
                continue;
            }
            if state.is_terminal() || started.elapsed() > FOLLOW_MAX {
                if let Ok(ev) = axum::response::sse::Event::default().event("end").json_data(serde_json::json!({"state": state})) {
                    let _ = tx.send(ev).await;
                }
                break;
            }
            if jobs::follow::wait_or_left(&tx, FOLLOW_POLL).await {
                break;
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, std::convert::Infallible>);
    Ok(axum::response::sse::Sse::new(stream).keep_alive(axum::response::sse::KeepAlive::default()).into_response())
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound { what: "route", id: "no such endpoint".into() }
}

/// The `Idempotency-Key` header of a request that creates something, if it has one.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get("idempotency-key") {
        Some(v) => Ok(Some(
            v.to_str()
                .map_err(|_| ApiError::Malformed { field: "idempotency-key".into(), reason: "must be visible ASCII".into() })?
                .to_string(),
        )),
        None => Ok(None),
    }
}
