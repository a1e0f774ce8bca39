//! The requests of one replay: each trace request, given an origin hub and a residency by a
//! seeded draw, on the replay's clock.
//!
//! - **Origin.** Drawn with weight 3 for a demand-side (east) hub and 1 for a resource-side
//!   (west) hub, the rule of [`crate::scenario`]: "East Data, West Computing" says demand is in
//!   the east.
//! - **Residency.** A share of the requests ([`super::InferenceOptions::pinned_share`]) may only
//!   be served in their origin hub, as [`crate::scenario`] pins jobs to `hub:<origin>`.
//! - **Clock.** Time 0 is the earliest request of all services, so the services keep their
//!   recorded offsets; gaps from it are divided by `time_compression`.
//! - **Copies.** To load the network more, the trace is replayed `copies` times; each copy draws
//!   its own origins and residency and arrives up to 60 s after the original, as in
//!   [`crate::scenario`].

use compute::Network;
use compute::network::{HubIx, Side};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::ServiceTrace;

/// How far after the original a copy's request may arrive (the batch scenario's rule).
const COPY_JITTER_S: f64 = 60.0;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Request {
    /// Seconds since the replay's start.
    pub at_s: f64,
    pub service: usize,
    pub origin: HubIx,
    /// May only be served in its origin hub.
    pub pinned: bool,
    pub context_tokens: u32,
    pub generated_tokens: u32,
}

pub struct Workload {
    /// Unix time of the replay's start: the earliest request of all services.
    pub start_unix_s: f64,
    /// In arrival order.
    pub requests: Vec<Request>,
}

pub fn draw(net: &Network, services: &[ServiceTrace], seed: u64, time_compression: f64, copies: u32, pinned_share: f64) -> Workload {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let weights: Vec<u32> = net.spec.hubs.iter().map(|h| if h.side == Side::East { 3 } else { 1 }).collect();
    let total_weight: u32 = weights.iter().sum();
    let start_unix_s = services.iter().filter_map(|s| s.requests.first()).map(|r| r.at_unix_s).fold(f64::INFINITY, f64::min);
    let start_unix_s = if start_unix_s.is_finite() { start_unix_s } else { 0.0 };
    let count: usize = services.iter().map(|s| s.requests.len()).sum();
    let mut requests = Vec::with_capacity(count * copies as usize);
    for copy in 0..copies {
        for (service, trace) in services.iter().enumerate() {
            for r in &trace.requests {
                let mut pick = rng.random_range(0..total_weight.max(1));
                let mut origin = 0;
                for (i, w) in weights.iter().enumerate() {
                    if pick < *w {
                        origin = i;
                        break;
                    }
                    pick -= w;
                }
                let pinned = rng.random_bool(pinned_share.clamp(0.0, 1.0));
                let jitter = if copy == 0 { 0.0 } else { rng.random_range(0.0..COPY_JITTER_S) };
                requests.push(Request {
                    at_s: (r.at_unix_s - start_unix_s) / time_compression + jitter,
                    service,
                    origin,
                    pinned,
                    context_tokens: r.context_tokens,
                    generated_tokens: r.generated_tokens,
                });
            }
        }
    }
    // A stable sort: requests at the same instant keep the order they were drawn in.
    requests.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    Workload { start_unix_s, requests }
}
