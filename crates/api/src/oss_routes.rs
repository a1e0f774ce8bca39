//! Open-source contribution evaluation's routes: rankings, a developer's page and a repo's page,
//! read from the data dir's ingested months (`aiplus oss ingest`). GH Archive is public, so any
//! signed-in principal may read them; nothing here writes but the per-month results the
//! measures keep.
//!
//! The measures read files and may compute a month, so they run on the blocking pool.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use oss::ingest::Store;
use oss::measure::{self, People};
use oss_core::global::GlobalParams;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::problem::ApiError;

type S = State<Arc<Store>>;

/// Most rows a ranking returns.
pub const MAX_LIMIT: usize = 1000;
/// Months of activity a repo's page shows.
const REPO_MONTHS: i32 = 12;

pub fn router(store: Arc<Store>) -> Router {
    Router::new()
        .route("/api/v1/oss/rankings", get(rankings))
        .route("/api/v1/oss/developers/{login}", get(developer))
        .route("/api/v1/oss/repos/{owner}/{repo}", get(repo))
        .with_state(store)
}

fn from_oss(e: oss::Error) -> ApiError {
    match e {
        oss::Error::Invalid { field, reason } => ApiError::Invalid { field, reason },
        e @ (oss::Error::Io { .. } | oss::Error::Corrupt(_)) => ApiError::Internal(e.to_string()),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, oss::Error> + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::Internal(e.to_string()))?.map_err(from_oss)
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(x)| x).map_err(|e| ApiError::Invalid { field: "query".into(), reason: e.body_text() })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RankingQuery {
    period: String,
    kind: Option<String>,
    org: Option<String>,
    /// Comma-separated `owner/name`.
    repos: Option<String>,
    limit: Option<usize>,
}

async fn rankings(State(store): S, q: Result<Query<RankingQuery>, QueryRejection>) -> Result<axum::Json<Value>, ApiError> {
    let q = query(q)?;
    oss::month_index(&q.period).map_err(from_oss)?;
    let kind = match q.kind.as_deref().unwrap_or("repos") {
        "repos" => "repo",
        "developers" => "user",
        other => return Err(ApiError::Invalid { field: "kind".into(), reason: format!("`repos` or `developers`, not {other:?}") }),
    };
    let limit = q.limit.unwrap_or(20);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::Invalid { field: "limit".into(), reason: format!("from 1 to {MAX_LIMIT}") });
    }
    let repos: Option<BTreeSet<String>> = q.repos.map(|r| r.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect());
    let period = q.period.clone();
    let months =
        blocking(move || measure::global_openrank(&store, &period, &GlobalParams::OPENDIGGER, &People::default(), &|_| {})).await?;
    let m = months
        .into_iter()
        .find(|m| m.month == q.period)
        .ok_or_else(|| ApiError::NotFound { what: "month of events", id: q.period.clone() })?;
    let data: Vec<Value> = m
        .values
        .iter()
        .filter(|r| r.kind == kind)
        .filter(|r| q.org.as_ref().is_none_or(|o| r.org.as_deref() == Some(o.as_str())))
        .filter(|r| repos.as_ref().is_none_or(|set| set.contains(&r.name)))
        .take(limit)
        .enumerate()
        .map(|(i, r)| json!({"rank": i + 1, "id": r.id, "name": r.name, "org": r.org, "openrank": r.openrank, "activity": r.activity}))
        .collect();
    Ok(axum::Json(json!({
        "object": "list", "period": m.month, "kind": q.kind.unwrap_or_else(|| "repos".into()),
        "iterations": m.iterations, "tolerance": m.tolerance, "max_iterations": m.max_iterations, "converged": m.converged,
        "data": data,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PeriodQuery {
    period: String,
}

async fn developer(
    State(store): S,
    Path(login): Path<String>,
    q: Result<Query<PeriodQuery>, QueryRejection>,
) -> Result<axum::Json<Value>, ApiError> {
    let q = query(q)?;
    oss::report::period(&q.period).map_err(from_oss)?;
    let who = login.clone();
    match blocking(move || oss::report::build(&store, &who, &q.period, &People::default())).await {
        // A developer without events in the period is a developer this page does not know.
        Err(ApiError::Invalid { field, .. }) if field == "developer" => Err(ApiError::NotFound { what: "developer", id: login }),
        other => other.map(axum::Json),
    }
}

async fn repo(
    State(store): S,
    Path((owner, name)): Path<(String, String)>,
    q: Result<Query<PeriodQuery>, QueryRejection>,
) -> Result<axum::Json<Value>, ApiError> {
    let q = query(q)?;
    let last = oss::month_index(&q.period).map_err(from_oss)?;
    let full = format!("{owner}/{name}");
    let wanted = full.clone();
    let period = q.period.clone();
    let (months, top) = blocking(move || {
        let mut months = Vec::new();
        for idx in (last - REPO_MONTHS + 1)..=last {
            let month = oss::month_name(idx);
            let (repos, _) = measure::activity(&store, &month, &People::default())?;
            if let Some(r) = repos.into_iter().find(|r| r.name == wanted) {
                months.push(json!({"month": month, "activity": r.activity, "participants": r.participants, "counts": r.counts}));
            }
        }
        let set = BTreeSet::from([wanted.clone()]);
        let (members, m) = measure::community_openrank(&store, &period, &set, &People::default())?;
        let top: Vec<Value> =
            members.into_iter().filter(|x| x.0 == "user").take(20).map(|(_, n, v)| json!({"developer": n, "openrank": v})).collect();
        let top = json!({"iterations": m.iterations, "converged": m.converged, "tolerance": m.settings.tolerance, "data": top});
        Ok((months, top))
    })
    .await?;
    if months.is_empty() {
        return Err(ApiError::NotFound { what: "repo", id: full });
    }
    Ok(axum::Json(json!({"repo": full, "period": q.period, "activity": months, "community_openrank": top})))
}
