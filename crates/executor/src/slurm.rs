//! A Slurm cluster, through its command-line tools (`sbatch`, `squeue`, `scontrol`, `scancel`)
//! on a submit host. `SLURM_CONF` and `PATH` come from aiplus's own environment.
//!
//! - submit: a batch script in `<shared_dir>/<tenant>/<engine name>/` with `--export=NONE` (the
//!   job gets its own variables and nothing of aiplus's environment), `--job-name` = the attempt's
//!   engine name, GPUs as GRES, `--no-requeue` (aiplus, not Slurm, decides whether a job lost to
//!   a node failure runs again) and a time limit;
//! - find: `squeue --states=all --name=<engine name>`, which includes finished jobs still held
//!   by slurmctld (`MinJobAge`);
//! - status: `scontrol show job -o <id>` (state and exit code);
//! - cancel: `scancel`; logs: the job's output file in the shared directory;
//! - health: `scontrol ping` and at least one node of the partition responding.
//!
//! Slurm counts GPUs in whole units, so a share of a GPU asks for one whole GRES GPU.

use std::path::PathBuf;
use std::time::Duration;

use crate::ray::shell_quote;
use crate::{BoxFut, EngineState, ExecError, ExecSpec, Executor, Handle, LogChunk, read_log_file};

/// Longest a Slurm command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

pub struct SlurmExecutor {
    partition: Option<String>,
    shared_dir: PathBuf,
}

impl SlurmExecutor {
    /// `shared_dir` must be readable and writable at the same path on the submit host and on
    /// every node (here: one machine).
    pub fn new(partition: Option<String>, shared_dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&shared_dir)?;
        Ok(Self { partition, shared_dir })
    }

    async fn run(program: &str, args: &[String]) -> Result<(bool, String, String), ExecError> {
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args).stdin(std::process::Stdio::null()).kill_on_drop(true);
        let out = tokio::time::timeout(COMMAND_TIMEOUT, cmd.output())
            .await
            .map_err(|_| ExecError::Unreachable(format!("{program} did not answer in {COMMAND_TIMEOUT:?}")))?
            .map_err(|e| ExecError::Unreachable(format!("running {program}: {e}")))?;
        Ok((out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned()))
    }

    /// Errors that mean slurmctld did not answer, as opposed to refusing.
    fn is_connection_error(stderr: &str) -> bool {
        let s = stderr.to_ascii_lowercase();
        s.contains("unable to contact") || s.contains("connection refused") || s.contains("socket timed out") || s.contains("communication")
    }

    /// Handles are "<slurm job id>:<tenant>/<engine name>", the second part being the job's
    /// directory under the shared directory (before tenants had directories: "<id>:<name>").
    fn parse_handle(handle: &Handle) -> Result<(&str, &str), ExecError> {
        let (id, dir) = handle.0.split_once(':').ok_or_else(|| ExecError::Rejected(format!("not a Slurm handle: {:?}", handle.0)))?;
        let segment = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        let ok = !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) && dir.split('/').count() <= 2 && dir.split('/').all(segment);
        if ok { Ok((id, dir)) } else { Err(ExecError::Rejected(format!("not a Slurm handle: {:?}", handle.0))) }
    }

    /// The attempt's directory under the shared directory: one directory per tenant.
    fn job_dir(spec: &ExecSpec) -> Result<String, ExecError> {
        let tenant_ok = !spec.tenant.is_empty() && spec.tenant.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !tenant_ok {
            return Err(ExecError::Rejected(format!("not a tenant id: {:?}", spec.tenant)));
        }
        Ok(format!("{}/{}", spec.tenant, spec.engine_name()))
    }

    fn script(spec: &ExecSpec) -> String {
        // `--export=NONE` leaves PATH unset; the job gets the system's.
        let mut s = String::from("#!/bin/sh\nexport PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n");
        for (k, v) in &spec.env {
            s.push_str(&format!("export {k}={}\n", shell_quote(v)));
        }
        s.push_str(&format!("export AIPLUS_JOB_ID={}\nexport AIPLUS_ATTEMPT={}\n", shell_quote(&spec.job_id), spec.attempt));
        s.push_str("exec");
        for a in &spec.command {
            s.push(' ');
            s.push_str(&shell_quote(a));
        }
        s.push('\n');
        s
    }

    /// Maps `scontrol show job -o` output to our state.
    pub fn parse_scontrol(text: &str) -> EngineState {
        let field =
            |name: &str| text.split_whitespace().find_map(|kv| kv.strip_prefix(name).and_then(|r| r.strip_prefix('='))).unwrap_or("");
        let state = field("JobState");
        let exit_code = field("ExitCode").split(':').next().and_then(|c| c.parse::<i32>().ok());
        let reason = field("Reason");
        match state {
            "PENDING" | "CONFIGURING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED" | "RESIZING" => EngineState::Pending,
            "RUNNING" | "COMPLETING" | "STAGE_OUT" | "SIGNALING" | "SUSPENDED" | "STOPPED" => EngineState::Running,
            "COMPLETED" => EngineState::Succeeded,
            "CANCELLED" => EngineState::Cancelled,
            "FAILED" => EngineState::Failed { exit_code, message: format!("exited with status {}", exit_code.unwrap_or(-1)) },
            "TIMEOUT" => EngineState::Failed { exit_code: None, message: "stopped at its time limit".into() },
            "OUT_OF_MEMORY" => EngineState::Failed { exit_code: None, message: "ran out of memory".into() },
            "NODE_FAIL" | "BOOT_FAIL" | "PREEMPTED" | "DEADLINE" | "REVOKED" | "SPECIAL_EXIT" => {
                EngineState::Lost { reason: format!("slurm: {state} {reason}").trim().to_string() }
            }
            other => EngineState::Lost { reason: format!("slurm reports {other:?}") },
        }
    }
}

impl Executor for SlurmExecutor {
    fn kind(&self) -> &'static str {
        "slurm"
    }

    fn submit<'a>(&'a self, spec: &'a ExecSpec) -> BoxFut<'a, Result<Handle, ExecError>> {
        Box::pin(async move {
            if spec.command.is_empty() {
                return Err(ExecError::Rejected("empty command".into()));
            }
            crate::refuse_sealed(spec, "Slurm")?;
            if let Some(h) = self.find(spec).await? {
                return Ok(h);
            }
            let name = spec.engine_name();
            let rel = Self::job_dir(spec)?;
            let dir = self.shared_dir.join(&rel);
            std::fs::create_dir_all(&dir)?;
            let script = dir.join("job.sh");
            std::fs::write(&script, Self::script(spec))?;
            let gpus = (f64::from(spec.gpus) * f64::from(spec.gpu_milli) / 1000.0).ceil() as u32;
            let mut args = vec![
                "--parsable".to_string(),
                format!("--job-name={name}"),
                format!("--output={}", dir.join("output.log").display()),
                format!("--chdir={}", dir.display()),
                format!("--cpus-per-task={}", spec.cpu_milli.div_ceil(1000).max(1)),
                format!("--mem={}M", spec.memory_mib.max(1)),
                format!("--time={}", spec.time_limit_s.div_ceil(60).max(1)),
                "--no-requeue".to_string(),
                // Nothing of aiplus's environment (its secrets among it) reaches the job; the
                // script sets the job's own variables.
                "--export=NONE".to_string(),
            ];
            if let Some(p) = &self.partition {
                args.push(format!("--partition={p}"));
            }
            if gpus > 0 {
                args.push(format!("--gres=gpu:{gpus}"));
            }
            args.push(script.display().to_string());
            let (ok, out, err) = Self::run("sbatch", &args).await?;
            if !ok {
                return Err(if Self::is_connection_error(&err) {
                    ExecError::Unreachable(err.trim().into())
                } else {
                    ExecError::Rejected(err.trim().into())
                });
            }
            let id = out.trim().split(';').next().unwrap_or("").to_string();
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ExecError::Rejected(format!("sbatch printed {out:?}")));
            }
            Ok(Handle(format!("{id}:{rel}")))
        })
    }

    fn find<'a>(&'a self, spec: &'a ExecSpec) -> BoxFut<'a, Result<Option<Handle>, ExecError>> {
        Box::pin(async move {
            let name = spec.engine_name();
            let rel = Self::job_dir(spec)?;
            let args = ["--states=all".to_string(), format!("--name={name}"), "--noheader".to_string(), "--format=%i".to_string()];
            let (ok, out, err) = Self::run("squeue", &args).await?;
            if !ok {
                return Err(ExecError::Unreachable(err.trim().into()));
            }
            Ok(out.split_whitespace().next().map(|id| Handle(format!("{id}:{rel}"))))
        })
    }

    fn status<'a>(&'a self, handle: &'a Handle) -> BoxFut<'a, Result<EngineState, ExecError>> {
        Box::pin(async move {
            let (id, _) = Self::parse_handle(handle)?;
            let (ok, out, err) = Self::run("scontrol", &["show".into(), "job".into(), "-o".into(), id.into()]).await?;
            if ok {
                return Ok(Self::parse_scontrol(&out));
            }
            if err.contains("Invalid job id") {
                return Ok(EngineState::Lost { reason: "slurm no longer knows this job".into() });
            }
            Err(ExecError::Unreachable(err.trim().into()))
        })
    }

    fn cancel<'a>(&'a self, handle: &'a Handle) -> BoxFut<'a, Result<(), ExecError>> {
        Box::pin(async move {
            let (id, _) = Self::parse_handle(handle)?;
            let (ok, _, err) = Self::run("scancel", &[id.into()]).await?;
            if ok || err.contains("Invalid job id") || err.contains("already completing or completed") {
                Ok(())
            } else if Self::is_connection_error(&err) {
                Err(ExecError::Unreachable(err.trim().into()))
            } else {
                Err(ExecError::Rejected(err.trim().into()))
            }
        })
    }

    fn logs<'a>(&'a self, handle: &'a Handle, offset: u64) -> BoxFut<'a, Result<LogChunk, ExecError>> {
        Box::pin(async move {
            let (_, dir) = Self::parse_handle(handle)?;
            read_log_file(&self.shared_dir.join(dir).join("output.log"), offset).await
        })
    }

    fn health(&self) -> BoxFut<'_, Result<(), ExecError>> {
        Box::pin(async move {
            let (ok, out, err) = Self::run("scontrol", &["ping".into()]).await?;
            if !ok || !out.contains("UP") {
                return Err(ExecError::Unreachable(format!("slurmctld: {}{}", out.trim(), err.trim())));
            }
            // Node states with a trailing '*' do not respond; down/drain nodes run nothing.
            let mut args = vec!["--noheader".to_string(), "--format=%t".to_string()];
            if let Some(p) = &self.partition {
                args.push(format!("--partition={p}"));
            }
            let (_, out, _) = Self::run("sinfo", &args).await?;
            let responding = out
                .split_whitespace()
                .any(|s| !s.ends_with('*') && !s.starts_with("down") && !s.starts_with("drain") && !s.starts_with("fail"));
            if responding { Ok(()) } else { Err(ExecError::Unreachable(format!("no node of the partition responds: {}", out.trim()))) }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scontrol_states_map_to_ours() {
        let line = |state: &str, code: &str| format!("JobId=7 JobName=x JobState={state} Reason=None ExitCode={code} RunTime=00:00:01");
        assert_eq!(SlurmExecutor::parse_scontrol(&line("RUNNING", "0:0")), EngineState::Running);
        assert_eq!(SlurmExecutor::parse_scontrol(&line("COMPLETED", "0:0")), EngineState::Succeeded);
        assert!(matches!(SlurmExecutor::parse_scontrol(&line("FAILED", "3:0")), EngineState::Failed { exit_code: Some(3), .. }));
        assert_eq!(SlurmExecutor::parse_scontrol(&line("CANCELLED", "0:15")), EngineState::Cancelled);
        assert!(matches!(SlurmExecutor::parse_scontrol(&line("NODE_FAIL", "0:0")), EngineState::Lost { .. }));
        assert_eq!(SlurmExecutor::parse_scontrol(&line("PENDING", "0:0")), EngineState::Pending);
    }

    #[test]
    fn handles_are_checked_and_scripts_quote_everything() {
        assert!(SlurmExecutor::parse_handle(&Handle("12:job_a-a1".into())).is_ok());
        assert_eq!(SlurmExecutor::parse_handle(&Handle("12:acme/job_a-a1".into())).unwrap(), ("12", "acme/job_a-a1"));
        assert!(SlurmExecutor::parse_handle(&Handle("12;rm:x".into())).is_err());
        assert!(SlurmExecutor::parse_handle(&Handle("12:../x".into())).is_err());
        assert!(SlurmExecutor::parse_handle(&Handle("12:a/b/c".into())).is_err());
        let spec = ExecSpec {
            job_id: "j".into(),
            tenant: "acme".into(),
            network: true,
            attempt: 1,
            command: vec!["echo".into(), "it's $HOME".into()],
            env: [("X".to_string(), "a'b".to_string())].into(),
            gpus: 0,
            gpu_milli: 0,
            cpu_milli: 1,
            memory_mib: 1,
            time_limit_s: 1,
            sealed: None,
        };
        let out = std::process::Command::new("sh").args(["-c", &SlurmExecutor::script(&spec)]).output().unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), "it's $HOME\n");
        let sealed = ExecSpec { sealed: Some("drun_1".into()), ..spec };
        let Err(ExecError::Rejected(why)) = crate::refuse_sealed(&sealed, "Slurm") else { panic!("a sealed job is refused") };
        assert!(why.contains("local executor's sandbox"), "{why}");
    }
}
