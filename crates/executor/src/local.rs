//! The embedded default: each attempt runs as a child process of this machine.
//!
//! Every attempt has a directory `<root>/<job>/<attempt>/` with `work/` (the working directory),
//! `output.log` (stdout and stderr, combined as Slurm and Ray do), and files written by a small
//! `sh` wrapper around the command, so that the record survives the aiplus process itself:
//! - the wrapper takes an exclusive `flock` on `lock` for as long as the job lives;
//! - under that lock it refuses to start if `pid` exists, then writes `pid`: so an attempt runs at
//!   most once, however often it is submitted;
//! - when the command ends it writes `exit_code` (atomically, by rename).
//!
//! A wrapper that finds the attempt already started exits with status 97 and writes nothing.
//!
//! After a crash of aiplus the job keeps running (it is in its own process group), and
//! [`LocalExecutor::status`] reads the truth from those files: an exit code, a held lock (still
//! running), or neither (it died without a word: lost).
//!
//! Limits: where the OS lets aiplus create cgroups (v1 `memory` and `cpu` controllers, or v2),
//! the job gets `memory.limit_in_bytes` = its memory and a CFS quota = its CPU; otherwise it runs
//! without, and `limits_enforced` says so.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::{BoxFut, EngineState, ExecError, ExecSpec, Executor, Handle, LogChunk, read_log_file};

/// How long a cancelled job has between SIGTERM and SIGKILL.
const CANCEL_GRACE: Duration = Duration::from_secs(5);

const WRAPPER: &str = r#"set -u
d="$AIPLUS_ATTEMPT_DIR"
exec 9>>"$d/lock"
flock -w 5 9 || exit 97
[ -e "$d/pid" ] && exit 97
echo $$ > "$d/pid.tmp" && mv "$d/pid.tmp" "$d/pid"
for f in $AIPLUS_CGROUP_PROCS; do echo $$ > "$f" 2>/dev/null || true; done
"$@"
code=$?
echo $code > "$d/exit.tmp" && mv "$d/exit.tmp" "$d/exit_code"
exit $code
"#;

pub struct LocalExecutor {
    root: PathBuf,
    cgroups: Option<Cgroups>,
}

/// Where this machine lets us put per-job cgroups.
#[derive(Clone, Debug)]
enum Cgroups {
    V1 { memory: PathBuf, cpu: PathBuf },
    V2 { base: PathBuf },
}

impl Cgroups {
    fn detect() -> Option<Self> {
        let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers");
        if v2.exists() {
            let base = PathBuf::from("/sys/fs/cgroup/aiplus");
            return std::fs::create_dir_all(&base).ok().map(|_| Cgroups::V2 { base });
        }
        let memory = PathBuf::from("/sys/fs/cgroup/memory/aiplus");
        let cpu = PathBuf::from("/sys/fs/cgroup/cpu/aiplus");
        (std::fs::create_dir_all(&memory).is_ok() && std::fs::create_dir_all(&cpu).is_ok()).then_some(Cgroups::V1 { memory, cpu })
    }

    /// Creates the job's groups with its limits; returns the `cgroup.procs` files to join.
    fn create(&self, name: &str, spec: &ExecSpec) -> std::io::Result<Vec<PathBuf>> {
        let bytes = u64::from(spec.memory_mib.max(16)) * 1024 * 1024;
        // CFS: quota per 100 ms period; a CPU in thousandths maps to quota = milli × 100 µs.
        let quota_us = u64::from(spec.cpu_milli.max(10)) * 100;
        match self {
            Cgroups::V1 { memory, cpu } => {
                let m = memory.join(name);
                let c = cpu.join(name);
                std::fs::create_dir_all(&m)?;
                std::fs::create_dir_all(&c)?;
                std::fs::write(m.join("memory.limit_in_bytes"), bytes.to_string())?;
                std::fs::write(c.join("cpu.cfs_period_us"), "100000")?;
                std::fs::write(c.join("cpu.cfs_quota_us"), quota_us.to_string())?;
                Ok(vec![m.join("cgroup.procs"), c.join("cgroup.procs")])
            }
            Cgroups::V2 { base } => {
                let g = base.join(name);
                std::fs::create_dir_all(&g)?;
                std::fs::write(g.join("memory.max"), bytes.to_string())?;
                std::fs::write(g.join("cpu.max"), format!("{quota_us} 100000"))?;
                Ok(vec![g.join("cgroup.procs")])
            }
        }
    }

    /// Removes the job's groups once they are empty (best effort: a busy group stays).
    fn remove(&self, name: &str) {
        let dirs = match self {
            Cgroups::V1 { memory, cpu } => vec![memory.join(name), cpu.join(name)],
            Cgroups::V2 { base } => vec![base.join(name)],
        };
        for d in dirs {
            let _ = std::fs::remove_dir(d);
        }
    }
}

impl LocalExecutor {
    /// An executor keeping its attempts under `root` (created if needed).
    pub fn new(root: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&root)?;
        Ok(Self { root, cgroups: Cgroups::detect() })
    }

    /// Whether CPU and memory limits are enforced on this machine.
    pub fn limits_enforced(&self) -> bool {
        self.cgroups.is_some()
    }

    fn dir(&self, handle: &Handle) -> Result<PathBuf, ExecError> {
        // Handles are "<job>/<attempt>" made by this module; refuse anything that could escape.
        let ok = handle.0.split('/').count() == 2
            && handle
                .0
                .split('/')
                .all(|p| !p.is_empty() && p != ".." && p != "." && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
        if !ok {
            return Err(ExecError::Rejected(format!("not a local handle: {:?}", handle.0)));
        }
        Ok(self.root.join(&handle.0))
    }

    fn handle_of(spec: &ExecSpec) -> Handle {
        Handle(format!("{}/{}", spec.job_id, spec.attempt))
    }

    fn spawn(&self, spec: &ExecSpec, dir: &Path) -> Result<(), ExecError> {
        if spec.command.is_empty() {
            return Err(ExecError::Rejected("empty command".into()));
        }
        std::fs::create_dir_all(dir.join("work"))?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("output.log"))?;
        let procs = match &self.cgroups {
            Some(cg) => cg.create(&spec.engine_name(), spec).unwrap_or_default(),
            None => Vec::new(),
        };
        let procs: Vec<String> = procs.iter().map(|p| p.display().to_string()).collect();
        let mut cmd = tokio::process::Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(WRAPPER)
            .arg("aiplus-job")
            .args(&spec.command)
            .current_dir(dir.join("work"))
            .envs(&spec.env)
            .env("AIPLUS_ATTEMPT_DIR", dir)
            .env("AIPLUS_JOB_ID", &spec.job_id)
            .env("AIPLUS_ATTEMPT", spec.attempt.to_string())
            .env("AIPLUS_CGROUP_PROCS", procs.join(" "))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group: a cancel reaches every process of the job, and a signal
            // to aiplus's group (Ctrl-C) does not reach the job.
            .process_group(0)
            .kill_on_drop(false);
        let mut child = cmd.spawn()?;
        // Reap the child when it ends; if aiplus dies first, init does.
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        Ok(())
    }

    /// True while the attempt's wrapper (or anything it started) holds the lock.
    fn lock_held(dir: &Path) -> bool {
        let Ok(f) = std::fs::OpenOptions::new().append(true).create(false).open(dir.join("lock")) else { return false };
        match f.try_lock() {
            Ok(()) => {
                let _ = f.unlock();
                false
            }
            Err(_) => true,
        }
    }

    fn read_status(&self, dir: &Path, name: &str) -> EngineState {
        let cancelled = dir.join("cancel_requested").exists();
        if let Ok(text) = std::fs::read_to_string(dir.join("exit_code")) {
            if let Some(cg) = &self.cgroups {
                cg.remove(name);
            }
            return match text.trim().parse::<i32>() {
                Ok(_) if cancelled => EngineState::Cancelled,
                Ok(0) => EngineState::Succeeded,
                Ok(code) => EngineState::Failed { exit_code: Some(code), message: format!("exited with status {code}") },
                Err(_) => EngineState::Lost { reason: format!("unreadable exit status {:?}", text.trim()) },
            };
        }
        if Self::lock_held(dir) {
            return if dir.join("pid").exists() { EngineState::Running } else { EngineState::Pending };
        }
        if dir.join("pid").exists() {
            if cancelled {
                return EngineState::Cancelled;
            }
            return EngineState::Lost {
                reason: "the process ended without recording an exit status (killed, or the machine restarted)".into(),
            };
        }
        // Not started yet: a wrapper that was just spawned takes the lock within milliseconds.
        let age = std::fs::metadata(dir.join("output.log")).and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
        if age.is_some_and(|a| a < Duration::from_secs(10)) {
            EngineState::Pending
        } else {
            EngineState::Lost { reason: "the process never started".into() }
        }
    }

    fn signal_group(pid: &str, signal: &str) {
        let _ = std::process::Command::new("kill")
            .args([signal, "--", &format!("-{pid}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Executor for LocalExecutor {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn submit<'a>(&'a self, spec: &'a ExecSpec) -> BoxFut<'a, Result<Handle, ExecError>> {
        Box::pin(async move {
            let handle = Self::handle_of(spec);
            let dir = self.dir(&handle)?;
            // Idempotent: an attempt that already started is not started again (the wrapper
            // checks the same under its lock, which covers two racing submits).
            if dir.join("pid").exists() || Self::lock_held(&dir) {
                return Ok(handle);
            }
            self.spawn(spec, &dir)?;
            Ok(handle)
        })
    }

    fn find<'a>(&'a self, spec: &'a ExecSpec) -> BoxFut<'a, Result<Option<Handle>, ExecError>> {
        Box::pin(async move {
            let handle = Self::handle_of(spec);
            let dir = self.dir(&handle)?;
            let started = dir.join("pid").exists() || dir.join("exit_code").exists() || Self::lock_held(&dir);
            Ok(started.then_some(handle))
        })
    }

    fn status<'a>(&'a self, handle: &'a Handle) -> BoxFut<'a, Result<EngineState, ExecError>> {
        Box::pin(async move {
            let dir = self.dir(handle)?;
            if !dir.exists() {
                return Ok(EngineState::Lost { reason: "no record of this attempt on this machine".into() });
            }
            Ok(self.read_status(&dir, &handle.0.replace('/', "-a")))
        })
    }

    fn cancel<'a>(&'a self, handle: &'a Handle) -> BoxFut<'a, Result<(), ExecError>> {
        Box::pin(async move {
            let dir = self.dir(handle)?;
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join("cancel_requested"), b"")?;
            let Ok(pid) = std::fs::read_to_string(dir.join("pid")) else { return Ok(()) };
            let pid = pid.trim().to_string();
            if !pid.bytes().all(|b| b.is_ascii_digit()) || pid.is_empty() {
                return Err(ExecError::Rejected(format!("bad pid file {pid:?}")));
            }
            Self::signal_group(&pid, "-TERM");
            let dir2 = dir.clone();
            tokio::spawn(async move {
                tokio::time::sleep(CANCEL_GRACE).await;
                if Self::lock_held(&dir2) {
                    Self::signal_group(&pid, "-KILL");
                }
            });
            Ok(())
        })
    }

    fn logs<'a>(&'a self, handle: &'a Handle, offset: u64) -> BoxFut<'a, Result<LogChunk, ExecError>> {
        Box::pin(async move { read_log_file(&self.dir(handle)?.join("output.log"), offset).await })
    }

    fn health(&self) -> BoxFut<'_, Result<(), ExecError>> {
        Box::pin(async move {
            if self.root.is_dir() { Ok(()) } else { Err(ExecError::Unreachable(format!("{} is gone", self.root.display()))) }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str, cmd: &[&str]) -> ExecSpec {
        ExecSpec {
            job_id: id.into(),
            attempt: 1,
            command: cmd.iter().map(|s| s.to_string()).collect(),
            env: [("GREETING".to_string(), "ni hao".to_string())].into(),
            gpus: 0,
            gpu_milli: 0,
            cpu_milli: 500,
            memory_mib: 256,
            time_limit_s: 60,
        }
    }

    fn root(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("aiplus-local-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    async fn wait_terminal(ex: &LocalExecutor, h: &Handle) -> EngineState {
        for _ in 0..200 {
            let s = ex.status(h).await.unwrap();
            if s.is_terminal() {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("job did not finish");
    }

    #[tokio::test]
    async fn runs_captures_output_and_exit_status() {
        let ex = LocalExecutor::new(root("run")).unwrap();
        let ok = spec("j1", &["sh", "-c", "echo out $GREETING; echo err >&2; pwd"]);
        let h = ex.submit(&ok).await.unwrap();
        assert_eq!(wait_terminal(&ex, &h).await, EngineState::Succeeded);
        let log = String::from_utf8(ex.logs(&h, 0).await.unwrap().data).unwrap();
        assert!(log.contains("out ni hao") && log.contains("err") && log.contains("/j1/1/work"), "{log}");
        let tail = ex.logs(&h, 4).await.unwrap();
        assert_eq!(tail.next_offset, log.len() as u64);

        let bad = spec("j2", &["sh", "-c", "exit 3"]);
        let h = ex.submit(&bad).await.unwrap();
        assert!(matches!(wait_terminal(&ex, &h).await, EngineState::Failed { exit_code: Some(3), .. }));
    }

    #[tokio::test]
    async fn a_second_submit_of_an_attempt_does_not_run_it_again() {
        let ex = LocalExecutor::new(root("once")).unwrap();
        let s = spec("j3", &["sh", "-c", "echo ran >> ../../../ran.txt; sleep 0.3"]);
        let h1 = ex.submit(&s).await.unwrap();
        let h2 = ex.submit(&s).await.unwrap();
        assert_eq!(h1, h2);
        wait_terminal(&ex, &h1).await;
        let h3 = ex.submit(&s).await.unwrap();
        assert_eq!(h3, h1);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let ran = std::fs::read_to_string(ex.root.join("ran.txt")).unwrap();
        assert_eq!(ran.lines().count(), 1, "the attempt ran {} times", ran.lines().count());
        assert_eq!(ex.find(&s).await.unwrap(), Some(h1));
        assert_eq!(ex.find(&spec("never", &["true"])).await.unwrap(), None);
    }

    #[tokio::test]
    async fn cancel_stops_the_whole_process_group() {
        let ex = LocalExecutor::new(root("cancel")).unwrap();
        let s = spec("j4", &["sh", "-c", "sleep 30 & sleep 30; wait"]);
        let h = ex.submit(&s).await.unwrap();
        for _ in 0..100 {
            if ex.status(&h).await.unwrap() == EngineState::Running {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        ex.cancel(&h).await.unwrap();
        assert_eq!(wait_terminal(&ex, &h).await, EngineState::Cancelled);
    }

    #[tokio::test]
    async fn a_process_killed_without_a_word_is_lost() {
        let ex = LocalExecutor::new(root("lost")).unwrap();
        let s = spec("j5", &["sleep", "30"]);
        let h = ex.submit(&s).await.unwrap();
        let dir = ex.dir(&h).unwrap();
        for _ in 0..100 {
            if dir.join("pid").exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let pid = std::fs::read_to_string(dir.join("pid")).unwrap();
        LocalExecutor::signal_group(pid.trim(), "-KILL");
        assert!(matches!(wait_terminal(&ex, &h).await, EngineState::Lost { .. }));
    }

    #[tokio::test]
    async fn bad_input_is_refused() {
        let ex = LocalExecutor::new(root("bad")).unwrap();
        assert!(matches!(ex.submit(&spec("j6", &[])).await, Err(ExecError::Rejected(_))));
        assert!(matches!(ex.status(&Handle("../etc/passwd".into())).await, Err(ExecError::Rejected(_))));
    }
}
