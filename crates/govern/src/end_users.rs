//! The per-end-user sanction of TC260-003 (生成式人工智能服务安全基本要求): an end user who sends
//! input the guardrail blocks 3 times in a row, or 5 times in one day (China's date), is suspended
//! from the service. End users are the tenant's own users, named by the OpenAI `user` (or
//! `safety_identifier`) field or the `X-Aiplus-End-User` header.
//!
//! The gateway tells [`EndUsers`] of every request (as a `vocab::Observer`) without waiting:
//! observations go through a bounded queue to one task that keeps each end user's strikes in the
//! store, so every instance counts the same strikes. Every instance follows the stored records and
//! refuses a suspended end user from memory. A suspension and its lifting are log leaves.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use store::Store;
use tlog::{Fact, Log};

use crate::GovernError;
use crate::calendar::china_date;
use crate::states::Actor;

pub const IN_A_ROW: u32 = 3;
pub const IN_A_DAY: u32 = 5;
/// Observations waiting for the strike keeper; beyond this they are dropped (and counted).
pub const QUEUE: usize = 10_000;
/// Times one observation is counted again when other instances keep writing the same end user.
const MAX_RACES: usize = 8;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndUser {
    pub tenant: String,
    pub user: String,
    /// Blocked inputs in a row (a request that is not blocked ends the run).
    pub in_a_row: u32,
    /// Blocked inputs on `day`.
    pub on_day: u32,
    pub day: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended_until_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_index: Option<u64>,
}

/// The record after one request of this end user at `at_ms`: its strikes, and whether this one
/// suspends it (for `suspend_ms`).
pub fn strike(mut u: EndUser, blocked_input: bool, at_ms: i64, suspend_ms: i64) -> (EndUser, bool) {
    let day = china_date(at_ms).to_string();
    if u.day != day {
        u.day = day;
        u.on_day = 0;
    }
    if !blocked_input {
        u.in_a_row = 0;
        return (u, false);
    }
    u.in_a_row += 1;
    u.on_day += 1;
    let suspended = u.suspended_until_ms.is_some_and(|t| t > at_ms);
    let suspend = !suspended && (u.in_a_row >= IN_A_ROW || u.on_day >= IN_A_DAY);
    if suspend {
        u.suspended_until_ms = Some(at_ms.saturating_add(suspend_ms));
        u.suspended_ms = Some(at_ms);
        // The strikes that led here are spent: after the suspension the count starts anew.
        u.in_a_row = 0;
        u.on_day = 0;
    }
    (u, suspend)
}

struct Seen {
    tenant: String,
    user: String,
    blocked_input: bool,
    at_ms: i64,
}

pub struct EndUsers {
    store: Store,
    log: Arc<Log>,
    suspend_ms: i64,
    all: RwLock<HashMap<(String, String), EndUser>>,
    seen: AtomicI64,
    queue: tokio::sync::mpsc::Sender<Seen>,
    dropped: std::sync::atomic::AtomicU64,
    /// End users whose last request seen here was blocked: their next clean request ends a
    /// run, even before the strike keeper has stored the run (requests come faster than it).
    running: std::sync::Mutex<std::collections::HashSet<(String, String)>>,
}

/// Most end users [`EndUsers::running`] holds; beyond, a clean request is passed on only for
/// end users whose stored record shows a run.
const MAX_RUNNING: usize = 100_000;

impl EndUsers {
    /// The service and the task that keeps the strikes (spawned; it ends when the service does).
    pub async fn start(store: Store, log: Arc<Log>, suspend_ms: i64) -> Result<Arc<Self>, GovernError> {
        let (tx, mut rx) = tokio::sync::mpsc::channel(QUEUE);
        let me = Arc::new(Self {
            store,
            log,
            suspend_ms,
            all: RwLock::default(),
            seen: AtomicI64::new(0),
            queue: tx,
            dropped: std::sync::atomic::AtomicU64::new(0),
            running: std::sync::Mutex::default(),
        });
        me.refresh().await?;
        let weak = Arc::downgrade(&me);
        tokio::spawn(async move {
            while let Some(s) = rx.recv().await {
                let Some(me) = weak.upgrade() else { return };
                if let Err(e) = me.count(s).await {
                    tracing::warn!(error = %e, "recording an end user's strike failed");
                }
            }
        });
        Ok(me)
    }

    pub async fn refresh(&self) -> Result<usize, GovernError> {
        let rows = self.store.end_users_since(self.seen.load(Ordering::Acquire)).await?;
        let n = rows.len();
        for (seq, doc) in rows {
            self.keep(serde_json::from_str(&doc)?);
            self.seen.fetch_max(seq, Ordering::AcqRel);
        }
        Ok(n)
    }

    fn known(&self, tenant: &str, user: &str) -> Option<EndUser> {
        self.all.read().ok()?.get(&(tenant.to_string(), user.to_string())).cloned()
    }

    /// Applies one observation: reads the stored record, counts, logs a suspension, and stores
    /// the record if nobody wrote it meanwhile (else reads and counts again).
    async fn count(&self, s: Seen) -> Result<(), GovernError> {
        for _ in 0..MAX_RACES {
            let (seq, stored) = match self.store.end_user(&s.tenant, &s.user).await? {
                Some((seq, doc)) => (Some(seq), serde_json::from_str(&doc)?),
                None => (None, EndUser { tenant: s.tenant.clone(), user: s.user.clone(), ..EndUser::default() }),
            };
            let before: EndUser = stored.clone();
            let (mut u, suspend) = strike(stored, s.blocked_input, s.at_ms, self.suspend_ms);
            if u == before {
                return Ok(());
            }
            if suspend {
                let record = serde_json::json!({"tenant": u.tenant, "user": u.user, "until_ms": u.suspended_until_ms,
                                                "rule": "TC260-003: 3 blocked inputs in a row or 5 in a day"});
                let subject = self.subject(&u.tenant, &u.user);
                let fact = Fact { kind: "end_user.suspended", subject: &subject, actor_role: "monitor", record: &record };
                u.log_index = Some(self.log.append(&fact, s.at_ms).await?.index);
                tracing::warn!(tenant = %u.tenant, "an end user is suspended after repeated blocked input");
            }
            if self.store.put_end_user(&u.tenant, &u.user, seq, &serde_json::to_string(&u)?).await? {
                self.keep(u);
                return Ok(());
            }
        }
        Err(GovernError::Conflict(format!("end user {}/{}: too many instances wrote at once", s.tenant, s.user)))
    }

    /// The public log's name for an end user: a digest only the log's key makes, so an end
    /// user's id (often an e-mail address) never appears in the public leaves; the full record,
    /// behind permissions, holds it.
    fn subject(&self, tenant: &str, user: &str) -> String {
        format!("end-user/{tenant}/{}", self.log.pseudonym(&format!("{tenant}\n{user}")))
    }

    /// Keeps `u` in memory if it matters to a request: a suspension, or strikes.
    fn keep(&self, u: EndUser) {
        if let Ok(mut all) = self.all.write() {
            let key = (u.tenant.clone(), u.user.clone());
            if u.suspended_until_ms.is_some() || u.in_a_row > 0 || u.on_day > 0 {
                all.insert(key, u);
            } else {
                all.remove(&key);
            }
        }
    }

    /// Whether `tenant`'s end user `user` is suspended at `now_ms`, and until when.
    pub fn suspended_until(&self, tenant: &str, user: &str, now_ms: i64) -> Option<i64> {
        self.all.read().ok()?.get(&(tenant.to_string(), user.to_string()))?.suspended_until_ms.filter(|&t| t > now_ms)
    }

    /// End users with strikes or a suspension (`tenant`'s only, when named).
    pub fn list(&self, tenant: Option<&str>) -> Vec<EndUser> {
        let mut v: Vec<EndUser> =
            self.all.read().map(|a| a.values().filter(|u| tenant.is_none_or(|t| u.tenant == t)).cloned().collect()).unwrap_or_default();
        v.sort_by(|a, b| (&a.tenant, &a.user).cmp(&(&b.tenant, &b.user)));
        v
    }

    /// Lifts a suspension, with the reason, as a log leaf; the strikes start again from none.
    pub async fn lift(&self, tenant: &str, user: &str, reason: &str, actor: Actor<'_>, now_ms: i64) -> Result<EndUser, GovernError> {
        let missing = || GovernError::NotFound { what: "end user", id: format!("{tenant}/{user}") };
        crate::filings::check_text("reason", reason)?;
        let (seq, doc) = self.store.end_user(tenant, user).await?.ok_or_else(missing)?;
        let mut u: EndUser = serde_json::from_str(&doc)?;
        if u.suspended_until_ms.is_none_or(|t| t <= now_ms) {
            return Err(GovernError::Conflict(format!("end user {tenant}/{user} is not suspended")));
        }
        let record = serde_json::json!({"tenant": tenant, "user": user, "reason": reason, "actor": actor.id});
        let subject = self.subject(tenant, user);
        let fact = Fact { kind: "end_user.lifted", subject: &subject, actor_role: actor.role, record: &record };
        u.log_index = Some(self.log.append(&fact, now_ms).await?.index);
        u.suspended_until_ms = None;
        u.in_a_row = 0;
        u.on_day = 0;
        if !self.store.put_end_user(tenant, user, Some(seq), &serde_json::to_string(&u)?).await? {
            return Err(GovernError::Conflict(format!(
                "end user {tenant}/{user} changed meanwhile (the log's entry records this attempt): try again"
            )));
        }
        self.keep(u.clone());
        Ok(u)
    }

    /// Observations dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl vocab::Observer for EndUsers {
    fn observe(&self, o: &vocab::Observation<'_>) {
        let Some(user) = o.end_user else { return };
        // Only a served request shows its input passed the guardrail; a refused one (the end
        // user suspended, a limit) says nothing either way.
        if !o.blocked_input && !(200..300).contains(&o.status) {
            return;
        }
        let key = (o.tenant.to_string(), user.to_string());
        let was_running = match self.running.lock() {
            Ok(mut r) if o.blocked_input => {
                if r.len() < MAX_RUNNING {
                    r.insert(key);
                }
                true
            }
            Ok(mut r) => r.remove(&key),
            Err(_) => false,
        };
        // A request that is not blocked matters only to an end user with a run of strikes.
        if !o.blocked_input && !was_running && self.known(o.tenant, user).is_none_or(|u| u.in_a_row == 0) {
            return;
        }
        let s = Seen { tenant: o.tenant.to_string(), user: user.to_string(), blocked_input: o.blocked_input, at_ms: o.at_ms };
        if self.queue.try_send(s).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    const DAY_MS: i64 = 86_400_000;
    /// 2026-12-02T02:00:00Z, 10:00 in China.
    const T0: i64 = 1_796_176_800_000;

    #[test]
    fn three_in_a_row_or_five_in_a_day_suspend() {
        let u = EndUser::default();
        let (u, s1) = strike(u, true, T0, DAY_MS);
        let (u, s2) = strike(u, true, T0 + 1, DAY_MS);
        let (u, s3) = strike(u, true, T0 + 2, DAY_MS);
        assert_eq!((s1, s2, s3), (false, false, true));
        assert_eq!(u.suspended_until_ms, Some(T0 + 2 + DAY_MS));
        assert_eq!((u.in_a_row, u.on_day), (0, 0), "the strikes are spent");
        // After the suspension runs out, one blocked input is one strike, not a new suspension.
        let (u, again) = strike(u, true, T0 + 3 + DAY_MS, DAY_MS);
        assert!(!again && u.in_a_row == 1);
        // Broken runs: 2 + 2 + 1 blocked in a day, with clean requests between, suspend at the fifth.
        let mut u = EndUser::default();
        let mut fired = Vec::new();
        for (i, blocked) in [true, true, false, true, true, false, true].into_iter().enumerate() {
            let (next, s) = strike(u, blocked, T0 + i as i64, DAY_MS);
            u = next;
            fired.push(s);
        }
        assert_eq!(fired, [false, false, false, false, false, false, true]);
        assert!(u.suspended_until_ms.is_some());
        // A new day in China starts the daily count again.
        let mut u = EndUser::default();
        for i in 0..4 {
            u = strike(u, true, T0 + i, DAY_MS).0;
            u = strike(u, false, T0 + i, DAY_MS).0;
        }
        let (u, s) = strike(u, true, T0 + DAY_MS, DAY_MS);
        assert_eq!((s, u.on_day), (false, 1));
    }
}
