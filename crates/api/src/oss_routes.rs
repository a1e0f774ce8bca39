//! Open-source contribution evaluation's routes: rankings, a developer's page and a repo's page,
//! read from the data dir's ingested months (`aiplus oss ingest`), and signed credit reports.
//! GH Archive is public, so any signed-in principal may read the measures and an issued report
//! (a registrar checks one by its id). Issuing a report records a transparency-log leaf in the
//! platform's name, so only an operator may.
//!
//! The measures read files and may compute a month, so they run on the blocking pool.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json as Plain};
use identity::Principal;
use oss::ingest::Store;
use oss::measure::{self, People};
use oss::report::Signed;
use oss_core::global::GlobalParams;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::json::Json;
use crate::problem::ApiError;

/// What the routes need: the months, and the log and key that record and sign reports.
pub struct OssApi {
    pub store: Arc<Store>,
    pub log: Arc<tlog::Log>,
    pub key: Arc<tlog::SignerKey>,
    pub clock: Arc<dyn vocab::Clock>,
}

type S = State<Arc<OssApi>>;

/// Most rows a ranking returns.
pub const MAX_LIMIT: usize = 1000;
/// Months of activity a repo's page shows.
const REPO_MONTHS: i32 = 12;

pub fn router(api: Arc<OssApi>) -> Router {
    Router::new()
        .route("/api/v1/oss/rankings", get(rankings))
        .route("/api/v1/oss/developers/{login}", get(developer))
        .route("/api/v1/oss/repos/{owner}/{repo}", get(repo))
        .route("/api/v1/oss/reports", post(issue_report).get(list_reports))
        .route("/api/v1/oss/reports/{id}", get(one_report))
        .with_state(api)
}

fn from_oss(e: oss::Error) -> ApiError {
    match e {
        oss::Error::Invalid { field, reason } => ApiError::Invalid { field, reason },
        oss::Error::Full(why) => ApiError::Limit(why),
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

async fn rankings(State(api): S, q: Result<Query<RankingQuery>, QueryRejection>) -> Result<axum::Json<Value>, ApiError> {
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
    if kind == "user" && (repos.is_some() || q.org.is_some()) {
        // Developers have no organisation: a university's or company's developers are ranked by
        // community OpenRank inside its repos.
        if repos.as_ref().is_some_and(BTreeSet::is_empty) {
            return Err(ApiError::Invalid { field: "repos".into(), reason: "one or more `owner/name`, comma-separated".into() });
        }
        if q.org.as_ref().is_some_and(|o| o.is_empty() || !o.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))) {
            return Err(ApiError::Invalid { field: "org".into(), reason: "an organisation's login".into() });
        }
        let set: BTreeSet<String> = repos.into_iter().flatten().chain(q.org.iter().map(|o| format!("{o}/*"))).collect();
        return community_ranking(&api, q.period, set, limit).await;
    }
    let period = q.period.clone();
    let store = api.store.clone();
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
        "object": "list", "period": m.month, "kind": q.kind.unwrap_or_else(|| "repos".into()), "method": "global",
        "iterations": m.iterations, "tolerance": m.tolerance, "max_iterations": m.max_iterations, "converged": m.converged,
        "data": data,
    })))
}

/// Developers ranked by community OpenRank inside a set of repos (`owner/*` for an organisation).
async fn community_ranking(api: &OssApi, period: String, set: BTreeSet<String>, limit: usize) -> Result<axum::Json<Value>, ApiError> {
    let store = api.store.clone();
    let when = period.clone();
    let m = blocking(move || oss::community::community_openrank(&store, &when, &set, &People::default())).await?;
    let data: Vec<Value> = m
        .members
        .iter()
        .filter(|x| x.0 == "user")
        .take(limit)
        .enumerate()
        .map(|(i, (_, n, v))| json!({"rank": i + 1, "name": n, "openrank": v}))
        .collect();
    Ok(axum::Json(json!({
        "object": "list", "period": period, "kind": "developers", "method": "community",
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
    State(api): S,
    Path(login): Path<String>,
    q: Result<Query<PeriodQuery>, QueryRejection>,
) -> Result<axum::Json<Value>, ApiError> {
    let q = query(q)?;
    oss::report::period(&q.period).map_err(from_oss)?;
    let who = login.clone();
    let store = api.store.clone();
    match blocking(move || oss::report::build(&store, &who, &q.period, &People::default())).await {
        // A developer without events in the period is a developer this page does not know.
        Err(ApiError::Invalid { field, .. }) if field == "developer" => Err(ApiError::NotFound { what: "developer", id: login }),
        other => other.map(axum::Json),
    }
}

async fn repo(
    State(api): S,
    Path((owner, name)): Path<(String, String)>,
    q: Result<Query<PeriodQuery>, QueryRejection>,
) -> Result<axum::Json<Value>, ApiError> {
    let q = query(q)?;
    let last = oss::month_index(&q.period).map_err(from_oss)?;
    let full = format!("{owner}/{name}");
    let wanted = full.clone();
    let period = q.period.clone();
    let store = api.store.clone();
    let (months, top) = blocking(move || {
        let mut months = Vec::new();
        for idx in (last - REPO_MONTHS + 1)..=last {
            let month = oss::month_name(idx);
            if let Some(r) = measure::repo_activity(&store, &month, &wanted, &People::default())? {
                months.push(json!({"month": month, "activity": r.activity, "participants": r.participants, "counts": r.counts}));
            }
        }
        let set = BTreeSet::from([wanted.clone()]);
        let m = oss::community::community_openrank(&store, &period, &set, &People::default())?;
        let top: Vec<Value> =
            m.members.iter().filter(|x| x.0 == "user").take(20).map(|(_, n, v)| json!({"developer": n, "openrank": v})).collect();
        let top = json!({"iterations": m.iterations, "converged": m.converged, "tolerance": m.tolerance, "data": top});
        Ok((months, top))
    })
    .await?;
    if months.is_empty() {
        return Err(ApiError::NotFound { what: "repo", id: full });
    }
    Ok(axum::Json(json!({"repo": full, "period": q.period, "activity": months, "community_openrank": top})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueBody {
    developer: String,
    /// `YYYY-MM..YYYY-MM`, or one month.
    period: String,
}

/// Issues a developer's signed credit report over a period, as `aiplus oss report` does: the
/// report is built from the stored months, recorded as a transparency-log leaf, signed with the
/// leaf's index, and kept under its content hash. The same contents issued again are the same
/// report, answered without a second leaf; `fresh` says which happened.
pub async fn issue(
    store: Arc<Store>,
    people: People,
    (log, key): (&tlog::Log, &tlog::SignerKey),
    developer: &str,
    period: &str,
    actor: (&str, &str),
    now_ms: i64,
) -> Result<(Signed, bool), ApiError> {
    // One report at a time in this process: two requests for the same contents would both find
    // it not yet issued and write two leaves.
    static ISSUING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one = ISSUING.lock().await;
    let (who, when, st) = (developer.to_string(), period.to_string(), store.clone());
    let (body, hash) = match blocking(move || oss::report::prepare(&st, &who, &when, &people)).await {
        Err(ApiError::Invalid { field, .. }) if field == "developer" => {
            return Err(ApiError::NotFound { what: "developer", id: developer.to_string() });
        }
        Ok(oss::report::Prepared::Issued(done)) => return Ok((done, false)),
        Ok(oss::report::Prepared::New { body, content_sha256 }) => (body, content_sha256),
        Err(e) => return Err(e),
    };
    // The leaf makes the report's existence public and fixed in time: a registrar can ask the
    // log for it, and nobody can later deny having issued it. Its index is then signed with it.
    let record = oss::report::leaf_record(&hash, developer, period, actor.0);
    let subject = format!("developer/{developer}");
    let fact = tlog::Fact { kind: oss::report::LEAF_KIND, subject: &subject, actor_role: actor.1, record: &record };
    let index = log.append(&fact, now_ms).await?.index;
    let signed = oss::report::sign(body, key, Some(index)).map_err(from_oss)?;
    let keep = signed.clone();
    blocking(move || oss::report::save(&store, &keep)).await?;
    Ok((signed, true))
}

async fn issue_report(State(api): S, Extension(who): Extension<Arc<Principal>>, Json(b): Json<IssueBody>) -> Result<Response, ApiError> {
    oss::report::period(&b.period).map_err(from_oss)?;
    let actor = (who.id.as_str(), who.role.as_str());
    let (signed, fresh) =
        issue(api.store.clone(), People::default(), (&api.log, &api.key), &b.developer, &b.period, actor, api.clock.now_ms()).await?;
    let status = if fresh { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Plain(report_json(&signed))).into_response())
}

/// A signed report as the API answers it: the file `aiplus oss verify` checks, with its id.
fn report_json(s: &Signed) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
    v["id"] = json!(s.content_sha256);
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<usize>,
}

async fn list_reports(State(api): S, q: Result<Query<ListQuery>, QueryRejection>) -> Result<axum::Json<Value>, ApiError> {
    let limit = query(q)?.limit.unwrap_or(100);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::Invalid { field: "limit".into(), reason: format!("from 1 to {MAX_LIMIT}") });
    }
    let store = api.store.clone();
    let (total, data) = blocking(move || {
        let ids = oss::report::ids(&store)?;
        let mut data = Vec::new();
        for id in ids.iter().take(limit) {
            if let Some(s) = oss::report::saved(&store, id)? {
                data.push(
                    json!({"id": id, "developer": s.report["developer"]["login"], "period": s.report["period"], "log_index": s.log_index}),
                );
            }
        }
        Ok((ids.len(), data))
    })
    .await?;
    Ok(axum::Json(json!({"object": "list", "total": total, "data": data})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FormatQuery {
    format: Option<String>,
}

/// An issued report by its id: the signed JSON, or with `format=html` its printable page.
async fn one_report(State(api): S, Path(id): Path<String>, q: Result<Query<FormatQuery>, QueryRejection>) -> Result<Response, ApiError> {
    let html = match query(q)?.format.as_deref() {
        None | Some("json") => false,
        Some("html") => true,
        Some(other) => return Err(ApiError::Invalid { field: "format".into(), reason: format!("`json` or `html`, not {other:?}") }),
    };
    let store = api.store.clone();
    let wanted = id.clone();
    let s = blocking(move || oss::report::saved(&store, &wanted)).await?.ok_or(ApiError::NotFound { what: "report", id })?;
    Ok(if html {
        ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], oss::report::html(&s)).into_response()
    } else {
        Plain(report_json(&s)).into_response()
    })
}
