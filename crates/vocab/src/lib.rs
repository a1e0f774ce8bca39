//! The vocabulary every pillar shares, floor 0 of the house (see ARCHITECTURE.md): plain types
//! with no I/O, no async, no clock and no randomness.
//!
//! - [`Region`]: where a tenant's data and work may go, and the one rule ([`Region::contains`],
//!   [`allows`]) that job placement, model routing and (soon) dataset access all call.
//! - [`Clock`]: where "now" comes from, for the services that need it.
//! - [`text`]: small text rules more than one edge needs (percent-encoding, cookies).
//! - [`de`]: reading untrusted input strictly (objects only where an object is meant).

pub mod de;
pub mod region;
pub mod text;

pub use region::{Place, Region, allows};

/// Where time comes from. Deterministic cores take times as arguments; services that need
/// "now" take a `Clock`, so tests can hold time still.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}
