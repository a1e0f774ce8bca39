//! What a run needs from outside, as traits the binary implements: the model step (over the
//! gateway, in-process), the ledger's record of tool calls, checkpoints, approvals, stdio
//! servers' spawner; and the in-memory ones tests and the bench use.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::State;

/// Why a model step failed: the gateway's status and error, passed on to the client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// One model step: a non-streaming Responses request through the gateway's admission pipeline,
/// as the run's caller, answered with a Responses object. `step_id` names the step in the ledger.
pub trait Model: Send + Sync {
    fn respond(&self, step_id: String, body: Value) -> BoxFuture<Result<Value, StepError>>;

    /// The same step streamed: each piece of the answer's text goes to `deltas` as the model
    /// writes it, and the result is the whole Responses object, as [`Model::respond`]'s. A
    /// model that cannot stream answers whole (its text then arrives as one delta).
    fn respond_streaming(
        &self,
        step_id: String,
        body: Value,
        deltas: tokio::sync::mpsc::Sender<String>,
    ) -> BoxFuture<Result<Value, StepError>> {
        drop(deltas);
        self.respond(step_id, body)
    }
}

/// Writes a tool call's ledger event once the call is done: (response id, `mcp_call` item,
/// latency in ms).
pub type Record = Box<dyn FnOnce(&str, &Value, u64) + Send + Sync>;

/// Records tool calls in the usage ledger (one event per call, by its item id). A place is
/// taken before the call, so a call is never made that could not be recorded.
pub trait Recorder: Send + Sync {
    /// `None` when the ledger is behind: the call is not made.
    fn begin(&self) -> Option<Record>;
}

/// Saves a run's state: false when the run must stop (cancelled, or taken by another instance).
pub trait Checkpoint: Send + Sync {
    fn save(&self, state: &State) -> BoxFuture<bool>;
}

/// Approvals acted on, across requests: an approval is claimed once, before its call.
pub trait Approvals: Send + Sync {
    /// True the first time an approval request id is claimed, false ever after.
    fn claim(&self, approval_request_id: &str) -> BoxFuture<bool>;
}

/// Approvals remembered in memory (tests, and the bench).
#[derive(Default)]
pub struct MemoryApprovals(std::sync::Mutex<std::collections::BTreeSet<String>>);

impl Approvals for MemoryApprovals {
    fn claim(&self, id: &str) -> BoxFuture<bool> {
        let first = self.0.lock().map(|mut s| s.insert(id.to_string())).unwrap_or(false);
        Box::pin(async move { first })
    }
}

/// The checkpoint of a run that lives only as long as its request.
pub struct InMemory;

impl Checkpoint for InMemory {
    fn save(&self, _: &State) -> BoxFuture<bool> {
        Box::pin(async { true })
    }
}

/// The built-in `file_search`: the best `k` chunks of the run's tenant's collections.
pub trait Search: Send + Sync {
    fn search(&self, collections: Vec<String>, queries: Vec<String>, k: u32) -> BoxFuture<Result<Vec<crate::collections::Hit>, String>>;
}

/// The guardrail on tool outputs: whether a text must not reach the model.
pub type Guard = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// What a run needs besides the agent and the request.
#[derive(Clone)]
pub struct Deps {
    pub model: Arc<dyn Model>,
    /// The outbound client for MCP servers (no redirects, local addresses as the operator says).
    pub http: reqwest::Client,
    pub recorder: Arc<dyn Recorder>,
    pub guard: Option<Guard>,
    /// Item ids (`mcp_…`, `msg_…`): the caller's, so ids stay unique across instances.
    pub ids: Arc<dyn Fn(&str) -> String + Send + Sync>,
    /// The operator's allowlist, checked again at every call (it may have shrunk since the
    /// agent was declared).
    pub hosts: crate::service::HostRule,
    /// Runs stdio servers in the job sandbox; none where jobs cannot be sandboxed.
    pub spawner: Option<Arc<dyn crate::mcp::Spawn>>,
    pub approvals: Arc<dyn Approvals>,
    /// Searches the tenant's collections for `file_search`; none where there is no embedder.
    pub search: Option<Arc<dyn Search>>,
    /// Whether a run with a stream asks its model steps streamed, token by token: yes for a
    /// client listening; no for a background run, whose events are stored (a row per token,
    /// and a step cut by a crash would leave a message open in them).
    pub stream_steps: bool,
}
