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

mod check;
mod spec;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use futures_util::StreamExt as _;
use ledger::{Subject, Unit, UsageEvent};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;

pub use check::{MIN_RECORD_BYTES, Staging, check_outputs};
use spec::is_plain_name;
pub use spec::{BoxFut, JobEnd, Run, RunIn, RunOutput, RunState, SealedJob, SealedJobs, SubmitError};

use super::contracts::{Contract, Mode, entry};
use super::{DataError, Exchange, hex, invalid, object_path};

/// Most unfinished runs one buyer may have.
const MAX_OPEN_RUNS: i64 = 20;
/// Most runs one pass of the driver advances per state.
const DRIVE_BATCH: i64 = 100;
const OPEN: [&str; 2] = ["staging", "running"];
/// How long a run may stay unstaged or unsubmitted (its store or the queue failing) before it
/// fails, in ms.
pub const MAX_PENDING_MS: i64 = 3_600_000;
/// A move of a run that writes nothing to the ledger.
const NO_ENTRIES: &[store::UsageRow<Value>] = &[];

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
