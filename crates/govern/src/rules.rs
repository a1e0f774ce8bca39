//! Alert rules over rolling windows of the gateway's traffic, as pure functions: a rule's value
//! for a window's [`Counters`], and the step it takes given whether it is firing and cooling
//! down. A rule fires when its value rises above `fire_above` and clears only when it falls
//! below `clear_below` (hysteresis, so a value hovering at the line does not flap), and after it
//! clears it does not fire again within its cool-down.

use serde::{Deserialize, Serialize};

use crate::GovernError;
use crate::counters::{BUCKET_MS, Counters, MAX_WINDOW_MS};
use crate::incidents::{Grade, OperatorClass};

pub const MAX_RULES: usize = 200;
pub const MAX_COOLDOWN_S: u32 = 7 * 86_400;
/// The largest line a rule may draw (tokens a minute reach far below it).
pub const MAX_LINE: f64 = 1e15;
pub const MAX_MIN_REQUESTS: u64 = 1_000_000;
pub const MAX_URL_BYTES: usize = 2048;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Share of requests the guardrail stopped (input or answer).
    BlockRate,
    /// Share of answers in which the model declined.
    RefusalRate,
    /// Share of requests answered with a status of 500 or more.
    ErrorRate,
    /// The 99th percentile of latency, in ms (to within 19%).
    LatencyMsP99,
    /// Tokens a minute over the window.
    TokensPerMin,
    /// Evaluators' flags in the window.
    Flags,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Post the alert to `webhook_url`.
    Notify,
    /// Restrict the model as `restrict` says.
    Restrict,
    Suspend,
}

/// What `restrict` puts on the model.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restriction {
    #[serde(default)]
    pub tenants: Vec<String>,
    #[serde(default)]
    pub regions: Vec<vocab::Region>,
    #[serde(default)]
    pub limits: Option<identity::limits::Limits>,
}

/// The incident a firing opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentSpec {
    pub grade: Grade,
    #[serde(default = "other")]
    pub operator_class: OperatorClass,
}

fn other() -> OperatorClass {
    OperatorClass::Other
}

fn default_min_requests() -> u64 {
    20
}

fn default_cooldown_s() -> u32 {
    300
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Given by the path it is stored under.
    #[serde(default)]
    pub name: String,
    /// The model version it watches; none: each model, apart.
    #[serde(default)]
    pub model: Option<String>,
    pub metric: Metric,
    pub window_s: u32,
    pub fire_above: f64,
    pub clear_below: f64,
    /// A rate or a percentile needs this many requests in the window to mean anything.
    #[serde(default = "default_min_requests")]
    pub min_requests: u64,
    #[serde(default = "default_cooldown_s")]
    pub cooldown_s: u32,
    #[serde(default)]
    pub actions: Vec<Action>,
    #[serde(default)]
    pub webhook_url: Option<String>,
    #[serde(default)]
    pub restrict: Option<Restriction>,
    #[serde(default)]
    pub incident: Option<IncidentSpec>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn invalid<T>(field: &'static str, reason: impl Into<String>) -> Result<T, GovernError> {
    Err(GovernError::Invalid { field, reason: reason.into() })
}

impl Rule {
    /// Checks the rule; a URL is checked by the caller, who knows what it may reach.
    pub fn check(&self) -> Result<(), GovernError> {
        if !identity::tenant_id_ok(&self.name) {
            return invalid("name", "1 to 64 of a-z, 0-9, '-' and '_'");
        }
        if let Some(m) = &self.model
            && (m.is_empty() || m.len() > crate::states::MAX_NAME_BYTES || m.chars().any(char::is_control))
        {
            return invalid("model", "a model name of 1 to 256 bytes without control characters");
        }
        let max_s = (MAX_WINDOW_MS / 1000) as u32;
        if !(30..=max_s).contains(&self.window_s) {
            return invalid("window_s", format!("30 to {max_s} seconds"));
        }
        if !(0.0..=MAX_LINE).contains(&self.fire_above) {
            return invalid("fire_above", "a number from 0 to 10^15");
        }
        if self.min_requests > MAX_MIN_REQUESTS {
            return invalid("min_requests", format!("at most {MAX_MIN_REQUESTS}"));
        }
        if self.webhook_url.as_ref().is_some_and(|u| u.len() > MAX_URL_BYTES) {
            return invalid("webhook_url", format!("at most {MAX_URL_BYTES} bytes"));
        }
        let mut seen = self.actions.clone();
        seen.sort_by_key(|a| *a as u8);
        seen.dedup();
        if seen.len() != self.actions.len() {
            return invalid("actions", "each action once");
        }
        if !(0.0..=self.fire_above).contains(&self.clear_below) {
            return invalid("clear_below", "a finite number from 0 to fire_above (the hysteresis)");
        }
        if self.cooldown_s > MAX_COOLDOWN_S {
            return invalid("cooldown_s", format!("at most {MAX_COOLDOWN_S}"));
        }
        if self.actions.contains(&Action::Notify) && self.webhook_url.is_none() {
            return invalid("webhook_url", "a rule that notifies names where");
        }
        if self.actions.contains(&Action::Restrict) && self.restrict.is_none() {
            return invalid("restrict", "a rule that restricts says to what (tenants, regions or limits)");
        }
        if self.actions.contains(&Action::Restrict) && self.actions.contains(&Action::Suspend) {
            return invalid("actions", "restrict or suspend, not both");
        }
        if self.actions.len() > 3 {
            return invalid("actions", "at most notify, and restrict or suspend");
        }
        Ok(())
    }

    /// The window's first bucket at `now_ms`.
    pub fn window_from_ms(&self, now_ms: i64) -> i64 {
        let from = now_ms - i64::from(self.window_s) * 1000;
        from.div_euclid(BUCKET_MS) * BUCKET_MS
    }

    /// The rule's value over a window's counters; none when there is too little traffic.
    pub fn value(&self, c: &Counters) -> Option<f64> {
        let rate = |n: u64| (c.requests >= self.min_requests.max(1)).then(|| n as f64 / c.requests as f64);
        match self.metric {
            Metric::BlockRate => rate(c.blocked),
            Metric::RefusalRate => rate(c.refused),
            Metric::ErrorRate => rate(c.errors),
            Metric::LatencyMsP99 => (c.requests >= self.min_requests.max(1)).then(|| c.latency_ms_quantile(0.99)).flatten(),
            Metric::TokensPerMin => Some(c.tokens as f64 * 60.0 / f64::from(self.window_s)),
            Metric::Flags => Some(c.flags as f64),
        }
    }
}

/// What a rule does at one evaluation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Step {
    Fire(f64),
    Clear(f64),
    Hold,
}

/// The step for `value` when the rule is (not) `firing` and (not) `cooling` down.
pub fn step(rule: &Rule, value: Option<f64>, firing: bool, cooling: bool) -> Step {
    match value {
        Some(v) if !firing && !cooling && v > rule.fire_above => Step::Fire(v),
        Some(v) if firing && v < rule.clear_below => Step::Clear(v),
        _ => Step::Hold,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn rule() -> Rule {
        serde_json::from_value(serde_json::json!({
            "name": "blocks", "metric": "block_rate", "window_s": 60, "fire_above": 0.2, "clear_below": 0.05,
            "min_requests": 10, "actions": ["notify", "suspend"], "webhook_url": "http://127.0.0.1:9/hook"
        }))
        .unwrap()
    }

    fn counters(requests: u64, blocked: u64) -> Counters {
        Counters { requests, blocked, ..Counters::default() }
    }

    #[test]
    fn hysteresis_and_cool_down_keep_a_rule_from_flapping() {
        let r = rule();
        assert!(r.check().is_ok());
        assert_eq!(r.value(&counters(9, 9)), None, "too few requests to mean anything");
        let high = r.value(&counters(10, 3));
        assert_eq!(step(&r, high, false, false), Step::Fire(0.3));
        assert_eq!(step(&r, high, true, false), Step::Hold, "firing already");
        let between = r.value(&counters(100, 10));
        assert_eq!(step(&r, between, true, false), Step::Hold, "0.1 is under the line to fire but over the line to clear");
        assert_eq!(step(&r, between, false, false), Step::Hold);
        let low = r.value(&counters(100, 1));
        assert_eq!(step(&r, low, true, false), Step::Clear(0.01));
        assert_eq!(step(&r, high, false, true), Step::Hold, "cooling down");
        assert_eq!(step(&r, None, true, false), Step::Hold, "no traffic: no news");
    }

    #[test]
    fn a_bad_rule_names_its_field() {
        let field = |r: Rule| match r.check() {
            Err(GovernError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(Rule { clear_below: 0.5, ..rule() }), "clear_below");
        assert_eq!(field(Rule { window_s: 5, ..rule() }), "window_s");
        assert_eq!(field(Rule { webhook_url: None, ..rule() }), "webhook_url");
        assert_eq!(field(Rule { actions: vec![Action::Restrict], ..rule() }), "restrict");
        assert_eq!(field(Rule { name: "Bad Name".into(), ..rule() }), "name");
        assert_eq!(field(Rule { fire_above: f64::NAN, ..rule() }), "fire_above");
    }

    #[test]
    fn tokens_per_minute_and_the_p99_are_read_over_the_window() {
        let r = Rule { metric: Metric::TokensPerMin, window_s: 120, ..rule() };
        assert_eq!(r.value(&Counters { tokens: 600, ..Counters::default() }), Some(300.0));
        let r = Rule { metric: Metric::LatencyMsP99, min_requests: 1, ..rule() };
        let mut c = Counters::default();
        let o = vocab::Observation {
            model: "m",
            tenant: "t",
            end_user: None,
            status: 200,
            blocked: false,
            blocked_input: false,
            refused: false,
            latency_ms: 300,
            tokens: 1,
            at_ms: 0,
        };
        c.add(&o);
        let p99 = r.value(&c).unwrap();
        assert!((300.0..=357.0).contains(&p99), "{p99}");
    }
}
