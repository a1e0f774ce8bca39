//! The vocabulary every pillar shares, floor 0 of the house (see ARCHITECTURE.md): plain types
//! with no I/O, no async, no clock and no randomness.
//!
//! - [`Region`]: where a tenant's data and work may go, and the one rule ([`Region::contains`],
//!   [`allows`]) that job placement, model routing and (soon) dataset access all call.
//! - [`Clock`]: where "now" comes from, for the services that need it.
//! - [`ModelPolicy`]: what governance says of a model for a tenant now; the gateway asks,
//!   `govern` answers, and the binary joins the two. [`Observer`]: what monitoring is told of
//!   every request.
//! - [`text`]: small text rules more than one edge needs (percent-encoding, cookies).
//! - [`de`]: reading untrusted input strictly (objects only where an object is meant).
//! - [`ActionArea`]: the Action's six areas, which jobs (and their ledger rows) may be tagged with.

pub mod action_area;
pub mod de;
pub mod region;
pub mod text;

pub use action_area::ActionArea;
pub use region::{Place, Region, allows};

/// Where time comes from. Deterministic cores take times as arguments; services that need
/// "now" take a `Clock`, so tests can hold time still.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

/// Governance's word on one request for a model version: whether it may be served now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelDecision {
    Allow,
    /// Refused, with an OpenAI-style error code (`model_suspended`, `model_restricted`) and a
    /// message that says why and what to do.
    Refuse {
        code: &'static str,
        message: String,
    },
}

/// What governance allows of a model it restricts without refusing outright: the regions its
/// deployments may serve from, and limits per tenant below the tenants' own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelBounds {
    /// Empty: anywhere the tenant's own regions allow.
    pub regions: Vec<Region>,
    pub requests_per_min: Option<u64>,
    pub tokens_per_min: Option<u64>,
    pub tokens_per_day: Option<u64>,
}

/// Asked by the gateway for every request, on its hot path: answers from memory, at once.
pub trait ModelPolicy: Send + Sync {
    /// The bounds on a model version that may serve, if governance set any.
    fn bounds(&self, model: &str) -> Option<std::sync::Arc<ModelBounds>>;
    fn decide(&self, model: &str, tenant: &str) -> ModelDecision;
    /// Whether a filing that stands covers model version `model` for `tenant`: traffic falls
    /// back from a withheld version only to a filed one.
    fn filed(&self, model: &str, tenant: &str) -> bool;
    /// Whether `tenant`'s end user `user` (the OpenAI `user` field) may be served now.
    fn end_user(&self, tenant: &str, user: &str) -> ModelDecision;
}

/// One answered (or refused) request, as the gateway meters it: what monitoring counts.
#[derive(Clone, Copy, Debug)]
pub struct Observation<'a> {
    pub model: &'a str,
    pub tenant: &'a str,
    /// The end user the tenant named (`user`), if any.
    pub end_user: Option<&'a str>,
    pub status: u16,
    /// Stopped by the guardrail (its input or its answer).
    pub blocked: bool,
    /// Stopped by the guardrail for what the client sent (TC260-003 counts these per end user).
    pub blocked_input: bool,
    /// The model declined to answer (an OpenAI `refusal`, or `finish_reason: content_filter`).
    pub refused: bool,
    pub latency_ms: u64,
    pub tokens: u64,
    pub at_ms: i64,
}

/// Told of every request the gateway meters, on its hot path: records in memory, at once.
pub trait Observer: Send + Sync {
    fn observe(&self, o: &Observation<'_>);
}
