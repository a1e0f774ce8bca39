//! The gateway's side of the usage ledger: requests hand their usage events to a bounded
//! channel; one writer task stores them in batches (group commit). The database is never on
//! the request path.
//!
//! Durability promise (tested in `crates/aiplus/tests/openai_sdk.rs`):
//! - every request gets one event, whatever its endpoint and outcome (answered, refused, failed,
//!   blocked, streamed or not), written before or as its answer ends;
//! - an event is durable once its batch commits: at most `gateway.meter_flush_ms` (default 50)
//!   plus one commit after the request ended. A kill -9 loses at most the events of that last
//!   stretch; nothing is ever written twice (event ids are unique);
//! - a clean shutdown (SIGTERM, Ctrl-C) drains the channel first, so it loses nothing;
//! - when the channel is full (the store is far behind), the request still succeeds and the
//!   event is counted as dropped (`aiplus_gateway_meter_dropped_events`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use store::{Store, UsageRow};
use tokio::sync::mpsc;

/// The default longest wait before a batch is stored (`gateway.meter_flush_ms`).
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);
pub const MAX_BATCH: usize = 1000;
pub const QUEUE_DEPTH: usize = 65_536;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestUsage {
    pub key_id: String,
    pub endpoint: String,
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Whether the upstream reported the counts (else they were estimated here).
    pub tokens_reported: bool,
    pub latency_ms: u64,
    pub status: u16,
    pub cost_cny: f64,
    pub stream: bool,
    /// Stopped by a guardrail.
    #[serde(default)]
    pub blocked: bool,
    /// The client's `X-Request-Id`, when it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

#[derive(Clone)]
pub struct Meter {
    tx: mpsc::Sender<UsageRow<RequestUsage>>,
    pub dropped: Arc<AtomicU64>,
    /// Tells the writer, when the last `Meter` goes, to stop waiting and drain.
    _last: Arc<LastMeter>,
}

struct LastMeter(Arc<tokio::sync::Notify>);

impl Drop for LastMeter {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

impl Meter {
    /// Starts the writer; it ends when every `Meter` clone is dropped, after a last flush.
    ///
    /// The writer wakes once per batch, not once per event: after the first event of a batch
    /// it sleeps `flush_every` (or until the last `Meter` goes) and then takes everything
    /// queued, so requests never pay for waking it.
    pub fn start(store: Store, flush_every: Duration) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<UsageRow<RequestUsage>>(QUEUE_DEPTH);
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
                        Self::flush(&store, &mut batch).await;
                    }
                }
                Self::flush(&store, &mut batch).await;
            }
            Self::flush(&store, &mut batch).await;
        });
        (Self { tx, dropped: Arc::new(AtomicU64::new(0)), _last: Arc::new(LastMeter(closing)) }, writer)
    }

    async fn flush(store: &Store, batch: &mut Vec<UsageRow<RequestUsage>>) {
        if batch.is_empty() {
            return;
        }
        let rows: Vec<&UsageRow<RequestUsage>> = batch.iter().collect();
        // Retry a failed commit a few times; the ids are unique, so a retry cannot double count.
        for attempt in 0..5u64 {
            match store.record(&store::Record::<(), (), RequestUsage> { jobs: vec![], events: vec![], usage: rows.clone() }).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::error!(error = %e, attempt, "storing usage events failed");
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
            }
        }
        batch.clear();
    }

    pub fn send(&self, row: UsageRow<RequestUsage>) {
        if self.tx.try_send(row).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}
