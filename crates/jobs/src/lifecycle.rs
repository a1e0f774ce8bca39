//! The durable job lifecycle: handing placed jobs to their cluster's engine and following them
//! to the end.
//!
//! One `tick` does three phases so that no engine call happens under the state lock:
//! 1. under the lock, decide the work and **record intents first**: a placed job gets a
//!    [`RunRecord`] without a handle, stored before the engine is called;
//! 2. without the lock, call the engines (submit, find, status, cancel), each with a timeout;
//! 3. under the lock, apply the answers, storing each job's new state, its events and, for a
//!    job that ended, its usage event, in one transaction.
//!
//! A crash between 1 and 3 leaves a run record without a handle; the next tick asks the engine
//! (`find`) before submitting again, and engines run an attempt at most once, so no job runs
//! twice and none is lost. On restart, jobs already running are simply polled again: that is the
//! re-attachment.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use compute::LostPolicy;
use executor::{EngineState, ExecError, ExecSpec, Executor, Handle, LogChunk};
use serde::Serialize;
use store::Record;

use crate::compute_service::{ComputeService, Job, JobEvent, JobState, RunRecord, rfc3339};
use crate::error::JobsError;

/// Longest wait for one engine call before the engine counts as unreachable.
const ENGINE_CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// Most engine calls one tick makes by default, so a flood of jobs cannot stall the loop.
pub const MAX_CALLS_PER_TICK: usize = 512;

/// An engine and the clusters it serves (`None`: every cluster not named elsewhere).
type EngineGroup = (Arc<dyn Executor>, Option<Vec<String>>);

/// What a compute event says beside the ledger's common fields (quantity: GPU-seconds; money:
/// the energy it used at the tariff of its hours; refs: the job and its cluster).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunDetail {
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    pub gpus: u32,
    pub gpu_milli: u32,
}

/// Which engine runs each cluster's jobs.
#[derive(Clone)]
pub struct Engines {
    default: Arc<dyn Executor>,
    by_cluster: BTreeMap<String, Arc<dyn Executor>>,
    max_calls_per_tick: usize,
}

impl Engines {
    pub fn new(default: Arc<dyn Executor>) -> Self {
        Self { default, by_cluster: BTreeMap::new(), max_calls_per_tick: MAX_CALLS_PER_TICK }
    }

    /// Limits the engine calls of one lifecycle tick (at least 1).
    pub fn with_max_calls_per_tick(mut self, n: usize) -> Self {
        self.max_calls_per_tick = n.max(1);
        self
    }

    pub fn with_cluster(mut self, cluster: &str, engine: Arc<dyn Executor>) -> Self {
        self.by_cluster.insert(cluster.to_string(), engine);
        self
    }

    pub fn for_cluster(&self, cluster: &str) -> &Arc<dyn Executor> {
        self.by_cluster.get(cluster).unwrap_or(&self.default)
    }

    /// Each distinct engine once, with the clusters it serves (`None`: every other cluster).
    fn distinct(&self) -> Vec<EngineGroup> {
        let mut out: Vec<EngineGroup> = vec![(self.default.clone(), None)];
        for (cluster, e) in &self.by_cluster {
            match out.iter_mut().find(|(x, c)| c.is_some() && Arc::ptr_eq(x, e)) {
                Some((_, Some(cs))) => cs.push(cluster.clone()),
                _ => out.push((e.clone(), Some(vec![cluster.clone()]))),
            }
        }
        out
    }
}

enum Work {
    Submit { id: String, spec: ExecSpec, engine: Arc<dyn Executor> },
    Poll { id: String, handle: Handle, engine: Arc<dyn Executor> },
    Cancel { id: String, handle: Handle, engine: Arc<dyn Executor> },
}

enum Outcome {
    Submitted { id: String, result: Result<Handle, ExecError> },
    Polled { id: String, result: Result<EngineState, ExecError> },
    CancelSent { id: String, result: Result<(), ExecError> },
}

async fn timed<T>(f: impl Future<Output = Result<T, ExecError>>) -> Result<T, ExecError> {
    tokio::time::timeout(ENGINE_CALL_TIMEOUT, f).await.unwrap_or_else(|_| Err(ExecError::Unreachable("no answer in time".into())))
}

/// What the events and logs endpoints return for a job.
#[derive(Serialize)]
pub struct EventView {
    pub seq: i64,
    #[serde(flatten)]
    pub event: JobEvent,
}

impl ComputeService {
    fn exec_spec(job: &Job) -> ExecSpec {
        ExecSpec {
            job_id: job.id.clone(),
            tenant: job.tenant.clone(),
            attempt: job.attempt,
            command: job.spec.command.clone(),
            env: job.spec.env.clone(),
            gpus: job.spec.gpus,
            gpu_milli: job.spec.gpu_milli,
            cpu_milli: job.spec.cpu_milli,
            memory_mib: job.spec.memory_mib,
            time_limit_s: job.spec.effective_time_limit_s(),
            // A compute-to-data job never has the network, whatever its spec says.
            network: job.spec.network == compute::NetworkAccess::Full && job.spec.sealed.is_none(),
            sealed: job.spec.sealed.clone(),
        }
    }

    /// Checks every engine, marking its clusters healthy or not.
    pub async fn check_engines(&self) {
        let mut results = Vec::new();
        for (engine, clusters) in self.engines.distinct() {
            let ok = timed(engine.health()).await.is_ok();
            results.push((clusters, ok));
        }
        let mut st = self.state.lock().await;
        let mut recovered = false;
        let ids: Vec<String> = st.net.clusters.iter().map(|c| c.id.clone()).collect();
        for (c, id) in ids.iter().enumerate() {
            let served_by = results
                .iter()
                .find(|(cs, _)| cs.as_ref().is_some_and(|cs| cs.contains(id)))
                .or_else(|| results.iter().find(|(cs, _)| cs.is_none()));
            let ok = served_by.is_none_or(|(_, ok)| *ok);
            if st.sched.is_healthy(c) != ok {
                tracing::warn!(cluster = %id, healthy = ok, "engine health changed");
                recovered |= ok;
            }
            st.sched.set_healthy(c, ok);
        }
        // Work that waited while an engine was away can be placed there again now.
        if recovered && let Err(e) = self.offer_queue(&mut st).await {
            tracing::error!(error = %e, "offering the queue after an engine recovered");
        }
    }

    /// One pass of the lifecycle. Returns how many engine calls it made.
    pub async fn tick(&self) -> Result<usize, JobsError> {
        let now = self.clock.now_ms();
        // Phase 1: decide, and record submit intents before any engine is called.
        let mut work = Vec::new();
        {
            let mut st = self.state.lock().await;
            let mut intents: Vec<(Job, JobEvent)> = Vec::new();
            // Start where the last tick stopped, so that with more active jobs than calls per
            // tick every job still gets its turn.
            let n = st.active.len().max(1);
            let limit = self.engines.max_calls_per_tick;
            let skip = self.tick_cursor.fetch_add(limit, std::sync::atomic::Ordering::Relaxed) % n;
            for a in st.active.values().skip(skip).chain(st.active.values().take(skip)) {
                if work.len() >= limit {
                    break;
                }
                let job = &a.job;
                let Some(placement) = &job.placement else { continue };
                let engine = self.engines.for_cluster(&placement.cluster).clone();
                match &job.run {
                    None if job.cancel_requested => {}
                    None => {
                        let mut j = job.clone();
                        j.run = Some(RunRecord {
                            engine: engine.kind().to_string(),
                            cluster: placement.cluster.clone(),
                            handle: None,
                            submit_started_at: rfc3339(now),
                            started_ms: None,
                            finished_ms: None,
                            cancel_sent: false,
                        });
                        let ev = job.note(format!("submitting to {} on {}", engine.kind(), placement.cluster), now);
                        work.push(Work::Submit { id: job.id.clone(), spec: Self::exec_spec(job), engine });
                        intents.push((j, ev));
                    }
                    // Recorded but unanswered (a crash, or the engine did not reply): submit is
                    // idempotent per attempt, and `find` is asked first inside it.
                    Some(run) if run.handle.is_none() => {
                        work.push(Work::Submit { id: job.id.clone(), spec: Self::exec_spec(job), engine });
                    }
                    Some(run) => {
                        let handle = run.handle.clone().unwrap_or(Handle(String::new()));
                        if job.cancel_requested && !run.cancel_sent {
                            work.push(Work::Cancel { id: job.id.clone(), handle: handle.clone(), engine: engine.clone() });
                        }
                        work.push(Work::Poll { id: job.id.clone(), handle, engine });
                    }
                }
            }
            if !intents.is_empty() {
                let jobs: Vec<(&str, &str, &Job)> = intents.iter().map(|(j, _)| (j.id.as_str(), j.state.as_str(), j)).collect();
                let events: Vec<(&str, i64, &JobEvent)> = intents.iter().map(|(j, e)| (j.id.as_str(), now, e)).collect();
                self.store.record(&Record::<Job, JobEvent, ()> { jobs, events, usage: vec![] }).await?;
                for (j, _) in intents {
                    if let Some(a) = st.active.get_mut(&j.id) {
                        a.job = j;
                    }
                }
            }
        }
        let calls = work.len();
        // Phase 2: talk to the engines, without the lock.
        let mut outcomes = Vec::with_capacity(work.len());
        for w in work {
            outcomes.push(match w {
                Work::Submit { id, spec, engine } => {
                    let result = timed(async {
                        match engine.find(&spec).await? {
                            Some(h) => Ok(h),
                            None => engine.submit(&spec).await,
                        }
                    })
                    .await;
                    Outcome::Submitted { id, result }
                }
                Work::Poll { id, handle, engine } => Outcome::Polled { id, result: timed(engine.status(&handle)).await },
                Work::Cancel { id, handle, engine } => Outcome::CancelSent { id, result: timed(engine.cancel(&handle)).await },
            });
        }
        // Phase 3: apply what the engines said.
        let now = self.clock.now_ms();
        let mut st = self.state.lock().await;
        let mut changed: Vec<(Job, Vec<JobEvent>, Option<ledger::Entry<RunDetail>>)> = Vec::new();
        let mut finished: Vec<String> = Vec::new();
        let mut requeued: Vec<String> = Vec::new();
        for o in outcomes {
            let id = match &o {
                Outcome::Submitted { id, .. } | Outcome::Polled { id, .. } | Outcome::CancelSent { id, .. } => id.clone(),
            };
            let Some(a) = st.active.get(&id) else { continue };
            let mut job = a.job.clone();
            let mut events = Vec::new();
            let mut usage = None;
            match o {
                Outcome::Submitted { result: Ok(handle), .. } => {
                    if let Some(run) = job.run.as_mut() {
                        run.handle = Some(handle.clone());
                    }
                    events.push(job.transition(JobState::Submitted, format!("accepted by the engine as {}", handle.0), now));
                }
                Outcome::Submitted { result: Err(ExecError::Rejected(why)), .. } => {
                    events.push(job.transition(JobState::Failed, format!("the engine refused the job: {why}"), now));
                    usage = Some(self.meter(&st, &job, now));
                    finished.push(id.clone());
                }
                Outcome::Submitted { result: Err(e), .. }
                | Outcome::Polled { result: Err(e), .. }
                | Outcome::CancelSent { result: Err(e), .. } => {
                    // Unknown fate: keep the record and ask again next tick; the health check
                    // keeps new work away from the engine meanwhile.
                    tracing::warn!(job = %id, error = %e, "engine call failed");
                    continue;
                }
                Outcome::CancelSent { result: Ok(()), .. } => {
                    if let Some(run) = job.run.as_mut() {
                        run.cancel_sent = true;
                    }
                    events.push(job.note("cancel sent to the engine", now));
                }
                Outcome::Polled { result: Ok(state), .. } => match state {
                    EngineState::Pending => continue,
                    EngineState::Running => {
                        if job.state == JobState::Running {
                            continue;
                        }
                        if let Some(run) = job.run.as_mut() {
                            run.started_ms = Some(now);
                        }
                        events.push(job.transition(JobState::Running, "the engine reports it running", now));
                    }
                    EngineState::Succeeded => {
                        job.exit_code = Some(0);
                        events.push(job.transition(JobState::Succeeded, "exited with status 0", now));
                        usage = Some(self.meter(&st, &job, now));
                        finished.push(id.clone());
                    }
                    EngineState::Failed { exit_code, message } => {
                        job.exit_code = exit_code;
                        events.push(job.transition(JobState::Failed, message, now));
                        usage = Some(self.meter(&st, &job, now));
                        finished.push(id.clone());
                    }
                    EngineState::Cancelled => {
                        events.push(job.transition(JobState::Cancelled, "cancelled on the engine", now));
                        usage = Some(self.meter(&st, &job, now));
                        finished.push(id.clone());
                    }
                    EngineState::Lost { reason } => {
                        events.push(job.transition(JobState::Lost, reason, now));
                        usage = Some(self.meter(&st, &job, now));
                        if job.spec.on_lost == LostPolicy::Requeue && job.attempt < job.spec.max_attempts && !job.cancel_requested {
                            job.attempt += 1;
                            job.run = None;
                            job.placement = None;
                            job.exit_code = None;
                            events.push(job.transition(
                                JobState::Queued,
                                format!("queued again as attempt {} of {}", job.attempt, job.spec.max_attempts),
                                now,
                            ));
                            requeued.push(id.clone());
                        } else {
                            finished.push(id.clone());
                        }
                    }
                },
            }
            if let Some(u) = &usage {
                let e = &u.doc;
                job.usage = Some(compute::scheduler::RunPrice {
                    gpu_seconds: e.quantity,
                    energy_kwh: e.energy_kwh,
                    energy_cost_cny: e.money_cny,
                    carbon_kg: e.carbon_kg,
                });
            }
            if let Some(run) = job.run.as_mut()
                && job.state.is_terminal()
            {
                run.finished_ms = Some(now);
            }
            changed.push((job, events, usage));
        }
        {
            let jobs: Vec<(&str, &str, &Job)> = changed.iter().map(|(j, _, _)| (j.id.as_str(), j.state.as_str(), j)).collect();
            let events: Vec<(&str, i64, &JobEvent)> =
                changed.iter().flat_map(|(j, evs, _)| evs.iter().map(|e| (j.id.as_str(), now, e))).collect();
            let usage: Vec<&ledger::Entry<RunDetail>> = changed.iter().filter_map(|(_, _, u)| u.as_ref()).collect();
            self.store.record(&Record { jobs, events, usage }).await?;
        }
        // Stored: now memory follows. Ended and re-queued jobs give their capacity back.
        for (job, _, _) in changed {
            let id = job.id.clone();
            // The allocation is read from the stored-before document still in memory.
            if (finished.contains(&id) || requeued.contains(&id))
                && let Some(alloc) = st.active.get(&id).and_then(|a| a.allocation())
            {
                st.sched.release(alloc);
            }
            if finished.contains(&id) {
                st.active.remove(&id);
            } else if let Some(a) = st.active.get_mut(&id) {
                a.job = job;
            }
        }
        if !finished.is_empty() || !requeued.is_empty() || Self::deferred_due(&st, self.clock.now_ms()) {
            self.offer_queue(&mut st).await?;
        }
        Ok(calls)
    }

    /// The usage event of a run that ended now: GPU-seconds, energy, cost and carbon of the time
    /// it actually ran, priced by the same model the scheduler ranks with.
    fn meter(&self, st: &crate::compute_service::State, job: &Job, now: i64) -> ledger::Entry<RunDetail> {
        let started = job.run.as_ref().and_then(|r| r.started_ms);
        let seconds = started.map_or(0.0, |s| (now - s).max(0) as f64 / 1000.0);
        let price = match (job.placement.as_ref(), st.active.get(&job.id)) {
            (Some(p), Some(a)) => st.sched.price_run(
                &a.req,
                p.allocation.cluster as usize,
                p.allocation.pool as usize,
                started.unwrap_or(now) as f64 / 1000.0,
                seconds,
            ),
            _ => compute::scheduler::RunPrice { gpu_seconds: 0.0, energy_kwh: 0.0, energy_cost_cny: 0.0, carbon_kg: 0.0 },
        };
        let mut refs = std::collections::BTreeMap::new();
        refs.insert("job".into(), job.id.clone());
        if let Some(area) = job.spec.action_area {
            refs.insert("action_area".into(), area.as_str().into());
        }
        let mut detail = RunDetail { attempt: job.attempt, cluster: None, gpus: job.spec.gpus, gpu_milli: job.spec.gpu_milli };
        if let Some(p) = &job.placement {
            refs.insert("cluster".into(), p.cluster.clone());
            detail.cluster = Some(p.cluster.clone());
        }
        ledger::Entry {
            id: format!("compute:{}:{}", job.id, job.attempt),
            at_ms: now,
            tenant: job.tenant.clone(),
            pillar: "compute".into(),
            doc: ledger::UsageEvent {
                principal: job.submitted_by.clone(),
                subject: ledger::Subject { kind: "job_run".into(), id: format!("{}#{}", job.id, job.attempt) },
                quantity: price.gpu_seconds,
                unit: ledger::Unit::GpuSeconds,
                price_cny_per_unit: if price.gpu_seconds > 0.0 { price.energy_cost_cny / price.gpu_seconds } else { 0.0 },
                energy_kwh: price.energy_kwh,
                carbon_kg: price.carbon_kg,
                money_cny: price.energy_cost_cny,
                refs,
                detail,
            },
        }
    }

    /// A job's lifecycle events, oldest first.
    pub async fn events(&self, id: &str) -> Result<Vec<EventView>, JobsError> {
        let sealed = self.job(id).await?.spec.sealed.is_some();
        let rows: Vec<(i64, i64, JobEvent)> = self.store.job_events(id).await?;
        let shown = |mut event: JobEvent| {
            if sealed && event.state.is_terminal() {
                event.reason = crate::compute_service::SEALED_END.into();
            }
            event
        };
        Ok(rows.into_iter().map(|(seq, _, event)| EventView { seq, event: shown(event) }).collect())
    }

    /// Output of the job's current (or last) attempt from `offset`, and whether it has ended.
    pub async fn logs(&self, id: &str, offset: u64) -> Result<(LogChunk, JobState), JobsError> {
        let job = self.job(id).await?;
        if job.spec.sealed.is_some() {
            return Err(JobsError::Conflict(format!(
                "job {id} is a compute-to-data job: its output is never shown, and only its declared outputs leave, through its data contract"
            )));
        }
        let empty = LogChunk { data: Vec::new(), next_offset: offset };
        let Some(run) = &job.run else { return Ok((empty, job.state)) };
        let Some(handle) = &run.handle else { return Ok((empty, job.state)) };
        let engine = self.engines.for_cluster(&run.cluster).clone();
        let chunk =
            timed(engine.logs(handle, offset)).await.map_err(|e| JobsError::Busy(format!("the engine did not return the logs: {e}")))?;
        Ok((chunk, job.state))
    }

    /// Runs the lifecycle until `stop` resolves: a tick every `every`, engine health every ten.
    pub async fn run_dispatcher(self: Arc<Self>, every: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut n: u64 = 0;
        loop {
            if n.is_multiple_of(10) {
                self.check_engines().await;
            }
            n += 1;
            if let Err(e) = self.tick().await {
                tracing::error!(error = %e, "lifecycle tick failed; retrying");
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
        }
    }
}
