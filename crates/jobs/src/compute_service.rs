//! The compute domain: the network registry and the job queue, between the handlers and the store.
//!
//! This layer makes IDs and timestamps, validates, asks the scheduler, and writes through the
//! store. A change is acknowledged only after the store committed it; if the store fails, the
//! in-memory scheduler state is rolled back, so memory never runs ahead of disk.
//!
//! All state sits behind one async mutex: decisions are serialised, which keeps them
//! deterministic in the order requests arrive and makes every placement see the previous one.

use std::collections::BTreeMap;
use std::sync::Arc;

use compute::network::{GpuModelSpec, HubSpec, LinkSpec, NetworkSpec};
use compute::scheduler::{Allocation, Decision, Explanation, JobReq};
use compute::{ClusterSpec, JobSpec, Network, Policy, Scheduler, Weights};
use serde::{Deserialize, Serialize};
use store::{JobFilter, JobRow, Store};
use tokio::sync::Mutex;

use crate::error::JobsError;

/// Most jobs waiting for capacity at once; past it, submissions are refused, not dropped.
pub const MAX_QUEUED_JOBS: usize = 100_000;
/// Most jobs of one tenant waiting in the queue, so one tenant cannot fill it.
pub const MAX_QUEUED_PER_TENANT: usize = 10_000;

/// Who submits a job: the principal the job and its usage name, and the highest priority its
/// role may ask for (`identity::Role::max_job_priority`).
#[derive(Clone, Debug)]
pub struct Submitter {
    pub principal: Option<String>,
    pub max_priority: i32,
    /// Whether the submitter is the data exchange, the only one that may submit a sealed
    /// (compute-to-data) job.
    pub data_exchange: bool,
}

impl Submitter {
    /// The platform itself (tests, benchmarks, the CLI's embedded runs): any priority.
    pub fn platform() -> Self {
        Self { principal: None, max_priority: 100, data_exchange: false }
    }

    /// A principal of a tenant, within the priorities its role may ask for.
    pub fn principal(id: String, max_priority: i32) -> Self {
        Self { principal: Some(id), max_priority, data_exchange: false }
    }

    /// The data exchange, submitting a buyer's compute-to-data job.
    pub fn data_exchange(principal: Option<String>) -> Self {
        Self { principal, max_priority: 0, data_exchange: true }
    }
}
/// Most jobs one list call returns.
pub const MAX_PAGE: u32 = 1000;

pub use vocab::Clock;

/// The system's clock, for the server; tests pass a clock of their own.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
    }
}

/// queued → placed → submitted → running → succeeded | failed | cancelled | lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for capacity.
    Queued,
    /// A cluster and node are chosen; not yet handed to the cluster's engine.
    Placed,
    /// The engine accepted it.
    Submitted,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// The engine lost it and its policy (or its attempts) does not allow another run.
    Lost,
}

impl JobState {
    pub const ALL: [JobState; 8] = [
        JobState::Queued,
        JobState::Placed,
        JobState::Submitted,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
        JobState::Lost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Placed => "placed",
            JobState::Submitted => "submitted",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::Lost => "lost",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed | JobState::Cancelled | JobState::Lost)
    }
}

/// The engine side of one attempt: recorded before the engine is called (`handle: None`) and
/// after it answered, so a crash in between is recovered by asking the engine, not by guessing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub engine: String,
    pub cluster: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<executor::Handle>,
    pub submit_started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<i64>,
    #[serde(default)]
    pub cancel_sent: bool,
}

/// One entry of a job's history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobEvent {
    pub at: String,
    pub state: JobState,
    pub attempt: u32,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    pub cluster: String,
    pub hub: String,
    pub pool: String,
    pub node: u32,
    /// Indexes of the node's GPUs the job was given.
    pub gpus: Vec<u8>,
    pub gpu_milli: u16,
    pub placed_at: String,
    pub allocation: Allocation,
    pub explanation: Explanation,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub tenant: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub state: JobState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_reason: Option<String>,
    pub spec: JobSpec,
    pub submitted_at: String,
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// 1 for the first run; a lost job that is queued again runs as the next attempt.
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunRecord>,
    #[serde(default)]
    pub cancel_requested: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// What the last run used and cost, as written to the usage ledger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<compute::scheduler::RunPrice>,
    /// The principal that submitted it (an API key, operator token or console user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_by: Option<String>,
}

fn first_attempt() -> u32 {
    1
}

/// What a compute-to-data job's end says instead of its exit status, which would tell its
/// submitter something about data it may not see.
pub const SEALED_END: &str = "ended (a compute-to-data job's exit status is not shown)";

impl Job {
    /// The job as its tenant sees it: a compute-to-data job's exit status and end reason are
    /// withheld (the exchange reports only whether it succeeded).
    pub fn shown(mut self) -> Self {
        if self.spec.sealed.is_some() {
            self.exit_code = None;
            if self.state.is_terminal() {
                self.state_reason = Some(SEALED_END.into());
            }
        }
        self
    }

    /// Moves the job to `to`, returning the event to store with it.
    pub(crate) fn transition(&mut self, to: JobState, reason: impl Into<String>, now_ms: i64) -> JobEvent {
        let reason = reason.into();
        self.state = to;
        self.state_reason = Some(reason.clone());
        self.updated_at = rfc3339(now_ms);
        JobEvent { at: self.updated_at.clone(), state: to, attempt: self.attempt, reason }
    }

    /// An event that records something without changing the job's state.
    pub(crate) fn note(&self, reason: impl Into<String>, now_ms: i64) -> JobEvent {
        JobEvent { at: rfc3339(now_ms), state: self.state, attempt: self.attempt, reason: reason.into() }
    }
}

/// A hub to register or update, with its links to the other hubs.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubRegistration {
    pub hub: HubSpec,
    /// Links to other hubs. On update, links not named here are kept.
    #[serde(default)]
    pub links: Vec<HubLink>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubLink {
    pub to: String,
    pub latency_ms: f64,
    pub bandwidth_gbps: f64,
    pub source: String,
}

/// What the store keeps besides hubs and clusters.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct NetworkRest {
    gpu_models: Vec<GpuModelSpec>,
    links: Vec<LinkSpec>,
}

/// Live use of a cluster, for the API and the console.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterStatus {
    #[serde(flatten)]
    pub spec: ClusterSpec,
    pub gpus_total: f64,
    pub gpus_used: f64,
    pub cpu_cores_total: f64,
    pub cpu_cores_used: f64,
    pub jobs_placed: usize,
    pub tariff_now_cny_per_kwh: f64,
    pub tariff_period_now: &'static str,
    pub effective_carbon_kg_per_kwh: f64,
    /// The engine that runs this cluster's jobs, and whether it answers.
    pub engine: &'static str,
    pub engine_healthy: bool,
}

/// A queued or placed job as the scheduler holds it: the stored document (so that no store
/// read stands between a decision and its write) and the job compiled for the current network.
pub(crate) struct Active {
    pub(crate) job: Job,
    pub(crate) req: JobReq,
    pub(crate) submitted_ms: i64,
    /// A queued job the scheduler shifted to a later, cheaper hour is not offered before this.
    /// Kept in memory only: after a restart the queue is offered at once and decided afresh.
    pub(crate) not_before_ms: Option<i64>,
    /// A queued job the scheduler held back for a pool expected to free is offered again by
    /// this time even if nothing frees meanwhile (a run may outlast its declared duration).
    pub(crate) recheck_ms: Option<i64>,
}

impl Active {
    pub(crate) fn allocation(&self) -> Option<Allocation> {
        self.job.placement.as_ref().map(|p| p.allocation)
    }
}

pub(crate) struct State {
    pub(crate) net: Arc<Network>,
    pub(crate) sched: Scheduler,
    /// Jobs not yet in a final state, by id.
    pub(crate) active: BTreeMap<String, Active>,
}

pub struct ComputeService {
    pub(crate) store: Store,
    pub(crate) clock: Arc<dyn Clock>,
    policy: Policy,
    weights: Weights,
    pub(crate) state: Mutex<State>,
    pub(crate) engines: crate::lifecycle::Engines,
    /// Where the lifecycle's next tick starts among the active jobs.
    pub(crate) tick_cursor: std::sync::atomic::AtomicUsize,
    /// Live followers of jobs, over the API and the console together.
    pub follow: crate::follow::Slots,
    /// Most queued jobs of one tenant ([`MAX_QUEUED_PER_TENANT`] unless the operator set it).
    max_queued_per_tenant: std::sync::atomic::AtomicUsize,
    /// The network now, for those who follow its changes ([`ComputeService::watch_network`]).
    net_tx: tokio::sync::watch::Sender<Arc<Network>>,
}

/// What a queued job shifted to a later hour says about itself.
fn deferred_reason(until_ms: i64) -> String {
    format!("deferred to {} for a cheaper, greener hour; it still finishes before its deadline", rfc3339(until_ms))
}

/// A scheduler time (seconds) as the whole millisecond at or after it, the service's clock unit.
fn at_or_after_ms(s: f64) -> i64 {
    (s * 1000.0).ceil() as i64
}

fn held_back_reason(until_ms: i64) -> String {
    format!(
        "held back for a cheaper, less power-hungry GPU expected to free by {}; if it does not, the job starts where there is room (after at most {} s of waiting in all)",
        rfc3339(until_ms),
        compute::scheduler::MAX_WAIT_FOR_S
    )
}

pub(crate) fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

fn gpu_indexes(mask: u16) -> Vec<u8> {
    (0..16u8).filter(|i| mask & (1 << i) != 0).collect()
}

/// The refusal of a job no cluster can ever run: the binding constraint in a sentence, for
/// people, and the reason per cluster, for programs.
fn unplaceable(spec: &JobSpec, net: &Network, reasons: Vec<compute::scheduler::Exclusion>) -> JobsError {
    // The sentence reads the same static rules as `never_reasons`, so it is there whenever the
    // reasons are; the fallback only keeps the error readable should the two ever disagree.
    let summary = compute::scheduler::never::summary(spec, net).unwrap_or_else(|| "no cluster can ever run this job".into());
    JobsError::Unplaceable { summary, reasons }
}

impl ComputeService {
    /// Opens the service on `store`. A fresh store is seeded with `seed`; an existing one keeps
    /// its network. Placed jobs take back exactly their resources; queued ones are offered again.
    pub async fn open(
        store: Store,
        seed: &Network,
        policy: Policy,
        weights: Weights,
        clock: Arc<dyn Clock>,
        engines: crate::lifecycle::Engines,
    ) -> Result<Self, JobsError> {
        weights.validate()?;
        if !store.network_seeded().await? {
            save_spec(&store, &seed.spec, &[], clock.now_ms()).await?;
        }
        let spec = load_spec(&store).await?;
        let net = Arc::new(
            Network::build(spec).map_err(|e| JobsError::Invalid { field: format!("stored network: {}", e.field), reason: e.reason })?,
        );
        let sched = Scheduler::new(net.clone(), policy, weights);
        let (net_tx, _) = tokio::sync::watch::channel(net.clone());
        let svc = Self {
            store,
            clock,
            policy,
            weights,
            state: Mutex::new(State { net, sched, active: BTreeMap::new() }),
            engines,
            tick_cursor: Default::default(),
            follow: crate::follow::Slots::default(),
            max_queued_per_tenant: MAX_QUEUED_PER_TENANT.into(),
            net_tx,
        };
        let rows: Vec<JobRow<Job>> = svc.store.jobs_in_states(&["queued", "placed", "submitted", "running"]).await?;
        let mut st = svc.state.lock().await;
        for row in rows {
            let req = JobReq::compile(&row.doc.spec, &st.net);
            st.active.insert(
                row.id.clone(),
                Active { job: row.doc, req, submitted_ms: row.submitted_ms, not_before_ms: None, recheck_ms: None },
            );
        }
        let changed = svc.retake_slots(&mut st)?;
        let docs: Vec<Job> = changed.iter().filter_map(|id| st.active.get(id).map(|a| a.job.clone())).collect();
        svc.store.update_jobs(&docs.iter().map(|j| (j.id.as_str(), j.state.as_str(), j)).collect::<Vec<_>>()).await?;
        svc.offer_queue(&mut st).await?;
        drop(st);
        Ok(svc)
    }

    /// The store, for read-only queries (usage) that have no domain logic of their own.
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub async fn network(&self) -> Arc<Network> {
        self.state.lock().await.net.clone()
    }

    /// The network, changing as hubs and clusters are registered: a follower sees a change as
    /// soon as it is stored.
    pub fn watch_network(&self) -> tokio::sync::watch::Receiver<Arc<Network>> {
        self.net_tx.subscribe()
    }

    // ---- network registry ----

    pub async fn hub(&self, id: &str) -> Result<HubSpec, JobsError> {
        let st = self.state.lock().await;
        st.net.spec.hubs.iter().find(|h| h.id == id).cloned().ok_or_else(|| JobsError::NotFound { what: "hub", id: id.into() })
    }

    pub async fn register_hub(&self, reg: HubRegistration) -> Result<HubSpec, JobsError> {
        let mut st = self.state.lock().await;
        if st.net.spec.hubs.iter().any(|h| h.id == reg.hub.id) {
            return Err(JobsError::Conflict(format!("hub {:?} already exists; PUT /api/v1/hubs/{} updates it", reg.hub.id, reg.hub.id)));
        }
        let mut spec = st.net.spec.clone();
        spec.hubs.push(reg.hub.clone());
        let i = spec.hubs.len() - 1;
        apply_links(&mut spec, &reg.hub.id, &reg.links)?;
        self.replace_network(&mut st, spec, &format!("hub[{i}]."), "hub.").await?;
        Ok(reg.hub)
    }

    pub async fn update_hub(&self, id: &str, reg: HubRegistration) -> Result<HubSpec, JobsError> {
        if reg.hub.id != id {
            return Err(JobsError::Invalid {
                field: "hub.id".into(),
                reason: format!("must match the path ({id:?}); hubs cannot be renamed"),
            });
        }
        let mut st = self.state.lock().await;
        let mut spec = st.net.spec.clone();
        let i = spec.hubs.iter().position(|h| h.id == id).ok_or_else(|| JobsError::NotFound { what: "hub", id: id.into() })?;
        spec.hubs[i] = reg.hub.clone();
        apply_links(&mut spec, id, &reg.links)?;
        self.replace_network(&mut st, spec, &format!("hub[{i}]."), "hub.").await?;
        Ok(reg.hub)
    }

    pub async fn clusters(&self) -> Vec<ClusterStatus> {
        let st = self.state.lock().await;
        (0..st.net.clusters.len()).map(|c| self.status(&st, c)).collect()
    }

    pub async fn cluster(&self, id: &str) -> Result<ClusterStatus, JobsError> {
        let st = self.state.lock().await;
        let c = st.net.cluster_ix(id).ok_or_else(|| JobsError::NotFound { what: "cluster", id: id.into() })?;
        Ok(self.status(&st, c))
    }

    fn status(&self, st: &State, c: usize) -> ClusterStatus {
        let cluster = &st.net.clusters[c];
        let (gu, gt) = st.sched.gpu_usage(c);
        let (cu, ct) = st.sched.cpu_usage(c);
        let now_s = self.clock.now_ms() / 1000;
        ClusterStatus {
            spec: st.net.spec.clusters[c].clone(),
            gpus_total: gt as f64 / 1000.0,
            gpus_used: gu as f64 / 1000.0,
            cpu_cores_total: ct as f64 / 1000.0,
            cpu_cores_used: cu as f64 / 1000.0,
            jobs_placed: st.active.values().filter(|a| a.job.placement.as_ref().is_some_and(|p| p.cluster == cluster.id)).count(),
            tariff_now_cny_per_kwh: cluster.tariff.price_at(now_s),
            tariff_period_now: cluster.tariff.period_at(now_s).name(),
            engine: self.engines.for_cluster(&cluster.id).kind(),
            engine_healthy: st.sched.is_healthy(c),
            effective_carbon_kg_per_kwh: cluster.effective_carbon_kg_per_kwh,
        }
    }

    pub async fn register_cluster(&self, cluster: ClusterSpec) -> Result<ClusterStatus, JobsError> {
        let mut st = self.state.lock().await;
        if st.net.cluster_ix(&cluster.id).is_some() {
            return Err(JobsError::Conflict(format!(
                "cluster {:?} already exists; PUT /api/v1/clusters/{} updates it",
                cluster.id, cluster.id
            )));
        }
        let mut spec = st.net.spec.clone();
        let id = cluster.id.clone();
        spec.clusters.push(cluster);
        let prefix = format!("cluster[{}].", spec.clusters.len() - 1);
        self.replace_network(&mut st, spec, &prefix, "").await?;
        let c = st.net.cluster_ix(&id).ok_or_else(|| JobsError::NotFound { what: "cluster", id: id.clone() })?;
        Ok(self.status(&st, c))
    }

    /// Replaces a cluster's description. Jobs placed there keep their slots if the node still
    /// exists with room; otherwise they go back to the queue with the reason.
    pub async fn update_cluster(&self, id: &str, cluster: ClusterSpec) -> Result<ClusterStatus, JobsError> {
        if cluster.id != id {
            return Err(JobsError::Invalid {
                field: "id".into(),
                reason: format!("must match the path ({id:?}); clusters cannot be renamed"),
            });
        }
        let mut st = self.state.lock().await;
        let i = st.net.cluster_ix(id).ok_or_else(|| JobsError::NotFound { what: "cluster", id: id.into() })?;
        let mut spec = st.net.spec.clone();
        spec.clusters[i] = cluster;
        self.replace_network(&mut st, spec, &format!("cluster[{i}]."), "").await?;
        Ok(self.status(&st, i))
    }

    /// Validates a new network and moves the scheduler onto it: placed jobs keep their slots
    /// where the new network still allows them, the others are queued again. The network and
    /// those job changes are stored in one transaction; if it fails, nothing changes in memory.
    async fn replace_network(&self, st: &mut State, spec: NetworkSpec, prefix: &str, replace: &str) -> Result<(), JobsError> {
        let net = Network::build(spec).map_err(|e| JobsError::Invalid {
            field: e.field.strip_prefix(prefix).map_or(e.field.clone(), |rest| format!("{replace}{rest}")),
            reason: e.reason,
        })?;
        let net = Arc::new(net);
        let mut next = State { net: net.clone(), sched: Scheduler::new(net.clone(), self.policy, self.weights), active: BTreeMap::new() };
        for (id, a) in &st.active {
            // Names are stable across the change but indexes may not be, so jobs are recompiled.
            let req = JobReq::compile(&a.job.spec, &net);
            next.active.insert(
                id.clone(),
                Active { job: a.job.clone(), req, submitted_ms: a.submitted_ms, not_before_ms: None, recheck_ms: None },
            );
        }
        let changed = self.retake_slots(&mut next)?;
        let docs: Vec<Job> = changed.iter().filter_map(|id| next.active.get(id).map(|a| a.job.clone())).collect();
        let jobs: Vec<(&str, &str, &Job)> = docs.iter().map(|j| (j.id.as_str(), j.state.as_str(), j)).collect();
        save_spec(&self.store, &net.spec, &jobs, self.clock.now_ms()).await?;
        *st = next;
        self.net_tx.send_replace(net);
        self.offer_queue(st).await
    }

    /// Makes every placed job take back its slot on the current scheduler (oldest first),
    /// resolving its cluster and pool by name. A job whose slot is gone, or whose constraints no
    /// longer allow it, goes back to the queue. Returns the ids whose documents changed; the
    /// caller stores them. No await: memory is consistent when this returns.
    fn retake_slots(&self, st: &mut State) -> Result<Vec<String>, JobsError> {
        let mut order: Vec<(i64, String)> = st.active.iter().map(|(id, a)| (a.submitted_ms, id.clone())).collect();
        order.sort();
        let now = self.clock.now_ms();
        let mut changed = Vec::new();
        for (_, id) in order {
            let Some(a) = st.active.get_mut(&id) else { continue };
            let Some(p) = &a.job.placement else { continue };
            let resolved = st.net.cluster_ix(&p.cluster).and_then(|c| {
                let pool = st.net.clusters[c].pools.iter().position(|x| x.name == p.pool)?;
                Some(Allocation { cluster: c as u16, pool: pool as u16, slot: p.allocation.slot })
            });
            match resolved {
                Some(alloc) if st.sched.occupy(&a.req, alloc) => {
                    if alloc != p.allocation {
                        if let Some(p) = a.job.placement.as_mut() {
                            p.allocation = alloc;
                        }
                        changed.push(id);
                    }
                }
                _ if a.job.run.is_some() => {
                    // Already handed to an engine: it runs where it runs. A network change that
                    // takes its node away is refused rather than losing track of the job.
                    return Err(JobsError::Conflict(format!(
                        "job {id} runs on {} / {} node {}; the change would remove its slot. Cancel it or wait for it to end",
                        p.cluster, p.pool, p.node
                    )));
                }
                _ => {
                    a.job.state = JobState::Queued;
                    a.job.state_reason = Some("its slot is no longer in the network or no longer allowed; queued again".into());
                    a.job.placement = None;
                    a.job.updated_at = rfc3339(now);
                    changed.push(id);
                }
            }
        }
        Ok(changed)
    }

    // ---- jobs ----

    /// Submits a job. With an idempotency key, a second submission returns the first job.
    pub async fn submit(&self, tenant: String, name: Option<String>, spec: JobSpec, key: Option<String>) -> Result<(Job, bool), JobsError> {
        self.submit_as(Submitter::platform(), tenant, name, spec, key).await
    }

    /// Sets how many queued jobs one tenant may have (`scheduler.max_queued_per_tenant`).
    pub fn set_max_queued_per_tenant(&self, n: usize) {
        self.max_queued_per_tenant.store(n.clamp(1, MAX_QUEUED_JOBS), std::sync::atomic::Ordering::Relaxed);
    }

    /// [`ComputeService::submit`] on behalf of a principal (a key, token or console user), which
    /// the job and its usage events name, within the priorities its role may ask for.
    pub async fn submit_as(
        &self,
        by: Submitter,
        tenant: String,
        name: Option<String>,
        spec: JobSpec,
        key: Option<String>,
    ) -> Result<(Job, bool), JobsError> {
        compute::network::validate_id("tenant".into(), &tenant)?;
        if let Some(k) = &key
            && (k.is_empty() || k.len() > 200)
        {
            return Err(JobsError::Invalid { field: "idempotency-key".into(), reason: "must be 1-200 characters".into() });
        }
        if name.as_ref().is_some_and(|n| n.len() > 200) {
            return Err(JobsError::Invalid { field: "name".into(), reason: "at most 200 characters".into() });
        }
        // A retry with a key answers with the first job, whatever has changed since.
        if let Some(k) = &key
            && let Some(existing) = self.store.job_by_key::<Job>(&tenant, k).await?
        {
            return Ok((existing.doc, false));
        }
        if spec.command.is_empty() {
            return Err(JobsError::Invalid {
                field: "command".into(),
                reason: "must name the program to run, e.g. [\"python\", \"train.py\"]".into(),
            });
        }
        if spec.sealed.is_some() && !by.data_exchange {
            return Err(JobsError::Invalid {
                field: "sealed".into(),
                reason: "compute-to-data jobs are submitted through a data contract (POST /api/v1/contracts/{id}/runs)".into(),
            });
        }
        if spec.priority > by.max_priority {
            return Err(JobsError::Invalid {
                field: "priority".into(),
                reason: format!("this caller may ask for a priority of at most {}, got {}", by.max_priority, spec.priority),
            });
        }
        let mut st = self.state.lock().await;
        let spec = spec.normalise(&st.net)?;
        let req = JobReq::compile(&spec, &st.net);
        let never = st.sched.never_reasons(&req);
        if !never.is_empty() {
            return Err(unplaceable(&spec, &st.net, never));
        }
        let now = self.clock.now_ms();
        let (queued, mine) = st
            .active
            .values()
            .filter(|a| a.job.placement.is_none())
            .fold((0, 0), |(all, mine), a| (all + 1, mine + usize::from(a.job.tenant == tenant)));
        let decision = st.sched.arrive(&req, now as f64 / 1000.0);
        let waits = matches!(decision, Decision::Wait | Decision::HoldBack { .. } | Decision::Defer(_));
        if waits && queued >= MAX_QUEUED_JOBS {
            return Err(JobsError::Busy(format!("the queue holds {MAX_QUEUED_JOBS} jobs, its limit; retry later")));
        }
        let cap = self.max_queued_per_tenant.load(std::sync::atomic::Ordering::Relaxed);
        if waits && mine >= cap {
            return Err(JobsError::Limit(format!("this tenant has {cap} jobs waiting, its limit; retry when some start")));
        }
        let id = format!("job_{}", uuid::Uuid::now_v7().simple());
        let mut job = Job {
            id: id.clone(),
            tenant: tenant.clone(),
            name,
            state: JobState::Queued,
            state_reason: Some("waiting for capacity".into()),
            spec: spec.clone(),
            submitted_at: rfc3339(now),
            updated_at: rfc3339(now),
            placement: None,
            attempt: 1,
            run: None,
            cancel_requested: false,
            exit_code: None,
            usage: None,
            submitted_by: by.principal,
        };
        let mut events = vec![JobEvent { at: rfc3339(now), state: JobState::Queued, attempt: 1, reason: "submitted".into() }];
        let mut not_before_ms = None;
        let mut recheck_ms = None;
        let allocation = match decision {
            Decision::Placed { allocation, explanation } => {
                job.placement = Some(self.placement(&st, allocation, *explanation, now));
                let cluster = job.placement.as_ref().map_or(String::new(), |p| p.cluster.clone());
                events.push(job.transition(JobState::Placed, format!("placed on {cluster}"), now));
                Some(allocation)
            }
            Decision::Wait => None,
            Decision::HoldBack { until_s } => {
                let until_ms = at_or_after_ms(until_s);
                recheck_ms = Some(until_ms);
                job.state_reason = Some(held_back_reason(until_ms));
                None
            }
            Decision::Defer(shift) => {
                let until_ms = at_or_after_ms(shift.until_s);
                not_before_ms = Some(until_ms);
                job.state_reason = Some(deferred_reason(until_ms));
                None
            }
            Decision::Never(reasons) => return Err(unplaceable(&spec, &st.net, reasons)),
        };
        // From here to the end, the scheduler has taken `allocation`: every path below either
        // records the job as active or gives the allocation back. The handler runs this in its
        // own task, so a client that hangs up cannot stop it half-way.
        let row =
            JobRow { id: id.clone(), tenant, idempotency_key: key, state: job.state.as_str().into(), submitted_ms: now, doc: job.clone() };
        match self.store.insert_job(&row, &events).await {
            Ok(Ok(())) => {
                st.active.insert(id, Active { job: job.clone(), req, submitted_ms: now, not_before_ms, recheck_ms });
                Ok((job, true))
            }
            Ok(Err(existing)) => {
                if let Some(a) = allocation {
                    st.sched.release(a);
                }
                Ok((existing.doc, false))
            }
            Err(e) => {
                if let Some(a) = allocation {
                    st.sched.release(a);
                }
                Err(e.into())
            }
        }
    }

    fn placement(&self, st: &State, a: Allocation, explanation: Explanation, now: i64) -> Placement {
        let cluster = &st.net.clusters[a.cluster as usize];
        Placement {
            cluster: cluster.id.clone(),
            hub: st.net.spec.hubs[cluster.hub].id.clone(),
            pool: cluster.pools[a.pool as usize].name.clone(),
            node: a.slot.node,
            gpus: gpu_indexes(a.slot.gpu_mask),
            gpu_milli: a.slot.gpu_milli,
            placed_at: rfc3339(now),
            allocation: a,
            explanation,
        }
    }

    pub async fn job(&self, id: &str) -> Result<Job, JobsError> {
        self.store.get_job::<Job>(id).await?.map(|r| r.doc).ok_or_else(|| JobsError::NotFound { what: "job", id: id.into() })
    }

    pub async fn jobs(
        &self,
        tenant: Option<String>,
        state: Option<String>,
        after: Option<String>,
        limit: Option<u32>,
    ) -> Result<Vec<Job>, JobsError> {
        if let Some(s) = &state
            && JobState::parse(s).is_none()
        {
            return Err(JobsError::Invalid {
                field: "state".into(),
                reason: format!("{s:?} is not one of {}", JobState::ALL.map(JobState::as_str).join(", ")),
            });
        }
        let limit = limit.unwrap_or(100);
        if limit == 0 || limit > MAX_PAGE {
            return Err(JobsError::Invalid { field: "limit".into(), reason: format!("must be 1..={MAX_PAGE}") });
        }
        let rows: Vec<JobRow<Job>> = self.store.list_jobs(&JobFilter { tenant, state, after, limit }).await?;
        Ok(rows.into_iter().map(|r| r.doc).collect())
    }

    /// Cancels a job. One that has not reached an engine ends at once and frees its resources;
    /// one on an engine is cancelled there, and ends when the engine confirms it.
    pub async fn cancel(&self, id: &str) -> Result<Job, JobsError> {
        let mut st = self.state.lock().await;
        let mut job = match st.active.get(id) {
            Some(a) => a.job.clone(),
            // Not active: already ended, or unknown.
            None => return self.job(id).await,
        };
        if job.cancel_requested {
            return Ok(job);
        }
        let now = self.clock.now_ms();
        job.cancel_requested = true;
        // On an engine (or being handed to one), the lifecycle sends the cancel and records the
        // end when the engine confirms it; otherwise the job ends here.
        let on_engine = job.run.is_some();
        let event = if on_engine {
            job.note("cancel requested", now)
        } else {
            job.transition(JobState::Cancelled, "cancelled by request before it ran", now)
        };
        self.store
            .record(&store::Record::<Job, JobEvent, ()> {
                jobs: vec![(id, job.state.as_str(), &job)],
                events: vec![(id, now, &event)],
                usage: vec![],
            })
            .await?;
        if on_engine {
            if let Some(a) = st.active.get_mut(id) {
                a.job = job.clone();
            }
            return Ok(job);
        }
        if let Some(a) = st.active.remove(id)
            && let Some(alloc) = a.allocation()
        {
            st.sched.release(alloc);
        }
        self.offer_queue(&mut st).await?;
        Ok(job)
    }

    /// Places queued jobs that fit now, highest priority then oldest first, and stores them in
    /// one transaction. If the write fails, every placement made here is given back.
    pub(crate) async fn offer_queue(&self, st: &mut State) -> Result<(), JobsError> {
        let now = self.clock.now_ms();
        let mut waiting: Vec<(i32, i64, String)> = st
            .active
            .iter()
            .filter(|(_, a)| a.job.placement.is_none() && !a.job.cancel_requested && a.not_before_ms.is_none_or(|t| t <= now))
            .map(|(id, a)| (-a.job.spec.priority, a.submitted_ms, id.clone()))
            .collect();
        waiting.sort();
        let mut placed: Vec<(String, Allocation, Job, JobEvent)> = Vec::new();
        let mut deferred: Vec<(String, Job)> = Vec::new();
        for (_, submitted, id) in waiting {
            let Some(a) = st.active.get(&id) else { continue };
            let req = a.req.clone();
            match st.sched.place(&req, now as f64 / 1000.0, (now - submitted) as f64 / 1000.0) {
                Decision::Placed { allocation, explanation } => {
                    let mut job = a.job.clone();
                    job.placement = Some(self.placement(st, allocation, *explanation, now));
                    let cluster = job.placement.as_ref().map_or(String::new(), |p| p.cluster.clone());
                    let event = job.transition(JobState::Placed, format!("placed on {cluster}"), now);
                    placed.push((id, allocation, job, event));
                }
                Decision::Defer(shift) => {
                    let until_ms = at_or_after_ms(shift.until_s);
                    let mut job = a.job.clone();
                    job.state_reason = Some(deferred_reason(until_ms));
                    if let Some(a) = st.active.get_mut(&id) {
                        a.not_before_ms = Some(until_ms);
                    }
                    deferred.push((id, job));
                }
                Decision::HoldBack { until_s } => {
                    if let Some(a) = st.active.get_mut(&id) {
                        a.not_before_ms = None;
                        a.recheck_ms = Some(at_or_after_ms(until_s));
                    }
                }
                // Past its hour and still no room: an ordinary queued job from now on, offered
                // when capacity frees rather than on every tick.
                Decision::Wait | Decision::Never(_) => {
                    if let Some(a) = st.active.get_mut(&id) {
                        a.not_before_ms = None;
                        a.recheck_ms = None;
                    }
                }
            }
        }
        let jobs: Vec<(&str, &str, &Job)> = placed
            .iter()
            .map(|(id, _, j, _)| (id.as_str(), j.state.as_str(), j))
            .chain(deferred.iter().map(|(id, j)| (id.as_str(), j.state.as_str(), j)))
            .collect();
        let events: Vec<(&str, i64, &JobEvent)> = placed.iter().map(|(id, _, _, e)| (id.as_str(), now, e)).collect();
        if let Err(e) = self.store.record(&store::Record::<Job, JobEvent, ()> { jobs, events, usage: vec![] }).await {
            for (_, allocation, _, _) in &placed {
                st.sched.release(*allocation);
            }
            return Err(e.into());
        }
        for (id, job) in placed.into_iter().map(|(id, _, job, _)| (id, job)).chain(deferred) {
            if let Some(a) = st.active.get_mut(&id) {
                a.job = job;
            }
        }
        Ok(())
    }

    /// Whether a job shifted to a later hour has reached it, or one held back for a pool has
    /// reached its time to be looked at again, so the queue should be offered.
    pub(crate) fn deferred_due(st: &State, now_ms: i64) -> bool {
        st.active.values().any(|a| {
            a.job.placement.is_none() && (a.not_before_ms.is_some_and(|t| t <= now_ms) || a.recheck_ms.is_some_and(|t| t <= now_ms))
        })
    }

    /// How many jobs not yet ended are in each state, from memory (no store read).
    pub async fn active_counts(&self) -> BTreeMap<JobState, usize> {
        let st = self.state.lock().await;
        let mut out = BTreeMap::new();
        for a in st.active.values() {
            *out.entry(a.job.state).or_insert(0) += 1;
        }
        out
    }

    /// Up to `limit` jobs not yet ended, optionally of one tenant, oldest submission first.
    pub async fn active_jobs(&self, tenant: Option<&str>, limit: usize) -> Vec<Job> {
        let st = self.state.lock().await;
        let mut jobs: Vec<(i64, &Job)> =
            st.active.values().filter(|a| tenant.is_none_or(|t| a.job.tenant == t)).map(|a| (a.submitted_ms, &a.job)).collect();
        jobs.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
        jobs.into_iter().take(limit).map(|(_, j)| j.clone()).collect()
    }

    /// Why a job is where it is: its placement with the explanation, or why it waits.
    pub async fn placement_of(&self, id: &str) -> Result<PlacementView, JobsError> {
        let job = self.job(id).await?;
        Ok(PlacementView { job_id: job.id, state: job.state, state_reason: job.state_reason, placement: job.placement })
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct PlacementView {
    pub job_id: String,
    pub state: JobState,
    pub state_reason: Option<String>,
    pub placement: Option<Placement>,
}

fn apply_links(spec: &mut NetworkSpec, hub: &str, links: &[HubLink]) -> Result<(), JobsError> {
    for (i, l) in links.iter().enumerate() {
        if l.to == hub {
            return Err(JobsError::Invalid { field: format!("links[{i}].to"), reason: "a hub needs no link to itself".into() });
        }
        spec.links.retain(|x| !((x.a == hub && x.b == l.to) || (x.a == l.to && x.b == hub)));
        spec.links.push(LinkSpec {
            a: hub.to_string(),
            b: l.to.clone(),
            latency_ms: l.latency_ms,
            bandwidth_gbps: l.bandwidth_gbps,
            source: l.source.clone(),
        });
    }
    Ok(())
}

async fn save_spec(store: &Store, spec: &NetworkSpec, jobs: &[(&str, &str, &Job)], now_ms: i64) -> Result<(), JobsError> {
    let hubs: Vec<(String, &HubSpec)> = spec.hubs.iter().map(|h| (h.id.clone(), h)).collect();
    let clusters: Vec<(String, &ClusterSpec)> = spec.clusters.iter().map(|c| (c.id.clone(), c)).collect();
    let rest = NetworkRest { gpu_models: spec.gpu_models.clone(), links: spec.links.clone() };
    store.save_network(&hubs, &clusters, &rest, jobs, now_ms).await?;
    Ok(())
}

async fn load_spec(store: &Store) -> Result<NetworkSpec, JobsError> {
    let (hubs, clusters, rest): (Vec<HubSpec>, Vec<ClusterSpec>, NetworkRest) =
        store.load_network().await?.ok_or_else(|| JobsError::NotFound { what: "network", id: "stored".into() })?;
    Ok(NetworkSpec { schema: 1, gpu_models: rest.gpu_models, hubs, clusters, links: rest.links })
}
