//! The compute pillar's service (floor 4 of the house, see ARCHITECTURE.md): jobs, their
//! placement by the scheduler, and their durable lifecycle on the engines. It knows no HTTP;
//! the management API (`api`) and the console (`web`) are its callers.
//!
//! Shape: `compute_service.rs` makes ids and timestamps, validates, asks the scheduler and
//! writes through the store; `lifecycle.rs` hands placed jobs to their engines and follows them
//! to their end; `follow.rs` bounds live followers of a job. Errors leave as one type,
//! [`JobsError`].

pub mod compute_service;
pub mod error;
pub mod follow;
pub mod lifecycle;

pub use compute_service::{ComputeService, Submitter, SystemClock};
pub use error::JobsError;
pub use vocab::Clock;
