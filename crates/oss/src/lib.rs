//! Open-source contribution evaluation, as X-lab's OpenDigger measures it: GH Archive events in,
//! activity and OpenRank out.
//!
//! - [`event`] reads one GH Archive line tolerantly into the few fields the measures need.
//! - [`activity`] is OpenDigger's developer activity in a repo (its weights and square root).
//! - [`openrank`] is the OpenRank iteration over a graph with per-node retention.
//!
//! The core does no I/O, reads no clock and draws no random numbers, like the simulator: the
//! same events give the same values, in any order.

pub mod activity;
pub mod event;
pub mod openrank;
