//! Autoscaling that follows arrivals, per replica pool (a service, an origin hub, and whether
//! its requests must stay in that hub).
//!
//! Every `scale_interval_s` the pool's demand is measured over the last `demand_window_s` of
//! arrivals, as prompt tokens per second (prefill) and generated tokens per second (decode).
//! A replica offers its GPU's prefill rate and its full batch's decode rate
//! ([`super::model::ReplicaFigures`]); the pool is covered when each demand is at most
//! `target_utilisation` of the pool's summed capacity. That is `desired = ceil(demand /
//! (capacity × target_utilisation))` on each resource, written for replicas whose capacities
//! differ, since the scheduler may place each on a different GPU model.
//!
//! Scaling up is immediate: replicas are placed one at a time until the pool is covered, and
//! serve after the cold start. Scaling down waits: only when the newest replicas have been
//! surplus at every decision for `scale_down_cooldown_s` are they drained (the
//! Kubernetes HorizontalPodAutoscaler's downscale stabilisation window, 300 s by default).

use std::collections::VecDeque;

use serde::Serialize;

#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct AutoscaleOptions {
    pub scale_interval_s: f64,
    pub demand_window_s: f64,
    /// ASSUMPTION 0.6: headroom for bursts within a window and for the cold start.
    pub target_utilisation: f64,
    /// Replicas each pool with traffic keeps however quiet it is.
    pub min_replicas: u32,
    /// Most replicas one pool may hold, so a runaway demand estimate cannot take the network.
    pub max_replicas_per_pool: u32,
    /// ASSUMPTION 60 s: starting the serving engine and loading 16 GB of weights before a new
    /// replica serves (a minute is the order reported for loading LLM checkpoints from SSD into
    /// GPUs without a dedicated loader, e.g. ServerlessLLM, OSDI 2024).
    pub cold_start_s: f64,
    /// The Kubernetes HPA's default downscale stabilisation window.
    pub scale_down_cooldown_s: f64,
}

impl Default for AutoscaleOptions {
    fn default() -> Self {
        Self {
            scale_interval_s: 30.0,
            demand_window_s: 60.0,
            target_utilisation: 0.6,
            min_replicas: 1,
            max_replicas_per_pool: 256,
            cold_start_s: 60.0,
            scale_down_cooldown_s: 300.0,
        }
    }
}

/// Most replicas a pool may be allowed, whatever the options say.
pub const MAX_REPLICAS_PER_POOL: u32 = 4096;

impl AutoscaleOptions {
    /// The first bad option, as (field, reason).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let range = |field: &'static str, v: f64, lo: f64, hi: f64| {
            if v.is_finite() && (lo..=hi).contains(&v) { Ok(()) } else { Err((field, format!("must be between {lo} and {hi}, got {v}"))) }
        };
        range("scale_interval_s", self.scale_interval_s, 1.0, 3600.0)?;
        range("demand_window_s", self.demand_window_s, 1.0, 86_400.0)?;
        range("target_utilisation", self.target_utilisation, 0.05, 1.0)?;
        range("cold_start_s", self.cold_start_s, 0.0, 3600.0)?;
        range("scale_down_cooldown_s", self.scale_down_cooldown_s, 0.0, 86_400.0)?;
        if self.max_replicas_per_pool == 0 || self.max_replicas_per_pool > MAX_REPLICAS_PER_POOL {
            return Err(("max_replicas_per_pool", format!("must be 1..={MAX_REPLICAS_PER_POOL}, got {}", self.max_replicas_per_pool)));
        }
        if self.min_replicas > self.max_replicas_per_pool {
            return Err(("min_replicas", format!("must be at most max_replicas_per_pool ({})", self.max_replicas_per_pool)));
        }
        Ok(())
    }
}

/// Token rates: a pool's demand or a replica's capacity.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Load {
    pub prefill_tokens_per_s: f64,
    pub decode_tokens_per_s: f64,
}

impl Load {
    fn plus(self, o: Load) -> Load {
        Load {
            prefill_tokens_per_s: self.prefill_tokens_per_s + o.prefill_tokens_per_s,
            decode_tokens_per_s: self.decode_tokens_per_s + o.decode_tokens_per_s,
        }
    }
}

/// Whether `capacity` run at `utilisation` covers `demand` on both resources.
pub fn covers(capacity: Load, demand: Load, utilisation: f64) -> bool {
    demand.prefill_tokens_per_s <= utilisation * capacity.prefill_tokens_per_s
        && demand.decode_tokens_per_s <= utilisation * capacity.decode_tokens_per_s
}

pub fn total(capacities: &[Load]) -> Load {
    capacities.iter().fold(Load::default(), |a, &c| a.plus(c))
}

/// One pool's arrivals over the demand window.
#[derive(Debug, Default)]
pub struct Window {
    arrivals: VecDeque<(f64, u32, u32)>,
    context_tokens: u64,
    generated_tokens: u64,
}

impl Window {
    pub fn push(&mut self, at_s: f64, context_tokens: u32, generated_tokens: u32) {
        self.arrivals.push_back((at_s, context_tokens, generated_tokens));
        self.context_tokens += u64::from(context_tokens);
        self.generated_tokens += u64::from(generated_tokens);
    }

    /// Demand over `[now − window_s, now)`; older arrivals are forgotten.
    pub fn demand(&mut self, now_s: f64, window_s: f64) -> Load {
        while let Some(&(at, c, g)) = self.arrivals.front() {
            if at >= now_s - window_s {
                break;
            }
            self.arrivals.pop_front();
            self.context_tokens -= u64::from(c);
            self.generated_tokens -= u64::from(g);
        }
        Load { prefill_tokens_per_s: self.context_tokens as f64 / window_s, decode_tokens_per_s: self.generated_tokens as f64 / window_s }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Place replicas, one at a time, until [`covers`] holds and the minimum is met.
    Up,
    /// Drain this many of the newest replicas.
    Down(usize),
    Hold,
}

/// A pool's scaling state: since when its newest replicas have been surplus.
#[derive(Debug, Default)]
pub struct Scaler {
    surplus_since_s: Option<f64>,
}

impl Scaler {
    /// The decision at `now_s` for a pool whose serving replicas (oldest first) have these
    /// capacities.
    pub fn plan(&mut self, now_s: f64, demand: Load, capacities: &[Load], opts: &AutoscaleOptions) -> Plan {
        let n = capacities.len();
        let util = opts.target_utilisation;
        if (n < opts.min_replicas as usize || !covers(total(capacities), demand, util)) && n < opts.max_replicas_per_pool as usize {
            self.surplus_since_s = None;
            return Plan::Up;
        }
        // The newest replicas the rest would cover without them.
        let mut keep = n;
        while keep > opts.min_replicas as usize && keep > 0 && covers(total(&capacities[..keep - 1]), demand, util) {
            keep -= 1;
        }
        if keep == n {
            self.surplus_since_s = None;
            return Plan::Hold;
        }
        let since = *self.surplus_since_s.get_or_insert(now_s);
        if now_s - since >= opts.scale_down_cooldown_s {
            self.surplus_since_s = None;
            return Plan::Down(n - keep);
        }
        Plan::Hold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_down_only_after_the_cooldown() {
        let opts = AutoscaleOptions::default();
        let cap = Load { prefill_tokens_per_s: 1000.0, decode_tokens_per_s: 1000.0 };
        let busy = Load { prefill_tokens_per_s: 1100.0, decode_tokens_per_s: 10.0 };
        let quiet = Load { prefill_tokens_per_s: 100.0, decode_tokens_per_s: 10.0 };
        let mut s = Scaler::default();
        assert_eq!(s.plan(0.0, busy, &[cap], &opts), Plan::Up);
        assert_eq!(s.plan(30.0, busy, &[cap, cap], &opts), Plan::Hold);
        assert_eq!(s.plan(60.0, quiet, &[cap, cap], &opts), Plan::Hold);
        assert_eq!(s.plan(300.0, quiet, &[cap, cap], &opts), Plan::Hold);
        assert_eq!(s.plan(360.0, quiet, &[cap, cap], &opts), Plan::Down(1));
        // The minimum stays however quiet it is.
        assert_eq!(s.plan(1000.0, Load::default(), &[cap], &opts), Plan::Hold);
        assert_eq!(s.plan(1000.0, Load::default(), &[], &opts), Plan::Up);
    }
}
