//! The batching writer: requests hand their events to a bounded queue; one task stores them in
//! batches (group commit), so the database is never on a request's path.
//!
//! Durability promise (tested here, in `crates/gateway/tests` and in
//! `crates/aiplus/tests/openai_sdk.rs`):
//! - a request takes a [`Ticket`] before it does any work; the ticket is a place held in the
//!   queue, so its event always fits. When no place is free (the store is far behind), the
//!   request is refused at once (the gateway answers 503 `ledger_unavailable`) and nothing is
//!   done for it: an acknowledged request's event is never dropped;
//! - an event is durable once its batch commits: at most the flush interval (default 50 ms)
//!   plus one commit after it was sent. A kill -9 loses at most the events of that last
//!   stretch; nothing is ever written twice (event ids are unique);
//! - a clean shutdown (the last [`Ledger`] dropped) drains the queue first, so it loses nothing;
//! - a failed commit is retried (five times, backing off); the ids make a retry idempotent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use store::Store;
use tokio::sync::mpsc;

use crate::event::{Entry, UsageEvent};

/// The default longest wait before a batch is stored.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// Most events one commit stores.
pub const MAX_BATCH: usize = 1000;
/// Events that may wait for the writer (held tickets included).
pub const QUEUE_DEPTH: usize = 65_536;

/// The queue is full: the store is behind. Refuse the request; try again shortly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

pub struct Ledger<D: Send + 'static> {
    tx: mpsc::Sender<Entry<D>>,
    refused: Arc<AtomicU64>,
    /// Tells the writer, when the last `Ledger` goes, to stop waiting and drain.
    _last: Arc<LastLedger>,
}

impl<D: Send + 'static> Clone for Ledger<D> {
    fn clone(&self) -> Self {
        Self { tx: self.tx.clone(), refused: self.refused.clone(), _last: self._last.clone() }
    }
}

struct LastLedger(Arc<tokio::sync::Notify>);

impl Drop for LastLedger {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

/// A place reserved in the queue for one event. Clones share the place; the first `send` uses
/// it. Dropped unused, it frees the place.
pub struct Ticket<D: Send + 'static>(Arc<Mutex<Option<mpsc::OwnedPermit<Entry<D>>>>>);

impl<D: Send + 'static> Clone for Ticket<D> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<D: Send + 'static> Ticket<D> {
    /// Queues the event in the reserved place. False if this ticket was used already (a bug:
    /// every request writes exactly one event), in which case the event is logged and lost.
    pub fn send(&self, e: Entry<D>) -> bool {
        let permit = self.0.lock().ok().and_then(|mut p| p.take());
        match permit {
            Some(p) => {
                p.send(e);
                true
            }
            None => {
                tracing::error!(id = %e.id, "a usage event was sent twice on one ticket; the second is not stored");
                false
            }
        }
    }
}

impl<D: Serialize + Send + Sync + 'static> Ledger<D> {
    /// Starts the writer; it ends when every `Ledger` clone and ticket is gone, after a last
    /// flush.
    pub fn start(store: Store, flush_every: Duration) -> (Self, tokio::task::JoinHandle<()>) {
        Self::start_with_depth(store, flush_every, QUEUE_DEPTH)
    }

    /// [`Ledger::start`] with a queue of `depth` events.
    ///
    /// The writer wakes once per batch, not once per event: after the first event of a batch
    /// it sleeps `flush_every` (or until the last `Ledger` goes) and then takes everything
    /// queued, so requests never pay for waking it.
    pub fn start_with_depth(store: Store, flush_every: Duration, depth: usize) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Entry<D>>(depth.max(1));
        let closing = Arc::new(tokio::sync::Notify::new());
        let closed = closing.clone();
        let writer = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            let mut last_gone = false;
            loop {
                let Some(first) = rx.recv().await else { break };
                batch.push(first);
                if !last_gone {
                    tokio::select! {
                        () = tokio::time::sleep(flush_every) => {}
                        () = closed.notified() => last_gone = true,
                    }
                }
                while let Ok(e) = rx.try_recv() {
                    batch.push(e);
                    if batch.len() >= MAX_BATCH {
                        flush(&store, &mut batch).await;
                    }
                }
                flush(&store, &mut batch).await;
            }
            flush(&store, &mut batch).await;
        });
        (Self { tx, refused: Arc::new(AtomicU64::new(0)), _last: Arc::new(LastLedger(closing)) }, writer)
    }

    /// Reserves a place for one event, or refuses when the queue is full.
    pub fn reserve(&self) -> Result<Ticket<D>, Full> {
        match self.tx.clone().try_reserve_owned() {
            Ok(p) => Ok(Ticket(Arc::new(Mutex::new(Some(p))))),
            Err(_) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                Err(Full)
            }
        }
    }

    /// Requests refused because the queue was full, since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

async fn flush<D: Serialize>(store: &Store, batch: &mut Vec<Entry<D>>) {
    if batch.is_empty() {
        return;
    }
    let rows: Vec<&store::UsageRow<UsageEvent<D>>> = batch.iter().collect();
    // Retry a failed commit a few times; the ids are unique, so a retry cannot double count.
    for attempt in 0..5u64 {
        match store.record(&store::Record::<(), (), UsageEvent<D>> { jobs: vec![], events: vec![], usage: rows.clone() }).await {
            Ok(()) => break,
            Err(e) => {
                tracing::error!(error = %e, attempt, "storing usage events failed");
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
        }
    }
    batch.clear();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use crate::event::{Subject, Unit};

    fn entry(i: usize) -> Entry<serde_json::Value> {
        store::UsageRow {
            id: format!("e{i}"),
            at_ms: i as i64,
            tenant: "t".into(),
            pillar: "gateway".into(),
            doc: UsageEvent {
                principal: None,
                subject: Subject { kind: "request".into(), id: format!("r{i}") },
                quantity: 1.0,
                unit: Unit::Requests,
                price_cny_per_unit: 0.0,
                energy_kwh: 0.0,
                carbon_kg: 0.0,
                money_cny: 0.0,
                refs: Default::default(),
                detail: serde_json::json!({}),
            },
        }
    }

    /// With the writer stuck in a long flush wait, the queue fills: the next request is
    /// refused before it does anything, and every event of a request that got a ticket is
    /// stored once the ledger closes.
    #[tokio::test]
    async fn a_full_queue_refuses_new_work_and_loses_no_ticketed_event() {
        let store = Store::memory().await.unwrap();
        let (ledger, writer) = Ledger::<serde_json::Value>::start_with_depth(store.clone(), Duration::from_secs(3600), 4);
        let first = ledger.reserve().unwrap();
        first.send(entry(0));
        // The writer takes the first event, then waits an hour before it looks again.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let tickets: Vec<_> = (1..=4).map(|_| ledger.reserve().unwrap()).collect();
        assert_eq!(ledger.reserve().err(), Some(Full), "four places held: the fifth request is refused");
        assert_eq!(ledger.refused(), 1);
        for (i, t) in tickets.iter().enumerate() {
            assert!(t.send(entry(i + 1)));
        }
        assert!(!tickets[0].send(entry(99)), "a ticket holds one event");
        drop(tickets);
        drop(ledger);
        writer.await.unwrap();
        let stored: Vec<Entry<serde_json::Value>> = store.usage(None, None, 0, i64::MAX, 100).await.unwrap();
        assert_eq!(stored.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["e0", "e1", "e2", "e3", "e4"]);
    }

    #[tokio::test]
    async fn an_unused_ticket_frees_its_place() {
        let store = Store::memory().await.unwrap();
        let (ledger, _writer) = Ledger::<serde_json::Value>::start_with_depth(store, Duration::from_secs(3600), 1);
        let t = ledger.reserve().unwrap();
        assert!(ledger.reserve().is_err());
        drop(t);
        assert!(ledger.reserve().is_ok());
    }
}
