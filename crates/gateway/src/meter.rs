//! The gateway's side of the usage ledger (`ledger`): what one request's event says. The
//! writer, its queue and its durability promise are the ledger's; a request takes its
//! [`ledger::Ticket`] when it is admitted, so its event always has a place.

use serde::{Deserialize, Serialize};

pub use ledger::writer::FLUSH_EVERY;

/// The gateway's ledger writer.
pub type Meter = ledger::Ledger<RequestDetail>;

/// What a gateway event says beside the ledger's common fields (principal: the key; subject:
/// the request, by the client's `X-Request-Id` when it sent one; quantity: tokens; money: the
/// upstream's prices; refs: the model, and the deployment and cluster that answered).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestDetail {
    pub endpoint: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Whether the upstream reported the counts (else they were estimated here).
    pub tokens_reported: bool,
    pub latency_ms: u64,
    pub status: u16,
    pub stream: bool,
    /// Stopped by a guardrail.
    #[serde(default)]
    pub blocked: bool,
    /// The model declined to answer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refused: bool,
}
