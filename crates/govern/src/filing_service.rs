//! The filings service: every change is checked by [`lifecycle::apply`], written to the
//! transparency log, then stored with the revision it was made on, so two operators acting on
//! the same filing at once cannot both win (the second is told to reload). Each instance keeps
//! the filings in memory, follows the store as [`crate::states`] does, and knows which model
//! versions stand filed for the gateway's policy.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use store::Store;
use tlog::{Fact, Log};

use crate::GovernError;
use crate::alerts::{Alerts, Raise};
use crate::calendar::Calendar;
use crate::filings::{Attachment, AttachmentKind, Content, MAX_ATTACHMENT_BYTES, check_text};
use crate::lifecycle::{self, Action, Due, Filing, State};
use crate::states::Actor;

/// How often deadlines are checked when nothing changes.
pub const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
/// The prefix of every overdue-filing alert's key.
const OVERDUE: &str = "filing.overdue";

/// One change in a filing's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub rev: u64,
    pub action: String,
    pub state: State,
    pub actor: String,
    pub actor_role: String,
    pub at_ms: i64,
    /// The transparency-log entry that records it.
    pub log_index: u64,
    /// The action's own fields (a reason, a number, a date), without the content.
    pub detail: serde_json::Value,
}

/// A file to attach: its kind, its name, its bytes, and the digest the client says they have.
pub struct Upload<'a> {
    pub kind: AttachmentKind,
    pub name: &'a str,
    pub data: &'a [u8],
    pub sha256: Option<&'a str>,
}

/// A filing with the deadline that binds it now.
#[derive(Clone, Debug, Serialize)]
pub struct View {
    #[serde(flatten)]
    pub filing: Filing,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due: Option<Due>,
}

pub struct Filings {
    store: Store,
    log: Arc<Log>,
    calendar: Calendar,
    all: RwLock<HashMap<String, Filing>>,
    /// The model versions of the filings that stand, with the tenant each is filed for (none:
    /// the operator's own service, which covers every tenant).
    filed: RwLock<HashSet<(Option<String>, String)>>,
    seen: AtomicI64,
    /// One change at a time on this instance, from its log entry to its stored row.
    writing: tokio::sync::Mutex<()>,
}

fn missing(id: &str) -> GovernError {
    GovernError::NotFound { what: "filing", id: id.to_string() }
}

/// An action's own fields, as its event and log record carry them: the content is in the
/// filing's record already.
fn detail(action: &Action) -> serde_json::Value {
    let mut v = serde_json::to_value(action).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("content");
        o.remove("action");
    }
    v
}

impl Filings {
    pub async fn open(store: Store, log: Arc<Log>, calendar: Calendar) -> Result<Self, GovernError> {
        let f = Self {
            store,
            log,
            calendar,
            all: RwLock::default(),
            filed: RwLock::default(),
            seen: AtomicI64::new(0),
            writing: tokio::sync::Mutex::new(()),
        };
        f.refresh().await?;
        Ok(f)
    }

    /// Reads the filings changed since the last look (by any instance).
    pub async fn refresh(&self) -> Result<usize, GovernError> {
        let rows = self.store.filings_since(self.seen.load(Ordering::Acquire)).await?;
        let n = rows.len();
        for row in rows {
            self.keep(serde_json::from_str(&row.doc)?);
            self.seen.fetch_max(row.seq, Ordering::AcqRel);
        }
        Ok(n)
    }

    /// Keeps `f` in memory unless a later revision is there already.
    fn keep(&self, f: Filing) {
        let Ok(mut all) = self.all.write() else { return };
        if all.get(&f.id).is_some_and(|old| old.rev >= f.rev) {
            return;
        }
        all.insert(f.id.clone(), f);
        let filed = all
            .values()
            .filter(|f| f.state.in_force(f.was_filed))
            .flat_map(|f| f.filed_models.iter().map(|m| (f.tenant.clone(), m.clone())))
            .collect();
        if let Ok(mut s) = self.filed.write() {
            *s = filed;
        }
    }

    /// Follows changes made on other instances (every `period`) and raises or closes overdue
    /// alerts: after every change seen, and every [`SWEEP_EVERY`] (a deadline passes with no
    /// change), until `stop` turns true.
    pub fn follow(
        self: &Arc<Self>,
        alerts: Arc<Alerts>,
        clock: Arc<dyn vocab::Clock>,
        period: std::time::Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut swept_at: Option<tokio::time::Instant> = None;
            loop {
                let changed = match me.refresh().await {
                    Ok(n) => n > 0,
                    Err(e) => {
                        tracing::warn!(error = %e, "reading filings failed; keeping the previous ones");
                        false
                    }
                };
                if changed || swept_at.is_none_or(|t| t.elapsed() >= SWEEP_EVERY) {
                    swept_at = Some(tokio::time::Instant::now());
                    if let Err(e) = me.sweep(&alerts, clock.now_ms()).await {
                        tracing::warn!(error = %e, "checking filing deadlines failed");
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(period) => {}
                    _ = stop.changed() => return,
                }
            }
        })
    }

    /// Whether a filing that stands covers model version `model` for `tenant`: the operator's
    /// own filing, or one made for that tenant.
    pub fn is_filed(&self, model: &str, tenant: &str) -> bool {
        self.filed
            .read()
            .is_ok_and(|s| s.contains(&(None, model.to_string())) || s.contains(&(Some(tenant.to_string()), model.to_string())))
    }

    /// Opens a draft.
    pub async fn create(&self, tenant: Option<String>, content: Content, actor: Actor<'_>, now_ms: i64) -> Result<View, GovernError> {
        if let Some(t) = &tenant
            && !identity::tenant_id_ok(t)
        {
            return Err(GovernError::Invalid { field: "tenant", reason: identity::TENANT_ID_RULE.into() });
        }
        content.check()?;
        let f = Filing {
            id: format!("fil_{}", uuid::Uuid::now_v7().simple()),
            tenant,
            state: State::Draft,
            content,
            attachments: Vec::new(),
            filing_number: None,
            was_filed: false,
            filed_models: Vec::new(),
            changed_on: None,
            service_ended_on: None,
            created_ms: now_ms,
            updated_ms: now_ms,
            rev: 1,
            log_index: 0,
        };
        let _one_at_a_time = self.writing.lock().await;
        self.record(f, "create", serde_json::json!({}), actor, now_ms).await
    }

    /// Takes `action` on filing `id`, made on revision `rev` when the caller names one.
    pub async fn act(&self, id: &str, rev: Option<u64>, action: Action, actor: Actor<'_>, now_ms: i64) -> Result<View, GovernError> {
        if let Action::Attach { .. } = action {
            // Only `attach` names a file, and only after storing it: a digest from outside
            // could name bytes nobody stored.
            return Err(GovernError::Invalid {
                field: "action",
                reason: "attach files by uploading them (`attach`), which stores them first".into(),
            });
        }
        self.take(id, rev, action, actor, now_ms).await
    }

    async fn take(&self, id: &str, rev: Option<u64>, action: Action, actor: Actor<'_>, now_ms: i64) -> Result<View, GovernError> {
        let _one_at_a_time = self.writing.lock().await;
        let f = self.load(id).await?;
        if let Some(r) = rev
            && r != f.rev
        {
            return Err(GovernError::Conflict(format!("filing {id} is at revision {}, not {r}: reload it and try again", f.rev)));
        }
        let next = lifecycle::apply(&f, &action, now_ms)?;
        self.record(next, action.name(), detail(&action), actor, now_ms).await
    }

    /// Stores `data` by its SHA-256 and attaches it to filing `id` as `kind`. A digest the
    /// client claims is checked against the bytes.
    pub async fn attach(&self, id: &str, upload: Upload<'_>, actor: Actor<'_>, now_ms: i64) -> Result<View, GovernError> {
        let Upload { kind, name, data, sha256: claimed } = upload;
        if name.trim().is_empty() {
            return Err(GovernError::Invalid { field: "name", reason: "the attachment's file name".into() });
        }
        check_text("name", name)?;
        if data.is_empty() || data.len() > MAX_ATTACHMENT_BYTES {
            return Err(GovernError::Invalid { field: "body", reason: format!("an attachment has 1 to {MAX_ATTACHMENT_BYTES} bytes") });
        }
        let sha256 = identity::secret::hex(&Sha256::digest(data));
        if let Some(c) = claimed
            && !c.eq_ignore_ascii_case(&sha256)
        {
            return Err(GovernError::Invalid { field: "sha256", reason: format!("the bytes received hash to {sha256}") });
        }
        // The file is stored before the filing names it, so a named file always exists; a file
        // stored for a change that then fails is kept, unnamed, and costs only its bytes.
        let f = self.load(id).await?;
        if !f.state.editable() {
            return Err(GovernError::Conflict(format!("a {} filing takes no attachment", f.state.as_str())));
        }
        self.store.put_blob(&sha256, data).await?;
        let size_bytes = data.len() as u64;
        let attachment = Attachment { kind, name: name.trim().to_string(), sha256, size_bytes };
        self.take(id, None, Action::Attach { attachment }, actor, now_ms).await
    }

    /// Logs the change, then stores it; in force here at once.
    async fn record(
        &self,
        mut f: Filing,
        action: &str,
        detail: serde_json::Value,
        actor: Actor<'_>,
        now_ms: i64,
    ) -> Result<View, GovernError> {
        let record = serde_json::json!({"action": action, "detail": detail, "actor": actor.id, "filing": f});
        let kind = format!("filing.{action}");
        let fact = Fact { kind: &kind, subject: &format!("filing/{}", f.id), actor_role: actor.role, record: &record };
        let logged = self.log.append(&fact, now_ms).await?;
        f.log_index = logged.index;
        let event = Event {
            rev: f.rev,
            action: action.to_string(),
            state: f.state,
            actor: actor.id.to_string(),
            actor_role: actor.role.to_string(),
            at_ms: now_ms,
            log_index: logged.index,
            detail,
        };
        let rev = i64::try_from(f.rev).unwrap_or(i64::MAX);
        if !self.store.put_filing(&f.id, f.tenant.as_deref(), rev, &serde_json::to_string(&f)?, &serde_json::to_string(&event)?).await? {
            self.refresh().await?;
            return Err(GovernError::Conflict(format!(
                "filing {} was changed on another instance meanwhile (the log's entry {} records this attempt): reload it and try again",
                f.id, logged.index
            )));
        }
        self.keep(f.clone());
        Ok(self.view(f, now_ms))
    }

    async fn load(&self, id: &str) -> Result<Filing, GovernError> {
        let row = self.store.filing(id).await?.ok_or_else(|| missing(id))?;
        Ok(serde_json::from_str(&row.doc)?)
    }

    fn view(&self, filing: Filing, now_ms: i64) -> View {
        let due = lifecycle::due(&filing, &self.calendar, now_ms);
        View { filing, due }
    }

    /// Filing `id`, if `tenant` (when named) owns it: another tenant's filing is missing.
    pub fn get(&self, id: &str, tenant: Option<&str>, now_ms: i64) -> Result<View, GovernError> {
        let f = self.all.read().ok().and_then(|all| all.get(id).cloned()).ok_or_else(|| missing(id))?;
        if tenant.is_some() && f.tenant.as_deref() != tenant {
            return Err(missing(id));
        }
        Ok(self.view(f, now_ms))
    }

    /// The filings (`tenant`'s only, when named), newest first, optionally in one state.
    pub fn list(&self, tenant: Option<&str>, state: Option<State>, now_ms: i64) -> Vec<View> {
        let mut v: Vec<Filing> = self
            .all
            .read()
            .map(|all| {
                all.values()
                    .filter(|f| tenant.is_none() || f.tenant.as_deref() == tenant)
                    .filter(|f| state.is_none_or(|s| f.state == s))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        v.sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then_with(|| b.id.cmp(&a.id)));
        v.into_iter().map(|f| self.view(f, now_ms)).collect()
    }

    /// A filing's history of changes, oldest first.
    pub async fn history(&self, id: &str, tenant: Option<&str>) -> Result<Vec<Event>, GovernError> {
        self.get(id, tenant, 0)?;
        self.store.filing_events(id).await?.iter().map(|d| Ok(serde_json::from_str(d)?)).collect()
    }

    /// An attachment of filing `id` and its bytes, checked against its digest.
    pub async fn attachment(&self, id: &str, sha256: &str, tenant: Option<&str>) -> Result<(Attachment, Vec<u8>), GovernError> {
        let f = self.get(id, tenant, 0)?.filing;
        let gone = || GovernError::NotFound { what: "attachment", id: sha256.to_string() };
        let a = f.attachments.into_iter().find(|a| a.sha256 == sha256).ok_or_else(gone)?;
        let data = self.store.blob(sha256).await?.ok_or_else(gone)?;
        if identity::secret::hex(&Sha256::digest(&data)) != sha256 {
            return Err(GovernError::Conflict(format!("the stored bytes of attachment {sha256} no longer match their digest")));
        }
        Ok((a, data))
    }

    /// Raises an alert for each overdue filing and closes those whose filing was dealt with.
    pub async fn sweep(&self, alerts: &Alerts, now_ms: i64) -> Result<usize, GovernError> {
        let mut wanted = Vec::new();
        for v in self.list(None, None, now_ms) {
            let Some(due) = v.due.filter(|d| d.overdue) else { continue };
            let f = &v.filing;
            let name = if f.content.algorithm.name.is_empty() { f.id.as_str() } else { f.content.algorithm.name.as_str() };
            wanted.push(Raise {
                key: format!("{OVERDUE}:{}:{}:{}", f.id, due.what, due.on),
                kind: OVERDUE,
                subject: format!("filing/{}", f.id),
                tenant: f.tenant.clone(),
                message: format!(
                    "Filing {} ({name}) had to `{}` by {} and is overdue (state: {})",
                    f.id,
                    due.what,
                    due.on,
                    f.state.as_str()
                ),
            });
        }
        let (opened, _) = alerts.reconcile(&format!("{OVERDUE}:"), wanted, now_ms).await?;
        Ok(opened)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]
    use super::*;
    use crate::calendar::end_of_day_ms;
    use crate::filings::tests::complete_service;

    const OP: Actor<'static> = Actor { id: "tok_1", role: "operator-admin" };

    async fn filings() -> (Filings, Arc<Log>, Store) {
        let store = Store::memory().await.unwrap();
        let key = tlog::SignerKey::from_seed("aiplus.test/log", [5; 32]).unwrap();
        let log = Arc::new(Log::open(store.clone(), key, 0, None, None).await.unwrap());
        (Filings::open(store.clone(), log.clone(), Calendar::builtin().unwrap()).await.unwrap(), log, store)
    }

    async fn attach_all(f: &Filings, id: &str) {
        for kind in AttachmentKind::ALL {
            let name = format!("{}.txt", kind.as_str());
            f.attach(id, Upload { kind, name: &name, data: kind.as_str().as_bytes(), sha256: None }, OP, 2).await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_filing_goes_from_draft_to_filed_and_every_change_is_a_leaf_and_an_event() {
        let (f, log, _) = filings().await;
        let id = f.create(Some("acme".into()), complete_service(), OP, 1).await.unwrap().filing.id;
        assert!(!f.is_filed("chat@1", "acme"));
        attach_all(&f, &id).await;
        f.act(&id, Some(5), Action::Submit, OP, 3).await.unwrap();
        let filed = f.act(&id, None, Action::File { filing_number: "Beijing-Ex-1".into() }, OP, 4).await.unwrap().filing;
        assert_eq!((filed.state, filed.rev, filed.log_index), (State::Filed, 7, 6));
        assert!(f.is_filed("chat@1", "acme") && !f.is_filed("chat@2", "acme"));
        assert!(!f.is_filed("chat@1", "other"), "a filing made for acme covers acme only");
        let history = f.history(&id, Some("acme")).await.unwrap();
        let actions: Vec<&str> = history.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["create", "attach", "attach", "attach", "attach", "submit", "file"]);
        assert_eq!(history[6].detail["filing_number"], "Beijing-Ex-1");
        for (i, e) in history.iter().enumerate() {
            let entry = log.entry(e.log_index).await.unwrap();
            let leaf: tlog::Leaf = serde_json::from_str(&entry.leaf).unwrap();
            assert_eq!((leaf.kind.as_str(), leaf.subject.clone()), (format!("filing.{}", actions[i]).as_str(), format!("filing/{id}")));
        }
        let record: serde_json::Value = serde_json::from_str(&log.entry(6).await.unwrap().record).unwrap();
        assert_eq!(record["filing"]["filing_number"], "Beijing-Ex-1");
        // The attachments come back as stored, checked against their digests.
        let a = &filed.attachments[0];
        let (_, bytes) = f.attachment(&id, &a.sha256, Some("acme")).await.unwrap();
        assert_eq!(bytes, b"self_assessment");
        // Cancelling withdraws the model's filing.
        f.act(&id, None, Action::Cancel { reason: "service ended".into() }, OP, 5).await.unwrap();
        assert!(!f.is_filed("chat@1", "acme"));
    }

    #[tokio::test]
    async fn another_tenants_filing_is_missing_and_a_stale_revision_is_a_conflict() {
        let (f, _, store) = filings().await;
        let id = f.create(Some("acme".into()), complete_service(), OP, 1).await.unwrap().filing.id;
        assert!(matches!(f.get(&id, Some("other"), 0), Err(GovernError::NotFound { .. })));
        assert!(matches!(f.history(&id, Some("other")).await, Err(GovernError::NotFound { .. })));
        assert!(f.list(Some("other"), None, 0).is_empty());
        assert_eq!(f.list(Some("acme"), Some(State::Draft), 0).len(), 1);
        let stale = f.act(&id, Some(7), Action::Update { content: Content::default() }, OP, 2).await;
        assert!(matches!(stale, Err(GovernError::Conflict(_))));
        // A second instance follows the first's changes.
        let g = Filings::open(store, f.log.clone(), Calendar::builtin().unwrap()).await.unwrap();
        f.act(&id, Some(1), Action::Update { content: Content::default() }, OP, 2).await.unwrap();
        assert_eq!(g.get(&id, None, 0).unwrap().filing.rev, 1);
        assert_eq!(g.refresh().await.unwrap(), 1);
        assert_eq!(g.get(&id, None, 0).unwrap().filing.rev, 2);
    }

    #[tokio::test]
    async fn attachments_are_content_addressed_and_checked() {
        let (f, _, store) = filings().await;
        let id = f.create(None, Content::default(), OP, 1).await.unwrap().filing.id;
        let up = |data: &'static [u8], sha256| Upload { kind: AttachmentKind::TestSet, name: "t.jsonl", data, sha256 };
        let other = "a".repeat(64);
        let wrong = f.attach(&id, up(b"{}", Some(&other)), OP, 2).await;
        assert!(matches!(wrong, Err(GovernError::Invalid { field: "sha256", .. })));
        let digest = identity::secret::hex(&Sha256::digest(b"{}"));
        let v = f.attach(&id, up(b"{}", Some(&digest)), OP, 2).await.unwrap();
        assert_eq!(v.filing.attachments[0].sha256, digest);
        assert!(matches!(f.attach(&id, up(b"", None), OP, 2).await, Err(GovernError::Invalid { field: "body", .. })));
        // Bytes changed under their digest are refused, never served.
        store.put_blob(&"b".repeat(64), b"x").await.unwrap();
        let mut doc = f.get(&id, None, 0).unwrap().filing;
        doc.attachments[0].sha256 = "b".repeat(64);
        f.keep(Filing { rev: doc.rev + 1, ..doc });
        assert!(matches!(f.attachment(&id, &"b".repeat(64), None).await, Err(GovernError::Conflict(_))));
    }

    #[tokio::test]
    async fn an_overdue_filing_raises_one_alert_which_closes_when_it_is_submitted() {
        let (f, _, store) = filings().await;
        let alerts = Alerts::new(store.clone());
        let id = f.create(None, complete_service(), OP, 1).await.unwrap().filing.id;
        // Started 2026-12-01: due 15 December.
        let due_end = end_of_day_ms(time::Date::from_calendar_date(2026, time::Month::December, 15).unwrap());
        assert_eq!(f.sweep(&alerts, due_end - 1).await.unwrap(), 0);
        assert_eq!(f.sweep(&alerts, due_end).await.unwrap(), 1);
        assert_eq!(f.sweep(&alerts, due_end + 1).await.unwrap(), 0, "raised once");
        let open = alerts.list(None, 0, 10).await.unwrap();
        assert_eq!(open.len(), 1);
        assert!(open[0].key.ends_with(":file:2026-12-15") && open[0].closed_ms.is_none(), "{open:?}");
        attach_all(&f, &id).await;
        f.act(&id, None, Action::Submit, OP, due_end + 2).await.unwrap();
        f.sweep(&alerts, due_end + 3).await.unwrap();
        assert_eq!(alerts.list(None, 0, 10).await.unwrap()[0].closed_ms, Some(due_end + 3));
    }
}
