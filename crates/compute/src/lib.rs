//! The compute pillar's core: the network model, the job model and the scheduler.
//!
//! Architecture invariant: nothing in this crate does I/O except [`file::load_network_file`],
//! and nothing reads a clock or draws random numbers. Time is always an argument.

pub mod file;
pub mod job;
pub mod network;
pub mod scheduler;
pub mod tariff;

pub use job::{DatasetRef, JobKind, JobSpec, LostPolicy, NetworkAccess, Region};
pub use network::{ClusterSpec, HubSpec, Invalid, LinkSpec, Network, NetworkSpec, NodePoolSpec};
pub use scheduler::{Allocation, Decision, Explanation, JobReq, Policy, Scheduler, ScoreTerms, Weights};
