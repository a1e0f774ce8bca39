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
/// Old runs are forgotten every this many claims (about hourly).
const SWEEP_EVERY: u64 = 1800;
/// Runs one instance claims at a time.
const CLAIM_BATCH: i64 = 16;
/// Events a follower reads per query, and how long it waits for more.
const FOLLOW_BATCH: i64 = 500;
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// A background run's stored record.
#[derive(Serialize, Deserialize)]
struct Record {
    request: Value,
    /// The principal the run acts as: its steps are metered under this key's id, within the
    /// tenant's limits (a resumed run no longer has the key's own).
    principal: String,
    created_at: i64,
    /// The agent's version the run started with; a resumed run keeps it.
    #[serde(default)]
    agent_version: i64,
    /// The client's headers its steps pass on.
    #[serde(default)]
    forwarded: Vec<(String, String)>,
    state: State,
}

/// Background runs one tenant may have queued or running at once.
pub const MAX_LIVE_RUNS_PER_TENANT: i64 = 100;
/// Ended background runs (records and events) are forgotten after this long; their responses
/// stay, as stored responses do.
pub const RUN_RETENTION_MS: i64 = 7 * 86_400_000;

/// Saves a run's state to its record and its stored response, while this instance holds it.
struct StoreCheckpoint {
    host: Host,
    id: String,
    tenant: String,
    agent: agents::Agent,
    request: Value,
    principal: String,
    created_at: i64,
    forwarded: Vec<(String, String)>,
    /// This driver's lease: fresh for every claim, so a driver that lost the run (even to a
    /// later claim in its own instance) can save no more.
    owner: String,
}

impl StoreCheckpoint {
    fn record(&self, state: &State) -> String {
        let r = Record {
            request: self.request.clone(),
            principal: self.principal.clone(),
            created_at: self.created_at,
            agent_version: self.agent.version,
            forwarded: self.forwarded.clone(),
            state: state.clone(),
        };
        serde_json::to_string(&r).unwrap_or_default()
    }
}

/// A lease owner for one claim or start of a run.
fn lease(host: &Host) -> String {
    format!("{}/{}", host.instance, uuid::Uuid::now_v7().simple())
}

impl Checkpoint for StoreCheckpoint {
    fn save(&self, state: &State) -> BoxFuture<bool> {
        let doc = self.record(state);
        let response = response_of(&self.id, self.created_at, &self.request, &self.agent, state);
        let progress = stored_doc(&response, state);
        let (store, id, tenant, owner, now) =
            (self.host.store.clone(), self.id.clone(), self.tenant.clone(), self.owner.clone(), self.host.clock.now_ms());
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
    match host.store.live_agent_runs(&p.tenant).await {
        Ok(n) if n >= MAX_LIVE_RUNS_PER_TENANT => {
            let why = format!("at most {MAX_LIVE_RUNS_PER_TENANT} background responses may be queued or running at once");
            return openai_error(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", "too_many_background_runs", why, None);
        }
        Ok(_) => {}
        Err(e) => return store_error(&e.to_string()),
    }
    let response = response_of(&p.response_id, p.created_at, &p.req, &p.agent, &p.state);
    let quota = gateway::responses::MAX_STORED_BYTES_PER_TENANT;
    let record = Record {
        request: p.req.clone(),
        principal: p.principal.clone(),
        created_at: p.created_at,
        agent_version: p.agent.version,
        forwarded: p.forwarded.clone(),
        state: p.state.clone(),
    };
    let owner = lease(&host);
    let row = store::AgentRunRow {
        id: p.response_id.clone(),
        tenant: p.tenant.clone(),
        state: "queued".into(),
        doc: serde_json::to_string(&record).unwrap_or_default(),
    };
    let stored = async {
        host.store.put_response(&p.response_id, &p.tenant, now, &stored_doc(&response, &p.state), quota).await?;
        host.store.insert_agent_run(&row, &owner, now, now + LEASE_MS).await
    };
    if let Err(e) = stored.await {
        tracing::error!(error = %e, "storing a background run");
        let why = "the background run could not be stored; retry";
        return openai_error(StatusCode::SERVICE_UNAVAILABLE, "server_error", "store_unavailable", why, None);
    }
    let stream = p.req["stream"].as_bool() == Some(true);
    let (tenant, id) = (p.tenant.clone(), p.response_id.clone());
    tokio::spawn(drive(host.clone(), owner, p.tenant, p.response_id, p.agent, p.deps, record, -1));
    if stream {
        return follow(host, tenant, id, None).await.unwrap_or_else(|| StatusCode::NOT_FOUND.into_response());
    }
    axum::Json(response).into_response()
}

/// Runs (or resumes) a background run to its end, renewing its lease and storing its events.
#[allow(clippy::too_many_arguments, reason = "one run's parts, passed once from start and from resume")]
async fn drive(host: Host, owner: String, tenant: String, id: String, agent: agents::Agent, deps: Deps, record: Record, last_seq: i64) {
    let renew = {
        let (store, id, owner, clock) = (host.store.clone(), id.clone(), owner.clone(), host.clock.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis((LEASE_MS / 3) as u64)).await;
                match store.renew_agent_run(&id, &owner, clock.now_ms() + LEASE_MS).await {
                    Ok(true) => {}
                    // Lost, cancelled or ended: the run's next save says so.
                    Ok(false) => return,
                    // A failed renewal is tried again at the next beat, within the lease.
                    Err(e) => tracing::warn!(id, error = %e, "renewing a background run's lease"),
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
        forwarded: record.forwarded,
        owner,
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
        // A refused save: cancelled (the record says so, and the cancel wrote it), or taken over
        // by another driver, which finishes the run itself.
        Some(Status::Cancelled) => match host.store.agent_run(&ck.id, &ck.tenant).await {
            Ok(Some(r)) => Ok(r.state == "cancelled"),
            Ok(None) => Ok(false),
            Err(e) => Err(e),
        },
        _ => host.store.save_agent_run(&ck.id, &ck.owner, &name, &ck.record(state), now, now).await,
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
        let mut sweeps: u64 = 0;
        loop {
            let now = host.clock.now_ms();
            if sweeps.is_multiple_of(SWEEP_EVERY) {
                match host.store.forget_agent_runs(now - RUN_RETENTION_MS).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(runs = n, "forgot background runs past their retention"),
                    Err(e) => tracing::warn!(error = %e, "forgetting old background runs"),
                }
            }
            sweeps += 1;
            let owner = lease(&host);
            match host.store.claim_agent_runs(&owner, now, now + LEASE_MS, CLAIM_BATCH).await {
                Ok(runs) => {
                    for run in runs {
                        resume(&host, &owner, run).await;
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

async fn resume(host: &Host, owner: &str, run: store::AgentRunRow) {
    let record: Record = match serde_json::from_str(&run.doc) {
        Ok(r) => r,
        Err(e) => {
            // A record that does not read can never be resumed: it ends as failed, once.
            tracing::error!(id = %run.id, error = %e, "a background run's record does not read; it is ended as failed");
            let now = host.clock.now_ms();
            let _ = host.store.save_agent_run(&run.id, owner, "failed", &run.doc, now, now).await;
            return;
        }
    };
    // A store that cannot say where the stream stopped: left for the next claim.
    let Ok(last_seq) = host.store.agent_run_last_seq(&run.id).await else { return };
    tracing::info!(id = %run.id, "resuming a background run");
    let caller =
        Arc::new(identity::Principal::internal_tenant(record.principal.clone(), run.tenant.clone(), &[identity::Scope::Inference]));
    // The version it started with, not a newer one.
    let mut pinned = record.request.clone();
    let id = match agents::service::parse_model(record.request["model"].as_str().unwrap_or("")) {
        Some(Ok((id, _))) => id,
        _ => String::new(),
    };
    pinned["model"] = json!(format!("agent:{id}@{}", record.agent_version.max(1)));
    match host.agents.get(&run.tenant, &id, Some(record.agent_version.max(1))).await {
        Ok(_) => match host.agent_for(&run.tenant, &pinned).await {
            Ok(agent) => {
                let mut deps = host.deps(&caller, &agent, &record.forwarded);
                deps.stream_steps = false;
                tokio::spawn(drive(host.clone(), owner.to_string(), run.tenant, run.id, agent, deps, record, last_seq));
            }
            Err(_) => tracing::warn!(id = %run.id, "a background run's agent cannot be read now; it is resumed later"),
        },
        Err(agents::AgentError::NotFound { .. }) => {
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
                forwarded: record.forwarded,
                owner: owner.to_string(),
            };
            finish(host, &ck, &state, last_seq).await;
        }
        Err(e) => tracing::warn!(id = %run.id, error = %e, "a background run's agent cannot be read now; it is resumed later"),
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
                // A run that ended without a last event (cancelled, or its record unreadable):
                // the record says it is over.
                let state = host.store.agent_run(&id, &tenant).await.ok().flatten().map(|r| r.state);
                if !matches!(state.as_deref(), Some("queued" | "in_progress")) {
                    // The last event is written just after the record ends: read it too.
                    for (_, doc) in host.store.agent_run_events(&id, cursor, FOLLOW_BATCH).await.unwrap_or_default() {
                        let v: Value = serde_json::from_str(&doc).unwrap_or(Value::Null);
                        if tx.send(Ok(frame(&v))).await.is_err() {
                            return;
                        }
                    }
                    return;
                }
                tokio::select! {
                    () = tokio::time::sleep(FOLLOW_POLL) => {}
                    // A client that left is not polled for.
                    () = tx.closed() => return,
                }
            }
        }
    });
    Some(sse(rx))
}
