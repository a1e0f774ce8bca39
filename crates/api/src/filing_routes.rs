//! Filing and alert routes. Operators write; a tenant reads the filings made for it and their
//! alerts, and another tenant's filing answers exactly like a missing one.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use govern::alerts::Alerts;
use govern::filing_service::{Upload, View};
use govern::filings::{AttachmentKind, Content, MAX_ATTACHMENT_BYTES};
use govern::lifecycle::{Action, State as FilingState};
use govern::{Filings, states::Actor};
use identity::Principal;
use serde::Deserialize;

use crate::json::Json;
use crate::problem::ApiError;
use crate::usage_routes::{check_param_len, check_tenant_param, query};

pub struct FilingApi {
    pub filings: Arc<Filings>,
    pub alerts: Arc<Alerts>,
    pub clock: Arc<dyn vocab::Clock>,
}

type S = State<Arc<FilingApi>>;
type Who = Extension<Arc<Principal>>;

pub fn router(api: Arc<FilingApi>) -> Router {
    Router::new()
        .route("/api/v1/filings", get(list).post(create))
        .route("/api/v1/filings/{id}", get(one))
        .route("/api/v1/filings/{id}/actions", post(act))
        .route("/api/v1/filings/{id}/history", get(history))
        .route("/api/v1/filings/{id}/attachments", post(attach).layer(DefaultBodyLimit::max(MAX_ATTACHMENT_BYTES)))
        .route("/api/v1/filings/{id}/attachments/{sha256}", get(attachment))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/alerts/{id}/ack", post(ack))
        .with_state(api)
}

/// The tenant whose objects a tenant principal may see; `None` for operators (all).
fn own(who: &Principal) -> Option<&str> {
    (!who.is_operator()).then(|| who.tenant_id())
}

fn actor(who: &Principal) -> Actor<'_> {
    Actor { id: &who.id, role: who.role.as_str() }
}

/// A filing with its revision as the `ETag` a change may send back in `If-Match`.
fn with_etag(v: View) -> Response {
    let etag = HeaderValue::from_str(&format!("\"{}\"", v.filing.rev)).ok();
    let mut r = axum::Json(v).into_response();
    if let Some(e) = etag {
        r.headers_mut().insert(header::ETAG, e);
    }
    r
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    tenant: Option<String>,
    state: Option<FilingState>,
}

async fn list(State(s): S, Extension(who): Who, q: Result<Query<ListQuery>, QueryRejection>) -> Result<impl IntoResponse, ApiError> {
    let q = query(q)?;
    check_tenant_param(q.tenant.as_deref())?;
    let scope = who.list_scope(q.tenant);
    Ok(axum::Json(s.filings.list(scope.as_deref(), q.state, s.clock.now_ms())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewFiling {
    /// The tenant the filing is for; none for the operator's own services.
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    content: Content,
}

async fn create(State(s): S, Extension(who): Who, Json(body): Json<NewFiling>) -> Result<Response, ApiError> {
    let v = s.filings.create(body.tenant, body.content, actor(&who), s.clock.now_ms()).await?;
    let mut r = with_etag(v);
    *r.status_mut() = axum::http::StatusCode::CREATED;
    Ok(r)
}

async fn one(State(s): S, Extension(who): Who, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(with_etag(s.filings.get(&id, own(&who), s.clock.now_ms())?))
}

/// The revision a change was made on, from `If-Match: "7"`, if sent.
fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(v) = headers.get(header::IF_MATCH) else { return Ok(None) };
    let bad = || ApiError::Invalid { field: "If-Match".into(), reason: "the filing's ETag, a quoted revision such as \"7\"".into() };
    let s = v.to_str().map_err(|_| bad())?;
    s.trim().trim_start_matches("W/").trim_matches('"').parse().map(Some).map_err(|_| bad())
}

async fn act(
    State(s): S,
    Extension(who): Who,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(action): Json<Action>,
) -> Result<Response, ApiError> {
    let rev = if_match(&headers)?;
    Ok(with_etag(s.filings.act(&id, rev, action, actor(&who), s.clock.now_ms()).await?))
}

async fn history(State(s): S, Extension(who): Who, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(s.filings.history(&id, own(&who)).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttachQuery {
    kind: String,
    name: String,
    /// The SHA-256 the client computed; checked against the bytes received.
    sha256: Option<String>,
}

async fn attach(
    State(s): S,
    Extension(who): Who,
    Path(id): Path<String>,
    q: Result<Query<AttachQuery>, QueryRejection>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let kind = AttachmentKind::parse(&q.kind).ok_or_else(|| ApiError::Invalid {
        field: "kind".into(),
        reason: "one of self_assessment, keyword_list, test_set, service_agreement".into(),
    })?;
    check_param_len("sha256", q.sha256.as_deref())?;
    let data = body.map_err(|_| ApiError::TooLarge { limit_bytes: MAX_ATTACHMENT_BYTES })?;
    let upload = Upload { kind, name: &q.name, data: &data, sha256: q.sha256.as_deref() };
    let v = s.filings.attach(&id, upload, actor(&who), s.clock.now_ms()).await?;
    let mut r = with_etag(v);
    *r.status_mut() = axum::http::StatusCode::CREATED;
    Ok(r)
}

async fn attachment(State(s): S, Extension(who): Who, Path((id, sha256)): Path<(String, String)>) -> Result<Response, ApiError> {
    let (a, data) = s.filings.attachment(&id, &sha256, own(&who)).await?;
    // The stored name is the operator's text: only its safe characters reach the header.
    let safe: String = a.name.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
    let mut r = data.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"sha256:{sha256}\"")) {
        h.insert(header::ETAG, v);
    }
    Ok(r)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertsQuery {
    tenant: Option<String>,
    /// Closed alerts opened at or after this instant are listed too (Unix milliseconds).
    since_ms: Option<i64>,
    limit: Option<i64>,
}

async fn alerts(State(s): S, Extension(who): Who, q: Result<Query<AlertsQuery>, QueryRejection>) -> Result<impl IntoResponse, ApiError> {
    let q = query(q)?;
    check_tenant_param(q.tenant.as_deref())?;
    if q.limit.is_some_and(|l| !(1..=govern::alerts::MAX_LIST).contains(&l)) {
        return Err(ApiError::Invalid { field: "limit".into(), reason: format!("1 to {}", govern::alerts::MAX_LIST) });
    }
    let scope = who.list_scope(q.tenant);
    let since = q.since_ms.unwrap_or_else(|| s.clock.now_ms().saturating_sub(7 * 86_400_000));
    Ok(axum::Json(s.alerts.list(scope.as_deref(), since, q.limit.unwrap_or(100)).await?))
}

async fn ack(State(s): S, Extension(who): Who, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(s.alerts.ack(&id, own(&who), &who.id, s.clock.now_ms()).await?))
}
