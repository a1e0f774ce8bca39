//! Background agent runs (`background: true`): the run is a stored record leased to the
//! instance that runs it, saved after every step and tool call, with its stream's events stored
//! in order. A client polls `GET /v1/responses/{id}`, streams from a cursor with
//! `?stream=true&starting_after=N`, or cancels with `POST /v1/responses/{id}/cancel`.
//!
//! An instance that stops (even by kill -9) stops renewing its leases; within [`LEASE_MS`]
//! another instance, or the same one restarted, claims the run and resumes it from its last
//! save. A tool call that was in flight is reported as interrupted and not made again
//! (`agents::run`), so no tool runs twice.

use std::sync::Arc;
use std::time::Duration;

use agents::run::{BoxFuture, Checkpoint, Deps, State, Status};
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gateway::proxy::openai_error;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::agent_serving::{Host, Prepared, final_event, frame, response_of, sse, step_options, stored_doc};

/// How long a run's lease lasts without renewal; an instance renews its runs' leases every
/// third of it.
pub const LEASE_MS: i64 = 15_000;
/// How often an instance looks for runs whose lease ran out.
const CLAIM_EVERY: Duration = Duration::from_secs(2);
/// Runs one instance claims at a time.
const CLAIM_BATCH: i64 = 16;
/// Events a follower reads per query, and how long it waits for more.
const FOLLOW_BATCH: i64 = 500;
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// A background run's stored record.
#[derive(Serialize, Deserialize)]
struct Record {
    request: Value,
    /// The principal the run acts as (its steps are metered and limited as this key).
    principal: String,
    created_at: i64,
    state: State,
}

/// Saves a run's state to its record and its stored response, while this instance holds it.
struct StoreCheckpoint {
    host: Host,
    id: String,
    tenant: String,
    agent: agents::Agent,
    request: Value,
    principal: String,
    created_at: i64,
}

impl StoreCheckpoint {
    fn record(&self, state: &State) -> String {
        let r =
            Record { request: self.request.clone(), principal: self.principal.clone(), created_at: self.created_at, state: state.clone() };
        serde_json::to_string(&r).unwrap_or_default()
    }
}

impl Checkpoint for StoreCheckpoint {
    fn save(&self, state: &State) -> BoxFuture<bool> {
        let doc = self.record(state);
        let response = response_of(&self.id, self.created_at, &self.request, &self.agent, state);
        let progress = stored_doc(&response, state);
        let (store, id, tenant, owner, now) =
            (self.host.store.clone(), self.id.clone(), self.tenant.clone(), self.host.instance.clone(), self.host.clock.now_ms());
        Box::pin(async move {
            match store.save_agent_run(&id, &owner, "in_progress", &doc, now, now + LEASE_MS).await {
                Ok(true) => {
                    if let Err(e) = store.update_response(&id, &tenant, &progress).await {
                        tracing::warn!(id, error = %e, "storing a background run's progress");
                    }
                    true
                }
                Ok(false) => false,
                Err(e) => {
                    // A run that cannot be saved stops; its lease runs out and it is resumed.
                    tracing::error!(id, error = %e, "saving a background run");
                    false
                }
            }
        })
    }
}

/// Starts a background run: stored as queued, answered at once (or followed, with `stream`).
pub(crate) async fn start(host: Host, p: Prepared) -> Response {
    let now = host.clock.now_ms();
    let response = response_of(&p.response_id, p.created_at, &p.req, &p.agent, &p.state);
    let quota = gateway::responses::MAX_STORED_BYTES_PER_TENANT;
    let record = Record { request: p.req.clone(), principal: p.principal.clone(), created_at: p.created_at, state: p.state.clone() };
    let row = store::AgentRunRow {
        id: p.response_id.clone(),
        tenant: p.tenant.clone(),
        state: "queued".into(),
        doc: serde_json::to_string(&record).unwrap_or_default(),
    };
    let stored = async {
        host.store.put_response(&p.response_id, &p.tenant, now, &stored_doc(&response, &p.state), quota).await?;
        host.store.insert_agent_run(&row, &host.instance, now, now + LEASE_MS).await
    };
    if let Err(e) = stored.await {
        tracing::error!(error = %e, "storing a background run");
        let why = "the background run could not be stored; retry";
        return openai_error(StatusCode::SERVICE_UNAVAILABLE, "server_error", "store_unavailable", why, None);
    }
    let stream = p.req["stream"].as_bool() == Some(true);
    let (tenant, id) = (p.tenant.clone(), p.response_id.clone());
    tokio::spawn(drive(host.clone(), p.tenant, p.response_id, p.agent, p.deps, record, -1));
    if stream {
        return follow(host, tenant, id, None).await.unwrap_or_else(|| StatusCode::NOT_FOUND.into_response());
    }
    axum::Json(response).into_response()
}

/// Runs (or resumes) a background run to its end, renewing its lease and storing its events.
async fn drive(host: Host, tenant: String, id: String, agent: agents::Agent, deps: Deps, record: Record, last_seq: i64) {
    let renew = {
        let (store, id, owner, clock) = (host.store.clone(), id.clone(), host.instance.clone(), host.clock.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis((LEASE_MS / 3) as u64)).await;
                if !matches!(store.renew_agent_run(&id, &owner, clock.now_ms() + LEASE_MS).await, Ok(true)) {
                    return;
                }
            }
        })
    };
    let (etx, erx) = tokio::sync::mpsc::channel::<Value>(256);
    let writer = tokio::spawn(write_events(host.store.clone(), id.clone(), erx, last_seq));
    let options = step_options(&record.request);
    let ck = StoreCheckpoint {
        host: host.clone(),
        id: id.clone(),
        tenant: tenant.clone(),
        agent: agent.clone(),
        request: record.request,
        principal: record.principal,
        created_at: record.created_at,
    };
    let state = agents::run::run(&agent, &deps, &id, record.state, &options, Some(etx), &ck).await;
    renew.abort();
    let last_seq = writer.await.unwrap_or(last_seq);
    finish(&host, &ck, &state, last_seq).await;
}

/// Stores a run's end: its final state, its response, and the stream's last event.
async fn finish(host: &Host, ck: &StoreCheckpoint, state: &State, last_seq: i64) {
    let response = response_of(&ck.id, ck.created_at, &ck.request, &ck.agent, state);
    let name = response["status"].as_str().unwrap_or("failed").to_string();
    let now = host.clock.now_ms();
    let kept = match state.status {
        // A cancelled run's record says so already (the cancel wrote it).
        Some(Status::Cancelled) => Ok(true),
        _ => host.store.save_agent_run(&ck.id, &host.instance, &name, &ck.record(state), now, now).await,
    };
    if !matches!(kept, Ok(true)) {
        // Another instance holds the run now (this one was too slow to renew): it finishes it.
        tracing::warn!(id = %ck.id, "a background run was taken over before it finished here");
        return;
    }
    if let Err(e) = host.store.update_response(&ck.id, &ck.tenant, &stored_doc(&response, state)).await {
        tracing::error!(id = %ck.id, error = %e, "storing a background run's response");
    }
    crate::agent_serving::add_to_conversation(host, &ck.tenant, &ck.request, state).await;
    let mut last = json!({"type": final_event(&response), "response": response});
    last["sequence_number"] = json!(last_seq + 1);
    if let Err(e) = host.store.add_agent_run_events(&ck.id, &[(last_seq + 1, last.to_string())]).await {
        tracing::error!(id = %ck.id, error = %e, "storing a background run's last event");
    }
}

/// Numbers a run's events after `last_seq` and stores them, in batches; the last number.
async fn write_events(store: store::Store, id: String, mut rx: tokio::sync::mpsc::Receiver<Value>, mut last_seq: i64) -> i64 {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while let Ok(e) = rx.try_recv() {
            batch.push(e);
        }
        let rows: Vec<(i64, String)> = batch
            .into_iter()
            .map(|mut e| {
                last_seq += 1;
                e["sequence_number"] = json!(last_seq);
                (last_seq, e.to_string())
            })
            .collect();
        if let Err(e) = store.add_agent_run_events(&id, &rows).await {
            tracing::error!(id, error = %e, "storing a background run's events");
        }
    }
    last_seq
}

/// Claims runs whose instance stopped and resumes them, every [`CLAIM_EVERY`] until `stop`.
pub fn spawn_resumer(host: Host, mut stop: tokio::sync::watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let now = host.clock.now_ms();
            match host.store.claim_agent_runs(&host.instance, now, now + LEASE_MS, CLAIM_BATCH).await {
                Ok(runs) => {
                    for run in runs {
                        resume(&host, run).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "looking for background runs to resume"),
            }
            tokio::select! {
                () = tokio::time::sleep(CLAIM_EVERY) => {}
                _ = stop.changed() => return,
            }
        }
    })
}

async fn resume(host: &Host, run: store::AgentRunRow) {
    let record: Record = match serde_json::from_str(&run.doc) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(id = %run.id, error = %e, "a background run's record does not read; it is left as it is");
            return;
        }
    };
    tracing::info!(id = %run.id, "resuming a background run");
    let caller =
        Arc::new(identity::Principal::internal_tenant(record.principal.clone(), run.tenant.clone(), &[identity::Scope::Inference]));
    let last_seq = host.store.agent_run_last_seq(&run.id).await.unwrap_or(-1);
    match host.agent_for(&run.tenant, &record.request).await {
        Ok(agent) => {
            let deps = host.deps(&caller, &agent);
            tokio::spawn(drive(host.clone(), run.tenant, run.id, agent, deps, record, last_seq));
        }
        Err(_) => {
            // The agent was deleted meanwhile: the run ends as failed.
            let agent = agents::Agent { tenant: run.tenant.clone(), id: String::new(), version: 0, created_ms: 0, spec: deleted_spec() };
            let mut state = record.state.clone();
            state.status = Some(Status::Failed(agents::run::StepError {
                status: 404,
                code: "model_not_found".into(),
                message: "the agent was deleted before the run could resume".into(),
            }));
            let ck = StoreCheckpoint {
                host: host.clone(),
                id: run.id,
                tenant: run.tenant,
                agent,
                request: record.request,
                principal: record.principal,
                created_at: record.created_at,
            };
            finish(host, &ck, &state, last_seq).await;
        }
    }
}

/// What a run whose agent was deleted reports as its agent.
fn deleted_spec() -> agents::AgentSpec {
    agents::AgentSpec {
        instructions: String::new(),
        model: "-".into(),
        tools: Vec::new(),
        limits: agents::Limits::default(),
        regions: Vec::new(),
        metadata: Default::default(),
    }
}

/// Cancels a background run of the tenant: its next save stops it.
pub(crate) async fn cancel(host: &Host, tenant: &str, id: &str) -> Option<Response> {
    let cancelled = match host.store.cancel_agent_run(id, tenant, host.clock.now_ms()).await {
        Ok(c) => c,
        Err(e) => return Some(store_error(&e.to_string())),
    };
    let doc = host.store.response(id, tenant).await.ok().flatten()?;
    let mut doc: Value = serde_json::from_str(&doc).ok()?;
    if !cancelled {
        let why = "only a queued or in-progress background response can be cancelled";
        return Some(openai_error(StatusCode::BAD_REQUEST, "invalid_request_error", "not_cancellable", why, None));
    }
    doc["response"]["status"] = json!("cancelled");
    if let Err(e) = host.store.update_response(id, tenant, &doc.to_string()).await {
        return Some(store_error(&e.to_string()));
    }
    Some(axum::Json(doc["response"].clone()).into_response())
}

fn store_error(why: &str) -> Response {
    tracing::error!(error = why, "a background run's store");
    openai_error(StatusCode::SERVICE_UNAVAILABLE, "server_error", "store_unavailable", "try again shortly", None)
}

/// Streams a background run's events after a cursor, then live until it ends.
pub(crate) async fn follow(host: Host, tenant: String, id: String, starting_after: Option<i64>) -> Option<Response> {
    host.store.agent_run(&id, &tenant).await.ok().flatten()?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    tokio::spawn(async move {
        let mut cursor = starting_after.unwrap_or(-1);
        loop {
            let events = host.store.agent_run_events(&id, cursor, FOLLOW_BATCH).await.unwrap_or_default();
            let mut ended = false;
            for (seq, doc) in &events {
                cursor = *seq;
                let v: Value = serde_json::from_str(doc).unwrap_or(Value::Null);
                ended |= matches!(
                    v["type"].as_str(),
                    Some("response.completed" | "response.incomplete" | "response.failed" | "response.cancelled")
                );
                if tx.send(Ok(frame(&v))).await.is_err() {
                    return;
                }
            }
            if ended {
                return;
            }
            if events.is_empty() {
                // A cancelled run may never write its last event: the record says it is over.
                let state = host.store.agent_run(&id, &tenant).await.ok().flatten().map(|r| r.state);
                if state.as_deref() == Some("cancelled") {
                    return;
                }
                tokio::time::sleep(FOLLOW_POLL).await;
            }
        }
    });
    Some(sse(rx))
}
