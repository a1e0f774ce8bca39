//! The vocabulary every pillar shares, floor 0 of the house (see ARCHITECTURE.md): plain types
//! with no I/O, no async, no clock and no randomness.
//!
//! - [`Region`]: where a tenant's data and work may go, and the one rule ([`Region::contains`],
//!   [`allows`]) that job placement, model routing and (soon) dataset access all call.

pub mod region;

pub use region::{Place, Region, allows};
