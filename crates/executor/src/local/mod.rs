//! The embedded default: each attempt runs as a child process of this machine, inside the
//! sandbox of [`sandbox`].
//!
//! Every attempt has a control directory `<root>/<job>/<attempt>/` with `work/` (the job's
//! working directory, the only part the job sees), `output.log` (stdout and stderr, combined as
//! Slurm and Ray do), and files written by a small `sh` wrapper around the sandbox, so that the
//! record survives the aiplus process itself:
//! - the wrapper takes an exclusive `flock` on `lock` for as long as the job lives;
//! - under that lock it refuses to start if `pid` exists, then writes `pid`: so an attempt runs at
//!   most once, however often it is submitted;
//! - it joins the job's cgroups, then runs the sandbox under `timeout`, which stops the job at its
//!   time limit (`time_limit_reached` records that it did);
//! - the job's output goes through a pipe to `head`, which keeps the first
//!   `executor.local.output_limit_mib` and notes in the log how much more was discarded;
//! - when the command ends it writes `exit_code` (atomically, by rename).
//!
//! The job holds none of these files open and sees none of them, so it cannot end itself early,
//! point a cancel at another process, or release the lock. A wrapper that finds the attempt
//! already started exits with status 97 and writes nothing.
//!
//! After a crash of aiplus the job keeps running (it is in its own process group), and
//! [`LocalExecutor::status`] reads the truth from those files: an exit code, a held lock (still
//! running), or neither (it died without a word: lost).

mod cgroups;
pub mod sandbox;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use cgroups::Cgroups;
pub use sandbox::LocalConfig;
use sandbox::Sandbox;

use crate::{BoxFut, EngineState, ExecError, ExecSpec, Executor, Handle, LogChunk, read_log_file};

/// How long a cancelled job has between SIGTERM and SIGKILL.
const CANCEL_GRACE: Duration = Duration::from_secs(5);

/// How long `timeout` waits after SIGTERM at the time limit before SIGKILL.
const TIME_LIMIT_GRACE_S: u32 = 5;

/// The wrapper. `$@` is the sandbox's command line. The job's stdout and stderr reach
/// `output.log` only through `head`, unbuffered (`stdbuf -o0`) so that it writes each read at
/// once: buffered, it would hold up to 4 KiB that a follower would not see and a cancel would
/// lose. `wc` drains and
/// counts whatever is past the limit, so a job that writes forever is neither blocked nor
/// stored. `9>&-` keeps the lock out of the job.
const WRAPPER: &str = r#"set -u
d="$AIPLUS_ATTEMPT_DIR"
exec 9>>"$d/lock"
flock -w 5 9 || exit 97
[ -e "$d/pid" ] && exit 97
echo $$ > "$d/pid.tmp" && mv "$d/pid.tmp" "$d/pid"
for f in $AIPLUS_CGROUP_PROCS; do echo $$ > "$f" 2>/dev/null || true; done
start=$(date +%s)
{ timeout --foreground -k "$AIPLUS_GRACE_S" "$AIPLUS_TIME_LIMIT_S" "$@" 9>&-; echo $? > "$d/exit.tmp"; } 2>&1 |
  { stdbuf -o0 head -c "$AIPLUS_OUTPUT_LIMIT"; n=$(wc -c); [ "$n" -eq 0 ] ||
    printf '
[aiplus: output cut at %s bytes; %s more bytes discarded]
' "$AIPLUS_OUTPUT_LIMIT" "$n"; } >> "$d/output.log"
code=$(cat "$d/exit.tmp")
if [ "$code" -eq 124 ] || [ "$code" -eq 137 ]; then
  [ $(( $(date +%s) - start )) -lt "$AIPLUS_TIME_LIMIT_S" ] || : > "$d/time_limit_reached"
fi
mv "$d/exit.tmp" "$d/exit_code"
exit "$code"
"#;

pub struct LocalExecutor {
    root: PathBuf,
    cgroups: Option<Cgroups>,
    sandbox: Sandbox,
}

impl LocalExecutor {
    /// An executor keeping its attempts under `root` (created if needed), with the default
    /// settings: every job sandboxed.
    pub fn new(root: PathBuf) -> std::io::Result<Self> {
        Self::with_config(root, LocalConfig::default())
    }

    /// An executor with the `[executor.local]` settings; it probes the sandbox once, here.
    pub fn with_config(root: PathBuf, config: LocalConfig) -> std::io::Result<Self> {
        config.validate().map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        std::fs::create_dir_all(&root)?;
        let sandbox = Sandbox::probe(config, &root);
        Ok(Self { root, cgroups: Cgroups::detect(), sandbox })
    }

    /// Whether jobs run sandboxed (`Ok(true)`), unsandboxed by the operator's choice
    /// (`Ok(false)`), or cannot run at all (`Err`, saying why).
    pub fn sandbox_state(&self) -> Result<bool, &str> {
        self.sandbox.state()
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
        if let Some(why) = self.sandbox.refuses(spec) {
            return Err(ExecError::Rejected(why));
        }
        if let Err(why) = self.sandbox.state() {
            return Err(ExecError::Rejected(format!(
                "the local executor runs jobs only in a sandbox, and {why}; an operator may set executor.local.sandbox = false \
                 to run jobs unsandboxed, as the server's user"
            )));
        }
        let work = dir.join("work");
        std::fs::create_dir_all(&work)?;
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
            .args(self.sandbox.argv(spec, &work))
            .current_dir(&work)
            // The wrapper runs outside the sandbox: none of the server's environment, and none
            // of the job's either (the job's variables reach it as sandbox arguments).
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("AIPLUS_ATTEMPT_DIR", dir)
            .env("AIPLUS_CGROUP_PROCS", procs.join(" "))
            .env("AIPLUS_TIME_LIMIT_S", spec.time_limit_s.max(1).to_string())
            .env("AIPLUS_GRACE_S", TIME_LIMIT_GRACE_S.to_string())
            .env("AIPLUS_OUTPUT_LIMIT", self.sandbox.config().output_limit_bytes().to_string())
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
            let timed_out = dir.join("time_limit_reached").exists();
            return match text.trim().parse::<i32>() {
                Ok(_) if cancelled => EngineState::Cancelled,
                Ok(code) if timed_out => EngineState::Failed { exit_code: Some(code), message: "stopped at its time limit".into() },
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
            tenant: "acme".into(),
            attempt: 1,
            command: cmd.iter().map(|s| s.to_string()).collect(),
            env: [("GREETING".to_string(), "ni hao".to_string())].into(),
            gpus: 0,
            gpu_milli: 0,
            cpu_milli: 500,
            memory_mib: 256,
            time_limit_s: 60,
            network: false,
            sealed: None,
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
        assert!(log.contains("out ni hao") && log.contains("err") && log.contains("\n/work\n"), "{log}");
        let tail = ex.logs(&h, 4).await.unwrap();
        assert_eq!(tail.next_offset, log.len() as u64);

        let bad = spec("j2", &["sh", "-c", "exit 3"]);
        let h = ex.submit(&bad).await.unwrap();
        assert!(matches!(wait_terminal(&ex, &h).await, EngineState::Failed { exit_code: Some(3), .. }));
    }

    #[tokio::test]
    async fn a_second_submit_of_an_attempt_does_not_run_it_again() {
        let ex = LocalExecutor::new(root("once")).unwrap();
        let s = spec("j3", &["sh", "-c", "echo ran >> ran.txt; sleep 0.3"]);
        let h1 = ex.submit(&s).await.unwrap();
        let h2 = ex.submit(&s).await.unwrap();
        assert_eq!(h1, h2);
        wait_terminal(&ex, &h1).await;
        let h3 = ex.submit(&s).await.unwrap();
        assert_eq!(h3, h1);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let ran = std::fs::read_to_string(ex.dir(&h1).unwrap().join("work/ran.txt")).unwrap();
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

    /// A line reaches the log when it is written, not when a buffer fills: a follower sees it
    /// while the job runs, and a cancel does not lose it.
    #[tokio::test]
    async fn output_reaches_the_log_as_it_is_written_and_survives_a_cancel() {
        let ex = LocalExecutor::new(root("live")).unwrap();
        let s = spec("j10", &["sh", "-c", "echo first line; sleep 30"]);
        let h = ex.submit(&s).await.unwrap();
        let log = ex.dir(&h).unwrap().join("output.log");
        let mut seen = false;
        for _ in 0..250 {
            seen = std::fs::read_to_string(&log).is_ok_and(|l| l.contains("first line"));
            if seen {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(seen, "the line is in the log while the job still runs");
        assert_eq!(ex.status(&h).await.unwrap(), EngineState::Running);
        ex.cancel(&h).await.unwrap();
        assert_eq!(wait_terminal(&ex, &h).await, EngineState::Cancelled);
        assert!(std::fs::read_to_string(&log).unwrap().contains("first line"));
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
    async fn a_job_is_stopped_at_its_time_limit() {
        let ex = LocalExecutor::new(root("limit")).unwrap();
        let mut s = spec("j7", &["sh", "-c", "echo started; sleep 30"]);
        s.time_limit_s = 1;
        let h = ex.submit(&s).await.unwrap();
        let state = wait_terminal(&ex, &h).await;
        assert_eq!(state, EngineState::Failed { exit_code: Some(124), message: "stopped at its time limit".into() });
        // A job that fails on its own, with the same status, is not reported as stopped.
        let own = spec("j8", &["sh", "-c", "exit 124"]);
        let h = ex.submit(&own).await.unwrap();
        assert!(matches!(wait_terminal(&ex, &h).await, EngineState::Failed { message, .. } if message.contains("124")));
    }

    #[tokio::test]
    async fn output_past_the_limit_is_counted_and_discarded() {
        let config = LocalConfig { output_limit_mib: 1, ..LocalConfig::default() };
        let ex = LocalExecutor::with_config(root("cap"), config).unwrap();
        // 5 MiB of output, then a last line that must not reach the log either.
        let s = spec("j9", &["sh", "-c", "head -c 5242880 /dev/zero | tr '\\0' x; echo; echo done"]);
        let h = ex.submit(&s).await.unwrap();
        assert_eq!(wait_terminal(&ex, &h).await, EngineState::Succeeded);
        let log = std::fs::read(ex.dir(&h).unwrap().join("output.log")).unwrap();
        let note = String::from_utf8_lossy(&log[1 << 20..]).into_owned();
        assert!(log[..1 << 20].iter().all(|&b| b == b'x'), "the first MiB is kept as written");
        assert_eq!(note, format!("\n[aiplus: output cut at 1048576 bytes; {} more bytes discarded]\n", 5 * (1 << 20) - (1 << 20) + 6));
    }

    #[tokio::test]
    async fn the_job_sees_neither_the_servers_environment_nor_its_control_files() {
        let ex = LocalExecutor::new(root("sees")).unwrap();
        let s = spec(
            "j10",
            &[
                "sh",
                "-c",
                "env | sort; id -u; ls -a /work; ls ../ 2>&1; echo 1 > ../exit_code 2>&1; ls /sys/fs/cgroup >/dev/null && echo $$ > /sys/fs/cgroup/cgroup.procs",
            ],
        );
        let h = ex.submit(&s).await.unwrap();
        let state = wait_terminal(&ex, &h).await;
        let log = String::from_utf8(ex.logs(&h, 0).await.unwrap().data).unwrap();
        let env: Vec<&str> = log.lines().take_while(|l| l.contains('=')).map(|l| l.split('=').next().unwrap_or("")).collect();
        assert_eq!(env, ["AIPLUS_ATTEMPT", "AIPLUS_JOB_ID", "GREETING", "HOME", "PATH", "PWD", "TMPDIR"], "{log}");
        assert!(log.contains("\n65534\n"), "runs as nobody inside: {log}");
        assert!(!log.contains("output.log") && !log.contains("pid"), "control files are out of sight: {log}");
        assert!(log.contains("Read-only file system"), "cgroups are read-only: {log}");
        assert!(matches!(state, EngineState::Failed { .. }), "{state:?}");
    }

    #[tokio::test]
    async fn bad_input_is_refused() {
        let ex = LocalExecutor::new(root("bad")).unwrap();
        assert!(matches!(ex.submit(&spec("j6", &[])).await, Err(ExecError::Rejected(_))));
        assert!(matches!(ex.status(&Handle("../etc/passwd".into())).await, Err(ExecError::Rejected(_))));
    }
}
