//! Compute-to-data (可用不可见): a buyer under a `compute` contract runs a job over a dataset
//! version it may use but never read.
//!
//! A run goes staging → running → succeeded | refused | failed:
//! - **staging**: the version's files are copied from the object store to a directory on the
//!   machine that runs the job (`<root>/<run>/data`), which its sandbox shows read-only at
//!   `/data`; the job writes to `/out`. The job is submitted with the run's id as its
//!   idempotency key, placed where the data lives and only inside the dataset's residency.
//! - **running → …**: when the job ends, its declared outputs pass the contract's output check
//!   (a size cap and, unless the seller turned it off, no record of the dataset repeated
//!   verbatim) and are kept for the buyer; anything else in `/out`, the job's log, its exit
//!   status and its work directory never leave. The move to the end writes the run's ledger
//!   entry, priced by the contract, in the same transaction, once, and only if the job ran (a
//!   job the engine refused, or lost before it ran, costs nothing). Then the staged copy and
//!   the job's work directory are removed (a sweep at start removes those a crash left).
//!
//! The output check stops copies, not a determined buyer: a program that encodes the rows
//! (compresses them, say) gets up to the contract's output cap out per run. What it guards is
//! the seller's offer: the cap, and which buyers sign.
//!
//! Every step is a compare-and-set on the run's state, so a restarted server carries an
//! unfinished run on from where it stopped and never submits it twice. Staging is on the
//! machine that runs the compute network, so only the instance that runs it drives runs.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use futures_util::StreamExt as _;
use ledger::{Subject, Unit, UsageEvent};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;

use super::contracts::{Contract, Mode, OutputRules, entry};
use super::{DataError, Exchange, hex, invalid, object_path};

/// Most declared outputs of one run.
const MAX_OUTPUTS: usize = 16;
/// Most arguments and environment variables a run's command may have, and their sizes.
const MAX_ARGS: usize = 256;
const MAX_ARG_BYTES: usize = 4096;
const MAX_ENV: usize = 64;
/// Most unfinished runs one buyer may have.
const MAX_OPEN_RUNS: i64 = 20;
/// Most runs one pass of the driver advances per state.
const DRIVE_BATCH: i64 = 100;
/// Most resources one run may ask for.
const MAX_CPU_MILLI: u32 = 64_000;
const MAX_MEMORY_MIB: u32 = 256 * 1024;
const MAX_DURATION_S: u64 = 7 * 86_400;
/// A line of an output repeats a record only if the record has at least this many bytes, so
/// that a short figure (a count, a mean) is never taken for a copied row.
pub const MIN_RECORD_BYTES: usize = 8;

const OPEN: [&str; 2] = ["staging", "running"];
/// How long a run may stay unstaged or unsubmitted (its store or the queue failing) before it
/// fails, in ms.
pub const MAX_PENDING_MS: i64 = 3_600_000;
/// A move of a run that writes nothing to the ledger.
const NO_ENTRIES: &[store::UsageRow<Value>] = &[];

pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the exchange asks the compute network to run for a run.
#[derive(Clone, Debug, PartialEq)]
pub struct SealedJob {
    /// The run's id: the job's idempotency key and the name of its staged directory.
    pub run: String,
    pub buyer: String,
    pub principal: Option<String>,
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cpu_milli: u32,
    pub memory_mib: u32,
    pub duration_s: u64,
    /// The dataset's residency: the job may run only there.
    pub regions: Vec<String>,
    /// The cluster next to the exchange's object store, and the bytes the job reads there.
    pub data_cluster: Option<String>,
    pub size_gb: f64,
}

/// How a run's job ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobEnd {
    Succeeded,
    /// Failed, cancelled or lost, and why (never its exit status); `ran` when it started at
    /// all, which is what the run is charged for.
    Failed {
        ran: bool,
        why: String,
    },
}

/// Why a job could not be submitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// Never, as asked (no cluster could run it, a field is wrong): the run fails.
    Refused(String),
    /// Not now (the queue is full, the store failed): the driver retries.
    Retry(String),
}

/// The compute network, as the exchange sees it; the binary implements it over the job
/// service, so this crate knows no scheduler.
pub trait SealedJobs: Send + Sync {
    /// Submits a run's job, idempotently per run; answers with the job's id.
    fn submit(&self, job: SealedJob) -> BoxFut<'_, Result<String, SubmitError>>;
    /// How the job ended, or `None` while it has not.
    fn end<'a>(&'a self, job: &'a str) -> BoxFut<'a, Result<Option<JobEnd>, String>>;
    /// Removes what the ended job left on its machine (its work directory, where it may have
    /// copied the data).
    fn forget<'a>(&'a self, job: &'a str) -> BoxFut<'a, ()>;
}

/// A run being advanced in this process; dropped, it frees the run for the next pass.
struct Claim<'a> {
    set: &'a std::sync::Mutex<HashSet<String>>,
    id: String,
}

impl<'a> Claim<'a> {
    fn take(set: &'a std::sync::Mutex<HashSet<String>>, id: &str) -> Option<Self> {
        let mut held = set.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        held.insert(id.to_string()).then(|| Claim { set, id: id.to_string() })
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.set.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&self.id);
    }
}

/// What a buyer asks to run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunIn {
    /// argv: the program and its arguments. The dataset is at `/data`, outputs go to `/out`.
    pub command: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The files of `/out` that should leave, by name.
    pub outputs: Vec<String>,
    #[serde(default = "default_cpu_milli")]
    pub cpu_milli: u32,
    #[serde(default = "default_memory_mib")]
    pub memory_mib: u32,
    /// Estimated run time; the job is stopped at twice this plus an hour.
    #[serde(default = "default_duration_s")]
    pub duration_s: u64,
}

fn default_cpu_milli() -> u32 {
    1000
}
fn default_memory_mib() -> u32 {
    1024
}
fn default_duration_s() -> u64 {
    600
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Staging,
    Running,
    Succeeded,
    /// The job succeeded but its outputs failed the output check: none leave.
    Refused,
    Failed,
}

impl RunState {
    fn as_str(self) -> &'static str {
        match self {
            RunState::Staging => "staging",
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Refused => "refused",
            RunState::Failed => "failed",
        }
    }
}

/// An output that left, kept for the buyer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunOutput {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

/// A run, as both parties see it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Run {
    pub object: String,
    pub id: String,
    pub contract: String,
    pub buyer: String,
    pub seller: String,
    pub dataset: String,
    pub version: String,
    pub state: RunState,
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub outputs: Vec<String>,
    pub cpu_milli: u32,
    pub memory_mib: u32,
    pub duration_s: u64,
    pub principal: Option<String>,
    /// The compute network's job, once submitted.
    pub job: Option<String>,
    /// What the run was charged, and for how much data.
    pub amount_fen: i64,
    pub bytes: u64,
    pub records: u64,
    pub results: Vec<RunOutput>,
    /// Why it was refused or failed.
    pub reason: Option<String>,
    pub created_ms: i64,
    pub ended_ms: Option<i64>,
}

impl RunIn {
    fn check(&self) -> Result<(), DataError> {
        if self.command.is_empty() || self.command.len() > MAX_ARGS || self.command.iter().any(|a| a.len() > MAX_ARG_BYTES) {
            return Err(invalid("command", format!("1 to {MAX_ARGS} arguments of at most {MAX_ARG_BYTES} bytes")));
        }
        if self.env.len() > MAX_ENV {
            return Err(invalid("env", format!("at most {MAX_ENV} variables")));
        }
        for (k, v) in &self.env {
            let name_ok = !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') && !k.starts_with("AIPLUS_");
            if !name_ok || v.len() > MAX_ARG_BYTES || v.contains('\0') {
                return Err(invalid(format!("env.{k}"), "a name of A-Z, 0-9 and _ (not AIPLUS_…) and a value under 4 KiB"));
            }
        }
        if self.outputs.is_empty() || self.outputs.len() > MAX_OUTPUTS {
            return Err(invalid("outputs", format!("1 to {MAX_OUTPUTS} file names")));
        }
        for (i, o) in self.outputs.iter().enumerate() {
            if !is_plain_name(o) {
                return Err(invalid(format!("outputs[{i}]"), format!("{o:?}: 1 to 128 of A-Z a-z 0-9 . _ -, not starting with '.'")));
            }
        }
        if self.outputs.iter().collect::<HashSet<_>>().len() != self.outputs.len() {
            return Err(invalid("outputs", "each name once"));
        }
        if !(1..=MAX_CPU_MILLI).contains(&self.cpu_milli) {
            return Err(invalid("cpu_milli", format!("1 to {MAX_CPU_MILLI}")));
        }
        if !(16..=MAX_MEMORY_MIB).contains(&self.memory_mib) {
            return Err(invalid("memory_mib", format!("16 to {MAX_MEMORY_MIB}")));
        }
        if !(1..=MAX_DURATION_S).contains(&self.duration_s) {
            return Err(invalid("duration_s", format!("1 to {MAX_DURATION_S}")));
        }
        Ok(())
    }
}

/// A file name with no directory part that cannot be hidden or climb out.
fn is_plain_name(s: &str) -> bool {
    (1..=128).contains(&s.len()) && !s.starts_with('.') && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// The directories of one run on this machine.
struct RunDirs {
    run: PathBuf,
}

impl RunDirs {
    fn data(&self) -> PathBuf {
        self.run.join("data")
    }
    fn out(&self) -> PathBuf {
        self.run.join("out")
    }
    fn staged(&self) -> PathBuf {
        self.run.join("staged.json")
    }
}

#[derive(Serialize, Deserialize)]
struct Staged {
    bytes: u64,
    records: u64,
    /// The staged files whose first line is a header (CSV), not a record.
    #[serde(default)]
    headed: Vec<String>,
}

impl Exchange {
    /// Runs on this exchange's runs submit their jobs through `jobs`, staged under `root`.
    pub fn with_compute(mut self, jobs: std::sync::Arc<dyn SealedJobs>, root: PathBuf) -> Self {
        self.compute = Some((jobs, root));
        self
    }

    /// Starts a run under a compute contract. With an idempotency key, a second call answers
    /// with the first run.
    pub async fn start_run(
        &self,
        buyer: &str,
        principal: Option<String>,
        contract: &str,
        key: Option<String>,
        r: RunIn,
    ) -> Result<(Run, bool), DataError> {
        let c = self.contract_in_force(buyer, contract).await?;
        if c.mode != Mode::Compute {
            return Err(invalid("contract", format!("contract {contract} is for {:?}, not compute-to-data", c.mode)));
        }
        if self.compute.is_none() {
            return Err(DataError::Conflict("this server runs no compute network, so it runs no compute-to-data jobs".into()));
        }
        r.check()?;
        if key.as_ref().is_some_and(|k| k.is_empty() || k.len() > 200) {
            return Err(invalid("idempotency-key", "1 to 200 characters"));
        }
        let now = self.clock.now_ms();
        let run = Run {
            object: "data.run".into(),
            id: (self.ids)("drun"),
            contract: c.id.clone(),
            buyer: buyer.to_string(),
            seller: c.seller.clone(),
            dataset: c.dataset.clone(),
            version: c.version.clone(),
            state: RunState::Staging,
            command: r.command,
            env: r.env,
            outputs: r.outputs,
            cpu_milli: r.cpu_milli,
            memory_mib: r.memory_mib,
            duration_s: r.duration_s,
            principal,
            job: None,
            amount_fen: 0,
            bytes: 0,
            records: 0,
            results: Vec::new(),
            reason: None,
            created_ms: now,
            ended_ms: None,
        };
        let row = store::RunRow {
            id: run.id.clone(),
            buyer: buyer.to_string(),
            contract: c.id.clone(),
            idempotency_key: key,
            state: run.state.as_str().into(),
            created_ms: now,
            doc: serde_json::to_string(&run).map_err(store::StoreError::from)?,
        };
        match self.store.insert_run(&row, &OPEN, MAX_OPEN_RUNS).await? {
            store::InsertRun::Inserted => {}
            store::InsertRun::Existing(first) => return Ok((parse_run(&first.doc)?, false)),
            store::InsertRun::TooMany(n) => {
                return Err(DataError::Limit(format!(
                    "this tenant has {n} compute-to-data runs unfinished, its limit; retry when some end"
                )));
            }
        }
        Ok((self.advance(run).await?, true))
    }

    /// A run, for either party of its contract; anyone else finds none.
    pub async fn run(&self, tenant: &str, contract: &str, id: &str) -> Result<Run, DataError> {
        let missing = || DataError::NotFound { what: "run", id: id.to_string() };
        let row = self.store.run(id).await?.filter(|r| r.contract == contract).ok_or_else(missing)?;
        let run = parse_run(&row.doc)?;
        if run.buyer != tenant && run.seller != tenant {
            return Err(missing());
        }
        Ok(seen_by(run, tenant))
    }

    /// A contract's runs, newest first, for either party.
    pub async fn runs(&self, tenant: &str, contract: &str) -> Result<Vec<Run>, DataError> {
        self.contract(tenant, contract).await?;
        let rows = self.store.runs_of_contract(contract, self.limits.max_list).await?;
        rows.iter().map(|r| parse_run(&r.doc).map(|run| seen_by(run, tenant))).collect()
    }

    /// An output of a run that passed the check, for the buyer only.
    pub async fn run_output(&self, buyer: &str, contract: &str, id: &str, name: &str) -> Result<bytes::Bytes, DataError> {
        let run = self.run(buyer, contract, id).await?;
        let missing = || DataError::NotFound { what: "output", id: name.to_string() };
        if run.buyer != buyer || !run.results.iter().any(|o| o.name == name) {
            return Err(missing());
        }
        Ok(self.objects.get(&output_path(&run.buyer, &run.id, name)).await?.bytes().await?)
    }

    /// Carries every unfinished run one step on, as far as it can go now; the server calls
    /// this every few seconds. A run that cannot move is logged and passed over, so that it
    /// holds up no other. Answers how many runs moved.
    pub async fn drive_runs(&self) -> Result<usize, DataError> {
        let mut moved = 0;
        for state in OPEN {
            for row in self.store.runs_in_state(state, DRIVE_BATCH).await? {
                let run = parse_run(&row.doc)?;
                let before = run.state;
                match self.advance(run).await {
                    Ok(after) if after.state != before => moved += 1,
                    Ok(_) => {}
                    Err(e) => tracing::warn!(run = %row.id, "compute-to-data run: {e}"),
                }
            }
        }
        Ok(moved)
    }

    /// Removes the staged copies of runs that have ended (a crash between a run's end and the
    /// removal leaves one) or that the store does not know.
    pub async fn sweep_staging(&self) -> Result<usize, DataError> {
        let Some((_, root)) = &self.compute else { return Ok(0) };
        let mut removed = 0;
        let mut dir = match tokio::fs::read_dir(root).await {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(DataError::Objects(format!("{}: {e}", root.display()))),
        };
        while let Ok(Some(entry)) = dir.next_entry().await {
            let name = entry.file_name().to_string_lossy().into_owned();
            let open = self.store.run(&name).await?.is_some_and(|r| OPEN.contains(&r.state.as_str()));
            if !open {
                remove_dir(&entry.path()).await;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// One step of a run's procedure, as far as it can go without waiting. A run already being
    /// advanced in this process (by a request and the driver at once) is left to that one.
    async fn advance(&self, run: Run) -> Result<Run, DataError> {
        let Some((jobs, root)) = &self.compute else { return Ok(run) };
        let Some(_claim) = Claim::take(&self.advancing, &run.id) else { return Ok(run) };
        let dirs = RunDirs { run: root.join(&run.id) };
        let run = match run.state {
            RunState::Staging => self.submit(run, &dirs, jobs.as_ref()).await?,
            _ => run,
        };
        if run.state != RunState::Running {
            return Ok(run);
        }
        let job = run.job.clone().unwrap_or_default();
        match jobs.end(&job).await {
            Ok(None) => Ok(run),
            Ok(Some(JobEnd::Failed { ran, why })) => self.end_run(run, &dirs, RunState::Failed, Some(why), ran, jobs.as_ref()).await,
            Ok(Some(JobEnd::Succeeded)) => self.finish(run, &dirs, jobs.as_ref()).await,
            Err(why) => {
                tracing::warn!(run = %run.id, "cannot read the state of job {job}: {why}");
                Ok(run)
            }
        }
    }

    /// Stages a run and submits its job; a run that cannot get that far within
    /// [`MAX_PENDING_MS`] fails.
    async fn submit(&self, mut run: Run, dirs: &RunDirs, jobs: &dyn SealedJobs) -> Result<Run, DataError> {
        let overdue = self.clock.now_ms() - run.created_ms > MAX_PENDING_MS;
        let staged = match self.stage(&run, dirs).await {
            Ok(s) => s,
            Err(DataError::Objects(why)) if !overdue => {
                tracing::warn!(run = %run.id, "staging failed, will retry: {why}");
                return Ok(run);
            }
            Err(e) => return self.end_run(run, dirs, RunState::Failed, Some(e.to_string()), false, jobs).await,
        };
        let d = self.store.dataset(&run.seller, &run.dataset).await?;
        let job = SealedJob {
            run: run.id.clone(),
            buyer: run.buyer.clone(),
            principal: run.principal.clone(),
            command: run.command.clone(),
            env: run.env.clone(),
            cpu_milli: run.cpu_milli,
            memory_mib: run.memory_mib,
            duration_s: run.duration_s,
            regions: d.and_then(|d| d.residency).into_iter().collect(),
            data_cluster: self.place.as_ref().and_then(|p| p.cluster.clone()),
            size_gb: staged.bytes as f64 / 1e9,
        };
        let job_id = match jobs.submit(job).await {
            Ok(id) => id,
            Err(SubmitError::Retry(why)) if !overdue => {
                tracing::warn!(run = %run.id, "the job could not be submitted yet: {why}");
                return Ok(run);
            }
            Err(SubmitError::Retry(why) | SubmitError::Refused(why)) => {
                return self.end_run(run, dirs, RunState::Failed, Some(why), false, jobs).await;
            }
        };
        let c = self.contract_of(&run).await?;
        run.job = Some(job_id);
        run.bytes = staged.bytes;
        run.records = staged.records;
        run.amount_fen = c.price.of_read(staged.bytes, staged.records);
        run.state = RunState::Running;
        if !self.store.move_run(&run.id, "staging", "running", &to_doc(&run)?, NO_ENTRIES).await? {
            return self.reload(&run.id).await;
        }
        Ok(run)
    }

    /// Checks the outputs of a run whose job succeeded; keeps them if they pass.
    async fn finish(&self, mut run: Run, dirs: &RunDirs, jobs: &dyn SealedJobs) -> Result<Run, DataError> {
        let c = self.contract_of(&run).await?;
        let headed = match tokio::fs::read(dirs.staged()).await {
            Ok(text) => serde_json::from_slice::<Staged>(&text).map(|s| s.headed).unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        let (out, staging, names, rules) = (dirs.out(), Staging { dir: dirs.data(), headed }, run.outputs.clone(), c.output);
        let checked = tokio::task::spawn_blocking(move || check_outputs(&out, &staging, &names, &rules))
            .await
            .map_err(|e| DataError::Objects(format!("the output check stopped: {e}")))?;
        let files = match checked {
            Err(why) => return self.end_run(run, dirs, RunState::Refused, Some(why), true, jobs).await,
            Ok(files) => files,
        };
        for (name, bytes) in files {
            let sha = hex(&sha2::Sha256::digest(&bytes));
            let len = bytes.len() as u64;
            self.objects.put(&output_path(&run.buyer, &run.id, &name), bytes.into()).await?;
            run.results.push(RunOutput { name, bytes: len, sha256: sha });
        }
        self.end_run(run, dirs, RunState::Succeeded, None, true, jobs).await
    }

    /// Ends a running (or staging) run in `to`, charging the contract's price if its job ran,
    /// in the same transaction; then removes the staged copy and the job's work directory.
    async fn end_run(
        &self,
        mut run: Run,
        dirs: &RunDirs,
        to: RunState,
        why: Option<String>,
        ran: bool,
        jobs: &dyn SealedJobs,
    ) -> Result<Run, DataError> {
        let from = run.state;
        run.state = to;
        run.reason = why;
        run.ended_ms = Some(self.clock.now_ms());
        if !ran {
            run.amount_fen = 0;
        }
        let charge: Vec<_> = ran.then(|| self.charge(&run)).into_iter().collect();
        if !self.store.move_run(&run.id, from.as_str(), to.as_str(), &to_doc(&run)?, &charge).await? {
            return self.reload(&run.id).await;
        }
        remove_dir(&dirs.run).await;
        if let Some(job) = &run.job {
            jobs.forget(job).await;
        }
        Ok(run)
    }

    async fn reload(&self, id: &str) -> Result<Run, DataError> {
        let row = self.store.run(id).await?.ok_or_else(|| DataError::NotFound { what: "run", id: id.to_string() })?;
        parse_run(&row.doc)
    }

    async fn contract_of(&self, run: &Run) -> Result<Contract, DataError> {
        self.contract(&run.buyer, &run.contract).await
    }

    /// The run's ledger entry: the contract's price for the data the job reads.
    fn charge(&self, run: &Run) -> store::UsageRow<UsageEvent<Value>> {
        let subject = Subject { kind: "dataset_compute".into(), id: run.contract.clone() };
        let detail = json!({"amount_fen": run.amount_fen, "contract": run.contract, "seller": run.seller, "run": run.id,
                            "job": run.job, "bytes": run.bytes, "records": run.records});
        let refs = [("contract", run.contract.as_str()), ("run", run.id.as_str()), ("job", run.job.as_deref().unwrap_or_default())];
        let mut e = entry(format!("dc2d_{}", run.id), self.clock.now_ms(), &run.buyer, subject, run.amount_fen, &refs, detail);
        e.doc.quantity = run.bytes as f64;
        e.doc.unit = Unit::Bytes;
        e
    }

    /// Copies the version's hosted files into the run's `data` directory, once: a directory
    /// that is there was staged whole (it is renamed into place last).
    async fn stage(&self, run: &Run, dirs: &RunDirs) -> Result<Staged, DataError> {
        if let Ok(text) = tokio::fs::read(dirs.staged()).await
            && dirs.data().is_dir()
        {
            return serde_json::from_slice(&text).map_err(|e| DataError::Objects(format!("{}: {e}", dirs.staged().display())));
        }
        let io = |e: std::io::Error| DataError::Objects(format!("staging {}: {e}", dirs.run.display()));
        let view = self.version(&run.seller, &run.dataset, &run.version).await?;
        let tmp = dirs.run.join("data.tmp");
        remove_dir(&tmp).await;
        tokio::fs::create_dir_all(&tmp).await.map_err(io)?;
        tokio::fs::create_dir_all(dirs.out()).await.map_err(io)?;
        let mut staged = Staged { bytes: 0, records: 0, headed: Vec::new() };
        let mut names = HashSet::new();
        for f in view.summary.files.iter().filter(|f| f.hosted) {
            let Some(sha) = &f.sha256 else { continue };
            // Two files of one name (or an odd name) go by their hash; one file held twice is staged once.
            let name = if is_plain_name(&f.name) && !names.contains(&f.name) { f.name.clone() } else { sha.clone() };
            if !names.insert(name.clone()) {
                continue;
            }
            let mut out = tokio::fs::File::create(tmp.join(&name)).await.map_err(io)?;
            let mut stream = self.objects.get(&object_path(&run.seller, sha)).await?.into_stream();
            let (mut lines, mut last) = (0u64, b'\n');
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                lines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
                last = chunk.last().copied().unwrap_or(last);
                staged.bytes += chunk.len() as u64;
                out.write_all(&chunk).await.map_err(io)?;
            }
            out.sync_all().await.map_err(io)?;
            let csv = f.encoding_format.iter().any(|e| e == "text/csv");
            if csv {
                staged.headed.push(name);
            }
            staged.records += (lines + u64::from(last != b'\n')).saturating_sub(u64::from(csv));
        }
        let doc = serde_json::to_vec(&staged).map_err(store::StoreError::from)?;
        tokio::fs::write(dirs.run.join("staged.json.tmp"), doc).await.map_err(io)?;
        tokio::fs::rename(dirs.run.join("staged.json.tmp"), dirs.staged()).await.map_err(io)?;
        tokio::fs::rename(&tmp, dirs.data()).await.map_err(io)?;
        Ok(staged)
    }
}

use sha2::Digest as _;

/// A run as `tenant` sees it: the seller sees the buyer's variables' names, not their values
/// (they may hold the buyer's secrets).
fn seen_by(mut run: Run, tenant: &str) -> Run {
    if run.buyer != tenant {
        for v in run.env.values_mut() {
            *v = "(hidden)".into();
        }
    }
    run
}

fn parse_run(doc: &str) -> Result<Run, DataError> {
    Ok(serde_json::from_str(doc).map_err(store::StoreError::from)?)
}

fn to_doc(run: &Run) -> Result<String, DataError> {
    Ok(serde_json::to_string(run).map_err(store::StoreError::from)?)
}

/// Where a run's output that left is kept: under the buyer's name.
fn output_path(buyer: &str, run: &str, name: &str) -> object_store::path::Path {
    object_store::path::Path::from_iter(["outputs", buyer, run, name])
}

async fn remove_dir(dir: &Path) {
    if let Err(e) = tokio::fs::remove_dir_all(dir).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!("cannot remove {}: {e}", dir.display());
    }
}

/// A run's staged dataset, as the output check reads it.
pub struct Staging {
    pub dir: PathBuf,
    /// Files whose first line is a header (CSV), which an output may repeat.
    pub headed: Vec<String>,
}

/// The output check: every declared output is a regular file in `out`, together within the
/// contract's size cap, and (unless the rules allow it) none repeats a record of the staged
/// files. Answers the outputs' bytes, or why none may leave.
pub fn check_outputs(out: &Path, data: &Staging, names: &[String], rules: &OutputRules) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut files = Vec::new();
    let mut total = 0u64;
    for name in names {
        let path = out.join(name);
        let meta = std::fs::symlink_metadata(&path).map_err(|_| format!("output {name}: the job did not write it"))?;
        if !meta.file_type().is_file() {
            return Err(format!("output {name}: not a regular file"));
        }
        total = total.saturating_add(meta.len());
        if total > rules.max_bytes {
            return Err(format!("outputs: more than the contract's {} bytes", rules.max_bytes));
        }
        let bytes = std::fs::read(&path).map_err(|e| format!("output {name}: {e}"))?;
        if bytes.len() as u64 != meta.len() {
            return Err(format!("output {name}: it changed while it was checked"));
        }
        files.push((name.clone(), bytes));
    }
    if rules.forbid_records {
        let lines: HashSet<&[u8]> = files
            .iter()
            .flat_map(|(_, b)| b.split(|&c| c == b'\n'))
            .map(<[u8]>::trim_ascii)
            .filter(|l| l.len() >= MIN_RECORD_BYTES)
            .collect();
        // Which record matched is not said: that would tell the buyer where a guessed row is.
        if first_repeated_record(data, &lines, rules.max_bytes).map_err(|e| format!("reading the staged dataset: {e}"))? {
            return Err("outputs: they repeat a record of the dataset; raw records may not leave".into());
        }
    }
    Ok(files)
}

/// Whether a record of the staged files is among `lines`. A line longer than `longest` (the
/// outputs' cap, so longer than any output line) is skipped without being held in memory.
fn first_repeated_record(data: &Staging, lines: &HashSet<&[u8]>, longest: u64) -> std::io::Result<bool> {
    use std::io::Read as _;
    if lines.is_empty() {
        return Ok(false);
    }
    let mut names: Vec<_> = std::fs::read_dir(&data.dir)?.collect::<Result<Vec<_>, _>>()?;
    names.sort_by_key(std::fs::DirEntry::file_name);
    for entry in names {
        let mut r = std::io::BufReader::new(std::fs::File::open(entry.path())?);
        let mut line = Vec::new();
        let mut n = 0u64;
        loop {
            line.clear();
            if (&mut r).take(longest.saturating_add(1)).read_until(b'\n', &mut line)? == 0 {
                break;
            }
            n += 1;
            if !line.ends_with(b"\n") && line.len() as u64 > longest {
                r.skip_until(b'\n')?;
                continue;
            }
            let header = n == 1 && data.headed.iter().any(|h| entry.file_name() == h.as_str());
            if !header && lines.contains(line.trim_ascii()) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs(name: &str) -> (PathBuf, Staging) {
        let root = std::env::temp_dir().join(format!("aiplus-c2d-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("out")).unwrap();
        std::fs::create_dir_all(root.join("data")).unwrap();
        std::fs::write(root.join("data/loans.csv"), "name,age,amount\nalice,34,5200.50\nbob,51,880.00\n").unwrap();
        (root.join("out"), Staging { dir: root.join("data"), headed: vec!["loans.csv".into()] })
    }

    #[test]
    fn the_output_check_lets_a_statistic_out_and_keeps_records_in() {
        let (out, data) = dirs("check");
        let rules = OutputRules::default();
        std::fs::write(out.join("sum.txt"), "name,age,amount\n6080.5\n").unwrap();
        std::fs::write(out.join("extra.bin"), "never leaves").unwrap();
        let ok = check_outputs(&out, &data, &["sum.txt".into()], &rules).unwrap();
        assert_eq!(
            ok,
            [("sum.txt".to_string(), b"name,age,amount\n6080.5\n".to_vec())],
            "only the declared output leaves; a header is no record"
        );
        // A copied row, even among other lines and with other spacing, is caught.
        std::fs::write(out.join("sum.txt"), "total 6080.5\n  bob,51,880.00 \n").unwrap();
        let err = check_outputs(&out, &data, &["sum.txt".into()], &rules).unwrap_err();
        assert!(err.contains("repeat a record of the dataset") && !err.contains("loans.csv"), "which record is not said: {err}");
        let allowed = OutputRules { forbid_records: false, ..rules };
        assert!(check_outputs(&out, &data, &["sum.txt".into()], &allowed).is_ok(), "the seller may turn the rule off");
        // Over the cap, missing, or a link to the data: refused.
        let unheaded = Staging { headed: Vec::new(), ..data };
        std::fs::write(out.join("sum.txt"), "name,age,amount\n").unwrap();
        assert!(check_outputs(&out, &unheaded, &["sum.txt".into()], &rules).is_err(), "a first line is a record unless a header");
        let data = unheaded;
        let small = OutputRules { max_bytes: 4, ..rules };
        assert!(check_outputs(&out, &data, &["sum.txt".into()], &small).unwrap_err().contains("more than the contract's 4 bytes"));
        assert!(check_outputs(&out, &data, &["none.txt".into()], &rules).unwrap_err().contains("did not write it"));
        std::os::unix::fs::symlink(data.dir.join("loans.csv"), out.join("link.csv")).unwrap();
        assert!(check_outputs(&out, &data, &["link.csv".into()], &rules).unwrap_err().contains("not a regular file"));
        std::fs::remove_dir_all(out.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_run_names_its_bad_field() {
        let ok = RunIn {
            command: vec!["sh".into()],
            env: BTreeMap::new(),
            outputs: vec!["sum.txt".into()],
            cpu_milli: 1000,
            memory_mib: 256,
            duration_s: 60,
        };
        assert!(ok.check().is_ok());
        let field = |r: RunIn| match r.check() {
            Err(DataError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(RunIn { outputs: vec!["../etc/passwd".into()], ..ok.clone() }), "outputs[0]");
        assert_eq!(field(RunIn { outputs: vec![".hidden".into()], ..ok.clone() }), "outputs[0]");
        assert_eq!(field(RunIn { outputs: vec![], ..ok.clone() }), "outputs");
        assert_eq!(field(RunIn { command: vec![], ..ok.clone() }), "command");
        assert_eq!(field(RunIn { env: [("AIPLUS_JOB_ID".to_string(), "x".to_string())].into(), ..ok.clone() }), "env.AIPLUS_JOB_ID");
        assert_eq!(field(RunIn { memory_mib: 0, ..ok }), "memory_mib");
    }
}
