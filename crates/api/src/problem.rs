//! One error type for the HTTP boundary and its one, exhaustive mapping to RFC 9457
//! `application/problem+json` responses. Every 4xx names the field and the reason.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use problem::{Kind, Problem};

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
    /// The path exists, but not with this method; `allow` lists its methods.
    #[error("this path answers only {allow}")]
    MethodNotAllowed { allow: String },
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
    /// A job that no cluster of the network could ever run: the binding constraint in words
    /// (the problem's `detail`) and the reason per cluster (its `exclusions`).
    #[error("{summary}")]
    Unplaceable { summary: String, reasons: Vec<compute::scheduler::Exclusion> },
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
            J::Unplaceable { summary, reasons } => ApiError::Unplaceable { summary, reasons },
            J::Busy(why) => ApiError::Busy(why),
            J::Limit(why) => ApiError::Limit(why),
            J::Store(e) => ApiError::Store(e),
            J::Internal(why) => ApiError::Internal(why),
        }
    }
}

impl From<models::ModelsError> for ApiError {
    fn from(e: models::ModelsError) -> Self {
        use models::ModelsError as M;
        match e {
            M::Invalid { field, reason } => ApiError::Invalid { field, reason },
            M::NotFound { what, id } => ApiError::NotFound { what, id },
            M::Io { path, reason } => ApiError::Internal(format!("{}: {reason}", path.display())),
            M::Store(why) => ApiError::Internal(why),
        }
    }
}

impl From<eval::EvalError> for ApiError {
    fn from(e: eval::EvalError) -> Self {
        use eval::EvalError as E;
        match e {
            E::Invalid { field, reason } => ApiError::Invalid { field, reason },
            E::Suite { file, reason } => ApiError::Invalid { field: "suite".into(), reason: format!("{file}: {reason}") },
            E::Cache { path, reason } => ApiError::Internal(format!("evaluation cache {path}: {reason}")),
            E::Store(e) => ApiError::Store(e),
            E::Corrupt { id, reason } => ApiError::Internal(format!("stored record {id}: {reason}")),
        }
    }
}

impl From<compute::Invalid> for ApiError {
    fn from(e: compute::Invalid) -> Self {
        ApiError::Invalid { field: e.field, reason: e.reason }
    }
}

impl ApiError {
    /// The one, exhaustive mapping of the API's errors to problem kinds (and so to statuses).
    pub fn kind(&self) -> Kind {
        match self {
            ApiError::Invalid { .. } => Kind::Invalid,
            ApiError::Unplaceable { .. } => Kind::Unplaceable,
            ApiError::Malformed { .. } => Kind::Malformed,
            ApiError::NotFound { .. } => Kind::NotFound,
            ApiError::MethodNotAllowed { .. } => Kind::MethodNotAllowed,
            ApiError::Unauthenticated(_) => Kind::Unauthenticated,
            ApiError::Forbidden(_) => Kind::Forbidden,
            ApiError::UnknownHost(_) => Kind::UnknownHost,
            ApiError::Conflict(_) => Kind::Conflict,
            ApiError::TooLarge { .. } => Kind::TooLarge,
            ApiError::Busy(_) => Kind::Busy,
            ApiError::Limit(_) => Kind::Limit,
            ApiError::Store(_) | ApiError::Internal(_) => Kind::Internal,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.kind().status()
    }
}

impl From<problem::BadJson> for ApiError {
    fn from(e: problem::BadJson) -> Self {
        ApiError::Malformed { field: e.field, reason: e.reason }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let kind = self.kind();
        if kind == Kind::Internal {
            tracing::error!(error = %self, "request failed inside aiplus");
        }
        let mut p = match &self {
            ApiError::Invalid { field, reason } | ApiError::Malformed { field, reason } => Problem::field(kind, field, reason),
            ApiError::UnknownHost(_) => {
                Problem { field: Some("host".into()), reason: Some("not a configured name".into()), ..Problem::new(kind, self.to_string()) }
            }
            // Internal details stay in the log; the client gets a stable sentence.
            ApiError::Store(_) | ApiError::Internal(_) => Problem::new(kind, "the request could not be stored; nothing was changed"),
            _ => Problem::new(kind, self.to_string()),
        };
        match self {
            ApiError::Unplaceable { reasons, .. } => p.extra = Some(("exclusions", serde_json::to_value(reasons).unwrap_or_default())),
            ApiError::MethodNotAllowed { allow } => p.allow = Some(allow),
            _ => {}
        }
        p.into_response()
    }
}
