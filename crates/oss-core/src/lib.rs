//! Open-source contribution evaluation, as X-lab's OpenDigger measures it: GH Archive events in,
//! activity and OpenRank out.
//!
//! - [`event`] reads one GH Archive line tolerantly into the few fields the measures need.
//! - [`row`] is the compact record an event is reduced to, and the names behind its ids.
//! - [`people`] leaves bots out and merges one developer's accounts.
//! - [`activity`] is OpenDigger's developer activity in a repo (its weights and square root).
//! - [`openrank`] is the OpenRank iteration over a graph with per-node retention.
//! - [`global`] and [`community`] build OpenDigger's two OpenRank graphs for a month.
//!
//! The core does no I/O, reads no clock and draws no random numbers, like the simulator: the
//! same events give the same values, in any order.

pub mod activity;
pub mod community;
pub mod event;
pub mod global;
pub mod openrank;
pub mod people;
pub mod row;
