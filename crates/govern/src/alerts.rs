//! Alerts: what needs an operator's attention now. An alert is raised under a key that names
//! its cause (`filing.overdue:fil_…:file:2026-12-16`); the store keeps one open alert per key, so
//! every instance may raise the same alert and it is recorded once. An alert closes when its
//! cause is gone, and an operator may acknowledge it meanwhile.

use serde::{Deserialize, Serialize};
use store::{AlertRow, Store};

use crate::GovernError;

/// The most alerts a listing returns.
pub const MAX_LIST: i64 = 1000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub id: String,
    pub key: String,
    /// `filing.overdue`, and (with monitoring) the rule that fired.
    pub kind: String,
    /// What it is about (`filing/fil_…`, `model/chat@2`).
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub message: String,
    pub opened_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_ms: Option<i64>,
}

/// An alert to raise.
pub struct Raise<'a> {
    pub key: String,
    pub kind: &'a str,
    pub subject: String,
    pub tenant: Option<String>,
    pub message: String,
}

pub struct Alerts {
    store: Store,
}

fn alert(row: AlertRow) -> Result<Alert, GovernError> {
    let mut a: Alert = serde_json::from_str(&row.doc)?;
    a.closed_ms = row.closed_ms;
    Ok(a)
}

impl Alerts {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Raises an alert unless one with its key is open: the alert when this call opened it.
    pub async fn raise(&self, r: Raise<'_>, now_ms: i64) -> Result<Option<Alert>, GovernError> {
        let a = Alert {
            id: format!("alr_{}", uuid::Uuid::now_v7().simple()),
            key: r.key,
            kind: r.kind.to_string(),
            subject: r.subject,
            tenant: r.tenant,
            message: r.message,
            opened_ms: now_ms,
            closed_ms: None,
            acked_by: None,
            acked_ms: None,
        };
        let row = AlertRow {
            id: a.id.clone(),
            key: a.key.clone(),
            tenant: a.tenant.clone(),
            opened_ms: now_ms,
            closed_ms: None,
            doc: serde_json::to_string(&a)?,
        };
        Ok(self.store.raise_alert(&row).await?.then_some(a))
    }

    /// Makes the open alerts under `prefix` be exactly `wanted`: raises those not open, closes
    /// those whose cause is gone. Returns how many were opened and closed.
    pub async fn reconcile(&self, prefix: &str, wanted: Vec<Raise<'_>>, now_ms: i64) -> Result<(usize, usize), GovernError> {
        let open = self.store.open_alert_keys(prefix).await?;
        let keep: std::collections::HashSet<String> = wanted.iter().map(|r| r.key.clone()).collect();
        let mut opened = 0;
        for r in wanted {
            if !open.contains(&r.key) {
                let (key, message) = (r.key.clone(), r.message.clone());
                if self.raise(r, now_ms).await?.is_some() {
                    tracing::warn!(alert = %key, "{message}");
                    opened += 1;
                }
            }
        }
        let mut closed = 0;
        for key in open.iter().filter(|k| !keep.contains(*k)) {
            if self.store.close_alert(key, now_ms).await? {
                closed += 1;
            }
        }
        Ok((opened, closed))
    }

    /// Open alerts and those opened since `since_ms`, newest first; `tenant`'s only if named.
    pub async fn list(&self, tenant: Option<&str>, since_ms: i64, limit: i64) -> Result<Vec<Alert>, GovernError> {
        let rows = self.store.alerts(tenant, since_ms, limit.clamp(1, MAX_LIST)).await?;
        rows.into_iter().map(alert).collect()
    }

    /// Records who acknowledged an alert; an alert of another tenant is missing.
    pub async fn ack(&self, id: &str, tenant: Option<&str>, actor: &str, now_ms: i64) -> Result<Alert, GovernError> {
        let missing = || GovernError::NotFound { what: "alert", id: id.to_string() };
        let row = self.store.alert(id).await?.ok_or_else(missing)?;
        if tenant.is_some() && row.tenant.as_deref() != tenant {
            return Err(missing());
        }
        let mut a = alert(row)?;
        a.acked_by = Some(actor.to_string());
        a.acked_ms = Some(now_ms);
        let mut doc = a.clone();
        doc.closed_ms = None;
        self.store.update_alert(id, &serde_json::to_string(&doc)?).await?;
        Ok(a)
    }

    /// Closes the open alert with `key`: true when one was open.
    pub async fn close(&self, key: &str, now_ms: i64) -> Result<bool, GovernError> {
        Ok(self.store.close_alert(key, now_ms).await?)
    }

    /// Whether an alert with `key` is open.
    pub async fn is_open(&self, key: &str) -> Result<bool, GovernError> {
        Ok(self.store.open_alert(key).await?.is_some())
    }

    /// When the last alert with `key` closed.
    pub async fn last_closed_ms(&self, key: &str) -> Result<Option<i64>, GovernError> {
        Ok(self.store.last_closed_alert_ms(key).await?)
    }
}
