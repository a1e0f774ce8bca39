//! Governance (floor 4, see ARCHITECTURE.md): the rules that bite.
//!
//! - [`states`]: each model's state, `active`, `restricted` (only listed tenants) or
//!   `suspended`. The gateway asks [`ModelStates`] (as a [`vocab::ModelPolicy`]) on every
//!   request; every instance follows changes made on any other within a fraction of a second;
//!   every change, with its reason and actor, is a transparency-log leaf.
//!
//! - [`filings`], [`lifecycle`], [`filing_service`]: the CAC filings (备案) an operator keeps,
//!   from draft to filed to cancelled, with their attachments stored by SHA-256, the rules'
//!   deadlines in China's working days ([`calendar`]), and every change a log leaf.
//! - [`policy`]: the [`vocab::ModelPolicy`] the gateway asks: the state, and with
//!   `govern.require_filing` a filing in force.
//! - [`alerts`]: what needs an operator's attention (an overdue filing), open until its cause
//!   is gone, raised once however many instances see it.
//!
//! Monitoring rules and incidents come next (issue 11).

pub mod alerts;
pub mod calendar;
pub mod counters;
pub mod end_users;
pub mod filing_service;
pub mod filings;
pub mod incidents;
pub mod lifecycle;
pub mod monitor;
pub mod policy;
pub mod rules;
pub mod services;
pub mod states;
pub mod webhooks;

pub use filing_service::Filings;
pub use policy::Policy;
pub use services::Services;
pub use states::{Change, ModelState, ModelStates, Status};

/// Errors of the governance services, one type for the boundary.
#[derive(Debug, thiserror::Error)]
pub enum GovernError {
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// The action does not fit the record's state (or the record changed meanwhile).
    #[error("{0}")]
    Conflict(String),
    #[error("{what} {id:?} not found")]
    NotFound { what: &'static str, id: String },
    /// The change is in the log but was not stored: the log says more than happened; retry.
    #[error("the change was logged but storing it failed ({0}); send it again")]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Log(#[from] tlog::LogError),
    #[error("a stored governance record is not valid: {0}")]
    Corrupt(#[from] serde_json::Error),
}
