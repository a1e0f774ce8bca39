//! The monitor: evaluates every alert rule over the window of traffic every instance recorded,
//! and acts when one fires: it raises an alert (once, however many evaluators see it), restricts
//! or suspends the model through [`ModelStates`] (a log leaf like any operator's change), opens
//! an incident whose deadline follows its grade, and queues a webhook. When a rule clears, its
//! alert closes and the webhook says so; the model stays as it was put until an operator acts.
//!
//! One instance evaluates (the one that runs compute); every instance records its traffic.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use store::Store;
use tlog::{Fact, Log};

use crate::GovernError;
use crate::alerts::{Alerts, Raise};
use crate::counters::{BUCKET_MS, Counters};
use crate::incidents::{Incidents, NewIncident};
use crate::rules::{Action, MAX_RULES, Rule, Step, step};
use crate::states::{Actor, Change, ModelStates, Status};
use crate::webhooks::Webhooks;

const KEY: &str = "monitor";

/// Checks a webhook URL: what it may reach is the binary's rule (`outbound`).
pub type UrlCheck = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

pub struct Monitor {
    store: Store,
    log: Arc<Log>,
    states: Arc<ModelStates>,
    incidents: Arc<Incidents>,
    alerts: Arc<Alerts>,
    webhooks: Arc<Webhooks>,
    url_ok: UrlCheck,
}

/// What one firing did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Fired {
    pub rule: String,
    pub model: String,
    pub value: f64,
    pub alert: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_log_index: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
}

pub struct Parts {
    pub store: Store,
    pub log: Arc<Log>,
    pub states: Arc<ModelStates>,
    pub incidents: Arc<Incidents>,
    pub alerts: Arc<Alerts>,
    pub webhooks: Arc<Webhooks>,
    pub url_ok: UrlCheck,
}

impl Monitor {
    pub fn new(p: Parts) -> Self {
        Self {
            store: p.store,
            log: p.log,
            states: p.states,
            incidents: p.incidents,
            alerts: p.alerts,
            webhooks: p.webhooks,
            url_ok: p.url_ok,
        }
    }

    pub async fn rules(&self) -> Result<Vec<Rule>, GovernError> {
        self.store.monitor_rules().await?.iter().map(|d| Ok(serde_json::from_str(d)?)).collect()
    }

    pub async fn rule(&self, name: &str) -> Result<Rule, GovernError> {
        self.rules()
            .await?
            .into_iter()
            .find(|r| r.name == name)
            .ok_or_else(|| GovernError::NotFound { what: "alert rule", id: name.to_string() })
    }

    /// Creates or replaces a rule (logged first); true when it is new.
    pub async fn put_rule(&self, rule: Rule, actor: Actor<'_>, now_ms: i64) -> Result<bool, GovernError> {
        rule.check()?;
        if let Some(u) = &rule.webhook_url {
            (self.url_ok)(u).map_err(|reason| GovernError::Invalid { field: "webhook_url", reason })?;
        }
        if let Some(r) = &rule.restrict {
            let change = Change {
                status: Status::Restricted,
                reason: "check".into(),
                tenants: r.tenants.clone(),
                regions: r.regions.clone(),
                limits: r.limits,
            };
            crate::states::check(&change, "m").map_err(|e| match e {
                GovernError::Invalid { reason, .. } => GovernError::Invalid { field: "restrict", reason },
                e => e,
            })?;
        }
        let existing = self.rules().await?;
        if existing.len() >= MAX_RULES && !existing.iter().any(|r| r.name == rule.name) {
            return Err(GovernError::Invalid { field: "name", reason: format!("at most {MAX_RULES} rules") });
        }
        let record = serde_json::json!({"rule": rule, "actor": actor.id});
        let fact = Fact { kind: "rule.set", subject: &format!("rule/{}", rule.name), actor_role: actor.role, record: &record };
        self.log.append(&fact, now_ms).await?;
        Ok(!self.store.put_monitor_rule(&rule.name, &serde_json::to_string(&rule)?).await?)
    }

    pub async fn delete_rule(&self, name: &str, actor: Actor<'_>, now_ms: i64) -> Result<(), GovernError> {
        self.rule(name).await?;
        let record = serde_json::json!({"rule": name, "actor": actor.id});
        let fact = Fact { kind: "rule.deleted", subject: &format!("rule/{name}"), actor_role: actor.role, record: &record };
        self.log.append(&fact, now_ms).await?;
        self.store.delete_monitor_rule(name).await?;
        Ok(())
    }

    /// One evaluation of every enabled rule at `now_ms`.
    pub async fn evaluate(&self, now_ms: i64) -> Result<Vec<Fired>, GovernError> {
        let rules: Vec<Rule> = self.rules().await?.into_iter().filter(|r| r.enabled).collect();
        let Some(from_ms) = rules.iter().map(|r| r.window_from_ms(now_ms)).min() else { return Ok(Vec::new()) };
        let mut buckets: Vec<(String, i64, Counters)> = Vec::new();
        for (model, bucket, doc) in self.store.monitor_buckets(from_ms).await? {
            buckets.push((model, bucket, serde_json::from_str(&doc)?));
        }
        let open: HashSet<String> = self.store.open_alert_keys(&format!("{KEY}:")).await?.into_iter().collect();
        let mut fired = Vec::new();
        for rule in &rules {
            let from = rule.window_from_ms(now_ms);
            let mut per_model: HashMap<&str, Counters> = HashMap::new();
            for (model, bucket, c) in &buckets {
                // The bucket now filling counts: a window ends at the latest observation.
                if *bucket >= from && *bucket <= now_ms + BUCKET_MS && rule.model.as_deref().is_none_or(|m| m == model) {
                    per_model.entry(model).or_default().merge(c);
                }
            }
            for (model, counters) in per_model {
                let key = format!("{KEY}:{}:{model}", rule.name);
                let firing = open.contains(&key);
                let value = rule.value(&counters);
                let cooling = match value {
                    Some(v) if !firing && v > rule.fire_above => {
                        self.alerts.last_closed_ms(&key).await?.is_some_and(|closed| now_ms - closed < i64::from(rule.cooldown_s) * 1000)
                    }
                    _ => false,
                };
                match step(rule, value, firing, cooling) {
                    Step::Fire(v) => {
                        if let Some(f) = self.fire(rule, model, v, &key, now_ms).await? {
                            fired.push(f);
                        }
                    }
                    Step::Clear(v) => self.clear(rule, model, v, &key, now_ms).await?,
                    Step::Hold => {}
                }
            }
        }
        Ok(fired)
    }

    async fn fire(&self, rule: &Rule, model: &str, value: f64, key: &str, now_ms: i64) -> Result<Option<Fired>, GovernError> {
        let message =
            format!("{:?} of {model} over {} s is {value:.4}, above {} (rule {})", rule.metric, rule.window_s, rule.fire_above, rule.name);
        let raise =
            Raise { key: key.to_string(), kind: "monitor", subject: format!("model/{model}"), tenant: None, message: message.clone() };
        // Raised once: an alert already open means another evaluator fired it and acted.
        let Some(alert) = self.alerts.raise(raise, now_ms).await? else { return Ok(None) };
        tracing::warn!(rule = %rule.name, model, value, "an alert rule fired");
        match self.act(rule, model, value, &alert, &message, now_ms).await {
            Ok(f) => Ok(Some(f)),
            Err(e) => {
                // The alert closes again so the next evaluation fires and acts anew: an action
                // taken before the failure may be taken twice (a second state change or
                // incident), which overstates but never misses.
                self.alerts.close(key, now_ms).await?;
                Err(e)
            }
        }
    }

    /// A firing's actions. The monitor only tightens: a model already suspended, or already
    /// restricted when the rule restricts, keeps the state an operator (or an earlier firing)
    /// gave it.
    async fn act(
        &self,
        rule: &Rule,
        model: &str,
        value: f64,
        alert: &crate::alerts::Alert,
        message: &str,
        now_ms: i64,
    ) -> Result<Fired, GovernError> {
        let actor_id = format!("rule:{}", rule.name);
        let actor = || Actor { id: &actor_id, role: "monitor" };
        let reason = format!("alert {}: {message}", alert.id);
        let now = self.states.get(model).map(|s| s.status);
        let change = if now == Some(Status::Suspended) || (now == Some(Status::Restricted) && !rule.actions.contains(&Action::Suspend)) {
            None
        } else if rule.actions.contains(&Action::Suspend) {
            Some(Change { status: Status::Suspended, reason: reason.clone(), tenants: vec![], regions: vec![], limits: None })
        } else if rule.actions.contains(&Action::Restrict) {
            let r = rule.restrict.clone().unwrap_or_default();
            Some(Change { status: Status::Restricted, reason: reason.clone(), tenants: r.tenants, regions: r.regions, limits: r.limits })
        } else {
            None
        };
        let mut state_log_index = None;
        if let Some(change) = change {
            state_log_index = Some(self.states.set(model, change, actor(), now_ms).await?.log_index);
        }
        let mut incident = None;
        if let Some(spec) = rule.incident {
            let new = NewIncident {
                title: format!("{:?} of {model} above {}", rule.metric, rule.fire_above),
                grade: spec.grade,
                operator_class: spec.operator_class,
                model: Some(model.to_string()),
                tenant: None,
                discovered_ms: Some(now_ms),
                description: reason.clone(),
            };
            incident = Some(self.incidents.open(new, actor(), now_ms).await?);
        }
        let mut webhook = None;
        if let (true, Some(url)) = (rule.actions.contains(&Action::Notify), &rule.webhook_url) {
            let body = serde_json::json!({
                "event": "alert.fired", "alert": alert, "rule": rule.name, "model": model, "metric": rule.metric, "value": value,
                "window_s": rule.window_s, "state_log_index": state_log_index,
                "incident": incident.as_ref().map(|i| serde_json::json!({"id": i.id, "grade": i.grade, "report_due_ms": i.report_due_ms})),
            });
            webhook = Some(self.webhooks.enqueue(url, body, now_ms).await?.id);
        }
        Ok(Fired {
            rule: rule.name.clone(),
            model: model.to_string(),
            value,
            alert: alert.id.clone(),
            state_log_index,
            incident: incident.map(|i| i.id),
            webhook,
        })
    }

    async fn clear(&self, rule: &Rule, model: &str, value: f64, key: &str, now_ms: i64) -> Result<(), GovernError> {
        if !self.alerts.close(key, now_ms).await? {
            return Ok(());
        }
        tracing::info!(rule = %rule.name, model, value, "an alert rule cleared");
        if let (true, Some(url)) = (rule.actions.contains(&Action::Notify), &rule.webhook_url) {
            let body = serde_json::json!({"event": "alert.resolved", "key": key, "rule": rule.name, "model": model, "metric": rule.metric, "value": value});
            self.webhooks.enqueue(url, body, now_ms).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::counters::Recorder;
    use vocab::Observer;

    async fn monitor() -> (Monitor, Recorder, Store, Arc<ModelStates>, Arc<Incidents>) {
        let store = Store::memory().await.unwrap();
        let key = tlog::SignerKey::from_seed("aiplus.test/log", [5; 32]).unwrap();
        let log = Arc::new(Log::open(store.clone(), key, 0, None, None).await.unwrap());
        let states = Arc::new(ModelStates::open(store.clone(), log.clone()).await.unwrap());
        let incidents = Arc::new(Incidents::open_service(store.clone(), log.clone()).await.unwrap());
        let m = Monitor::new(Parts {
            store: store.clone(),
            log,
            states: states.clone(),
            incidents: incidents.clone(),
            alerts: Arc::new(Alerts::new(store.clone())),
            webhooks: Arc::new(Webhooks::new(store.clone())),
            url_ok: Box::new(|u| if u.starts_with("http://") { Ok(()) } else { Err("http only".into()) }),
        });
        (m, Recorder::new("i".into()), store, states, incidents)
    }

    fn traffic(r: &Recorder, n: u64, blocked: u64, at_ms: i64) {
        for i in 0..n {
            let b = i < blocked;
            r.observe(&vocab::Observation {
                model: "chat@2",
                tenant: "t",
                end_user: None,
                status: if b { 400 } else { 200 },
                blocked: b,
                blocked_input: b,
                refused: false,
                latency_ms: 20,
                tokens: 5,
                at_ms,
            });
        }
    }

    const OP: Actor<'static> = Actor { id: "tok_1", role: "operator-admin" };

    #[tokio::test]
    async fn a_rising_block_rate_fires_once_suspends_opens_an_incident_and_notifies_then_clears() {
        let (m, r, store, states, incidents) = monitor().await;
        let rule: Rule = serde_json::from_value(serde_json::json!({
            "name": "blocks", "metric": "block_rate", "window_s": 60, "fire_above": 0.3, "clear_below": 0.1, "min_requests": 10,
            "cooldown_s": 600, "actions": ["notify", "suspend"], "webhook_url": "http://127.0.0.1:9/hook",
            "incident": {"grade": "major", "operator_class": "critical_infrastructure"}
        }))
        .unwrap();
        assert!(m.put_rule(rule.clone(), OP, 0).await.unwrap(), "new");
        let bad = Rule { webhook_url: Some("ftp://x".into()), ..rule.clone() };
        assert!(matches!(m.put_rule(bad, OP, 0).await, Err(GovernError::Invalid { field: "webhook_url", .. })));
        let t0 = 1_000_000;
        traffic(&r, 20, 2, t0);
        r.flush(&store, t0).await.unwrap();
        assert!(m.evaluate(t0).await.unwrap().is_empty(), "10% blocked: quiet");
        traffic(&r, 20, 18, t0 + 10_000);
        r.flush(&store, t0 + 10_000).await.unwrap();
        let fired = m.evaluate(t0 + 10_000).await.unwrap();
        assert_eq!(fired.len(), 1, "50% blocked over the window: fires");
        assert!(m.evaluate(t0 + 11_000).await.unwrap().is_empty(), "fires once");
        assert!(matches!(states.decide("chat@2", "t"), vocab::ModelDecision::Refuse { code: "model_suspended", .. }));
        let i = incidents.get(fired[0].incident.as_deref().unwrap(), None).unwrap();
        assert_eq!(i.report_due_ms, Some(t0 + 10_000 + 3_600_000), "major, critical infrastructure: 1 hour");
        let queued = Webhooks::new(store.clone()).list("pending", 10).await.unwrap();
        assert_eq!(queued[0].body["event"], "alert.fired");
        assert_eq!(queued[0].body["incident"]["grade"], "major");
        // The window moves on to clean traffic: the alert clears, and a new spike within the
        // cool-down does not fire again.
        traffic(&r, 200, 0, t0 + 80_000);
        r.flush(&store, t0 + 80_000).await.unwrap();
        assert!(m.evaluate(t0 + 80_000).await.unwrap().is_empty());
        let alerts = Alerts::new(store.clone()).list(None, 0, 10).await.unwrap();
        assert!(alerts.iter().any(|a| a.key == "monitor:blocks:chat@2" && a.closed_ms == Some(t0 + 80_000)), "{alerts:?}");
        traffic(&r, 200, 200, t0 + 150_000);
        r.flush(&store, t0 + 150_000).await.unwrap();
        assert!(m.evaluate(t0 + 150_000).await.unwrap().is_empty(), "cooling down");
        // After the cool-down a new spike fires again; the model, still suspended, stays so
        // (the monitor only tightens), and no second state change is logged.
        let later = t0 + 80_000 + 600_001;
        traffic(&r, 200, 200, later);
        r.flush(&store, later).await.unwrap();
        let again = m.evaluate(later).await.unwrap();
        assert_eq!(again.len(), 1, "fires again after the cool-down");
        assert_eq!(again[0].state_log_index, None, "already suspended: kept as it was");
        assert!(matches!(states.decide("chat@2", "t"), vocab::ModelDecision::Refuse { code: "model_suspended", .. }));
    }
}
