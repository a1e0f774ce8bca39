//! Builds the data exchange from `[data]`: its object store (the data dir, or S3) and limits.

use std::sync::Arc;

use anyhow::Context as _;
use std::path::{Path, PathBuf};

use data::exchange::{BoxFut, Embed, Exchange, JobEnd, Limits, SealedJob, SealedJobs, StorePlace, SubmitError};
use jobs::JobsError;
use jobs::compute_service::JobState;
use object_store::ObjectStore;

use crate::config::DataConfig;

/// The exchange's object store: `<data_dir>/objects`, or the bucket and prefix of an
/// `s3://bucket/prefix` URL with the `AWS_*` settings from the environment.
pub fn object_store(cfg: &DataConfig, data_dir: &std::path::Path) -> anyhow::Result<Arc<dyn ObjectStore>> {
    if cfg.objects.is_empty() {
        let dir = data_dir.join("objects");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let local = object_store::local::LocalFileSystem::new_with_prefix(&dir)?;
        return Ok(Arc::new(local));
    }
    let rest = cfg.objects.strip_prefix("s3://").context("data.objects: write s3://bucket[/prefix], or leave it empty for the data dir")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        anyhow::bail!("data.objects: {:?} names no bucket", cfg.objects);
    }
    let s3 = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket).build().context("data.objects: S3")?;
    let prefix = prefix.trim_matches('/');
    Ok(if prefix.is_empty() { Arc::new(s3) } else { Arc::new(object_store::prefix::PrefixStore::new(s3, prefix)) })
}

/// What the exchange is built from besides its settings.
pub struct Parts<'a> {
    pub data_dir: &'a Path,
    pub store: store::Store,
    pub log: Arc<tlog::Log>,
    pub clock: Arc<dyn vocab::Clock>,
    pub network: &'a compute::Network,
    /// The compute network, when this instance runs it: compute-to-data runs need it.
    pub compute: Option<Arc<jobs::ComputeService>>,
    /// The gateway's embedded model, which embeds text rows for valuation.
    pub embedded: Option<Arc<gateway::embeddings::Embedded>>,
}

pub fn open(cfg: &DataConfig, p: Parts<'_>) -> anyhow::Result<Arc<Exchange>> {
    let objects = object_store(cfg, p.data_dir)?;
    let limits =
        Limits { chunk_bytes: cfg.chunk_mib << 20, max_tenant_bytes: cfg.max_tenant_gib << 30, fee_bps: cfg.fee_bps, ..Limits::default() };
    let place = match cfg.cluster.as_str() {
        "" => None,
        id => {
            let ix = p.network.cluster_ix(id).with_context(|| format!("data.cluster: no cluster {id:?} in the network"))?;
            let c = &p.network.clusters[ix];
            Some(StorePlace { hub: p.network.spec.hubs[c.hub].id.clone(), province: c.province.clone(), cluster: Some(id.to_string()) })
        }
    };
    let ids = Arc::new(|p: &str| format!("{p}_{}", uuid::Uuid::now_v7().simple()));
    let mut exchange = Exchange::new(p.store, objects, p.clock, ids, limits, place).with_registry(p.log, cfg.notice_s * 1000);
    if let Some(model) = p.embedded {
        exchange = exchange.with_embedder(Arc::new(EmbeddedText(model)));
    }
    if let Some(svc) = p.compute {
        let jobs = ComputeJobs { svc, jobs_root: p.data_dir.join("jobs") };
        exchange = exchange.with_compute(Arc::new(jobs), sealed_root(p.data_dir)?);
    }
    Ok(Arc::new(exchange))
}

/// Where compute-to-data runs are staged, created, as a canonical path: the local executor
/// binds `<root>/<run>/data` and `<root>/<run>/out` into the run's sandbox by it.
pub fn sealed_root(data_dir: &Path) -> anyhow::Result<PathBuf> {
    let dir = data_dir.join("c2d");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    dir.canonicalize().with_context(|| format!("{}", dir.display()))
}

/// Carries unfinished compute-to-data runs on every two seconds until `stop`, after removing
/// the staged copies a crash left behind.
pub fn spawn_driver(x: Arc<Exchange>, mut stop: tokio::sync::watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        match x.sweep_staging().await {
            Ok(0) => {}
            Ok(n) => tracing::info!("removed {n} staged copies of ended compute-to-data runs"),
            Err(e) => tracing::warn!("compute-to-data staging: {e}"),
        }
        loop {
            if let Err(e) = x.drive_runs().await {
                tracing::warn!("compute-to-data runs: {e}");
            }
            tokio::select! {
                _ = tokio::time::sleep(DRIVE_EVERY) => {}
                _ = stop.changed() => return,
            }
        }
    })
}

const DRIVE_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// The embedded model, as the exchange's valuations of text rows see it.
struct EmbeddedText(Arc<gateway::embeddings::Embedded>);

impl Embed for EmbeddedText {
    fn model(&self) -> String {
        self.0.name.clone()
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        self.0.loaded()?.embed(texts).map_err(|e| e.to_string())
    }
}

/// The job service, as the exchange's compute-to-data runs see it; `jobs_root` is where the
/// local executor keeps its attempts.
struct ComputeJobs {
    svc: Arc<jobs::ComputeService>,
    jobs_root: PathBuf,
}

impl SealedJobs for ComputeJobs {
    fn submit(&self, j: SealedJob) -> BoxFut<'_, Result<String, SubmitError>> {
        Box::pin(async move {
            let mut regions = Vec::new();
            for r in &j.regions {
                regions.push(compute::Region::parse(r).map_err(SubmitError::Refused)?);
            }
            let spec = compute::JobSpec {
                kind: compute::JobKind::BatchInference,
                gpus: 0,
                gpu_milli: 0,
                gpu_models: Vec::new(),
                cpu_milli: j.cpu_milli,
                memory_mib: j.memory_mib,
                duration_s: j.duration_s,
                dataset: j.data_cluster.map(|cluster| compute::DatasetRef { cluster, size_gb: j.size_gb }),
                allowed_regions: regions,
                origin_hub: None,
                priority: 0,
                command: j.command,
                env: j.env,
                on_lost: compute::LostPolicy::default(),
                // Once: a run's job is never run a second time over the same data.
                max_attempts: 1,
                network: compute::NetworkAccess::None,
                time_limit_s: None,
                sealed: Some(j.run.clone()),
                deadline_s: None,
                action_area: None,
            };
            let by = jobs::Submitter::data_exchange(j.principal);
            let name = Some(format!("compute-to-data {}", j.run));
            match self.svc.submit_as(by, j.buyer, name, spec, Some(format!("data-run:{}", j.run))).await {
                // The key is in the buyer's own space: a job of its own under it is not the run's.
                Ok((job, _)) if job.spec.sealed.as_deref() == Some(j.run.as_str()) => Ok(job.id),
                Ok((job, _)) => Err(SubmitError::Refused(format!("the buyer's job {} holds this run's job key", job.id))),
                // An unplaceable job's message is the sentence that names its binding constraint
                // (`compute::scheduler::never`), which is what the run's record should say.
                Err(e @ (JobsError::Invalid { .. } | JobsError::Unplaceable { .. } | JobsError::NotFound { .. })) => {
                    Err(SubmitError::Refused(e.to_string()))
                }
                Err(e) => Err(SubmitError::Retry(e.to_string())),
            }
        })
    }

    fn end<'a>(&'a self, job: &'a str) -> BoxFut<'a, Result<Option<JobEnd>, String>> {
        Box::pin(async move {
            let j = self.svc.job(job).await.map_err(|e| e.to_string())?;
            // Whether it ran, and how it ended, but never its exit status or its engine's words,
            // which would tell the buyer something of the data.
            let ran = j.exit_code.is_some() || j.run.as_ref().is_some_and(|r| r.started_ms.is_some());
            Ok(match j.state {
                JobState::Succeeded => Some(JobEnd::Succeeded),
                JobState::Failed | JobState::Cancelled | JobState::Lost => {
                    let why = match ran {
                        true => format!("job {job} {}", j.state.as_str()),
                        false => format!("job {job} {} before it ran: {}", j.state.as_str(), j.state_reason.unwrap_or_default()),
                    };
                    Some(JobEnd::Failed { ran, why })
                }
                _ => None,
            })
        })
    }

    fn forget<'a>(&'a self, job: &'a str) -> BoxFut<'a, ()> {
        Box::pin(async move {
            // `<root>/<job>/<attempt>/work`: the only place a sealed job could write a copy.
            let Ok(mut attempts) = tokio::fs::read_dir(self.jobs_root.join(job)).await else { return };
            while let Ok(Some(a)) = attempts.next_entry().await {
                if let Err(e) = tokio::fs::remove_dir_all(a.path().join("work")).await
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    tracing::warn!("removing the work directory of job {job}: {e}");
                }
            }
        })
    }
}
