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

use crate::problem::ApiError;

/// Most jobs waiting for capacity at once; past it, submissions are refused, not dropped.
pub const MAX_QUEUED_JOBS: usize = 100_000;
/// Most jobs one list call returns.
pub const MAX_PAGE: u32 = 1000;

pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for capacity.
    Queued,
    /// A cluster and node are chosen; waiting for an executor to run it.
    Placed,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Placed => "placed",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [JobState::Queued, JobState::Placed, JobState::Cancelled].into_iter().find(|st| st.as_str() == s)
    }
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
}

/// A queued or placed job as the scheduler holds it: the stored document (so that no store
/// read stands between a decision and its write) and the job compiled for the current network.
struct Active {
    job: Job,
    req: JobReq,
    submitted_ms: i64,
}

impl Active {
    fn allocation(&self) -> Option<Allocation> {
        self.job.placement.as_ref().map(|p| p.allocation)
    }
}

struct State {
    net: Arc<Network>,
    sched: Scheduler,
    /// Queued and placed jobs by id.
    active: BTreeMap<String, Active>,
}

pub struct ComputeService {
    store: Store,
    clock: Arc<dyn Clock>,
    policy: Policy,
    weights: Weights,
    state: Mutex<State>,
}

fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

fn gpu_indexes(mask: u16) -> Vec<u8> {
    (0..16u8).filter(|i| mask & (1 << i) != 0).collect()
}

impl ComputeService {
    /// Opens the service on `store`. A fresh store is seeded with `seed`; an existing one keeps
    /// its network. Placed jobs take back exactly their resources; queued ones are offered again.
    pub async fn open(store: Store, seed: &Network, policy: Policy, weights: Weights, clock: Arc<dyn Clock>) -> Result<Self, ApiError> {
        weights.validate()?;
        if !store.network_seeded().await? {
            save_spec(&store, &seed.spec, &[], clock.now_ms()).await?;
        }
        let spec = load_spec(&store).await?;
        let net = Arc::new(
            Network::build(spec).map_err(|e| ApiError::Invalid { field: format!("stored network: {}", e.field), reason: e.reason })?,
        );
        let sched = Scheduler::new(net.clone(), policy, weights);
        let svc = Self { store, clock, policy, weights, state: Mutex::new(State { net, sched, active: BTreeMap::new() }) };
        let rows: Vec<JobRow<Job>> = svc.store.jobs_in_states(&["queued", "placed"]).await?;
        let mut st = svc.state.lock().await;
        for row in rows {
            let req = JobReq::compile(&row.doc.spec, &st.net);
            st.active.insert(row.id.clone(), Active { job: row.doc, req, submitted_ms: row.submitted_ms });
        }
        let changed = svc.retake_slots(&mut st);
        let docs: Vec<Job> = changed.iter().filter_map(|id| st.active.get(id).map(|a| a.job.clone())).collect();
        svc.store.update_jobs(&docs.iter().map(|j| (j.id.as_str(), j.state.as_str(), j)).collect::<Vec<_>>()).await?;
        svc.offer_queue(&mut st).await?;
        drop(st);
        Ok(svc)
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub async fn network(&self) -> Arc<Network> {
        self.state.lock().await.net.clone()
    }

    // ---- network registry ----

    pub async fn hub(&self, id: &str) -> Result<HubSpec, ApiError> {
        let st = self.state.lock().await;
        st.net.spec.hubs.iter().find(|h| h.id == id).cloned().ok_or_else(|| ApiError::NotFound { what: "hub", id: id.into() })
    }

    pub async fn register_hub(&self, reg: HubRegistration) -> Result<HubSpec, ApiError> {
        let mut st = self.state.lock().await;
        if st.net.spec.hubs.iter().any(|h| h.id == reg.hub.id) {
            return Err(ApiError::Conflict(format!("hub {:?} already exists; PUT /api/v1/hubs/{} updates it", reg.hub.id, reg.hub.id)));
        }
        let mut spec = st.net.spec.clone();
        spec.hubs.push(reg.hub.clone());
        let i = spec.hubs.len() - 1;
        apply_links(&mut spec, &reg.hub.id, &reg.links)?;
        self.replace_network(&mut st, spec, &format!("hub[{i}]."), "hub.").await?;
        Ok(reg.hub)
    }

    pub async fn update_hub(&self, id: &str, reg: HubRegistration) -> Result<HubSpec, ApiError> {
        if reg.hub.id != id {
            return Err(ApiError::Invalid {
                field: "hub.id".into(),
                reason: format!("must match the path ({id:?}); hubs cannot be renamed"),
            });
        }
        let mut st = self.state.lock().await;
        let mut spec = st.net.spec.clone();
        let i = spec.hubs.iter().position(|h| h.id == id).ok_or_else(|| ApiError::NotFound { what: "hub", id: id.into() })?;
        spec.hubs[i] = reg.hub.clone();
        apply_links(&mut spec, id, &reg.links)?;
        self.replace_network(&mut st, spec, &format!("hub[{i}]."), "hub.").await?;
        Ok(reg.hub)
    }

    pub async fn clusters(&self) -> Vec<ClusterStatus> {
        let st = self.state.lock().await;
        (0..st.net.clusters.len()).map(|c| self.status(&st, c)).collect()
    }

    pub async fn cluster(&self, id: &str) -> Result<ClusterStatus, ApiError> {
        let st = self.state.lock().await;
        let c = st.net.cluster_ix(id).ok_or_else(|| ApiError::NotFound { what: "cluster", id: id.into() })?;
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
            effective_carbon_kg_per_kwh: cluster.effective_carbon_kg_per_kwh,
        }
    }

    pub async fn register_cluster(&self, cluster: ClusterSpec) -> Result<ClusterStatus, ApiError> {
        let mut st = self.state.lock().await;
        if st.net.cluster_ix(&cluster.id).is_some() {
            return Err(ApiError::Conflict(format!(
                "cluster {:?} already exists; PUT /api/v1/clusters/{} updates it",
                cluster.id, cluster.id
            )));
        }
        let mut spec = st.net.spec.clone();
        let id = cluster.id.clone();
        spec.clusters.push(cluster);
        let prefix = format!("cluster[{}].", spec.clusters.len() - 1);
        self.replace_network(&mut st, spec, &prefix, "").await?;
        let c = st.net.cluster_ix(&id).ok_or_else(|| ApiError::NotFound { what: "cluster", id: id.clone() })?;
        Ok(self.status(&st, c))
    }

    /// Replaces a cluster's description. Jobs placed there keep their slots if the node still
    /// exists with room; otherwise they go back to the queue with the reason.
    pub async fn update_cluster(&self, id: &str, cluster: ClusterSpec) -> Result<ClusterStatus, ApiError> {
        if cluster.id != id {
            return Err(ApiError::Invalid {
                field: "id".into(),
                reason: format!("must match the path ({id:?}); clusters cannot be renamed"),
            });
        }
        let mut st = self.state.lock().await;
        let i = st.net.cluster_ix(id).ok_or_else(|| ApiError::NotFound { what: "cluster", id: id.into() })?;
        let mut spec = st.net.spec.clone();
        spec.clusters[i] = cluster;
        self.replace_network(&mut st, spec, &format!("cluster[{i}]."), "").await?;
        Ok(self.status(&st, i))
    }

    /// Validates a new network and moves the scheduler onto it: placed jobs keep their slots
    /// where the new network still allows them, the others are queued again. The network and
    /// those job changes are stored in one transaction; if it fails, nothing changes in memory.
    async fn replace_network(&self, st: &mut State, spec: NetworkSpec, prefix: &str, replace: &str) -> Result<(), ApiError> {
        let net = Network::build(spec).map_err(|e| ApiError::Invalid {
            field: e.field.strip_prefix(prefix).map_or(e.field.clone(), |rest| format!("{replace}{rest}")),
            reason: e.reason,
        })?;
        let net = Arc::new(net);
        let mut next = State { net: net.clone(), sched: Scheduler::new(net.clone(), self.policy, self.weights), active: BTreeMap::new() };
        for (id, a) in &st.active {
            // Names are stable across the change but indexes may not be, so jobs are recompiled.
            let req = JobReq::compile(&a.job.spec, &net);
            next.active.insert(id.clone(), Active { job: a.job.clone(), req, submitted_ms: a.submitted_ms });
        }
        let changed = self.retake_slots(&mut next);
        let docs: Vec<Job> = changed.iter().filter_map(|id| next.active.get(id).map(|a| a.job.clone())).collect();
        let jobs: Vec<(&str, &str, &Job)> = docs.iter().map(|j| (j.id.as_str(), j.state.as_str(), j)).collect();
        save_spec(&self.store, &net.spec, &jobs, self.clock.now_ms()).await?;
        *st = next;
        self.offer_queue(st).await
    }

    /// Makes every placed job take back its slot on the current scheduler (oldest first),
    /// resolving its cluster and pool by name. A job whose slot is gone, or whose constraints no
    /// longer allow it, goes back to the queue. Returns the ids whose documents changed; the
    /// caller stores them. No await: memory is consistent when this returns.
    fn retake_slots(&self, st: &mut State) -> Vec<String> {
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
                _ => {
                    a.job.state = JobState::Queued;
                    a.job.state_reason = Some("its slot is no longer in the network or no longer allowed; queued again".into());
                    a.job.placement = None;
                    a.job.updated_at = rfc3339(now);
                    changed.push(id);
                }
            }
        }
        changed
    }

    // ---- jobs ----

    /// Submits a job. With an idempotency key, a second submission returns the first job.
    pub async fn submit(&self, tenant: String, name: Option<String>, spec: JobSpec, key: Option<String>) -> Result<(Job, bool), ApiError> {
        compute::network::validate_id("tenant".into(), &tenant)?;
        if let Some(k) = &key
            && (k.is_empty() || k.len() > 200)
        {
            return Err(ApiError::Invalid { field: "idempotency-key".into(), reason: "must be 1-200 characters".into() });
        }
        if name.as_ref().is_some_and(|n| n.len() > 200) {
            return Err(ApiError::Invalid { field: "name".into(), reason: "at most 200 characters".into() });
        }
        let mut st = self.state.lock().await;
        let spec = spec.normalise(&st.net)?;
        let req = JobReq::compile(&spec, &st.net);
        let never = st.sched.never_reasons(&req);
        if !never.is_empty() {
            return Err(ApiError::Unplaceable { reasons: never });
        }
        let now = self.clock.now_ms();
        let queued = st.active.values().filter(|a| a.job.placement.is_none()).count();
        let decision = st.sched.place(&req, now as f64 / 1000.0, 0.0);
        if matches!(decision, Decision::Wait) && queued >= MAX_QUEUED_JOBS {
            return Err(ApiError::Busy(format!("the queue holds {MAX_QUEUED_JOBS} jobs, its limit; retry later")));
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
        };
        let allocation = match decision {
            Decision::Placed { allocation, explanation } => {
                job.state = JobState::Placed;
                job.state_reason = Some("waiting for an executor".into());
                job.placement = Some(self.placement(&st, allocation, *explanation, now));
                Some(allocation)
            }
            Decision::Wait => None,
            Decision::Never(reasons) => return Err(ApiError::Unplaceable { reasons }),
        };
        // From here to the end, the scheduler has taken `allocation`: every path below either
        // records the job as active or gives the allocation back. The handler runs this in its
        // own task, so a client that hangs up cannot stop it half-way.
        let row =
            JobRow { id: id.clone(), tenant, idempotency_key: key, state: job.state.as_str().into(), submitted_ms: now, doc: job.clone() };
        match self.store.insert_job(&row).await {
            Ok(Ok(())) => {
                st.active.insert(id, Active { job: job.clone(), req, submitted_ms: now });
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

    pub async fn job(&self, id: &str) -> Result<Job, ApiError> {
        self.store.get_job::<Job>(id).await?.map(|r| r.doc).ok_or_else(|| ApiError::NotFound { what: "job", id: id.into() })
    }

    pub async fn jobs(
        &self,
        tenant: Option<String>,
        state: Option<String>,
        after: Option<String>,
        limit: Option<u32>,
    ) -> Result<Vec<Job>, ApiError> {
        if let Some(s) = &state
            && JobState::parse(s).is_none()
        {
            return Err(ApiError::Invalid { field: "state".into(), reason: format!("{s:?} is not one of queued, placed, cancelled") });
        }
        let limit = limit.unwrap_or(100);
        if limit == 0 || limit > MAX_PAGE {
            return Err(ApiError::Invalid { field: "limit".into(), reason: format!("must be 1..={MAX_PAGE}") });
        }
        let rows: Vec<JobRow<Job>> = self.store.list_jobs(&JobFilter { tenant, state, after, limit }).await?;
        Ok(rows.into_iter().map(|r| r.doc).collect())
    }

    /// Cancels a queued or placed job, frees its resources and offers the queue again.
    pub async fn cancel(&self, id: &str) -> Result<Job, ApiError> {
        let mut st = self.state.lock().await;
        let mut job = match st.active.get(id) {
            Some(a) => a.job.clone(),
            // Not active: already cancelled, or unknown.
            None => return self.job(id).await,
        };
        let now = self.clock.now_ms();
        job.state = JobState::Cancelled;
        job.state_reason = Some("cancelled by request".into());
        job.updated_at = rfc3339(now);
        self.store.update_jobs(&[(id, job.state.as_str(), &job)]).await?;
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
    async fn offer_queue(&self, st: &mut State) -> Result<(), ApiError> {
        let mut waiting: Vec<(i32, i64, String)> = st
            .active
            .iter()
            .filter(|(_, a)| a.job.placement.is_none())
            .map(|(id, a)| (-a.job.spec.priority, a.submitted_ms, id.clone()))
            .collect();
        waiting.sort();
        let now = self.clock.now_ms();
        let mut placed: Vec<(String, Allocation, Job)> = Vec::new();
        for (_, submitted, id) in waiting {
            let Some(a) = st.active.get(&id) else { continue };
            let req = a.req.clone();
            if let Decision::Placed { allocation, explanation } =
                st.sched.place(&req, now as f64 / 1000.0, (now - submitted) as f64 / 1000.0)
            {
                let mut job = a.job.clone();
                job.state = JobState::Placed;
                job.state_reason = Some("waiting for an executor".into());
                job.placement = Some(self.placement(st, allocation, *explanation, now));
                job.updated_at = rfc3339(now);
                placed.push((id, allocation, job));
            }
        }
        let updates: Vec<(&str, &str, &Job)> = placed.iter().map(|(id, _, j)| (id.as_str(), j.state.as_str(), j)).collect();
        if let Err(e) = self.store.update_jobs(&updates).await {
            for (_, allocation, _) in &placed {
                st.sched.release(*allocation);
            }
            return Err(e.into());
        }
        for (id, _, job) in placed {
            if let Some(a) = st.active.get_mut(&id) {
                a.job = job;
            }
        }
        Ok(())
    }

    /// Why a job is where it is: its placement with the explanation, or why it waits.
    pub async fn placement_of(&self, id: &str) -> Result<PlacementView, ApiError> {
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

fn apply_links(spec: &mut NetworkSpec, hub: &str, links: &[HubLink]) -> Result<(), ApiError> {
    for (i, l) in links.iter().enumerate() {
        if l.to == hub {
            return Err(ApiError::Invalid { field: format!("links[{i}].to"), reason: "a hub needs no link to itself".into() });
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

async fn save_spec(store: &Store, spec: &NetworkSpec, jobs: &[(&str, &str, &Job)], now_ms: i64) -> Result<(), ApiError> {
    let hubs: Vec<(String, &HubSpec)> = spec.hubs.iter().map(|h| (h.id.clone(), h)).collect();
    let clusters: Vec<(String, &ClusterSpec)> = spec.clusters.iter().map(|c| (c.id.clone(), c)).collect();
    let rest = NetworkRest { gpu_models: spec.gpu_models.clone(), links: spec.links.clone() };
    store.save_network(&hubs, &clusters, &rest, jobs, now_ms).await?;
    Ok(())
}

async fn load_spec(store: &Store) -> Result<NetworkSpec, ApiError> {
    let (hubs, clusters, rest): (Vec<HubSpec>, Vec<ClusterSpec>, NetworkRest) =
        store.load_network().await?.ok_or_else(|| ApiError::NotFound { what: "network", id: "stored".into() })?;
    Ok(NetworkSpec { schema: 1, gpu_models: rest.gpu_models, hubs, clusters, links: rest.links })
}
