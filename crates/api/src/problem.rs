//! One error type for the HTTP boundary and its one, exhaustive mapping to RFC 9457
//! `application/problem+json` responses. Every 4xx names the field and the reason.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body or a parameter is well-formed but breaks a rule.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// The body is not JSON, or not the right shape.
    #[error("{field}: {reason}")]
    Malformed { field: String, reason: String },
    #[error("{what} {id:?} not found")]
    NotFound { what: &'static str, id: String },
    #[error("{0}")]
    Conflict(String),
    /// A job that no cluster of the network could ever run.
    #[error("no cluster can ever run this job")]
    Unplaceable { reasons: Vec<compute::scheduler::Exclusion> },
    #[error("request body too large (limit {limit_bytes} bytes)")]
    TooLarge { limit_bytes: usize },
    #[error("{0}")]
    Busy(String),
    #[error("storage failed: {0}")]
    Store(#[from] store::StoreError),
    /// A bug: a task that should not fail did (it panicked or was aborted).
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<compute::Invalid> for ApiError {
    fn from(e: compute::Invalid) -> Self {
        ApiError::Invalid { field: e.field, reason: e.reason }
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    title: &'a str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exclusions: Option<&'a [compute::scheduler::Exclusion]>,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Invalid { .. } | ApiError::Unplaceable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Malformed { .. } => StatusCode::BAD_REQUEST,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Store(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let (kind, title) = match &self {
            ApiError::Invalid { .. } => ("/problems/invalid-field", "A field is invalid"),
            ApiError::Malformed { .. } => ("/problems/malformed-request", "The request could not be read"),
            ApiError::NotFound { .. } => ("/problems/not-found", "Not found"),
            ApiError::Conflict(_) => ("/problems/conflict", "Conflict with the current state"),
            ApiError::Unplaceable { .. } => ("/problems/unplaceable-job", "No cluster can run this job"),
            ApiError::TooLarge { .. } => ("/problems/body-too-large", "Request body too large"),
            ApiError::Busy(_) => ("/problems/busy", "Temporarily unable to accept work"),
            ApiError::Store(_) | ApiError::Internal(_) => ("/problems/internal", "Internal error"),
        };
        if matches!(self, ApiError::Store(_) | ApiError::Internal(_)) {
            tracing::error!(error = %self, "request failed inside aiplus");
        }
        let (field, reason) = match &self {
            ApiError::Invalid { field, reason } | ApiError::Malformed { field, reason } => (Some(field.as_str()), Some(reason.as_str())),
            _ => (None, None),
        };
        let exclusions = match &self {
            ApiError::Unplaceable { reasons } => Some(reasons.as_slice()),
            _ => None,
        };
        // Internal details stay in the log; the client gets a stable sentence.
        let detail = if matches!(self, ApiError::Store(_) | ApiError::Internal(_)) {
            "the request could not be stored; nothing was changed".to_string()
        } else {
            self.to_string()
        };
        let body = Problem { kind, title, status: status.as_u16(), detail, field, reason, exclusions };
        let mut resp = (status, axum::Json(body)).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        resp
    }
}
