//! The usage ledger, shared by every pillar (floor 2 of the house, see ARCHITECTURE.md): one
//! append-only record of use, from which billing, quotas, revenue sharing and every usage view
//! read.
//!
//! - [`UsageEvent`] is the one event type: pillar, tenant, principal, subject, quantity and
//!   unit, unit price, energy (kWh), carbon (kgCO2), money (CNY, one field) and references,
//!   plus the pillar's own detail. The gateway writes one per request, the job lifecycle one
//!   per run; data reads, evaluation runs and agent steps will write theirs.
//! - [`Ledger`] is the batching writer (`writer.rs`) and its durability promise.
//! - [`summary`] is the one set of summaries: the usage API, the CLI and the console all read
//!   these.

pub mod event;
pub mod summary;
pub mod writer;

pub use event::{Entry, Subject, Unit, UsageEvent};
pub use summary::{GroupBy, SummaryRow, summarize};
pub use writer::{Full, Ledger, Ticket};
