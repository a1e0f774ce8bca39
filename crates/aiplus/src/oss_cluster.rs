//! `aiplus oss ingest --on-cluster C`: GH Archive ingest spread over the engine (Slurm or Ray)
//! that runs cluster C's jobs, as the config's `[[executor.engine]]` names it.
//!
//! One job per day of files runs this same binary's `oss ingest` on the day's files into a
//! staging directory of its own, under a directory the engine's nodes share; once the engine
//! says the job succeeded, the day's units are merged into the data dir's monthly segments.
//!
//! Nothing runs twice and nothing is lost when this command is killed and run again:
//! - a job's id is derived from its day and its files (names, sizes, modification times), and
//!   executors submit idempotently per (job, attempt), so a rerun finds the jobs already
//!   submitted and waits for them instead of submitting again;
//! - a day whose staging directory holds every file's manifest is merged without asking the
//!   engine, whatever the engine still remembers;
//! - a merged day leaves `merged.json` behind and is skipped from then on;
//! - a job the engine lost (a node failure) runs again as the next attempt, at most
//!   [`MAX_ATTEMPTS`] in all; a job that failed is reported with the tail of its output.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use executor::{EngineState, ExecSpec, Executor, Handle};
use oss::ingest::{Store, Summary};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::{Config, EngineKind};

/// Attempts per day before a day whose jobs keep being lost is given up.
pub const MAX_ATTEMPTS: u32 = 3;
/// Most bytes of a failed job's output quoted in the error.
const LOG_TAIL_BYTES: usize = 2000;
/// How often running jobs are looked at.
const POLL: Duration = Duration::from_millis(500);

/// How the fan-out runs.
#[derive(clap::Args, Debug, Clone)]
pub struct ClusterArgs {
    /// Run the ingest as per-day jobs on the engine that runs this cluster's jobs (Slurm or
    /// Ray, from the config's `[[executor.engine]]`), then merge what they staged. The input
    /// files, this binary and the shared directory must be visible at the same paths on the
    /// engine's nodes.
    #[arg(long)]
    pub on_cluster: Option<String>,
    /// Where jobs stage their output: a directory every node can write (default: a Slurm
    /// engine's `shared_dir` + `/oss-ingest`; for Ray, the data dir's `oss/staging`).
    #[arg(long, requires = "on_cluster")]
    pub shared_dir: Option<PathBuf>,
    /// Jobs in flight at once.
    #[arg(long, default_value_t = 32, requires = "on_cluster", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_jobs: u32,
    /// Give up waiting after this long (the jobs keep running; the same command picks them up).
    #[arg(long, default_value_t = 86_400, requires = "on_cluster", value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub timeout_s: u64,
}

/// What a fan-out did.
#[derive(Debug, Default, Serialize)]
pub struct ClusterSummary {
    pub cluster: String,
    pub engine: String,
    pub days: u64,
    /// Jobs submitted by this run (lost attempts submitted again included).
    pub submitted: u64,
    /// Jobs this run found already submitted (by an earlier run) and waited for.
    pub reattached: u64,
    /// Days whose staged output was complete before this run asked the engine anything.
    pub staged_before: u64,
    /// Days merged by an earlier run, skipped.
    pub merged_before: u64,
    /// Attempts the engine lost, each run again.
    pub lost: u64,
    pub merged: Summary,
}

struct Day {
    day: String,
    files: Vec<PathBuf>,
    /// The job's directory under the shared one; its `oss/` is the staging store.
    dir: PathBuf,
    attempt: u32,
}

/// The engine that runs `cluster`'s jobs and where its jobs stage their output.
fn engine_for(cfg: &Config, store: &Store, args: &ClusterArgs, cluster: &str) -> anyhow::Result<(Arc<dyn Executor>, PathBuf)> {
    let (i, e) = cfg.executor.engines.iter().enumerate().find(|(_, e)| e.clusters.iter().any(|c| c == cluster)).with_context(|| {
        format!(
            "--on-cluster: no [[executor.engine]] in the config runs {cluster:?}; it would run on the local executor, \
             so ingest on this machine without --on-cluster"
        )
    })?;
    let engine = crate::serve::remote_engine(cfg, i, e)?
        .with_context(|| format!("--on-cluster: {cluster:?} runs on the local executor; ingest on this machine without --on-cluster"))?;
    let shared = match (&args.shared_dir, e.kind) {
        (Some(d), _) => d.clone(),
        (None, EngineKind::Slurm) => e.shared_dir.clone().unwrap_or_else(|| cfg.server.data_dir.join("slurm")).join("oss-ingest"),
        (None, _) => store.root.join("staging"),
    };
    std::fs::create_dir_all(&shared).with_context(|| format!("--shared-dir: creating {}", shared.display()))?;
    // Jobs run in directories of their own: every path they are given is absolute (and not
    // resolved through symbolic links, which the nodes may not have).
    Ok((engine, std::path::absolute(&shared)?))
}

/// The day's job id: its day and a hash of where it stages, which data dir it is for, and its
/// files' names, sizes and modification times, so that changed input (or another data dir's
/// run) is a new job and the same input the same one.
fn job_id(day: &str, files: &[PathBuf], shared: &Path, store: &Path) -> anyhow::Result<String> {
    let mut h = Sha256::new();
    h.update(format!("{}\n{}\n", shared.display(), store.display()).as_bytes());
    for f in files {
        let m = std::fs::metadata(f).with_context(|| format!("reading {}", f.display()))?;
        let mtime_ns = m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
        h.update(format!("{}\t{}\t{mtime_ns}\n", f.display(), m.len()).as_bytes());
    }
    Ok(format!("oss-ingest-{day}-{}", &oss::ingest::hex(&h.finalize())[..12]))
}

fn spec(day: &Day, exe: &Path, threads: u32) -> ExecSpec {
    let mut command = vec![exe.display().to_string(), "oss".into(), "ingest".into()];
    command.extend(day.files.iter().map(|f| f.display().to_string()));
    command.extend(["--data-dir".into(), day.dir.display().to_string(), "--threads".into(), threads.to_string(), "--json".into()]);
    ExecSpec {
        job_id: day.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        tenant: aiplus::model_service::PLATFORM_TENANT.into(),
        attempt: day.attempt,
        command,
        env: BTreeMap::new(),
        gpus: 0,
        gpu_milli: 0,
        cpu_milli: threads * 1000,
        // A worker holds one hour's file and its rows at a time.
        memory_mib: 512 + 768 * threads,
        time_limit_s: 6 * 3600,
        network: false,
        sealed: None,
    }
}

/// Ingests `files` through per-day jobs on `cluster`'s engine and merges them into `store`.
pub fn ingest(
    files: &[PathBuf],
    store: &Store,
    cfg: &Config,
    args: &ClusterArgs,
    cluster: &str,
    threads: u32,
) -> anyhow::Result<ClusterSummary> {
    let (engine, shared) = engine_for(cfg, store, args, cluster)?;
    let exe = std::env::current_exe().context("finding this binary")?;
    let mut sum = ClusterSummary { cluster: cluster.into(), engine: engine.kind().into(), ..Default::default() };
    let mut queue = VecDeque::new();
    let root = std::path::absolute(&store.root)?;
    for (day, files) in oss::stage::by_day(files)? {
        let files =
            files.iter().map(|f| std::path::absolute(f).with_context(|| format!("{}", f.display()))).collect::<Result<Vec<_>, _>>()?;
        let dir = shared.join(job_id(&day, &files, &shared, &root)?);
        queue.push_back(Day { day, files, dir, attempt: 1 });
    }
    sum.days = queue.len() as u64;
    let bar = indicatif::ProgressBar::new(sum.days);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let fan = Fanout { engine: engine.as_ref(), store, exe: &exe, threads, bar: &bar };
    let failures = rt.block_on(fan.run(queue, args, &mut sum))?;
    bar.finish_and_clear();
    sum.merged.sort();
    if !failures.is_empty() {
        anyhow::bail!("{} of {} days did not ingest:\n{}", failures.len(), sum.days, failures.join("\n"));
    }
    Ok(sum)
}

struct Fanout<'a> {
    engine: &'a dyn Executor,
    store: &'a Store,
    exe: &'a Path,
    threads: u32,
    bar: &'a indicatif::ProgressBar,
}

/// Where a day stands after a look.
enum Next {
    Wait(Handle),
    Done,
}

impl Fanout<'_> {
    async fn run(&self, mut queue: VecDeque<Day>, args: &ClusterArgs, sum: &mut ClusterSummary) -> anyhow::Result<Vec<String>> {
        let deadline = Instant::now() + Duration::from_secs(args.timeout_s);
        let mut running: Vec<(Day, Handle)> = Vec::new();
        let mut failures = Vec::new();
        loop {
            while running.len() < args.max_jobs as usize
                && let Some(day) = queue.pop_front()
            {
                match self.start(day, sum).await {
                    Ok((day, Next::Wait(h))) => running.push((day, h)),
                    Ok((_, Next::Done)) => self.bar.inc(1),
                    Err(e) => failures.push(format!("{e:#}")),
                }
            }
            if running.is_empty() && queue.is_empty() {
                return Ok(failures);
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "--timeout-s: {} days still running after {} s; they keep running, and the same command picks them up",
                    running.len() + queue.len(),
                    args.timeout_s
                );
            }
            tokio::time::sleep(POLL).await;
            let mut still = Vec::new();
            for (day, h) in running {
                match self.look(day, h, sum).await {
                    Ok((day, Next::Wait(h))) => still.push((day, h)),
                    Ok((_, Next::Done)) => self.bar.inc(1),
                    Err(e) => failures.push(format!("{e:#}")),
                }
            }
            running = still;
        }
    }

    /// A day's first look: merged before, staged before, submitted before, or new.
    async fn start(&self, mut day: Day, sum: &mut ClusterSummary) -> anyhow::Result<(Day, Next)> {
        let recorded = self.recorded_attempt(&day)?;
        if day.dir.join("merged.json").exists() {
            if self.in_store(&day)? {
                sum.merged_before += 1;
                // A merged day still counts its files, as a local ingest counts unchanged ones.
                sum.merged.merge(self.merge_counts(&day)?);
                return Ok((day, Next::Done));
            }
            // Merged into a data dir that has since lost it: the day runs again, as a new
            // attempt (its staged output is gone).
            std::fs::remove_file(day.dir.join("merged.json"))?;
            day.attempt = recorded.map_or(1, |a| a + 1);
        } else {
            day.attempt = recorded.unwrap_or(1);
        }
        if oss::stage::staged_all(&self.staging(&day), &day.files)? {
            sum.staged_before += 1;
            self.merge(&day, sum)?;
            return Ok((day, Next::Done));
        }
        // From the last attempt recorded: an engine that has forgotten earlier attempts is
        // never asked to run one of them again.
        loop {
            let spec = spec(&day, self.exe, self.threads);
            let found = self.engine.find(&spec).await.with_context(|| format!("{}: asking the engine", day.day))?;
            let Some(h) = found else { break };
            match self.engine.status(&h).await.with_context(|| format!("{}: asking the engine", day.day))? {
                // A rerun retries a day whose job ended without output, up to the attempt cap.
                EngineState::Lost { .. } | EngineState::Cancelled | EngineState::Failed { .. } => {
                    sum.lost += 1;
                    day.attempt += 1;
                }
                _ => {
                    // A kill between the engine's submit and the record's rewrite leaves the
                    // record without its handle; the job found is recorded now.
                    self.record(&day, Some(&h))?;
                    sum.reattached += 1;
                    return Ok((day, Next::Wait(h)));
                }
            }
        }
        let h = self.submit(&day).await?;
        sum.submitted += 1;
        Ok((day, Next::Wait(h)))
    }

    /// The attempt `job.json` last recorded for a day, if any.
    fn recorded_attempt(&self, day: &Day) -> anyhow::Result<Option<u32>> {
        match std::fs::read(day.dir.join("job.json")) {
            Ok(b) => {
                let v: serde_json::Value = serde_json::from_slice(&b).with_context(|| format!("{}: job.json", day.dir.display()))?;
                Ok(v["attempt"].as_u64().and_then(|a| u32::try_from(a).ok()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether the data dir holds every one of a day's files, with their segments.
    fn in_store(&self, day: &Day) -> anyhow::Result<bool> {
        for f in &day.files {
            let name = oss::ingest::unit_name(f)?;
            match self.store.manifest(&name)? {
                Some(m) if self.store.is_current(&m, &m.sha256) => {}
                _ => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Submits the day's current attempt. The attempt is recorded first, so that a crash after
    /// the engine accepted it still leaves the attempt known to the next run.
    async fn submit(&self, day: &Day) -> anyhow::Result<Handle> {
        if day.attempt > MAX_ATTEMPTS {
            anyhow::bail!("{}: its job ended without output {MAX_ATTEMPTS} times", day.day);
        }
        self.record(day, None)?;
        let spec = spec(day, self.exe, self.threads);
        let h = self.engine.submit(&spec).await.with_context(|| format!("{}: submitting its job", day.day))?;
        self.record(day, Some(&h))?;
        Ok(h)
    }

    /// Writes a day's `job.json`: its attempt, and its engine handle once known.
    fn record(&self, day: &Day, handle: Option<&Handle>) -> anyhow::Result<()> {
        let r =
            serde_json::json!({"engine": self.engine.kind(), "handle": handle.map(|h| &h.0), "attempt": day.attempt, "files": day.files});
        oss::segment::write_atomic(&day.dir.join("job.json"), &serde_json::to_vec_pretty(&r)?)?;
        Ok(())
    }

    /// A running day's next look.
    async fn look(&self, mut day: Day, h: Handle, sum: &mut ClusterSummary) -> anyhow::Result<(Day, Next)> {
        let state = match self.engine.status(&h).await {
            Ok(s) => s,
            // An engine that does not answer may still be running the job: wait, do not guess.
            Err(executor::ExecError::Unreachable(_)) => return Ok((day, Next::Wait(h))),
            Err(e) => return Err(anyhow::Error::new(e).context(format!("{}: asking the engine", day.day))),
        };
        match state {
            EngineState::Pending | EngineState::Running => Ok((day, Next::Wait(h))),
            EngineState::Succeeded => {
                if !oss::stage::staged_all(&self.staging(&day), &day.files)? {
                    anyhow::bail!(
                        "{}: the job succeeded but {} holds no output; is it shared with the engine's nodes? Its output: {}",
                        day.day,
                        day.dir.display(),
                        self.tail(&h).await
                    );
                }
                self.merge(&day, sum)?;
                Ok((day, Next::Done))
            }
            EngineState::Lost { .. } if oss::stage::staged_all(&self.staging(&day), &day.files)? => {
                // The engine forgot a job that had finished its work.
                self.merge(&day, sum)?;
                Ok((day, Next::Done))
            }
            EngineState::Lost { .. } => {
                sum.lost += 1;
                day.attempt += 1;
                let h = self.submit(&day).await?;
                sum.submitted += 1;
                Ok((day, Next::Wait(h)))
            }
            EngineState::Failed { message, .. } => anyhow::bail!("{}: its job failed ({message}): {}", day.day, self.tail(&h).await),
            EngineState::Cancelled => anyhow::bail!("{}: its job was cancelled on the engine", day.day),
        }
    }

    fn staging(&self, day: &Day) -> Store {
        Store::new(&day.dir)
    }

    /// Merges a finished day, then marks it merged and drops its staged segments.
    fn merge(&self, day: &Day, sum: &mut ClusterSummary) -> anyhow::Result<()> {
        let merged = oss::stage::merge(self.store, &self.staging(day), &day.files).with_context(|| format!("{}: merging", day.day))?;
        oss::segment::write_atomic(&day.dir.join("merged.json"), &serde_json::to_vec_pretty(&merged)?)?;
        // Only space: a day marked merged is never read from its staging store again.
        let _ = std::fs::remove_dir_all(self.staging(day).root);
        sum.merged.merge(merged);
        Ok(())
    }

    /// What an earlier run merged for a day, counted as unchanged.
    fn merge_counts(&self, day: &Day) -> anyhow::Result<Summary> {
        let text = std::fs::read(day.dir.join("merged.json"))?;
        let mut s: Summary = serde_json::from_slice(&text).with_context(|| format!("{}: merged.json", day.dir.display()))?;
        s.unchanged = s.files;
        Ok(s)
    }

    async fn tail(&self, h: &Handle) -> String {
        let mut text = Vec::new();
        let mut offset = 0;
        while let Ok(chunk) = self.engine.logs(h, offset).await {
            if chunk.data.is_empty() {
                break;
            }
            text.extend_from_slice(&chunk.data);
            offset = chunk.next_offset;
            let excess = text.len().saturating_sub(LOG_TAIL_BYTES);
            text.drain(..excess);
        }
        String::from_utf8_lossy(&text).trim().to_string()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

    use std::sync::Mutex;

    use executor::{BoxFut, ExecError, LogChunk};

    use super::*;

    /// A test double of an engine: a submitted job runs at once, in process (this module's own
    /// `oss ingest` arguments, read back from the argv), and ends in the state the test sets.
    #[derive(Default)]
    struct Engine {
        jobs: Mutex<BTreeMap<String, EngineState>>,
        submitted: Mutex<Vec<String>>,
        /// The state a job ends in once it has run (Succeeded unless set).
        ends: Mutex<Option<EngineState>>,
    }

    impl Executor for Engine {
        fn kind(&self) -> &'static str {
            "test-double"
        }
        fn submit<'a>(&'a self, spec: &'a ExecSpec) -> BoxFut<'a, Result<Handle, ExecError>> {
            Box::pin(async move {
                let c = &spec.command;
                let at = c.iter().position(|a| a == "--data-dir").unwrap();
                let files: Vec<PathBuf> = c[3..at].iter().map(PathBuf::from).collect();
                oss::ingest::ingest_files(&Store::new(Path::new(&c[at + 1])), &files, 1, &|_, _| {}).unwrap();
                let end = self.ends.lock().unwrap().clone().unwrap_or(EngineState::Succeeded);
                self.jobs.lock().unwrap().insert(spec.engine_name(), end);
                self.submitted.lock().unwrap().push(spec.engine_name());
                Ok(Handle(spec.engine_name()))
            })
        }
        fn find<'a>(&'a self, spec: &'a ExecSpec) -> BoxFut<'a, Result<Option<Handle>, ExecError>> {
            Box::pin(async move { Ok(self.jobs.lock().unwrap().contains_key(&spec.engine_name()).then(|| Handle(spec.engine_name()))) })
        }
        fn status<'a>(&'a self, h: &'a Handle) -> BoxFut<'a, Result<EngineState, ExecError>> {
            Box::pin(
                async move { Ok(self.jobs.lock().unwrap().get(&h.0).cloned().unwrap_or(EngineState::Lost { reason: "forgotten".into() })) },
            )
        }
        fn cancel<'a>(&'a self, _: &'a Handle) -> BoxFut<'a, Result<(), ExecError>> {
            Box::pin(async { Ok(()) })
        }
        fn logs<'a>(&'a self, _: &'a Handle, offset: u64) -> BoxFut<'a, Result<LogChunk, ExecError>> {
            Box::pin(async move { Ok(LogChunk { data: vec![], next_offset: offset }) })
        }
        fn health(&self) -> BoxFut<'_, Result<(), ExecError>> {
            Box::pin(async { Ok(()) })
        }
    }

    fn args() -> ClusterArgs {
        ClusterArgs { on_cluster: Some("c".into()), shared_dir: None, max_jobs: 4, timeout_s: 60 }
    }

    /// Runs the fan-out over `files` with the double, returning the summary.
    fn run(engine: &Engine, store: &Store, shared: &Path, files: &[PathBuf]) -> ClusterSummary {
        let mut sum = ClusterSummary::default();
        let mut queue = VecDeque::new();
        for (day, files) in oss::stage::by_day(files).unwrap() {
            let dir = shared.join(job_id(&day, &files, shared, &store.root).unwrap());
            queue.push_back(Day { day, files, dir, attempt: 1 });
        }
        sum.days = queue.len() as u64;
        let bar = indicatif::ProgressBar::hidden();
        let fan = Fanout { engine, store, exe: Path::new("/aiplus"), threads: 1, bar: &bar };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let failures = rt.block_on(fan.run(queue, &args(), &mut sum)).unwrap();
        assert!(failures.is_empty(), "{failures:?}");
        sum
    }

    fn two_days(dir: &Path) -> Vec<PathBuf> {
        let s = oss::generate::Settings { seed: 3, events: 500, developers: 50, repos: 20, hours: 48, ..Default::default() };
        std::fs::create_dir_all(dir).unwrap();
        oss::generate::generate(&s, dir, &|_| {}).unwrap()
    }

    #[test]
    fn each_day_runs_once_and_a_rerun_submits_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let files = two_days(&tmp.path().join("src"));
        let (store, shared, engine) = (Store::new(&tmp.path().join("data")), tmp.path().join("shared"), Engine::default());
        let first = run(&engine, &store, &shared, &files);
        assert_eq!((first.days, first.submitted, first.merged.events), (2, 2, 500), "{first:?}");
        let again = run(&engine, &store, &shared, &files);
        assert_eq!((again.submitted, again.merged_before, again.merged.unchanged), (0, 2, 48));
        assert_eq!(engine.submitted.lock().unwrap().len(), 2);
    }

    /// An engine that forgot a job whose output is complete: the output is merged, nothing runs.
    #[test]
    fn a_forgotten_job_with_its_output_staged_is_merged_not_run_again() {
        let tmp = tempfile::tempdir().unwrap();
        let files = two_days(&tmp.path().join("src"));
        let (store, shared, engine) = (Store::new(&tmp.path().join("data")), tmp.path().join("shared"), Engine::default());
        *engine.ends.lock().unwrap() = Some(EngineState::Lost { reason: "node failed after the work".into() });
        let sum = run(&engine, &store, &shared, &files);
        assert_eq!((sum.submitted, sum.lost, sum.merged.events), (2, 0, 500), "{sum:?}");
    }

    /// The last attempt recorded is where a rerun starts: an engine that has forgotten attempt 1
    /// is not asked to run it again when attempt 2 was the last one submitted.
    #[test]
    fn a_rerun_starts_from_the_recorded_attempt() {
        let tmp = tempfile::tempdir().unwrap();
        let files = two_days(&tmp.path().join("src"));
        let (store, shared, engine) = (Store::new(&tmp.path().join("data")), tmp.path().join("shared"), Engine::default());
        let day = oss::stage::by_day(&files).unwrap().into_iter().next().unwrap();
        let dir = shared.join(job_id(&day.0, &day.1, &shared, &store.root).unwrap());
        oss::segment::write_atomic(&dir.join("job.json"), br#"{"attempt": 2}"#).unwrap();
        run(&engine, &store, &shared, &files);
        let submitted = engine.submitted.lock().unwrap().clone();
        assert!(submitted.iter().any(|n| n.starts_with(&format!("oss-ingest-{}-", day.0)) && n.ends_with("-a2")), "{submitted:?}");
        assert!(!submitted.iter().any(|n| n.starts_with(&format!("oss-ingest-{}-", day.0)) && n.ends_with("-a1")), "{submitted:?}");
    }
}
