//! The data exchange's management API: a tenant's datasets and their immutable versions
//! (Croissant records), resumable uploads of their files, listings, and the catalogue of every
//! tenant's listed datasets. Another tenant's dataset or upload answers exactly like one that
//! does not exist.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Router};
use data::exchange::{ContractIn, DataError, DatasetIn, Exchange, ListingIn, RunIn, UploadIn, ValuationIn};
use identity::{ActingFor, Principal};
use serde::Deserialize;
use serde_json::json;

use crate::json::Json;
use crate::problem::ApiError;

type S = State<Arc<Exchange>>;
type Acting = Extension<ActingFor>;
type BodyResult = Result<Bytes, axum::extract::rejection::BytesRejection>;

impl From<DataError> for ApiError {
    fn from(e: DataError) -> Self {
        match e {
            DataError::Invalid { field, reason } => ApiError::Invalid { field, reason },
            DataError::Croissant(report) => {
                ApiError::Invalid { field: "croissant".into(), reason: report.errors.into_iter().collect::<Vec<_>>().join("; ") }
            }
            DataError::NotFound { what, id } => ApiError::NotFound { what, id },
            DataError::Conflict(m) => ApiError::Conflict(m),
            DataError::Limit(m) => ApiError::Limit(m),
            DataError::Store(e) => ApiError::Store(e),
            DataError::Objects(m) => ApiError::Busy(format!("file storage is unavailable: {m}")),
        }
    }
}

pub fn router(x: Arc<Exchange>) -> Router {
    // A chunk is raw bytes of the exchange's chunk size; a Croissant record is JSON up to its limit.
    let chunk_limit = usize::try_from(x.limits().chunk_bytes).unwrap_or(usize::MAX).saturating_add(1024);
    let record_limit = DefaultBodyLimit::max(data::croissant::MAX_RECORD_BYTES);
    Router::new()
        .route("/api/v1/datasets", get(list).post(create))
        .route("/api/v1/datasets/{id}", get(show))
        .route("/api/v1/datasets/{id}/listing", put(listing))
        .route("/api/v1/datasets/{id}/versions", post(add_version).layer(record_limit))
        .route("/api/v1/datasets/{id}/versions/{version}", get(version))
        .route("/api/v1/datasets/{id}/versions/{version}/croissant", get(croissant))
        .route("/api/v1/datasets/{id}/versions/{version}/publish", post(publish))
        .route("/api/v1/datasets/{id}/versions/{version}/files/{file}", get(file))
        .route("/api/v1/datasets/{id}/versions/{version}/valuations", get(valuations).post(value))
        .route("/api/v1/catalogue", get(catalogue))
        .route("/api/v1/contracts", get(contracts).post(sign))
        .route("/api/v1/contracts/{id}", get(contract))
        .route("/api/v1/contracts/{id}/files/{file}", get(contract_file))
        .route("/api/v1/contracts/{id}/runs", get(runs).post(start_run))
        .route("/api/v1/contracts/{id}/runs/{run}", get(run))
        .route("/api/v1/contracts/{id}/runs/{run}/outputs/{name}", get(run_output))
        .route("/api/v1/settlements", get(settlements).post(settle))
        .route("/api/v1/registrations", get(registrations).post(apply))
        .route("/api/v1/registrations/{id}", get(registration))
        .route("/api/v1/registrations/{id}/objections", post(object))
        .route("/api/v1/registrations/{id}/actions", post(act))
        .route("/api/v1/registration-notices", get(notices))
        .route("/api/v1/uploads", post(start_upload))
        .route("/api/v1/uploads/{id}", get(upload).delete(cancel_upload))
        .route("/api/v1/uploads/{id}/chunks/{ix}", put(put_chunk).layer(DefaultBodyLimit::max(chunk_limit)))
        .route("/api/v1/uploads/{id}/complete", post(complete))
        .with_state(x)
}

/// The tenant a route acts for: the caller's own, or the one an operator names.
fn tenant_of(acting: Option<String>) -> Result<String, ApiError> {
    acting.ok_or_else(|| ApiError::Invalid {
        field: crate::gate::TENANT_HEADER.into(),
        reason: "an operator names the tenant whose datasets it manages in this header".into(),
    })
}

async fn list(State(x): S, Extension(ActingFor(acting)): Acting) -> Result<impl IntoResponse, ApiError> {
    let data = x.datasets(&tenant_of(acting)?).await?;
    Ok(axum::Json(json!({"object": "list", "data": data})))
}

async fn create(State(x): S, Extension(ActingFor(acting)): Acting, Json(body): Json<DatasetIn>) -> Result<impl IntoResponse, ApiError> {
    let view = x.create_dataset(&tenant_of(acting)?, body).await?;
    Ok((StatusCode::CREATED, axum::Json(view)))
}

async fn show(State(x): S, Extension(ActingFor(acting)): Acting, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(x.dataset(&tenant_of(acting)?, &id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListingBody {
    /// The published version listed; `null` withdraws the listing. Required, so that a body
    /// that forgets it is not read as a withdrawal.
    version: serde_json::Value,
    #[serde(default)]
    offer: Option<data::exchange::Offer>,
}

/// Lists a published version on an offer, or withdraws the listing.
async fn listing(
    State(x): S,
    Extension(ActingFor(acting)): Acting,
    Path(id): Path<String>,
    Json(body): Json<ListingBody>,
) -> Result<impl IntoResponse, ApiError> {
    let listing = match (body.version, body.offer) {
        (serde_json::Value::Null, _) => None,
        (serde_json::Value::String(version), Some(offer)) => Some(ListingIn { version, offer }),
        (serde_json::Value::String(_), None) => {
            return Err(ApiError::Invalid { field: "offer".into(), reason: "a listing names its offer".into() });
        }
        _ => return Err(ApiError::Malformed { field: "version".into(), reason: "a version string, or null".into() }),
    };
    Ok(axum::Json(x.set_listing(&tenant_of(acting)?, &id, listing).await?))
}

/// Adds a version from its Croissant record (201), or finds the same record added before (200).
async fn add_version(
    State(x): S,
    Extension(ActingFor(acting)): Acting,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: BodyResult,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = tenant_of(acting)?;
    let kind = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !(kind.starts_with("application/json") || kind.starts_with("application/ld+json")) {
        return Err(ApiError::Malformed { field: "content-type".into(), reason: "must be application/ld+json or application/json".into() });
    }
    let body = body.map_err(|_| ApiError::TooLarge { limit_bytes: data::croissant::MAX_RECORD_BYTES })?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::Malformed { field: "body".into(), reason: "a Croissant record is UTF-8 JSON-LD".into() })?;
    let (view, created) = x.add_version(&tenant, &id, text).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, axum::Json(view)))
}

async fn version(
    State(x): S,
    Extension(ActingFor(acting)): Acting,
    Path((id, v)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(x.version(&tenant_of(acting)?, &id, &v).await?))
}

async fn croissant(State(x): S, Extension(ActingFor(acting)): Acting, Path((id, v)): Path<(String, String)>) -> Result<Response, ApiError> {
    let text = x.croissant(&tenant_of(acting)?, &id, &v).await?;
    let mut r = text.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/ld+json"));
    Ok(r)
}

async fn publish(
    State(x): S,
    Extension(ActingFor(acting)): Acting,
    Path((id, v)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(x.publish(&tenant_of(acting)?, &id, &v).await?))
}

/// A hosted file of one of the tenant's own versions.
async fn file(
    State(x): S,
    Extension(ActingFor(acting)): Acting,
    Path((id, v, file)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let (spec, bytes) = x.file(&tenant_of(acting)?, &id, &v, &file).await?;
    let mut r = bytes.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    if let Some(sha) = spec.sha256.as_deref().and_then(|s| HeaderValue::from_str(s).ok()) {
        h.insert("x-content-sha256", sha);
    }
    Ok(r)
}

async fn catalogue(State(x): S) -> Result<impl IntoResponse, ApiError> {
    let data: Vec<serde_json::Value> = x
        .catalogue()
        .await?
        .into_iter()
        .map(|(d, v)| json!({"object": "catalogue.entry", "tenant": d.tenant, "dataset": d.id, "residency": d.residency, "version": v}))
        .collect();
    Ok(axum::Json(json!({"object": "list", "data": data})))
}

async fn start_upload(
    State(x): S,
    Extension(ActingFor(acting)): Acting,
    Json(body): Json<UploadIn>,
) -> Result<impl IntoResponse, ApiError> {
    let view = x.start_upload(&tenant_of(acting)?, body).await?;
    Ok((StatusCode::CREATED, axum::Json(view)))
}

async fn upload(State(x): S, Extension(ActingFor(acting)): Acting, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(x.upload_status(&tenant_of(acting)?, &id).await?))
}

/// Cancels an open upload, deleting its staged chunks.
async fn cancel_upload(State(x): S, Extension(ActingFor(acting)): Acting, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(x.cancel_upload(&tenant_of(acting)?, &id).await?))
}

/// Stores one chunk (raw bytes). `X-Chunk-Sha256`, when sent, is checked against the bytes.
async fn put_chunk(
    State(x): S,
    Extension(ActingFor(acting)): Acting,
    Path((id, ix)): Path<(String, String)>,
    headers: HeaderMap,
    body: BodyResult,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = tenant_of(acting)?;
    let ix: i64 = ix.parse().map_err(|_| ApiError::Invalid { field: "chunk".into(), reason: format!("{ix:?} is not a chunk number") })?;
    let limit = usize::try_from(x.limits().chunk_bytes).unwrap_or(usize::MAX);
    let body = body.map_err(|_| ApiError::TooLarge { limit_bytes: limit })?;
    let sha = headers.get("x-chunk-sha256").and_then(|v| v.to_str().ok());
    Ok(axum::Json(x.put_chunk(&tenant, &id, ix, body, sha).await?))
}

async fn complete(State(x): S, Extension(ActingFor(acting)): Acting, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(x.complete_upload(&tenant_of(acting)?, &id).await?))
}

async fn valuations(
    State(x): S,
    Extension(ActingFor(acting)): Acting,
    Path((id, v)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let data = x.valuations(&tenant_of(acting)?, &id, &v).await?;
    Ok(axum::Json(json!({"object": "list", "data": data})))
}

/// Values a version's training file for its test file, per row and per contributor.
async fn value(
    State(x): S,
    Extension(ActingFor(acting)): Acting,
    Path((id, v)): Path<(String, String)>,
    Json(body): Json<ValuationIn>,
) -> Result<impl IntoResponse, ApiError> {
    let record = x.value_version(&tenant_of(acting)?, &id, &v, body).await?;
    Ok((StatusCode::CREATED, axum::Json(record)))
}

async fn contracts(State(x): S, Extension(ActingFor(acting)): Acting) -> Result<impl IntoResponse, ApiError> {
    let data = x.contracts(&tenant_of(acting)?).await?;
    Ok(axum::Json(json!({"object": "list", "data": data})))
}

/// Signs a contract, as the buyer, on a listing's terms.
async fn sign(State(x): S, Extension(ActingFor(acting)): Acting, Json(body): Json<ContractIn>) -> Result<impl IntoResponse, ApiError> {
    let c = x.sign_contract(&tenant_of(acting)?, body).await?;
    Ok((StatusCode::CREATED, axum::Json(c)))
}

async fn contract(State(x): S, Extension(ActingFor(acting)): Acting, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(x.contract(&tenant_of(acting)?, &id).await?))
}

/// A file read under a download contract: recorded in the ledger, priced by the contract.
async fn contract_file(
    State(x): S,
    Extension(ActingFor(acting)): Acting,
    Path((id, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (spec, bytes) = x.read_under_contract(&tenant_of(acting)?, &id, &file).await?;
    let mut r = bytes.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    if let Some(sha) = spec.sha256.as_deref().and_then(|s| HeaderValue::from_str(s).ok()) {
        h.insert("x-content-sha256", sha);
    }
    Ok(r)
}

/// Starts a compute-to-data run under a compute contract; with `Idempotency-Key`, a retry
/// answers with the first run (200) instead of starting another.
async fn start_run(
    State(x): S,
    Extension(who): Who,
    Extension(ActingFor(acting)): Acting,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<RunIn>,
) -> Result<impl IntoResponse, ApiError> {
    let key = crate::routes::idempotency_key(&headers)?;
    let buyer = tenant_of(acting)?;
    let principal = Some(who.id.clone());
    // Its own task, so that a client hanging up cannot stop a run half-way through staging.
    let (run, created) = tokio::spawn(async move { x.start_run(&buyer, principal, &id, key, body).await })
        .await
        .map_err(|e| ApiError::Internal(format!("starting the run: {e}")))??;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, axum::Json(run)))
}

async fn runs(State(x): S, Extension(ActingFor(acting)): Acting, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let data = x.runs(&tenant_of(acting)?, &id).await?;
    Ok(axum::Json(json!({"object": "list", "data": data})))
}

async fn run(
    State(x): S,
    Extension(ActingFor(acting)): Acting,
    Path((id, run)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(x.run(&tenant_of(acting)?, &id, &run).await?))
}

/// An output of a run that passed the output check, for the buyer.
async fn run_output(
    State(x): S,
    Extension(ActingFor(acting)): Acting,
    Path((id, run, name)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let bytes = x.run_output(&tenant_of(acting)?, &id, &run, &name).await?;
    let mut r = bytes.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    Ok(r)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettleBody {
    /// A month, `YYYY-MM`.
    period: String,
}

/// Settlements: a seller's own; an operator's view is every seller's (without acting for one).
async fn settlements(State(x): S, Extension(who): Who, Extension(ActingFor(acting)): Acting) -> Result<impl IntoResponse, ApiError> {
    let seller = if who.is_operator() { acting } else { Some(tenant_of(acting)?) };
    let data = x.settlements(seller.as_deref()).await?;
    Ok(axum::Json(json!({"object": "list", "data": data})))
}

/// Settles every contract with revenue in a month; settling again changes nothing.
async fn settle(State(x): S, Json(body): Json<SettleBody>) -> Result<impl IntoResponse, ApiError> {
    let data = x.settle(&body.period).await?;
    Ok(axum::Json(json!({"object": "list", "period": body.period, "data": data})))
}

type Who = Extension<Arc<Principal>>;

async fn registrations(State(x): S, Extension(ActingFor(acting)): Acting) -> Result<impl IntoResponse, ApiError> {
    let data = x.registrations(&tenant_of(acting)?).await?;
    Ok(axum::Json(json!({"object": "list", "data": data})))
}

/// Applies for a registration of one of the tenant's published versions.
async fn apply(
    State(x): S,
    Extension(who): Who,
    Extension(ActingFor(acting)): Acting,
    Json(body): Json<data::registry::RegistrationIn>,
) -> Result<impl IntoResponse, ApiError> {
    let r = x.apply(&tenant_of(acting)?, who.role.as_str(), body).await?;
    Ok((StatusCode::CREATED, axum::Json(r)))
}

async fn registration(State(x): S, Extension(ActingFor(acting)): Acting, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(x.registration(Some(&tenant_of(acting)?), &id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ObjectionBody {
    reason: String,
}

/// Another tenant objects to a registration on public notice.
async fn object(
    State(x): S,
    Extension(who): Who,
    Extension(ActingFor(acting)): Acting,
    Path(id): Path<String>,
    Json(body): Json<ObjectionBody>,
) -> Result<impl IntoResponse, ApiError> {
    let r = x.object_to(&tenant_of(acting)?, who.role.as_str(), &id, &body.reason).await?;
    Ok(axum::Json(r))
}

/// An operator's review (`pass`, `reject`), decision on an objection (`uphold`, `dismiss`), or
/// `finalize` once the notice is over.
async fn act(
    State(x): S,
    Extension(who): Who,
    Path(id): Path<String>,
    Json(body): Json<data::registry::Action>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(x.act_on_registration(who.role.as_str(), &id, body).await?))
}

/// The registrations on public notice: what is registered, for whom, until when.
async fn notices(State(x): S) -> Result<impl IntoResponse, ApiError> {
    let data: Vec<serde_json::Value> = x
        .notices()
        .await?
        .into_iter()
        .map(|r| {
            // The notice shows the rights, classification and licence chain, not the evidence.
            json!({"object": "data.registration_notice", "id": r.id, "tenant": r.tenant, "kind": r.application.kind,
                   "dataset": r.application.dataset, "version": r.application.version, "rights": r.application.rights,
                   "classification": r.application.classification, "licence_chain": r.application.licence_chain,
                   "notice_until_ms": r.notice_until_ms, "objections": r.objections.len()})
        })
        .collect();
    Ok(axum::Json(json!({"object": "list", "data": data})))
}
