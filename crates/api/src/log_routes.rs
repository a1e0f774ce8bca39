//! The transparency log's routes.
//!
//! - `/log/checkpoint`, `/log/tile/...`, `/log/key`: C2SP tlog-tiles and the log's public
//!   key, readable without a credential so that anyone can mirror and check the log with
//!   standard tools.
//! - `/api/v1/log/proof` and `/api/v1/log/consistency`: proof documents that verify offline
//!   (`aiplus log verify`); they hold only public leaves and hashes, so they are public too.
//! - `/api/v1/log/entries/{index}`: an entry with its full record, for operators.

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Deserialize;
use tlog::{Log, LogError};

use crate::problem::ApiError;

type S = State<Arc<Log>>;

pub fn router(log: Arc<Log>) -> Router {
    Router::new()
        .route("/log/checkpoint", get(checkpoint))
        .route("/log/key", get(key))
        .route("/log/tile/{*path}", get(tile))
        .route("/api/v1/log/proof", get(proof))
        .route("/api/v1/log/consistency", get(consistency))
        .route("/api/v1/log/entries/{index}", get(entry))
        .with_state(log)
}

impl From<LogError> for ApiError {
    fn from(e: LogError) -> Self {
        match e {
            LogError::NotFound(what) => ApiError::NotFound { what: "log entry", id: what },
            LogError::Invalid(why) => ApiError::Invalid { field: "fact".into(), reason: why },
            LogError::Proof(p) => ApiError::Invalid { field: "size".into(), reason: p.to_string() },
            LogError::Tlog(t) => ApiError::Invalid { field: "path".into(), reason: t.to_string() },
            LogError::Store(s) => ApiError::Store(s),
            LogError::Tampered(why) => ApiError::Internal(why),
            e @ LogError::OtherKey { .. } => ApiError::Internal(e.to_string()),
            LogError::Json(j) => ApiError::Internal(j.to_string()),
        }
    }
}

async fn checkpoint(State(log): S) -> Result<impl IntoResponse, ApiError> {
    // Mutable: caches may keep it a few seconds at most (tlog-tiles).
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, "max-age=2")], log.checkpoint().await?))
}

async fn key(State(log): S) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{}\n", log.verifier().encode()))
}

async fn tile(State(log): S, Path(path): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let full = format!("tile/{path}");
    match log.tile(&full).await? {
        // Immutable once it exists (a partial tile is another path than its full one).
        Some(bytes) => Ok((
            [(header::CONTENT_TYPE, "application/octet-stream"), (header::CACHE_CONTROL, "public, max-age=31536000, immutable")],
            bytes,
        )),
        None => Err(ApiError::NotFound { what: "tile", id: full }),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofQuery {
    index: u64,
    /// The tree size; the latest checkpoint's when absent.
    size: Option<u64>,
}

async fn proof(State(log): S, q: Result<Query<ProofQuery>, QueryRejection>) -> Result<impl IntoResponse, ApiError> {
    let q = crate::usage_routes::query(q)?;
    Ok(axum::Json(log.inclusion(q.index, q.size).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyQuery {
    from: u64,
    /// The newer size; the latest checkpoint's when absent.
    to: Option<u64>,
}

async fn consistency(State(log): S, q: Result<Query<ConsistencyQuery>, QueryRejection>) -> Result<impl IntoResponse, ApiError> {
    let q = crate::usage_routes::query(q)?;
    if q.from == 0 {
        return Err(ApiError::Invalid {
            field: "from".into(),
            reason: "a consistency proof starts from a tree of at least one entry".into(),
        });
    }
    Ok(axum::Json(log.consistency(q.from, q.to).await?))
}

async fn entry(State(log): S, Path(index): Path<String>) -> Result<impl IntoResponse, ApiError> {
    // At most 20 digits (a u64): a longer string is refused, not read as a number.
    let index: u64 = index.parse().ok().filter(|_| index.len() <= 20).ok_or_else(|| ApiError::Invalid {
        field: "index".into(),
        reason: "an entry index is a non-negative integer of at most 20 digits".into(),
    })?;
    let row = log.entry(index).await?;
    let leaf: serde_json::Value = serde_json::from_str(&row.leaf).map_err(|e| ApiError::Internal(e.to_string()))?;
    let record: serde_json::Value = serde_json::from_str(&row.record).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(axum::Json(serde_json::json!({"index": index, "leaf": leaf, "record": record})))
}
