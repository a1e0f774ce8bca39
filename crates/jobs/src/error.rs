//! The one error type of the compute service; the HTTP edge and the console each map it once.

#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    /// A field of the input breaks a rule; `field` names it.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// No such object (or one the caller may not see: the two answer alike).
    #[error("{what} {id:?} not found")]
    NotFound { what: &'static str, id: String },
    /// The change conflicts with the current state (an id taken, a network that would strand a job).
    #[error("{0}")]
    Conflict(String),
    /// A job that no cluster of the network could ever run: the binding constraint in words
    /// (`compute::scheduler::never::summary`), and the reason per cluster.
    #[error("{summary}")]
    Unplaceable { summary: String, reasons: Vec<compute::scheduler::Exclusion> },
    /// A limit of the service is reached (the queue is full); retry later.
    #[error("{0}")]
    Busy(String),
    /// A limit on what one tenant may hold is reached (its queued jobs).
    #[error("{0}")]
    Limit(String),
    #[error("storage failed: {0}")]
    Store(#[from] store::StoreError),
    /// A bug: a task that should not fail did.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<compute::Invalid> for JobsError {
    fn from(e: compute::Invalid) -> Self {
        JobsError::Invalid { field: e.field, reason: e.reason }
    }
}
