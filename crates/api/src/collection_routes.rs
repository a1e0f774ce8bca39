//! Document collections for agents' `file_search`: a tenant puts documents in (each embedded as
//! the caller, so it is metered like any embeddings request), lists, searches and deletes its
//! own. Another tenant's collection answers exactly like one that does not exist.

use std::sync::Arc;

use agents::collections::{Collections, DocumentIn};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::{Extension, Router};
use identity::{ActingFor, Principal};
use serde::Deserialize;
use serde_json::json;

use crate::json::Json;
use crate::problem::ApiError;

type S = State<Arc<Collections>>;
type Who = Extension<Arc<Principal>>;
type Acting = Extension<ActingFor>;

pub fn router(c: Arc<Collections>) -> Router {
    Router::new()
        .route("/api/v1/collections", get(list))
        .route("/api/v1/collections/{id}", get(show).delete(delete))
        .route("/api/v1/collections/{id}/documents/{doc}", put(put_doc).delete(delete_doc))
        .route("/api/v1/collections/{id}/search", post(search))
        .with_state(c)
}

/// The tenant a route acts for: the caller's own, or the one an operator names.
fn tenant_of(acting: Option<String>) -> Result<String, ApiError> {
    acting.ok_or_else(|| ApiError::Invalid {
        field: crate::gate::TENANT_HEADER.into(),
        reason: "an operator names the tenant whose collections it manages in this header".into(),
    })
}

async fn list(State(c): S, Extension(ActingFor(acting)): Acting) -> Result<impl IntoResponse, ApiError> {
    let data = c.list(&tenant_of(acting)?).await?;
    Ok(axum::Json(json!({"object": "list", "data": data})))
}

async fn show(State(c): S, Extension(ActingFor(acting)): Acting, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let docs = c.documents(&tenant_of(acting)?, &id).await?;
    Ok(axum::Json(json!({"object": "collection", "id": id, "documents": docs})))
}

async fn delete(State(c): S, Extension(ActingFor(acting)): Acting, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    c.delete(&tenant_of(acting)?, &id, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds a document (201), or replaces one of the same id (200).
async fn put_doc(
    State(c): S,
    Extension(who): Who,
    Extension(ActingFor(acting)): Acting,
    Path((id, doc)): Path<(String, String)>,
    Json(body): Json<DocumentIn>,
) -> Result<impl IntoResponse, ApiError> {
    let (view, created) = c.put(&who, &tenant_of(acting)?, &id, &doc, body).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, axum::Json(view)))
}

async fn delete_doc(
    State(c): S,
    Extension(ActingFor(acting)): Acting,
    Path((id, doc)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    c.delete(&tenant_of(acting)?, &id, Some(&doc)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A query: one string or several, as OpenAI's vector store search takes it.
#[derive(Deserialize)]
#[serde(untagged)]
enum Query {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchBody {
    query: Query,
    #[serde(default = "default_results")]
    max_num_results: u32,
}

fn default_results() -> u32 {
    agents::collections::DEFAULT_RESULTS
}

async fn search(
    State(c): S,
    Extension(who): Who,
    Extension(ActingFor(acting)): Acting,
    Path(id): Path<String>,
    Json(body): Json<SearchBody>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = tenant_of(acting)?;
    // A search of a collection the tenant does not have is a 404, like every other route here.
    c.documents(&tenant, &id).await?;
    let queries = match body.query {
        Query::One(q) => vec![q],
        Query::Many(q) => q,
    };
    let hits = c.search(&who, &tenant, &[id], &queries, body.max_num_results).await?;
    Ok(axum::Json(json!({"object": "list", "search_query": queries, "data": hits})))
}
