//! Live pages. A job's page: its state, new lifecycle events and new log output as server-sent
//! events (`state`, `event`, `log`, then one `end`), polled from the store and the engine. The
//! jobs list: the rows it shows, sent again (`jobs`) whenever one of them changes. The network
//! overview: its job counts and each cluster's changing cells (`network`), likewise.
//!
//! Every stream holds one of the compute service's follower slots (`jobs::follow`), so live
//! lists and live jobs share one cap, per tenant and in all.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;

use crate::error::ConsoleError;
use crate::layout::{fmt_rfc3339, state_label};
use crate::{C, Viewer};

const POLL: Duration = Duration::from_millis(500);
/// How often a live list reads the store again: a list changes less often than a job's log,
/// and each read is a query of up to `PAGE_JOBS` rows.
const LIST_POLL: Duration = Duration::from_secs(1);
/// How often the live overview reads the clusters again.
const NETWORK_POLL: Duration = Duration::from_secs(2);
/// The follower-slot key of an operator's live list (operators see every tenant's jobs, so
/// their lists share one count of their own).
const OPERATOR_KEY: &str = "(operators)";
/// Longest a stream stays open; the browser reconnects after it.
const MAX_STREAM: Duration = Duration::from_secs(3600);
/// Most log bytes one `log` event carries.
const MAX_LOG_EVENT: usize = 64 * 1024;

#[derive(Deserialize)]
pub struct LiveQuery {
    #[serde(default)]
    offset: u64,
    #[serde(default)]
    after: i64,
}

pub async fn job(State(c): C, v: Viewer, Path(id): Path<String>, Query(q): Query<LiveQuery>) -> Result<Response, ConsoleError> {
    let svc = c.compute()?.clone();
    let job = svc.job(&id).await?;
    if !v.may_see(&job.tenant) {
        return Err(ConsoleError::NotFound);
    }
    let permit = svc.follow.take(&job.tenant).map_err(|b| ConsoleError::Busy(b.0))?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(16);
    let lang = v.lang;
    tokio::spawn(async move {
        let _permit = permit;
        let started = Instant::now();
        let (mut offset, mut after, mut last_state) = (q.offset, q.after, None);
        let send = |name: &'static str, data: serde_json::Value| Event::default().event(name).json_data(data).ok();
        loop {
            let Ok(job) = svc.job(&id).await else { break };
            let state = job.state;
            let status = json!({"state": state.as_str(), "label": state_label(lang, state.as_str()), "terminal": state.is_terminal()});
            if last_state != Some(state) {
                last_state = Some(state);
                if let Some(ev) = send("state", status.clone())
                    && tx.send(ev).await.is_err()
                {
                    break;
                }
            }
            if let Ok(events) = svc.events(&id).await {
                let since = after;
                for e in events.into_iter().filter(|e| e.seq > since) {
                    after = e.seq;
                    let data = json!({"at": fmt_rfc3339(&e.event.at), "label": state_label(lang, e.event.state.as_str()),
                                      "attempt": e.event.attempt, "reason": e.event.reason});
                    if let Some(ev) = send("event", data)
                        && tx.send(ev).await.is_err()
                    {
                        return;
                    }
                }
            }
            let mut more = false;
            if let Ok((chunk, _)) = svc.logs(&id, offset).await
                && !chunk.data.is_empty()
            {
                let n = chunk.data.len().min(MAX_LOG_EVENT);
                more = n < chunk.data.len() || chunk.next_offset > offset + n as u64;
                offset += n as u64;
                if let Some(ev) = send("log", json!({"text": String::from_utf8_lossy(&chunk.data[..n])}))
                    && tx.send(ev).await.is_err()
                {
                    break;
                }
            }
            if more {
                continue;
            }
            if state.is_terminal() || started.elapsed() > MAX_STREAM {
                if let Some(ev) = send("end", status) {
                    let _ = tx.send(ev).await;
                }
                break;
            }
            if jobs::follow::wait_or_left(&tx, POLL).await {
                break;
            }
        }
    });
    Ok(sse(rx))
}

/// The jobs list's rows, live: the same query as the page (`pages::jobs::visible_rows`), sent as
/// one `jobs` event at the start and again whenever a row is added, removed or changes.
pub async fn jobs(State(c): C, v: Viewer, Query(q): Query<crate::pages::jobs::ListQuery>) -> Result<Response, ConsoleError> {
    // Validate the filter before taking a slot, so a bad one is refused like on the page.
    crate::pages::jobs::visible_rows(&c, &v, &q).await?;
    let permit = take_slot(&c, &v)?;
    let q = std::sync::Arc::new(q);
    Ok(watch(permit, LIST_POLL, "jobs", move || {
        let (c, v, q) = (c.clone(), v.clone(), q.clone());
        async move {
            let rows = crate::pages::jobs::visible_rows(&c, &v, &q).await.ok()?;
            let cells: Vec<_> = rows.iter().map(|r| crate::pages::cluster::job_row_json(v.lang, &r.doc)).collect();
            Some(json!({ "rows": cells }))
        }
    }))
}

/// The network overview, live: its job counts, GPUs busy, and each cluster's busy, free, tariff
/// and health cells (`pages::network::live_cells`) and map circle, sent when any of them changes.
/// Every signed-in viewer sees the overview, so the stream shows what the page shows, no more.
pub async fn network(State(c): C, v: Viewer) -> Result<Response, ConsoleError> {
    let svc = c.compute()?.clone();
    let permit = take_slot(&c, &v)?;
    let lang = v.lang;
    Ok(watch(permit, NETWORK_POLL, "network", move || {
        let svc = svc.clone();
        async move {
            let (queued, running) = crate::pages::network::job_counts(&svc.active_counts().await);
            let clusters = svc.clusters().await;
            let gpus_busy: f64 = clusters.iter().map(|s| s.gpus_used).sum();
            let rows: Vec<_> = clusters
                .iter()
                .map(|s| {
                    let cells = crate::pages::network::live_cells(lang, s);
                    let share = if s.gpus_total > 0.0 { s.gpus_used / s.gpus_total } else { 0.0 };
                    json!({"id": s.spec.id, "busy": cells.busy, "free": cells.free, "tariff": cells.tariff, "healthy": cells.healthy,
                           "health": if cells.healthy { lang.t("healthy") } else { lang.t("unhealthy") },
                           "circle": crate::map::circle_class(share, cells.healthy)})
                })
                .collect();
            Some(json!({"queued": queued, "running": running, "gpus_busy": crate::layout::num(gpus_busy, 1), "clusters": rows}))
        }
    }))
}

/// A follower slot for a live list or overview: the viewer's tenant's, or the operators' one.
fn take_slot(c: &crate::SharedConsole, v: &Viewer) -> Result<jobs::follow::Slot, ConsoleError> {
    let key = v.scope().unwrap_or(OPERATOR_KEY);
    c.compute()?.follow.take(key).map_err(|b| ConsoleError::Busy(b.0))
}

/// Streams `name` events: what `read` returns now, then again each `poll` whenever it has
/// changed (a failed read is skipped), until the client leaves or [`MAX_STREAM`] has passed.
/// The slot is held for as long as the stream is open.
fn watch<F, Fut>(permit: jobs::follow::Slot, poll: Duration, name: &'static str, mut read: F) -> Response
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Option<serde_json::Value>> + Send,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(4);
    tokio::spawn(async move {
        let _permit = permit;
        let started = Instant::now();
        let mut last = None;
        while started.elapsed() <= MAX_STREAM {
            if let Some(doc) = read().await
                && last.as_ref() != Some(&doc)
            {
                let Ok(ev) = Event::default().event(name).json_data(&doc) else { break };
                if tx.send(ev).await.is_err() {
                    break;
                }
                last = Some(doc);
            }
            if jobs::follow::wait_or_left(&tx, poll).await {
                break;
            }
        }
    });
    sse(rx)
}

/// The response of a live stream fed by `rx`.
fn sse(rx: tokio::sync::mpsc::Receiver<Event>) -> Response {
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, Infallible>);
    let mut r = Sse::new(stream).keep_alive(KeepAlive::default()).into_response();
    crate::assets::secure_headers(r.headers_mut());
    r
}
