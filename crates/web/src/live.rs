//! Live job pages: the job's state, new lifecycle events and new log output as server-sent
//! events (`state`, `event`, `log`, then one `end`), polled from the store and the engine.

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
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, Infallible>);
    let mut r = Sse::new(stream).keep_alive(KeepAlive::default()).into_response();
    crate::assets::secure_headers(r.headers_mut());
    Ok(r)
}
