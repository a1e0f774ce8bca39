//! Model states: what governance allows of each model now.
//!
//! A change is written to the transparency log first and then stored. A change that fails to be
//! stored after it was logged is reported to the operator, who sends it again; the log then holds
//! both, which overstates but never hides. Each instance keeps the states in memory (the gateway
//! asks on every request) and reads the changes stored after the last one it saw, every
//! [`FOLLOW_EVERY`], so a change made on one instance binds all of them within that time plus one
//! query.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use store::Store;
use tlog::{Fact, Log};
use vocab::ModelDecision;

use crate::GovernError;

/// How often an instance looks for changes made elsewhere, on a shared store.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(200);
/// How often an instance alone on its store looks (for deadlines passing, nothing else).
pub const ALONE_FOLLOW_EVERY: Duration = Duration::from_secs(2);
/// Longest model name, reason, and tenant list a change may carry.
pub const MAX_NAME_BYTES: usize = 256;
pub const MAX_REASON_CHARS: usize = 1000;
pub const MAX_TENANTS: usize = 1000;
pub const MAX_REGIONS: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Active,
    Restricted,
    Suspended,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Restricted => "restricted",
            Status::Suspended => "suspended",
        }
    }
}

/// A change an operator asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    pub status: Status,
    /// Why: required, and recorded in the log's full record.
    pub reason: String,
    /// With `restricted`: the only tenants that may use the model (none: every tenant).
    #[serde(default)]
    pub tenants: Vec<String>,
    /// With `restricted`: the only regions its deployments may serve from (none: anywhere).
    #[serde(default)]
    pub regions: Vec<vocab::Region>,
    /// With `restricted`: limits per tenant on this model, below the tenants' own.
    #[serde(default)]
    pub limits: Option<identity::limits::Limits>,
}

/// A model's state, as stored and shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelState {
    pub model: String,
    pub status: Status,
    pub tenants: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<vocab::Region>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<identity::limits::Limits>,
    pub reason: String,
    /// Who changed it last (a key, token or console user id) and in which role.
    pub actor: String,
    pub actor_role: String,
    pub at_ms: i64,
    /// The transparency-log entry that records this change.
    pub log_index: u64,
}

/// Who asks for a change.
pub struct Actor<'a> {
    pub id: &'a str,
    pub role: &'a str,
}

pub struct ModelStates {
    store: Store,
    log: Arc<Log>,
    states: RwLock<HashMap<String, ModelState>>,
    /// The bounds of each restricted model, made once per change for the request path.
    bounds: RwLock<HashMap<String, Arc<vocab::ModelBounds>>>,
    /// One change at a time on this instance, from its log entry to its stored row, so the
    /// state in force is always the one of the latest entry.
    writing: tokio::sync::Mutex<()>,
    /// The sequence number of the last change read from the store.
    seen: AtomicI64,
}

/// Checks a change of `model`, naming the first bad field.
pub fn check(change: &Change, model: &str) -> Result<(), GovernError> {
    let invalid = |field, reason: &str| Err(GovernError::Invalid { field, reason: reason.into() });
    if model.is_empty() || model.len() > MAX_NAME_BYTES || model.chars().any(char::is_control) {
        return invalid("model", "a model name of 1 to 256 bytes without control characters");
    }
    let reason = change.reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return invalid("reason", "say why, in 1 to 1000 characters");
    }
    let bounded = !change.tenants.is_empty() || !change.regions.is_empty() || change.limits.is_some();
    match change.status {
        Status::Restricted if !bounded => {
            invalid("tenants", "a restricted model lists the tenants that may still use it, the regions it may serve from, or its limits")
        }
        Status::Restricted if change.tenants.len() > MAX_TENANTS => invalid("tenants", "at most 1000 tenants"),
        Status::Restricted if change.regions.len() > MAX_REGIONS => invalid("regions", "at most 64 regions"),
        Status::Active | Status::Suspended if bounded => invalid(
            if change.tenants.is_empty() { if change.regions.is_empty() { "limits" } else { "regions" } } else { "tenants" },
            "only a restricted model lists tenants, regions or limits",
        ),
        _ => {
            if let Some(l) = &change.limits {
                l.validate("limits.").map_err(|e| GovernError::Invalid { field: "limits", reason: e })?;
                if l.requests_per_min.is_none() && l.tokens_per_min.is_none() && l.tokens_per_day.is_none() {
                    return invalid("limits", "name at least one limit");
                }
            }
            match change.tenants.iter().find(|t| !identity::tenant_id_ok(t)) {
                Some(t) => Err(GovernError::Invalid { field: "tenants", reason: format!("{t:?}: {}", identity::TENANT_ID_RULE) }),
                None => Ok(()),
            }
        }
    }
}

/// The bounds a state puts on a model that may serve.
fn bounds_of(s: &ModelState) -> Option<Arc<vocab::ModelBounds>> {
    if s.status != Status::Restricted || (s.regions.is_empty() && s.limits.is_none()) {
        return None;
    }
    let l = s.limits.unwrap_or_default();
    Some(Arc::new(vocab::ModelBounds {
        regions: s.regions.clone(),
        requests_per_min: l.requests_per_min,
        tokens_per_min: l.tokens_per_min,
        tokens_per_day: l.tokens_per_day,
    }))
}

impl ModelStates {
    /// Loads every stored state.
    pub async fn open(store: Store, log: Arc<Log>) -> Result<Self, GovernError> {
        let s = Self {
            store,
            log,
            states: RwLock::default(),
            bounds: RwLock::default(),
            writing: tokio::sync::Mutex::new(()),
            seen: AtomicI64::new(0),
        };
        s.refresh().await?;
        Ok(s)
    }

    /// Reads the changes stored since the last look (by any instance).
    pub async fn refresh(&self) -> Result<usize, GovernError> {
        let rows = self.store.model_states_since(self.seen.load(Ordering::Acquire)).await?;
        let n = rows.len();
        for (name, seq, doc) in rows {
            let state: ModelState = serde_json::from_str(&doc)?;
            self.put_in_force(name, state);
            self.seen.fetch_max(seq, Ordering::AcqRel);
        }
        Ok(n)
    }

    /// Puts `state` in force unless a state recorded at a later log entry already is.
    fn put_in_force(&self, name: String, state: ModelState) {
        if let Ok(mut m) = self.states.write()
            && m.get(&name).is_none_or(|old| old.log_index < state.log_index)
        {
            if let Ok(mut b) = self.bounds.write() {
                match bounds_of(&state) {
                    Some(bounds) => b.insert(name.clone(), bounds),
                    None => b.remove(&name),
                };
            }
            m.insert(name, state);
        }
    }

    /// Follows changes made on other instances, every `period`, until `stop` turns true.
    pub fn follow(self: &Arc<Self>, period: Duration, mut stop: tokio::sync::watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(period) => {}
                    _ = stop.changed() => return,
                }
                if let Err(e) = me.refresh().await {
                    tracing::warn!(error = %e, "reading model states failed; keeping the previous ones");
                }
            }
        })
    }

    /// Applies a change: logged, stored, and in force on this instance at once.
    pub async fn set(&self, model: &str, change: Change, actor: Actor<'_>, now_ms: i64) -> Result<ModelState, GovernError> {
        check(&change, model)?;
        let mut tenants = change.tenants;
        tenants.sort();
        tenants.dedup();
        let record = serde_json::json!({
            "model": model, "status": change.status, "tenants": tenants, "regions": change.regions, "limits": change.limits,
            "reason": change.reason.trim(), "actor": actor.id,
        });
        let kind = format!("model.{}", change.status.as_str());
        let fact = Fact { kind: &kind, subject: &format!("model/{model}"), actor_role: actor.role, record: &record };
        let _one_at_a_time = self.writing.lock().await;
        let logged = self.log.append(&fact, now_ms).await?;
        let state = ModelState {
            model: model.to_string(),
            status: change.status,
            tenants,
            regions: change.regions,
            limits: change.limits,
            reason: change.reason.trim().to_string(),
            actor: actor.id.to_string(),
            actor_role: actor.role.to_string(),
            at_ms: now_ms,
            log_index: logged.index,
        };
        let index = i64::try_from(state.log_index).unwrap_or(i64::MAX);
        if self.store.put_model_state(model, index, &serde_json::to_string(&state)?).await?.is_none() {
            // Another instance logged a later change of this model meanwhile: it stands.
            self.refresh().await?;
            return self.get(model).ok_or_else(|| GovernError::NotFound { what: "model state", id: model.to_string() });
        }
        self.put_in_force(model.to_string(), state.clone());
        Ok(state)
    }

    /// The regions and limits a restricted model serves within, if any.
    pub fn bounds(&self, model: &str) -> Option<Arc<vocab::ModelBounds>> {
        self.bounds.read().ok()?.get(model).cloned()
    }

    pub fn get(&self, model: &str) -> Option<ModelState> {
        self.states.read().ok()?.get(model).cloned()
    }

    /// Every model with a recorded state, by name.
    pub fn list(&self) -> Vec<ModelState> {
        let mut v: Vec<ModelState> = self.states.read().map(|m| m.values().cloned().collect()).unwrap_or_default();
        v.sort_by(|a, b| a.model.cmp(&b.model));
        v
    }
}

impl ModelStates {
    /// What the model's state allows `tenant` now.
    pub fn decide(&self, model: &str, tenant: &str) -> ModelDecision {
        let Ok(states) = self.states.read() else { return ModelDecision::Allow };
        match states.get(model) {
            Some(s) if s.status == Status::Suspended => ModelDecision::Refuse {
                code: "model_suspended",
                message: format!("The model `{model}` is suspended by the operator and answers no request until it is activated again"),
            },
            Some(s) if s.status == Status::Restricted && !s.tenants.is_empty() && !s.tenants.iter().any(|t| t == tenant) => {
                ModelDecision::Refuse {
                    code: "model_restricted",
                    message: format!("The model `{model}` is restricted by the operator to other tenants"),
                }
            }
            _ => ModelDecision::Allow,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]
    use super::*;

    async fn states() -> (ModelStates, Arc<Log>, Store) {
        let store = Store::memory().await.unwrap();
        let key = tlog::SignerKey::from_seed("aiplus.test/log", [5; 32]).unwrap();
        let log = Arc::new(Log::open(store.clone(), key, 0, None, None).await.unwrap());
        (ModelStates::open(store.clone(), log.clone()).await.unwrap(), log, store)
    }

    fn change(status: Status, tenants: &[&str]) -> Change {
        Change {
            status,
            reason: "a finding of the evaluation".into(),
            tenants: tenants.iter().map(|t| t.to_string()).collect(),
            regions: vec![],
            limits: None,
        }
    }

    const OP: Actor<'static> = Actor { id: "tok_1", role: "operator-admin" };

    #[tokio::test]
    async fn the_policy_follows_each_state_and_every_change_is_a_leaf() {
        let (s, log, _) = states().await;
        assert_eq!(s.decide("m", "a"), ModelDecision::Allow, "a model with no state is active");
        s.set("m", change(Status::Restricted, &["b", "a", "a"]), OP, 10).await.unwrap();
        assert_eq!(s.get("m").unwrap().tenants, ["a", "b"]);
        assert_eq!(s.decide("m", "a"), ModelDecision::Allow);
        assert!(matches!(s.decide("m", "c"), ModelDecision::Refuse { code: "model_restricted", .. }));
        s.set("m", change(Status::Suspended, &[]), OP, 20).await.unwrap();
        assert!(matches!(s.decide("m", "a"), ModelDecision::Refuse { code: "model_suspended", .. }));
        assert_eq!(s.decide("other", "a"), ModelDecision::Allow);
        let active = s.set("m", change(Status::Active, &[]), OP, 30).await.unwrap();
        assert_eq!(s.decide("m", "c"), ModelDecision::Allow);
        // Three changes, three leaves, in order, with the actor's role and the reason's digest.
        assert_eq!(active.log_index, 2);
        let leaf: tlog::Leaf = serde_json::from_str(&log.entry(1).await.unwrap().leaf).unwrap();
        assert_eq!((leaf.kind.as_str(), leaf.subject.as_str(), leaf.actor_role.as_str()), ("model.suspended", "model/m", "operator-admin"));
        let record: serde_json::Value = serde_json::from_str(&log.entry(1).await.unwrap().record).unwrap();
        assert_eq!(record["reason"], "a finding of the evaluation");
    }

    #[tokio::test]
    async fn bad_changes_are_refused_naming_the_field_and_log_nothing() {
        let (s, log, _) = states().await;
        let cases = [
            ("m", Change { reason: " ".into(), ..change(Status::Suspended, &[]) }, "reason"),
            ("m", change(Status::Restricted, &[]), "tenants"),
            ("m", change(Status::Suspended, &["a"]), "tenants"),
            ("m", change(Status::Restricted, &["Not A Tenant"]), "tenants"),
            ("", change(Status::Suspended, &[]), "model"),
        ];
        for (model, c, field) in cases {
            match s.set(model, c, OP, 1).await {
                Err(GovernError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{other:?}"),
            }
        }
        assert!(log.inclusion(0, Some(1)).await.is_err(), "nothing was logged");
    }

    #[tokio::test]
    async fn a_restriction_by_regions_or_limits_bounds_the_model_for_every_tenant() {
        let (s, _, _) = states().await;
        let region = vocab::Region::parse("hub:guizhou").unwrap();
        let limits = identity::limits::Limits { requests_per_min: Some(2), ..Default::default() };
        let c = Change { regions: vec![region.clone()], limits: Some(limits), ..change(Status::Restricted, &[]) };
        s.set("m", c, OP, 1).await.unwrap();
        assert_eq!(s.decide("m", "anyone"), ModelDecision::Allow, "no tenant list: every tenant");
        let b = s.bounds("m").unwrap();
        assert_eq!((b.regions.clone(), b.requests_per_min, b.tokens_per_min), (vec![region], Some(2), None));
        s.set("m", change(Status::Active, &[]), OP, 2).await.unwrap();
        assert!(s.bounds("m").is_none(), "active: no bounds");
        let empty = identity::limits::Limits::default();
        let no_limit = Change { limits: Some(empty), ..change(Status::Restricted, &[]) };
        assert!(matches!(s.set("m", no_limit, OP, 3).await, Err(GovernError::Invalid { field: "limits", .. })));
    }

    /// A second instance on the same store sees a change at its next look.
    #[tokio::test]
    async fn another_instance_follows_the_change() {
        let (a, log, store) = states().await;
        let b = ModelStates::open(store, log).await.unwrap();
        a.set("m", change(Status::Suspended, &[]), OP, 1).await.unwrap();
        assert_eq!(b.decide("m", "t"), ModelDecision::Allow, "not yet looked");
        assert_eq!(b.refresh().await.unwrap(), 1);
        assert!(matches!(b.decide("m", "t"), ModelDecision::Refuse { .. }));
        assert_eq!(b.refresh().await.unwrap(), 0, "nothing new");
    }
}
