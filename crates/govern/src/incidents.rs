//! Incidents: graded as the CAC's 2025 incident-reporting measures grade them (国家网络安全事件报告
//! 管理办法, Art. 4 and its annex), with the reporting deadline the operator's class sets, a
//! timeline of reports, measures and notes, and every step a transparency-log leaf.
//!
//! Art. 4: an incident graded 较大 (major) or above is reported by an operator of critical
//! information infrastructure within 1 hour, by a unit of the central and state organs within 2
//! hours, and by any other operator within 4 hours. A 一般 (general) incident is recorded with no
//! reporting deadline.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use store::Store;
use tlog::{Fact, Log};

use crate::GovernError;
use crate::alerts::{Alerts, Raise};
use crate::filings::check_text;
use crate::states::Actor;

/// Most entries an incident's timeline holds.
pub const MAX_TIMELINE: usize = 500;
pub const MAX_TEXT_CHARS: usize = 4000;
const OVERDUE: &str = "incident.overdue";
const HOUR_MS: i64 = 3_600_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grade {
    /// 一般.
    General,
    /// 较大.
    Major,
    /// 重大.
    Serious,
    /// 特别重大.
    EspeciallySerious,
}

/// Who the operator is, which sets how soon it must report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorClass {
    /// An operator of critical information infrastructure: 1 hour.
    CriticalInfrastructure,
    /// A unit of the central and state organs: 2 hours.
    CentralStateOrgan,
    /// Any other network operator: 4 hours.
    Other,
}

/// When an incident of `grade`, discovered at `discovered_ms`, must be reported by.
pub fn report_due_ms(grade: Grade, class: OperatorClass, discovered_ms: i64) -> Option<i64> {
    if grade == Grade::General {
        return None;
    }
    let hours = match class {
        OperatorClass::CriticalInfrastructure => 1,
        OperatorClass::CentralStateOrgan => 2,
        OperatorClass::Other => 4,
    };
    Some(discovered_ms.saturating_add(hours * HOUR_MS))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Open,
    Reported,
    Closed,
}

/// One step of the timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// `opened`, `report`, `measure`, `note`, `regrade` or `closed`.
    pub kind: String,
    pub text: String,
    pub at_ms: i64,
    pub actor: String,
    pub actor_role: String,
    pub log_index: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    pub title: String,
    pub grade: Grade,
    pub operator_class: OperatorClass,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub state: State,
    pub discovered_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_due_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_ms: Option<i64>,
    pub timeline: Vec<Entry>,
    pub rev: u64,
}

/// What opens an incident.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewIncident {
    pub title: String,
    pub grade: Grade,
    #[serde(default = "other")]
    pub operator_class: OperatorClass,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub tenant: Option<String>,
    /// When it was discovered (Unix ms); the deadline runs from then. Default: now.
    #[serde(default)]
    pub discovered_ms: Option<i64>,
    /// What is known so far.
    #[serde(default)]
    pub description: String,
}

fn other() -> OperatorClass {
    OperatorClass::Other
}

/// A step an operator takes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// A report made to the authority (`to`: whom; `text`: what was reported).
    Report {
        to: String,
        text: String,
    },
    /// A measure taken (a model suspended, a key revoked).
    Measure {
        text: String,
    },
    Note {
        text: String,
    },
    /// The grade changed as more became known; the deadline follows it.
    Regrade {
        grade: Grade,
        text: String,
    },
    Close {
        text: String,
    },
}

impl Step {
    fn name(&self) -> &'static str {
        match self {
            Step::Report { .. } => "report",
            Step::Measure { .. } => "measure",
            Step::Note { .. } => "note",
            Step::Regrade { .. } => "regrade",
            Step::Close { .. } => "closed",
        }
    }

    fn text(&self) -> String {
        match self {
            Step::Report { to, text } => format!("to {to}: {text}"),
            Step::Measure { text } | Step::Note { text } | Step::Close { text } => text.clone(),
            Step::Regrade { grade, text } => format!("{grade:?}: {text}"),
        }
    }
}

fn long_text(field: &'static str, s: &str, required: bool) -> Result<(), GovernError> {
    let n = s.trim().chars().count();
    if (required && n == 0) || n > MAX_TEXT_CHARS || s.chars().any(|c| c.is_control() && c != '\n') {
        return Err(GovernError::Invalid { field, reason: format!("{} to {MAX_TEXT_CHARS} characters", usize::from(required)) });
    }
    Ok(())
}

/// Applies `step` to `i` at `now_ms` (the timeline entry is added by the service, with its
/// log index).
pub fn apply(i: &Incident, step: &Step, now_ms: i64) -> Result<Incident, GovernError> {
    if i.state == State::Closed {
        return Err(GovernError::Conflict(format!("incident {} is closed", i.id)));
    }
    if i.timeline.len() >= MAX_TIMELINE {
        return Err(GovernError::Invalid { field: "timeline", reason: format!("an incident holds at most {MAX_TIMELINE} entries") });
    }
    let mut next = i.clone();
    match step {
        Step::Report { to, text } => {
            check_text("to", to)?;
            if to.trim().is_empty() {
                return Err(GovernError::Invalid { field: "to", reason: "say whom it was reported to".into() });
            }
            long_text("text", text, true)?;
            next.state = State::Reported;
            next.reported_ms.get_or_insert(now_ms);
        }
        Step::Measure { text } | Step::Note { text } | Step::Close { text } => long_text("text", text, true)?,
        Step::Regrade { grade, text } => {
            long_text("text", text, true)?;
            next.grade = *grade;
            next.report_due_ms = report_due_ms(*grade, i.operator_class, i.discovered_ms);
        }
    }
    if let Step::Close { .. } = step {
        if i.reported_ms.is_none() && i.report_due_ms.is_some() {
            return Err(GovernError::Conflict(format!(
                "incident {} must be reported before it is closed (or regraded to general, if it was not a major one)",
                i.id
            )));
        }
        next.state = State::Closed;
        next.closed_ms = Some(now_ms);
    }
    next.rev = i.rev + 1;
    Ok(next)
}

pub struct Incidents {
    store: Store,
    log: Arc<Log>,
    all: RwLock<HashMap<String, Incident>>,
    seen: AtomicI64,
    writing: tokio::sync::Mutex<()>,
}

fn missing(id: &str) -> GovernError {
    GovernError::NotFound { what: "incident", id: id.to_string() }
}

impl Incidents {
    pub async fn open_service(store: Store, log: Arc<Log>) -> Result<Self, GovernError> {
        let s = Self { store, log, all: RwLock::default(), seen: AtomicI64::new(0), writing: tokio::sync::Mutex::new(()) };
        s.refresh().await?;
        Ok(s)
    }

    pub async fn refresh(&self) -> Result<usize, GovernError> {
        let rows = self.store.incidents_since(self.seen.load(Ordering::Acquire)).await?;
        let n = rows.len();
        for (seq, doc) in rows {
            self.keep(serde_json::from_str(&doc)?);
            self.seen.fetch_max(seq, Ordering::AcqRel);
        }
        Ok(n)
    }

    fn keep(&self, i: Incident) {
        if let Ok(mut all) = self.all.write()
            && all.get(&i.id).is_none_or(|old| old.rev < i.rev)
        {
            all.insert(i.id.clone(), i);
        }
    }

    /// Opens an incident; its deadline runs from its discovery.
    pub async fn open(&self, new: NewIncident, actor: Actor<'_>, now_ms: i64) -> Result<Incident, GovernError> {
        let title = new.title.trim();
        if title.is_empty() {
            return Err(GovernError::Invalid { field: "title", reason: "say what happened".into() });
        }
        check_text("title", title)?;
        long_text("description", &new.description, false)?;
        if let Some(t) = &new.tenant
            && !identity::tenant_id_ok(t)
        {
            return Err(GovernError::Invalid { field: "tenant", reason: identity::TENANT_ID_RULE.into() });
        }
        if let Some(m) = &new.model {
            check_text("model", m)?;
        }
        let discovered_ms = new.discovered_ms.unwrap_or(now_ms);
        if !(0..=now_ms).contains(&discovered_ms) {
            return Err(GovernError::Invalid { field: "discovered_ms", reason: "Unix milliseconds, not in the future".into() });
        }
        let i = Incident {
            id: format!("inc_{}", uuid::Uuid::now_v7().simple()),
            title: title.to_string(),
            grade: new.grade,
            operator_class: new.operator_class,
            model: new.model,
            tenant: new.tenant,
            state: State::Open,
            discovered_ms,
            report_due_ms: report_due_ms(new.grade, new.operator_class, discovered_ms),
            reported_ms: None,
            closed_ms: None,
            timeline: Vec::new(),
            rev: 1,
        };
        let _one_at_a_time = self.writing.lock().await;
        self.record(i, "opened", new.description.trim().to_string(), actor, now_ms).await
    }

    /// Takes `step` on incident `id`.
    pub async fn act(&self, id: &str, step: Step, actor: Actor<'_>, now_ms: i64) -> Result<Incident, GovernError> {
        let _one_at_a_time = self.writing.lock().await;
        let doc = self.store.incident(id).await?.ok_or_else(|| missing(id))?;
        let i: Incident = serde_json::from_str(&doc)?;
        let next = apply(&i, &step, now_ms)?;
        self.record(next, step.name(), step.text(), actor, now_ms).await
    }

    async fn record(&self, mut i: Incident, kind: &str, text: String, actor: Actor<'_>, now_ms: i64) -> Result<Incident, GovernError> {
        let record = serde_json::json!({"step": kind, "text": text, "actor": actor.id, "grade": i.grade, "state": i.state,
                                        "report_due_ms": i.report_due_ms, "title": i.title, "model": i.model});
        let fact =
            Fact { kind: &format!("incident.{kind}"), subject: &format!("incident/{}", i.id), actor_role: actor.role, record: &record };
        let logged = self.log.append(&fact, now_ms).await?;
        i.timeline.push(Entry {
            kind: kind.to_string(),
            text,
            at_ms: now_ms,
            actor: actor.id.to_string(),
            actor_role: actor.role.to_string(),
            log_index: logged.index,
        });
        let rev = i64::try_from(i.rev).unwrap_or(i64::MAX);
        if !self.store.put_incident(&i.id, rev, &serde_json::to_string(&i)?).await? {
            self.refresh().await?;
            return Err(GovernError::Conflict(format!(
                "incident {} was changed on another instance meanwhile (the log's entry {} records this attempt): try again",
                i.id, logged.index
            )));
        }
        self.keep(i.clone());
        Ok(i)
    }

    /// Incident `id`, if `tenant` (when named) is its tenant.
    pub fn get(&self, id: &str, tenant: Option<&str>) -> Result<Incident, GovernError> {
        let i = self.all.read().ok().and_then(|all| all.get(id).cloned()).ok_or_else(|| missing(id))?;
        if tenant.is_some() && i.tenant.as_deref() != tenant {
            return Err(missing(id));
        }
        Ok(i)
    }

    /// Incidents (`tenant`'s only, when named), newest first.
    pub fn list(&self, tenant: Option<&str>, state: Option<State>) -> Vec<Incident> {
        let mut v: Vec<Incident> = self
            .all
            .read()
            .map(|all| {
                all.values()
                    .filter(|i| tenant.is_none() || i.tenant.as_deref() == tenant)
                    .filter(|i| state.is_none_or(|s| i.state == s))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        v.sort_by(|a, b| b.discovered_ms.cmp(&a.discovered_ms).then_with(|| b.id.cmp(&a.id)));
        v
    }

    /// Raises an alert for each incident not reported by its deadline; closes the others'.
    pub async fn sweep(&self, alerts: &Alerts, now_ms: i64) -> Result<usize, GovernError> {
        let wanted = self
            .list(None, None)
            .into_iter()
            .filter(|i| i.state == State::Open && i.report_due_ms.is_some_and(|d| now_ms >= d))
            .map(|i| Raise {
                key: format!("{OVERDUE}:{}", i.id),
                kind: OVERDUE,
                subject: format!("incident/{}", i.id),
                tenant: i.tenant.clone(),
                message: format!("Incident {} ({:?}, {}) was not reported by its deadline", i.id, i.grade, i.title),
            })
            .collect();
        let (opened, _) = alerts.reconcile(&format!("{OVERDUE}:"), wanted, now_ms).await?;
        Ok(opened)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]
    use super::*;

    const OP: Actor<'static> = Actor { id: "tok_1", role: "operator-admin" };

    fn new(grade: Grade, class: OperatorClass, discovered_ms: i64) -> NewIncident {
        NewIncident {
            title: "模型输出违法内容".into(),
            grade,
            operator_class: class,
            model: Some("chat@2".into()),
            tenant: None,
            discovered_ms: Some(discovered_ms),
            description: "监测规则触发".into(),
        }
    }

    #[test]
    fn the_deadline_follows_the_operator_class_and_general_incidents_have_none() {
        assert_eq!(report_due_ms(Grade::Major, OperatorClass::CriticalInfrastructure, 0), Some(HOUR_MS));
        assert_eq!(report_due_ms(Grade::Serious, OperatorClass::CentralStateOrgan, 0), Some(2 * HOUR_MS));
        assert_eq!(report_due_ms(Grade::EspeciallySerious, OperatorClass::Other, 5), Some(4 * HOUR_MS + 5));
        assert_eq!(report_due_ms(Grade::General, OperatorClass::CriticalInfrastructure, 0), None);
    }

    #[tokio::test]
    async fn an_incident_is_opened_reported_and_closed_each_step_a_leaf_and_late_reports_raise_an_alert() {
        let store = Store::memory().await.unwrap();
        let key = tlog::SignerKey::from_seed("aiplus.test/log", [5; 32]).unwrap();
        let log = Arc::new(Log::open(store.clone(), key, 0, None, None).await.unwrap());
        let incidents = Incidents::open_service(store.clone(), log.clone()).await.unwrap();
        let alerts = Alerts::new(store.clone());
        let i = incidents.open(new(Grade::Major, OperatorClass::Other, 1_000), OP, 2_000).await.unwrap();
        assert_eq!((i.report_due_ms, i.state), (Some(1_000 + 4 * HOUR_MS), State::Open));
        assert_eq!(incidents.sweep(&alerts, 1_000 + 4 * HOUR_MS - 1).await.unwrap(), 0);
        assert_eq!(incidents.sweep(&alerts, 1_000 + 4 * HOUR_MS).await.unwrap(), 1, "overdue from the deadline on");
        // An unreported major incident cannot be closed quietly.
        assert!(matches!(incidents.act(&i.id, Step::Close { text: "误报".into() }, OP, 2_500).await, Err(GovernError::Conflict(_))));
        // A regrade to general lifts the deadline; back to serious, it runs from the discovery again.
        let i = incidents.act(&i.id, Step::Regrade { grade: Grade::General, text: "影响有限".into() }, OP, 2_600).await.unwrap();
        assert_eq!(i.report_due_ms, None);
        let i = incidents.act(&i.id, Step::Regrade { grade: Grade::Serious, text: "影响扩大".into() }, OP, 3_000).await.unwrap();
        assert_eq!(i.report_due_ms, Some(1_000 + 4 * HOUR_MS));
        let i = incidents.act(&i.id, Step::Report { to: "北京市网信办".into(), text: "首报".into() }, OP, 4_000).await.unwrap();
        assert_eq!((i.state, i.reported_ms), (State::Reported, Some(4_000)));
        incidents.sweep(&alerts, 5 * HOUR_MS).await.unwrap();
        assert!(alerts.list(None, 0, 10).await.unwrap()[0].closed_ms.is_some());
        let i = incidents.act(&i.id, Step::Close { text: "处置完毕".into() }, OP, 5_000).await.unwrap();
        assert_eq!(i.state, State::Closed);
        let kinds: Vec<&str> = i.timeline.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["opened", "regrade", "regrade", "report", "closed"]);
        for e in &i.timeline {
            let leaf: tlog::Leaf = serde_json::from_str(&log.entry(e.log_index).await.unwrap().leaf).unwrap();
            assert_eq!(leaf.kind, format!("incident.{}", e.kind));
        }
        assert!(matches!(incidents.act(&i.id, Step::Note { text: "x".into() }, OP, 6_000).await, Err(GovernError::Conflict(_))));
        let bad = incidents.open(NewIncident { title: " ".into(), ..new(Grade::General, OperatorClass::Other, 0) }, OP, 1).await;
        assert!(matches!(bad, Err(GovernError::Invalid { field: "title", .. })));
    }
}
