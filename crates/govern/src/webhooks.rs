//! Webhook deliveries: each notification is stored before it is sent, sent until the receiver
//! answers 2xx, retried with a doubling back-off, and kept as a dead letter after
//! [`MAX_ATTEMPTS`] failures, where an operator can see it and send it again. Sending is the
//! binary's (this crate speaks no HTTP): [`Webhooks::deliver_due`] takes the function that posts.

use std::future::Future;

use serde::{Deserialize, Serialize};
use store::{DeliveryRow, Store};

use crate::GovernError;

pub const MAX_ATTEMPTS: u32 = 6;
/// The first retry's wait; each next one doubles (1, 2, 4, 8, 16 s).
pub const FIRST_RETRY_MS: i64 = 1_000;
/// Most deliveries one pass sends.
pub const BATCH: i64 = 32;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: String,
    pub url: String,
    /// The JSON posted.
    pub body: serde_json::Value,
    /// `pending`, `delivered` or `dead`.
    pub state: String,
    pub attempts: u32,
    pub created_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_ms: Option<i64>,
    pub next_ms: i64,
}

pub struct Webhooks {
    store: Store,
}

impl Webhooks {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    async fn put(&self, d: &Delivery) -> Result<(), GovernError> {
        let row = DeliveryRow { id: d.id.clone(), state: d.state.clone(), next_ms: d.next_ms, doc: serde_json::to_string(d)? };
        Ok(self.store.put_delivery(&row).await?)
    }

    /// Stores a notification to send to `url` as soon as the deliverer runs.
    pub async fn enqueue(&self, url: &str, body: serde_json::Value, now_ms: i64) -> Result<Delivery, GovernError> {
        let d = Delivery {
            id: format!("whd_{}", uuid::Uuid::now_v7().simple()),
            url: url.to_string(),
            body,
            state: "pending".into(),
            attempts: 0,
            created_ms: now_ms,
            last_error: None,
            delivered_ms: None,
            next_ms: now_ms,
        };
        self.put(&d).await?;
        Ok(d)
    }

    /// Sends every delivery that is due with `post` (which answers `Err` with the reason when
    /// the receiver did not take it), recording each outcome. Returns how many were sent.
    pub async fn deliver_due<F, Fut>(&self, now_ms: i64, post: F) -> Result<usize, GovernError>
    where
        F: Fn(String, serde_json::Value) -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let due = self.store.due_deliveries(now_ms, BATCH).await?;
        let mut sent = 0;
        for row in due {
            let mut d: Delivery = serde_json::from_str(&row.doc)?;
            d.attempts += 1;
            match post(d.url.clone(), d.body.clone()).await {
                Ok(()) => {
                    d.state = "delivered".into();
                    d.delivered_ms = Some(now_ms);
                    d.last_error = None;
                    sent += 1;
                }
                Err(why) => {
                    tracing::warn!(delivery = %d.id, url = %d.url, attempt = d.attempts, error = %why, "a webhook was not taken");
                    d.last_error = Some(why.chars().take(500).collect());
                    if d.attempts >= MAX_ATTEMPTS {
                        d.state = "dead".into();
                    } else {
                        d.next_ms = now_ms + FIRST_RETRY_MS * (1 << (d.attempts - 1).min(20));
                    }
                }
            }
            self.put(&d).await?;
        }
        Ok(sent)
    }

    /// Deliveries in `state`, newest first.
    pub async fn list(&self, state: &str, limit: i64) -> Result<Vec<Delivery>, GovernError> {
        if !["pending", "delivered", "dead"].contains(&state) {
            return Err(GovernError::Invalid { field: "state", reason: "pending, delivered or dead".into() });
        }
        let rows = self.store.deliveries(state, limit.clamp(1, 1000)).await?;
        rows.iter().map(|r| Ok(serde_json::from_str(&r.doc)?)).collect()
    }

    /// Sends a dead letter again, from its first attempt.
    pub async fn retry(&self, id: &str, now_ms: i64) -> Result<Delivery, GovernError> {
        let row = self.store.delivery(id).await?.ok_or_else(|| GovernError::NotFound { what: "webhook delivery", id: id.to_string() })?;
        let mut d: Delivery = serde_json::from_str(&row.doc)?;
        if d.state != "dead" {
            return Err(GovernError::Conflict(format!("delivery {id} is {}, not dead", d.state)));
        }
        d.state = "pending".into();
        d.attempts = 0;
        d.next_ms = now_ms;
        self.put(&d).await?;
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn a_failing_receiver_is_retried_with_back_off_then_dead_lettered_and_sent_again_on_request() {
        let w = Webhooks::new(Store::memory().await.unwrap());
        let d = w.enqueue("http://receiver/hook", serde_json::json!({"alert": "a"}), 0).await.unwrap();
        let calls = AtomicU32::new(0);
        let failing = |_: String, _: serde_json::Value| {
            calls.fetch_add(1, Ordering::Relaxed);
            async { Err::<(), String>("503".into()) }
        };
        let mut now = 0;
        for attempt in 1..=MAX_ATTEMPTS {
            assert_eq!(w.deliver_due(now, failing).await.unwrap(), 0);
            assert_eq!(calls.load(Ordering::Relaxed), attempt, "one try per due pass");
            assert_eq!(w.deliver_due(now, failing).await.unwrap(), 0);
            assert_eq!(calls.load(Ordering::Relaxed), attempt, "not due again at once");
            now += FIRST_RETRY_MS * (1 << (attempt - 1));
        }
        let dead = w.list("dead", 10).await.unwrap();
        assert_eq!((dead.len(), dead[0].attempts, dead[0].last_error.as_deref()), (1, MAX_ATTEMPTS, Some("503")));
        assert!(w.retry(&d.id, now).await.is_ok());
        let ok = |_: String, body: serde_json::Value| async move { if body["alert"] == "a" { Ok(()) } else { Err("bad body".into()) } };
        assert_eq!(w.deliver_due(now, ok).await.unwrap(), 1);
        assert_eq!(w.list("delivered", 10).await.unwrap()[0].id, d.id);
        assert!(matches!(w.retry(&d.id, now).await, Err(GovernError::Conflict(_))), "only a dead letter is sent again");
    }
}
