//! Evaluation routes: the suites the server has, runs asked of it (queued, then run one after
//! another by the evaluation service under the evaluation tenant), each run's report, per-sample
//! log and chart, and the leaderboard of models × suites. Operators only: evaluation is the
//! platform's own check of the models it serves.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use eval::service::{NewRun, Service};
use identity::Principal;
use serde::Deserialize;

use crate::json::Json;
use crate::problem::ApiError;
use crate::usage_routes::query;

type S = State<Arc<Service>>;
type Who = Extension<Arc<Principal>>;

pub fn router(svc: Arc<Service>) -> Router {
    Router::new()
        .route("/api/v1/eval/suites", get(suites))
        .route("/api/v1/eval/runs", get(list).post(submit))
        .route("/api/v1/eval/runs/{id}", get(run))
        .route("/api/v1/eval/runs/{id}/samples", get(samples))
        .route("/api/v1/eval/runs/{id}/chart", get(chart))
        .route("/api/v1/eval/leaderboard", get(leaderboard))
        .with_state(svc)
}

fn not_found(id: String) -> ApiError {
    ApiError::NotFound { what: "evaluation run", id }
}

async fn suites(State(s): S) -> impl IntoResponse {
    axum::Json(s.suites())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<i64>,
}

async fn list(State(s): S, q: Result<Query<ListQuery>, QueryRejection>) -> Result<impl IntoResponse, ApiError> {
    let q = query(q)?;
    if q.limit.is_some_and(|l| !(1..=eval::service::MAX_LIST).contains(&l)) {
        return Err(ApiError::Invalid { field: "limit".into(), reason: format!("1 to {}", eval::service::MAX_LIST) });
    }
    Ok(axum::Json(s.list(q.limit.unwrap_or(100)).await?))
}

async fn submit(State(s): S, Extension(who): Who, Json(new): Json<NewRun>) -> Result<impl IntoResponse, ApiError> {
    Ok((StatusCode::ACCEPTED, axum::Json(s.submit(new, &who.id).await?)))
}

async fn run(State(s): S, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(s.get(&id).await?.ok_or_else(|| not_found(id))?))
}

fn typed(body: Vec<u8>, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// The per-sample log of a finished run, as JSONL.
async fn samples(State(s): S, Path(id): Path<String>) -> Result<Response, ApiError> {
    let body = s.samples(&id).await?.ok_or_else(|| not_found(id))?;
    Ok(typed(body, "application/x-ndjson"))
}

/// A finished run's chart, as SVG.
async fn chart(State(s): S, Path(id): Path<String>) -> Result<Response, ApiError> {
    let report = s.get(&id).await?.and_then(|r| r.report).ok_or_else(|| not_found(id))?;
    Ok(typed(eval::chart::svg(&report).into_bytes(), "image/svg+xml"))
}

async fn leaderboard(State(s): S) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(eval::service::leaderboard(&s.list(eval::service::MAX_LIST).await?)))
}
