//! Which deployment answers: smooth weighted round-robin (nginx's), skipping deployments whose
//! circuit breaker is open, then the rest in order as fallbacks.
//!
//! A breaker opens after [`BREAKER_FAILURES`] failures in a row and stays open for
//! [`BREAKER_OPEN`]; the first request after that is a trial that closes it again on success.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::{DeploymentConfig, ModelConfig};

pub const BREAKER_FAILURES: u32 = 5;
pub const BREAKER_OPEN: Duration = Duration::from_secs(30);

struct Slot {
    weight: i64,
    current: i64,
    failures: u32,
    open_until: Option<Instant>,
}

pub struct ModelRoute {
    pub model: ModelConfig,
    slots: Mutex<Vec<Slot>>,
}

impl ModelRoute {
    pub fn new(model: ModelConfig) -> Self {
        let slots =
            model.deployments.iter().map(|d| Slot { weight: i64::from(d.weight), current: 0, failures: 0, open_until: None }).collect();
        Self { model, slots: Mutex::new(slots) }
    }

    /// Deployments to try, best first: the weighted pick among closed breakers, then the other
    /// closed ones, then open ones (a last resort beats no answer).
    pub fn plan(&self, now: Instant) -> Vec<&DeploymentConfig> {
        let Ok(mut slots) = self.slots.lock() else { return self.model.deployments.iter().collect() };
        let closed: Vec<usize> = (0..slots.len()).filter(|&i| slots[i].open_until.is_none_or(|t| t <= now)).collect();
        let total: i64 = closed.iter().map(|&i| slots[i].weight).sum();
        let mut first = None;
        for &i in &closed {
            slots[i].current += slots[i].weight;
            if first.is_none_or(|f: usize| slots[i].current > slots[f].current) {
                first = Some(i);
            }
        }
        if let Some(f) = first {
            slots[f].current -= total;
        }
        let mut order: Vec<usize> = first.into_iter().collect();
        order.extend(closed.iter().copied().filter(|&i| Some(i) != first));
        order.extend((0..slots.len()).filter(|i| !closed.contains(i)));
        order.into_iter().map(|i| &self.model.deployments[i]).collect()
    }

    pub fn record(&self, deployment: &str, ok: bool, now: Instant) {
        let Some(i) = self.model.deployments.iter().position(|d| d.id == deployment) else { return };
        let Ok(mut slots) = self.slots.lock() else { return };
        let s = &mut slots[i];
        if ok {
            s.failures = 0;
            s.open_until = None;
        } else {
            s.failures += 1;
            if s.failures >= BREAKER_FAILURES {
                s.open_until = Some(now + BREAKER_OPEN);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(weights: &[u32]) -> ModelConfig {
        ModelConfig {
            name: "m".into(),
            deployments: weights
                .iter()
                .enumerate()
                .map(|(i, w)| DeploymentConfig {
                    id: format!("d{i}"),
                    base_url: "http://x".into(),
                    api_key_env: None,
                    upstream_model: None,
                    cluster: None,
                    weight: *w,
                    timeout_s: 1,
                    input_cny_per_1k: 0.0,
                    output_cny_per_1k: 0.0,
                })
                .collect(),
        }
    }

    #[test]
    fn weights_are_honoured_and_every_plan_lists_all() {
        let r = ModelRoute::new(model(&[3, 1]));
        let now = Instant::now();
        let firsts: Vec<String> = (0..8).map(|_| r.plan(now)[0].id.clone()).collect();
        assert_eq!(firsts.iter().filter(|f| *f == "d0").count(), 6);
        assert_eq!(r.plan(now).len(), 2);
    }

    #[test]
    fn an_open_breaker_moves_a_deployment_last_until_it_times_out() {
        let r = ModelRoute::new(model(&[1, 1]));
        let now = Instant::now();
        for _ in 0..BREAKER_FAILURES {
            r.record("d0", false, now);
        }
        for _ in 0..4 {
            assert_eq!(r.plan(now)[0].id, "d1");
        }
        let later = now + BREAKER_OPEN + Duration::from_millis(1);
        assert!((0..2).any(|_| r.plan(later)[0].id == "d0"), "half-open after the timeout");
    }
}
