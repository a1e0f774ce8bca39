//! The data exchange (floor 3 for its pure parts, see ARCHITECTURE.md). So far its valuation:
//! what each training point, and so each contributor, is worth to a task, for revenue sharing
//! by value contribution.
//!
//! - [`valuation`]: exact KNN-Shapley (Jia et al., VLDB 2019), per point and per contributor.

pub mod croissant;
pub mod exchange;
pub mod registry;
pub mod semivalues;
pub mod table;
pub mod valuation;
