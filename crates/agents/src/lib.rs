//! Agents as a service (floor 4, see ARCHITECTURE.md): a tenant declares an agent once
//! (instructions, model, tools, limits) and any OpenAI-compatible client uses it as the model
//! `agent:<id>[@version]` on the Responses API, with the tool loop run here, server-side.
//!
//! - [`spec`]: the declaration and its checks (every refusal names its field).
//! - [`service`]: versioned agents per tenant over the store; MCP headers sealed at rest.
//! - [`mcp`]: the MCP client (streamable HTTP, spec versions 2025-11-25 and 2026-07-28).
//! - [`run`]: the loop: call the model, call the tools it asks for, feed the results back,
//!   until it answers, asks the client (a function tool, an approval), or hits a limit.
//! - [`collections`]: tenants' document collections and the search behind `file_search`.
//! - [`usage`]: one ledger event per tool call.
//!
//! The crate knows no HTTP server types: the Responses route (floor 5) turns a run's events
//! into the typed stream, and the model step is a trait the binary implements over the
//! gateway's admission pipeline, in-process.

pub mod collections;
pub mod items;
pub mod mcp;
pub mod run;
pub mod service;
pub mod spec;
pub mod usage;

pub use service::{Agent, Agents};
pub use spec::{AgentSpec, Limits, Tool};

/// Why an agent could not be declared, found or run.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A field of the declaration or request breaks a rule: the field, and why.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// No such object for this tenant (another tenant's answers alike).
    #[error("{what} {id:?} not found")]
    NotFound { what: &'static str, id: String },
    #[error("storage failed: {0}")]
    Store(#[from] store::StoreError),
    /// The gateway refused or failed to embed (a limit reached, the embedder not ready).
    #[error("embedding failed ({status}): {message}")]
    Embedding { status: u16, message: String },
    /// A stored record does not read back (or its sealed headers do not open).
    #[error("stored record {id}: {reason}")]
    Corrupt { id: String, reason: String },
}
