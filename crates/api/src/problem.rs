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
    /// No credential, or one that is not valid.
    #[error("{0}")]
    Unauthenticated(String),
    /// A valid credential that may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The `Host` header is not a name this server answers to (DNS rebinding).
    #[error("host: {0:?} is not a name this server answers to (server.hosts)")]
    UnknownHost(String),
    #[error("{0}")]
    Conflict(String),
    /// A job that no cluster of the network could ever run.
    #[error("no cluster can ever run this job")]
    Unplaceable { reasons: Vec<compute::scheduler::Exclusion> },
    #[error("request body too large (limit {limit_bytes} bytes)")]
    TooLarge { limit_bytes: usize },
    #[error("{0}")]
    Busy(String),
    /// A limit on what one tenant may hold or open at once (live streams, keys, queued jobs).
    #[error("{0}")]
    Limit(String),
    #[error("storage failed: {0}")]
    Store(#[from] store::StoreError),
    /// A bug: a task that should not fail did (it panicked or was aborted).
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<identity::IdentityError> for ApiError {
    fn from(e: identity::IdentityError) -> Self {
        use identity::IdentityError as E;
        match e {
            E::Invalid { field, reason } => ApiError::Invalid { field, reason },
            E::NotFound { what, id } => ApiError::NotFound { what, id },
            E::Conflict { what, id } => ApiError::Conflict(format!("{what} {id:?} already exists")),
            E::Limit { field, reason } => ApiError::Limit(format!("{field}: {reason}")),
            E::Store(e) => ApiError::Store(e),
            E::File { path, source } => ApiError::Internal(format!("{path}: {source}")),
        }
    }
}

impl From<identity::Denied> for ApiError {
    fn from(d: identity::Denied) -> Self {
        match d {
            identity::Denied::Unauthenticated => ApiError::Unauthenticated(d.to_string()),
            identity::Denied::Forbidden(why) => ApiError::Forbidden(why),
        }
    }
}

impl From<jobs::JobsError> for ApiError {
    fn from(e: jobs::JobsError) -> Self {
        use jobs::JobsError as J;
        match e {
            J::Invalid { field, reason } => ApiError::Invalid { field, reason },
            J::NotFound { what, id } => ApiError::NotFound { what, id },
            J::Conflict(why) => ApiError::Conflict(why),
            J::Unplaceable { reasons } => ApiError::Unplaceable { reasons },
            J::Busy(why) => ApiError::Busy(why),
            J::Limit(why) => ApiError::Limit(why),
            J::Store(e) => ApiError::Store(e),
            J::Internal(why) => ApiError::Internal(why),
        }
    }
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
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::UnknownHost(_) => StatusCode::MISDIRECTED_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Limit(_) => StatusCode::TOO_MANY_REQUESTS,
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
            ApiError::Unauthenticated(_) => ("/problems/unauthenticated", "Authentication required"),
            ApiError::Forbidden(_) => ("/problems/forbidden", "Not allowed"),
            ApiError::UnknownHost(_) => ("/problems/unknown-host", "Unknown host"),
            ApiError::Conflict(_) => ("/problems/conflict", "Conflict with the current state"),
            ApiError::Unplaceable { .. } => ("/problems/unplaceable-job", "No cluster can run this job"),
            ApiError::TooLarge { .. } => ("/problems/body-too-large", "Request body too large"),
            ApiError::Busy(_) => ("/problems/busy", "Temporarily unable to accept work"),
            ApiError::Limit(_) => ("/problems/limit-reached", "A limit was reached"),
            ApiError::Store(_) | ApiError::Internal(_) => ("/problems/internal", "Internal error"),
        };
        if matches!(self, ApiError::Store(_) | ApiError::Internal(_)) {
            tracing::error!(error = %self, "request failed inside aiplus");
        }
        let (field, reason) = match &self {
            ApiError::Invalid { field, reason } | ApiError::Malformed { field, reason } => (Some(field.as_str()), Some(reason.as_str())),
            ApiError::UnknownHost(_) => (Some("host"), Some("not a configured name")),
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
