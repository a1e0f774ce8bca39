//! Evaluation runs asked of the server (`/api/v1/eval/runs`, the console): each run is a
//! stored record that one worker takes from the queue, in order, and asks of the model through
//! an [`Asker`] (the binary's in-process caller of the gateway's admission pipeline, under the
//! evaluation tenant). A run that was running when the server stopped is run again at start;
//! its answers come back from the request cache, so nothing is asked twice.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::pipeline::{Job, Phase};
use crate::prompt::{Endpoint, Method};
use crate::run::{CallError, Counts, Model, Options};
use crate::suite::{Loaded, MAX_SHOTS, Selection, Suite};
use crate::{EvalError, Report};

/// Asks a model through the gateway as the evaluation tenant; `run` names the run in the ledger.
pub trait Asker: Send + Sync {
    /// The name and version a request for `model` is served by now (`chat` → `chat@2`), for
    /// cache keys: a new version is asked afresh.
    fn resolve(&self, model: &str) -> String;

    fn ask(
        &self,
        run: &str,
        deployment: Option<&str>,
        endpoint: Endpoint,
        body: Value,
    ) -> Pin<Box<dyn Future<Output = Result<Value, CallError>> + Send + 'static>>;
}

struct Via<'a> {
    asker: &'a dyn Asker,
    run: &'a str,
    /// The evaluated model's pinned deployment; the judge is never pinned.
    deployment: Option<&'a str>,
    judge: Option<&'a str>,
}

impl Model for Via<'_> {
    fn call(&self, endpoint: Endpoint, body: &Value) -> impl Future<Output = Result<Value, CallError>> + Send {
        let pin = self.deployment.filter(|_| body["model"].as_str() != self.judge);
        self.asker.ask(self.run, pin, endpoint, body.clone())
    }
}

/// Longest model or judge name, subject name, and most subjects a run may name.
pub const MAX_NAME_BYTES: usize = 256;
pub const MAX_SUBJECTS: usize = 100;
/// Most requests one server run keeps in flight.
pub const MAX_SERVER_CONCURRENCY: usize = 32;
/// Most runs a listing returns.
pub const MAX_LIST: i64 = 500;
/// Most items one server run may ask (its samples are stored in the database): the whole of
/// CMMLU fits; larger runs go to the compute network with `aiplus eval submit`.
pub const MAX_SERVER_ITEMS: usize = 20_000;

/// What a run asks, as the API takes it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRun {
    pub model: String,
    pub suite: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
    /// At most this many items per subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shots: Option<usize>,
    /// None: log-probabilities if the model gives them, else generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<Method>,
    #[serde(default)]
    pub endpoint: Endpoint,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    /// Only this deployment of the model answers (to compare two deployments of one model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// Ask everything again instead of reusing answers of earlier runs (canaries must see the
    /// model as it answers now). A resumed run still reuses its own answers.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fresh: bool,
}

fn name_ok(field: &str, v: &str) -> Result<(), EvalError> {
    if v.is_empty() || v.len() > MAX_NAME_BYTES || v.chars().any(char::is_control) {
        return Err(EvalError::invalid(field, format!("1 to {MAX_NAME_BYTES} bytes, no control characters")));
    }
    Ok(())
}

impl NewRun {
    pub fn validate(&self) -> Result<(), EvalError> {
        name_ok("model", &self.model)?;
        // A suite is a directory name under the suites directory, never a path.
        if self.suite.is_empty()
            || self.suite.len() > 64
            || !self.suite.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            || self.suite.starts_with('.')
        {
            return Err(EvalError::invalid("suite", "a suite's name: letters, digits, '.', '_' and '-', at most 64"));
        }
        if self.subjects.len() > MAX_SUBJECTS {
            return Err(EvalError::invalid("subjects", format!("at most {MAX_SUBJECTS}")));
        }
        for s in &self.subjects {
            name_ok("subjects", s)?;
        }
        if self.limit.is_some_and(|l| l == 0 || l > crate::suite::MAX_ITEMS) {
            return Err(EvalError::invalid("limit", format!("1 to {}", crate::suite::MAX_ITEMS)));
        }
        if self.shots.is_some_and(|s| s > MAX_SHOTS) {
            return Err(EvalError::invalid("shots", format!("at most {MAX_SHOTS}")));
        }
        if let Some(j) = &self.judge {
            name_ok("judge", j)?;
        }
        if let Some(d) = &self.deployment
            && (d.is_empty() || d.len() > 128 || !d.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(EvalError::invalid("deployment", "a deployment id: 1 to 128 printable ASCII characters"));
        }
        if self.concurrency.is_some_and(|c| c == 0 || c > MAX_SERVER_CONCURRENCY) {
            return Err(EvalError::invalid("concurrency", format!("1 to {MAX_SERVER_CONCURRENCY}")));
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
        }
    }
}

/// A run as stored and shown.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    /// The tenant its requests are made and billed under.
    pub tenant: String,
    /// Who asked for it.
    pub actor: String,
    pub request: NewRun,
    pub state: RunState,
    pub created_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<i64>,
    /// Requests done and to do in the current phase, while it runs.
    #[serde(default)]
    pub done: u64,
    #[serde(default)]
    pub total: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<Report>,
    /// The SHA-256 of the per-sample log (JSONL), stored as a blob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples_sha256: Option<String>,
}

/// A suite the server can run.
#[derive(Clone, Debug, Serialize)]
pub struct SuiteInfo {
    pub name: String,
    pub title: Option<String>,
    pub licence: Option<String>,
    /// Its data is there (CMMLU and BBQ are not bundled).
    pub data_present: bool,
}

pub struct Service {
    store: store::Store,
    asker: Arc<dyn Asker>,
    suites_dir: PathBuf,
    /// Where the runs' request caches are kept.
    work_dir: PathBuf,
    tenant: String,
    clock: Arc<dyn vocab::Clock>,
    ids: Arc<dyn Fn() -> String + Send + Sync>,
    live: Mutex<HashMap<String, (u64, u64)>>,
    wake: tokio::sync::Notify,
}

/// How often the worker looks for work it was not woken for (another instance's submissions).
const POLL_EVERY: Duration = Duration::from_secs(2);

impl Service {
    pub fn new(
        store: store::Store,
        asker: Arc<dyn Asker>,
        suites_dir: PathBuf,
        work_dir: PathBuf,
        tenant: String,
        clock: Arc<dyn vocab::Clock>,
        ids: Arc<dyn Fn() -> String + Send + Sync>,
    ) -> Service {
        Service {
            store,
            asker,
            suites_dir,
            work_dir,
            tenant,
            clock,
            ids,
            live: Mutex::new(HashMap::new()),
            wake: tokio::sync::Notify::new(),
        }
    }

    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    fn suite(&self, name: &str) -> Result<Suite, EvalError> {
        let s = Suite::open(&self.suites_dir.join(name)).map_err(|e| EvalError::invalid("suite", format!("{name:?}: {e}")))?;
        // Runs name a suite by its directory; a manifest that names it otherwise would list one
        // suite and run another.
        if s.manifest.name != name {
            return Err(EvalError::invalid("suite", format!("{name:?}: its suite.toml names it {:?}", s.manifest.name)));
        }
        Ok(s)
    }

    /// Reads a suite's selection off the async threads: a suite's files may be large.
    async fn load(&self, req: &NewRun) -> Result<(Suite, Loaded), EvalError> {
        let suite = self.suite(&req.suite)?;
        let selection = Selection { groups: req.subjects.clone(), limit: req.limit };
        let loaded = tokio::task::spawn_blocking(move || suite.load(&selection).map(|l| (suite, l)))
            .await
            .map_err(|e| EvalError::invalid("suite", format!("reading it failed: {e}")))??;
        if loaded.1.items.len() > MAX_SERVER_ITEMS {
            return Err(EvalError::invalid(
                "limit",
                format!("a server run takes at most {MAX_SERVER_ITEMS} items; name subjects or a limit, or use `aiplus eval submit`"),
            ));
        }
        Ok(loaded)
    }

    /// The suites of the suites directory.
    pub fn suites(&self) -> Vec<SuiteInfo> {
        let Ok(entries) = std::fs::read_dir(&self.suites_dir) else { return vec![] };
        let mut out: Vec<SuiteInfo> = entries
            .filter_map(|e| Suite::open(&e.ok()?.path()).ok())
            .map(|s| SuiteInfo {
                data_present: s.data_dir().exists(),
                name: s.manifest.name,
                title: s.manifest.title,
                licence: s.manifest.licence,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Queues a run after checking that its suite exists and has the subjects it names.
    pub async fn submit(&self, req: NewRun, actor: &str) -> Result<RunRecord, EvalError> {
        req.validate()?;
        self.load(&req).await?;
        let rec = RunRecord {
            id: (self.ids)(),
            tenant: self.tenant.clone(),
            actor: actor.to_string(),
            request: req,
            state: RunState::Queued,
            created_ms: self.clock.now_ms(),
            started_ms: None,
            finished_ms: None,
            done: 0,
            total: 0,
            error: None,
            report: None,
            samples_sha256: None,
        };
        self.save(&rec).await?;
        self.wake.notify_one();
        Ok(rec)
    }

    async fn save(&self, rec: &RunRecord) -> Result<(), EvalError> {
        let doc = serde_json::to_string(rec).map_err(|e| EvalError::Corrupt { id: rec.id.clone(), reason: e.to_string() })?;
        Ok(self.store.put_eval_run(&rec.id, rec.state.as_str(), &doc).await?)
    }

    fn read(&self, doc: &str) -> Result<RunRecord, EvalError> {
        let mut rec: RunRecord =
            serde_json::from_str(doc).map_err(|e| EvalError::Corrupt { id: "eval run".into(), reason: e.to_string() })?;
        if let Some((done, total)) = self.live.lock().ok().and_then(|l| l.get(&rec.id).copied()) {
            (rec.done, rec.total) = (done, total);
        }
        Ok(rec)
    }

    pub async fn get(&self, id: &str) -> Result<Option<RunRecord>, EvalError> {
        self.store.eval_run(id).await?.map(|d| self.read(&d)).transpose()
    }

    /// The newest runs; a record that no longer reads is left out, not an error for the rest.
    pub async fn list(&self, limit: i64) -> Result<Vec<RunRecord>, EvalError> {
        Ok(self.store.eval_runs(limit.clamp(1, MAX_LIST)).await?.iter().filter_map(|d| self.read(d).ok()).collect())
    }

    /// A finished run's per-sample log (JSONL).
    pub async fn samples(&self, id: &str) -> Result<Option<Vec<u8>>, EvalError> {
        let Some(sha) = self.get(id).await?.and_then(|r| r.samples_sha256) else { return Ok(None) };
        Ok(self.store.blob(&sha).await?)
    }

    /// Runs queued runs one after another until `stop`; first the ones a stopped server left
    /// running.
    pub async fn work(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            let next = match self.next().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "evaluation: reading the queue failed");
                    None
                }
            };
            if let Some(rec) = next {
                // A run that could not even be marked running (the store is down) is not
                // retried at once: the loop waits like an idle one.
                let progressed = tokio::select! {
                    p = self.execute(rec) => p,
                    _ = stop.changed() => return,
                };
                if progressed {
                    continue;
                }
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(POLL_EVERY) => {}
                _ = stop.changed() => return,
            }
        }
    }

    async fn next(&self) -> Result<Option<RunRecord>, EvalError> {
        for state in [RunState::Running, RunState::Queued] {
            for (id, doc) in self.store.eval_runs_in(state.as_str()).await? {
                match self.read(&doc) {
                    Ok(rec) => return Ok(Some(rec)),
                    // A record that no longer reads must not stop the queue behind it.
                    Err(e) => {
                        tracing::warn!(run = %id, error = %e, "evaluation: a stored run does not read; marking it failed");
                        self.store.put_eval_run(&id, RunState::Failed.as_str(), &doc).await?;
                    }
                }
            }
        }
        Ok(None)
    }

    /// Runs one run to its end; false when it could not start.
    async fn execute(&self, mut rec: RunRecord) -> bool {
        rec.state = RunState::Running;
        rec.started_ms = Some(self.clock.now_ms());
        if let Err(e) = self.save(&rec).await {
            tracing::warn!(run = %rec.id, error = %e, "evaluation: could not mark the run running");
            return false;
        }
        let result = self.evaluate(&rec).await;
        self.live.lock().ok().map(|mut l| l.remove(&rec.id));
        rec.finished_ms = Some(self.clock.now_ms());
        match result {
            Ok((mut report, samples)) => {
                report.duration_ms = rec.finished_ms.zip(rec.started_ms).map_or(0, |(f, s)| (f - s).max(0) as u64);
                rec.state = if report.errors > 0 { RunState::Failed } else { RunState::Succeeded };
                if report.errors > 0 {
                    rec.error = Some(format!("{} of {} items got no answer", report.errors, report.items));
                }
                (rec.done, rec.total) = (report.items, report.items);
                rec.samples_sha256 = Some(crate::profile::digest(&samples));
                if let Err(e) = self.store.put_blob(rec.samples_sha256.as_deref().unwrap_or_default(), &samples).await {
                    rec.state = RunState::Failed;
                    rec.error = Some(format!("storing the samples: {e}"));
                }
                rec.report = Some(report);
            }
            Err(e) => {
                rec.state = RunState::Failed;
                rec.error = Some(e.to_string());
            }
        }
        if let Err(e) = self.save(&rec).await {
            // The run stays `running` and is run again (from its cache) when the store is back.
            tracing::warn!(run = %rec.id, error = %e, "evaluation: could not store the run's end");
            return false;
        }
        true
    }

    /// The cache of a (model, suite): a run of the same model on the same suite asks only what
    /// an earlier run did not. A fresh run has a cache of its own.
    fn cache_path(&self, run: &str, req: &NewRun) -> PathBuf {
        let scope = if req.fresh { format!("{}\n{run}", req.suite) } else { req.suite.clone() };
        let model = crate::cache::pinned(&self.asker.resolve(&req.model), req.deployment.as_deref());
        let key = crate::cache::key(&model, req.endpoint, &Value::String(scope));
        self.work_dir.join(format!("{}.jsonl", &key[..32]))
    }

    async fn evaluate(&self, rec: &RunRecord) -> Result<(Report, Vec<u8>), EvalError> {
        let req = &rec.request;
        let (suite, loaded) = self.load(req).await?;
        std::fs::create_dir_all(&self.work_dir)
            .map_err(|e| EvalError::Cache { path: self.work_dir.display().to_string(), reason: e.to_string() })?;
        let cache = crate::cache::FileCache::open(&self.cache_path(&rec.id, req))?;
        let cache_model = crate::cache::pinned(&self.asker.resolve(&req.model), req.deployment.as_deref());
        let judge_cache = req.judge.as_deref().map(|j| self.asker.resolve(j));
        let job = Job {
            suite: &suite,
            loaded: &loaded,
            model: &req.model,
            cache_model: &cache_model,
            endpoint: req.endpoint,
            method: req.method,
            shots: req.shots.unwrap_or(suite.manifest.shots),
            judge: req.judge.as_deref(),
            judge_cache: judge_cache.as_deref(),
        };
        let opts = Options { concurrency: req.concurrency.unwrap_or(4), ..Options::default() };
        let tick = |_: Phase, done: u64, total: u64, _: &Counts| {
            if let Ok(mut l) = self.live.lock() {
                l.insert(rec.id.clone(), (done, total));
            }
        };
        let model = Via { asker: self.asker.as_ref(), run: &rec.id, deployment: req.deployment.as_deref(), judge: req.judge.as_deref() };
        let (report, samples) = crate::pipeline::evaluate(&model, &cache, &job, &opts, &Counts::default(), &tick).await;
        cache.sync()?;
        Ok((report, jsonl(&samples)))
    }
}

fn jsonl(samples: &[crate::report::Sample]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in samples {
        if let Ok(line) = serde_json::to_vec(s) {
            out.extend_from_slice(&line);
            out.push(b'\n');
        }
    }
    out
}

/// One cell of the leaderboard: a model's newest finished figure on a suite.
#[derive(Clone, Debug, Serialize)]
pub struct Cell {
    pub run: String,
    /// Accuracy, or the refusal rate of a refusal suite.
    pub value: f64,
    pub stderr: f64,
    pub n: u64,
    pub finished_ms: i64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Leaderboard {
    pub suites: Vec<String>,
    /// Models, best first by their mean over the suites they have.
    pub rows: Vec<(String, Vec<Option<Cell>>)>,
}

/// The figure a report is ranked by: accuracy, else the refusal rate of must-refuse prompts,
/// else the share judged safe.
pub fn headline(r: &Report) -> Option<(f64, f64, u64)> {
    if let (Some(a), Some(e)) = (r.accuracy, r.stderr) {
        return Some((a, e, r.items - r.errors));
    }
    r.refused.or(r.safe).map(|x| (x.value, x.stderr, x.n))
}

/// Models × suites from finished runs (each cell the newest whole-suite run; runs limited to
/// some subjects or items are left out, since they are not comparable).
pub fn leaderboard(runs: &[RunRecord]) -> Leaderboard {
    let mut cells: std::collections::BTreeMap<(String, String), Cell> = Default::default();
    for r in runs.iter().filter(|r| r.state == RunState::Succeeded && r.request.subjects.is_empty() && r.request.limit.is_none()) {
        let (Some(report), Some(finished_ms)) = (&r.report, r.finished_ms) else { continue };
        let Some((value, stderr, n)) = headline(report) else { continue };
        let key = (r.request.model.clone(), r.request.suite.clone());
        if cells.get(&key).is_none_or(|c| c.finished_ms < finished_ms) {
            cells.insert(key, Cell { run: r.id.clone(), value, stderr, n, finished_ms });
        }
    }
    let suites: Vec<String> = cells.keys().map(|(_, s)| s.clone()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let models: Vec<String> = cells.keys().map(|(m, _)| m.clone()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let mut rows: Vec<(String, Vec<Option<Cell>>)> =
        models.into_iter().map(|m| (m.clone(), suites.iter().map(|s| cells.get(&(m.clone(), s.clone())).cloned()).collect())).collect();
    let mean = |cells: &[Option<Cell>]| {
        let v: Vec<f64> = cells.iter().flatten().map(|c| c.value).collect();
        if v.is_empty() { 0.0 } else { v.iter().sum::<f64>() / v.len() as f64 }
    };
    rows.sort_by(|a, b| mean(&b.1).total_cmp(&mean(&a.1)).then_with(|| a.0.cmp(&b.0)));
    Leaderboard { suites, rows }
}

/// Where a service keeps its caches under a data directory.
pub fn work_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("eval")
}
