//! The usage ledger's routes, served by every instance (they read the store, not the compute
//! service): the events themselves, and the ledger's one set of summaries. A tenant's caller
//! reads only its own tenant's, whatever the query names.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Extension, Router};
use identity::{ActingFor, Principal};
use serde::Deserialize;
use std::sync::Arc;

use crate::problem::ApiError;

/// Most events one page of `/api/v1/usage` returns.
pub const MAX_PAGE: u32 = 10_000;
/// Most events one summary reads.
pub const SUMMARY_MAX_ROWS: u32 = 1_000_000;

pub fn router(store: store::Store) -> Router {
    Router::new().route("/api/v1/usage", get(usage)).route("/api/v1/usage/summary", get(summary)).with_state(store)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    tenant: Option<String>,
    pillar: Option<String>,
    /// Unix milliseconds, inclusive.
    from_ms: Option<i64>,
    /// Unix milliseconds, exclusive.
    to_ms: Option<i64>,
    limit: Option<u32>,
}

type Who = Extension<Arc<Principal>>;
type Acting = Extension<ActingFor>;

/// A `tenant` query parameter must be a tenant id, even where the caller's own tenant wins
/// over it: a typo should be told, not answered with an empty page.
pub(crate) fn check_tenant_param(tenant: Option<&str>) -> Result<(), ApiError> {
    match tenant {
        Some(t) if !identity::tenant_id_ok(t) => Err(ApiError::Invalid { field: "tenant".into(), reason: identity::TENANT_ID_RULE.into() }),
        _ => Ok(()),
    }
}

/// Longest value of the free-text query parameters (`after`, `pillar`, `principal`, `model`):
/// each names an id or a model, and a longer one can match nothing.
pub const MAX_PARAM_CHARS: usize = 256;

/// Refuses a query parameter longer than [`MAX_PARAM_CHARS`].
pub(crate) fn check_param_len(field: &str, v: Option<&str>) -> Result<(), ApiError> {
    match v {
        Some(v) if v.chars().count() > MAX_PARAM_CHARS => {
            Err(ApiError::Invalid { field: field.into(), reason: format!("at most {MAX_PARAM_CHARS} characters") })
        }
        _ => Ok(()),
    }
}

/// A query string read into `T`, or a problem naming `query`.
pub(crate) fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(q)| q).map_err(|e| ApiError::Malformed { field: "query".into(), reason: e.body_text() })
}

fn range(from_ms: Option<i64>, to_ms: Option<i64>) -> Result<(i64, i64), ApiError> {
    let (from, to) = (from_ms.unwrap_or(0), to_ms.unwrap_or(i64::MAX));
    if from > to {
        return Err(ApiError::Invalid { field: "from_ms".into(), reason: "must not be after to_ms".into() });
    }
    Ok((from, to))
}

/// `/api/v1/usage`: ledger events, oldest first.
pub async fn usage(
    State(store): State<store::Store>,
    Extension(who): Who,
    Extension(ActingFor(acting)): Acting,
    q: Result<Query<UsageQuery>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let q = query(q)?;
    let limit = q.limit.unwrap_or(1000);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::Invalid { field: "limit".into(), reason: format!("must be 1..={MAX_PAGE}") });
    }
    let (from, to) = range(q.from_ms, q.to_ms)?;
    check_tenant_param(q.tenant.as_deref())?;
    check_param_len("pillar", q.pillar.as_deref())?;
    let tenant = who.list_scope(q.tenant.or(acting));
    let rows: Vec<store::UsageRow<serde_json::Value>> = store.usage(tenant.as_deref(), q.pillar.as_deref(), from, to, limit).await?;
    let out: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|r| serde_json::json!({"id": r.id, "at_ms": r.at_ms, "tenant": r.tenant, "pillar": r.pillar, "usage": r.doc}))
        .collect();
    Ok(axum::Json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummaryQuery {
    tenant: Option<String>,
    pillar: Option<String>,
    /// Only this principal's events (an API key id, a token id or a console user).
    principal: Option<String>,
    model: Option<String>,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    /// What to group by: a comma-separated list of day, tenant, pillar, principal, model
    /// (default: all of them).
    by: Option<String>,
}

/// `/api/v1/usage/summary`: the ledger's summaries (events, errors, tokens, GPU-seconds,
/// energy, carbon and money), grouped as asked.
pub async fn summary(
    State(store): State<store::Store>,
    Extension(who): Who,
    Extension(ActingFor(acting)): Acting,
    q: Result<Query<SummaryQuery>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let q = query(q)?;
    let (from, to) = range(q.from_ms, q.to_ms)?;
    let by = match &q.by {
        Some(b) => ledger::GroupBy::parse(b).map_err(|reason| ApiError::Invalid { field: "by".into(), reason })?,
        None => ledger::GroupBy::ALL,
    };
    check_tenant_param(q.tenant.as_deref())?;
    for (field, v) in [("pillar", &q.pillar), ("principal", &q.principal), ("model", &q.model)] {
        check_param_len(field, v.as_deref())?;
    }
    let tenant = who.list_scope(q.tenant.or(acting));
    let mut rows: Vec<ledger::Entry<serde_json::Value>> =
        store.usage(tenant.as_deref(), q.pillar.as_deref(), from, to, SUMMARY_MAX_ROWS).await?;
    let truncated = rows.len() as u32 == SUMMARY_MAX_ROWS;
    rows.retain(|r| {
        q.principal.as_ref().is_none_or(|p| r.doc.principal.as_ref() == Some(p))
            && q.model.as_ref().is_none_or(|m| r.doc.reference("model") == m)
    });
    Ok(axum::Json(serde_json::json!({"rows": ledger::summarize(&rows, by), "truncated": truncated})))
}
